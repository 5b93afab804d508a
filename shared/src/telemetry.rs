//! Operator metrics in CloudWatch Embedded Metric Format (EMF).
//!
//! The code counts what happened through the `metrics` facade ([`record`]); each Lambda function
//! installs the EMF collector once per container ([`install_from_env`]) and writes what was counted
//! to stdout after every invocation ([`flushed`]): one JSON line per dimension set, which CloudWatch
//! Logs turns into metrics without any API call or extra permission. Where nothing is installed
//! (the CLI, the local tools) every count is a no-op.
//!
//! The metric names and dimensions are the contract with template.yaml's alarms and dashboard.

use std::future::Future;
use std::io::Write;
use std::sync::OnceLock;

use metrics::Unit;
use metrics_cloudwatch_embedded::Collector;

/// Namespace when `EMETERAI_METRICS_NAMESPACE` is not set; the template sets one per stack so two
/// stacks in one account do not add up each other's counts.
pub const DEFAULT_NAMESPACE: &str = "eMeterai";
pub const NAMESPACE_ENV: &str = "EMETERAI_METRICS_NAMESPACE";

/// Metric names (CloudWatch `MetricName`) and their dimensions.
pub mod names {
    /// Stamps issued (a document STAMPED and its unit consumed).
    pub const STAMPS_ISSUED: &str = "StampsIssued";
    /// Documents rejected by the stamp function; dimension `Code` (the document's rejection code).
    pub const REJECTIONS: &str = "Rejections";
    /// Invoices credited (moved to PAID); dimension `Source`: `notification` (the webhook) or
    /// `reconciliation` (the gateway's status API, asked by the sweep).
    pub const CREDITS: &str = "Credits";
    /// EXPIRED or CANCELLED invoices the sweep's recheck found paid after all, and credited.
    pub const LATE_CREDITS: &str = "LateCredits";
    /// Refund submissions by the sweep; dimension `Status`: `COMPLETED`, `FAILED` (retried
    /// later) or `NEEDS_REVIEW` (a person must act: alarmed).
    pub const REFUNDS: &str = "Refunds";
    /// Ledger transactions retried after losing a race to a concurrent one.
    pub const LEDGER_CONTENTION_RETRIES: &str = "LedgerContentionRetries";
    /// Documents left PROCESSING by a stamp run that never ended, released by the sweep.
    pub const STALE_DOCUMENTS_RELEASED: &str = "StaleDocumentsReleased";
    /// Age, at a sweep run, of the oldest work item due (0 when nothing is due). Above two
    /// sweep periods the sweep is falling behind or failing on an item (alarmed).
    pub const OLDEST_DUE_AGE: &str = "OldestDueAgeSeconds";
}

pub const CODE: &str = "Code";
pub const SOURCE: &str = "Source";
pub const STATUS: &str = "Status";

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics collector: {0}")]
pub struct InstallError(String);

/// Installs the process-wide EMF collector for `namespace`. Once per process: later calls return
/// the collector already installed (whatever namespace they name).
pub fn install(namespace: &str) -> Result<&'static Collector, InstallError> {
    if let Some(collector) = COLLECTOR.get() {
        return Ok(collector);
    }
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .init()
        .map_err(|e| InstallError(e.to_string()))?;
    describe();
    Ok(COLLECTOR.get_or_init(|| collector))
}

/// [`install`] with the namespace from `EMETERAI_METRICS_NAMESPACE` (else [`DEFAULT_NAMESPACE`]).
pub fn install_from_env() -> Result<&'static Collector, InstallError> {
    let namespace = std::env::var(NAMESPACE_ENV).ok().filter(|n| !n.trim().is_empty());
    install(namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE))
}

fn describe() {
    for name in [
        names::STAMPS_ISSUED,
        names::REJECTIONS,
        names::CREDITS,
        names::LATE_CREDITS,
        names::REFUNDS,
        names::LEDGER_CONTENTION_RETRIES,
        names::STALE_DOCUMENTS_RELEASED,
    ] {
        metrics::describe_counter!(name, Unit::Count, "");
    }
    metrics::describe_gauge!(names::OLDEST_DUE_AGE, Unit::Seconds, "");
}

/// Writes what was counted since the last flush to `writer` as EMF lines (nothing when nothing
/// was counted or no collector is installed).
pub fn flush_to(writer: impl Write) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(collector) => collector.flush(writer),
        None => Ok(()),
    }
}

/// Runs one invocation, then flushes its metrics to stdout (where Lambda's log agent picks the
/// EMF lines up). A failed write is logged, never the invocation's failure.
pub async fn flushed<T>(invocation: impl Future<Output = T>) -> T {
    let output = invocation.await;
    // Locked only now, never across the invocation: the logs share stdout.
    write_metrics(std::io::stdout().lock());
    output
}

/// As [`flushed`], into `writer` (tests read what a function would have written).
pub async fn flushed_into<T>(writer: impl Write, invocation: impl Future<Output = T>) -> T {
    let output = invocation.await;
    write_metrics(writer);
    output
}

fn write_metrics(mut writer: impl Write) {
    if let Err(e) = flush_to(&mut writer).and_then(|()| writer.flush()) {
        tracing::warn!(error = %e, "could not write the invocation's metrics");
    }
}

/// The counts, one function per event so that names and dimensions stay in one place.
pub mod record {
    use super::{CODE, SOURCE, STATUS, names};
    use crate::domain::refund::RefundStatus;

    pub fn stamp_issued() {
        metrics::counter!(names::STAMPS_ISSUED).increment(1);
    }

    /// `code` is a document rejection code: a fixed, small set (bounded dimension values).
    pub fn rejection(code: &str) {
        metrics::counter!(names::REJECTIONS, CODE => code.to_owned()).increment(1);
    }

    /// `confirmed`: learnt from the gateway's status API (the sweep), not a notification.
    pub fn credit(confirmed: bool) {
        let source = if confirmed { "reconciliation" } else { "notification" };
        metrics::counter!(names::CREDITS, SOURCE => source).increment(1);
    }

    pub fn late_credits(count: u32) {
        metrics::counter!(names::LATE_CREDITS).increment(u64::from(count));
    }

    /// `status`: `COMPLETED`, `FAILED` or `NEEDS_REVIEW`, the outcomes of a submission.
    pub fn refunds(status: RefundStatus, count: u32) {
        metrics::counter!(names::REFUNDS, STATUS => status.as_str()).increment(u64::from(count));
    }

    pub fn ledger_contention_retry() {
        metrics::counter!(names::LEDGER_CONTENTION_RETRIES).increment(1);
    }

    pub fn stale_documents_released(count: u32) {
        metrics::counter!(names::STALE_DOCUMENTS_RELEASED).increment(u64::from(count));
    }

    pub fn oldest_due_age(seconds: u64) {
        // Seconds fit an f64 exactly far beyond any age a ledger item can have.
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(names::OLDEST_DUE_AGE).set(seconds as f64);
    }
}
