//! What a payment outcome does to an invoice, wherever it was learnt: a Midtrans notification
//! (webhook) or the gateway's status API (the sweep's reconciliation). One path, so a payment
//! whose notification never arrived is credited exactly as the webhook would.

use crate::config::PaymentPolicy;
use crate::domain::ids::OrderId;
use crate::domain::invoice::{InvoiceStatus, Review, Transition, on_payment};
use crate::domain::money::Rupiah;
use crate::domain::notification::PaymentOutcome;
use crate::ledger::invoices::{PaymentEvent, Recorded};
use crate::ledger::{Ledger, LedgerError};

/// A notification that keeps losing races gives up, so that the sender retries it later.
const STALE_RETRIES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no such order")]
    UnknownOrder,
    /// A settlement for an invoice that already ended (EXPIRED or CANCELLED) learnt only from a
    /// notification: confirm it with the gateway's status API before crediting.
    #[error("settlement of an ended invoice needs the gateway's confirmation")]
    Unconfirmed,
    #[error("gross_amount {received} differs from the invoice amount {expected}")]
    AmountMismatch { received: String, expected: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Applies `outcome` to the invoice of `order`. Duplicates, late and reordered outcomes end in
/// the same state as a single on-time one. `confirmed`: the outcome comes from the gateway's
/// status API (asked by us), not only from a notification.
pub async fn apply_outcome(
    ledger: &Ledger,
    order: &OrderId,
    outcome: PaymentOutcome,
    event: &PaymentEvent<'_>,
    policy: &PaymentPolicy,
    confirmed: bool,
) -> Result<(), ApplyError> {
    for _ in 0..STALE_RETRIES {
        let invoice = ledger.invoice(&order.invoice_id()).await?.ok_or(ApplyError::UnknownOrder)?;
        // A settlement after the invoice ended is unusual (a late payment, or a replayed
        // notification whose unsigned `transaction_status` was changed): the gateway decides.
        if outcome == PaymentOutcome::Settled
            && !confirmed
            && matches!(invoice.status, InvoiceStatus::Expired | InvoiceStatus::Cancelled)
        {
            return Err(ApplyError::Unconfirmed);
        }
        if outcome == PaymentOutcome::Settled && Rupiah::parse_gross_amount(event.gross_amount) != Ok(invoice.amount) {
            let review = Review {
                reason: "amount_mismatch".into(),
                gross_amount: event.gross_amount.to_owned(),
                flagged_at: event.received_at,
            };
            // Flagged once: a sweep that asks the gateway every run, or a repeated notification,
            // does not write the same flag again.
            let already = invoice.review.as_ref().is_some_and(|r| r.reason == review.reason && r.gross_amount == review.gross_amount);
            if !already {
                ledger.flag_for_review(&invoice.id, &review, event).await?;
            }
            tracing::warn!(invoice_id = %invoice.id, "settlement amount differs from invoice; flagged for review");
            return Err(ApplyError::AmountMismatch {
                received: event.gross_amount.to_owned(),
                expected: invoice.amount.to_gross_amount(),
            });
        }
        match on_payment(invoice.status, outcome) {
            Transition::Nothing => return Ok(()),
            Transition::Move { to, .. } => match ledger.record_payment(&invoice, to, event, policy).await? {
                Recorded::Applied => {
                    if to == InvoiceStatus::Paid {
                        crate::telemetry::record::credit(confirmed);
                    }
                    tracing::info!(invoice_id = %invoice.id, from = invoice.status.as_str(), to = to.as_str(), "payment recorded");
                    return Ok(());
                }
                Recorded::Stale => continue,
            },
        }
    }
    Err(ApplyError::Ledger(LedgerError::Contended))
}
