//! Pure rules: no I/O, no AWS. Types here parse their input once and are valid from then on.

pub mod placement;
pub mod serial;
