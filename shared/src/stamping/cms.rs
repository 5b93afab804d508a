//! CMS (RFC 5652) detached SignedData in the CAdES baseline shape PAdES asks for
//! (`ETSI.CAdES.detached`, ETSI EN 319 122-1 B-B): build one over a document digest, and check
//! one back. With a timestamp authority configured, the SignerInfo also carries an RFC 3161
//! signature timestamp over its signature value (B-T).

use p256::ecdsa::signature::Verifier as _;
use sha2::{Digest as _, Sha256};

use super::der::{self, Element, oid};
use super::issuer::{CertificateFacts, Issuer, SignError};
use super::timestamp::{self, TimestampError, TimestampFacts};

/// Most certificates read from one SignedData (signer, chain, a timestamp authority's chain).
const MAX_CERTIFICATES_READ: usize = 16;

/// Why no signature could be made. Neither is the document's fault: the run is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignFailure {
    #[error(transparent)]
    Signer(#[from] SignError),
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
}

/// A detached SignedData over `document_digest` (SHA-256 of the `/ByteRange` bytes), signed
/// by `issuer`. Signed attributes: content type, message digest and ESS signing-certificate-v2;
/// no signing-time attribute (PAdES puts the claimed time in the signature dictionary's `/M`
/// and forbids the attribute). The certificates are the issuer's and its chain. When the issuer
/// has a timestamp authority, its token over the signature value is added as the unsigned
/// signature-timestamp attribute.
pub fn sign_detached(issuer: &Issuer, document_digest: &[u8; 32]) -> Result<Vec<u8>, SignFailure> {
    let attribute = |oid_content: &[u8], value: Vec<u8>| {
        der::sequence(&[&der::object_id(oid_content), &der::set_of(vec![value])])
    };
    let attributes = vec![
        attribute(oid::CONTENT_TYPE, der::object_id(oid::DATA)),
        attribute(oid::MESSAGE_DIGEST, der::tlv(der::TAG_OCTET_STRING, document_digest)),
        attribute(oid::SIGNING_CERTIFICATE_V2, issuer.signing_certificate_v2().to_vec()),
    ];
    // Signed as a SET OF (tag 0x31); stored with the [0] IMPLICIT tag.
    let signed_set = der::set_of(attributes);
    let signature = issuer.sign(&signed_set)?;
    let mut signed_attrs = signed_set;
    if let Some(tag) = signed_attrs.first_mut() {
        *tag = 0xA0;
    }

    let digest_algorithm = der::algorithm(oid::SHA256);
    let signature_value = der::tlv(der::TAG_OCTET_STRING, &signature);
    let mut signer_fields: Vec<&[u8]> = vec![
        &[0x02, 0x01, 0x01], // version 1: the signer is named by issuer and serial
        issuer.issuer_and_serial(),
        &digest_algorithm,
        &signed_attrs,
        &[0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02], // ecdsa-with-SHA256
        &signature_value,
    ];
    let unsigned_attrs;
    if let Some(authority) = issuer.timestamp_authority() {
        // RFC 3161 appendix A: the token's imprint is the hash of the signature value's octets.
        let token = authority.timestamp(&sha256(&[&signature]))?;
        let token_attribute = attribute(oid::SIGNATURE_TIMESTAMP_TOKEN, token);
        unsigned_attrs = der::tlv(0xA1, &token_attribute);
        signer_fields.push(&unsigned_attrs);
    }
    let signer_info = der::sequence(&signer_fields);

    let certificates: Vec<u8> = std::iter::once(issuer.certificate_der())
        .chain(issuer.chain().iter().map(Vec::as_slice))
        .flat_map(|c| c.iter().copied())
        .collect();
    let signed_data = der::sequence(&[
        &der::small_integer(1),
        &der::set_of(vec![digest_algorithm.clone()]),
        &der::sequence(&[&der::object_id(oid::DATA)]),
        &der::tlv(0xA0, &certificates),
        &der::set_of(vec![signer_info]),
    ]);
    Ok(der::sequence(&[&der::object_id(oid::SIGNED_DATA), &der::tlv(0xA0, &signed_data)]))
}

/// What checking a CMS signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmsCheck {
    /// The message digest matches, the signature over the signed attributes verifies with the
    /// signer certificate's key, and an ESS signing-certificate-v2 attribute, if present, names
    /// that certificate.
    pub valid: bool,
    /// The signer's certificate (DER), when one was found.
    pub signer_certificate: Option<Vec<u8>>,
    /// The CAdES baseline B-B attributes are there: ESS signing-certificate-v2 naming the signer
    /// certificate, and no signing-time attribute.
    pub cades_baseline: bool,
    /// The signature timestamp (unsigned attribute), when there is one.
    pub timestamp: Option<TimestampFacts>,
}

/// Checks a detached SignedData against the SHA-256 of the signed bytes. Reads only the
/// ECDSA P-256 / SHA-256 shape we produce; anything else is reported invalid.
pub fn verify_detached(cms: &[u8], document_digest: &[u8; 32]) -> CmsCheck {
    let invalid = CmsCheck { valid: false, signer_certificate: None, cades_baseline: false, timestamp: None };
    let Some(parsed) = read_signed_data(cms) else { return invalid };
    let Some(signer) = parsed.signer_certificate() else { return invalid };
    let signer_info = &parsed.signer;
    let Some(signed_attrs) = signer_info.signed_attrs else {
        return CmsCheck { signer_certificate: Some(signer.to_vec()), ..invalid };
    };
    let message_digest = attribute_value(signed_attrs, oid::MESSAGE_DIGEST)
        .filter(|v| v.tag == der::TAG_OCTET_STRING)
        .map(|v| v.content);
    let ess = attribute_value(signed_attrs, oid::SIGNING_CERTIFICATE_V2);
    let ess_matches = ess.map(|value| ess_names_certificate(value, signer));
    let has_signing_time = attribute_value(signed_attrs, oid::SIGNING_TIME).is_some();
    let valid = signer_info.digest_algorithm == oid::SHA256
        && message_digest == Some(document_digest.as_slice())
        && ess_matches != Some(false)
        && signature_verifies(signer, signer_info.signature_algorithm, &retag_as_set(signed_attrs), signer_info.signature)
            == Some(true);
    let timestamp = signer_info
        .unsigned_attrs
        .and_then(|attrs| attribute_value(attrs, oid::SIGNATURE_TIMESTAMP_TOKEN))
        .map(|token| timestamp::read_token(token.encoded, Some(&sha256(&[signer_info.signature]))));
    CmsCheck {
        valid,
        signer_certificate: Some(signer.to_vec()),
        cades_baseline: ess_matches == Some(true) && !has_signing_time,
        timestamp,
    }
}

/// The parts of a SignedData this module and the timestamp reader look at.
pub(crate) struct SignedDataView<'a> {
    pub content_type: &'a [u8],
    /// The encapsulated content's octets (absent in a detached signature).
    pub content: Option<&'a [u8]>,
    pub certificates: Vec<&'a [u8]>,
    pub signer: SignerInfoView<'a>,
}

pub(crate) struct SignerInfoView<'a> {
    pub sid: Element<'a>,
    pub digest_algorithm: &'a [u8],
    pub signed_attrs: Option<Element<'a>>,
    pub signature_algorithm: &'a [u8],
    pub signature: &'a [u8],
    pub unsigned_attrs: Option<Element<'a>>,
}

impl<'a> SignedDataView<'a> {
    /// The certificate the signer info names by issuer and serial (else the first one).
    pub fn signer_certificate(&self) -> Option<&'a [u8]> {
        let named = self.certificates.iter().copied().find(|certificate| {
            CertificateFacts::read(certificate).is_some_and(|facts| {
                self.signer.sid.tag == der::TAG_SEQUENCE
                    && self.signer.sid.content.len() == facts.issuer_name.len() + facts.serial.len()
                    && self.signer.sid.content.starts_with(facts.issuer_name)
                    && self.signer.sid.content.ends_with(facts.serial)
            })
        });
        named.or_else(|| self.certificates.first().copied())
    }
}

/// Reads a ContentInfo holding a SignedData with one signer info.
pub(crate) fn read_signed_data(cms: &[u8]) -> Option<SignedDataView<'_>> {
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
    let encapsulated = sd.expect(der::TAG_SEQUENCE)?;
    let mut encap = encapsulated.children();
    let content_type = encap.expect(der::TAG_OID)?.content;
    let content = match encap.next_element() {
        Some(wrapper) if wrapper.tag == 0xA0 => Some(wrapper.children().expect(der::TAG_OCTET_STRING)?.content),
        _ => None,
    };
    let mut next = sd.next_element()?;
    let mut certificates = Vec::new();
    if next.tag == 0xA0 {
        let mut certs = next.children();
        while let Some(certificate) = certs.next_element() {
            if certificates.len() == MAX_CERTIFICATES_READ {
                break;
            }
            if certificate.tag == der::TAG_SEQUENCE {
                certificates.push(certificate.encoded);
            }
        }
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
    let sid = si.next_element()?;
    let digest_algorithm = si.expect(der::TAG_SEQUENCE)?.children().expect(der::TAG_OID)?.content;
    let mut next = si.next_element()?;
    let mut signed_attrs = None;
    if next.tag == 0xA0 {
        signed_attrs = Some(next);
        next = si.next_element()?;
    }
    if next.tag != der::TAG_SEQUENCE {
        return None;
    }
    let signature_algorithm = next.children().expect(der::TAG_OID)?.content;
    let signature = si.expect(der::TAG_OCTET_STRING)?.content;
    let unsigned_attrs = si.next_element().filter(|e| e.tag == 0xA1);
    Some(SignedDataView {
        content_type,
        content,
        certificates,
        signer: SignerInfoView { sid, digest_algorithm, signed_attrs, signature_algorithm, signature, unsigned_attrs },
    })
}

/// The first value of the attribute `attribute_oid` in a set of attributes (signed or unsigned).
pub(crate) fn attribute_value<'a>(attributes: Element<'a>, attribute_oid: &[u8]) -> Option<Element<'a>> {
    let mut attrs = attributes.children();
    for _ in 0..64 {
        let attribute = attrs.next_element()?;
        let mut fields = attribute.children();
        if fields.expect(der::TAG_OID).is_some_and(|o| o.content == attribute_oid) {
            return fields.expect(der::TAG_SET)?.children().next_element();
        }
    }
    None
}

/// Signed attributes are signed as a DER SET OF, stored with the [0] IMPLICIT tag.
pub(crate) fn retag_as_set(signed_attrs: Element<'_>) -> Vec<u8> {
    der::tlv(der::TAG_SET, signed_attrs.content)
}

/// `Some(true/false)` for the algorithms we check (ECDSA P-256 with SHA-256); `None` for others.
pub(crate) fn signature_verifies(certificate: &[u8], algorithm: &[u8], message: &[u8], signature: &[u8]) -> Option<bool> {
    if algorithm != oid::ECDSA_WITH_SHA256 {
        return None;
    }
    let facts = CertificateFacts::read(certificate)?;
    let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(facts.public_key_point) else { return Some(false) };
    let Ok(signature) = p256::ecdsa::Signature::from_der(signature) else { return Some(false) };
    Some(key.verify(message, &signature).is_ok())
}

/// Whether a SigningCertificateV2 value's first ESSCertIDv2 is the SHA-256 of `certificate`.
fn ess_names_certificate(value: Element<'_>, certificate: &[u8]) -> bool {
    let first_id = value.children().expect(der::TAG_SEQUENCE).and_then(|certs| certs.children().expect(der::TAG_SEQUENCE));
    let Some(first_id) = first_id else { return false };
    let mut fields = first_id.children();
    let Some(mut next) = fields.next_element() else { return false };
    if next.tag == der::TAG_SEQUENCE {
        // hashAlgorithm present: only SHA-256 (the default) is read.
        if next.children().expect(der::TAG_OID).map(|o| o.content) != Some(oid::SHA256) {
            return false;
        }
        let Some(hash) = fields.next_element() else { return false };
        next = hash;
    }
    next.tag == der::TAG_OCTET_STRING && next.content == sha256(&[certificate])
}

/// The ESS signing-certificate-v2 value naming `certificate` (SHA-256, the default algorithm,
/// left out as DER requires) with its issuer and serial.
pub(crate) fn signing_certificate_v2(certificate: &[u8], facts: &CertificateFacts<'_>) -> Vec<u8> {
    let issuer_serial = der::sequence(&[
        &der::sequence(&[&der::tlv(0xA4, facts.issuer_name)]), // GeneralNames: one directoryName
        facts.serial,
    ]);
    let cert_id = der::sequence(&[&der::tlv(der::TAG_OCTET_STRING, &sha256(&[certificate])), &issuer_serial]);
    der::sequence(&[&der::sequence(&[&cert_id])])
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
        let digest = sha256(&[b"document"]);
        let cms = sign_detached(&issuer, &digest).expect("local key signs");
        assert_eq!(cms, sign_detached(&issuer, &digest).expect("signs"), "deterministic");
        let check = verify_detached(&cms, &digest);
        assert!(check.valid);
        assert!(check.cades_baseline, "ESS signing-certificate-v2 present, no signing-time");
        assert_eq!(check.timestamp, None);
        assert_eq!(check.signer_certificate.as_deref(), Some(issuer.certificate_der()));
        assert!(!verify_detached(&cms, &sha256(&[b"other"])).valid);
        let mut tampered = cms.clone();
        let last = tampered.len() - 3;
        tampered[last] ^= 1;
        assert!(!verify_detached(&tampered, &digest).valid);
        assert!(!verify_detached(&cms[..cms.len() / 2], &digest).valid);
    }

    #[test]
    fn the_ess_attribute_must_name_the_signer_certificate() {
        let issuer = Issuer::generate(&mut rand::thread_rng()).expect("issuer");
        let other = Issuer::generate(&mut rand::thread_rng()).expect("issuer");
        let ours = issuer.signing_certificate_v2();
        let theirs = other.signing_certificate_v2();
        let ours = der::Reader::new(ours).next_element().expect("DER");
        let theirs = der::Reader::new(theirs).next_element().expect("DER");
        assert!(ess_names_certificate(ours, issuer.certificate_der()));
        assert!(!ess_names_certificate(theirs, issuer.certificate_der()));
    }
}
