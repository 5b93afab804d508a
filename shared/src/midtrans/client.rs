//! The one small client through which we talk to Midtrans (or the local simulator): Snap for
//! checkout pages, the Core API for status and refunds. Configured by base URLs and server key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::json;

use crate::config::{MidtransConfig, Secret};
use crate::domain::ids::OrderId;
use crate::domain::invoice::{Invoice, PaymentLink};
use crate::domain::money::Rupiah;
use crate::domain::notification::TransactionReport;
use crate::domain::time::Timestamp;

/// Midtrans reads and prints times in Western Indonesia Time.
const WIB_OFFSET_SECONDS: i32 = 7 * 3600;

/// Snap's `expiry`: from the invoice's creation (whole seconds, WIB) for as many whole minutes as
/// the invoice lives, so the payment page closes when the invoice expires.
pub fn snap_expiry(created_at: Timestamp, expires_at: Timestamp) -> serde_json::Value {
    let start = chrono::DateTime::from_timestamp(created_at.timestamp(), 0).unwrap_or(created_at);
    let wib = chrono::FixedOffset::east_opt(WIB_OFFSET_SECONDS).unwrap_or_else(|| chrono::FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
    let minutes = (expires_at - start).num_minutes().max(1);
    json!({
        "start_time": start.with_timezone(&wib).format("%Y-%m-%d %H:%M:%S %z").to_string(),
        "unit": "minute",
        "duration": minutes,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("payment gateway unreachable")]
    Unreachable(#[source] reqwest::Error),
    #[error("payment gateway answered HTTP {status}")]
    Status { status: u16 },
    #[error("payment gateway answered with an unexpected body")]
    BadBody(#[source] reqwest::Error),
    /// The Core API's body reports a failure worth retrying (5xx, 429, or our credentials).
    #[error("payment gateway declined for now: status_code {status_code}: {message}")]
    Declined { status_code: String, message: String },
}

/// What the refund API decided, read from the body's `status_code` (Midtrans' Core API reports
/// the outcome there, whatever the HTTP status). A failure worth retrying is an `Err`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAnswer {
    /// `status_code` 200: the refund is approved.
    Approved,
    /// A 4xx `status_code` (other than 401, 403, 429): refused for good; a person must look.
    Refused { status_code: String, message: String },
}

/// Reads a Core API answer's `status_code` (a string, sometimes a number) and message.
fn body_status(body: &serde_json::Value) -> Option<(u16, String, String)> {
    let code = match &body["status_code"] {
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let number = code.parse::<u16>().ok()?;
    let message = body["status_message"].as_str().unwrap_or_default().chars().take(200).collect();
    Some((number, code, message))
}

/// Judges a refund answer by the body's `status_code`; the HTTP status only when there is none.
pub fn judge_refund(http_status: u16, body: &[u8]) -> Result<RefundAnswer, GatewayError> {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    match parsed.as_ref().and_then(body_status) {
        Some((200, _, _)) if http_status < 400 => Ok(RefundAnswer::Approved),
        Some((n, status_code, message)) if (400..500).contains(&n) && !matches!(n, 401 | 403 | 429) => {
            Ok(RefundAnswer::Refused { status_code, message })
        }
        Some((_, status_code, message)) => Err(GatewayError::Declined { status_code, message }),
        None => Err(GatewayError::Status { status: http_status }),
    }
}


/// The `Authorization` header of every Midtrans API call: the server key as the Basic user, no password.
pub fn basic_authorization(server_key: &Secret) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:", server_key.expose())))
}

#[derive(Clone)]
pub struct MidtransClient {
    http: reqwest::Client,
    server_key: Secret,
    snap_base_url: String,
    api_base_url: String,
}

impl std::fmt::Debug for MidtransClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MidtransClient")
            .field("snap_base_url", &self.snap_base_url)
            .field("api_base_url", &self.api_base_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct SnapToken {
    token: String,
    redirect_url: String,
}

impl MidtransClient {
    pub fn new(config: &MidtransConfig) -> Result<Self, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(GatewayError::Unreachable)?;
        Ok(Self {
            http,
            server_key: config.server_key.clone(),
            snap_base_url: config.snap_base_url.trim_end_matches('/').to_owned(),
            api_base_url: config.api_base_url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn server_key(&self) -> &Secret {
        &self.server_key
    }

    fn authorization(&self) -> String {
        basic_authorization(&self.server_key)
    }

    /// Snap create-transaction: a payment page for the invoice's order, which the gateway
    /// expires exactly when the invoice does.
    pub async fn create_payment(&self, invoice: &Invoice) -> Result<PaymentLink, GatewayError> {
        let order_id = invoice.id.order_id();
        let body = json!({
            "transaction_details": {"order_id": order_id.to_string(), "gross_amount": invoice.amount.get()},
            "item_details": [{
                "id": "e-meterai-10000",
                "price": invoice.unit_price.get(),
                "quantity": invoice.quantity.get(),
                "name": "e-Meterai Rp10.000",
            }],
            "expiry": snap_expiry(invoice.created_at, invoice.expires_at),
        });
        let response = self
            .http
            .post(format!("{}/snap/v1/transactions", self.snap_base_url))
            .header("Authorization", self.authorization())
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .map_err(GatewayError::Unreachable)?;
        if !response.status().is_success() {
            return Err(GatewayError::Status { status: response.status().as_u16() });
        }
        let token: SnapToken = response.json().await.map_err(GatewayError::BadBody)?;
        Ok(PaymentLink { token: token.token, redirect_url: token.redirect_url })
    }

    /// Core API status of an order; `None` when the gateway has never seen it.
    pub async fn status(&self, order_id: &OrderId) -> Result<Option<TransactionReport>, GatewayError> {
        let response = self
            .http
            .get(format!("{}/v2/{order_id}/status", self.api_base_url))
            .header("Authorization", self.authorization())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(GatewayError::Unreachable)?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(GatewayError::Status { status: response.status().as_u16() });
        }
        let status: TransactionReport = response.json().await.map_err(GatewayError::BadBody)?;
        // Midtrans answers some "not found" cases with HTTP 200 and status_code 404 in the body.
        if status.status_code == "404" {
            return Ok(None);
        }
        Ok(Some(status))
    }

    /// Core API refund; `refund_key` makes a retry the same refund, never a second one. Judged by
    /// the body's `status_code`: an HTTP 200 carrying `"status_code": "412"` is a refusal.
    pub async fn refund(&self, order_id: &OrderId, refund_key: &str, amount: Rupiah, reason: &str) -> Result<RefundAnswer, GatewayError> {
        let response = self
            .http
            .post(format!("{}/v2/{order_id}/refund", self.api_base_url))
            .header("Authorization", self.authorization())
            .header("Accept", "application/json")
            .json(&json!({"refund_key": refund_key, "amount": amount.get(), "reason": reason}))
            .send()
            .await
            .map_err(GatewayError::Unreachable)?;
        let http_status = response.status().as_u16();
        let body = response.bytes().await.map_err(GatewayError::BadBody)?;
        judge_refund(http_status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_are_judged_by_the_body() {
        let ok = br#"{"status_code": "200", "status_message": "Success, refund request is approved"}"#;
        assert_eq!(judge_refund(200, ok).ok(), Some(RefundAnswer::Approved));
        let refused = br#"{"status_code": "412", "status_message": "Merchant cannot modify the status of the transaction"}"#;
        assert!(matches!(judge_refund(200, refused), Ok(RefundAnswer::Refused { ref status_code, .. }) if status_code == "412"));
        assert!(matches!(judge_refund(412, refused), Ok(RefundAnswer::Refused { .. })));
        assert!(matches!(judge_refund(200, br#"{"status_code": 404}"#), Ok(RefundAnswer::Refused { .. })));
        for transient in [&br#"{"status_code": "500"}"#[..], br#"{"status_code": "429"}"#, br#"{"status_code": "401"}"#, br#"{"status_code": "201"}"#] {
            assert!(matches!(judge_refund(200, transient), Err(GatewayError::Declined { .. })), "{transient:?}");
        }
        assert!(matches!(judge_refund(200, b"<html>"), Err(GatewayError::Status { status: 200 })));
        assert!(matches!(judge_refund(502, b""), Err(GatewayError::Status { status: 502 })));
        assert!(matches!(judge_refund(500, ok), Err(GatewayError::Declined { .. })), "a 200 body under HTTP 500 is not trusted");
    }
}
