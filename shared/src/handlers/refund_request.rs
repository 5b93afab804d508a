//! `POST /v1/invoices/{id}/refund`: every unused unit of a PAID invoice, refunded in full.

use serde_json::json;

use super::checkout::{CheckoutService, caller};
use super::views;
use crate::domain::idempotency::{ClaimRefusal, IdempotencyKey, StoredResponse, request_hash};
use crate::domain::refund::{RefundReason, refund_id_of};
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::ledger::idempotency::{Claim, Claimed};
use crate::ledger::refunds::RefundRequested;

const IN_PROGRESS_MS: i64 = 30_000;

impl CheckoutService {
    pub(crate) async fn refund(&self, req: &ApiRequest, id: &str) -> Result<ApiResponse, ApiError> {
        let invoice = self.owned_invoice(req, id).await?;
        let account = caller(req)?;
        let key = req
            .header("idempotency-key")
            .map(|k| IdempotencyKey::parse(k).map_err(|e| ApiError::IdempotencyKeyInvalid(e.to_string())))
            .transpose()?;
        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let hash = request_hash("POST /v1/invoices/{invoice_id}/refund", &json!({"invoice_id": invoice.id.to_string()}));
        let claim = key.as_ref().map(|key| Claim {
            account: &account,
            key,
            request_hash: &hash,
            now_ms,
            in_progress_until_ms: req.deadline_ms.filter(|d| *d > now_ms).unwrap_or(now_ms + IN_PROGRESS_MS),
        });
        let mut invoice = invoice;
        let mut taken_over = false;
        if let Some(claim) = &claim {
            match self.ledger.claim(claim, &refund_id_of(&invoice.id).to_string()).await? {
                Claimed::Fresh => {}
                // An earlier attempt of this request died after its refund may have been made:
                // look again, and replay that refund rather than answer "nothing to refund".
                Claimed::TakenOver { .. } => {
                    invoice = self.owned_invoice(req, id).await?;
                    taken_over = true;
                }
                Claimed::Refused(ClaimRefusal::Replay(stored)) => {
                    return Ok(ApiResponse::json(stored.status, stored.body).with_header("idempotent-replayed", "true"));
                }
                Claimed::Refused(ClaimRefusal::KeyReused) => return Err(ApiError::IdempotencyKeyReused),
                Claimed::Refused(ClaimRefusal::InProgress) => return Err(ApiError::IdempotencyKeyInProgress),
                // A bare claim has no other action to decline.
                Claimed::ActionDeclined { .. } => return Err(ApiError::Internal("a bare idempotency claim was declined".into())),
            }
        }
        let outcome = match &invoice.refund {
            Some(summary) if taken_over && summary.refund_id == refund_id_of(&invoice.id) => {
                Ok(StoredResponse { status: 202, body: views::to_json(&views::refund(&invoice, summary)) })
            }
            _ => match self.ledger.request_refund(&invoice, RefundReason::Requested, now).await {
                Ok(RefundRequested::Created(summary)) => {
                    Ok(StoredResponse { status: 202, body: views::to_json(&views::refund(&invoice, &summary)) })
                }
                Ok(RefundRequested::NothingToRefund) => Err(ApiError::NothingToRefund),
                Err(e) => Err(ApiError::from(e)),
            },
        };
        let response = match (outcome, &claim) {
            (Ok(response), Some(claim)) => {
                // The refund exists either way; a response that cannot be stored is logged, and a
                // retry after the claim's expiry takes it over and replays this same refund.
                if let Err(e) = self.ledger.complete(claim, &response).await {
                    tracing::error!(invoice_id = %invoice.id, error = ?e, "could not store the refund response");
                }
                response
            }
            (Ok(response), None) => response,
            // Only successes are replayed; a failed attempt frees the key for a retry.
            (Err(e), Some(claim)) => {
                self.ledger.release(claim).await?;
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        };
        Ok(ApiResponse::json(response.status, response.body))
    }
}
