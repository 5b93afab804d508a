//! The e-Meterai library shared by every Lambda function, the `emeterai` command line and the
//! local stack.
//!
//! Where a rule lives:
//! - `domain`: pure rules and parse-don't-validate types (no I/O).
//! - `ledger`: the DynamoDB single-table ledger (money and quota; conditional writes only).
//! - `midtrans`: the payment gateway client and notification signature.
//! - `stamping`: the PDF engine that applies an e-Meterai (its own lazy, budgeted reader), and verification.
//! - `auth`: who is calling (API Gateway JWT claims; local HS256 tokens).
//! - `http`: the request/response types and problem+json errors shared by the API handlers.
//! - `handlers`: one entry point per Lambda trigger; they wire the pieces, they hold no rules.
//! - `config`: typed configuration read once per container.
//! - `telemetry`: operator metrics (CloudWatch Embedded Metric Format), flushed per invocation.
//! - `audit`: the operators' check of every ledger invariant over the whole table.
//!
//! Only `domain` and `stamping` are built without the default `aws` feature (see Cargo.toml):
//! the fuzz targets need nothing else.

#[cfg(feature = "aws")]
pub mod audit;
#[cfg(feature = "aws")]
pub mod auth;
#[cfg(feature = "aws")]
pub mod config;
pub mod domain;
#[cfg(feature = "aws")]
pub mod handlers;
#[cfg(feature = "aws")]
pub mod http;
#[cfg(feature = "aws")]
pub mod kms;
#[cfg(feature = "aws")]
pub mod ledger;
#[cfg(feature = "aws")]
pub mod midtrans;
pub mod stamping;
#[cfg(feature = "aws")]
pub mod storage;
#[cfg(feature = "aws")]
pub mod telemetry;
