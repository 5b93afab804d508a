//! The der/x509-cert/cms decision (docs/stamping.md), measured: the CMS SignedData our stamp
//! carries, built by the hand-written DER of `stamping::cms::sign_detached` and by RustCrypto's
//! `cms` 0.3 types (`der` 0.8, `x509-cert` 0.3, `spki` 0.8 through its re-exports). A bench
//! binary: it prints numbers and asserts nothing about time.
//!
//! usage: `cd stamping-bench && cargo run --release --bin cms_encoding -- [RUNS]` (outside the workspace: see Cargo.toml)
//!
//! Both sides sign with the same P-256 key, deterministically (RFC 6979), so equal encodings
//! give equal bytes: the run first checks that the two SignedData are byte-identical, which is
//! what makes the timings comparable. "sign only" is the ECDSA signature over the same signed
//! attributes, the part both sides share; the rest is encoding.

use std::time::Instant;

use cms::cert::x509::Certificate;
use cms::cert::x509::attr::Attribute;
use cms::cert::x509::ext::pkix::name::GeneralName;
use cms::cert::x509::serial_number::SerialNumber;
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use cms::der::{Decode as _, Encode as _, Sequence, Tag};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos};
use cms::spki::AlgorithmIdentifierOwned;
use emeterai::stamping::{Issuer, cms as ours};
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;

const DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// RFC 5035 `IssuerSerial` (the crates have no ESS types: the attribute is declared here).
#[derive(Clone, Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// RFC 5035 `ESSCertIDv2`, hash algorithm left at its SHA-256 default (omitted, as DER wants).
#[derive(Clone, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

/// RFC 5035 `SigningCertificateV2` without policies.
#[derive(Clone, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// What the crates side computes once per issuer, as `Issuer` does for the hand-written side.
struct CrateIssuer {
    key: SigningKey,
    certificate: Certificate,
    signer: IssuerAndSerialNumber,
    signing_certificate_v2: Any,
}

impl CrateIssuer {
    fn new(issuer: &Issuer) -> CrateIssuer {
        let pem = issuer.key_pem().expect("a local key exports");
        let key = SigningKey::from_pkcs8_pem(&pem).expect("PKCS#8 key");
        let certificate = Certificate::from_der(issuer.certificate_der()).expect("certificate");
        let tbs = certificate.tbs_certificate();
        let signer = IssuerAndSerialNumber { issuer: tbs.issuer().clone(), serial_number: tbs.serial_number().clone() };
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(ours::sha256(&[issuer.certificate_der()]).to_vec()).expect("hash"),
                issuer_serial: IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(tbs.issuer().clone())],
                    serial_number: tbs.serial_number().clone(),
                },
            }],
        };
        let signing_certificate_v2 = Any::encode_from(&ess).expect("ESS encodes");
        CrateIssuer { key, certificate, signer, signing_certificate_v2 }
    }
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Attribute {
    Attribute { oid, values: SetOfVec::try_from(vec![value]).expect("one value") }
}

fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters: None }
}

/// The same SignedData as `stamping::cms::sign_detached` (B-B, no timestamp), with the crates.
fn sign_with_crates(issuer: &CrateIssuer, document_digest: &[u8; 32]) -> Vec<u8> {
    let signed_attrs = SetOfVec::try_from(vec![
        attribute(CONTENT_TYPE, Any::encode_from(&DATA).expect("oid")),
        attribute(MESSAGE_DIGEST, Any::new(Tag::OctetString, document_digest.to_vec()).expect("digest")),
        attribute(SIGNING_CERTIFICATE_V2, issuer.signing_certificate_v2.clone()),
    ])
    .expect("distinct attributes");
    let to_sign = signed_attrs.to_der().expect("attributes encode");
    let signature: p256::ecdsa::Signature = issuer.key.sign(&to_sign);
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(issuer.signer.clone()),
        digest_alg: algorithm(SHA256),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: algorithm(ECDSA_WITH_SHA256),
        signature: OctetString::new(signature.to_der().as_bytes()).expect("signature"),
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![algorithm(SHA256)]).expect("one algorithm"),
        encap_content_info: EncapsulatedContentInfo { econtent_type: DATA, econtent: None },
        certificates: Some(CertificateSet::try_from(vec![CertificateChoices::Certificate(issuer.certificate.clone())]).expect("one certificate")),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info]).expect("one signer"),
    };
    let content_info = ContentInfo { content_type: SIGNED_DATA, content: Any::encode_from(&signed_data).expect("SignedData encodes") };
    content_info.to_der().expect("ContentInfo encodes")
}

/// The signed attributes alone (both sides sign exactly these bytes).
fn signed_attributes_with_crates(issuer: &CrateIssuer, document_digest: &[u8; 32]) -> Vec<u8> {
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(vec![
        attribute(CONTENT_TYPE, Any::encode_from(&DATA).expect("oid")),
        attribute(MESSAGE_DIGEST, Any::new(Tag::OctetString, document_digest.to_vec()).expect("digest")),
        attribute(SIGNING_CERTIFICATE_V2, issuer.signing_certificate_v2.clone()),
    ])
    .expect("distinct attributes");
    signed_attrs.to_der().expect("attributes encode")
}

fn median_us(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn time_us(runs: usize, mut work: impl FnMut() -> usize) -> f64 {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(work());
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    median_us(samples)
}

fn main() {
    let runs: usize = std::env::args().skip(1).filter(|a| !a.starts_with("--")).find_map(|a| a.parse().ok()).unwrap_or(2000);
    let issuer = Issuer::generate(&mut rand::thread_rng()).expect("issuer");
    let crates = CrateIssuer::new(&issuer);
    let digest = ours::sha256(&[b"the bytes the /ByteRange covers"]);

    let hand_written = ours::sign_detached(&issuer, &digest).expect("local key signs");
    let with_crates = sign_with_crates(&crates, &digest);
    assert_eq!(hand_written, with_crates, "the two encoders must produce the same SignedData for the timings to compare");
    // The decoder agrees the hand-written bytes are one well-formed ContentInfo.
    ContentInfo::from_der(&hand_written).expect("the crates read our SignedData");

    let attributes = signed_attributes_with_crates(&crates, &digest);
    let hand_written_us = time_us(runs, || ours::sign_detached(&issuer, &digest).map(|c| c.len()).unwrap_or(0));
    let crates_us = time_us(runs, || sign_with_crates(&crates, &digest).len());
    let sign_only_us = time_us(runs, || {
        let signature: p256::ecdsa::Signature = crates.key.sign(&attributes);
        signature.to_der().as_bytes().len()
    });
    let crates_attributes_us = time_us(runs, || signed_attributes_with_crates(&crates, &digest).len());
    let decode_us = time_us(runs, || ContentInfo::from_der(&hand_written).map(|_| 1).unwrap_or(0));
    let result = serde_json::json!({
        "runs": runs,
        "signed_data_bytes": hand_written.len(),
        "byte_identical": true,
        "hand_written_sign_detached_median_us": hand_written_us,
        "crates_sign_detached_median_us": crates_us,
        "ecdsa_sign_only_median_us": sign_only_us,
        "hand_written_encoding_us": hand_written_us - sign_only_us,
        "crates_encoding_us": crates_us - sign_only_us,
        "crates_signed_attributes_only_us": crates_attributes_us,
        "crates_decode_content_info_us": decode_us,
    });
    println!("{result}");
}
