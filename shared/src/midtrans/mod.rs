//! Midtrans, the payment gateway: the notification signature and the HTTP client.

pub mod client;
pub mod signature;

pub use client::{GatewayError, MidtransClient, RefundAnswer};
