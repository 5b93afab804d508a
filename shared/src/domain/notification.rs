//! Midtrans HTTP notifications: what one says, and what it means for us.

use serde::Deserialize;

/// The fields we read. Midtrans sends many more; they are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    pub order_id: String,
    pub status_code: String,
    pub gross_amount: String,
    pub transaction_status: String,
    pub signature_key: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub fraud_status: Option<String>,
    #[serde(default)]
    pub payment_type: Option<String>,
}

/// What a notification asks of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Money taken: credit the invoice's quantity (exactly once).
    Settled,
    /// The payment will never come: the invoice ends EXPIRED.
    Expired,
    /// The payment was refused or withdrawn: the invoice ends CANCELLED.
    Cancelled,
    /// Nothing to do yet (`pending`, a `capture` under fraud review, refund echoes, unknown states).
    NoChange,
}

impl PaymentOutcome {
    /// The meaning of a Midtrans `transaction_status` (with `fraud_status` for card captures),
    /// whether it came in a notification or from the status API.
    pub fn of(transaction_status: &str, fraud_status: Option<&str>) -> Self {
        match transaction_status {
            "settlement" => Self::Settled,
            "capture" if fraud_status == Some("accept") => Self::Settled,
            "expire" => Self::Expired,
            "cancel" | "deny" | "failure" => Self::Cancelled,
            _ => Self::NoChange,
        }
    }
}

impl Notification {
    pub fn outcome(&self) -> PaymentOutcome {
        PaymentOutcome::of(&self.transaction_status, self.fraud_status.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(status: &str, fraud: Option<&str>) -> Notification {
        Notification {
            order_id: "o".into(),
            status_code: "200".into(),
            gross_amount: "10000.00".into(),
            transaction_status: status.into(),
            signature_key: String::new(),
            transaction_id: None,
            fraud_status: fraud.map(Into::into),
            payment_type: None,
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(n("settlement", None).outcome(), PaymentOutcome::Settled);
        assert_eq!(n("capture", Some("accept")).outcome(), PaymentOutcome::Settled);
        assert_eq!(n("capture", Some("challenge")).outcome(), PaymentOutcome::NoChange);
        assert_eq!(n("expire", None).outcome(), PaymentOutcome::Expired);
        for s in ["cancel", "deny", "failure"] {
            assert_eq!(n(s, None).outcome(), PaymentOutcome::Cancelled);
        }
        assert_eq!(n("pending", None).outcome(), PaymentOutcome::NoChange);
        assert_eq!(n("refund", None).outcome(), PaymentOutcome::NoChange);
    }
}
