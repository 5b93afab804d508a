//! Refunds and the sweep's due work. A refund takes every unused unit of a PAID invoice out of
//! use in one transaction (invoice, balance, ledger entry); the gateway is asked afterwards by the
//! sweep, with the refund id as `refund_key`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::item::{n, s, ts};
use super::keys::{self, BALANCE_SK, DUE_SHARDS, DueKind, EntryKind, INVOICE_SK, PK, SK};
use super::{Ledger, LedgerError, TransactError, conflict_retries};
use crate::domain::ids::InvoiceId;
use crate::domain::invoice::{Invoice, InvoiceStatus, RefundSummary};
use crate::domain::refund::{RefundReason, RefundStatus, refund_id_of};
use crate::domain::time::{self, Timestamp};

pub const DUE_INDEX: &str = "due";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRequested {
    Created(RefundSummary),
    /// The invoice has no unused unit (all used, already refunded, or not paid).
    NothingToRefund,
}

impl Ledger {
    /// Refunds every unused unit of `invoice` (as last read). Retries against fresh reads when
    /// a stamp or another refund changes the invoice in between.
    pub async fn request_refund(
        &self,
        invoice: &Invoice,
        reason: RefundReason,
        now: Timestamp,
    ) -> Result<RefundRequested, LedgerError> {
        let mut current = invoice.clone();
        for attempt in 0..conflict_retries() {
            if current.status != InvoiceStatus::Paid || current.remaining == 0 || current.refund.is_some() {
                return Ok(RefundRequested::NothingToRefund);
            }
            let units = current.remaining;
            let amount = current
                .unit_price
                .times_units(units)
                .map_err(|_| LedgerError::Corrupt("refund amount overflows".into()))?;
            let summary = RefundSummary {
                refund_id: refund_id_of(&current.id),
                units,
                amount,
                status: RefundStatus::Requested,
                reason,
                requested_at: now,
                updated_at: now,
                attempts: 0,
                note: None,
            };
            match self.transact(self.refund_actions(&current, &summary)?).await {
                Ok(()) => return Ok(RefundRequested::Created(summary)),
                Err(TransactError::Failed(e)) => return Err(e),
                Err(e) => {
                    if e.is_conflict() {
                        Self::conflict_pause(attempt).await;
                    }
                    current = self
                        .invoice(&current.id)
                        .await?
                        .ok_or_else(|| LedgerError::Corrupt("invoice vanished during refund".into()))?;
                }
            }
        }
        Err(LedgerError::Contended)
    }

    fn refund_actions(&self, invoice: &Invoice, r: &RefundSummary) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let units = i64::from(r.units);
        let refund = AttributeValue::M(HashMap::from([
            ("refund_id".to_owned(), s(r.refund_id.to_string())),
            ("units".to_owned(), n(r.units)),
            ("amount".to_owned(), n(r.amount.get())),
            ("status".to_owned(), s(r.status.as_str())),
            ("reason".to_owned(), s(r.reason.as_str())),
            ("requested_at".to_owned(), ts(r.requested_at)),
            ("updated_at".to_owned(), ts(r.updated_at)),
        ]));
        let update_invoice = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(&invoice.id)))
            .key(SK, s(INVOICE_SK))
            .update_expression(
                "SET #status = :refunded_status, #remaining = :zero, #refunded = #refunded + :units, refund = :refund, \
                 due_pk = :due_pk, due_at = :now REMOVE usable_sk",
            )
            .condition_expression("#status = :paid AND #remaining = :units AND attribute_not_exists(refund)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#remaining", "remaining")
            .expression_attribute_names("#refunded", "refunded")
            .expression_attribute_values(":refunded_status", s(InvoiceStatus::Refunded.as_str()))
            .expression_attribute_values(":paid", s(InvoiceStatus::Paid.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":units", n(units))
            .expression_attribute_values(":refund", refund)
            .expression_attribute_values(":due_pk", s(keys::due_pk(DueKind::Refund, keys::shard_of(invoice.id.ulid()))))
            .expression_attribute_values(":now", ts(r.requested_at))
            .build()?;
        let balance = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::account_pk(&invoice.account)))
            .key(SK, s(BALANCE_SK))
            .update_expression("ADD #available :minus, #refunded :units")
            .condition_expression("#available >= :units")
            .expression_attribute_names("#available", "available")
            .expression_attribute_names("#refunded", "refunded")
            .expression_attribute_values(":minus", n(-units))
            .expression_attribute_values(":units", n(units))
            .build()?;
        let entry = Put::builder()
            .table_name(&self.table)
            .item(PK, s(keys::account_pk(&invoice.account)))
            .item(SK, s(keys::ledger_sk(EntryKind::Refund, &r.refund_id.to_string())))
            .item("kind", s(EntryKind::Refund.as_str()))
            .item("units", n(units))
            .item("invoice_id", s(invoice.id.to_string()))
            .item("at", ts(r.requested_at))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()?;
        Ok(vec![
            TransactWriteItem::builder().update(update_invoice).build(),
            TransactWriteItem::builder().update(balance).build(),
            TransactWriteItem::builder().put(entry).build(),
        ])
    }

    /// Moves an invoice's refund from one of `from` to `to`; `next_due` keeps it on the sweep's
    /// list (or, `None`, takes it off). False when the refund was not in `from` any more.
    pub async fn set_refund_status(
        &self,
        invoice_id: &InvoiceId,
        from: &[RefundStatus],
        to: RefundStatus,
        next_due: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool, LedgerError> {
        let allowed: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .condition_expression(format!("refund.#status IN ({})", allowed.join(", ")))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", ts(now));
        for (i, status) in from.iter().enumerate() {
            update = update.expression_attribute_values(format!(":from{i}"), s(status.as_str()));
        }
        update = match next_due {
            Some(due) => update
                .update_expression("SET refund.#status = :to, refund.updated_at = :now, due_at = :due")
                .expression_attribute_values(":due", ts(due)),
            None => update.update_expression("SET refund.#status = :to, refund.updated_at = :now REMOVE due_pk, due_at"),
        };
        self.conditional_update(update.build()?).await
    }

    /// Takes a due refund (REQUESTED, FAILED, or SUBMITTED without confirmation) for submission
    /// to the gateway: SUBMITTED, due again at `retry_at`. Only while it is due at `now`, so of
    /// two sweeps at once only one submits it. False when it was not (any more).
    pub async fn claim_refund_submission(&self, invoice_id: &InvoiceId, now: Timestamp, retry_at: Timestamp) -> Result<bool, LedgerError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .update_expression("SET refund.#status = :submitted, refund.updated_at = :now, due_at = :retry")
            .condition_expression("refund.#status IN (:requested, :failed, :submitted) AND due_at <= :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":submitted", s(RefundStatus::Submitted.as_str()))
            .expression_attribute_values(":requested", s(RefundStatus::Requested.as_str()))
            .expression_attribute_values(":failed", s(RefundStatus::Failed.as_str()))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":retry", ts(retry_at))
            .build()?;
        self.conditional_update(update).await
    }

    /// Records a failed or refused submission of a SUBMITTED refund: `to` (FAILED, due again at
    /// `next_due`, or NEEDS_REVIEW, off the list), the attempt count and the gateway's words.
    /// False when the refund was not SUBMITTED any more (another sweep finished it).
    pub async fn refund_attempt_failed(
        &self,
        invoice_id: &InvoiceId,
        to: RefundStatus,
        attempts: u32,
        note: &str,
        next_due: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool, LedgerError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .condition_expression("refund.#status = :submitted")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":submitted", s(RefundStatus::Submitted.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":attempts", n(attempts))
            .expression_attribute_values(":note", s(note.chars().take(300).collect::<String>()))
            .expression_attribute_values(":now", ts(now));
        const SET: &str = "SET refund.#status = :to, refund.updated_at = :now, refund.attempts = :attempts, refund.note = :note";
        update = match next_due {
            Some(due) => update.update_expression(format!("{SET}, due_at = :due")).expression_attribute_values(":due", ts(due)),
            None => update.update_expression(format!("{SET} REMOVE due_pk, due_at")),
        };
        self.conditional_update(update.build()?).await
    }

    /// Sets when the sweep next looks at an invoice still in `expected` status with `kind` work.
    pub async fn reschedule(
        &self,
        invoice_id: &InvoiceId,
        kind: DueKind,
        expected: InvoiceStatus,
        due_at: Timestamp,
    ) -> Result<bool, LedgerError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .update_expression("SET due_at = :due")
            .condition_expression("#status = :expected AND due_pk = :due_pk")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":due_pk", s(keys::due_pk(kind, keys::shard_of(invoice_id.ulid()))))
            .expression_attribute_values(":due", ts(due_at))
            .build()?;
        self.conditional_update(update).await
    }

    /// Puts an EXPIRED or CANCELLED invoice on the sweep's list to ask the gateway about it
    /// again at `due_at` (a settlement that could not be confirmed yet). False when the invoice
    /// is in neither status (a PENDING invoice is reconciled anyway).
    pub async fn schedule_recheck(&self, invoice_id: &InvoiceId, due_at: Timestamp) -> Result<bool, LedgerError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .update_expression("SET due_pk = :due_pk, due_at = :due")
            .condition_expression("#status IN (:expired, :cancelled)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":due_pk", s(keys::due_pk(DueKind::Recheck, keys::shard_of(invoice_id.ulid()))))
            .expression_attribute_values(":due", ts(due_at))
            .expression_attribute_values(":expired", s(InvoiceStatus::Expired.as_str()))
            .expression_attribute_values(":cancelled", s(InvoiceStatus::Cancelled.as_str()))
            .build()?;
        self.conditional_update(update).await
    }

    /// Takes an invoice off the sweep's `kind` list when it is in `expected` status (nothing left
    /// to do). Work of another kind that a concurrent change put on it (a refund to submit, a
    /// quota expiry after a payment) stays.
    pub async fn clear_due(&self, invoice_id: &InvoiceId, kind: DueKind, expected: InvoiceStatus) -> Result<bool, LedgerError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .update_expression("REMOVE due_pk, due_at")
            .condition_expression("#status = :expected AND begins_with(due_pk, :kind)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", s(expected.as_str()))
            .expression_attribute_values(":kind", s(keys::due_prefix(kind)))
            .build()?;
        self.conditional_update(update).await
    }

    async fn conditional_update(&self, u: Update) -> Result<bool, LedgerError> {
        Ok(self.transact_until_decided(vec![TransactWriteItem::builder().update(u).build()]).await?.is_ok())
    }

    /// Invoices with `kind` work due at or before `now`, from the sparse `due` index (never a
    /// scan), at most `limit` per shard, earliest first.
    pub async fn due_invoices(&self, kind: DueKind, now: Timestamp, limit: i32) -> Result<DueBatch<InvoiceId>, LedgerError> {
        let due = self.due_keys(kind, now, limit).await?;
        let items = due
            .items
            .iter()
            .filter_map(|pk| {
                let id = pk.strip_prefix("INV#").and_then(|id| InvoiceId::parse(id).ok());
                if id.is_none() {
                    tracing::warn!(pk, "due index holds an item that is not an invoice");
                }
                id
            })
            .collect();
        Ok(DueBatch { items, oldest_due_at: due.oldest_due_at })
    }

    /// The `pk`s of the items with `kind` work due at or before `now` (sparse `due` index, keys
    /// only), at most `limit` per shard, earliest first.
    pub(super) async fn due_keys(&self, kind: DueKind, now: Timestamp, limit: i32) -> Result<DueBatch<String>, LedgerError> {
        let mut shards = Vec::new();
        let mut oldest_due_at: Option<Timestamp> = None;
        for shard in 0..DUE_SHARDS {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("due_pk = :p AND due_at <= :now")
                .expression_attribute_values(":p", s(keys::due_pk(kind, shard)))
                .expression_attribute_values(":now", s(time::format(now)))
                .limit(limit)
                .send()
                .await?;
            // Earliest first per shard: the first item is the shard's oldest (the index key is
            // projected with the keys, so this costs no read).
            let first_due = out.items().first().and_then(|item| item.get("due_at")).and_then(|v| v.as_s().ok()).and_then(|v| time::parse(v));
            oldest_due_at = match (oldest_due_at, first_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let due: Vec<String> = out.items().iter().filter_map(|item| item.get(PK).and_then(|v| v.as_s().ok()).cloned()).collect();
            shards.push(due.into_iter());
        }
        // Earliest of every shard first, then the second of every shard, ...: a run that stops
        // for time part-way through the list has taken the oldest work of each shard, so no
        // shard waits behind another one's backlog.
        let mut pks = Vec::new();
        loop {
            let before = pks.len();
            pks.extend(shards.iter_mut().filter_map(Iterator::next));
            if pks.len() == before {
                break Ok(DueBatch { items: pks, oldest_due_at });
            }
        }
    }
}

/// One read of the sweep's due list: the items (at most the limit per shard) and when the oldest
/// of them fell due, for the operators' "sweep falling behind" alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueBatch<T> {
    pub items: Vec<T>,
    pub oldest_due_at: Option<Timestamp>,
}
