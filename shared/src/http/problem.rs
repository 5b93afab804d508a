//! Every error the API can answer, mapped to its HTTP status and machine-readable `code` here and
//! nowhere else (RFC 9457 problem details).

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

use super::response::ApiResponse;
use crate::ledger::LedgerError;
use crate::stamping::Rejection;

/// An error answer: RFC 9457 problem details with the API's machine-readable `code`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"type": "about:blank", "title": "Unprocessable Content", "status": 422,
    "code": "quantity_out_of_range", "detail": "quantity must be a whole number from 1 to 1000"}))]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "about:blank")]
    pub problem_type: &'static str,
    #[schema(value_type = String)]
    pub title: &'static str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong, for programs; stable.
    #[schema(value_type = String, schema_with = problem_code_schema)]
    pub code: &'static str,
    /// What went wrong, for people; may change.
    pub detail: String,
}

fn problem_code_schema() -> RefOr<Schema> {
    let mut codes = ApiError::every_code();
    codes.sort_unstable();
    codes.dedup();
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(codes))
        .description(Some("What went wrong, for programs; stable."))
        .into()
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    NotFound(&'static str),
    /// `allow`: the route's methods, for the `Allow` header (RFC 9110 requires it on a 405).
    #[error("method not allowed on this route (allowed: {allow})")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    BadRequest(String),
    #[error("request body is too large (at most {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("the Idempotency-Key header is required")]
    IdempotencyKeyRequired,
    #[error("{0}")]
    IdempotencyKeyInvalid(String),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    IdempotencyKeyInProgress,
    #[error("{0}")]
    QuantityOutOfRange(String),
    #[error("signature_key does not match the notification")]
    BadSignature,
    #[error("gross_amount {received} differs from the invoice amount {expected}; flagged for review")]
    AmountMismatch { received: String, expected: String },
    #[error("invoice is {status}; only a PENDING invoice can be paid")]
    InvoiceNotPending { status: &'static str },
    /// A document or placement the rules refuse; `code` is one of API.md's rejection codes.
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("the invoice has no unused unit to refund")]
    NothingToRefund,
    #[error("the payment gateway is unavailable; try again")]
    GatewayUnavailable,
    /// The account holds `limit` PENDING invoices: pay or let one expire first.
    #[error("this account already has {limit} unpaid checkouts; pay one or wait until one expires")]
    TooManyUnpaidCheckouts { limit: u32, retry_after_seconds: u64 },
    /// The account has `limit` documents AWAITING_UPLOAD or PROCESSING.
    #[error("this account already has {limit} documents awaiting upload or being stamped; wait until some finish")]
    TooManyOpenDocuments { limit: u32, retry_after_seconds: u64 },
    #[error("the service is temporarily unavailable; try again")]
    Unavailable(#[source] LedgerError),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// Every `code` the API can answer with: one of each variant, with every code a document or
    /// placement can be refused for. The contract's enumeration of `code` is built from this.
    pub fn every_code() -> Vec<&'static str> {
        let one_of_each = [
            Self::Unauthorized,
            Self::NotFound(""),
            Self::MethodNotAllowed { allow: "" },
            Self::BadRequest(String::new()),
            Self::PayloadTooLarge { limit: 0 },
            Self::IdempotencyKeyRequired,
            Self::IdempotencyKeyInvalid(String::new()),
            Self::IdempotencyKeyReused,
            Self::IdempotencyKeyInProgress,
            Self::QuantityOutOfRange(String::new()),
            Self::BadSignature,
            Self::AmountMismatch { received: String::new(), expected: String::new() },
            Self::InvoiceNotPending { status: "" },
            Self::NothingToRefund,
            Self::GatewayUnavailable,
            Self::TooManyUnpaidCheckouts { limit: 0, retry_after_seconds: 0 },
            Self::TooManyOpenDocuments { limit: 0, retry_after_seconds: 0 },
            Self::Unavailable(LedgerError::Contended),
            Self::Internal(String::new()),
        ];
        let mut codes: Vec<&'static str> = one_of_each.iter().map(Self::code).collect();
        // `Unprocessable` carries a stamping rejection code (a PDF given to `POST /v1/verify`, a
        // placement given to `POST /v1/documents`).
        codes.extend(Rejection::ALL.iter().map(Rejection::code));
        codes
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) | Self::IdempotencyKeyRequired | Self::IdempotencyKeyInvalid(_) => 400,
            Self::Unauthorized | Self::BadSignature => 401,
            Self::NotFound(_) => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::IdempotencyKeyInProgress | Self::InvoiceNotPending { .. } | Self::NothingToRefund => 409,
            Self::PayloadTooLarge { .. } => 413,
            Self::TooManyUnpaidCheckouts { .. } | Self::TooManyOpenDocuments { .. } => 429,
            Self::IdempotencyKeyReused
            | Self::QuantityOutOfRange(_)
            | Self::AmountMismatch { .. }
            | Self::Unprocessable { .. } => 422,
            Self::Internal(_) => 500,
            Self::GatewayUnavailable => 502,
            Self::Unavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::BadRequest(_) => "bad_request",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::IdempotencyKeyRequired => "idempotency_key_required",
            Self::IdempotencyKeyInvalid(_) => "idempotency_key_invalid",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInProgress => "idempotency_key_in_progress",
            Self::QuantityOutOfRange(_) => "quantity_out_of_range",
            Self::BadSignature => "bad_signature",
            Self::AmountMismatch { .. } => "amount_mismatch",
            Self::InvoiceNotPending { .. } => "invoice_not_pending",
            Self::Unprocessable { code, .. } => code,
            Self::NothingToRefund => "nothing_to_refund",
            Self::GatewayUnavailable => "gateway_unavailable",
            Self::TooManyUnpaidCheckouts { .. } => "too_many_unpaid_checkouts",
            Self::TooManyOpenDocuments { .. } => "too_many_open_documents",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Content Too Large",
            422 => "Unprocessable Content",
            429 => "Too Many Requests",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    pub fn to_response(&self) -> ApiResponse {
        if self.status() >= 500 {
            // The cause goes to the log (never secrets: errors carry none); the client gets the code.
            tracing::error!(code = self.code(), error = ?self, "request failed");
        }
        let body = Problem {
            problem_type: "about:blank",
            title: self.title(),
            status: self.status(),
            code: self.code(),
            detail: self.to_string(),
        };
        let response = ApiResponse::problem(self.status(), crate::handlers::views::to_json(&body));
        match self {
            Self::MethodNotAllowed { allow } => response.with_header("allow", *allow),
            // RFC 9110 section 10.2.3: when to ask again, in seconds.
            Self::TooManyUnpaidCheckouts { retry_after_seconds, .. } | Self::TooManyOpenDocuments { retry_after_seconds, .. } => {
                response.with_header("retry-after", (*retry_after_seconds).max(1).to_string())
            }
            _ => response,
        }
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::Internal(format!("storage: {e}"))
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Corrupt(what) => Self::Internal(what),
            other => Self::Unavailable(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new variant must be listed in `every_code` (the contract's enumeration); this match
    /// stops compiling until it is looked at.
    #[test]
    fn every_variant_is_in_the_code_list() {
        let codes = ApiError::every_code();
        for e in [ApiError::Unprocessable { code: "not_pdf", detail: String::new() }] {
            match &e {
                ApiError::Unauthorized
                | ApiError::NotFound(_)
                | ApiError::MethodNotAllowed { .. }
                | ApiError::BadRequest(_)
                | ApiError::PayloadTooLarge { .. }
                | ApiError::IdempotencyKeyRequired
                | ApiError::IdempotencyKeyInvalid(_)
                | ApiError::IdempotencyKeyReused
                | ApiError::IdempotencyKeyInProgress
                | ApiError::QuantityOutOfRange(_)
                | ApiError::BadSignature
                | ApiError::AmountMismatch { .. }
                | ApiError::InvoiceNotPending { .. }
                | ApiError::Unprocessable { .. }
                | ApiError::NothingToRefund
                | ApiError::GatewayUnavailable
                | ApiError::TooManyUnpaidCheckouts { .. }
                | ApiError::TooManyOpenDocuments { .. }
                | ApiError::Unavailable(_)
                | ApiError::Internal(_) => assert!(codes.contains(&e.code())),
            }
        }
        assert_eq!(codes.len(), 19 + Rejection::ALL.len(), "one code per variant and per rejection");
        for code in ["page_out_of_range", "placement_out_of_bounds", "not_pdf", "idempotency_key_reused"] {
            assert!(codes.contains(&code), "{code}");
        }
    }

    #[test]
    fn problem_body_carries_status_and_code() {
        let r = ApiError::QuantityOutOfRange("quantity must be 1 to 1000".into()).to_response();
        assert_eq!(r.status, 422);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!(v["code"], "quantity_out_of_range");
        assert_eq!(v["status"], 422);
        assert_eq!(v["type"], "about:blank");
        assert!(r.headers.iter().any(|(k, v)| *k == "content-type" && v == "application/problem+json"));
    }

    #[test]
    fn limit_refusals_are_429_with_retry_after() {
        let r = ApiError::TooManyOpenDocuments { limit: 3, retry_after_seconds: 0 }.to_response();
        assert_eq!(r.status, 429);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
        assert_eq!((v["code"].as_str(), v["title"].as_str()), (Some("too_many_open_documents"), Some("Too Many Requests")));
        // Never "0": a client would retry at once.
        assert!(r.headers.iter().any(|(k, v)| *k == "retry-after" && v == "1"), "{:?}", r.headers);
    }
}
