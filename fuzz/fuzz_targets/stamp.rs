//! Hostile input on the stamp entry points: `check`, `stamp` and `verify` must return, never
//! panic, hang or run away with memory, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::stamping::{self, Issuer, StampRequest};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fn issuer() -> &'static Issuer {
    static ISSUER: OnceLock<Issuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        Issuer::generate(&mut rng).expect("issuer")
    })
}

fuzz_target!(|data: &[u8]| {
    let serial = Serial::parse("0123456789ABCDEFGHIJKL").expect("valid serial");
    let placement = Placement::parse(None, 20.0, 20.0).expect("valid placement");
    let _ = stamping::check(data, &placement);
    let request = StampRequest {
        serial: &serial,
        placement: &placement,
        signed_at: chrono::DateTime::UNIX_EPOCH,
        verify_url: "https://example.test/v1/verify/0123456789ABCDEFGHIJKL",
    };
    if let Ok(stamped) = stamping::stamp(data, &request, issuer()) {
        let found = stamping::verify(&stamped.pdf, None).expect("our own output reads back");
        assert!(found.iter().any(|f| f.signature_valid), "our own stamp verifies");
    }
    let _ = stamping::verify(data, None);
});
