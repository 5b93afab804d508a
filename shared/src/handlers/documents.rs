//! `POST /v1/documents` and `GET /v1/documents/{id}`: where to upload, and what became of it.

use std::time::Duration;

use serde_json::Value;

use super::checkout::{CheckoutService, caller};
use super::{json_body, views};
use crate::domain::document::{Document, DocumentStatus, FileName, keys};
use crate::domain::ids::{DocumentId, Ulid};
use crate::domain::placement::{InvalidPlacement, Placement};
use crate::domain::time;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::ledger::documents::STALE_PROCESSING_MINUTES;
use crate::stamping::MAX_PDF_BYTES;

/// How long the presigned upload and download URLs stay valid.
pub const URL_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// A document counts as open for the per-account limit this long after its creation at most:
/// the upload URL's validity, then the time a stamp run may stay PROCESSING before the sweep
/// releases it. Beyond that it can neither be uploaded nor hold a stamp run.
fn open_document_window() -> chrono::Duration {
    chrono::Duration::from_std(URL_VALIDITY).unwrap_or_default() + chrono::Duration::minutes(STALE_PROCESSING_MINUTES)
}

impl CheckoutService {
    pub(crate) async fn create_document(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let account = caller(req)?;
        let body = json_body(req)?;
        let file_name = body
            .get("file_name")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::BadRequest("file_name is required".into()))
            .and_then(|n| FileName::parse(n).map_err(|e| ApiError::BadRequest(e.to_string())))?;
        let placement = match body.get("placement") {
            None | Some(Value::Null) => None,
            Some(p) => Some(parse_placement(p)?),
        };
        let now = chrono::Utc::now();
        // A bounded read (at most `limit` index items), not a counter: open documents end in
        // the stamp, a rejection or the sweep, and an upload never made ends in nothing, so a
        // counter would need a write on every path and a sweep for abandoned uploads. The price:
        // concurrent requests of one account may pass together, so the bound is the limit plus
        // the account's creations in flight (and within the index's replication delay, usually
        // well under a second).
        let limit = self.config.limits.open_documents;
        let open = self.ledger.open_documents(&account, now - open_document_window(), limit).await?;
        if open.count >= limit {
            let frees_at = open.oldest_created_at.map_or(now, |t| t + open_document_window());
            let retry_after_seconds = u64::try_from((frees_at - now).num_seconds()).unwrap_or(0);
            return Err(ApiError::TooManyOpenDocuments { limit, retry_after_seconds });
        }
        let id = DocumentId::new(Ulid::generate(u64::try_from(now.timestamp_millis()).unwrap_or(0), &mut rand::thread_rng()));
        let doc = Document {
            id,
            account: account.clone(),
            file_name,
            placement,
            status: DocumentStatus::AwaitingUpload,
            created_at: now,
            upload_expires_at: now + chrono::Duration::from_std(URL_VALIDITY).unwrap_or_default(),
            reservation: None,
            stamp: None,
            rejection: None,
        };
        self.ledger.create_document(&doc).await?;
        let upload = self.documents.presign_upload(&keys::incoming(&account, &id), URL_VALIDITY).await?;
        let created = views::CreatedDocument {
            document: views::document(&doc, None),
            max_bytes: MAX_PDF_BYTES,
            upload: views::UploadView { method: upload.method, url: upload.url, headers: upload.headers.into_iter().collect() },
            expires_at: time::format(doc.upload_expires_at),
        };
        Ok(ApiResponse::json(201, views::to_json(&created)))
    }

    pub(crate) async fn get_document(&self, req: &ApiRequest, id: &str) -> Result<ApiResponse, ApiError> {
        let account = caller(req)?;
        let id = DocumentId::parse(id).map_err(|_| ApiError::NotFound("no such document"))?;
        let doc = match self.ledger.document(&id).await? {
            Some(doc) if doc.account == account => doc,
            _ => return Err(ApiError::NotFound("no such document")),
        };
        let download_url = match doc.status {
            DocumentStatus::Stamped => {
                Some(self.documents.presign_download(&keys::stamped(&account, &doc.id), URL_VALIDITY).await?)
            }
            _ => None,
        };
        Ok(ApiResponse::json(200, views::to_json(&views::document(&doc, download_url))))
    }
}

fn parse_placement(value: &Value) -> Result<Placement, ApiError> {
    let number = |name: &str| -> Result<f64, ApiError> {
        value
            .get(name)
            .and_then(Value::as_f64)
            .ok_or_else(|| ApiError::BadRequest(format!("placement.{name} must be a number of millimetres")))
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest("placement must be an object".into()));
    }
    let page = match value.get("page") {
        None | Some(Value::Null) => None,
        Some(p) => Some(p.as_u64().and_then(|p| u32::try_from(p).ok()).ok_or(ApiError::Unprocessable {
            code: "page_out_of_range",
            detail: "placement.page must be a page number from 1".into(),
        })?),
    };
    Placement::parse(page, number("x_mm")?, number("y_mm")?).map_err(|e| match e {
        InvalidPlacement::PageZero => ApiError::Unprocessable { code: "page_out_of_range", detail: e.to_string() },
        InvalidPlacement::BadCoordinate => ApiError::Unprocessable { code: "placement_out_of_bounds", detail: e.to_string() },
    })
}
