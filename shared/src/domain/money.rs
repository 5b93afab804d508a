//! Whole Indonesian rupiah.

use std::fmt;

use super::quantity::Quantity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rupiah(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is not a whole rupiah number")]
    Malformed,
    #[error("amount overflows")]
    Overflow,
}

impl Rupiah {
    pub const fn new(value: u64) -> Self {
        Self(value)
    }
    pub fn get(self) -> u64 {
        self.0
    }

    pub fn times(self, quantity: Quantity) -> Result<Self, AmountError> {
        self.0.checked_mul(u64::from(quantity.get())).map(Self).ok_or(AmountError::Overflow)
    }

    pub fn times_units(self, units: u32) -> Result<Self, AmountError> {
        self.0.checked_mul(u64::from(units)).map(Self).ok_or(AmountError::Overflow)
    }

    /// Midtrans' `gross_amount`: `"30000.00"`, `"30000"` or `"30000.0"`. Rupiah have no minor
    /// unit in practice, so any non-zero fraction is a different amount and is refused.
    pub fn parse_gross_amount(s: &str) -> Result<Self, AmountError> {
        let (whole, fraction) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let digits_only = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 19 || !digits_only(whole) || !digits_only(fraction) || fraction.len() > 2 {
            return Err(AmountError::Malformed);
        }
        if fraction.bytes().any(|b| b != b'0') {
            return Err(AmountError::Malformed);
        }
        whole.parse::<u64>().map(Self).map_err(|_| AmountError::Overflow)
    }

    /// How Midtrans writes the amount back in notifications.
    pub fn to_gross_amount(self) -> String {
        format!("{}.00", self.0)
    }
}

impl fmt::Display for Rupiah {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gross_amounts() {
        assert_eq!(Rupiah::parse_gross_amount("30000.00"), Ok(Rupiah::new(30000)));
        assert_eq!(Rupiah::parse_gross_amount("30000"), Ok(Rupiah::new(30000)));
        assert_eq!(Rupiah::parse_gross_amount("30000.0"), Ok(Rupiah::new(30000)));
        for bad in ["", ".00", "30000.50", "-1", "3e4", "30000.000", "1 0", "99999999999999999999"] {
            assert!(Rupiah::parse_gross_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(Rupiah::new(30000).to_gross_amount(), "30000.00");
    }

    #[test]
    fn multiplication_is_checked() {
        let q = Quantity::new(1000).expect("valid");
        assert_eq!(Rupiah::new(10000).times(q), Ok(Rupiah::new(10_000_000)));
        assert!(Rupiah::new(u64::MAX).times(q).is_err());
    }
}
