//! Refunds of unused units: 100% of the unused amount, one refund per invoice, its id derived
//! from the invoice's so that a retry can never become a second refund (the gateway's
//! `refund_key` is the refund id).

use super::ids::{InvoiceId, RefundId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// Units taken out of use; the gateway not yet asked.
    Requested,
    /// The gateway was asked (asking again with the same refund key is the same refund).
    Submitted,
    Completed,
    /// The gateway failed for now; retried by the sweep with exponential backoff.
    Failed,
    /// The gateway refused it for good (or it kept failing): never retried automatically and
    /// never shown as paid back; a person must look.
    NeedsReview,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Submitted => "SUBMITTED",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::NeedsReview => "NEEDS_REVIEW",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "REQUESTED" => Self::Requested,
            "SUBMITTED" => Self::Submitted,
            "COMPLETED" => Self::Completed,
            "FAILED" => Self::Failed,
            "NEEDS_REVIEW" => Self::NeedsReview,
            _ => return None,
        })
    }
    /// Whether the sweep still has to talk to the gateway about it.
    pub fn needs_submission(self) -> bool {
        !matches!(self, Self::Completed | Self::NeedsReview)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundReason {
    /// The buyer asked (`POST /v1/invoices/{id}/refund`).
    Requested,
    /// The quota's validity ended with units unused (the sweep).
    Expired,
    /// The payment settled only after the invoice ended and its grace period passed, and the
    /// configuration says to refund such payments (`EMETERAI_REFUND_LATE_PAYMENTS`).
    LatePayment,
}

impl RefundReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Expired => "expired",
            Self::LatePayment => "late_payment",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => Self::Requested,
            "expired" => Self::Expired,
            "late_payment" => Self::LatePayment,
            _ => return None,
        })
    }
}

/// The one refund an invoice can have.
pub fn refund_id_of(invoice: &InvoiceId) -> RefundId {
    RefundId::new(invoice.ulid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Ulid;

    #[test]
    fn one_refund_id_per_invoice() {
        let inv = InvoiceId::new(Ulid::generate(5, &mut rand::thread_rng()));
        assert_eq!(refund_id_of(&inv), refund_id_of(&inv));
        assert!(refund_id_of(&inv).to_string().starts_with("ref_"));
        for s in [RefundStatus::Requested, RefundStatus::Submitted, RefundStatus::Completed, RefundStatus::Failed] {
            assert_eq!(RefundStatus::parse(s.as_str()), Some(s));
        }
        assert!(!RefundStatus::Completed.needs_submission() && RefundStatus::Failed.needs_submission());
        assert!(!RefundStatus::NeedsReview.needs_submission());
        assert_eq!(RefundStatus::parse("NEEDS_REVIEW"), Some(RefundStatus::NeedsReview));
    }
}
