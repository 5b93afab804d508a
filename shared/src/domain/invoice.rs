//! The invoice and its state machine.
//!
//! PENDING → PAID | EXPIRED | CANCELLED; EXPIRED or CANCELLED → PAID when a payment settles late
//! (money taken is never lost); PAID → REFUNDED when all unused units are refunded.

use serde::Serialize;

use super::notification::PaymentOutcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvoiceStatus {
    Pending,
    Paid,
    Expired,
    Cancelled,
    Refunded,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Paid => "PAID",
            Self::Expired => "EXPIRED",
            Self::Cancelled => "CANCELLED",
            Self::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "PAID" => Self::Paid,
            "EXPIRED" => Self::Expired,
            "CANCELLED" => Self::Cancelled,
            "REFUNDED" => Self::Refunded,
            _ => return None,
        })
    }

    /// Whether the invoice's quantity counts as `pending` quota (units in an unpaid invoice).
    pub fn counts_as_pending(self) -> bool {
        self == Self::Pending
    }
}

/// What a payment outcome does to an invoice in a given status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move to `to`; `credit` adds the quantity to the account's available units.
    Move { to: InvoiceStatus, credit: bool },
    /// Already in the outcome's end state, or the outcome does not apply any more: answer OK.
    Nothing,
}

pub fn on_payment(status: InvoiceStatus, outcome: PaymentOutcome) -> Transition {
    use InvoiceStatus::*;
    match (status, outcome) {
        (Pending | Expired | Cancelled, PaymentOutcome::Settled) => Transition::Move { to: Paid, credit: true },
        (Pending, PaymentOutcome::Expired) => Transition::Move { to: Expired, credit: false },
        (Pending, PaymentOutcome::Cancelled) => Transition::Move { to: Cancelled, credit: false },
        _ => Transition::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvoiceStatus::*;

    #[test]
    fn settlement_credits_once_from_any_unpaid_state() {
        for s in [Pending, Expired, Cancelled] {
            assert_eq!(on_payment(s, PaymentOutcome::Settled), Transition::Move { to: Paid, credit: true });
        }
        assert_eq!(on_payment(Paid, PaymentOutcome::Settled), Transition::Nothing);
        assert_eq!(on_payment(Refunded, PaymentOutcome::Settled), Transition::Nothing);
    }

    #[test]
    fn failures_only_end_pending_invoices() {
        assert_eq!(on_payment(Pending, PaymentOutcome::Expired), Transition::Move { to: Expired, credit: false });
        assert_eq!(on_payment(Pending, PaymentOutcome::Cancelled), Transition::Move { to: Cancelled, credit: false });
        assert_eq!(on_payment(Paid, PaymentOutcome::Expired), Transition::Nothing);
        assert_eq!(on_payment(Paid, PaymentOutcome::Cancelled), Transition::Nothing);
        assert_eq!(on_payment(Pending, PaymentOutcome::NoChange), Transition::Nothing);
        for s in [Pending, Paid, Expired, Cancelled, Refunded] {
            assert_eq!(InvoiceStatus::parse(s.as_str()), Some(s));
        }
    }
}

use super::ids::{AccountId, InvoiceId, RefundId};
use super::refund::{RefundReason, RefundStatus};
use super::money::{AmountError, Rupiah};
use super::quantity::Quantity;
use super::time::Timestamp;

pub const CURRENCY: &str = "IDR";

/// Where the buyer pays (Midtrans Snap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLink {
    pub token: String,
    pub redirect_url: String,
}

/// A settlement whose amount was not the invoice's: nothing credited, a person must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub reason: String,
    pub gross_amount: String,
    pub flagged_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSummary {
    pub refund_id: RefundId,
    pub units: u32,
    pub amount: Rupiah,
    pub status: RefundStatus,
    pub reason: RefundReason,
    pub requested_at: Timestamp,
    pub updated_at: Timestamp,
    /// Times the gateway was asked and failed or refused.
    pub attempts: u32,
    /// The gateway's last refusal or failure, for the person who reviews it.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: InvoiceId,
    pub account: AccountId,
    pub status: InvoiceStatus,
    pub quantity: Quantity,
    pub unit_price: Rupiah,
    pub amount: Rupiah,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub payment: Option<PaymentLink>,
    pub used: u32,
    pub remaining: u32,
    pub refunded: u32,
    pub paid_at: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub refund: Option<RefundSummary>,
    pub review: Option<Review>,
}

impl Invoice {
    /// A new unpaid invoice. Units become `remaining` only when the payment settles.
    pub fn open(
        id: InvoiceId,
        account: AccountId,
        quantity: Quantity,
        unit_price: Rupiah,
        now: Timestamp,
        expiry: chrono::Duration,
    ) -> Result<Self, AmountError> {
        Ok(Self {
            id,
            account,
            status: InvoiceStatus::Pending,
            quantity,
            unit_price,
            amount: unit_price.times(quantity)?,
            created_at: now,
            expires_at: now + expiry,
            payment: None,
            used: 0,
            remaining: 0,
            refunded: 0,
            paid_at: None,
            valid_until: None,
            refund: None,
            review: None,
        })
    }

    /// Invariant 2 of the design: every unit of a paid invoice is used, remaining or refunded.
    pub fn units_balance(&self) -> bool {
        match self.status {
            InvoiceStatus::Paid | InvoiceStatus::Refunded => {
                u64::from(self.used) + u64::from(self.remaining) + u64::from(self.refunded)
                    == u64::from(self.quantity.get())
            }
            _ => self.used == 0 && self.remaining == 0 && self.refunded == 0,
        }
    }
}
