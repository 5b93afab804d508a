//! Invoices: opened by checkout (with the idempotency claim), moved by payment notifications.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;

use super::idempotency::{Claim, Claimed};
use crate::config::PaymentPolicy;
use super::item::{Item, Reader, n, s, ts};
use super::keys::{self, BALANCE_SK, DueKind, EntryKind, INVOICE_SK, PK, SK};
use super::{Ledger, LedgerError};
use crate::domain::idempotency::{ClaimRefusal, StoredResponse};
use crate::domain::ids::{AccountId, InvoiceId, RefundId};
use crate::domain::refund::{RefundReason, RefundStatus};
use crate::domain::invoice::{CURRENCY, Invoice, InvoiceStatus, PaymentLink, RefundSummary, Review};
use crate::domain::money::Rupiah;
use crate::domain::quantity::Quantity;
use crate::domain::time::{self, Timestamp};

pub const BY_ACCOUNT_INDEX: &str = "by_account";
pub const MAX_PAGE_SIZE: i32 = 100;

/// The outcome of opening an invoice under an idempotency key.
#[derive(Debug)]
pub enum Opened {
    Created,
    /// An abandoned attempt of the same request opened this invoice; finish it.
    TakenOver(InvoiceId),
    Refused(ClaimRefusal),
    /// The account already holds its limit of PENDING invoices; nothing was written.
    TooManyUnpaid,
}

/// The balance item's count of the account's PENDING invoices. Raised in the transaction that
/// opens an invoice, on the condition that it is below the limit, and lowered in the one that
/// moves an invoice out of PENDING ([`Ledger::record_payment`], the only way out): so the limit
/// holds exactly under any concurrency, and costs no read (the condition rides on the balance
/// update the checkout transaction makes anyway).
pub const UNPAID_INVOICES: &str = "unpaid_invoices";

impl<'a> PaymentEvent<'a> {
    /// A report (notification or status API answer) received at `received_at`.
    pub fn of(report: &'a crate::domain::notification::TransactionReport, received_at: Timestamp) -> Self {
        Self {
            transaction_status: &report.transaction_status,
            transaction_id: report.transaction_id.as_deref(),
            status_code: &report.status_code,
            gross_amount: &report.gross_amount,
            payment_type: report.payment_type.as_deref(),
            received_at,
        }
    }
}

/// A payment notification as recorded on the invoice's event log.
#[derive(Debug, Clone)]
pub struct PaymentEvent<'a> {
    pub transaction_status: &'a str,
    pub transaction_id: Option<&'a str>,
    pub status_code: &'a str,
    pub gross_amount: &'a str,
    pub payment_type: Option<&'a str>,
    pub received_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Applied,
    /// The invoice changed since it was read; read again and decide again.
    Stale,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor is not valid for this listing")]
pub struct InvalidCursor;

impl Ledger {
    /// Creates the invoice, counts its units as pending and claims the idempotency key, all in
    /// one transaction: either the key is ours and the invoice exists, or nothing was written.
    /// At most `max_unpaid` PENDING invoices per account (the new one included).
    pub async fn open_invoice(
        &self,
        claim: &Claim<'_>,
        invoice: &Invoice,
        reconcile_at: Timestamp,
        max_unpaid: u32,
    ) -> Result<Opened, LedgerError> {
        let count_unpaid = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::account_pk(&invoice.account)))
            .key(SK, s(BALANCE_SK))
            .update_expression("ADD #pending :q, #unpaid :one")
            .condition_expression("attribute_not_exists(#unpaid) OR #unpaid < :max")
            .expression_attribute_names("#pending", "pending")
            .expression_attribute_names("#unpaid", UNPAID_INVOICES)
            .expression_attribute_values(":q", n(invoice.quantity.get()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_unpaid))
            .build()?;
        let actions = vec![
            self.put_new_invoice_action(invoice, reconcile_at)?,
            TransactWriteItem::builder().update(count_unpaid).build(),
        ];
        const BALANCE_ACTION: usize = 1;
        Ok(match self.claim_with(claim, &invoice.id.to_string(), actions).await? {
            Claimed::Fresh => Opened::Created,
            Claimed::ActionDeclined { action: BALANCE_ACTION } => Opened::TooManyUnpaid,
            Claimed::ActionDeclined { .. } => return Err(LedgerError::Corrupt("invoice id collision".into())),
            Claimed::TakenOver { reference } => {
                Opened::TakenOver(InvoiceId::parse(&reference).map_err(|_| LedgerError::Corrupt("claim reference".into()))?)
            }
            Claimed::Refused(refused) => Opened::Refused(refused),
        })
    }

    /// Stores the payment link (if any) and the response to replay, in one transaction. Returns
    /// false when the claim was no longer ours (it expired and another request took it over).
    pub async fn finish_checkout(
        &self,
        claim: &Claim<'_>,
        invoice_id: &InvoiceId,
        payment: Option<&PaymentLink>,
        response: &StoredResponse,
    ) -> Result<bool, LedgerError> {
        let mut actions = vec![self.complete_action(claim, response)?];
        if let Some(link) = payment {
            // Whatever the invoice's status by now: a notification may have moved it while the
            // gateway was asked, and the answer must still be stored for replays.
            actions.push(TransactWriteItem::builder().update(self.set_payment_update(invoice_id, link, false)?).build());
        }
        Ok(self.transact_until_decided(actions).await?.is_ok())
    }

    /// Attaches a payment link to a still-PENDING invoice. False when it is no longer PENDING.
    pub async fn attach_payment(&self, invoice_id: &InvoiceId, link: &PaymentLink) -> Result<bool, LedgerError> {
        let u = self.set_payment_update(invoice_id, link, true)?;
        let result = self
            .client
            .update_item()
            .table_name(u.table_name())
            .set_key(Some(u.key().clone()))
            .update_expression(u.update_expression())
            .set_condition_expression(u.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(u.expression_attribute_names().cloned())
            .set_expression_attribute_values(u.expression_attribute_values().cloned())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Sets the payment link; `only_pending`: only on a PENDING invoice (else on any existing one).
    fn set_payment_update(&self, invoice_id: &InvoiceId, link: &PaymentLink, only_pending: bool) -> Result<Update, LedgerError> {
        let payment = HashMap::from([
            ("token".to_owned(), s(&link.token)),
            ("redirect_url".to_owned(), s(&link.redirect_url)),
        ]);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .update_expression("SET payment = :payment")
            .expression_attribute_values(":payment", AttributeValue::M(payment));
        let update = if only_pending {
            update
                .condition_expression("#status = :pending")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":pending", s(InvoiceStatus::Pending.as_str()))
        } else {
            update.condition_expression("attribute_exists(#pk)").expression_attribute_names("#pk", PK)
        };
        Ok(update.build()?)
    }

    pub async fn invoice(&self, id: &InvoiceId) -> Result<Option<Invoice>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(id)))
            .key(SK, s(INVOICE_SK))
            .consistent_read(true)
            .send()
            .await?;
        out.item.as_ref().map(invoice_from_item).transpose()
    }

    /// An account's invoices, newest first, a page at a time.
    pub async fn invoices_of(
        &self,
        account: &AccountId,
        cursor: Option<&str>,
        limit: i32,
    ) -> Result<Result<(Vec<Invoice>, Option<String>), InvalidCursor>, LedgerError> {
        let account_pk = keys::account_pk(account);
        let start = match cursor.map(|c| decode_cursor(c, &account_pk)).transpose() {
            Ok(start) => start,
            Err(e) => return Ok(Err(e)),
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_ACCOUNT_INDEX)
            .key_condition_expression("account_pk = :a")
            .expression_attribute_values(":a", s(&account_pk))
            .scan_index_forward(false)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        let invoices = out.items().iter().map(invoice_from_item).collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key().map(encode_cursor);
        Ok(Ok((invoices, next)))
    }

    /// Applies a payment outcome to an invoice read in status `invoice.status`: moves it to `to`,
    /// and when `to` is PAID credits its quantity with a ledger entry that can exist only once.
    pub async fn record_payment(
        &self,
        invoice: &Invoice,
        to: InvoiceStatus,
        event: &PaymentEvent<'_>,
        policy: &PaymentPolicy,
    ) -> Result<Recorded, LedgerError> {
        let validity_days = policy.quota_validity_days;
        let q = i64::from(invoice.quantity.get());
        let was_pending = invoice.status.counts_as_pending();
        let mut balance_moves: Vec<(&str, i64)> = Vec::new();
        if was_pending {
            balance_moves.extend([("pending", -q), (UNPAID_INVOICES, -1)]);
        }
        let now = event.received_at;
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(&invoice.id)))
            .key(SK, s(INVOICE_SK))
            .condition_expression("#status = :seen")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":seen", s(invoice.status.as_str()))
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", ts(now));
        let mut actions = Vec::new();
        if to == InvoiceStatus::Paid {
            let valid_until = now + chrono::Duration::days(i64::from(validity_days));
            let shard = keys::shard_of(invoice.id.ulid());
            update = update
                .update_expression(
                    "SET #status = :to, paid_at = :now, valid_until = :vu, used = :zero, remaining = :q, \
                     refunded = :zero, usable_sk = :usable, due_pk = :due_pk, due_at = :vu, transaction_id = :tx",
                )
                .expression_attribute_values(":vu", ts(valid_until))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":q", n(q))
                .expression_attribute_values(":usable", s(format!("{}#{}", time::format(valid_until), invoice.id)))
                .expression_attribute_values(":due_pk", s(keys::due_pk(DueKind::QuotaExpiry, shard)))
                .expression_attribute_values(":tx", s(event.transaction_id.unwrap_or("")));
            balance_moves.extend([("available", q), ("credited", q)]);
            let entry = Put::builder()
                .table_name(&self.table)
                .item(PK, s(keys::account_pk(&invoice.account)))
                .item(SK, s(keys::ledger_sk(EntryKind::Credit, &invoice.id.to_string())))
                .item("kind", s(EntryKind::Credit.as_str()))
                .item("units", n(q))
                .item("invoice_id", s(invoice.id.to_string()))
                .item("at", ts(now))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build()?;
            actions.push(TransactWriteItem::builder().put(entry).build());
        } else {
            // Ended, but not forgotten: after the grace period the sweep asks the gateway once
            // more, so a payment that settles late is never lost.
            update = update
                .update_expression("SET #status = :to, ended_at = :now, due_pk = :due_pk, due_at = :recheck_at")
                .expression_attribute_values(":due_pk", s(keys::due_pk(DueKind::Recheck, keys::shard_of(invoice.id.ulid()))))
                .expression_attribute_values(":recheck_at", ts(now + policy.late_settlement_grace));
        }
        actions.insert(0, TransactWriteItem::builder().update(update.build()?).build());
        if !balance_moves.is_empty() {
            actions.push(self.balance_action(&invoice.account, &balance_moves)?);
        }
        actions.push(self.payment_event_action(&invoice.id, event)?);
        Ok(match self.transact_until_decided(actions).await? {
            Ok(()) => Recorded::Applied,
            // The status moved (or the credit exists, which only happens with PAID): re-read.
            Err(_) => Recorded::Stale,
        })
    }

    /// Marks a settlement whose amount did not match for a person to review; credits nothing.
    pub async fn flag_for_review(
        &self,
        invoice_id: &InvoiceId,
        review: &Review,
        event: &PaymentEvent<'_>,
    ) -> Result<(), LedgerError> {
        let review_item = HashMap::from([
            ("reason".to_owned(), s(&review.reason)),
            ("gross_amount".to_owned(), s(&review.gross_amount)),
            ("flagged_at".to_owned(), ts(review.flagged_at)),
        ]);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::invoice_pk(invoice_id)))
            .key(SK, s(INVOICE_SK))
            .update_expression("SET review = :review")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":review", AttributeValue::M(review_item))
            .build()?;
        let actions = vec![
            TransactWriteItem::builder().update(update).build(),
            self.payment_event_action(invoice_id, event)?,
        ];
        self.transact_until_decided(actions)
            .await?
            .map_err(|_| LedgerError::Corrupt("invoice vanished while flagging it".into()))
    }

    fn put_new_invoice_action(&self, invoice: &Invoice, reconcile_at: Timestamp) -> Result<TransactWriteItem, LedgerError> {
        let mut item = invoice_to_item(invoice);
        item.insert("due_pk".into(), s(keys::due_pk(DueKind::Reconcile, keys::shard_of(invoice.id.ulid()))));
        item.insert("due_at".into(), ts(reconcile_at));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Adds signed amounts to counters of the account's balance item (created on first use).
    pub(crate) fn balance_action(&self, account: &AccountId, moves: &[(&str, i64)]) -> Result<TransactWriteItem, LedgerError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::account_pk(account)))
            .key(SK, s(BALANCE_SK));
        let mut clauses = Vec::new();
        for (i, (attr, delta)) in moves.iter().enumerate() {
            clauses.push(format!("#c{i} :d{i}"));
            update = update
                .expression_attribute_names(format!("#c{i}"), *attr)
                .expression_attribute_values(format!(":d{i}"), n(delta));
        }
        let update = update.update_expression(format!("ADD {}", clauses.join(", "))).build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn payment_event_action(&self, invoice_id: &InvoiceId, e: &PaymentEvent<'_>) -> Result<TransactWriteItem, LedgerError> {
        let nonce: u32 = rand::thread_rng().r#gen();
        let mut put = Put::builder()
            .table_name(&self.table)
            .item(PK, s(keys::invoice_pk(invoice_id)))
            .item(SK, s(keys::payment_event_sk(&time::format(e.received_at), e.transaction_status, nonce)))
            .item("transaction_status", s(e.transaction_status))
            .item("status_code", s(e.status_code))
            .item("gross_amount", s(e.gross_amount))
            .item("received_at", ts(e.received_at));
        if let Some(id) = e.transaction_id {
            put = put.item("transaction_id", s(id));
        }
        if let Some(t) = e.payment_type {
            put = put.item("payment_type", s(t));
        }
        Ok(TransactWriteItem::builder().put(put.build()?).build())
    }
}

fn invoice_to_item(i: &Invoice) -> Item {
    let mut item = HashMap::from([
        (PK.to_owned(), s(keys::invoice_pk(&i.id))),
        (SK.to_owned(), s(INVOICE_SK)),
        ("type".to_owned(), s("invoice")),
        ("invoice_id".to_owned(), s(i.id.to_string())),
        ("order_id".to_owned(), s(i.id.order_id().to_string())),
        ("account".to_owned(), s(i.account.as_str())),
        ("account_pk".to_owned(), s(keys::account_pk(&i.account))),
        ("created_sk".to_owned(), s(format!("{}#{}", time::format(i.created_at), i.id))),
        ("status".to_owned(), s(i.status.as_str())),
        ("quantity".to_owned(), n(i.quantity.get())),
        ("unit_price".to_owned(), n(i.unit_price.get())),
        ("amount".to_owned(), n(i.amount.get())),
        ("currency".to_owned(), s(CURRENCY)),
        ("created_at".to_owned(), ts(i.created_at)),
        ("expires_at".to_owned(), ts(i.expires_at)),
        ("used".to_owned(), n(i.used)),
        ("remaining".to_owned(), n(i.remaining)),
        ("refunded".to_owned(), n(i.refunded)),
    ]);
    if let Some(p) = &i.payment {
        item.insert(
            "payment".into(),
            AttributeValue::M(HashMap::from([
                ("token".to_owned(), s(&p.token)),
                ("redirect_url".to_owned(), s(&p.redirect_url)),
            ])),
        );
    }
    item
}

pub(crate) fn invoice_from_item(item: &Item) -> Result<Invoice, LedgerError> {
    let r = Reader::new(item, "invoice");
    let corrupt = |what: &str| LedgerError::Corrupt(format!("invoice {what} is malformed"));
    let payment = r.opt_map("payment").map(|p| -> Result<PaymentLink, LedgerError> {
        Ok(PaymentLink { token: p.str("token")?.to_owned(), redirect_url: p.str("redirect_url")?.to_owned() })
    });
    let review = r.opt_map("review").map(|m| -> Result<Review, LedgerError> {
        Ok(Review {
            reason: m.str("reason")?.to_owned(),
            gross_amount: m.str("gross_amount")?.to_owned(),
            flagged_at: m.time("flagged_at")?,
        })
    });
    let refund = r.opt_map("refund").map(|m| -> Result<RefundSummary, LedgerError> {
        Ok(RefundSummary {
            refund_id: RefundId::parse(m.str("refund_id")?).map_err(|_| corrupt("refund id"))?,
            units: m.u32("units")?,
            amount: Rupiah::new(m.u64("amount")?),
            status: RefundStatus::parse(m.str("status")?).ok_or_else(|| corrupt("refund status"))?,
            reason: RefundReason::parse(m.str("reason")?).ok_or_else(|| corrupt("refund reason"))?,
            requested_at: m.time("requested_at")?,
            updated_at: m.time("updated_at")?,
            attempts: m.opt_u64("attempts")?.map_or(Ok(0), |a| u32::try_from(a).map_err(|_| corrupt("refund attempts")))?,
            note: m.opt_str("note").map(str::to_owned),
        })
    });
    Ok(Invoice {
        id: InvoiceId::parse(r.str("invoice_id")?).map_err(|_| corrupt("id"))?,
        account: AccountId::parse(r.str("account")?).map_err(|_| corrupt("account"))?,
        status: InvoiceStatus::parse(r.str("status")?).ok_or_else(|| corrupt("status"))?,
        quantity: Quantity::new(r.u32("quantity")?).map_err(|_| corrupt("quantity"))?,
        unit_price: Rupiah::new(r.u64("unit_price")?),
        amount: Rupiah::new(r.u64("amount")?),
        created_at: r.time("created_at")?,
        expires_at: r.time("expires_at")?,
        payment: payment.transpose()?,
        used: r.u32("used")?,
        remaining: r.u32("remaining")?,
        refunded: r.u32("refunded")?,
        paid_at: r.opt_time("paid_at")?,
        valid_until: r.opt_time("valid_until")?,
        refund: refund.transpose()?,
        review: review.transpose()?,
    })
}

/// Cursors are the query's last key, base64url JSON of its string attributes.
fn encode_cursor(key: &HashMap<String, AttributeValue>) -> String {
    let plain: HashMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str())))
        .collect();
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&plain).unwrap_or_default())
}

fn decode_cursor(cursor: &str, account_pk: &str) -> Result<HashMap<String, AttributeValue>, InvalidCursor> {
    if cursor.len() > 2048 {
        return Err(InvalidCursor);
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
    let plain: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)?;
    let expected = [PK, SK, "account_pk", "created_sk"];
    // A cursor only continues the caller's own listing.
    if plain.len() != expected.len()
        || !expected.iter().all(|k| plain.contains_key(*k))
        || plain.get("account_pk").map(String::as_str) != Some(account_pk)
    {
        return Err(InvalidCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_in_their_account() {
        let key = HashMap::from([
            (PK.to_owned(), s("INV#inv_x")),
            (SK.to_owned(), s(INVOICE_SK)),
            ("account_pk".to_owned(), s("ACC#alice")),
            ("created_sk".to_owned(), s("2026#inv_x")),
        ]);
        let c = encode_cursor(&key);
        assert_eq!(decode_cursor(&c, "ACC#alice"), Ok(key));
        assert_eq!(decode_cursor(&c, "ACC#bob"), Err(InvalidCursor));
        assert_eq!(decode_cursor("!!", "ACC#alice"), Err(InvalidCursor));
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode(b"{}"), "ACC#alice"), Err(InvalidCursor));
    }
}
