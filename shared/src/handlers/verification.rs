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
        let found = tokio::task::spawn_blocking(move || stamping::verify(&pdf, Some(&trusted)))
            .await
            .map_err(|e| ApiError::Internal(format!("verification task: {e}")))?
            .map_err(|r| ApiError::Unprocessable { code: r.code(), detail: r.message() })?;
        let mut stamps = Vec::with_capacity(found.len());
        for stamp in found {
            let registered = match Serial::parse(&stamp.serial) {
                Ok(serial) => self.ledger.registered_serial(&serial).await?.is_some(),
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
