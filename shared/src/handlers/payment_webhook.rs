//! The payment-webhook function: Midtrans HTTP notifications, credited exactly once.

use http::Method;

use super::json_body;
use crate::config::{PaymentPolicy, Secret};
use super::payments::{ApplyError, apply_outcome};
use crate::domain::ids::OrderId;
use crate::domain::notification::Notification;
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::ledger::Ledger;
use crate::ledger::invoices::PaymentEvent;
use crate::domain::notification::TransactionReport;
use crate::domain::time::Timestamp;
use crate::midtrans::{MidtransClient, signature};

#[derive(Debug, Clone)]
pub struct PaymentWebhookService {
    pub ledger: Ledger,
    pub server_key: Secret,
    pub policy: PaymentPolicy,
    /// The status API, asked when a notification's signed fields do not vouch for what it says.
    pub gateway: MidtransClient,
    /// When the gateway cannot be asked, the sweep asks again this much later.
    pub recheck_after: chrono::Duration,
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
            (_, segments) => Err(super::openapi::unrouted(segments)),
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
        let now = chrono::Utc::now();
        if !report.signed_consistent() {
            // e.g. a signed `pending` (status code 201) relabelled `settlement`: the signature
            // does not cover `transaction_status`, so only the gateway can say what happened.
            tracing::warn!(order_id = %order, status_code = report.status_code, transaction_status = report.transaction_status,
                "notification's signed status code does not match its status; asking the gateway");
            return self.confirm(&order, now).await;
        }
        let event = PaymentEvent::of(report, now);
        match apply_outcome(&self.ledger, &order, report.outcome(), &event, &self.policy, false).await {
            Err(ApplyError::Unconfirmed) => self.confirm(&order, now).await,
            other => self.answer(other),
        }
    }

    fn answer(&self, applied: Result<(), ApplyError>) -> Result<ApiResponse, ApiError> {
        match applied {
            Ok(()) => Ok(ok()),
            Err(ApplyError::UnknownOrder) => Err(ApiError::NotFound("no such order")),
            Err(ApplyError::AmountMismatch { received, expected }) => Err(ApiError::AmountMismatch { received, expected }),
            Err(ApplyError::Ledger(e)) => Err(e.into()),
            // Only notifications are unconfirmed; the status API's answer is the confirmation.
            Err(ApplyError::Unconfirmed) => Ok(ok()),
        }
    }

    /// Applies what the gateway's status API says about `order`, not what a notification said.
    /// When the gateway cannot be asked, an ended invoice is put on the sweep's list to ask it
    /// later (a PENDING one is reconciled by the sweep anyway): the answer is OK because that
    /// follow-up is durable, and nothing was credited on the notification's word.
    async fn confirm(&self, order: &OrderId, now: Timestamp) -> Result<ApiResponse, ApiError> {
        match self.gateway.status(order).await {
            Ok(Some(said)) if said.order_id == order.to_string() && said.signed_consistent() => {
                let event = PaymentEvent::of(&said, now);
                let applied = apply_outcome(&self.ledger, order, said.outcome(), &event, &self.policy, true).await;
                self.answer(applied)
            }
            Ok(said) => {
                tracing::warn!(order_id = %order, gateway = ?said.as_ref().map(|r: &TransactionReport| &r.transaction_status),
                    "the gateway does not confirm the notification; nothing credited");
                self.known_order(order).await
            }
            Err(e) => {
                tracing::warn!(order_id = %order, error = %e, "cannot confirm a notification with the gateway; the sweep asks later");
                self.ledger.schedule_recheck(&order.invoice_id(), now + self.recheck_after).await?;
                self.known_order(order).await
            }
        }
    }

    async fn known_order(&self, order: &OrderId) -> Result<ApiResponse, ApiError> {
        match self.ledger.invoice(&order.invoice_id()).await? {
            Some(_) => Ok(ok()),
            None => Err(ApiError::NotFound("no such order")),
        }
    }
}

fn ok() -> ApiResponse {
    ApiResponse::json(200, super::views::to_json(&super::views::StatusOk::OK))
}
