//! The local stack of e-Meterai: development tooling that runs the real functions on one machine.
//! Nothing here is deployed.
//!
//! - `template`: reads `template.yaml`, the single source of the table, bucket, routes and triggers.
//! - `provision`: creates the table and bucket that `template.yaml` declares on local services.
//! - `apigw`: API Gateway HTTP API behaviour: route matching, payload 2.0 events and responses.
//! - `midtrans_sim`: a Midtrans-compatible payment simulator (Snap, status, refund, notifications).
//! - `testing`: unique names and environment checks for integration tests.

pub mod apigw;
pub mod midtrans_sim;
pub mod provision;
pub mod template;
pub mod testing;
