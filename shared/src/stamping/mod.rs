//! The PDF stamping engine: an e-Meterai is the issuer's PDF signature whose widget shows the
//! stamp, appended as an incremental update so earlier signatures stay valid.
//!
//! - [`check`]: every rejection that needs no signing, cheap, before any quota is spent.
//! - [`stamp`]: the stamped document (deterministic for the same inputs).
//! - [`verify`]: the e-Meterai signatures found in a document and whether each holds.

pub mod appearance;
pub mod cms;
pub mod der;
pub mod incremental;
pub mod issuer;
pub mod parse;
pub mod pdf;
pub mod placement;
pub mod qr;
pub mod serialize;
pub mod timestamp;
pub mod verify;

use chrono::{DateTime, Utc};

use crate::domain::placement::Placement;
use crate::domain::serial::{SERIAL_LEN, Serial};
pub use issuer::{Issuer, IssuerError};
pub use verify::{FoundStamp, PadesLevel, verify};

/// Largest document accepted, and largest stamped result produced (800 KB, strictly).
pub const MAX_PDF_BYTES: usize = 800_000;

/// Why a document cannot be stamped. Codes are the API's rejection codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the file is not a PDF")]
    NotPdf,
    #[error("the PDF is damaged and cannot be read safely")]
    Corrupt,
    #[error("the PDF is encrypted")]
    Encrypted,
    #[error("the PDF, or the stamped result, is larger than 800,000 bytes")]
    TooLarge,
    #[error("every page must be A4 (portrait or landscape, within 2 mm)")]
    NotA4,
    #[error("the document has no such page")]
    PageOutOfRange,
    #[error("the stamp would not lie inside the page")]
    PlacementOutOfBounds,
    #[error("the stamp would cover an existing signature")]
    PlacementOverlapsSignature,
    #[error("the document already carries an e-Meterai")]
    AlreadyStamped,
    #[error("a certification signature forbids any change to the document")]
    CertifiedNoChanges,
    /// Not the document's fault: the key service did not sign. The stamp function retries the
    /// run instead of rejecting the document; the CLI reports it as a failure.
    #[error("the issuer's signing key could not be reached; try again")]
    SignerUnavailable,
    /// Not the document's fault either: the timestamp authority gave no usable token. Retried
    /// like [`Rejection::SignerUnavailable`]; nothing is written.
    #[error("the timestamp authority could not be reached; try again")]
    TimestampUnavailable,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotPdf => "not_pdf",
            Rejection::Corrupt => "corrupt",
            Rejection::Encrypted => "encrypted",
            Rejection::TooLarge => "too_large",
            Rejection::NotA4 => "not_a4",
            Rejection::PageOutOfRange => "page_out_of_range",
            Rejection::PlacementOutOfBounds => "placement_out_of_bounds",
            Rejection::PlacementOverlapsSignature => "placement_overlaps_signature",
            Rejection::AlreadyStamped => "already_stamped",
            Rejection::CertifiedNoChanges => "certified_no_changes",
            Rejection::SignerUnavailable => "signer_unavailable",
            Rejection::TimestampUnavailable => "timestamp_unavailable",
        }
    }

    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Every rejection a document can earn (not [`Rejection::SignerUnavailable`] nor
    /// [`Rejection::TimestampUnavailable`], which are ours).
    pub const ALL: [Rejection; 10] = [
        Rejection::NotPdf,
        Rejection::Corrupt,
        Rejection::Encrypted,
        Rejection::TooLarge,
        Rejection::NotA4,
        Rejection::PageOutOfRange,
        Rejection::PlacementOutOfBounds,
        Rejection::PlacementOverlapsSignature,
        Rejection::AlreadyStamped,
        Rejection::CertifiedNoChanges,
    ];
}

/// What to stamp.
#[derive(Debug, Clone, Copy)]
pub struct StampRequest<'a> {
    pub serial: &'a Serial,
    pub placement: &'a Placement,
    pub signed_at: DateTime<Utc>,
    /// The full URL in the QR code, e.g. `https://host/v1/verify/{serial}`.
    pub verify_url: &'a str,
}

/// A stamped document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub pdf: Vec<u8>,
    pub sha256: [u8; 32],
    /// The 1-based page that carries the stamp.
    pub page: u32,
}

impl Stamped {
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// The `/Reason` of an e-Meterai signature.
pub fn reason_for(serial: &str) -> String {
    format!("[{serial}] e-Meterai 10000")
}

/// The serial in an e-Meterai `/Reason` (`[SERIAL] e-Meterai...`), if it is one.
pub fn serial_in_reason(reason: &[u8]) -> Option<String> {
    // Text strings may be UTF-16BE with a byte order mark.
    let decoded;
    let reason = match reason.strip_prefix(&[0xFE, 0xFF]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).collect();
            decoded = String::from_utf16_lossy(&units).into_bytes();
            decoded.as_slice()
        }
        None => reason,
    };
    let rest = reason.strip_prefix(b"[")?;
    let serial = rest.get(..SERIAL_LEN)?;
    let after = rest.get(SERIAL_LEN..)?;
    let serial_ok = serial.iter().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    (serial_ok && after.starts_with(b"] e-Meterai")).then(|| String::from_utf8_lossy(serial).into_owned())
}

/// Where the stamp will go, once every check has passed.
struct Plan {
    page_index: usize,
    rect: parse::Rect,
}

/// Largest `/UserUnit` readers accept (Acrobat's limit, in points).
const MAX_USER_UNIT: f64 = 75_000.0;
/// Smallest and largest page side readers draw, in user-space units (Acrobat's limits).
const PAGE_SIDE_UNITS: std::ops::RangeInclusive<f64> = 3.0..=14_400.0;

/// A4 is 210 x 297 mm; a page passes within 2 mm in either orientation. Only a page readers
/// draw at that size: a hostile unit such as 1e-300 with a box of 1e302 units is A4 by
/// arithmetic, and would place the stamp at absurd coordinates.
fn is_a4(page: &parse::PageInfo) -> bool {
    let drawn_as_given = page.user_unit <= MAX_USER_UNIT
        && PAGE_SIDE_UNITS.contains(&page.visible.width())
        && PAGE_SIDE_UNITS.contains(&page.visible.height());
    if !drawn_as_given {
        return false;
    }
    const TOLERANCE_MM: f64 = 2.0;
    let (w, h) = placement::displayed_size_mm(page);
    let near = |a: f64, b: f64| (a - b).abs() <= TOLERANCE_MM;
    (near(w, 210.0) && near(h, 297.0)) || (near(w, 297.0) && near(h, 210.0))
}

/// The document-level and placement checks, in the order the codes are reported.
fn plan(loaded: &parse::Loaded<'_>, placement: &Placement) -> Result<Plan, Rejection> {
    if loaded.signatures.iter().any(|s| s.reason.as_deref().and_then(serial_in_reason).is_some()) {
        return Err(Rejection::AlreadyStamped);
    }
    let no_changes = loaded.certification_permission == Some(1)
        || loaded.signatures.iter().any(|s| s.docmdp_permission == Some(1));
    if no_changes {
        return Err(Rejection::CertifiedNoChanges);
    }
    if !loaded.pages.iter().all(is_a4) {
        return Err(Rejection::NotA4);
    }
    let page_index = match placement.page() {
        None => loaded.pages.len() - 1,
        Some(n) => {
            let index = usize::try_from(n).map_err(|_| Rejection::PageOutOfRange)?.saturating_sub(1);
            if index >= loaded.pages.len() {
                return Err(Rejection::PageOutOfRange);
            }
            index
        }
    };
    let page = loaded.pages.get(page_index).ok_or(Rejection::PageOutOfRange)?;
    if !placement::fits(page, placement.x_mm(), placement.y_mm()) {
        return Err(Rejection::PlacementOutOfBounds);
    }
    let rect = placement::user_rect(page, placement);
    let overlaps = loaded
        .signature_widgets
        .iter()
        .any(|w| w.page == Some(page.id) && w.rect.intersection(&rect).is_some());
    if overlaps {
        return Err(Rejection::PlacementOverlapsSignature);
    }
    Ok(Plan { page_index, rect })
}

fn load_checked(pdf: &[u8]) -> Result<parse::Loaded<'_>, Rejection> {
    parse::find_header(pdf).ok_or(Rejection::NotPdf)?;
    if pdf.len() > MAX_PDF_BYTES {
        return Err(Rejection::TooLarge);
    }
    parse::load(pdf, true)
}

fn prepare(pdf: &[u8], req: &StampRequest<'_>) -> Result<(incremental::Prepared, u32), Rejection> {
    let loaded = load_checked(pdf)?;
    let plan = plan(&loaded, req.placement)?;
    let inputs = incremental::Inputs {
        serial: req.serial.as_str(),
        signing_time_pdf: req.signed_at.format("D:%Y%m%d%H%M%S+00'00'").to_string(),
        date_line: req.signed_at.format("%d-%m-%Y").to_string(),
        verify_url: req.verify_url,
        page_index: plan.page_index,
        rect: plan.rect,
    };
    let prepared = incremental::prepare(&loaded, &inputs)?;
    if prepared.bytes.len() > MAX_PDF_BYTES {
        return Err(Rejection::TooLarge);
    }
    let page = u32::try_from(plan.page_index + 1).map_err(|_| Rejection::PageOutOfRange)?;
    Ok((prepared, page))
}

/// Every rejection that needs no signing. Also checks the stamped size, with a worst-case
/// verification URL standing in for the real one.
pub fn check(pdf: &[u8], placement: &Placement) -> Result<(), Rejection> {
    let serial = Serial::parse("0000000000000000000000").map_err(|_| Rejection::Corrupt)?;
    let long_url = format!("https://{}/v1/verify/{serial}", "x".repeat(64));
    let req = StampRequest { serial: &serial, placement, signed_at: DateTime::<Utc>::UNIX_EPOCH, verify_url: &long_url };
    prepare(pdf, &req).map(|_| ())
}

/// Stamps `pdf`. Deterministic: the same document, request and issuer give the same bytes.
pub fn stamp(pdf: &[u8], req: &StampRequest<'_>, issuer: &Issuer) -> Result<Stamped, Rejection> {
    prepare_stamp(pdf, req)?.sign(issuer)
}

/// A document that passed every check, laid out with room for the signature: what is left
/// is signing. Lets a caller spend the issuer (or quota) only on documents that will stamp.
pub struct PreparedStamp {
    prepared: incremental::Prepared,
    page: u32,
    serial: String,
}

/// Every check of [`stamp`] and the whole layout, without signing.
pub fn prepare_stamp(pdf: &[u8], req: &StampRequest<'_>) -> Result<PreparedStamp, Rejection> {
    let (prepared, page) = prepare(pdf, req)?;
    Ok(PreparedStamp { prepared, page, serial: req.serial.as_str().to_owned() })
}

impl PreparedStamp {
    /// The 1-based page that will carry the stamp.
    pub fn page(&self) -> u32 {
        self.page
    }

    pub fn sign(mut self, issuer: &Issuer) -> Result<Stamped, Rejection> {
        use sha2::Digest as _;
        let prepared = &mut self.prepared;
        let bytes = &prepared.bytes;
        let before = bytes.get(..prepared.contents_start).ok_or(Rejection::Corrupt)?;
        let after = bytes.get(prepared.contents_end..).ok_or(Rejection::Corrupt)?;
        // One pass over the large head serves both digests: the signed range (head + tail)
        // and the whole output (head + signature + tail).
        let mut head = sha2::Sha256::new();
        head.update(before);
        let mut signed_range = head.clone();
        signed_range.update(after);
        let signed: [u8; 32] = signed_range.finalize().into();
        let signature = cms::sign_detached(issuer, &signed).map_err(|e| match e {
            cms::SignFailure::Signer(e) => {
                tracing::warn!(error = %e, "the issuer key could not sign");
                Rejection::SignerUnavailable
            }
            cms::SignFailure::Timestamp(e) => {
                tracing::warn!(error = %e, "the timestamp authority gave no token");
                Rejection::TimestampUnavailable
            }
        })?;
        if !incremental::fill_signature(prepared, &signature) {
            return Err(Rejection::TooLarge);
        }
        let contents = prepared.bytes.get(prepared.contents_start..).ok_or(Rejection::Corrupt)?;
        head.update(contents);
        let sha256: [u8; 32] = head.finalize().into();
        // Read our own output back the way a reader does: a damaged original can make readers
        // swallow the appended objects (e.g. a stream without a usable end), and such a stamp
        // must never be handed out.
        let byte_range = [0, prepared.contents_start, prepared.contents_end, prepared.bytes.len() - prepared.contents_end];
        if !verify::finds_own_signature(&prepared.bytes, &self.serial, byte_range) {
            return Err(Rejection::Corrupt);
        }
        Ok(Stamped { pdf: self.prepared.bytes, sha256, page: self.page })
    }
}

/// The default placement on `page` (1-based, `None` for the last page): the bottom-right
/// corner of the page as displayed, 15 mm from both edges; if a signature already sits there,
/// the first free of bottom-left, top-right and top-left. A document that cannot be read, or
/// has no such page, gets the top-left corner, so that [`stamp`] reports the real rejection.
pub fn default_placement(pdf: &[u8], page: Option<u32>) -> Result<Placement, crate::domain::placement::InvalidPlacement> {
    let position = load_checked(pdf).ok().and_then(|loaded| {
        let index = match page {
            None => loaded.pages.len().checked_sub(1)?,
            Some(n) => usize::try_from(n).ok()?.checked_sub(1)?,
        };
        let info = loaded.pages.get(index)?;
        let (right, bottom) = placement::default_position_mm(info);
        let margin = placement::DEFAULT_MARGIN_MM.min(right).min(bottom);
        let candidates = [(right, bottom), (margin, bottom), (right, margin), (margin, margin)];
        let free = candidates.iter().copied().find(|&(x, y)| {
            let Ok(candidate) = Placement::parse(page, x, y) else { return false };
            let rect = placement::user_rect(info, &candidate);
            !loaded.signature_widgets.iter().any(|w| w.page == Some(info.id) && w.rect.intersection(&rect).is_some())
        });
        Some(free.unwrap_or((right, bottom)))
    });
    let (x, y) = position.unwrap_or((0.0, 0.0));
    Placement::parse(page, x, y)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod reason_tests {
    use super::*;

    #[test]
    fn recognises_e_meterai_reasons_only() {
        assert_eq!(serial_in_reason(reason_for("0123456789ABCDEFGHIJKL").as_bytes()), Some("0123456789ABCDEFGHIJKL".to_owned()));
        let utf16: Vec<u8> = [0xFE, 0xFF].into_iter().chain("[0123456789ABCDEFGHIJKL] e-Meterai".encode_utf16().flat_map(u16::to_be_bytes)).collect();
        assert!(serial_in_reason(&utf16).is_some());
        assert_eq!(serial_in_reason(b"[0123456789ABCDEFGHIJKL] approval"), None);
        assert_eq!(serial_in_reason(b"[0123456789abcdefghijkl] e-Meterai"), None);
        assert_eq!(serial_in_reason(b"[012] e-Meterai"), None);
        assert_eq!(serial_in_reason(b""), None);
    }

    #[test]
    fn every_rejection_has_its_api_code() {
        let codes: Vec<&str> = Rejection::ALL.iter().map(Rejection::code).collect();
        assert_eq!(codes, ["not_pdf", "corrupt", "encrypted", "too_large", "not_a4", "page_out_of_range", "placement_out_of_bounds", "placement_overlaps_signature", "already_stamped", "certified_no_changes"]);
        assert!(Rejection::ALL.iter().all(|r| !r.message().is_empty()));
    }
}
