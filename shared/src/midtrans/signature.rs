//! Midtrans notification signature: hex(SHA-512(order_id + status_code + gross_amount + server_key)).

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// The `signature_key` Midtrans puts in a notification for these fields.
pub fn signature_key(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str) -> String {
    let mut h = Sha512::new();
    h.update(order_id.as_bytes());
    h.update(status_code.as_bytes());
    h.update(gross_amount.as_bytes());
    h.update(server_key.as_bytes());
    hex::encode(h.finalize())
}

/// Whether `presented` is the right signature, compared in constant time (case-insensitive hex).
pub fn verify(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str, presented: &str) -> bool {
    let expected = signature_key(order_id, status_code, gross_amount, server_key);
    let presented = presented.to_ascii_lowercase();
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // sha512("1111200100000.00SB-Mid-server-LOCAL") computed independently with Python's hashlib.
        let sig = signature_key("1111", "200", "100000.00", "SB-Mid-server-LOCAL");
        assert_eq!(
            sig,
            "fba2f77c56813b95b604cec77ff76692ac817a693626f6f54633ce8acaab3083\
             6f07c002bee6062a90d2da420bf95f5e813dd7a75bd1a30012eaed9590617251"
        );
        assert!(verify("1111", "200", "100000.00", "SB-Mid-server-LOCAL", &sig));
        assert!(verify("1111", "200", "100000.00", "SB-Mid-server-LOCAL", &sig.to_uppercase()));
        assert!(!verify("1111", "200", "100000.01", "SB-Mid-server-LOCAL", &sig));
        assert!(!verify("1111", "200", "100000.00", "SB-Mid-server-LOCAL", "abc"));
    }
}
