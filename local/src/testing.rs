//! Helpers for integration tests that run against the real local services
//! (`scripts/with-test-services.sh` starts them and exports their endpoints).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variables `scripts/with-test-services.sh` exports; tests need every one.
pub const REQUIRED_ENV: [&str; 4] =
    ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_REGION"];

/// Panics with how to fix it when the test services' endpoints are not in the environment, so a
/// test never silently talks to real AWS.
pub fn require_test_services() {
    let missing: Vec<_> = REQUIRED_ENV.iter().filter(|v| std::env::var_os(v).is_none()).collect();
    assert!(
        missing.is_empty(),
        "{missing:?} not set: run the tests through `make test` or `scripts/with-test-services.sh cargo test`"
    );
}

/// A name no other test of any concurrent run uses: lower case letters, digits and dashes,
/// valid as a DynamoDB table name and as an S3 bucket name (at most 63 characters).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .map(|c| c.to_ascii_lowercase())
        .take(20)
        .collect();
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos % 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_bucket_safe() {
        let a = unique_name("Infra Test_!");
        let b = unique_name("Infra Test_!");
        assert_ne!(a, b);
        for name in [&a, &b] {
            assert!(name.len() >= 3 && name.len() <= 63, "{name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
        }
    }
}
