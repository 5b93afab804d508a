//! Midtrans HTTP notifications: what one says, and what it means for us.

use serde::Deserialize;
use utoipa::ToSchema;

/// What Midtrans reports about a transaction, in a notification or from the status API. Only
/// the fields we read; Midtrans sends many more (`transaction_time`, `status_message`,
/// `merchant_id`, `currency`, ...), which are ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TransactionReport {
    /// The order id of the invoice (`EMT-...`). Signed.
    #[schema(example = "EMT-01JDZ8Q7N3X5V2K4M6P8R0T2W4")]
    pub order_id: String,
    /// Midtrans' outcome code: `200` settled or captured, `201` pending, `202` denied or
    /// expired, ... Signed.
    #[schema(example = "200")]
    pub status_code: String,
    /// The amount in rupiah with two decimals, exactly as Midtrans sent it. Signed.
    #[schema(example = "30000.00")]
    pub gross_amount: String,
    /// `settlement`, `capture`, `pending`, `deny`, `cancel`, `expire`, `failure`, `refund`, ...
    /// Not signed: a settlement is believed only with `status_code` 200.
    #[schema(example = "settlement")]
    pub transaction_status: String,
    #[serde(default)]
    #[schema(example = "9aed5972-5b6a-401e-894b-a32c91ed1a3a")]
    pub transaction_id: Option<String>,
    /// For card captures: `accept`, `challenge` or `deny`.
    #[serde(default)]
    #[schema(example = "accept")]
    pub fraud_status: Option<String>,
    #[serde(default)]
    #[schema(example = "bank_transfer")]
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

/// A Midtrans HTTP notification: the report, signed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = MidtransNotification)]
pub struct Notification {
    #[serde(flatten)]
    pub report: TransactionReport,
    /// hex(SHA-512(order_id + status_code + gross_amount + server key)).
    #[schema(pattern = "^[0-9a-f]{128}$", example = "2496c78cac93a70ca08014bdaaff08eb7119ef79ef69c4833d4399cada077147febc1a231992eb8665a7e26d89b1dc323c13f721d21c7485f70bff06cca6eed3")]
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
