//! How many stamps a checkout buys.

use serde_json::Value;

pub const MIN_QUANTITY: u32 = 1;
pub const MAX_QUANTITY: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantity must be a whole number from {MIN_QUANTITY} to {MAX_QUANTITY}")]
pub struct QuantityOutOfRange;

impl Quantity {
    pub fn new(n: u32) -> Result<Self, QuantityOutOfRange> {
        if (MIN_QUANTITY..=MAX_QUANTITY).contains(&n) { Ok(Self(n)) } else { Err(QuantityOutOfRange) }
    }

    /// From a JSON value: only integers (1, 1.0 is refused: a count has no fraction).
    pub fn from_json(v: &Value) -> Result<Self, QuantityOutOfRange> {
        let n = v.as_u64().ok_or(QuantityOutOfRange)?;
        let n = u32::try_from(n).map_err(|_| QuantityOutOfRange)?;
        Self::new(n)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounds() {
        assert!(Quantity::new(0).is_err());
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(1000).map(Quantity::get), Ok(1000));
        assert!(Quantity::new(1001).is_err());
        for bad in [json!(-1), json!(1.5), json!(3.0), json!("3"), json!(null), json!(u64::MAX), json!([1])] {
            assert!(Quantity::from_json(&bad).is_err(), "{bad}");
        }
        assert_eq!(Quantity::from_json(&json!(3)).map(Quantity::get), Ok(3));
    }
}
