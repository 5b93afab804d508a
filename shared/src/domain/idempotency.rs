//! Idempotent HTTP requests, after AWS Powertools' design: one record per (account, key) that is
//! INPROGRESS while the first request runs and COMPLETED with its response afterwards.

use std::fmt;

use sha2::{Digest, Sha256};

pub const MAX_KEY_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to {MAX_KEY_LEN} characters of A-Z a-z 0-9 - _ : .")]
pub struct InvalidIdempotencyKey;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, InvalidIdempotencyKey> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.');
        if s.is_empty() || s.len() > MAX_KEY_LEN || !s.bytes().all(allowed) {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Fingerprint of a request's meaning: the same JSON (whitespace and key order aside) gives the
/// same hash. serde_json's default map is sorted, which makes the serialisation canonical.
pub fn request_hash(route: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(body).unwrap_or_default());
    hex::encode(h.finalize())
}

/// The response a COMPLETED record replays, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What a claim found already stored under the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExistingRecord {
    InProgress { request_hash: String },
    Completed { request_hash: String, response: StoredResponse },
}

/// What to answer when a claim fails because the key is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    Replay(StoredResponse),
    KeyReused,
    InProgress,
}

/// A claim only fails on a live record (absent, expired and abandoned records are claimable),
/// so the decision depends only on what the record holds.
pub fn refusal(existing: &ExistingRecord, request_hash: &str) -> ClaimRefusal {
    match existing {
        ExistingRecord::Completed { request_hash: stored, response } if stored == request_hash => {
            ClaimRefusal::Replay(response.clone())
        }
        ExistingRecord::Completed { .. } => ClaimRefusal::KeyReused,
        ExistingRecord::InProgress { request_hash: stored } if stored != request_hash => ClaimRefusal::KeyReused,
        ExistingRecord::InProgress { .. } => ClaimRefusal::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse("order-42_x:y.z").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        for bad in ["", "a b", "a#b", "ключ", "a/b"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
    }

    #[test]
    fn hash_ignores_formatting_but_not_meaning() {
        let a: serde_json::Value = serde_json::from_str(r#"{"quantity": 3, "x": 1}"#).expect("json");
        let b: serde_json::Value = serde_json::from_str(r#"{"x":1,"quantity":3}"#).expect("json");
        assert_eq!(request_hash("r", &a), request_hash("r", &b));
        assert_ne!(request_hash("r", &a), request_hash("r", &json!({"quantity": 4, "x": 1})));
        assert_ne!(request_hash("r", &a), request_hash("s", &a));
    }

    #[test]
    fn refusals() {
        let response = StoredResponse { status: 201, body: "{}".into() };
        let done = ExistingRecord::Completed { request_hash: "h".into(), response: response.clone() };
        assert_eq!(refusal(&done, "h"), ClaimRefusal::Replay(response));
        assert_eq!(refusal(&done, "other"), ClaimRefusal::KeyReused);
        let running = ExistingRecord::InProgress { request_hash: "h".into() };
        assert_eq!(refusal(&running, "h"), ClaimRefusal::InProgress);
        assert_eq!(refusal(&running, "other"), ClaimRefusal::KeyReused);
    }
}
