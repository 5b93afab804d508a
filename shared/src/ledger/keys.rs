//! Key shapes of the single table. Every item has `pk` and `sk`; sparse GSI attributes are set
//! only while an item belongs in that index.
//!
//! | item | pk | sk |
//! | --- | --- | --- |
//! | invoice | `INV#{invoice_id}` | `INVOICE` |
//! | payment event | `INV#{invoice_id}` | `EVENT#{received_at}#{status}#{n}` |
//! | account balance | `ACC#{account}` | `BALANCE` |
//! | ledger entry | `ACC#{account}` | `LEDGER#{CREDIT,CONSUME,REFUND}#{reference}` |
//! | idempotency record | `IDEM#{account}#{key}` | `IDEMPOTENCY` |
//! | document | `DOC#{document_id}` | `DOCUMENT` |
//! | serial | `SERIAL#{serial}` | `SERIAL` |
//!
//! GSIs (template.yaml): `by_account` (`account_pk`, `created_sk`), `usable_quota`
//! (`account_pk`, `usable_sk`), `due` (`due_pk`, `due_at`).
//!
//! `by_account` holds two kinds of partitions: `ACC#{account}` (every invoice of the account) and
//! `OPENDOC#{account}` (the account's documents while AWAITING_UPLOAD or PROCESSING: the
//! attributes are removed by the write that makes a document final), so the open-document limit
//! is a bounded Query of that partition.

use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::{AccountId, InvoiceId, Ulid};

pub const PK: &str = "pk";
pub const SK: &str = "sk";

pub const INVOICE_SK: &str = "INVOICE";
pub const BALANCE_SK: &str = "BALANCE";
pub const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";
pub const LEDGER_PREFIX: &str = "LEDGER#";

/// Sweep work is spread over this many partitions so no index partition gets hot.
pub const DUE_SHARDS: u8 = 8;

pub fn invoice_pk(id: &InvoiceId) -> String {
    format!("INV#{id}")
}

pub fn account_pk(account: &AccountId) -> String {
    format!("ACC#{account}")
}

/// The `by_account` partition of an account's open documents.
pub fn open_documents_pk(account: &AccountId) -> String {
    format!("OPENDOC#{account}")
}

pub fn idempotency_pk(account: &AccountId, key: &IdempotencyKey) -> String {
    // Keys cannot contain '#', so the last '#' always separates account from key.
    format!("IDEM#{account}#{key}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Credit,
    Consume,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "CREDIT",
            Self::Consume => "CONSUME",
            Self::Refund => "REFUND",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CREDIT" => Self::Credit,
            "CONSUME" => Self::Consume,
            "REFUND" => Self::Refund,
            _ => return None,
        })
    }
}

/// One entry per movement and reference (an invoice credited, a document stamped, a refund),
/// so writing it under `attribute_not_exists` makes the movement happen at most once.
pub fn ledger_sk(kind: EntryKind, reference: &str) -> String {
    format!("{LEDGER_PREFIX}{}#{reference}", kind.as_str())
}

pub fn payment_event_sk(received_at: &str, transaction_status: &str, nonce: u32) -> String {
    format!("EVENT#{received_at}#{transaction_status}#{nonce:08x}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueKind {
    /// A PENDING invoice to check against the gateway's status API, and to expire.
    Reconcile,
    /// A PAID invoice whose validity ends: unused units are refunded.
    QuotaExpiry,
    /// A refund to submit or retry.
    Refund,
    /// An EXPIRED or CANCELLED invoice to ask the gateway about once more (a late settlement,
    /// or a notification that could not be confirmed).
    Recheck,
    /// A document PROCESSING whose stamp run should long have ended (a document item, not an
    /// invoice): the sweep releases it.
    StaleDocument,
}

impl DueKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reconcile => "RECONCILE",
            Self::QuotaExpiry => "QUOTA_EXPIRY",
            Self::Refund => "REFUND",
            Self::Recheck => "RECHECK",
            Self::StaleDocument => "STALE_DOCUMENT",
        }
    }
}

pub fn due_pk(kind: DueKind, shard: u8) -> String {
    format!("DUE#{}#{shard}", kind.as_str())
}

/// What every `due_pk` of `kind` starts with.
pub fn due_prefix(kind: DueKind) -> String {
    format!("DUE#{}#", kind.as_str())
}

/// A stable shard from an id's random part.
pub fn shard_of(id: Ulid) -> u8 {
    let last = id.as_str().as_bytes().last().copied().unwrap_or(0);
    last % DUE_SHARDS
}
