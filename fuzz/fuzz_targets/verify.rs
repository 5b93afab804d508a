//! Hostile input on `verify` alone (the public `POST /v1/verify` path): it must return, never
//! panic, hang or run away with memory, whatever the bytes. Also reads every signature's CMS and
//! timestamp token, which the stamp target reaches only through documents that pass the checks.
#![no_main]

use emeterai::stamping;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = stamping::verify(data, None);
    let _ = stamping::verify(data, Some(&[data.get(..64).unwrap_or_default().to_vec()]));
    let _ = stamping::timestamp::read_token(data, None);
});
