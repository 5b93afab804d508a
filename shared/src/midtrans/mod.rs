//! Midtrans, the payment gateway: the notification signature (here) and the HTTP client.

pub mod signature;
