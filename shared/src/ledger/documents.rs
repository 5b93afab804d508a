//! Documents and serials: the stamp's reservation, its rejection, and the one transaction that
//! consumes a unit, marks the document STAMPED and registers its serial.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::item::{Item, Reader, n, s, ts};
use super::keys::{self, BALANCE_SK, DueKind, EntryKind, PK, SK};
use super::refunds::DueBatch;
use super::{Cancellation, Ledger, LedgerError, TransactError, conflict_retries};
use crate::domain::document::{Document, DocumentRejection, DocumentStatus, FileName, StampRecord, StampReservation};
use crate::domain::ids::{AccountId, DocumentId, InvoiceId};
use crate::domain::invoice::InvoiceStatus;
use crate::domain::placement::Placement;
use crate::domain::serial::Serial;
use crate::domain::time::{self, Timestamp};

pub const DOCUMENT_SK: &str = "DOCUMENT";
pub const SERIAL_SK: &str = "SERIAL";
pub const USABLE_QUOTA_INDEX: &str = "usable_quota";

/// A document still PROCESSING this long after its serial was reserved is released by the sweep
/// (REJECTED `retry`, serial never issued, nothing charged). A stamp run lasts at most 30 s (the
/// function's timeout) and Lambda retries a failed event twice within about three minutes, so by
/// then the event has either finished or gone to the dead-letter queue.
pub const STALE_PROCESSING_MINUTES: i64 = 15;

const SERIAL_RESERVED: &str = "RESERVED";
const SERIAL_STAMPED: &str = "STAMPED";

fn document_pk(id: &DocumentId) -> String {
    format!("DOC#{id}")
}

fn serial_pk(serial: &Serial) -> String {
    format!("SERIAL#{serial}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// The document is PROCESSING with this reservation (ours or an earlier attempt's).
    Ready(StampReservation),
    /// The document already ended (STAMPED or REJECTED): nothing to do.
    Final(DocumentStatus),
}

/// A PAID invoice with units left, as the `usable_quota` index shows it (possibly stale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableInvoice {
    pub invoice_id: InvoiceId,
    pub remaining: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    Stamped,
    /// The document was already final (a duplicate delivery got there first).
    DocumentFinal,
    /// The account has no unit left.
    NoQuota,
    /// The chosen invoice changed since it was read: choose again.
    InvoiceChanged,
}

/// An account's open documents, as far as they were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenDocuments {
    pub count: u32,
    pub oldest_created_at: Option<Timestamp>,
}

/// A public registry entry: no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSerial {
    pub serial: Serial,
    pub stamped_at: Timestamp,
    pub document_sha256: String,
}

impl Ledger {
    pub async fn create_document(&self, doc: &Document) -> Result<(), LedgerError> {
        let mut item = HashMap::from([
            (PK.to_owned(), s(document_pk(&doc.id))),
            (SK.to_owned(), s(DOCUMENT_SK)),
            ("type".to_owned(), s("document")),
            ("document_id".to_owned(), s(doc.id.to_string())),
            ("account".to_owned(), s(doc.account.as_str())),
            ("file_name".to_owned(), s(doc.file_name.as_str())),
            ("status".to_owned(), s(doc.status.as_str())),
            ("created_at".to_owned(), ts(doc.created_at)),
            ("upload_expires_at".to_owned(), ts(doc.upload_expires_at)),
            // In the account's open-document partition until it ends (see `open_documents`).
            ("account_pk".to_owned(), s(keys::open_documents_pk(&doc.account))),
            ("created_sk".to_owned(), s(format!("{}#{}", time::format(doc.created_at), doc.id))),
        ]);
        if let Some(p) = &doc.placement {
            let mut m = HashMap::from([("x_mm".to_owned(), n(p.x_mm())), ("y_mm".to_owned(), n(p.y_mm()))]);
            if let Some(page) = p.page() {
                m.insert("page".to_owned(), n(page));
            }
            item.insert("placement".to_owned(), AttributeValue::M(m));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(LedgerError::Corrupt("document id collision".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn document(&self, id: &DocumentId) -> Result<Option<Document>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(document_pk(id)))
            .key(SK, s(DOCUMENT_SK))
            .consistent_read(true)
            .send()
            .await?;
        out.item.as_ref().map(document_from_item).transpose()
    }

    /// Fixes the serial and signing time of a document about to be stamped, and reserves the
    /// serial (a conditional put: a serial is never issued twice). A document that already has
    /// a reservation keeps it, so every retry stamps identical bytes.
    /// `doc` is the document as last read; it is read again only after losing a race.
    pub async fn reserve_stamp(&self, doc: &Document, candidate: impl Fn() -> StampReservation) -> Result<Reserved, LedgerError> {
        let id = &doc.id;
        let mut current = Some(doc.clone());
        for attempt in 0..conflict_retries() {
            let doc = match current.take() {
                Some(doc) => doc,
                None => self.document(id).await?.ok_or_else(|| LedgerError::Corrupt(format!("document {id} vanished")))?,
            };
            if doc.status.is_final() {
                return Ok(Reserved::Final(doc.status));
            }
            if let Some(existing) = doc.reservation {
                return Ok(Reserved::Ready(existing));
            }
            let fresh = candidate();
            // On the sweep's list from the start, in the same write: if this run and every retry
            // die, the document is released at `stale_at` instead of staying PROCESSING.
            let stale_at = fresh.signed_at + chrono::Duration::minutes(STALE_PROCESSING_MINUTES);
            let pin_source = if fresh.source_etag.is_some() { ", source_etag = :etag" } else { "" };
            let claim_document = Update::builder()
                .table_name(&self.table)
                .key(PK, s(document_pk(id)))
                .key(SK, s(DOCUMENT_SK))
                .update_expression(format!(
                    "SET #status = :processing, reserved_serial = :serial, signed_at = :at, due_pk = :due_pk, due_at = :due{pin_source}"
                ))
                .condition_expression("#status IN (:awaiting, :processing) AND attribute_not_exists(reserved_serial)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":processing", s(DocumentStatus::Processing.as_str()))
                .expression_attribute_values(":awaiting", s(DocumentStatus::AwaitingUpload.as_str()))
                .expression_attribute_values(":serial", s(fresh.serial.as_str()))
                .expression_attribute_values(":at", ts(fresh.signed_at))
                .expression_attribute_values(":due_pk", s(keys::due_pk(DueKind::StaleDocument, keys::shard_of(id.ulid()))))
                .expression_attribute_values(":due", ts(stale_at));
            let claim_document = match &fresh.source_etag {
                Some(etag) => claim_document.expression_attribute_values(":etag", s(etag)),
                None => claim_document,
            }
            .build()?;
            let claim_serial = Put::builder()
                .table_name(&self.table)
                .item(PK, s(serial_pk(&fresh.serial)))
                .item(SK, s(SERIAL_SK))
                .item("status", s(SERIAL_RESERVED))
                .item("document_id", s(id.to_string()))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build()?;
            let actions = vec![
                TransactWriteItem::builder().update(claim_document).build(),
                TransactWriteItem::builder().put(claim_serial).build(),
            ];
            match self.transact(actions).await {
                Ok(()) => return Ok(Reserved::Ready(fresh)),
                // Lost a race with a duplicate delivery, or the serial was taken: read again.
                Err(TransactError::Cancelled(reasons)) => {
                    if reasons.iter().any(|r| matches!(r, Cancellation::Conflict)) {
                        Self::conflict_pause(attempt).await;
                    }
                }
                Err(TransactError::Failed(e)) => return Err(e),
            }
        }
        Err(LedgerError::Contended)
    }

    /// Ends a document REJECTED and releases its reserved serial (never issued). False when the
    /// document was already final.
    pub async fn reject_document(&self, doc: &Document, rejection: &DocumentRejection) -> Result<bool, LedgerError> {
        let reason = HashMap::from([
            ("code".to_owned(), s(&rejection.code)),
            ("message".to_owned(), s(&rejection.message)),
        ]);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(document_pk(&doc.id)))
            .key(SK, s(DOCUMENT_SK))
            .update_expression("SET #status = :rejected, rejection = :reason REMOVE due_pk, due_at, account_pk, created_sk")
            .condition_expression("#status IN (:awaiting, :processing)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":rejected", s(DocumentStatus::Rejected.as_str()))
            .expression_attribute_values(":reason", AttributeValue::M(reason))
            .expression_attribute_values(":awaiting", s(DocumentStatus::AwaitingUpload.as_str()))
            .expression_attribute_values(":processing", s(DocumentStatus::Processing.as_str()))
            .build()?;
        let mut actions = vec![TransactWriteItem::builder().update(update).build()];
        if let Some(r) = &doc.reservation {
            let release = Delete::builder()
                .table_name(&self.table)
                .key(PK, s(serial_pk(&r.serial)))
                .key(SK, s(SERIAL_SK))
                .condition_expression("attribute_not_exists(#pk) OR (#status = :reserved AND document_id = :doc)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":reserved", s(SERIAL_RESERVED))
                .expression_attribute_values(":doc", s(doc.id.to_string()))
                .build()?;
            actions.push(TransactWriteItem::builder().delete(release).build());
        }
        Ok(self.transact_until_decided(actions).await?.is_ok())
    }

    /// How many documents of the account, created after `since`, are still open (AWAITING_UPLOAD
    /// or PROCESSING), counting up to `max` only: at most `max` small index items are read, in
    /// pages. Older open documents are left out: their upload URL has expired and a stamp run
    /// left PROCESSING is released by the sweep. Read from a GSI, so eventually consistent:
    /// requests of one account racing each other can each see room for one more.
    pub async fn open_documents(&self, account: &AccountId, since: Timestamp, max: u32) -> Result<OpenDocuments, LedgerError> {
        let mut open = OpenDocuments { count: 0, oldest_created_at: None };
        let mut start = None;
        while open.count < max {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(super::invoices::BY_ACCOUNT_INDEX)
                .key_condition_expression("account_pk = :a AND created_sk > :since")
                .expression_attribute_values(":a", s(keys::open_documents_pk(account)))
                .expression_attribute_values(":since", s(time::format(since)))
                .projection_expression("created_sk")
                .limit(i32::try_from(max - open.count).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in out.items() {
                if open.oldest_created_at.is_none() {
                    // Oldest first (ascending sort key): the first to leave the window.
                    let sk = Reader::new(item, "open document").str("created_sk")?;
                    open.oldest_created_at = sk.split('#').next().and_then(time::parse);
                }
                open.count += 1;
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(open)
    }

    /// Documents whose stamp run should have ended by `now` (see [`STALE_PROCESSING_MINUTES`]),
    /// from the sparse `due` index (a Query per shard, never a scan), at most `limit` per shard.
    pub async fn stale_documents(&self, now: Timestamp, limit: i32) -> Result<DueBatch<DocumentId>, LedgerError> {
        let due = self.due_keys(DueKind::StaleDocument, now, limit).await?;
        let items = due.items.iter().filter_map(|pk| pk.strip_prefix("DOC#").and_then(|id| DocumentId::parse(id).ok())).collect();
        Ok(DueBatch { items, oldest_due_at: due.oldest_due_at })
    }

    /// PAID invoices of the account with units left and still valid at `now`, the one whose
    /// `valid_until` comes first first. Read from a GSI: a hint, which the consuming transaction
    /// re-checks.
    pub async fn usable_invoices(&self, account: &AccountId, now: Timestamp) -> Result<Vec<UsableInvoice>, LedgerError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USABLE_QUOTA_INDEX)
            .key_condition_expression("account_pk = :a AND usable_sk > :now")
            .expression_attribute_values(":a", s(keys::account_pk(account)))
            .expression_attribute_values(":now", s(time::format(now)))
            .limit(10)
            .send()
            .await?;
        out.items()
            .iter()
            .map(|item| {
                let r = Reader::new(item, "usable invoice");
                let pk = r.str(PK)?;
                let id = pk.strip_prefix("INV#").and_then(|id| InvoiceId::parse(id).ok());
                Ok(UsableInvoice {
                    invoice_id: id.ok_or_else(|| LedgerError::Corrupt("usable invoice key".into()))?,
                    remaining: r.u32("remaining")?,
                })
            })
            .filter(|u| !matches!(u, Ok(UsableInvoice { remaining: 0, .. })))
            .collect()
    }

    /// Units of PAID invoices whose validity ended at `now` but which the sweep has not refunded
    /// yet. The index only says where to look; each invoice is read consistently, so a lagging
    /// index can only make this smaller, never larger.
    pub async fn expired_unrefunded_units(&self, account: &AccountId, now: Timestamp) -> Result<i64, LedgerError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(USABLE_QUOTA_INDEX)
            .key_condition_expression("account_pk = :a AND usable_sk <= :now")
            .expression_attribute_values(":a", s(keys::account_pk(account)))
            .expression_attribute_values(":now", s(time::format(now)))
            .into_paginator()
            .items()
            .send();
        let mut units = 0i64;
        while let Some(item) = pages.next().await {
            let item = item?;
            let Some(id) = item.get(PK).and_then(|v| v.as_s().ok()).and_then(|pk| pk.strip_prefix("INV#")).and_then(|id| InvoiceId::parse(id).ok())
            else {
                continue;
            };
            if let Some(inv) = self.invoice(&id).await? {
                let ended = inv.valid_until.is_some_and(|v| v <= now);
                if inv.status == InvoiceStatus::Paid && ended && inv.account == *account {
                    units += i64::from(inv.remaining);
                }
            }
        }
        Ok(units)
    }

    /// The balance with `available` counting usable units only (PAID invoices still valid at
    /// `now`). The balance is read first and the expired invoices after it, so a refund by the
    /// sweep in between can only make the answer larger, never a false "no quota".
    pub async fn usable_balance(&self, account: &AccountId, now: Timestamp) -> Result<super::balance::Balance, LedgerError> {
        let mut balance = self.balance(account).await?;
        balance.available -= self.expired_unrefunded_units(account, now).await?;
        Ok(balance)
    }

    /// The stamp's one transaction: one unit leaves the invoice and the balance (with its ledger
    /// entry, which can exist once per document), the document becomes STAMPED and its serial
    /// is registered. All of it or none of it.
    pub async fn consume_for_stamp(
        &self,
        doc: &Document,
        from: &UsableInvoice,
        record: &StampRecord,
    ) -> Result<Consumed, LedgerError> {
        let now = record.stamped_at;
        let left = from.remaining.saturating_sub(1);
        let mut invoice = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(&from.invoice_id)))
            .key(SK, s(keys::INVOICE_SK))
            .condition_expression("#status = :paid AND #remaining = :seen AND #valid_until > :now AND #account = :account")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#remaining", "remaining")
            .expression_attribute_names("#used", "used")
            .expression_attribute_names("#valid_until", "valid_until")
            .expression_attribute_names("#account", "account")
            .expression_attribute_values(":paid", s(InvoiceStatus::Paid.as_str()))
            .expression_attribute_values(":seen", n(from.remaining))
            .expression_attribute_values(":left", n(left))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":account", s(doc.account.as_str()));
        invoice = if left == 0 {
            // Used up: it leaves the usable-quota index and the refund sweep has nothing to do.
            invoice.update_expression("SET #remaining = :left, #used = #used + :one REMOVE usable_sk, due_pk, due_at")
        } else {
            invoice.update_expression("SET #remaining = :left, #used = #used + :one")
        };
        let balance = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::account_pk(&doc.account)))
            .key(SK, s(BALANCE_SK))
            .update_expression("ADD #available :minus_one, #consumed :one")
            .condition_expression("#available >= :one")
            .expression_attribute_names("#available", "available")
            .expression_attribute_names("#consumed", "consumed")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":one", n(1))
            .build()?;
        let entry = Put::builder()
            .table_name(&self.table)
            .item(PK, s(keys::account_pk(&doc.account)))
            .item(SK, s(keys::ledger_sk(EntryKind::Consume, &doc.id.to_string())))
            .item("kind", s(EntryKind::Consume.as_str()))
            .item("units", n(1))
            .item("invoice_id", s(from.invoice_id.to_string()))
            .item("document_id", s(doc.id.to_string()))
            .item("at", ts(now))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()?;
        let document = Update::builder()
            .table_name(&self.table)
            .key(PK, s(document_pk(&doc.id)))
            .key(SK, s(DOCUMENT_SK))
            .update_expression(
                "SET #status = :stamped, serial = :serial, sha256 = :sha, stamped_at = :now, invoice_id = :inv \
                 REMOVE due_pk, due_at, account_pk, created_sk",
            )
            .condition_expression("#status = :processing AND reserved_serial = :serial")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":stamped", s(DocumentStatus::Stamped.as_str()))
            .expression_attribute_values(":processing", s(DocumentStatus::Processing.as_str()))
            .expression_attribute_values(":serial", s(record.serial.as_str()))
            .expression_attribute_values(":sha", s(&record.sha256))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":inv", s(from.invoice_id.to_string()))
            .build()?;
        let serial = Update::builder()
            .table_name(&self.table)
            .key(PK, s(serial_pk(&record.serial)))
            .key(SK, s(SERIAL_SK))
            .update_expression("SET #status = :stamped, stamped_at = :now, document_sha256 = :sha")
            .condition_expression("#status = :reserved AND document_id = :doc")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":stamped", s(SERIAL_STAMPED))
            .expression_attribute_values(":reserved", s(SERIAL_RESERVED))
            .expression_attribute_values(":doc", s(doc.id.to_string()))
            .expression_attribute_values(":now", ts(now))
            .expression_attribute_values(":sha", s(&record.sha256))
            .build()?;
        let actions = vec![
            TransactWriteItem::builder().update(invoice.build()?).build(),
            TransactWriteItem::builder().update(balance).build(),
            TransactWriteItem::builder().put(entry).build(),
            TransactWriteItem::builder().update(document).build(),
            TransactWriteItem::builder().update(serial).build(),
        ];
        let reasons = match self.transact_until_decided(actions).await? {
            Ok(()) => return Ok(Consumed::Stamped),
            Err(reasons) => reasons,
        };
        // Which condition failed, in the order of the actions above.
        let failed = |i: usize| matches!(reasons.get(i), Some(Cancellation::ConditionFailed { .. }));
        Ok(if failed(3) || failed(2) || failed(4) {
            Consumed::DocumentFinal
        } else if failed(1) {
            Consumed::NoQuota
        } else {
            Consumed::InvoiceChanged
        })
    }

    /// A serial as the public registry shows it: only once it is STAMPED.
    pub async fn registered_serial(&self, serial: &Serial) -> Result<Option<RegisteredSerial>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(serial_pk(serial)))
            .key(SK, s(SERIAL_SK))
            .consistent_read(true)
            .send()
            .await?;
        let Some(item) = out.item else { return Ok(None) };
        let r = Reader::new(&item, "serial");
        if r.str("status")? != SERIAL_STAMPED {
            return Ok(None);
        }
        Ok(Some(RegisteredSerial {
            serial: serial.clone(),
            stamped_at: r.time("stamped_at")?,
            document_sha256: r.str("document_sha256")?.to_owned(),
        }))
    }
}

fn document_from_item(item: &Item) -> Result<Document, LedgerError> {
    let r = Reader::new(item, "document");
    let corrupt = |what: &str| LedgerError::Corrupt(format!("document {what} is malformed"));
    let placement = match r.opt_map("placement") {
        None => None,
        Some(p) => {
            let page = p.opt_u64("page")?.map(|v| u32::try_from(v).map_err(|_| corrupt("page"))).transpose()?;
            let coordinate = |attr: &str| -> Result<f64, LedgerError> {
                p.str_number(attr)?.parse::<f64>().map_err(|_| corrupt(attr))
            };
            Some(Placement::parse(page, coordinate("x_mm")?, coordinate("y_mm")?).map_err(|_| corrupt("placement"))?)
        }
    };
    let reservation = match r.opt_str("reserved_serial") {
        None => None,
        Some(serial) => Some(StampReservation {
            serial: Serial::parse(serial).map_err(|_| corrupt("reserved serial"))?,
            signed_at: r.time("signed_at")?,
            source_etag: r.opt_str("source_etag").map(str::to_owned),
        }),
    };
    let stamp = match r.opt_str("serial") {
        None => None,
        Some(serial) => Some(StampRecord {
            serial: Serial::parse(serial).map_err(|_| corrupt("serial"))?,
            sha256: r.str("sha256")?.to_owned(),
            stamped_at: r.time("stamped_at")?,
            invoice_id: InvoiceId::parse(r.str("invoice_id")?).map_err(|_| corrupt("invoice id"))?,
        }),
    };
    let rejection = r
        .opt_map("rejection")
        .map(|m| -> Result<DocumentRejection, LedgerError> {
            Ok(DocumentRejection { code: m.str("code")?.to_owned(), message: m.str("message")?.to_owned() })
        })
        .transpose()?;
    Ok(Document {
        id: DocumentId::parse(r.str("document_id")?).map_err(|_| corrupt("id"))?,
        account: AccountId::parse(r.str("account")?).map_err(|_| corrupt("account"))?,
        file_name: FileName::parse(r.str("file_name")?).map_err(|_| corrupt("file name"))?,
        placement,
        status: DocumentStatus::parse(r.str("status")?).ok_or_else(|| corrupt("status"))?,
        created_at: r.time("created_at")?,
        upload_expires_at: r.time("upload_expires_at")?,
        reservation,
        stamp,
        rejection,
    })
}
