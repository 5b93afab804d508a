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

pub mod audit;
pub mod auth;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod http;
pub mod kms;
pub mod ledger;
pub mod midtrans;
pub mod stamping;
pub mod storage;
pub mod telemetry;
