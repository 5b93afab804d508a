//! The little DER (X.690) the stamp needs: building a CMS SignedData and a self-signed
//! certificate, and reading them back to verify. Reading is bounded by the input and never
//! recurses on its own.

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_NULL: u8 = 0x05;
pub const TAG_OID: u8 = 0x06;
pub const TAG_UTF8_STRING: u8 = 0x0C;
pub const TAG_PRINTABLE_STRING: u8 = 0x13;
pub const TAG_UTC_TIME: u8 = 0x17;
pub const TAG_GENERALIZED_TIME: u8 = 0x18;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_SET: u8 = 0x31;
pub const TAG_BOOLEAN: u8 = 0x01;

/// Object identifiers, already in their DER content encoding.
pub mod oid {
    pub const SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
    pub const DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01];
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub const ECDSA_WITH_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    pub const PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    pub const CONTENT_TYPE: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03];
    pub const MESSAGE_DIGEST: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04];
    pub const SIGNING_TIME: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x05];
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    pub const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0A];
    pub const COUNTRY: &[u8] = &[0x55, 0x04, 0x06];
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1D, 0x13];
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1D, 0x0F];
    pub const SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1D, 0x0E];
    /// id-aa-signingCertificateV2 (RFC 5035): the signed hash of the signer's certificate.
    pub const SIGNING_CERTIFICATE_V2: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x02, 0x2F];
    /// id-aa-timeStampToken (RFC 3161 appendix A): the signature timestamp, an unsigned attribute.
    pub const SIGNATURE_TIMESTAMP_TOKEN: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x02, 0x0E];
    /// id-ct-TSTInfo: the content a timestamp authority signs.
    pub const TST_INFO: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x01, 0x04];
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
}

/// One element: tag, length, content.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        let significant = &bytes[first..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

pub fn constructed(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

pub fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    constructed(TAG_SEQUENCE, parts)
}

/// A DER SET OF: elements sorted by their encodings.
pub fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    tlv(TAG_SET, &parts.concat())
}

pub fn object_id(content: &[u8]) -> Vec<u8> {
    tlv(TAG_OID, content)
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let first = magnitude.iter().position(|&b| b != 0).unwrap_or(magnitude.len());
    let mut content = Vec::with_capacity(magnitude.len() + 1);
    match magnitude.get(first) {
        None => content.push(0),
        Some(&b) => {
            if b & 0x80 != 0 {
                content.push(0);
            }
            content.extend_from_slice(&magnitude[first..]);
        }
    }
    tlv(TAG_INTEGER, &content)
}

pub fn small_integer(value: u8) -> Vec<u8> {
    unsigned_integer(&[value])
}

pub fn algorithm(oid_content: &[u8]) -> Vec<u8> {
    sequence(&[&object_id(oid_content)])
}

/// UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5).
pub fn time(at: &chrono::DateTime<chrono::Utc>) -> Vec<u8> {
    use chrono::Datelike;
    let year = at.year();
    if (1950..2050).contains(&year) {
        tlv(TAG_UTC_TIME, at.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(TAG_GENERALIZED_TIME, at.format("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

/// `YYYYMMDDHHMMSS[.fraction]Z` (GeneralizedTime as RFC 3161 and RFC 5280 write it), to the second.
pub fn read_generalized_time(content: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = std::str::from_utf8(content).ok()?;
    if !text.ends_with('Z') {
        return None;
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text.get(..14)?, "%Y%m%d%H%M%S").ok()?;
    Some(naive.and_utc())
}

/// The common name (2.5.4.3) in an X.501 `Name`, if it has one.
pub fn common_name(name: &[u8]) -> Option<String> {
    let mut rdns = Reader::new(name).expect(TAG_SEQUENCE)?.children();
    for _ in 0..32 {
        let rdn = rdns.next_element()?;
        let mut attributes = rdn.children();
        while let Some(attribute) = attributes.next_element() {
            let mut fields = attribute.children();
            if fields.expect(TAG_OID).is_some_and(|o| o.content == oid::COMMON_NAME) {
                return Some(String::from_utf8_lossy(fields.next_element()?.content).into_owned());
            }
        }
    }
    None
}

/// A reader over a run of DER elements.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

/// One element as read: its tag, its content, and its whole encoding.
#[derive(Clone, Copy, Debug)]
pub struct Element<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub encoded: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn next_element(&mut self) -> Option<Element<'a>> {
        let all = self.rest;
        let (&tag, after_tag) = all.split_first()?;
        if tag & 0x1F == 0x1F {
            return None; // multi-byte tags never occur in what we read
        }
        let (&first_len, after_len) = after_tag.split_first()?;
        let (len, after_header) = if first_len < 0x80 {
            (usize::from(first_len), after_len)
        } else {
            let count = usize::from(first_len & 0x7F);
            if count == 0 || count > 4 {
                return None;
            }
            let len_bytes = after_len.get(..count)?;
            let len = len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, after_len.get(count..)?)
        };
        let content = after_header.get(..len)?;
        let header_len = all.len() - after_header.len();
        let encoded = all.get(..header_len + len)?;
        self.rest = after_header.get(len..)?;
        Some(Element { tag, content, encoded })
    }

    /// The next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8) -> Option<Element<'a>> {
        let element = self.next_element()?;
        (element.tag == tag).then_some(element)
    }
}

impl<'a> Element<'a> {
    pub fn children(&self) -> Reader<'a> {
        Reader::new(self.content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let encoded = tlv(TAG_OCTET_STRING, &content);
            let element = Reader::new(&encoded).next_element().expect("reads back");
            assert_eq!(element.content.len(), len);
            assert_eq!(element.encoded.len(), encoded.len());
        }
    }

    #[test]
    fn integers_stay_positive() {
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(unsigned_integer(&[0, 0, 5]), vec![0x02, 0x01, 0x05]);
        assert_eq!(unsigned_integer(&[]), vec![0x02, 0x01, 0x00]);
    }

    #[test]
    fn truncated_input_reads_as_none() {
        assert!(Reader::new(&[0x30, 0x05, 0x01]).next_element().is_none());
        assert!(Reader::new(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).next_element().is_none());
        assert!(Reader::new(&[0x30]).next_element().is_none());
    }
}
