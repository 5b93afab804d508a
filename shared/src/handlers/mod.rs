//! One entry point per Lambda trigger. Each builds on the ledger, the gateway client and the
//! domain; none holds a business rule of its own.

pub mod checkout;
mod documents;
pub mod payment_webhook;
pub mod payments;
mod refund_request;
pub mod stamp;
pub mod sweep;
pub mod verification;
pub mod verification_page;
pub mod openapi;
pub mod views;

use crate::http::{ApiError, ApiRequest};

/// Largest JSON body the API reads; requests are a few hundred bytes.
pub const MAX_JSON_BODY: usize = 64 * 1024;

pub(crate) fn json_body(req: &ApiRequest) -> Result<serde_json::Value, ApiError> {
    if req.body.len() > MAX_JSON_BODY {
        return Err(ApiError::PayloadTooLarge { limit: MAX_JSON_BODY });
    }
    let value: serde_json::Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest("body must be a JSON object".into()));
    }
    Ok(value)
}

/// Sets up JSON logs once per container (CloudWatch-friendly; RUST_LOG filters).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .without_time()
        .try_init();
}
