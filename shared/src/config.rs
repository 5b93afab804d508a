//! Typed configuration, read once per container from the environment.

use std::fmt;
use std::time::Duration;

use crate::domain::money::Rupiah;

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct MidtransConfig {
    pub server_key: Secret,
    /// Snap (checkout pages): `https://app.sandbox.midtrans.com` or the local simulator.
    pub snap_base_url: String,
    /// Core API (status, refund): `https://api.sandbox.midtrans.com` or the local simulator.
    pub api_base_url: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub bucket: Option<String>,
    pub unit_price: Rupiah,
    pub quota_validity_days: u32,
    /// How long after an invoice ended (EXPIRED or CANCELLED) the sweep asks the gateway once
    /// more, long enough for any payment method's late settlement.
    pub late_settlement_grace: chrono::Duration,
    /// A settlement found by that last look is refunded in full instead of credited.
    pub refund_late_payments: bool,
    pub invoice_expiry: chrono::Duration,
    pub reconcile_after: chrono::Duration,
    /// Per-account limits (429 when reached): generous for any applicant or integrator, so they
    /// only stop a runaway client or a hostile account from filling the table.
    pub limits: AccountLimits,
    /// Public base URL of the API; the QR code of a stamp points at `{this}/v1/verify/{serial}`.
    pub verify_base_url: String,
    pub midtrans: MidtransConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// How much one account may hold open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    /// PENDING invoices (`EMETERAI_MAX_UNPAID_CHECKOUTS`, default 100).
    pub unpaid_checkouts: u32,
    /// Documents AWAITING_UPLOAD or PROCESSING (`EMETERAI_MAX_OPEN_DOCUMENTS`, default 500).
    pub open_documents: u32,
}

pub const LOCAL_MIDTRANS_SERVER_KEY: &str = "SB-Mid-server-LOCAL";

/// What a payment outcome does besides moving the invoice: how long credited quota stays valid,
/// and when an ended invoice gets its last look at the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentPolicy {
    pub quota_validity_days: u32,
    pub late_settlement_grace: chrono::Duration,
}

impl Config {
    pub fn payment_policy(&self) -> PaymentPolicy {
        PaymentPolicy { quota_validity_days: self.quota_validity_days, late_settlement_grace: self.late_settlement_grace }
    }

    /// The documents bucket, required by the functions that handle documents.
    pub fn require_bucket(&self) -> Result<&str, ConfigError> {
        self.bucket.as_deref().ok_or(ConfigError::Missing("EMETERAI_BUCKET"))
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| lookup(name).filter(|v| !v.is_empty()).ok_or(ConfigError::Missing(name));
        let number = |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match lookup(name).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError::Invalid { name, reason: format!("expected a whole number from {min} to {max}") }),
                },
            }
        };
        let minutes = |n: u64| chrono::Duration::minutes(i64::try_from(n).unwrap_or(i64::MAX));
        Ok(Self {
            table: required("EMETERAI_TABLE")?,
            bucket: lookup("EMETERAI_BUCKET").filter(|v| !v.is_empty()),
            unit_price: Rupiah::new(number("EMETERAI_UNIT_PRICE", 10_000, 1, 1_000_000_000)?),
            quota_validity_days: u32::try_from(number("EMETERAI_QUOTA_VALIDITY_DAYS", 14, 1, 3650)?).unwrap_or(14),
            late_settlement_grace: chrono::Duration::hours(
                i64::try_from(number("EMETERAI_LATE_SETTLEMENT_GRACE_HOURS", 72, 1, 24 * 60)?).unwrap_or(72),
            ),
            refund_late_payments: match lookup("EMETERAI_REFUND_LATE_PAYMENTS").as_deref().map(str::trim) {
                None | Some("" | "false" | "0") => false,
                Some("true" | "1") => true,
                Some(_) => {
                    return Err(ConfigError::Invalid { name: "EMETERAI_REFUND_LATE_PAYMENTS", reason: "expected true or false".into() });
                }
            },
            invoice_expiry: minutes(number("EMETERAI_INVOICE_EXPIRY_MINUTES", 24 * 60, 1, 60 * 24 * 30)?),
            reconcile_after: minutes(number("EMETERAI_RECONCILE_AFTER_MINUTES", 10, 1, 60 * 24)?),
            limits: AccountLimits {
                unpaid_checkouts: u32::try_from(number("EMETERAI_MAX_UNPAID_CHECKOUTS", 100, 1, 100_000)?).unwrap_or(100),
                // At most 10,000: the check reads up to this many small index items.
                open_documents: u32::try_from(number("EMETERAI_MAX_OPEN_DOCUMENTS", 500, 1, 10_000)?).unwrap_or(500),
            },
            verify_base_url: lookup("EMETERAI_VERIFY_BASE_URL")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "http://127.0.0.1:3000".into()),
            midtrans: MidtransConfig {
                server_key: Secret::new(required("EMETERAI_MIDTRANS_SERVER_KEY")?),
                snap_base_url: lookup("EMETERAI_MIDTRANS_SNAP_BASE_URL")
                    .unwrap_or_else(|| "https://app.sandbox.midtrans.com".into()),
                api_base_url: lookup("EMETERAI_MIDTRANS_API_BASE_URL")
                    .unwrap_or_else(|| "https://api.sandbox.midtrans.com".into()),
                timeout: Duration::from_millis(number("EMETERAI_MIDTRANS_TIMEOUT_MS", 5_000, 100, 60_000)?),
            },
        })
    }
}

/// The AWS SDK configuration of this environment (region, credentials, and the
/// `AWS_ENDPOINT_URL_*` overrides the local stack uses), loaded once per container.
/// Throttling and transient errors are retried with exponential backoff and jitter (standard
/// mode), a few more times than the SDK's default of 3 attempts.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_and_errors() {
        let base = [("EMETERAI_TABLE", "t"), ("EMETERAI_MIDTRANS_SERVER_KEY", "k")];
        let c = Config::from_lookup(lookup(&base)).expect("valid");
        assert_eq!(c.unit_price, Rupiah::new(10_000));
        assert_eq!(c.quota_validity_days, 14);
        assert_eq!(c.invoice_expiry, chrono::Duration::hours(24));
        assert_eq!((c.late_settlement_grace, c.refund_late_payments), (chrono::Duration::hours(72), false));
        assert_eq!(c.limits, AccountLimits { unpaid_checkouts: 100, open_documents: 500 });
        let limited = [base[0], base[1], ("EMETERAI_MAX_UNPAID_CHECKOUTS", "2"), ("EMETERAI_MAX_OPEN_DOCUMENTS", "3")];
        assert_eq!(Config::from_lookup(lookup(&limited)).expect("valid").limits, AccountLimits { unpaid_checkouts: 2, open_documents: 3 });
        let unlimited = [base[0], base[1], ("EMETERAI_MAX_OPEN_DOCUMENTS", "0")];
        assert!(matches!(Config::from_lookup(lookup(&unlimited)), Err(ConfigError::Invalid { name: "EMETERAI_MAX_OPEN_DOCUMENTS", .. })));
        let refunding = [base[0], base[1], ("EMETERAI_REFUND_LATE_PAYMENTS", "true")];
        assert!(Config::from_lookup(lookup(&refunding)).expect("valid").refund_late_payments);
        let unclear = [base[0], base[1], ("EMETERAI_REFUND_LATE_PAYMENTS", "yes please")];
        assert!(matches!(Config::from_lookup(lookup(&unclear)), Err(ConfigError::Invalid { .. })));
        assert!(!format!("{c:?}").contains("\"k\""), "server key must not print");
        assert!(matches!(Config::from_lookup(lookup(&base[..1])), Err(ConfigError::Missing("EMETERAI_MIDTRANS_SERVER_KEY"))));
        let bad = [base[0], base[1], ("EMETERAI_UNIT_PRICE", "ten")];
        assert!(matches!(Config::from_lookup(lookup(&bad)), Err(ConfigError::Invalid { .. })));
        let priced = [base[0], base[1], ("EMETERAI_UNIT_PRICE", "12000")];
        assert_eq!(Config::from_lookup(lookup(&priced)).expect("valid").unit_price, Rupiah::new(12_000));
    }
}
