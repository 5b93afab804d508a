//! The JSON the API shows and reads (API.md shapes), as types. The handlers serialize these, and
//! the OpenAPI document (`openapi.rs`) takes its schemas from the same derives, so what the API
//! answers and what the contract says come from one definition.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::document::{Document, DocumentStatus, MAX_FILE_NAME_LEN};
use crate::domain::idempotency::MAX_KEY_LEN;
use crate::domain::invoice::{CURRENCY, Invoice, InvoiceStatus, RefundSummary};
use crate::domain::quantity::MAX_QUANTITY;
use crate::domain::refund::{RefundReason, RefundStatus};
use crate::domain::time;
use crate::stamping::MAX_PDF_BYTES;

// ---- requests ------------------------------------------------------------------------------
// The handlers read these bodies field by field (each rule answers its own error code: a bad
// quantity is 422 `quantity_out_of_range`, not a generic 400), so these types describe what they
// accept; `openapi.rs`'s tests send every example through the handlers' parsers.

/// `POST /v1/checkouts`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"quantity": 3}))]
pub struct CheckoutRequest {
    /// Units to buy (one unit stamps one document).
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: u32,
}

/// `POST /v1/documents`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"file_name": "surat-pernyataan.pdf", "placement": {"page": 1, "x_mm": 120, "y_mm": 220}}))]
pub struct CreateDocumentRequest {
    /// The applicant's name for the file: 1 to 255 characters, not only spaces, no control characters.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$")]
    pub file_name: String,
    /// Where the stamp goes; absent or null: the stamp engine's default place on the last page.
    #[schema(nullable)]
    pub placement: Option<PlacementBody>,
}

/// Where the stamp goes, in millimetres from the top-left corner of the page as displayed
/// (after `/Rotate`); whether it fits is judged against the uploaded page (`placement_out_of_bounds`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementBody {
    /// 1-based page number; absent or null: the last page.
    #[schema(minimum = 1, maximum = 4294967295_u64, nullable)]
    pub page: Option<u32>,
    #[schema(minimum = 0, maximum = 1000000)]
    pub x_mm: f64,
    #[schema(minimum = 0, maximum = 1000000)]
    pub y_mm: f64,
}

// ---- invoices --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceStatusName {
    Pending,
    Paid,
    Expired,
    Cancelled,
    Refunded,
}

impl From<InvoiceStatus> for InvoiceStatusName {
    fn from(s: InvoiceStatus) -> Self {
        match s {
            InvoiceStatus::Pending => Self::Pending,
            InvoiceStatus::Paid => Self::Paid,
            InvoiceStatus::Expired => Self::Expired,
            InvoiceStatus::Cancelled => Self::Cancelled,
            InvoiceStatus::Refunded => Self::Refunded,
        }
    }
}

/// How to pay an invoice: Midtrans Snap's token and payment page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    #[schema(value_type = String, pattern = "^midtrans$", example = "midtrans")]
    pub gateway: &'static str,
    pub token: String,
    #[schema(format = "uri")]
    pub redirect_url: String,
}

/// A settlement whose amount was not the invoice's: nothing was credited; a person reviews it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReviewView {
    #[schema(example = "amount_mismatch")]
    pub reason: String,
    #[schema(format = DateTime)]
    pub flagged_at: String,
}

/// An invoice (API.md, "Checkout" and "Invoices and quota"). For a PAID invoice,
/// `quantity = used + remaining + refunded` always holds.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "invoice_id": "inv_01JDZ8Q7N3X5V2K4M6P8R0T2W4", "order_id": "EMT-01JDZ8Q7N3X5V2K4M6P8R0T2W4",
    "status": "PENDING", "quantity": 3, "unit_price": 10000, "amount": 30000, "currency": "IDR",
    "created_at": "2026-12-03T10:00:00.000Z", "expires_at": "2026-12-04T10:00:00.000Z",
    "payment": {"gateway": "midtrans", "token": "66e4fa55-fdac-4ef9-91b5-733b97d1b862",
                "redirect_url": "https://pay.example/snap/v4/redirection/66e4fa55"},
    "used": 0, "remaining": 0, "refunded": 0, "paid_at": null, "valid_until": null, "refund": null, "review": null
}))]
pub struct InvoiceView {
    #[schema(pattern = "^inv_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub invoice_id: String,
    /// The order id the payment gateway knows this invoice by.
    #[schema(pattern = "^EMT-[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub order_id: String,
    pub status: InvoiceStatusName,
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: u32,
    /// Rupiah per unit.
    pub unit_price: u64,
    /// Whole rupiah: quantity × unit_price.
    pub amount: u64,
    #[schema(value_type = String, pattern = "^IDR$")]
    pub currency: &'static str,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Unpaid after this, the invoice expires.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Null when the payment gateway could not be reached: `POST .../payment` asks again.
    #[schema(required = true)]
    pub payment: Option<PaymentView>,
    pub used: u32,
    pub remaining: u32,
    pub refunded: u32,
    #[schema(required = true, format = DateTime)]
    pub paid_at: Option<String>,
    /// Unused units are refunded automatically after this (paid_at + quota validity).
    #[schema(required = true, format = DateTime)]
    pub valid_until: Option<String>,
    #[schema(required = true)]
    pub refund: Option<RefundView>,
    #[schema(required = true)]
    pub review: Option<ReviewView>,
}

/// `GET /v1/invoices`: newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoicePage {
    pub invoices: Vec<InvoiceView>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /v1/quota`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"available": 2, "pending": 3}))]
pub struct QuotaView {
    /// Usable units (of PAID invoices still valid).
    pub available: u64,
    /// Units in unpaid (PENDING) invoices.
    pub pending: u64,
}

// ---- refunds ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundStatusName {
    Requested,
    Submitted,
    Completed,
    Failed,
    NeedsReview,
}

impl From<RefundStatus> for RefundStatusName {
    fn from(s: RefundStatus) -> Self {
        match s {
            RefundStatus::Requested => Self::Requested,
            RefundStatus::Submitted => Self::Submitted,
            RefundStatus::Completed => Self::Completed,
            RefundStatus::Failed => Self::Failed,
            RefundStatus::NeedsReview => Self::NeedsReview,
        }
    }
}

/// Why a refund was made: asked for, quota validity ended, or a payment after the invoice ended.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundReasonName {
    Requested,
    Expired,
    LatePayment,
}

impl From<RefundReason> for RefundReasonName {
    fn from(r: RefundReason) -> Self {
        match r {
            RefundReason::Requested => Self::Requested,
            RefundReason::Expired => Self::Expired,
            RefundReason::LatePayment => Self::LatePayment,
        }
    }
}

/// The refund of an invoice's unused units, 100% of their price.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "refund_id": "ref_01JDZ8Q7N3X5V2K4M6P8R0T2W4", "invoice_id": "inv_01JDZ8Q7N3X5V2K4M6P8R0T2W4",
    "units": 2, "amount": 20000, "status": "REQUESTED", "reason": "requested",
    "requested_at": "2026-12-03T11:00:00.000Z", "updated_at": "2026-12-03T11:00:00.000Z", "attempts": 0, "note": null
}))]
pub struct RefundView {
    #[schema(pattern = "^ref_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub refund_id: String,
    #[schema(pattern = "^inv_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub invoice_id: String,
    pub units: u32,
    pub amount: u64,
    pub status: RefundStatusName,
    pub reason: RefundReasonName,
    #[schema(format = DateTime)]
    pub requested_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Times the gateway was asked and failed or refused.
    pub attempts: u32,
    /// The gateway's last refusal or failure, for the person who reviews it.
    #[schema(required = true)]
    pub note: Option<String>,
}

// ---- documents -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DocumentStatusName {
    AwaitingUpload,
    Processing,
    Stamped,
    Rejected,
}

impl From<DocumentStatus> for DocumentStatusName {
    fn from(s: DocumentStatus) -> Self {
        match s {
            DocumentStatus::AwaitingUpload => Self::AwaitingUpload,
            DocumentStatus::Processing => Self::Processing,
            DocumentStatus::Stamped => Self::Stamped,
            DocumentStatus::Rejected => Self::Rejected,
        }
    }
}

/// Why a document was not stamped (it consumed no quota).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RejectionView {
    /// One of API.md's rejection codes.
    #[schema(example = "not_a4")]
    pub code: String,
    pub message: String,
}

/// The placement as the document keeps it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlacementView {
    #[schema(required = true, minimum = 1)]
    pub page: Option<u32>,
    pub x_mm: f64,
    pub y_mm: f64,
}

/// A document and what became of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "document_id": "doc_01JDZ8Q7N3X5V2K4M6P8R0T2W4", "status": "STAMPED", "file_name": "surat-pernyataan.pdf",
    "placement": {"page": 1, "x_mm": 120.0, "y_mm": 220.0}, "created_at": "2026-12-03T10:05:00.000Z",
    "serial": "0A1B2C3D4E5F6G7H8J9K0L", "rejection": null,
    "download_url": "https://documents.example/stamped/alice/doc_01JDZ8Q7N3X5V2K4M6P8R0T2W4.pdf?X-Amz-Signature=...",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "stamped_at": "2026-12-03T10:05:02.000Z", "invoice_id": "inv_01JDZ8Q7N3X5V2K4M6P8R0T2W4"
}))]
pub struct DocumentView {
    #[schema(pattern = "^doc_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub document_id: String,
    pub status: DocumentStatusName,
    pub file_name: String,
    #[schema(required = true)]
    pub placement: Option<PlacementView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The e-Meterai serial, once STAMPED.
    #[schema(required = true, pattern = "^[0-9A-Z]{22}$")]
    pub serial: Option<String>,
    /// Why, when REJECTED.
    #[schema(required = true)]
    pub rejection: Option<RejectionView>,
    /// A presigned GET of the stamped PDF, when STAMPED.
    #[schema(required = true, format = "uri")]
    pub download_url: Option<String>,
    /// SHA-256 (hex) of the stamped file.
    #[schema(required = true, pattern = "^[0-9a-f]{64}$")]
    pub sha256: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub stamped_at: Option<String>,
    /// The invoice whose unit the stamp consumed.
    #[schema(required = true)]
    pub invoice_id: Option<String>,
}

/// Where and how to upload the PDF: a presigned S3 request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UploadView {
    #[schema(example = "PUT")]
    pub method: String,
    #[schema(format = "uri")]
    pub url: String,
    /// Headers the upload must carry, exactly.
    pub headers: BTreeMap<String, String>,
}

/// `POST /v1/documents`: the new document and where to upload its PDF.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedDocument {
    #[serde(flatten)]
    pub document: DocumentView,
    /// The largest PDF that will be stamped.
    #[schema(example = 800000)]
    pub max_bytes: usize,
    pub upload: UploadView,
    /// The upload URL stops working after this.
    #[schema(format = DateTime)]
    pub expires_at: String,
}

// ---- verification ----------------------------------------------------------------------------

/// `GET /v1/verify/{serial}`: a registered e-Meterai. No personal data.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"serial": "0A1B2C3D4E5F6G7H8J9K0L", "status": "STAMPED", "stamped_at": "2026-12-03T10:05:02.000Z",
    "document_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}))]
pub struct RegisteredSerialView {
    #[schema(pattern = "^[0-9A-Z]{22}$")]
    pub serial: String,
    #[schema(value_type = String, pattern = "^STAMPED$")]
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub stamped_at: String,
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub document_sha256: String,
}

/// One e-Meterai signature found in a PDF.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FoundStampView {
    /// The serial in the signature's `/Reason` (as found; not necessarily well formed).
    pub serial: String,
    /// The signature verifies and its signer is a trusted issuer.
    pub signature_valid: bool,
    /// The serial is in the registry.
    pub registered: bool,
    /// Nothing was appended to the file after the stamp.
    pub unmodified_since_stamp: bool,
    #[schema(required = true, format = DateTime)]
    pub signed_at: Option<String>,
}

/// `POST /v1/verify`: every e-Meterai in the file (an empty list when there is none).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerifyReport {
    pub stamps: Vec<FoundStampView>,
}

// ---- small answers ---------------------------------------------------------------------------

/// `{"status": "ok"}`: `/healthz`, and a notification taken (its effect is durable).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct StatusOk {
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
}

impl StatusOk {
    pub const OK: StatusOk = StatusOk { status: "ok" };
}

/// Serializes a view; the views hold only strings, numbers and maps with string keys, which
/// always serialize.
pub fn to_json<T: Serialize>(view: &T) -> String {
    serde_json::to_string(view).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a view did not serialize");
        String::from("{}")
    })
}

// ---- from the domain -------------------------------------------------------------------------

pub fn invoice(i: &Invoice) -> InvoiceView {
    InvoiceView {
        invoice_id: i.id.to_string(),
        order_id: i.id.order_id().to_string(),
        status: i.status.into(),
        quantity: i.quantity.get(),
        unit_price: i.unit_price.get(),
        amount: i.amount.get(),
        currency: CURRENCY,
        created_at: time::format(i.created_at),
        expires_at: time::format(i.expires_at),
        payment: i.payment.as_ref().map(|p| PaymentView {
            gateway: "midtrans",
            token: p.token.clone(),
            redirect_url: p.redirect_url.clone(),
        }),
        used: i.used,
        remaining: i.remaining,
        refunded: i.refunded,
        paid_at: i.paid_at.map(time::format),
        valid_until: i.valid_until.map(time::format),
        refund: i.refund.as_ref().map(|r| refund(i, r)),
        review: i.review.as_ref().map(|r| ReviewView { reason: r.reason.clone(), flagged_at: time::format(r.flagged_at) }),
    }
}

pub fn refund(i: &Invoice, r: &RefundSummary) -> RefundView {
    RefundView {
        refund_id: r.refund_id.to_string(),
        invoice_id: i.id.to_string(),
        units: r.units,
        amount: r.amount.get(),
        status: r.status.into(),
        reason: r.reason.into(),
        requested_at: time::format(r.requested_at),
        updated_at: time::format(r.updated_at),
        attempts: r.attempts,
        note: r.note.clone(),
    }
}

pub fn document(doc: &Document, download_url: Option<String>) -> DocumentView {
    DocumentView {
        document_id: doc.id.to_string(),
        status: doc.status.into(),
        file_name: doc.file_name.as_str().to_owned(),
        placement: doc.placement.map(|p| PlacementView { page: p.page(), x_mm: p.x_mm(), y_mm: p.y_mm() }),
        created_at: time::format(doc.created_at),
        serial: doc.stamp.as_ref().map(|s| s.serial.to_string()),
        rejection: doc.rejection.as_ref().map(|r| RejectionView { code: r.code.clone(), message: r.message.clone() }),
        download_url,
        sha256: doc.stamp.as_ref().map(|s| s.sha256.clone()),
        stamped_at: doc.stamp.as_ref().map(|s| time::format(s.stamped_at)),
        invoice_id: doc.stamp.as_ref().map(|s| s.invoice_id.to_string()),
    }
}

/// The limits the request types state, as constants the schema attributes cannot name.
const _: () = {
    assert!(MAX_QUANTITY == 1000);
    assert!(MAX_FILE_NAME_LEN == 255);
    assert!(MAX_KEY_LEN == 128);
    assert!(MAX_PDF_BYTES == 800_000);
    assert!(crate::domain::placement::MAX_COORDINATE_MM == 1_000_000.0);
};
