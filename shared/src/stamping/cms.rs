//! CMS (RFC 5652) detached SignedData for `adbe.pkcs7.detached`: build one over a document
//! digest, and check one back.

use p256::ecdsa::signature::Verifier as _;
use sha2::{Digest as _, Sha256};

use super::der::{self, oid};
use super::issuer::{CertificateFacts, Issuer, SignError};

/// A detached SignedData over `document_digest` (SHA-256 of the `/ByteRange` bytes), signed
/// by `issuer`, with content type, signing time and message digest as signed attributes.
pub fn sign_detached(
    issuer: &Issuer,
    document_digest: &[u8; 32],
    signed_at: &chrono::DateTime<chrono::Utc>,
) -> Result<Vec<u8>, SignError> {
    let attribute = |oid_content: &[u8], value: Vec<u8>| {
        der::sequence(&[&der::object_id(oid_content), &der::set_of(vec![value])])
    };
    let attributes = vec![
        attribute(oid::CONTENT_TYPE, der::object_id(oid::DATA)),
        attribute(oid::SIGNING_TIME, der::time(signed_at)),
        attribute(oid::MESSAGE_DIGEST, der::tlv(der::TAG_OCTET_STRING, document_digest)),
    ];
    // Signed as a SET OF (tag 0x31); stored with the [0] IMPLICIT tag.
    let signed_set = der::set_of(attributes);
    let signature = issuer.sign(&signed_set)?;
    let mut signed_attrs = signed_set;
    if let Some(tag) = signed_attrs.first_mut() {
        *tag = 0xA0;
    }

    let digest_algorithm = der::algorithm(oid::SHA256);
    let signer_info = der::sequence(&[
        &der::small_integer(1),
        issuer.issuer_and_serial(),
        &digest_algorithm,
        &signed_attrs,
        &der::algorithm(oid::ECDSA_WITH_SHA256),
        &der::tlv(der::TAG_OCTET_STRING, &signature),
    ]);
    let signed_data = der::sequence(&[
        &der::small_integer(1),
        &der::set_of(vec![digest_algorithm.clone()]),
        &der::sequence(&[&der::object_id(oid::DATA)]),
        &der::tlv(0xA0, issuer.certificate_der()),
        &der::set_of(vec![signer_info]),
    ]);
    Ok(der::sequence(&[&der::object_id(oid::SIGNED_DATA), &der::tlv(0xA0, &signed_data)]))
}

/// What checking a CMS signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmsCheck {
    /// The message digest matches and the ECDSA signature over the signed attributes verifies
    /// with the embedded signer certificate's key.
    pub valid: bool,
    /// The signer's certificate (DER), when one was found.
    pub signer_certificate: Option<Vec<u8>>,
}

/// Checks a detached SignedData against the SHA-256 of the signed bytes. Reads only the
/// ECDSA P-256 / SHA-256 shape we produce; anything else is reported invalid.
pub fn verify_detached(cms: &[u8], document_digest: &[u8; 32]) -> CmsCheck {
    match read_signed_data(cms) {
        Some(parsed) => {
            let certificate = parsed.certificate.to_vec();
            let valid = parsed.message_digest == document_digest && signature_verifies(&parsed);
            CmsCheck { valid, signer_certificate: Some(certificate) }
        }
        None => CmsCheck { valid: false, signer_certificate: None },
    }
}

struct ParsedSignedData<'a> {
    certificate: &'a [u8],
    signed_attrs_content: &'a [u8],
    message_digest: &'a [u8],
    signature: &'a [u8],
}

fn read_signed_data(cms: &[u8]) -> Option<ParsedSignedData<'_>> {
    let content_info = der::Reader::new(cms).expect(der::TAG_SEQUENCE)?;
    let mut ci = content_info.children();
    if ci.expect(der::TAG_OID)?.content != oid::SIGNED_DATA {
        return None;
    }
    let explicit = ci.expect(0xA0)?;
    let signed_data = explicit.children().expect(der::TAG_SEQUENCE)?;
    let mut sd = signed_data.children();
    sd.expect(der::TAG_INTEGER)?;
    sd.expect(der::TAG_SET)?;
    sd.expect(der::TAG_SEQUENCE)?;
    let mut next = sd.next_element()?;
    let mut certificate = None;
    if next.tag == 0xA0 {
        certificate = next.children().expect(der::TAG_SEQUENCE).map(|c| c.encoded);
        next = sd.next_element()?;
    }
    if next.tag == 0xA1 {
        next = sd.next_element()?; // CRLs
    }
    if next.tag != der::TAG_SET {
        return None;
    }
    let signer_info = next.children().expect(der::TAG_SEQUENCE)?;
    let mut si = signer_info.children();
    si.expect(der::TAG_INTEGER)?;
    si.next_element()?; // sid
    if si.expect(der::TAG_SEQUENCE)?.children().expect(der::TAG_OID)?.content != oid::SHA256 {
        return None;
    }
    let signed_attrs = si.expect(0xA0)?;
    if si.expect(der::TAG_SEQUENCE)?.children().expect(der::TAG_OID)?.content != oid::ECDSA_WITH_SHA256 {
        return None;
    }
    let signature = si.expect(der::TAG_OCTET_STRING)?.content;

    let mut message_digest = None;
    let mut attrs = signed_attrs.children();
    while let Some(attribute) = attrs.next_element() {
        let mut fields = attribute.children();
        let Some(attr_oid) = fields.expect(der::TAG_OID) else { continue };
        if attr_oid.content == oid::MESSAGE_DIGEST {
            let values = fields.expect(der::TAG_SET)?;
            message_digest = Some(values.children().expect(der::TAG_OCTET_STRING)?.content);
        }
    }
    Some(ParsedSignedData {
        certificate: certificate?,
        signed_attrs_content: signed_attrs.content,
        message_digest: message_digest?,
        signature,
    })
}

fn signature_verifies(parsed: &ParsedSignedData<'_>) -> bool {
    let Some(facts) = CertificateFacts::read(parsed.certificate) else { return false };
    let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(facts.public_key_point) else { return false };
    let Ok(signature) = p256::ecdsa::Signature::from_der(parsed.signature) else { return false };
    let signed_set = der::tlv(der::TAG_SET, parsed.signed_attrs_content);
    key.verify(&signed_set, &signature).is_ok()
}

pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_detects_a_changed_digest() {
        let issuer = Issuer::generate(&mut rand::thread_rng()).expect("issuer");
        let at = chrono::DateTime::from_timestamp(1_760_000_000, 0).expect("time");
        let digest = sha256(&[b"document"]);
        let cms = sign_detached(&issuer, &digest, &at).expect("local key signs");
        assert_eq!(cms, sign_detached(&issuer, &digest, &at).expect("signs"), "deterministic");
        let check = verify_detached(&cms, &digest);
        assert!(check.valid);
        assert_eq!(check.signer_certificate.as_deref(), Some(issuer.certificate_der()));
        assert!(!verify_detached(&cms, &sha256(&[b"other"])).valid);
        let mut tampered = cms.clone();
        let last = tampered.len() - 3;
        tampered[last] ^= 1;
        assert!(!verify_detached(&tampered, &digest).valid);
        assert!(!verify_detached(&cms[..cms.len() / 2], &digest).valid);
    }
}
