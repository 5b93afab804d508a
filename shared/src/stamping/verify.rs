//! Finding the e-Meterai signatures in a document and checking each one.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::parse::{self, SignatureValue, find_header};
use super::timestamp::TimestampFacts;
use super::{Rejection, cms, serial_in_reason};

/// Most e-Meterai signatures checked in one document (a document holds one; more is hostile).
pub const MAX_STAMPS_CHECKED: usize = 8;

/// An e-Meterai signature found in a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FoundStamp {
    pub serial: String,
    /// The CMS signature verifies over exactly the bytes `/ByteRange` names, those bytes are the
    /// whole file except the signature's own `/Contents`, and they end at a revision's `%%EOF`.
    pub signature_valid: bool,
    /// The signature covers the whole file: nothing was appended after the stamp.
    pub unmodified_since_stamp: bool,
    /// Whether the signer certificate is one of the given issuer certificates (`None` when
    /// none were given).
    pub issuer_trusted: Option<bool>,
    pub signed_at: Option<DateTime<Utc>>,
    /// The PAdES baseline level the signature reaches, when it reaches one.
    pub level: Option<PadesLevel>,
    /// The RFC 3161 signature timestamp, when the signature carries one.
    pub timestamp: Option<TimestampFacts>,
}

/// PAdES baseline levels (ETSI EN 319 142-1) this verifier recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PadesLevel {
    /// `ETSI.CAdES.detached`, ESS signing-certificate-v2 naming the signer, no signing-time
    /// attribute, and the signature valid.
    #[serde(rename = "B-B")]
    BB,
    /// B-B plus a valid signature timestamp over the signature value.
    #[serde(rename = "B-T")]
    BT,
}

impl PadesLevel {
    pub fn as_str(&self) -> &'static str {
        match self {
            PadesLevel::BB => "B-B",
            PadesLevel::BT => "B-T",
        }
    }
}

impl FoundStamp {
    /// Valid, and by a trusted issuer when issuers were given.
    pub fn is_valid(&self) -> bool {
        self.signature_valid && self.issuer_trusted != Some(false)
    }
}

/// Lists the e-Meterai signatures in `pdf`. `issuer_certs` (DER certificates), when given, are
/// the issuers to trust. Unreadable documents are rejected with the same codes as stamping
/// (there is no size limit here).
pub fn verify(pdf: &[u8], issuer_certs: Option<&[Vec<u8>]>) -> Result<Vec<FoundStamp>, Rejection> {
    find_header(pdf).ok_or(Rejection::NotPdf)?;
    let loaded = parse::load(pdf, false)?;
    let mut found = Vec::new();
    // Each distinct signed range is hashed once, however many signatures name it.
    let mut digests: HashMap<[usize; 4], [u8; 32]> = HashMap::new();
    let stamps = loaded.signatures.iter().filter_map(|v| Some((v, v.reason.as_deref().and_then(serial_in_reason)?)));
    for (value, serial) in stamps.take(MAX_STAMPS_CHECKED) {
        let (signature_valid, unmodified_since_stamp, check) = check_value(pdf, value, &mut digests);
        let certificate = check.as_ref().and_then(|c| c.signer_certificate.clone());
        let timestamp = check.as_ref().and_then(|c| c.timestamp.clone());
        let cades = value.sub_filter.as_deref() == Some(b"ETSI.CAdES.detached".as_slice())
            && check.as_ref().is_some_and(|c| c.cades_baseline);
        let level = match (signature_valid && cades, &timestamp) {
            (false, _) => None,
            (true, Some(t)) if t.valid => Some(PadesLevel::BT),
            (true, _) => Some(PadesLevel::BB),
        };
        let issuer_trusted = issuer_certs.map(|certs| {
            certificate.as_ref().is_some_and(|c| certs.iter().any(|trusted| trusted == c))
        });
        found.push(FoundStamp {
            serial,
            signature_valid,
            unmodified_since_stamp,
            issuer_trusted,
            signed_at: value.signing_time.as_deref().and_then(parse_pdf_date),
            level,
            timestamp,
        });
    }
    Ok(found)
}

/// Whether a reader of `pdf` finds the signature we just wrote: our serial, our `/ByteRange`.
/// Structural only; the digest and signature were computed by us a moment ago.
pub(crate) fn finds_own_signature(pdf: &[u8], serial: &str, byte_range: [usize; 4]) -> bool {
    let Ok(loaded) = parse::load(pdf, false) else { return false };
    loaded.signatures.iter().any(|value| {
        let range_matches = value.byte_range.as_deref().is_some_and(|r| {
            r.len() == 4 && r.iter().zip(byte_range).all(|(got, want)| usize::try_from(*got).ok() == Some(want))
        });
        range_matches
            && value.contents.as_ref().is_some_and(|c| !c.is_empty())
            && value.reason.as_deref().and_then(serial_in_reason).as_deref() == Some(serial)
    })
}

fn check_value(pdf: &[u8], value: &SignatureValue, digests: &mut HashMap<[usize; 4], [u8; 32]>) -> (bool, bool, Option<cms::CmsCheck>) {
    let (Some(range), Some(contents)) = (value.byte_range.as_deref(), value.contents.as_deref()) else {
        return (false, false, None);
    };
    let [a, b, c, d] = range else { return (false, false, None) };
    let to_usize = |v: &i64| usize::try_from(*v).ok();
    let (Some(a), Some(b), Some(c), Some(d)) = (to_usize(a), to_usize(b), to_usize(c), to_usize(d)) else {
        return (false, false, None);
    };
    let end = c.checked_add(d);
    let shape_ok = a == 0 && b <= c && end.is_some_and(|e| e <= pdf.len());
    if !shape_ok {
        return (false, false, None);
    }
    let end = end.unwrap_or(0);
    // The gap must be exactly the hex string of /Contents, nothing else left unsigned.
    let gap = pdf.get(b..c).unwrap_or_default();
    let gap_is_contents = gap.len() == contents.len() * 2 + 2
        && gap.first() == Some(&b'<')
        && gap.last() == Some(&b'>')
        && gap.get(1..gap.len() - 1).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    let ends_revision = revision_ends_at(pdf, end);
    let digest = *digests
        .entry([a, b, c, d])
        .or_insert_with(|| cms::sha256(&[pdf.get(..b).unwrap_or_default(), pdf.get(c..end).unwrap_or_default()]));
    let check = cms::verify_detached(contents, &digest);
    let valid = check.valid && gap_is_contents && ends_revision;
    let whole_file = end == pdf.len() || pdf.get(end..).is_some_and(|rest| rest.iter().all(u8::is_ascii_whitespace));
    (valid, valid && whole_file, Some(check))
}

/// Whether the bytes up to `end` close a revision: `%%EOF` and at most an end-of-line.
fn revision_ends_at(pdf: &[u8], end: usize) -> bool {
    let Some(head) = pdf.get(..end) else { return false };
    let trimmed = head.strip_suffix(b"\r\n").or_else(|| head.strip_suffix(b"\n")).or_else(|| head.strip_suffix(b"\r")).unwrap_or(head);
    trimmed.ends_with(b"%%EOF")
}

/// `D:YYYYMMDDHHmmSS` with `Z` or `+HH'mm'` / `-HH'mm'`.
fn parse_pdf_date(raw: &[u8]) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(raw).ok()?;
    let body = text.strip_prefix("D:").unwrap_or(text);
    let stamp = body.get(..14)?;
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S").ok()?;
    let zone = body.get(14..).unwrap_or("");
    let offset_seconds = match zone.chars().next() {
        Some(sign @ ('+' | '-')) => {
            let digits: String = zone.chars().filter(char::is_ascii_digit).collect();
            let hours: i64 = digits.get(..2)?.parse().ok()?;
            let minutes: i64 = digits.get(2..4).and_then(|m| m.parse().ok()).unwrap_or(0);
            let seconds = hours * 3600 + minutes * 60;
            if sign == '+' { seconds } else { -seconds }
        }
        _ => 0,
    };
    Some(naive.and_utc() - chrono::Duration::seconds(offset_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pdf_dates() {
        let expected = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").ok().map(|d| d.with_timezone(&Utc));
        assert_eq!(parse_pdf_date(b"D:20261128120000Z"), expected);
        assert_eq!(parse_pdf_date(b"D:20261128190000+07'00'"), expected);
        assert_eq!(parse_pdf_date(b"D:2026"), None);
    }
}
