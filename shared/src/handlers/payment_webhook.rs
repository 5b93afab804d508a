//! The payment-webhook function: Midtrans HTTP notifications, credited exactly once.

use http::Method;
use serde_json::json;

use super::json_body;
use crate::config::Secret;
use super::payments::{ApplyError, apply_outcome};
use crate::domain::ids::OrderId;
use crate::domain::notification::Notification;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::ledger::Ledger;
use crate::ledger::invoices::PaymentEvent;
use crate::midtrans::signature;

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
        let report = &n.report;
        // The signature is checked over the fields exactly as received.
        let key = self.server_key.expose();
        if !signature::verify(&report.order_id, &report.status_code, &report.gross_amount, key, &n.signature_key) {
            return Err(ApiError::BadSignature);
        }
        let order = OrderId::parse(&report.order_id).map_err(|_| ApiError::NotFound("no such order"))?;
        let event = PaymentEvent::of(report, chrono::Utc::now());
        match apply_outcome(&self.ledger, &order, report.outcome(), &event, self.quota_validity_days).await {
            Ok(()) => Ok(ApiResponse::json(200, json!({"status": "ok"}).to_string())),
            Err(ApplyError::UnknownOrder) => Err(ApiError::NotFound("no such order")),
            Err(ApplyError::AmountMismatch { received, expected }) => Err(ApiError::AmountMismatch { received, expected }),
            Err(ApplyError::Ledger(e)) => Err(e.into()),
        }
    }
}
