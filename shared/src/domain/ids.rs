//! Identifiers. Invoice and order ids are time-ordered (48-bit milliseconds + 80 random bits,
//! Crockford base32) so that an account's invoices sort newest first without a counter.

use std::fmt;

use rand::RngCore;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ULID_LEN: usize = 26;
const MAX_ACCOUNT_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("account id must be 1 to {MAX_ACCOUNT_LEN} printable characters")]
    Account,
    #[error("not a valid identifier")]
    Malformed,
}

/// The account is the token's `sub` claim: any printable string the identity provider issued.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(sub: &str) -> Result<Self, IdError> {
        let ok = !sub.is_empty()
            && sub.len() <= MAX_ACCOUNT_LEN
            && sub.chars().all(|c| !c.is_control());
        if ok { Ok(Self(sub.to_owned())) } else { Err(IdError::Account) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 26-character time-ordered random id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ulid([u8; ULID_LEN]);

impl Ulid {
    pub fn generate(now_ms: u64, rng: &mut impl RngCore) -> Self {
        let mut random = [0u8; 10];
        rng.fill_bytes(&mut random);
        let mut value: u128 = u128::from(now_ms & 0xFFFF_FFFF_FFFF) << 80;
        for (i, b) in random.iter().enumerate() {
            value |= u128::from(*b) << (72 - 8 * i);
        }
        let mut out = [0u8; ULID_LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (ULID_LEN - 1 - i);
            *slot = CROCKFORD[((value >> shift) & 0x1F) as usize];
        }
        Self(out)
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bytes = s.as_bytes();
        if bytes.len() != ULID_LEN || !bytes.iter().all(|b| CROCKFORD.contains(b)) || bytes[0] > b'7' {
            return Err(IdError::Malformed);
        }
        let mut out = [0u8; ULID_LEN];
        out.copy_from_slice(bytes);
        Ok(Self(out))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII from CROCKFORD is ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn new(ulid: Ulid) -> Self {
                Self(ulid)
            }
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let rest = s.strip_prefix($prefix).ok_or(IdError::Malformed)?;
                Ulid::parse(rest).map(Self)
            }
            pub fn ulid(&self) -> Ulid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.as_str())
            }
        }
    };
}

prefixed_id!(
    /// Our invoice, as the API shows it.
    InvoiceId,
    "inv_"
);
prefixed_id!(
    /// The invoice's order id at Midtrans (alphanumeric and `-`, at most 50 characters).
    OrderId,
    "EMT-"
);
prefixed_id!(
    /// A refund of an invoice's unused units.
    RefundId,
    "ref_"
);
prefixed_id!(
    /// A document to stamp.
    DocumentId,
    "doc_"
);

impl InvoiceId {
    /// Each invoice has exactly one order id at the gateway, derived from it.
    pub fn order_id(&self) -> OrderId {
        OrderId(self.0)
    }
}

impl OrderId {
    pub fn invoice_id(&self) -> InvoiceId {
        InvoiceId(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = InvoiceId::new(Ulid::generate(1_700_000_000_000, &mut rng));
        let b = InvoiceId::new(Ulid::generate(1_700_000_000_001, &mut rng));
        assert!(a.to_string() < b.to_string());
        assert_eq!(InvoiceId::parse(&a.to_string()), Ok(a));
        assert_eq!(a.order_id().invoice_id(), a);
        assert!(a.order_id().to_string().starts_with("EMT-"));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in ["", "inv_", "inv_01", "EMT-01HZZZZZZZZZZZZZZZZZZZZZZZ", "inv_8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "inv_01HZZZZZZZZZZZZZZZZZZZZZZU", "inv_01hzzzzzzzzzzzzzzzzzzzzzzz"] {
            assert!(InvoiceId::parse(bad).is_err(), "{bad}");
        }
        assert!(OrderId::parse("inv_01HZZZZZZZZZZZZZZZZZZZZZZZ").is_err());
    }

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("alice").is_ok());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("a\nb").is_err());
        assert!(AccountId::parse(&"x".repeat(257)).is_err());
    }
}
