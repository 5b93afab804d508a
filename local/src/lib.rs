//! The local stack of e-Meterai: development tooling that runs the real functions on one machine.
//! Nothing here is deployed.
//!
//! - `template`: reads `template.yaml`, the single source of the table, bucket, routes and triggers.
//! - `provision`: creates the table and bucket that `template.yaml` declares on local services.
//! - `apigw`: API Gateway HTTP API behaviour: route matching, payload 2.0 events and responses.
//! - `gateway`: the local gateway (HTTP API, S3 notifications, schedules, `/dev/...` routes).
//! - `instance`: one function instance under its template `MemorySize` and `Timeout` (cargo's
//!   runner under `cargo lambda watch`).
//! - `lambda`: invoking functions through the Lambda emulator; EventBridge schedule events.
//! - `midtrans_sim`: a Midtrans-compatible payment simulator (Snap, status, refund, notifications).
//! - `s3_events`: SeaweedFS filer notifications as S3 `ObjectCreated:Put` event records.
//! - `stack`: local names of the table and bucket, and the functions' environment.
//! - `testing`: unique names and environment checks for integration tests.
//! - `web`: the applicant web app's static files (`web/`), served at `/` as CloudFront does.

pub mod apigw;
pub mod gateway;
pub mod instance;
pub mod lambda;
pub mod midtrans_sim;
pub mod provision;
pub mod s3_events;
pub mod stack;
pub mod template;
pub mod testing;
pub mod web;
