//! Midtrans HTTP notifications: what one says, and what it means for us.

use serde::Deserialize;

/// What Midtrans reports about a transaction, in a notification or from the status API. Only
/// the fields we read; Midtrans sends many more, which are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct TransactionReport {
    pub order_id: String,
    pub status_code: String,
    pub gross_amount: String,
    pub transaction_status: String,
    #[serde(default)]
    pub transaction_id: Option<String>,
    #[serde(default)]
    pub fraud_status: Option<String>,
    #[serde(default)]
    pub payment_type: Option<String>,
}

impl TransactionReport {
    pub fn outcome(&self) -> PaymentOutcome {
        PaymentOutcome::of(&self.transaction_status, self.fraud_status.as_deref())
    }

    /// Whether the signed `status_code` agrees with what the unsigned `transaction_status`
    /// claims. Midtrans signs `order_id`, `status_code` and `gross_amount` only, so a settlement
    /// (or an accepted capture) is believed only with status code 200; anything else claiming
    /// money is a hint to confirm with the status API.
    pub fn signed_consistent(&self) -> bool {
        match self.outcome() {
            PaymentOutcome::Settled => self.status_code == "200",
            PaymentOutcome::Expired | PaymentOutcome::Cancelled | PaymentOutcome::NoChange => true,
        }
    }
}

/// An HTTP notification: the report, signed.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    #[serde(flatten)]
    pub report: TransactionReport,
    pub signature_key: String,
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



#[cfg(test)]
mod tests {
    use super::*;

    fn n(status: &str, fraud: Option<&str>) -> TransactionReport {
        TransactionReport {
            order_id: "o".into(),
            status_code: "200".into(),
            gross_amount: "10000.00".into(),
            transaction_status: status.into(),
            transaction_id: None,
            fraud_status: fraud.map(Into::into),
            payment_type: None,
        }
    }

    #[test]
    fn notifications_carry_a_report_and_a_signature() {
        let n: Notification = serde_json::from_str(
            r#"{"order_id":"o","status_code":"200","gross_amount":"1.00","transaction_status":"settlement","signature_key":"s","merchant_id":"m"}"#,
        )
        .expect("notification");
        assert_eq!((n.report.order_id.as_str(), n.signature_key.as_str()), ("o", "s"));
        assert_eq!(n.report.outcome(), PaymentOutcome::Settled);
        assert!(serde_json::from_str::<Notification>(r#"{"order_id":"o"}"#).is_err());
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

    #[test]
    fn only_a_signed_200_vouches_for_a_settlement() {
        assert!(n("settlement", None).signed_consistent());
        let mut forged = n("settlement", None);
        forged.status_code = "201".into();
        assert!(!forged.signed_consistent(), "a pending notification relabelled as settlement");
        let mut capture = n("capture", Some("accept"));
        capture.status_code = "201".into();
        assert!(!capture.signed_consistent());
        let mut expire = n("expire", None);
        expire.status_code = "407".into();
        assert!(expire.signed_consistent());
    }
}
