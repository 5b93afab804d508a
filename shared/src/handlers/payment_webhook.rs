//! The payment-webhook function: Midtrans HTTP notifications, credited exactly once.

use http::Method;
use serde_json::json;

use super::json_body;
use crate::config::Secret;
use crate::domain::ids::OrderId;
use crate::domain::invoice::{Review, Transition, on_payment};
use crate::domain::money::Rupiah;
use crate::domain::notification::{Notification, PaymentOutcome};
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::ledger::Ledger;
use crate::ledger::invoices::{PaymentEvent, Recorded};
use crate::midtrans::signature;

/// A notification that keeps losing races is answered 503 so that Midtrans retries it.
const STALE_RETRIES: usize = 8;

#[derive(Debug, Clone)]
pub struct PaymentWebhookService {
    pub ledger: Ledger,
    pub server_key: Secret,
    pub quota_validity_days: u32,
}

impl PaymentWebhookService {
    pub async fn handle(
        &self,
        event: lambda_http::Request,
    ) -> Result<lambda_http::Response<lambda_http::Body>, std::convert::Infallible> {
        Ok(self.respond(ApiRequest::from_lambda(event)).await.into_lambda())
    }

    pub async fn respond(&self, req: ApiRequest) -> ApiResponse {
        let result = match (&req.method, req.segments().as_slice()) {
            (&Method::POST, ["v1", "webhooks", "midtrans"]) => self.notification(&req).await,
            (_, ["v1", "webhooks", "midtrans"]) => Err(ApiError::MethodNotAllowed),
            _ => Err(ApiError::NotFound("no such route")),
        };
        result.unwrap_or_else(|e| e.to_response())
    }

    async fn notification(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let body = json_body(req)?;
        let n: Notification = serde_json::from_value(body)
            .map_err(|e| ApiError::BadRequest(format!("not a Midtrans notification: {e}")))?;
        // The signature is checked over the fields exactly as received.
        if !signature::verify(&n.order_id, &n.status_code, &n.gross_amount, self.server_key.expose(), &n.signature_key) {
            return Err(ApiError::BadSignature);
        }
        let order = OrderId::parse(&n.order_id).map_err(|_| ApiError::NotFound("no such order"))?;
        let event = PaymentEvent {
            transaction_status: &n.transaction_status,
            transaction_id: n.transaction_id.as_deref(),
            status_code: &n.status_code,
            gross_amount: &n.gross_amount,
            payment_type: n.payment_type.as_deref(),
            received_at: chrono::Utc::now(),
        };
        let outcome = n.outcome();

        for _ in 0..STALE_RETRIES {
            let invoice = self.ledger.invoice(&order.invoice_id()).await?.ok_or(ApiError::NotFound("no such order"))?;
            if outcome == PaymentOutcome::Settled && Rupiah::parse_gross_amount(&n.gross_amount) != Ok(invoice.amount) {
                let review = Review {
                    reason: "amount_mismatch".into(),
                    gross_amount: n.gross_amount.clone(),
                    flagged_at: event.received_at,
                };
                self.ledger.flag_for_review(&invoice.id, &review, &event).await?;
                tracing::warn!(invoice_id = %invoice.id, "settlement amount differs from invoice; flagged for review");
                return Err(ApiError::AmountMismatch {
                    received: n.gross_amount.clone(),
                    expected: invoice.amount.to_gross_amount(),
                });
            }
            match on_payment(invoice.status, outcome) {
                Transition::Nothing => return Ok(ok()),
                Transition::Move { to, .. } => {
                    match self.ledger.record_payment(&invoice, to, &event, self.quota_validity_days).await? {
                        Recorded::Applied => {
                            tracing::info!(invoice_id = %invoice.id, from = invoice.status.as_str(), to = to.as_str(), "payment recorded");
                            return Ok(ok());
                        }
                        Recorded::Stale => continue,
                    }
                }
            }
        }
        Err(ApiError::Unavailable(crate::ledger::LedgerError::Contended))
    }
}

fn ok() -> ApiResponse {
    ApiResponse::json(200, json!({"status": "ok"}).to_string())
}
