//! Times as the API and the ledger write them: RFC 3339 UTC with milliseconds, fixed width, so
//! that string order is time order (DynamoDB sort keys rely on it).

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn format(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Where a handler reads "now": the wall clock in production, a clock a test sets when it races
/// time-dependent rules (quota validity, expiry) against each other.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_round_trip() {
        let t = parse("2026-11-28T12:00:00+07:00").expect("valid");
        assert_eq!(format(t), "2026-11-28T05:00:00.000Z");
        assert_eq!(parse(&format(t)), Some(t));
        assert!(parse("yesterday").is_none());
    }
}
