//! Pure rules: no I/O, no AWS. Types here parse their input once and are valid from then on.

pub mod document;
pub mod idempotency;
pub mod ids;
pub mod invoice;
pub mod money;
pub mod notification;
pub mod placement;
pub mod quantity;
pub mod refund;
pub mod serial;
pub mod time;
