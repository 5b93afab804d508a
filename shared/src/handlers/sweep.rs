//! The scheduled sweep (EventBridge, every 5 minutes): reconciles PENDING invoices with the
//! gateway, expires unpaid ones, refunds the unused units of expired quota, submits refunds, and
//! releases documents whose stamp run never ended.
//!
//! "Now" is the event's `time`, never the wall clock. Work comes from the sparse `due` index, a
//! bounded batch per shard, never a scan. Every change is conditional, so two sweeps at once, or
//! one stopped half-way, leave the ledger consistent; what is left is picked up next time.
//!
//! A run fits its time: it reads the invocation's deadline, keeps a margin for the item in
//! flight, and gives each phase a share of what is left, so a backlog in one phase (a slow
//! gateway with hundreds of pending invoices, say) cannot starve the others. What a phase read
//! but had no time for is counted in the report's `left_for_next_run`.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use tokio::time::Instant;

use super::payments::{ApplyError, apply_outcome};
use crate::config::Config;
use crate::domain::document::{DocumentRejection, DocumentStatus};
use crate::domain::ids::{DocumentId, InvoiceId};
use crate::domain::invoice::{Invoice, InvoiceStatus};
use crate::domain::notification::PaymentOutcome;
use crate::domain::refund::{RefundReason, RefundStatus};
use crate::domain::time::Timestamp;
use crate::ledger::invoices::PaymentEvent;
use crate::ledger::documents::STALE_PROCESSING_MINUTES;
use crate::ledger::keys::DueKind;
use crate::ledger::refunds::RefundRequested;
use crate::ledger::{Ledger, LedgerError};
use crate::midtrans::{MidtransClient, RefundAnswer};

/// Items per due-index shard per kind per run.
pub const BATCH_PER_SHARD: i32 = 25;
/// A submitted refund not confirmed by then is submitted again (same refund key: same refund).
const SUBMISSION_TIMEOUT_MINUTES: i64 = 5;
/// A refund that failed this many times (about five days of backoff) goes to a person.
pub const MAX_REFUND_ATTEMPTS: u32 = 12;

/// The run's time when the invocation names no usable deadline: the function's timeout in
/// template.yaml (RefundFunction, 60 s).
pub const RUN_TIME_WITHOUT_DEADLINE: Duration = Duration::from_secs(60);
/// The longest a Lambda invocation can last; a deadline further away than this is not believed.
const LONGEST_INVOCATION: Duration = Duration::from_secs(15 * 60);
/// What an item's DynamoDB reads and writes may take on top of a gateway call.
const LEDGER_ALLOWANCE: Duration = Duration::from_secs(1);

/// How long after its `attempts`-th failure a refund is tried again: 5 minutes, doubling, at
/// most a day.
pub fn refund_backoff(attempts: u32) -> chrono::Duration {
    let minutes = 5i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(20));
    chrono::Duration::minutes(minutes.min(24 * 60))
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("the scheduled event has no time")]
    NoTime,
}

impl From<SweepError> for lambda_runtime::Diagnostic {
    fn from(e: SweepError) -> Self {
        Self { error_type: "SweepError".into(), error_message: e.to_string() }
    }
}

/// What one run did (returned by the function and logged).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub now: String,
    pub reconciled: u32,
    pub credited: u32,
    pub expired: u32,
    pub cancelled: u32,
    pub quota_refunds: u32,
    pub refunds_completed: u32,
    pub refunds_failed: u32,
    /// Refunds the gateway refused for good (or that kept failing): NEEDS_REVIEW.
    pub refunds_needing_review: u32,
    /// EXPIRED or CANCELLED invoices asked about once more, and how many had been paid after all.
    pub rechecked: u32,
    pub late_credited: u32,
    /// Late payments refunded instead (`EMETERAI_REFUND_LATE_PAYMENTS`).
    pub late_refunds: u32,
    /// Documents whose stamp run never ended, released to REJECTED `retry` (nothing charged).
    pub documents_released: u32,
    pub errors: u32,
    /// How long the oldest item on any due list read this run had been due (0: none due). Work
    /// that stays due for more than two sweep periods means the sweep is behind or keeps failing.
    pub oldest_due_age_seconds: u64,
    /// Work each phase read from the due list but had no time for; it stays due, so the next
    /// run takes it (earliest first). A batch is at most BATCH_PER_SHARD per due shard, so more
    /// may be due beyond what was read.
    pub left_for_next_run: LeftForNextRun,
}

/// Per phase, items read from the due list and left untouched for lack of time.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct LeftForNextRun {
    pub reconcile: u32,
    pub recheck: u32,
    pub quota_expiry: u32,
    pub refunds: u32,
    pub stale_documents: u32,
}

impl LeftForNextRun {
    pub fn total(&self) -> u32 {
        self.reconcile + self.recheck + self.quota_expiry + self.refunds + self.stale_documents
    }
}

/// The sweep's phases, in the order a run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reconcile,
    Recheck,
    QuotaExpiry,
    Refunds,
    StaleDocuments,
}

impl Phase {
    const ALL: [Phase; 5] = [Phase::Reconcile, Phase::Recheck, Phase::QuotaExpiry, Phase::Refunds, Phase::StaleDocuments];
}

/// When a phase must stop taking new items.
#[derive(Debug, Clone, Copy)]
struct PhaseTime {
    /// The end of this phase's share.
    share_ends: Instant,
    /// The end of the whole run (the deadline less the margin): nothing starts after it.
    run_ends: Instant,
}

impl PhaseTime {
    /// Whether the next item may start, `started` items into the phase. The first item of a
    /// phase may use the run's time even when the phase's share is spent (its due-list read
    /// took it), so every phase makes progress while the run has time at all.
    fn may_start(&self, started: u32) -> bool {
        let now = Instant::now();
        now < self.run_ends && (started == 0 || now < self.share_ends)
    }

    /// The phase's items, handed out while time allows.
    fn pace<T>(self, items: Vec<T>) -> Paced<T> {
        Paced { items: items.into_iter(), time: self, started: 0 }
    }
}

/// A phase's work list, handed out item by item while its time allows.
struct Paced<T> {
    items: std::vec::IntoIter<T>,
    time: PhaseTime,
    started: u32,
}

impl<T> Paced<T> {
    fn next_in_time(&mut self) -> Option<T> {
        if self.items.len() == 0 || !self.time.may_start(self.started) {
            return None;
        }
        self.started += 1;
        self.items.next()
    }

    /// Items not handed out.
    fn left(&self) -> u32 {
        u32::try_from(self.items.len()).unwrap_or(u32::MAX)
    }
}

/// The time a run has, from the invocation's deadline (ms since the epoch; 0 when unknown). A
/// deadline already past or further than any invocation can last is not believed.
pub fn time_until_deadline(deadline_ms: u64, wall_clock: SystemTime) -> Duration {
    let left = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(deadline_ms))
        .and_then(|deadline| deadline.duration_since(wall_clock).ok());
    match left {
        Some(left) if !left.is_zero() && left <= LONGEST_INVOCATION => left,
        _ => RUN_TIME_WITHOUT_DEADLINE,
    }
}

impl SweepReport {
    fn saw_due(&mut self, now: Timestamp, due_at: Option<Timestamp>) {
        if let Some(due_at) = due_at {
            let age = u64::try_from((now - due_at).num_seconds()).unwrap_or(0);
            self.oldest_due_age_seconds = self.oldest_due_age_seconds.max(age);
        }
    }

    /// The run's counts as metrics (flushed with the invocation).
    fn record_metrics(&self) {
        use crate::telemetry::record;
        record::late_credits(self.late_credited);
        record::refunds(RefundStatus::Completed, self.refunds_completed);
        record::refunds(RefundStatus::Failed, self.refunds_failed);
        record::refunds(RefundStatus::NeedsReview, self.refunds_needing_review);
        record::stale_documents_released(self.documents_released);
        record::oldest_due_age(self.oldest_due_age_seconds);
    }
}

pub struct SweepService {
    pub ledger: Ledger,
    pub gateway: MidtransClient,
    pub config: Config,
}

impl SweepService {
    pub async fn handle(&self, event: LambdaEvent<EventBridgeEvent>) -> Result<SweepReport, SweepError> {
        let now = event.payload.time.ok_or(SweepError::NoTime)?;
        let time = time_until_deadline(event.context.deadline, SystemTime::now());
        let report = self.run_until(now, Instant::now() + time).await;
        if report.left_for_next_run.total() > 0 {
            tracing::warn!(left_for_next_run = ?report.left_for_next_run, "sweep ran out of time; the rest is due next run");
        }
        tracing::info!(?report, "sweep done");
        Ok(report)
    }

    /// A run with the time of an invocation that names no deadline.
    pub async fn run(&self, now: Timestamp) -> SweepReport {
        self.run_until(now, Instant::now() + RUN_TIME_WITHOUT_DEADLINE).await
    }

    /// A run that returns before `deadline`: it keeps a margin for the item in flight (a gateway
    /// call's timeout and its ledger writes, at most a quarter of the time), and each phase gets
    /// an even share of the time still left when it starts (a phase that needs less hands the
    /// rest to the ones after it).
    pub async fn run_until(&self, now: Timestamp, deadline: Instant) -> SweepReport {
        let mut report = SweepReport { now: crate::domain::time::format(now), ..SweepReport::default() };
        let time = deadline.saturating_duration_since(Instant::now());
        let margin = (self.config.midtrans.timeout + LEDGER_ALLOWANCE).min(time / 4);
        let run_ends = deadline.checked_sub(margin).unwrap_or(deadline);
        for (done, phase) in Phase::ALL.into_iter().enumerate() {
            let phases_left = u32::try_from(Phase::ALL.len() - done).unwrap_or(1);
            let share = run_ends.saturating_duration_since(Instant::now()) / phases_left;
            let time = PhaseTime { share_ends: Instant::now() + share, run_ends };
            match phase {
                Phase::Reconcile => self.reconcile(now, time, &mut report).await,
                Phase::Recheck => self.recheck(now, time, &mut report).await,
                Phase::QuotaExpiry => self.expire_quota(now, time, &mut report).await,
                Phase::Refunds => self.submit_refunds(now, time, &mut report).await,
                Phase::StaleDocuments => self.release_stale_documents(now, time, &mut report).await,
            }
        }
        report.record_metrics();
        report
    }

    /// The invoices of a due list, earliest of each shard first (read one by one as the phase
    /// reaches them, so a run that stops for time has not spent it reading what it leaves).
    async fn due(&self, kind: DueKind, now: Timestamp, time: PhaseTime, report: &mut SweepReport) -> Paced<InvoiceId> {
        match self.ledger.due_invoices(kind, now, BATCH_PER_SHARD).await {
            Ok(due) => {
                report.saw_due(now, due.oldest_due_at);
                time.pace(due.items)
            }
            Err(e) => {
                tracing::error!(error = ?e, ?kind, "cannot read due work");
                report.errors += 1;
                time.pace(Vec::new())
            }
        }
    }

    /// The next invoice of a due list the phase has time for (skipping any gone or unreadable).
    async fn next_due(&self, work: &mut Paced<InvoiceId>, report: &mut SweepReport) -> Option<Invoice> {
        while let Some(id) = work.next_in_time() {
            match self.ledger.invoice(&id).await {
                Ok(Some(invoice)) => return Some(invoice),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = ?e, invoice_id = %id, "cannot read invoice");
                    report.errors += 1;
                }
            }
        }
        None
    }

    /// PENDING invoices past their reconciliation time: what does the gateway say?
    async fn reconcile(&self, now: Timestamp, time: PhaseTime, report: &mut SweepReport) {
        let mut work = self.due(DueKind::Reconcile, now, time, report).await;
        while let Some(invoice) = self.next_due(&mut work, report).await {
            let result = self.reconcile_one(&invoice, now, report).await;
            if let Err(e) = result {
                tracing::error!(error = ?e, invoice_id = %invoice.id, "reconciliation failed; retried next run");
                report.errors += 1;
            }
        }
        report.left_for_next_run.reconcile += work.left();
    }

    async fn reconcile_one(&self, invoice: &Invoice, now: Timestamp, report: &mut SweepReport) -> Result<(), LedgerError> {
        if invoice.status != InvoiceStatus::Pending {
            self.ledger.clear_due(&invoice.id, DueKind::Reconcile, invoice.status).await?;
            return Ok(());
        }
        report.reconciled += 1;
        let order = invoice.id.order_id();
        let gateway_says = match self.gateway.status(&order).await {
            Ok(status) => status,
            Err(e) => {
                // Unknown is never "not paid": the invoice stays PENDING and is asked about again.
                tracing::warn!(error = %e, invoice_id = %invoice.id, "gateway status unavailable; asked again next run");
                report.errors += 1;
                return self.reschedule_pending(invoice, now).await;
            }
        };
        if let Some(said) = &gateway_says {
            let outcome = if said.signed_consistent() { said.outcome() } else { PaymentOutcome::NoChange };
            if outcome != PaymentOutcome::NoChange {
                let event = PaymentEvent::of(said, now);
                return match apply_outcome(&self.ledger, &order, outcome, &event, &self.config.payment_policy(), true).await {
                    Ok(()) => {
                        match outcome {
                            PaymentOutcome::Settled => report.credited += 1,
                            PaymentOutcome::Expired => report.expired += 1,
                            PaymentOutcome::Cancelled => report.cancelled += 1,
                            PaymentOutcome::NoChange => {}
                        }
                        Ok(())
                    }
                    // Flagged for review; the invoice stays PENDING until it expires.
                    Err(ApplyError::AmountMismatch { .. }) => self.reschedule_pending(invoice, now).await,
                    Err(ApplyError::UnknownOrder | ApplyError::Unconfirmed) => Ok(()),
                    Err(ApplyError::Ledger(e)) => Err(e),
                };
            }
        }
        // Expired only on the gateway's word that it is not paid: it never saw the order, or the
        // order is still waiting for payment (a capture under review, say, is not "not paid").
        let not_paid = gateway_says.as_ref().is_none_or(|said| said.transaction_status == "pending");
        if now >= invoice.expires_at && not_paid {
            let amount = invoice.amount.to_gross_amount();
            let event = PaymentEvent {
                transaction_status: "expire",
                transaction_id: None,
                status_code: "sweep",
                gross_amount: &amount,
                payment_type: None,
                received_at: now,
            };
            return match apply_outcome(&self.ledger, &order, PaymentOutcome::Expired, &event, &self.config.payment_policy(), true).await {
                Ok(()) => {
                    report.expired += 1;
                    Ok(())
                }
                Err(ApplyError::Ledger(e)) => Err(e),
                Err(_) => Ok(()),
            };
        }
        self.reschedule_pending(invoice, now).await
    }

    /// EXPIRED or CANCELLED invoices due for another look: a settlement the gateway reports now
    /// is credited exactly as the webhook would; "not paid" takes them off the list; an error
    /// is "unknown" and asks again later.
    async fn recheck(&self, now: Timestamp, time: PhaseTime, report: &mut SweepReport) {
        let mut work = self.due(DueKind::Recheck, now, time, report).await;
        while let Some(invoice) = self.next_due(&mut work, report).await {
            if let Err(e) = self.recheck_one(&invoice, now, report).await {
                tracing::error!(error = ?e, invoice_id = %invoice.id, "recheck failed; retried next run");
                report.errors += 1;
            }
        }
        report.left_for_next_run.recheck += work.left();
    }

    async fn recheck_one(&self, invoice: &Invoice, now: Timestamp, report: &mut SweepReport) -> Result<(), LedgerError> {
        if !matches!(invoice.status, InvoiceStatus::Expired | InvoiceStatus::Cancelled) {
            self.ledger.clear_due(&invoice.id, DueKind::Recheck, invoice.status).await?;
            return Ok(());
        }
        report.rechecked += 1;
        let order = invoice.id.order_id();
        let said = match self.gateway.status(&order).await {
            Ok(said) => said,
            Err(e) => {
                tracing::warn!(error = %e, invoice_id = %invoice.id, "gateway status unavailable; asked again later");
                report.errors += 1;
                self.ledger.schedule_recheck(&invoice.id, now + self.config.reconcile_after).await?;
                return Ok(());
            }
        };
        match said {
            Some(said) if said.outcome() == PaymentOutcome::Settled && said.signed_consistent() => {
                let event = PaymentEvent::of(&said, now);
                match apply_outcome(&self.ledger, &order, PaymentOutcome::Settled, &event, &self.config.payment_policy(), true).await {
                    Ok(()) => {
                        report.late_credited += 1;
                        if self.config.refund_late_payments {
                            self.refund_late_payment(invoice, now, report).await?;
                        }
                        Ok(())
                    }
                    // Flagged for review: a person decides; the sweep has nothing more to do.
                    Err(ApplyError::AmountMismatch { .. } | ApplyError::UnknownOrder | ApplyError::Unconfirmed) => {
                        self.ledger.clear_due(&invoice.id, DueKind::Recheck, invoice.status).await.map(|_| ())
                    }
                    Err(ApplyError::Ledger(e)) => Err(e),
                }
            }
            _ => self.ledger.clear_due(&invoice.id, DueKind::Recheck, invoice.status).await.map(|_| ()),
        }
    }

    /// By configuration, a payment found only after the grace period goes back in full.
    async fn refund_late_payment(&self, invoice: &Invoice, now: Timestamp, report: &mut SweepReport) -> Result<(), LedgerError> {
        let Some(paid) = self.ledger.invoice(&invoice.id).await? else { return Ok(()) };
        if let RefundRequested::Created(_) = self.ledger.request_refund(&paid, RefundReason::LatePayment, now).await? {
            report.late_refunds += 1;
        }
        Ok(())
    }

    async fn reschedule_pending(&self, invoice: &Invoice, now: Timestamp) -> Result<(), LedgerError> {
        let next = (now + self.config.reconcile_after).min(invoice.expires_at);
        self.ledger.reschedule(&invoice.id, DueKind::Reconcile, InvoiceStatus::Pending, next.max(now)).await.map(|_| ())
    }

    /// Documents PROCESSING long after their serial was reserved: the event went to the
    /// dead-letter queue, or the function died. Nothing was consumed (a unit leaves the quota only
    /// in the transaction that marks the document STAMPED), so releasing one returns nothing but
    /// its serial, never issued; the client is told `retry`. A stamp run still alive loses the
    /// race cleanly: the release and the consumption are both conditional on PROCESSING.
    async fn release_stale_documents(&self, now: Timestamp, time: PhaseTime, report: &mut SweepReport) {
        let ids = match self.ledger.stale_documents(now, BATCH_PER_SHARD).await {
            Ok(due) => {
                report.saw_due(now, due.oldest_due_at);
                due.items
            }
            Err(e) => {
                tracing::error!(error = ?e, "cannot read stale documents");
                report.errors += 1;
                return;
            }
        };
        let mut work = time.pace(ids);
        while let Some(id) = work.next_in_time() {
            if let Err(e) = self.release_stale_document(&id, now, report).await {
                tracing::error!(error = ?e, document_id = %id, "releasing a stale document failed; retried next run");
                report.errors += 1;
            }
        }
        report.left_for_next_run.stale_documents += work.left();
    }

    async fn release_stale_document(&self, id: &DocumentId, now: Timestamp, report: &mut SweepReport) -> Result<(), LedgerError> {
        let Some(doc) = self.ledger.document(id).await? else { return Ok(()) };
        // Final already (the index lags the write that ended it), or not stale by the item
        // itself: nothing to do.
        let stale = doc.reservation.as_ref().is_some_and(|r| r.signed_at + chrono::Duration::minutes(STALE_PROCESSING_MINUTES) <= now);
        if doc.status != DocumentStatus::Processing || !stale {
            return Ok(());
        }
        if self.ledger.reject_document(&doc, &DocumentRejection::retry()).await? {
            tracing::warn!(document_id = %id, "stamp run never ended; document released (retry)");
            report.documents_released += 1;
        }
        Ok(())
    }

    /// PAID invoices whose validity ended: their unused units are refunded in full.
    async fn expire_quota(&self, now: Timestamp, time: PhaseTime, report: &mut SweepReport) {
        let mut work = self.due(DueKind::QuotaExpiry, now, time, report).await;
        while let Some(invoice) = self.next_due(&mut work, report).await {
            let result = match invoice.valid_until {
                _ if invoice.status != InvoiceStatus::Paid || invoice.remaining == 0 => {
                    self.ledger.clear_due(&invoice.id, DueKind::QuotaExpiry, invoice.status).await.map(|_| ())
                }
                Some(valid_until) if valid_until > now => {
                    self.ledger.reschedule(&invoice.id, DueKind::QuotaExpiry, InvoiceStatus::Paid, valid_until).await.map(|_| ())
                }
                _ => match self.ledger.request_refund(&invoice, RefundReason::Expired, now).await {
                    Ok(RefundRequested::Created(_)) => {
                        report.quota_refunds += 1;
                        Ok(())
                    }
                    Ok(RefundRequested::NothingToRefund) => Ok(()),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                tracing::error!(error = ?e, invoice_id = %invoice.id, "quota expiry failed; retried next run");
                report.errors += 1;
            }
        }
        report.left_for_next_run.quota_expiry += work.left();
    }

    /// Refunds REQUESTED, FAILED, or SUBMITTED without confirmation: ask the gateway (again).
    async fn submit_refunds(&self, now: Timestamp, time: PhaseTime, report: &mut SweepReport) {
        let mut work = self.due(DueKind::Refund, now, time, report).await;
        while let Some(invoice) = self.next_due(&mut work, report).await {
            if let Err(e) = self.submit_refund(&invoice, now, report).await {
                tracing::error!(error = ?e, invoice_id = %invoice.id, "refund submission failed; retried next run");
                report.errors += 1;
            }
        }
        report.left_for_next_run.refunds += work.left();
    }

    async fn submit_refund(&self, invoice: &Invoice, now: Timestamp, report: &mut SweepReport) -> Result<(), LedgerError> {
        let Some(refund) = &invoice.refund else {
            self.ledger.clear_due(&invoice.id, DueKind::Refund, invoice.status).await?;
            return Ok(());
        };
        if !refund.status.needs_submission() {
            // COMPLETED or NEEDS_REVIEW: nothing for the sweep to do; off the list.
            self.ledger.set_refund_status(&invoice.id, &[refund.status], refund.status, None, now).await?;
            return Ok(());
        }
        let retry_at = now + chrono::Duration::minutes(SUBMISSION_TIMEOUT_MINUTES);
        if !self.ledger.claim_refund_submission(&invoice.id, now, retry_at).await? {
            // Another sweep took it, or it is no longer due.
            return Ok(());
        }
        let reason = match refund.reason {
            RefundReason::Requested => "e-Meterai: unused units refunded on request",
            RefundReason::Expired => "e-Meterai: unused units refunded at quota expiry",
            RefundReason::LatePayment => "e-Meterai: payment settled after the invoice ended, refunded in full",
        };
        let refund_key = refund.refund_id.to_string();
        let attempts = refund.attempts.saturating_add(1);
        match self.gateway.refund(&invoice.id.order_id(), &refund_key, refund.amount, reason).await {
            Ok(RefundAnswer::Approved) => {
                self.ledger.set_refund_status(&invoice.id, &[RefundStatus::Submitted], RefundStatus::Completed, None, now).await?;
                report.refunds_completed += 1;
            }
            Ok(RefundAnswer::Refused { status_code, message }) => {
                tracing::error!(invoice_id = %invoice.id, status_code, message, "gateway refused the refund for good; needs review");
                let note = format!("refused: status_code {status_code}: {message}");
                self.ledger.refund_attempt_failed(&invoice.id, RefundStatus::NeedsReview, attempts, &note, None, now).await?;
                report.refunds_needing_review += 1;
            }
            Err(e) if attempts >= MAX_REFUND_ATTEMPTS => {
                tracing::error!(error = %e, invoice_id = %invoice.id, attempts, "refund kept failing; needs review");
                let note = format!("gave up after {attempts} attempts: {e}");
                self.ledger.refund_attempt_failed(&invoice.id, RefundStatus::NeedsReview, attempts, &note, None, now).await?;
                report.refunds_needing_review += 1;
            }
            Err(e) => {
                // Backoff: a failing refund moves later in the due index, so it never holds up
                // newer ones (the index is read earliest first, a bounded batch per run).
                let retry_at = now + refund_backoff(attempts);
                tracing::warn!(error = %e, invoice_id = %invoice.id, attempts, %retry_at, "refund failed; retried later");
                let note = format!("attempt {attempts} failed: {e}");
                self.ledger.refund_attempt_failed(&invoice.id, RefundStatus::Failed, attempts, &note, Some(retry_at), now).await?;
                report.refunds_failed += 1;
            }
        }
        Ok(())
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_is_believed_only_when_it_is_ahead_and_within_an_invocation() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |t: SystemTime| u64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).expect("after epoch").as_millis()).expect("ms");
        assert_eq!(time_until_deadline(ms(now + Duration::from_secs(42)), now), Duration::from_secs(42));
        assert_eq!(time_until_deadline(0, now), RUN_TIME_WITHOUT_DEADLINE);
        assert_eq!(time_until_deadline(ms(now), now), RUN_TIME_WITHOUT_DEADLINE);
        assert_eq!(time_until_deadline(ms(now - Duration::from_secs(1)), now), RUN_TIME_WITHOUT_DEADLINE);
        assert_eq!(time_until_deadline(ms(now + Duration::from_secs(16 * 60)), now), RUN_TIME_WITHOUT_DEADLINE);
        assert_eq!(time_until_deadline(u64::MAX, now), RUN_TIME_WITHOUT_DEADLINE);
    }

    #[tokio::test]
    async fn a_phase_stops_at_its_share_but_always_takes_one_item_while_the_run_has_time() {
        let now = Instant::now();
        let spent = PhaseTime { share_ends: now, run_ends: now + Duration::from_secs(60) };
        let mut work = spent.pace(vec![1, 2, 3]);
        assert_eq!((work.next_in_time(), work.next_in_time(), work.left()), (Some(1), None, 2));
        let over = PhaseTime { share_ends: now + Duration::from_secs(60), run_ends: now };
        let mut work = over.pace(vec![1, 2, 3]);
        assert_eq!((work.next_in_time(), work.left()), (None, 3));
        let ample = PhaseTime { share_ends: now + Duration::from_secs(60), run_ends: now + Duration::from_secs(60) };
        let mut work = ample.pace(vec![1, 2]);
        assert_eq!((work.next_in_time(), work.next_in_time(), work.next_in_time(), work.left()), (Some(1), Some(2), None, 0));
    }

    #[test]
    fn refund_backoff_doubles_up_to_a_day() {
        let minutes: Vec<i64> = (1..=12).map(|a| refund_backoff(a).num_minutes()).collect();
        assert_eq!(minutes, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440, 1440]);
        assert_eq!(refund_backoff(u32::MAX).num_minutes(), 1440);
    }
}
