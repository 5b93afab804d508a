//! The issuer: the key that signs every e-Meterai and its certificate.
//!
//! On AWS the key stays in KMS ([`RemoteKey`], `crate::kms`) and only the certificate is
//! configured. The CLI and other hosts load both from PEM files named by `EMETERAI_ISSUER_KEY_FILE`
//! and `EMETERAI_ISSUER_CERT_FILE`. Local use generates an ECDSA P-256 key and a self-signed
//! certificate once under a data folder and reuses them from then on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use sha2::{Digest as _, Sha256};

use super::cms;
use super::der::{self, oid};
#[cfg(feature = "tsa-client")]
use super::timestamp::HttpTimestampAuthority;
use super::timestamp::TimestampAuthority;

pub const KEY_FILE_ENV: &str = "EMETERAI_ISSUER_KEY_FILE";
pub const CERT_FILE_ENV: &str = "EMETERAI_ISSUER_CERT_FILE";
pub const DATA_DIR_ENV: &str = "EMETERAI_DATA_DIR";
pub const ISSUER_DIR_ENV: &str = "EMETERAI_ISSUER_DIR";

/// The signature space in the PDF is fixed (`incremental::SIGNATURE_RESERVED_BYTES`); the
/// issuer's certificate and its chain travel inside it, and room stays for a timestamp token.
pub const MAX_CERTIFICATE_BYTES: usize = 8000;

const KEY_FILE_NAME: &str = "issuer-key.pem";
const CERT_FILE_NAME: &str = "issuer-cert.pem";

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the issuer key is not an ECDSA P-256 private key in PEM (PKCS#8 or SEC1)")]
    BadKey,
    #[error("the issuer certificate is not an X.509 certificate in PEM")]
    BadCertificate,
    #[error("the issuer certificate and its chain are larger than {MAX_CERTIFICATE_BYTES} bytes and would not fit the signature space")]
    CertificateTooLarge,
    #[error("the issuer certificate does not belong to the issuer key")]
    KeyCertificateMismatch,
    #[error("set both {KEY_FILE_ENV} and {CERT_FILE_ENV}, or neither")]
    HalfConfigured,
    #[error("the issuer key is held by a key service and cannot be exported")]
    KeyNotExportable,
    #[error("a key-service issuer key needs its certificate ({CERT_PEM_ENV} or {CERT_FILE_ENV})")]
    KeyServiceWithoutCertificate,
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// The certificate itself, as PEM text in the environment (on AWS: from a template parameter).
pub const CERT_PEM_ENV: &str = "EMETERAI_ISSUER_CERT_PEM";

/// A signing key held elsewhere (AWS KMS): the private key never enters this process.
pub trait RemoteKey: Send + Sync {
    /// The public key as a SEC1 point, read once when the key is connected.
    fn public_key_sec1(&self) -> &[u8];
    /// ECDSA P-256 over SHA-256 of `message`, DER-encoded. Called from a blocking thread.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// The key service could not sign (unreachable, throttled, denied): the stamp run is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the issuer's key could not sign: {0}")]
pub struct SignError(pub String);

#[derive(Clone)]
enum IssuerKey {
    Local(SigningKey),
    Remote(Arc<dyn RemoteKey>),
}

/// An issuer key with its certificate, ready to sign.
#[derive(Clone)]
pub struct Issuer {
    key: IssuerKey,
    certificate: Vec<u8>,
    /// The certificates above `certificate`, up to the root (carried in every signature so a
    /// verifier can build the path without fetching).
    chain: Vec<Vec<u8>>,
    /// The CMS `IssuerAndSerialNumber` naming `certificate`.
    issuer_and_serial: Vec<u8>,
    /// The ESS signing-certificate-v2 attribute value naming `certificate` (CAdES B-B).
    signing_certificate_v2: Vec<u8>,
    /// When set, every signature gets an RFC 3161 signature timestamp from it (PAdES B-T).
    timestamp_authority: Option<Arc<dyn TimestampAuthority>>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("certificate_len", &self.certificate.len())
            .field("chain_len", &self.chain.len())
            .field("timestamped", &self.timestamp_authority.is_some())
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// From a PEM private key (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`) and PEM
    /// certificates: the issuer's first, then its chain (each issuer after the one it certified).
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Issuer, IssuerError> {
        let secret = p256::SecretKey::from_pkcs8_pem(key_pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(key_pem))
            .map_err(|_| IssuerError::BadKey)?;
        let mut certificates = pem_bodies(cert_pem, "CERTIFICATE").into_iter();
        let certificate = certificates.next().ok_or(IssuerError::BadCertificate)?;
        Issuer::from_parts(SigningKey::from(secret), certificate)?.with_chain(certificates.collect())
    }

    /// The same issuer, carrying `chain` (the certificates above its own) in its signatures.
    pub fn with_chain(mut self, chain: Vec<Vec<u8>>) -> Result<Issuer, IssuerError> {
        if chain.iter().any(|c| CertificateFacts::read(c).is_none()) {
            return Err(IssuerError::BadCertificate);
        }
        if self.certificate.len() + chain.iter().map(Vec::len).sum::<usize>() > MAX_CERTIFICATE_BYTES {
            return Err(IssuerError::CertificateTooLarge);
        }
        self.chain = chain;
        Ok(self)
    }

    /// The same issuer, timestamping every signature with `authority` (PAdES B-T).
    pub fn with_timestamp_authority(mut self, authority: Arc<dyn TimestampAuthority>) -> Issuer {
        self.timestamp_authority = Some(authority);
        self
    }

    /// The same issuer with the authority named by `EMETERAI_TSA_URL`, when that is set. Only
    /// with the HTTP client: a build without it must not ignore a configured authority quietly.
    #[cfg(feature = "tsa-client")]
    pub fn with_timestamp_authority_from_env(self) -> Issuer {
        match HttpTimestampAuthority::from_env() {
            Some(authority) => self.with_timestamp_authority(Arc::new(authority)),
            None => self,
        }
    }

    pub fn from_pem_files(key_file: &Path, cert_file: &Path) -> Result<Issuer, IssuerError> {
        Issuer::from_pem(&read_text(key_file)?, &read_text(cert_file)?)
    }

    /// The issuer named by `EMETERAI_ISSUER_KEY_FILE` / `EMETERAI_ISSUER_CERT_FILE`, when set.
    pub fn from_env() -> Result<Option<Issuer>, IssuerError> {
        let key = std::env::var_os(KEY_FILE_ENV).filter(|v| !v.is_empty());
        let cert = std::env::var_os(CERT_FILE_ENV).filter(|v| !v.is_empty());
        match (key, cert) {
            (Some(key), Some(cert)) => Issuer::from_pem_files(Path::new(&key), Path::new(&cert)).map(Some),
            (None, None) => Ok(None),
            _ => Err(IssuerError::HalfConfigured),
        }
    }

    /// The configured issuer, or else the local one under [`Issuer::default_local_dir`], with
    /// the timestamp authority named by `EMETERAI_TSA_URL` when set.
    #[cfg(feature = "tsa-client")]
    pub fn from_env_or_local() -> Result<Issuer, IssuerError> {
        let issuer = match Issuer::from_env()? {
            Some(issuer) => issuer,
            None => Issuer::load_or_create_local(&Issuer::default_local_dir())?,
        };
        Ok(issuer.with_timestamp_authority_from_env())
    }

    /// `$EMETERAI_ISSUER_DIR` (on AWS, the issuer layer's `/opt/issuer`), else
    /// `$EMETERAI_DATA_DIR/issuer`, else `$HOME/.local/share/emeterai/issuer`, else `.local/issuer`
    /// under the current directory.
    pub fn default_local_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os(ISSUER_DIR_ENV).filter(|v| !v.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
            return PathBuf::from(dir).join("issuer");
        }
        if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(home).join(".local/share/emeterai/issuer");
        }
        PathBuf::from(".local/issuer")
    }

    /// Loads the key and certificate kept in `dir`, creating them the first time. Concurrent
    /// first calls agree on one key: each writes to a temporary file and the first hard link wins.
    pub fn load_or_create_local(dir: &Path) -> Result<Issuer, IssuerError> {
        let key_path = dir.join(KEY_FILE_NAME);
        let cert_path = dir.join(CERT_FILE_NAME);
        if key_path.exists() && cert_path.exists() {
            return Issuer::from_pem_files(&key_path, &cert_path);
        }
        std::fs::create_dir_all(dir).map_err(|source| IssuerError::Io { path: dir.to_owned(), source })?;
        let issuer = Issuer::generate(&mut rand::thread_rng())?;
        let key_pem = issuer.key_pem()?;
        let cert_pem = pem_encode("CERTIFICATE", &issuer.certificate);
        // The key and certificate must stay a pair: publish both under one unique temporary
        // directory name, then move the directory's files into place only if no key exists yet.
        let unique = format!(".tmp-{}-{}", std::process::id(), hex::encode(&Sha256::digest(&issuer.certificate)[..6]));
        let tmp_key = dir.join(format!("{unique}-key"));
        let tmp_cert = dir.join(format!("{unique}-cert"));
        write_private(&tmp_key, key_pem.as_bytes())?;
        std::fs::write(&tmp_cert, cert_pem.as_bytes()).map_err(|source| IssuerError::Io { path: tmp_cert.clone(), source })?;
        let won = std::fs::hard_link(&tmp_key, &key_path).is_ok();
        if won {
            std::fs::rename(&tmp_cert, &cert_path).map_err(|source| IssuerError::Io { path: cert_path.clone(), source })?;
        }
        let _ = std::fs::remove_file(&tmp_key);
        let _ = std::fs::remove_file(&tmp_cert);
        if won {
            return Ok(issuer);
        }
        // Another process created the pair first: wait briefly for its certificate.
        for _ in 0..50 {
            if cert_path.exists() {
                return Issuer::from_pem_files(&key_path, &cert_path);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Issuer::from_pem_files(&key_path, &cert_path)
    }

    /// A fresh key with a self-signed certificate valid 2000..2099.
    pub fn generate(rng: &mut impl rand::RngCore) -> Result<Issuer, IssuerError> {
        let key = loop {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                break key;
            }
        };
        let point = key.verifying_key().to_sec1_bytes();
        let certificate = self_signed_certificate(&point, "e-Meterai Local Issuer", |tbs| {
            let signature: p256::ecdsa::Signature = key.sign(tbs);
            Ok(signature.to_der().as_bytes().to_vec())
        })?;
        Issuer::from_parts(key, certificate)
    }

    /// A key held by a key service, with the certificate the operator's CA issued for it.
    pub fn with_remote_key(key: Arc<dyn RemoteKey>, certificate: Vec<u8>) -> Result<Issuer, IssuerError> {
        let point = key.public_key_sec1().to_vec();
        Issuer::checked(IssuerKey::Remote(key), &point, certificate)
    }

    /// A key held by a key service, with a self-signed certificate made through it (the local
    /// stack and tests; on AWS the certificate comes from the operator's CA).
    pub fn self_signed_remote(key: Arc<dyn RemoteKey>) -> Result<Issuer, IssuerError> {
        let point = key.public_key_sec1().to_vec();
        let certificate = self_signed_certificate(&point, "e-Meterai KMS Issuer (self-signed)", |tbs| key.sign(tbs))?;
        Issuer::with_remote_key(key, certificate)
    }

    fn from_parts(key: SigningKey, certificate: Vec<u8>) -> Result<Issuer, IssuerError> {
        let point = key.verifying_key().to_sec1_bytes();
        Issuer::checked(IssuerKey::Local(key), &point, certificate)
    }

    fn checked(key: IssuerKey, own_point: &[u8], certificate: Vec<u8>) -> Result<Issuer, IssuerError> {
        if certificate.len() > MAX_CERTIFICATE_BYTES {
            return Err(IssuerError::CertificateTooLarge);
        }
        let facts = CertificateFacts::read(&certificate).ok_or(IssuerError::BadCertificate)?;
        if facts.public_key_point != own_point {
            return Err(IssuerError::KeyCertificateMismatch);
        }
        let issuer_and_serial = der::sequence(&[facts.issuer_name, facts.serial]);
        let signing_certificate_v2 = cms::signing_certificate_v2(&certificate, &facts);
        Ok(Issuer { key, certificate, chain: Vec::new(), issuer_and_serial, signing_certificate_v2, timestamp_authority: None })
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// The certificates above the issuer's own, as configured.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    pub fn timestamp_authority(&self) -> Option<&dyn TimestampAuthority> {
        self.timestamp_authority.as_deref()
    }

    pub(crate) fn signing_certificate_v2(&self) -> &[u8] {
        &self.signing_certificate_v2
    }

    pub fn certificate_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.certificate)
    }

    pub fn key_pem(&self) -> Result<String, IssuerError> {
        let IssuerKey::Local(key) = &self.key else { return Err(IssuerError::KeyNotExportable) };
        let secret = p256::SecretKey::from(key);
        secret.to_pkcs8_pem(LineEnding::LF).map(|pem| pem.to_string()).map_err(|_| IssuerError::BadKey)
    }

    pub(crate) fn issuer_and_serial(&self) -> &[u8] {
        &self.issuer_and_serial
    }

    /// ECDSA P-256 over SHA-256 of `message`, DER-encoded. A local key signs deterministically
    /// (RFC 6979); a key service may not, which is why a stamp run keeps its output once written.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.key {
            IssuerKey::Local(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                Ok(signature.to_der().as_bytes().to_vec())
            }
            IssuerKey::Remote(key) => key.sign(message),
        }
    }
}

/// The configured certificate (DER): `EMETERAI_ISSUER_CERT_PEM` (the PEM text), else the file
/// named by `EMETERAI_ISSUER_CERT_FILE`; `None` when neither is set.
pub fn certificate_from_env() -> Result<Option<Vec<u8>>, IssuerError> {
    Ok(certificates_from_env()?.and_then(|certificates| certificates.into_iter().next()))
}

/// The configured certificates (DER), the issuer's first and then its chain, from the same
/// place as [`certificate_from_env`].
pub fn certificates_from_env() -> Result<Option<Vec<Vec<u8>>>, IssuerError> {
    let pem = if let Some(pem) = std::env::var(CERT_PEM_ENV).ok().filter(|v| !v.trim().is_empty()) {
        pem
    } else if let Some(path) = std::env::var_os(CERT_FILE_ENV).filter(|v| !v.is_empty()) {
        read_text(Path::new(&path))?
    } else {
        return Ok(None);
    };
    let certificates = pem_bodies(&pem, "CERTIFICATE");
    if certificates.is_empty() {
        return Err(IssuerError::BadCertificate);
    }
    Ok(Some(certificates))
}

/// What we need out of an X.509 certificate.
pub(crate) struct CertificateFacts<'a> {
    pub serial: &'a [u8],
    pub issuer_name: &'a [u8],
    pub subject_name: &'a [u8],
    /// The SEC1 point of an EC public key (the subject public key bits).
    pub public_key_point: &'a [u8],
}

impl<'a> CertificateFacts<'a> {
    pub fn read(certificate: &'a [u8]) -> Option<CertificateFacts<'a>> {
        let cert = der::Reader::new(certificate).expect(der::TAG_SEQUENCE)?;
        let tbs = cert.children().expect(der::TAG_SEQUENCE)?;
        let mut fields = tbs.children();
        let mut first = fields.next_element()?;
        if first.tag == 0xA0 {
            first = fields.next_element()?;
        }
        if first.tag != der::TAG_INTEGER {
            return None;
        }
        let _signature_algorithm = fields.expect(der::TAG_SEQUENCE)?;
        let issuer_name = fields.expect(der::TAG_SEQUENCE)?;
        let _validity = fields.expect(der::TAG_SEQUENCE)?;
        let subject = fields.expect(der::TAG_SEQUENCE)?;
        let spki = fields.expect(der::TAG_SEQUENCE)?;
        let mut spki_fields = spki.children();
        let _algorithm = spki_fields.expect(der::TAG_SEQUENCE)?;
        let bits = spki_fields.expect(der::TAG_BIT_STRING)?;
        let (&unused, point) = bits.content.split_first()?;
        if unused != 0 {
            return None;
        }
        Some(CertificateFacts {
            serial: first.encoded,
            issuer_name: issuer_name.encoded,
            subject_name: subject.encoded,
            public_key_point: point,
        })
    }
}

fn self_signed_certificate(
    point: &[u8],
    common_name: &str,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, SignError>,
) -> Result<Vec<u8>, SignError> {
    let point_digest = Sha256::digest(point);
    let mut serial = [0u8; 16];
    serial.copy_from_slice(&point_digest[..16]);
    serial[0] &= 0x7F;

    let name = der::sequence(&[
        &rdn(oid::COUNTRY, der::TAG_PRINTABLE_STRING, "ID"),
        &rdn(oid::ORGANIZATION, der::TAG_UTF8_STRING, "e-Meterai"),
        &rdn(oid::COMMON_NAME, der::TAG_UTF8_STRING, common_name),
    ]);
    let not_before = chrono::DateTime::from_timestamp(946_684_800, 0).unwrap_or_default(); // 2000-01-01
    let not_after = chrono::DateTime::from_timestamp(4_102_444_799, 0).unwrap_or_default(); // 2099-12-31
    let validity = der::sequence(&[&der::time(&not_before), &der::time(&not_after)]);
    let spki = ec_public_key_info(point);
    let critical = der::tlv(der::TAG_BOOLEAN, &[0xFF]);
    let basic_constraints = der::sequence(&[
        &der::object_id(oid::BASIC_CONSTRAINTS),
        &critical,
        &der::tlv(der::TAG_OCTET_STRING, &der::sequence(&[&der::tlv(der::TAG_BOOLEAN, &[0xFF])])),
    ]);
    // digitalSignature, nonRepudiation, keyCertSign
    let key_usage = der::sequence(&[
        &der::object_id(oid::KEY_USAGE),
        &critical,
        &der::tlv(der::TAG_OCTET_STRING, &der::tlv(der::TAG_BIT_STRING, &[0x02, 0xC4])),
    ]);
    let subject_key_id = der::sequence(&[
        &der::object_id(oid::SUBJECT_KEY_IDENTIFIER),
        &der::tlv(der::TAG_OCTET_STRING, &der::tlv(der::TAG_OCTET_STRING, &point_digest[..20])),
    ]);
    let extensions = der::tlv(0xA3, &der::sequence(&[&basic_constraints, &key_usage, &subject_key_id]));
    let signature_algorithm = der::algorithm(oid::ECDSA_WITH_SHA256);
    let tbs = der::sequence(&[
        &der::tlv(0xA0, &der::small_integer(2)),
        &der::unsigned_integer(&serial),
        &signature_algorithm,
        &name,
        &validity,
        &name,
        &spki,
        &extensions,
    ]);
    let signature = sign(&tbs)?;
    let signature_bits = [&[0u8][..], &signature].concat();
    Ok(der::sequence(&[&tbs, &signature_algorithm, &der::tlv(der::TAG_BIT_STRING, &signature_bits)]))
}

/// Longest subject attribute accepted in a certification request (X.520's upper bound for a
/// common name and an organization name).
pub const MAX_SUBJECT_ATTRIBUTE_CHARS: usize = 64;

/// A PKCS#10 certification request (RFC 2986) for the P-256 key whose SEC1 point is `point`, with
/// subject `C=ID, O=organization, CN=common_name`, signed with ECDSA SHA-256 by `sign` over the
/// DER request info: what the operator's CA certifies, for a key it never sees (KMS holds it).
pub fn certification_request(
    point: &[u8],
    organization: &str,
    common_name: &str,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, SignError>,
) -> Result<Vec<u8>, SignError> {
    for (what, value) in [("organization", organization), ("common name", common_name)] {
        let chars = value.chars().count();
        if chars == 0 || chars > MAX_SUBJECT_ATTRIBUTE_CHARS || value.chars().any(char::is_control) {
            return Err(SignError(format!("the {what} must be 1 to {MAX_SUBJECT_ATTRIBUTE_CHARS} printable characters")));
        }
    }
    let subject = der::sequence(&[
        &rdn(oid::COUNTRY, der::TAG_PRINTABLE_STRING, "ID"),
        &rdn(oid::ORGANIZATION, der::TAG_UTF8_STRING, organization),
        &rdn(oid::COMMON_NAME, der::TAG_UTF8_STRING, common_name),
    ]);
    // No attributes (no extension request): the CA decides the certificate's extensions.
    let attributes = der::tlv(0xA0, &[]);
    let info = der::sequence(&[&der::small_integer(0), &subject, &ec_public_key_info(point), &attributes]);
    let signature = sign(&info)?;
    Ok(der::sequence(&[
        &info,
        &der::algorithm(oid::ECDSA_WITH_SHA256),
        &der::tlv(der::TAG_BIT_STRING, &[&[0u8][..], &signature].concat()),
    ]))
}

/// `-----BEGIN CERTIFICATE REQUEST-----` armour for [`certification_request`]'s DER.
pub fn certification_request_pem(der_bytes: &[u8]) -> String {
    pem_encode("CERTIFICATE REQUEST", der_bytes)
}

/// SubjectPublicKeyInfo of a P-256 public key (id-ecPublicKey, prime256v1).
fn ec_public_key_info(point: &[u8]) -> Vec<u8> {
    der::sequence(&[
        &der::sequence(&[&der::object_id(oid::EC_PUBLIC_KEY), &der::object_id(oid::PRIME256V1)]),
        &der::tlv(der::TAG_BIT_STRING, &[&[0u8][..], point].concat()),
    ])
}

fn rdn(attribute: &[u8], string_tag: u8, value: &str) -> Vec<u8> {
    der::set_of(vec![der::sequence(&[&der::object_id(attribute), &der::tlv(string_tag, value.as_bytes())])])
}

fn read_text(path: &Path) -> Result<String, IssuerError> {
    std::fs::read_to_string(path).map_err(|source| IssuerError::Io { path: path.to_owned(), source })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IssuerError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let io = |source| IssuerError::Io { path: path.to_owned(), source };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)
}

pub(crate) fn pem_encode(label: &str, der_bytes: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der_bytes);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every `label` block in `pem`, in order (at most 16; unreadable blocks are skipped).
pub fn pem_bodies(pem: &str, label: &str) -> Vec<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let mut bodies = Vec::new();
    let mut rest = pem;
    while bodies.len() < 16 {
        let Some(at) = rest.find(&begin) else { break };
        let block = &rest[at..];
        if let Some(body) = pem_body(block, label) {
            bodies.push(body);
        }
        rest = &block[begin.len()..];
    }
    bodies
}

pub fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem.get(start..)?.find(&end)?;
    let body: String = pem.get(start..stop)?.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_issuer_round_trips_through_pem() {
        let issuer = Issuer::generate(&mut rand::thread_rng()).expect("generates");
        let again = Issuer::from_pem(&issuer.key_pem().expect("pem"), &issuer.certificate_pem()).expect("loads");
        assert_eq!(again.certificate_der(), issuer.certificate_der());
        assert_eq!(again.sign(b"x"), issuer.sign(b"x"), "RFC 6979 signatures are deterministic");
    }

    #[test]
    fn mismatched_key_and_certificate_are_refused() {
        let one = Issuer::generate(&mut rand::thread_rng()).expect("generates");
        let other = Issuer::generate(&mut rand::thread_rng()).expect("generates");
        let mixed = Issuer::from_pem(&one.key_pem().expect("pem"), &other.certificate_pem());
        assert!(matches!(mixed, Err(IssuerError::KeyCertificateMismatch)));
    }

    #[test]
    fn local_issuer_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("emeterai-issuer-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Issuer::load_or_create_local(&dir).expect("creates");
        let second = Issuer::load_or_create_local(&dir).expect("reuses");
        assert_eq!(first.certificate_der(), second.certificate_der());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
