//! The local stack of e-Meterai: development tooling that runs the real functions on one machine.
//! Nothing here is deployed.
//!
//! - `template`: reads `template.yaml`, the single source of the table, bucket, routes and triggers.
//! - `provision`: creates the table and bucket that `template.yaml` declares on local services.
//! - `apigw`: API Gateway HTTP API behaviour: route matching, payload 2.0 events and responses.
//! - `lambda`: invoking functions through the Lambda emulator; EventBridge schedule events.
//! - `midtrans_sim`: a Midtrans-compatible payment simulator (Snap, status, refund, notifications).
//! - `s3_events`: SeaweedFS filer notifications as S3 `ObjectCreated:Put` event records.
//! - `testing`: unique names and environment checks for integration tests.

pub mod apigw;
pub mod lambda;
pub mod midtrans_sim;
pub mod provision;
pub mod s3_events;
pub mod template;
pub mod testing;
