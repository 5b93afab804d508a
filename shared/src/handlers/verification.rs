//! Public verification: by serial (the registry) and by file (the signatures in it).

use std::sync::Arc;


use super::checkout::CheckoutService;
use super::views;
use super::verification_page::{self, Finding};
use crate::domain::serial::Serial;
use crate::domain::time;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::stamping::{self, Issuer, IssuerError, MAX_PDF_BYTES};

impl CheckoutService {
    pub(crate) async fn verify_serial(&self, req: &ApiRequest, serial: &str) -> Result<ApiResponse, ApiError> {
        if verification_page::prefers_html(req.header("accept")) {
            return Ok(self.verify_serial_page(req, serial).await);
        }
        let serial = Serial::parse(serial).map_err(|_| ApiError::NotFound("no such serial"))?;
        let registered = self.ledger.registered_serial(&serial).await?.ok_or(ApiError::NotFound("no such serial"))?;
        let view = views::RegisteredSerialView {
            serial: registered.serial.to_string(),
            status: "STAMPED",
            stamped_at: time::format(registered.stamped_at),
            document_sha256: registered.document_sha256,
        };
        Ok(ApiResponse::json(200, views::to_json(&view)).with_header("vary", "Accept"))
    }

    /// The same answer as a page for people (a phone that scanned the QR code).
    async fn verify_serial_page(&self, req: &ApiRequest, serial: &str) -> ApiResponse {
        let lang = verification_page::Lang::of(req);
        let Ok(serial) = Serial::parse(serial) else {
            return verification_page::page(lang, &Finding::NotRegistered { serial: None });
        };
        match self.ledger.registered_serial(&serial).await {
            Ok(Some(r)) => verification_page::page(
                lang,
                &Finding::Registered {
                    serial: r.serial.as_str(),
                    stamped_at: r.stamped_at,
                    document_sha256: &r.document_sha256,
                },
            ),
            Ok(None) => verification_page::page(lang, &Finding::NotRegistered { serial: Some(serial.as_str()) }),
            Err(e) => {
                tracing::error!(error = ?e, "verification page: registry unavailable");
                verification_page::page(lang, &Finding::Unavailable)
            }
        }
    }

    pub(crate) async fn verify_file(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        if req.body.len() > MAX_PDF_BYTES {
            return Err(ApiError::PayloadTooLarge { limit: MAX_PDF_BYTES });
        }
        let pdf = req.body.clone();
        let trusted = Arc::clone(&self.trusted_issuers);
        let (found, revisions) = tokio::task::spawn_blocking(move || {
            stamping::verify(&pdf, Some(&trusted)).map(|found| (found, revision_sha256s(&pdf)))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("verification task: {e}")))?
        .map_err(|r| ApiError::Unprocessable { code: r.code(), detail: r.message() })?;
        let mut stamps = Vec::with_capacity(found.len());
        for stamp in found {
            // Registered means: this serial is in the registry AND one revision of this file is
            // byte for byte the file registered under it. A different file carrying a real
            // serial (a losing stamp run's output, a copy of the stamp onto other content) is not.
            let registered = match Serial::parse(&stamp.serial) {
                Ok(serial) => self
                    .ledger
                    .registered_serial(&serial)
                    .await?
                    .is_some_and(|r| revisions.iter().any(|h| h.eq_ignore_ascii_case(&r.document_sha256))),
                Err(_) => false,
            };
            stamps.push(views::FoundStampView {
                signature_valid: stamp.is_valid(),
                registered,
                unmodified_since_stamp: stamp.unmodified_since_stamp,
                signed_at: stamp.signed_at.map(time::format),
                serial: stamp.serial,
            });
        }
        Ok(ApiResponse::json(200, views::to_json(&views::VerifyReport { stamps })))
    }
}

/// The issuer certificates (DER) whose stamps verify: the configured certificate file
/// (`EMETERAI_ISSUER_CERT_FILE`), or the local issuer's. Never needs the private key when a
/// certificate file is configured.
pub fn trusted_issuers_from_env() -> Result<Vec<Vec<u8>>, IssuerError> {
    // The API function is given the certificate only (on AWS the key is in KMS).
    if let Some(der) = stamping::issuer::certificate_from_env()? {
        return Ok(vec![der]);
    }
    Ok(vec![Issuer::from_env_or_local()?.certificate_der().to_vec()])
}

/// Most revision ends hashed in one file (a stamped file has a handful; more is hostile).
const MAX_REVISIONS_HASHED: usize = 64;

/// The SHA-256 (hex) of every revision of `pdf`: each prefix ending at a `%%EOF` marker (with
/// and without the end-of-line after it), the whole file included. One pass over the bytes: the
/// hasher is copied at each revision end, so the cost stays one hash of the file.
fn revision_sha256s(pdf: &[u8]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    const EOF: &[u8] = b"%%EOF";
    let mut ends: Vec<usize> = Vec::new();
    let mut from = 0;
    while let Some(at) = pdf.get(from..).and_then(|rest| rest.windows(EOF.len()).position(|w| w == EOF)) {
        let end = from + at + EOF.len();
        ends.push(end);
        match (pdf.get(end), pdf.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => ends.push(end + 2),
            (Some(b'\r' | b'\n'), _) => ends.push(end + 1),
            _ => {}
        }
        if ends.len() >= MAX_REVISIONS_HASHED {
            break;
        }
        from = end;
    }
    ends.push(pdf.len());
    ends.dedup();
    let mut hasher = Sha256::new();
    let mut hashed = 0;
    let mut out = Vec::with_capacity(ends.len());
    for end in ends {
        if end < hashed {
            continue;
        }
        hasher.update(pdf.get(hashed..end).unwrap_or_default());
        hashed = end;
        out.push(hex::encode(hasher.clone().finalize()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::revision_sha256s;
    use sha2::{Digest, Sha256};

    #[test]
    fn every_revision_and_the_whole_file_are_hashed() {
        let pdf = b"%PDF-1.7\n1 0 obj\n%%EOF\nmore\n%%EOF\r\ntail";
        let hashes = revision_sha256s(pdf);
        let of = |n: usize| hex::encode(Sha256::digest(&pdf[..n]));
        let first = pdf.windows(5).position(|w| w == b"%%EOF").expect("eof") + 5;
        for n in [first, first + 1, pdf.len() - 4, pdf.len() - 6, pdf.len()] {
            assert!(hashes.contains(&of(n)), "prefix of {n} bytes");
        }
        assert!(!hashes.contains(&of(first - 1)));
        assert!(revision_sha256s(&b"%%EOF".repeat(10_000)).len() <= 66, "bounded");
    }
}
