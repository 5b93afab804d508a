//! Items become small facts; facts add up to per-key tallies; tallies are checked against the
//! ledger's invariants. No item is kept whole, and nothing here can panic on a malformed item:
//! such an item is itself a violation.

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::StampedObject;
use crate::domain::document::keys as object_keys;
use crate::domain::ids::{AccountId, DocumentId};
use crate::ledger::item::Item;
use crate::ledger::keys::EntryKind;

/// Which invariant a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// An item the ledger wrote cannot be read (a missing or mistyped attribute).
    Malformed,
    /// An account's balance is not the sum of its ledger entries.
    Balance,
    /// An account's pending units are not the quantities of its PENDING invoices, or its count of
    /// unpaid invoices (the per-account checkout limit's counter) is not their number.
    Pending,
    /// A PAID or REFUNDED invoice's quantity is not used + remaining + refunded.
    Quantity,
    /// Not exactly one credit for a PAID or REFUNDED invoice, or a credit for any other.
    Credit,
    /// An invoice's used or refunded units are not what its ledger entries say.
    Usage,
    /// More units consumed and refunded than were credited: a unit both used and refunded.
    ConsumedAndRefunded,
    /// A STAMPED document without exactly one consumption, or a consumption for another.
    Consumption,
    /// A STAMPED document whose serial is not registered to it with its SHA-256.
    Serial,
    /// One serial on more than one document.
    SerialTwice,
    /// A stamped object missing or whose SHA-256 differs from the registry's.
    Object,
    /// The ledger and the payment gateway's own record disagree: money the gateway took that is
    /// neither credited nor refunded, a credit the gateway never settled, a different amount, or
    /// a refund the two sides see differently.
    Gateway,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Balance => "balance",
            Self::Pending => "pending",
            Self::Quantity => "quantity",
            Self::Credit => "credit",
            Self::Usage => "usage",
            Self::ConsumedAndRefunded => "consumed_and_refunded",
            Self::Consumption => "consumption",
            Self::Serial => "serial",
            Self::SerialTwice => "serial_twice",
            Self::Object => "object",
            Self::Gateway => "gateway",
        }
    }
}

/// One broken invariant: the rule, what it is about (`account alice`, `invoice inv_...`,
/// `document doc_...`, `serial ...`), and what was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Violation {
    pub rule: Rule,
    pub subject: String,
    pub detail: String,
}

impl Violation {
    pub fn new(rule: Rule, subject: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { rule, subject: subject.into(), detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.rule.as_str(), self.subject, self.detail)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    available: i64,
    pending: i64,
    /// `unpaid_invoices`: absent on a balance that never had an invoice opened, so 0.
    unpaid_invoices: i64,
    credited: i64,
    consumed: i64,
    refunded: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct InvoiceSeen {
    account: Box<str>,
    status: Box<str>,
    quantity: i64,
    used: i64,
    remaining: i64,
    refunded: i64,
    /// What the invoice costs (rupiah); absent only in a malformed item.
    amount: Option<i64>,
    refund: Option<RefundSeen>,
}

/// An invoice's refund as the ledger records it.
#[derive(Debug, Clone)]
pub(crate) struct RefundSeen {
    pub amount: i64,
    pub status: Box<str>,
}

/// What the gateway cross-check needs of one invoice.
#[derive(Debug, Clone)]
pub(crate) struct LedgerInvoice {
    pub invoice_id: Box<str>,
    pub status: Box<str>,
    pub amount: Option<i64>,
    pub refund: Option<RefundSeen>,
}

#[derive(Debug, Clone)]
pub(crate) struct DocumentSeen {
    account: Box<str>,
    status: Box<str>,
    serial: Option<Box<str>>,
    sha256: Option<Box<str>>,
}

#[derive(Debug, Clone)]
pub(crate) struct SerialSeen {
    status: Box<str>,
    document_id: Option<Box<str>>,
    document_sha256: Option<Box<str>>,
}

/// What one item contributes to the audit.
#[derive(Debug)]
pub(crate) enum Fact {
    Balance { account: Box<str>, counters: Counters },
    Entry { account: Box<str>, kind: EntryKind, units: i64, invoice_id: Option<Box<str>>, document_id: Option<Box<str>> },
    Invoice { id: Box<str>, seen: InvoiceSeen },
    Document { id: Box<str>, seen: DocumentSeen },
    Serial { serial: Box<str>, seen: SerialSeen },
    Malformed(Violation),
    /// Payment events, idempotency records: nothing to check.
    Other,
}

fn text<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

fn boxed(item: &Item, attr: &str) -> Option<Box<str>> {
    text(item, attr).map(Box::from)
}

/// A number attribute: `Ok(None)` when absent, `Err` when not a whole number.
fn number(item: &Item, attr: &str) -> Result<Option<i64>, String> {
    match item.get(attr) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v.parse().map(Some).map_err(|_| format!("attribute {attr} is not a whole number")),
        Some(_) => Err(format!("attribute {attr} is not a number")),
    }
}

fn required(item: &Item, attr: &str) -> Result<i64, String> {
    number(item, attr)?.ok_or_else(|| format!("attribute {attr} is missing"))
}

fn required_text(item: &Item, attr: &str) -> Result<Box<str>, String> {
    boxed(item, attr).ok_or_else(|| format!("attribute {attr} is missing or not a string"))
}

/// The invoice's `refund` map: `Ok(None)` when it has none.
fn refund_of(item: &Item) -> Result<Option<RefundSeen>, String> {
    let Some(value) = item.get("refund") else { return Ok(None) };
    let AttributeValue::M(refund) = value else { return Err("attribute refund is not a map".into()) };
    let amount = number(refund, "amount")?.ok_or_else(|| "attribute refund.amount is missing".to_owned())?;
    let status = boxed(refund, "status").ok_or_else(|| "attribute refund.status is missing".to_owned())?;
    Ok(Some(RefundSeen { amount, status }))
}

impl Fact {
    pub(crate) fn of(item: &Item) -> Self {
        let (Some(pk), Some(sk)) = (text(item, "pk"), text(item, "sk")) else {
            return Self::Malformed(Violation::new(Rule::Malformed, "item", "an item without string pk and sk"));
        };
        let malformed = |subject: String, what: &str, reason: String| {
            Self::Malformed(Violation::new(Rule::Malformed, subject, format!("{what} item {pk} / {sk}: {reason}")))
        };
        if let Some(account) = pk.strip_prefix("ACC#") {
            let subject = || format!("account {account}");
            if sk == crate::ledger::keys::BALANCE_SK {
                let read = || -> Result<Counters, String> {
                    let count = |attr| number(item, attr).map(Option::unwrap_or_default);
                    Ok(Counters {
                        available: count("available")?,
                        pending: count("pending")?,
                        unpaid_invoices: count(crate::ledger::invoices::UNPAID_INVOICES)?,
                        credited: count("credited")?,
                        consumed: count("consumed")?,
                        refunded: count("refunded")?,
                    })
                };
                return match read() {
                    Ok(counters) => Self::Balance { account: account.into(), counters },
                    Err(reason) => malformed(subject(), "balance", reason),
                };
            }
            if sk.starts_with(crate::ledger::keys::LEDGER_PREFIX) {
                let read = || -> Result<Self, String> {
                    let kind = text(item, "kind")
                        .and_then(EntryKind::parse)
                        .ok_or_else(|| "attribute kind is missing or unknown".to_owned())?;
                    let units = required(item, "units")?;
                    if units < 0 {
                        return Err(format!("units is negative ({units})"));
                    }
                    let invoice_id = boxed(item, "invoice_id");
                    let document_id = boxed(item, "document_id");
                    if invoice_id.is_none() {
                        return Err("attribute invoice_id is missing".into());
                    }
                    if kind == EntryKind::Consume && document_id.is_none() {
                        return Err("attribute document_id is missing".into());
                    }
                    Ok(Self::Entry { account: account.into(), kind, units, invoice_id, document_id })
                };
                return read().unwrap_or_else(|reason| malformed(subject(), "ledger entry", reason));
            }
            return Self::Other;
        }
        if let Some(id) = pk.strip_prefix("INV#") {
            if sk != crate::ledger::keys::INVOICE_SK {
                return Self::Other;
            }
            let read = || -> Result<InvoiceSeen, String> {
                Ok(InvoiceSeen {
                    account: required_text(item, "account")?,
                    status: required_text(item, "status")?,
                    quantity: required(item, "quantity")?,
                    used: required(item, "used")?,
                    remaining: required(item, "remaining")?,
                    refunded: required(item, "refunded")?,
                    amount: number(item, "amount")?,
                    refund: refund_of(item)?,
                })
            };
            return match read() {
                Ok(seen) => Self::Invoice { id: id.into(), seen },
                Err(reason) => malformed(format!("invoice {id}"), "invoice", reason),
            };
        }
        if let Some(id) = pk.strip_prefix("DOC#") {
            if sk != crate::ledger::documents::DOCUMENT_SK {
                return Self::Other;
            }
            let read = || -> Result<DocumentSeen, String> {
                Ok(DocumentSeen {
                    account: required_text(item, "account")?,
                    status: required_text(item, "status")?,
                    serial: boxed(item, "serial"),
                    sha256: boxed(item, "sha256"),
                })
            };
            return match read() {
                Ok(seen) => Self::Document { id: id.into(), seen },
                Err(reason) => malformed(format!("document {id}"), "document", reason),
            };
        }
        if let Some(serial) = pk.strip_prefix("SERIAL#") {
            if sk != crate::ledger::documents::SERIAL_SK {
                return Self::Other;
            }
            return match required_text(item, "status") {
                Ok(status) => Self::Serial {
                    serial: serial.into(),
                    seen: SerialSeen {
                        status,
                        document_id: boxed(item, "document_id"),
                        document_sha256: boxed(item, "document_sha256"),
                    },
                },
                Err(reason) => malformed(format!("serial {serial}"), "serial", reason),
            };
        }
        Self::Other
    }
}

#[derive(Debug, Default)]
struct AccountTally {
    balance: Option<Counters>,
    /// Sums of the account's ledger entries.
    credited: i64,
    consumed: i64,
    refunded: i64,
    /// Quantities of the account's PENDING invoices.
    pending_in_invoices: i64,
    /// How many PENDING invoices the account has.
    pending_invoices: i64,
}

#[derive(Debug, Default)]
struct InvoiceTally {
    seen: Option<InvoiceSeen>,
    credits: u32,
    credit_units: i64,
    credit_accounts: Vec<Box<str>>,
    consumed: i64,
    refunded: i64,
}

#[derive(Debug, Default)]
struct DocumentTally {
    seen: Option<DocumentSeen>,
    consumptions: u32,
    consume_accounts: Vec<Box<str>>,
}

#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub accounts: u64,
    pub invoices: u64,
    pub ledger_entries: u64,
    pub documents: u64,
    pub stamped_documents: u64,
    pub serials: u64,
}

const PAID: &str = "PAID";
const REFUNDED: &str = "REFUNDED";
const PENDING: &str = "PENDING";
const STAMPED: &str = "STAMPED";

#[derive(Debug, Default)]
pub(crate) struct Tally {
    accounts: HashMap<Box<str>, AccountTally>,
    invoices: HashMap<Box<str>, InvoiceTally>,
    documents: HashMap<Box<str>, DocumentTally>,
    serials: HashMap<Box<str>, SerialSeen>,
    malformed: Vec<Violation>,
    ledger_entries: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, fact: Fact) {
        match fact {
            Fact::Balance { account, counters } => self.accounts.entry(account).or_default().balance = Some(counters),
            Fact::Entry { account, kind, units, invoice_id, document_id } => {
                self.ledger_entries += 1;
                let totals = self.accounts.entry(account.clone()).or_default();
                match kind {
                    EntryKind::Credit => totals.credited += units,
                    EntryKind::Consume => totals.consumed += units,
                    EntryKind::Refund => totals.refunded += units,
                }
                if let Some(invoice_id) = invoice_id {
                    let invoice = self.invoices.entry(invoice_id).or_default();
                    match kind {
                        EntryKind::Credit => {
                            invoice.credits += 1;
                            invoice.credit_units += units;
                            invoice.credit_accounts.push(account.clone());
                        }
                        EntryKind::Consume => invoice.consumed += units,
                        EntryKind::Refund => invoice.refunded += units,
                    }
                }
                if let (EntryKind::Consume, Some(document_id)) = (kind, document_id) {
                    let document = self.documents.entry(document_id).or_default();
                    document.consumptions += 1;
                    document.consume_accounts.push(account);
                }
            }
            Fact::Invoice { id, seen } => {
                if &*seen.status == PENDING {
                    let account = self.accounts.entry(seen.account.clone()).or_default();
                    account.pending_in_invoices += seen.quantity;
                    account.pending_invoices += 1;
                }
                self.invoices.entry(id).or_default().seen = Some(seen);
            }
            Fact::Document { id, seen } => self.documents.entry(id).or_default().seen = Some(seen),
            Fact::Serial { serial, seen } => {
                self.serials.insert(serial, seen);
            }
            Fact::Malformed(v) => self.malformed.push(v),
            Fact::Other => {}
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        let n = |c: usize| c as u64;
        Counts {
            accounts: n(self.accounts.values().filter(|a| a.balance.is_some()).count()),
            invoices: n(self.invoices.values().filter(|i| i.seen.is_some()).count()),
            ledger_entries: self.ledger_entries,
            documents: n(self.documents.values().filter(|d| d.seen.is_some()).count()),
            stamped_documents: n(self.documents.values().filter(|d| d.seen.as_ref().is_some_and(|s| &*s.status == STAMPED)).count()),
            serials: n(self.serials.len()),
        }
    }

    /// Every invariant, over everything added.
    pub(crate) fn check(&self) -> Vec<Violation> {
        let mut out = self.malformed.clone();
        self.check_accounts(&mut out);
        self.check_invoices(&mut out);
        self.check_documents(&mut out);
        self.check_serials(&mut out);
        out
    }

    fn check_accounts(&self, out: &mut Vec<Violation>) {
        for (account, a) in &self.accounts {
            let subject = format!("account {account}");
            let b = a.balance.unwrap_or_default();
            let mut wrong = Vec::new();
            if a.balance.is_none() && (a.credited, a.consumed, a.refunded) != (0, 0, 0) {
                wrong.push("no balance item, but ledger entries exist".to_owned());
            }
            let expected = a.credited - a.consumed - a.refunded;
            if b.available != expected {
                wrong.push(format!(
                    "available {} but ledger entries give {expected} (credited {} - consumed {} - refunded {})",
                    b.available, a.credited, a.consumed, a.refunded
                ));
            }
            for (name, stored, summed) in
                [("credited", b.credited, a.credited), ("consumed", b.consumed, a.consumed), ("refunded", b.refunded, a.refunded)]
            {
                if stored != summed {
                    wrong.push(format!("{name} {stored} but its ledger entries sum to {summed}"));
                }
            }
            if b.available < 0 {
                wrong.push(format!("available is negative ({})", b.available));
            }
            if !wrong.is_empty() {
                out.push(Violation::new(Rule::Balance, subject.clone(), wrong.join("; ")));
            }
            if b.pending != a.pending_in_invoices {
                out.push(Violation::new(
                    Rule::Pending,
                    subject.clone(),
                    format!("pending {} but its PENDING invoices hold {} units", b.pending, a.pending_in_invoices),
                ));
            }
            // A drift here would refuse the account's checkouts (or let it past its limit).
            if b.unpaid_invoices != a.pending_invoices {
                out.push(Violation::new(
                    Rule::Pending,
                    subject,
                    format!("unpaid_invoices {} but it has {} PENDING invoices", b.unpaid_invoices, a.pending_invoices),
                ));
            }
        }
    }

    fn check_invoices(&self, out: &mut Vec<Violation>) {
        for (id, i) in &self.invoices {
            let subject = || format!("invoice {id}");
            let Some(seen) = &i.seen else {
                out.push(Violation::new(
                    Rule::Credit,
                    subject(),
                    format!(
                        "ledger entries (credited {}, consumed {}, refunded {}) name an invoice that does not exist",
                        i.credit_units, i.consumed, i.refunded
                    ),
                ));
                continue;
            };
            let status = &*seen.status;
            if status == PAID || status == REFUNDED {
                if seen.quantity != seen.used + seen.remaining + seen.refunded {
                    out.push(Violation::new(
                        Rule::Quantity,
                        subject(),
                        format!(
                            "quantity {} but used {} + remaining {} + refunded {} = {}",
                            seen.quantity,
                            seen.used,
                            seen.remaining,
                            seen.refunded,
                            seen.used + seen.remaining + seen.refunded
                        ),
                    ));
                }
                if status == REFUNDED && seen.remaining != 0 {
                    out.push(Violation::new(Rule::Quantity, subject(), format!("REFUNDED with {} units remaining", seen.remaining)));
                }
                if i.credits != 1 {
                    out.push(Violation::new(
                        Rule::Credit,
                        subject(),
                        format!("{status} invoice has {} credits ({} units), expected exactly one", i.credits, i.credit_units),
                    ));
                } else if i.credit_units != seen.quantity {
                    out.push(Violation::new(
                        Rule::Credit,
                        subject(),
                        format!("credited {} units for a quantity of {}", i.credit_units, seen.quantity),
                    ));
                }
                if let Some(other) = i.credit_accounts.iter().find(|a| **a != seen.account) {
                    out.push(Violation::new(
                        Rule::Credit,
                        subject(),
                        format!("credited to account {other}, but the invoice belongs to account {}", seen.account),
                    ));
                }
                if i.consumed != seen.used {
                    out.push(Violation::new(
                        Rule::Usage,
                        subject(),
                        format!("used {} but {} units were consumed by ledger entries", seen.used, i.consumed),
                    ));
                }
                if i.refunded != seen.refunded {
                    out.push(Violation::new(
                        Rule::Usage,
                        subject(),
                        format!("refunded {} but its refund entries hold {} units", seen.refunded, i.refunded),
                    ));
                }
                let credited = i.credit_units.min(seen.quantity);
                if i.consumed + i.refunded > credited {
                    out.push(Violation::new(
                        Rule::ConsumedAndRefunded,
                        subject(),
                        format!("{} units consumed and {} refunded out of {credited} credited", i.consumed, i.refunded),
                    ));
                }
            } else {
                if i.credits > 0 {
                    out.push(Violation::new(
                        Rule::Credit,
                        subject(),
                        format!("{status} invoice has {} credits ({} units), expected none", i.credits, i.credit_units),
                    ));
                }
                if i.consumed > 0 || i.refunded > 0 {
                    out.push(Violation::new(
                        Rule::Usage,
                        subject(),
                        format!("{status} invoice has {} units consumed and {} refunded", i.consumed, i.refunded),
                    ));
                }
            }
        }
    }

    fn check_documents(&self, out: &mut Vec<Violation>) {
        for (id, d) in &self.documents {
            let subject = || format!("document {id}");
            let Some(seen) = &d.seen else {
                out.push(Violation::new(
                    Rule::Consumption,
                    subject(),
                    format!("{} consumption(s) for a document that does not exist", d.consumptions),
                ));
                continue;
            };
            if let Some(other) = d.consume_accounts.iter().find(|a| **a != seen.account) {
                out.push(Violation::new(
                    Rule::Consumption,
                    subject(),
                    format!("consumed from account {other}, but the document belongs to account {}", seen.account),
                ));
            }
            if &*seen.status != STAMPED {
                if d.consumptions > 0 {
                    out.push(Violation::new(
                        Rule::Consumption,
                        subject(),
                        format!("{} document has {} consumption(s), expected none", seen.status, d.consumptions),
                    ));
                }
                continue;
            }
            if d.consumptions != 1 {
                out.push(Violation::new(
                    Rule::Consumption,
                    subject(),
                    format!("STAMPED document has {} consumptions, expected exactly one", d.consumptions),
                ));
            }
            let Some(serial) = &seen.serial else {
                out.push(Violation::new(Rule::Serial, subject(), "STAMPED document has no serial"));
                continue;
            };
            match self.serials.get(serial) {
                None => out.push(Violation::new(Rule::Serial, subject(), format!("serial {serial} is not registered"))),
                Some(registered) => {
                    if registered.document_id.as_deref() != Some(&**id) {
                        out.push(Violation::new(
                            Rule::Serial,
                            subject(),
                            format!(
                                "serial {serial} is registered to document {}",
                                registered.document_id.as_deref().unwrap_or("(none)")
                            ),
                        ));
                    } else if &*registered.status != STAMPED {
                        out.push(Violation::new(
                            Rule::Serial,
                            subject(),
                            format!("serial {serial} is registered as {}, not STAMPED", registered.status),
                        ));
                    } else if registered.document_sha256.is_none() || registered.document_sha256 != seen.sha256 {
                        out.push(Violation::new(
                            Rule::Serial,
                            subject(),
                            format!(
                                "the registry's SHA-256 {} differs from the document's {}",
                                registered.document_sha256.as_deref().unwrap_or("(none)"),
                                seen.sha256.as_deref().unwrap_or("(none)")
                            ),
                        ));
                    }
                }
            }
        }
    }

    fn check_serials(&self, out: &mut Vec<Violation>) {
        let mut holders: HashMap<&str, Vec<&str>> = HashMap::new();
        for (id, d) in &self.documents {
            if let Some(serial) = d.seen.as_ref().and_then(|s| s.serial.as_deref()) {
                holders.entry(serial).or_default().push(id);
            }
        }
        for (serial, docs) in &mut holders {
            if docs.len() > 1 {
                docs.sort_unstable();
                out.push(Violation::new(Rule::SerialTwice, format!("serial {serial}"), format!("on documents {}", docs.join(", "))));
            }
        }
        for (serial, registered) in &self.serials {
            if &*registered.status != STAMPED {
                continue;
            }
            let holder = registered.document_id.as_deref().and_then(|id| self.documents.get(id)?.seen.as_ref());
            if holder.and_then(|d| d.serial.as_deref()) != Some(&**serial) {
                out.push(Violation::new(
                    Rule::Serial,
                    format!("serial {serial}"),
                    format!(
                        "registered STAMPED for document {}, which does not hold it",
                        registered.document_id.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
        }
    }

    /// The stamped objects to hash: each STAMPED document's, with the SHA-256 the registry holds
    /// (or the document's own when the registry has none; that is reported already).
    /// Every invoice the table holds, for the cross-check with the gateway's record.
    pub(crate) fn ledger_invoices(&self) -> Vec<LedgerInvoice> {
        let mut out: Vec<LedgerInvoice> = self
            .invoices
            .iter()
            .filter_map(|(id, i)| {
                let seen = i.seen.as_ref()?;
                Some(LedgerInvoice {
                    invoice_id: id.clone(),
                    status: seen.status.clone(),
                    amount: seen.amount,
                    refund: seen.refund.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.invoice_id.cmp(&b.invoice_id));
        out
    }

    pub(crate) fn stamped_objects(&self) -> Vec<StampedObject> {
        let mut objects = Vec::new();
        for (id, d) in &self.documents {
            let Some(seen) = d.seen.as_ref().filter(|s| &*s.status == STAMPED) else { continue };
            let registered = seen.serial.as_deref().and_then(|s| self.serials.get(s)).and_then(|r| r.document_sha256.as_deref());
            let Some(expected) = registered.or(seen.sha256.as_deref()) else { continue };
            let (Ok(account), Ok(document)) = (AccountId::parse(&seen.account), DocumentId::parse(id)) else { continue };
            objects.push(StampedObject {
                document_id: id.to_string(),
                key: object_keys::stamped(&account, &document),
                expected_sha256: expected.to_owned(),
            });
        }
        objects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }
    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }
    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    fn healthy() -> Vec<Item> {
        vec![
            item(&[("pk", s("ACC#alice")), ("sk", s("BALANCE")), ("available", n(1)), ("pending", n(0)), ("credited", n(2)), ("consumed", n(1)), ("refunded", n(0))]),
            item(&[("pk", s("ACC#alice")), ("sk", s("LEDGER#CREDIT#inv_1")), ("kind", s("CREDIT")), ("units", n(2)), ("invoice_id", s("inv_1"))]),
            item(&[("pk", s("ACC#alice")), ("sk", s("LEDGER#CONSUME#doc_1")), ("kind", s("CONSUME")), ("units", n(1)), ("invoice_id", s("inv_1")), ("document_id", s("doc_1"))]),
            item(&[("pk", s("INV#inv_1")), ("sk", s("INVOICE")), ("account", s("alice")), ("status", s("PAID")), ("quantity", n(2)), ("used", n(1)), ("remaining", n(1)), ("refunded", n(0))]),
            item(&[("pk", s("INV#inv_1")), ("sk", s("EVENT#x")), ("status_code", s("200"))]),
            item(&[("pk", s("DOC#doc_1")), ("sk", s("DOCUMENT")), ("account", s("alice")), ("status", s("STAMPED")), ("serial", s("S1")), ("sha256", s("ab"))]),
            item(&[("pk", s("SERIAL#S1")), ("sk", s("SERIAL")), ("status", s("STAMPED")), ("document_id", s("doc_1")), ("document_sha256", s("ab"))]),
        ]
    }

    fn audit(items: &[Item]) -> Vec<Violation> {
        let mut t = Tally::default();
        for i in items {
            t.add(Fact::of(i));
        }
        t.check()
    }

    #[test]
    fn a_healthy_ledger_holds_and_each_corruption_is_named() {
        assert_eq!(audit(&healthy()), vec![]);

        let mut off_by_one = healthy();
        off_by_one[0].insert("available".into(), n(2));
        let v = audit(&off_by_one);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].rule, v[0].subject.as_str()), (Rule::Balance, "account alice"));

        let mut twice = healthy();
        twice.push(item(&[("pk", s("ACC#alice")), ("sk", s("LEDGER#CREDIT#again")), ("kind", s("CREDIT")), ("units", n(2)), ("invoice_id", s("inv_1"))]));
        assert!(audit(&twice).iter().any(|v| v.rule == Rule::Credit && v.subject == "invoice inv_1"));

        let mut unconsumed = healthy();
        unconsumed.remove(2);
        assert!(audit(&unconsumed).iter().any(|v| v.rule == Rule::Consumption && v.subject == "document doc_1"));

        let mut both = healthy();
        both.push(item(&[("pk", s("ACC#alice")), ("sk", s("LEDGER#REFUND#r")), ("kind", s("REFUND")), ("units", n(2)), ("invoice_id", s("inv_1"))]));
        assert!(audit(&both).iter().any(|v| v.rule == Rule::ConsumedAndRefunded && v.subject == "invoice inv_1"));

        let mut unpaid_drift = healthy();
        unpaid_drift.push(item(&[("pk", s("INV#inv_2")), ("sk", s("INVOICE")), ("account", s("alice")), ("status", s("PENDING")), ("quantity", n(3)), ("used", n(0)), ("remaining", n(0)), ("refunded", n(0))]));
        unpaid_drift[0].insert("pending".into(), n(3));
        let v = audit(&unpaid_drift);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].rule == Rule::Pending && v[0].detail.contains("unpaid_invoices 0 but it has 1 PENDING"), "{v:?}");
        unpaid_drift[0].insert("unpaid_invoices".into(), n(1));
        assert_eq!(audit(&unpaid_drift), vec![]);

        let mut garbage = healthy();
        garbage[3].insert("quantity".into(), s("two"));
        assert!(audit(&garbage).iter().any(|v| v.rule == Rule::Malformed && v.subject == "invoice inv_1"));
    }
}
