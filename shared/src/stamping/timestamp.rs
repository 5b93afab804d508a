//! RFC 3161 signature timestamps: asking a timestamp authority (TSA) for a token over a
//! signature value, and reading a token back (time, authority, whether it holds).
//!
//! `EMETERAI_TSA_URL` names the authority. With it set a stamp is PAdES B-T and no longer
//! byte-for-byte deterministic (the token carries the authority's time and our nonce).

#[cfg(feature = "tsa-client")]
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cms::{self, attribute_value, retag_as_set, signature_verifies};
use super::der::{self, oid};
use super::issuer::CertificateFacts;

pub const TSA_URL_ENV: &str = "EMETERAI_TSA_URL";

#[cfg(feature = "tsa-client")]
/// Long enough for a public authority under load, short enough that a stuck call fails the
/// run (and the upload event is redelivered) well inside the stamp function's 30 s.
const TSA_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(feature = "tsa-client")]
/// A token is a few kilobytes; anything much larger would not fit the signature space anyway.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The authority could not give a usable token (unreachable, refused, answered garbage): the
/// stamp run is retried, nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the timestamp authority gave no usable token: {0}")]
pub struct TimestampError(pub String);

/// Something that timestamps a SHA-256 imprint. Called from a blocking thread.
pub trait TimestampAuthority: Send + Sync {
    /// The DER `TimeStampToken` (a CMS ContentInfo) over `imprint`.
    fn timestamp(&self, imprint: &[u8; 32]) -> Result<Vec<u8>, TimestampError>;
}

/// An authority reached over HTTP (RFC 3161 section 3.4: POST `application/timestamp-query`).
#[cfg(feature = "tsa-client")]
#[derive(Debug, Clone)]
pub struct HttpTimestampAuthority {
    url: String,
}

#[cfg(feature = "tsa-client")]
impl HttpTimestampAuthority {
    pub fn new(url: impl Into<String>) -> HttpTimestampAuthority {
        HttpTimestampAuthority { url: url.into() }
    }

    /// The authority named by `EMETERAI_TSA_URL`, when it is set.
    pub fn from_env() -> Option<HttpTimestampAuthority> {
        std::env::var(TSA_URL_ENV).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).map(HttpTimestampAuthority::new)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One POST, with its own small runtime on its own thread: the caller may be a plain thread
    /// (the CLI), a runtime's blocking pool (the stamp function) or anything else, and a
    /// runtime cannot be entered from inside another.
    fn post(&self, request: Vec<u8>) -> Result<Vec<u8>, TimestampError> {
        let url = self.url.clone();
        let worker = std::thread::spawn(move || -> Result<Vec<u8>, TimestampError> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| TimestampError(format!("no runtime for the request: {e}")))?;
            runtime.block_on(async move {
                let client = reqwest::Client::builder()
                    .timeout(TSA_TIMEOUT)
                    .build()
                    .map_err(|e| TimestampError(format!("no HTTP client: {e}")))?;
                let mut response = client
                    .post(&url)
                    .header("Content-Type", "application/timestamp-query")
                    .header("Accept", "application/timestamp-reply")
                    .body(request)
                    .send()
                    .await
                    .map_err(|e| TimestampError(format!("{url}: {e}")))?;
                if !response.status().is_success() {
                    return Err(TimestampError(format!("{url} answered HTTP {}", response.status())));
                }
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|e| TimestampError(format!("{url}: {e}")))? {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(TimestampError(format!("{url} answered more than {MAX_RESPONSE_BYTES} bytes")));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            })
        });
        worker.join().map_err(|_| TimestampError("the request thread failed".to_owned()))?
    }
}

#[cfg(feature = "tsa-client")]
impl TimestampAuthority for HttpTimestampAuthority {
    fn timestamp(&self, imprint: &[u8; 32]) -> Result<Vec<u8>, TimestampError> {
        let mut nonce = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
        nonce[0] &= 0x7F; // a positive INTEGER of 8 bytes at most
        let request = timestamp_request(imprint, &nonce);
        let response = self.post(request)?;
        token_from_response(&response, imprint, &nonce)
    }
}

/// `TimeStampReq`: version 1, SHA-256 imprint, nonce, and the authority's certificate asked for
/// (a verifier needs it to check the token).
pub fn timestamp_request(imprint: &[u8; 32], nonce: &[u8]) -> Vec<u8> {
    der::sequence(&[
        &der::small_integer(1),
        &der::sequence(&[&der::algorithm(oid::SHA256), &der::tlv(der::TAG_OCTET_STRING, imprint)]),
        &der::unsigned_integer(nonce),
        &der::tlv(der::TAG_BOOLEAN, &[0xFF]),
    ])
}

/// The token in a `TimeStampResp`, once it is granted and is over our imprint with our nonce.
pub fn token_from_response(response: &[u8], imprint: &[u8; 32], nonce: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let bad = |what: &str| TimestampError(what.to_owned());
    let resp = der::Reader::new(response).expect(der::TAG_SEQUENCE).ok_or_else(|| bad("the answer is not a TimeStampResp"))?;
    let mut fields = resp.children();
    let status_info = fields.expect(der::TAG_SEQUENCE).ok_or_else(|| bad("no status in the answer"))?;
    let status = status_info.children().expect(der::TAG_INTEGER).ok_or_else(|| bad("no status in the answer"))?;
    // 0 granted, 1 granted with modifications; anything else is a refusal.
    if !matches!(status.content, [0] | [1]) {
        return Err(TimestampError(format!("the authority refused (PKIStatus {:02x?})", status.content)));
    }
    let token = fields.expect(der::TAG_SEQUENCE).ok_or_else(|| bad("granted without a token"))?;
    let tst = read_tst_info(token.encoded).ok_or_else(|| bad("the token is not a readable SignedData over a TSTInfo"))?;
    if !tst.imprint_is_sha256 || tst.imprint != imprint {
        return Err(bad("the token is over another imprint"));
    }
    let expected_nonce = der::unsigned_integer(nonce);
    if tst.nonce != Some(&expected_nonce[2..]) {
        return Err(bad("the token does not carry our nonce (a replayed answer?)"));
    }
    Ok(token.encoded.to_vec())
}

/// What a timestamp token says, as `emeterai verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimestampFacts {
    /// The authority's time (`genTime`), to the second.
    pub time: Option<DateTime<Utc>>,
    /// The common name of the authority's signing certificate.
    pub authority: Option<String>,
    /// The token is over the expected imprint and its signature verifies with the authority's
    /// embedded certificate. Whether that authority is trusted is not judged here.
    pub valid: bool,
    /// The token's signature algorithm is one this verifier cannot check (it then is not valid).
    pub unsupported_algorithm: bool,
}

struct TstInfo<'a> {
    imprint_is_sha256: bool,
    imprint: &'a [u8],
    gen_time: Option<DateTime<Utc>>,
    nonce: Option<&'a [u8]>,
}

fn read_tst_info(token: &[u8]) -> Option<TstInfo<'_>> {
    let signed = cms::read_signed_data(token)?;
    if signed.content_type != oid::TST_INFO {
        return None;
    }
    let tst = der::Reader::new(signed.content?).expect(der::TAG_SEQUENCE)?;
    let mut fields = tst.children();
    fields.expect(der::TAG_INTEGER)?;
    fields.expect(der::TAG_OID)?; // policy
    let imprint = fields.expect(der::TAG_SEQUENCE)?;
    let mut imprint_fields = imprint.children();
    let algorithm = imprint_fields.expect(der::TAG_SEQUENCE)?.children().expect(der::TAG_OID)?.content;
    let hashed = imprint_fields.expect(der::TAG_OCTET_STRING)?.content;
    fields.expect(der::TAG_INTEGER)?; // serial
    let gen_time = der::read_generalized_time(fields.expect(der::TAG_GENERALIZED_TIME)?.content);
    let mut nonce = None;
    while let Some(field) = fields.next_element() {
        if field.tag == der::TAG_INTEGER {
            nonce = Some(field.content);
        }
    }
    Some(TstInfo { imprint_is_sha256: algorithm == oid::SHA256, imprint: hashed, gen_time, nonce })
}

/// Reads a signature timestamp token; `expected_imprint` is the SHA-256 of the signature value
/// it must cover.
pub fn read_token(token: &[u8], expected_imprint: Option<&[u8; 32]>) -> TimestampFacts {
    let unreadable = TimestampFacts { time: None, authority: None, valid: false, unsupported_algorithm: false };
    let (Some(signed), Some(tst)) = (cms::read_signed_data(token), read_tst_info(token)) else { return unreadable };
    let Some(certificate) = signed.signer_certificate() else { return TimestampFacts { time: tst.gen_time, ..unreadable } };
    let authority = CertificateFacts::read(certificate).and_then(|facts| der::common_name(facts.subject_name));
    let signer = &signed.signer;
    let content_digest = signed.content.and_then(|content| digest(signer.digest_algorithm, content));
    let attrs_hold = signer.signed_attrs.is_some_and(|attrs| {
        let message_digest = attribute_value(attrs, oid::MESSAGE_DIGEST).map(|v| v.content);
        content_digest.is_some() && message_digest == content_digest.as_deref()
    });
    let verdict = signer
        .signed_attrs
        .and_then(|attrs| signature_verifies(certificate, signer.signature_algorithm, &retag_as_set(attrs), signer.signature));
    let imprint_ok = tst.imprint_is_sha256 && expected_imprint.is_none_or(|want| tst.imprint == want);
    TimestampFacts {
        time: tst.gen_time,
        authority,
        valid: imprint_ok && attrs_hold && verdict == Some(true),
        unsupported_algorithm: verdict.is_none(),
    }
}

fn digest(algorithm: &[u8], content: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    match algorithm {
        a if a == oid::SHA256 => Some(sha2::Sha256::digest(content).to_vec()),
        a if a == oid::SHA384 => Some(sha2::Sha384::digest(content).to_vec()),
        a if a == oid::SHA512 => Some(sha2::Sha512::digest(content).to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_or_garbage_is_an_error_never_a_token() {
        let imprint = [7u8; 32];
        // PKIStatus 2 (rejection): refused for what it is, whatever else the answer holds.
        let refused = der::sequence(&[&der::sequence(&[&der::small_integer(2)])]);
        let refusal = token_from_response(&refused, &imprint, &[1]).expect_err("a rejection is no token");
        assert!(refusal.0.contains("refused"), "{refusal}");
        assert!(token_from_response(b"<html>busy</html>", &imprint, &[1]).is_err());
        assert!(token_from_response(&[], &imprint, &[1]).is_err());
        let granted_without_token = der::sequence(&[&der::sequence(&[&der::small_integer(0)])]);
        assert!(token_from_response(&granted_without_token, &imprint, &[1]).is_err());
    }

    #[cfg(feature = "tsa-client")]
    #[test]
    fn an_unreachable_authority_is_an_error() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
        let authority = HttpTimestampAuthority::new(format!("http://127.0.0.1:{port}/tsa"));
        assert!(authority.timestamp(&[1u8; 32]).is_err());
    }
}
