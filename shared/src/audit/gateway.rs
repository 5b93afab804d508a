//! The cross-check of the ledger with the payment gateway's own record (Midtrans' status API):
//! every order the gateway took money for is credited (or refunded), nothing is credited that the
//! gateway did not settle, amounts agree, and refunds are seen alike on both sides.
//!
//! Midtrans has no API listing a merchant's orders, so against it each invoice of the ledger is
//! asked about. The local simulator also lists every order it knows (`GET /local/v1/orders`), so
//! locally an order with no invoice at all is found too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tally::{LedgerInvoice, Rule, Violation};
use super::{AuditError, Progress};
use crate::domain::ids::{InvoiceId, OrderId};
use crate::domain::notification::PaymentOutcome;
use crate::config::Secret;
use crate::midtrans::client::basic_authorization;

/// Status requests in flight at once.
const CONCURRENCY: usize = 16;
/// Attempts per request before the audit gives up (an audit never claims what it could not see).
const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Orders per page of the simulator's listing.
const PAGE: usize = 500;

/// Where the gateway is and how to ask it.
#[derive(Debug, Clone)]
pub struct GatewayCheck {
    http: reqwest::Client,
    api_base_url: String,
    server_key: Secret,
}

/// What the cross-check saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GatewayReport {
    pub api_base_url: String,
    /// Invoices of the ledger whose order the gateway was asked about.
    pub orders_checked: u64,
    /// Orders the gateway listed (the local simulator); `None` when it lists none (Midtrans).
    pub orders_listed: Option<u64>,
    /// Orders the gateway took money for that are neither credited nor refunded.
    pub paid_not_credited: u64,
}

/// One order as the gateway reports it (the fields the check reads).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct GatewayRecord {
    #[serde(default)]
    pub order_id: String,
    #[serde(default)]
    pub status_code: String,
    pub transaction_status: String,
    #[serde(default)]
    pub fraud_status: Option<String>,
    #[serde(default)]
    pub gross_amount: Option<String>,
    #[serde(default)]
    pub refund_amount: Option<String>,
}

impl GatewayRecord {
    /// Whether the gateway holds (or held, before a refund) the payer's money.
    fn took_money(&self) -> bool {
        let settled = PaymentOutcome::of(&self.transaction_status, self.fraud_status.as_deref()) == PaymentOutcome::Settled
            && self.status_code == "200";
        settled || matches!(self.transaction_status.as_str(), "refund" | "partial_refund" | "chargeback" | "partial_chargeback")
    }
}

#[derive(Debug, Deserialize)]
struct OrderPage {
    orders: Vec<GatewayRecord>,
    #[serde(default)]
    next_after: Option<String>,
}

/// `"30000.00"` → 30000; anything else (a fraction, not a number) is `None`.
fn rupiah(amount: &str) -> Option<i64> {
    let (whole, cents) = amount.split_once('.').unwrap_or((amount, "00"));
    (cents.bytes().all(|b| b == b'0') && !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()))
        .then(|| whole.parse().ok())
        .flatten()
}

fn shown(amount: Option<&str>) -> String {
    amount.map_or_else(|| "no amount".to_owned(), |a| format!("Rp {a}"))
}

const CREDITED: [&str; 2] = ["PAID", "REFUNDED"];

/// Whether the gateway took money for the invoice's order that the ledger has not credited.
fn holds_uncredited_money(invoice: &LedgerInvoice, record: Option<&GatewayRecord>) -> bool {
    record.is_some_and(GatewayRecord::took_money) && !CREDITED.contains(&&*invoice.status)
}

/// The ledger's invoice against the gateway's record of its order (`None`: never seen there).
pub(crate) fn judge(invoice: &LedgerInvoice, record: Option<&GatewayRecord>) -> Vec<Violation> {
    let subject = format!("invoice {}", invoice.invoice_id);
    let violation = |detail: String| Violation::new(Rule::Gateway, subject.clone(), detail);
    let credited = CREDITED.contains(&&*invoice.status);
    let mut out = Vec::new();
    let Some(record) = record else {
        if credited {
            out.push(violation(format!("the invoice is {} (credited) but the gateway has no such order", invoice.status)));
        }
        return out;
    };
    let took = record.took_money();
    if holds_uncredited_money(invoice, Some(record)) {
        out.push(violation(format!(
            "the gateway took {} (transaction_status {}) but the invoice is {}: neither credited nor refunded",
            shown(record.gross_amount.as_deref()),
            record.transaction_status,
            invoice.status
        )));
    }
    if credited && !took {
        out.push(violation(format!(
            "the invoice is {} (credited) but the gateway reports transaction_status {} (status_code {})",
            invoice.status, record.transaction_status, record.status_code
        )));
    }
    if credited && took {
        let gross = record.gross_amount.as_deref().and_then(rupiah);
        if gross.is_none() || gross != invoice.amount {
            out.push(violation(format!(
                "the invoice costs {} but the gateway took {}",
                invoice.amount.map_or_else(|| "an unknown amount".to_owned(), |a| format!("Rp {a}")),
                shown(record.gross_amount.as_deref())
            )));
        }
    }
    let Some(refunded_at_gateway) = record.refund_amount.as_deref().map_or(Some(0), rupiah) else {
        out.push(violation(format!("the gateway reports an unreadable refund amount {:?}", record.refund_amount)));
        return out;
    };
    match &invoice.refund {
        None if refunded_at_gateway > 0 => {
            out.push(violation(format!("the gateway refunded Rp {refunded_at_gateway} but the ledger has no refund")));
        }
        None => {}
        Some(refund) if &*refund.status == "COMPLETED" && refunded_at_gateway != refund.amount => out.push(violation(format!(
            "the refund is shown paid back (Rp {}) but the gateway refunded Rp {refunded_at_gateway}",
            refund.amount
        ))),
        // Not confirmed yet: nothing, or exactly this refund, may have reached the gateway.
        Some(refund) if refunded_at_gateway != 0 && refunded_at_gateway != refund.amount => out.push(violation(format!(
            "the refund of Rp {} is {} but the gateway refunded Rp {refunded_at_gateway}",
            refund.amount, refund.status
        ))),
        Some(_) => {}
    }
    out
}

/// A listed order the ledger has no invoice for.
fn judge_unknown(record: &GatewayRecord) -> Option<Violation> {
    record.took_money().then(|| {
        Violation::new(
            Rule::Gateway,
            format!("order {}", record.order_id),
            format!(
                "the gateway took {} (transaction_status {}) but the ledger has no invoice for it",
                shown(record.gross_amount.as_deref()),
                record.transaction_status
            ),
        )
    })
}

impl GatewayCheck {
    /// `api_base_url`: Midtrans' Core API (`https://api.midtrans.com`) or the local simulator.
    pub fn new(api_base_url: &str, server_key: Secret) -> Result<Self, AuditError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(|e| AuditError::Gateway { order: String::new(), reason: e.to_string() })?;
        Ok(Self { http, api_base_url: api_base_url.trim_end_matches('/').to_owned(), server_key })
    }

    /// GET with retries; `Ok(None)` on 404.
    async fn get<T: serde::de::DeserializeOwned>(&self, url: &str, order: &str) -> Result<Option<T>, AuditError> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let response = match self.http.get(url).header("Authorization", basic_authorization(&self.server_key)).header("Accept", "application/json").send().await {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = response.status().as_u16();
            if status == 404 {
                return Ok(None);
            }
            if !(200..300).contains(&status) {
                last = format!("HTTP {status}");
                continue;
            }
            match response.json::<T>().await {
                Ok(v) => return Ok(Some(v)),
                Err(e) => last = format!("unreadable answer: {e}"),
            }
        }
        Err(AuditError::Gateway { order: order.to_owned(), reason: last })
    }

    async fn record(&self, order: &OrderId) -> Result<Option<GatewayRecord>, AuditError> {
        let url = format!("{}/v2/{order}/status", self.api_base_url);
        let record: Option<GatewayRecord> = self.get(&url, &order.to_string()).await?;
        // Midtrans answers some "not found" cases with HTTP 200 and status_code 404 in the body.
        Ok(record.filter(|r| r.status_code != "404"))
    }

    /// Every invoice against its order; then, where the gateway lists its orders, the orders the
    /// ledger does not know.
    pub(crate) async fn run(
        &self,
        invoices: Vec<LedgerInvoice>,
        progress: &Arc<Progress>,
    ) -> Result<(GatewayReport, Vec<Violation>), AuditError> {
        let mut report = GatewayReport { api_base_url: self.api_base_url.clone(), ..GatewayReport::default() };
        let mut violations = Vec::new();
        let known: std::collections::HashSet<Box<str>> = invoices.iter().map(|i| i.invoice_id.clone()).collect();
        let mut running = tokio::task::JoinSet::new();
        let mut queue = invoices.into_iter();
        loop {
            while running.len() < CONCURRENCY {
                let Some(invoice) = queue.next() else { break };
                let check = self.clone();
                running.spawn(async move {
                    let Ok(id) = InvoiceId::parse(&invoice.invoice_id) else {
                        return Ok((
                            vec![Violation::new(
                                Rule::Malformed,
                                format!("invoice {}", invoice.invoice_id),
                                "an invoice id that names no gateway order",
                            )],
                            false,
                        ));
                    };
                    let record = check.record(&id.order_id()).await?;
                    let uncredited = holds_uncredited_money(&invoice, record.as_ref());
                    Ok::<_, AuditError>((judge(&invoice, record.as_ref()), uncredited))
                });
            }
            let Some(done) = running.join_next().await else { break };
            let (found, uncredited) = done.map_err(|e| AuditError::Task(e.to_string()))??;
            report.paid_not_credited += u64::from(uncredited);
            violations.extend(found);
            report.orders_checked += 1;
            progress.orders_checked.fetch_add(1, Ordering::Relaxed);
        }
        report.orders_listed = self.check_listed(&known, &mut violations, &mut report.paid_not_credited).await?;
        Ok((report, violations))
    }

    /// The simulator's listing, page by page; `None` when the gateway lists nothing (Midtrans).
    async fn check_listed(
        &self,
        known: &std::collections::HashSet<Box<str>>,
        violations: &mut Vec<Violation>,
        paid_not_credited: &mut u64,
    ) -> Result<Option<u64>, AuditError> {
        let mut listed = 0u64;
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{}/local/v1/orders?limit={PAGE}", self.api_base_url);
            if let Some(a) = &after {
                url.push_str("&after=");
                url.push_str(a);
            }
            let Some(page) = self.get::<OrderPage>(&url, "(listing)").await? else {
                return Ok(None);
            };
            for record in &page.orders {
                listed += 1;
                let ours = OrderId::parse(&record.order_id).ok().map(|o| o.invoice_id().to_string());
                if ours.is_some_and(|id| known.contains(id.as_str())) {
                    continue;
                }
                if let Some(v) = judge_unknown(record) {
                    *paid_not_credited += 1;
                    violations.push(v);
                }
            }
            match page.next_after {
                Some(next) if !page.orders.is_empty() && after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => return Ok(Some(listed)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tally::RefundSeen;

    fn invoice(status: &str, amount: i64, refund: Option<(i64, &str)>) -> LedgerInvoice {
        LedgerInvoice {
            invoice_id: "inv_01J0000000000000000000000A".into(),
            status: status.into(),
            amount: Some(amount),
            refund: refund.map(|(amount, status)| RefundSeen { amount, status: status.into() }),
        }
    }

    fn record(status: &str, code: &str, gross: &str, refunded: Option<&str>) -> GatewayRecord {
        GatewayRecord {
            order_id: "EMT-01J0000000000000000000000A".into(),
            status_code: code.into(),
            transaction_status: status.into(),
            fraud_status: Some("accept".into()),
            gross_amount: Some(gross.into()),
            refund_amount: refunded.map(Into::into),
        }
    }

    fn rules(v: &[Violation]) -> Vec<String> {
        v.iter().map(|v| v.detail.clone()).collect()
    }

    #[test]
    fn agreeing_sides_hold() {
        assert!(judge(&invoice("PAID", 20000, None), Some(&record("settlement", "200", "20000.00", None))).is_empty());
        assert!(judge(&invoice("PENDING", 20000, None), Some(&record("pending", "201", "20000.00", None))).is_empty());
        assert!(judge(&invoice("PENDING", 20000, None), None).is_empty());
        assert!(judge(&invoice("EXPIRED", 20000, None), Some(&record("expire", "407", "20000.00", None))).is_empty());
        let done = invoice("REFUNDED", 20000, Some((10000, "COMPLETED")));
        assert!(judge(&done, Some(&record("partial_refund", "200", "20000.00", Some("10000.00")))).is_empty());
        let in_flight = invoice("REFUNDED", 20000, Some((10000, "SUBMITTED")));
        assert!(judge(&in_flight, Some(&record("settlement", "200", "20000.00", None))).is_empty());
        assert!(judge(&in_flight, Some(&record("partial_refund", "200", "20000.00", Some("10000.00")))).is_empty());
    }

    #[test]
    fn each_disagreement_is_named() {
        let paid_not_credited = judge(&invoice("PENDING", 20000, None), Some(&record("settlement", "200", "20000.00", None)));
        assert!(rules(&paid_not_credited)[0].contains("neither credited nor refunded"), "{paid_not_credited:?}");
        let expired_but_paid = judge(&invoice("EXPIRED", 20000, None), Some(&record("settlement", "200", "20000.00", None)));
        assert_eq!(expired_but_paid.len(), 1);
        let credited_unsettled = judge(&invoice("PAID", 20000, None), Some(&record("pending", "201", "20000.00", None)));
        assert!(rules(&credited_unsettled)[0].contains("gateway reports transaction_status pending"), "{credited_unsettled:?}");
        let credited_unknown = judge(&invoice("PAID", 20000, None), None);
        assert!(rules(&credited_unknown)[0].contains("no such order"));
        let amount = judge(&invoice("PAID", 20000, None), Some(&record("settlement", "200", "10000.00", None)));
        assert!(rules(&amount)[0].contains("costs Rp 20000 but the gateway took Rp 10000.00"), "{amount:?}");
        let refunded_twice = judge(
            &invoice("REFUNDED", 30000, Some((10000, "COMPLETED"))),
            Some(&record("partial_refund", "200", "30000.00", Some("20000.00"))),
        );
        assert!(rules(&refunded_twice)[0].contains("shown paid back (Rp 10000) but the gateway refunded Rp 20000"));
        let shown_paid_not_paid =
            judge(&invoice("REFUNDED", 30000, Some((10000, "COMPLETED"))), Some(&record("settlement", "200", "30000.00", None)));
        assert_eq!(shown_paid_not_paid.len(), 1);
        let no_refund_in_ledger = judge(&invoice("PAID", 30000, None), Some(&record("partial_refund", "200", "30000.00", Some("10000.00"))));
        assert!(rules(&no_refund_in_ledger)[0].contains("ledger has no refund"));
        // A relabelled status without the signed code is not money.
        let unsigned = judge(&invoice("PENDING", 20000, None), Some(&record("settlement", "201", "20000.00", None)));
        assert!(unsigned.is_empty(), "{unsigned:?}");
    }

    #[test]
    fn amounts_are_whole_rupiah() {
        assert_eq!(rupiah("30000.00"), Some(30000));
        assert_eq!(rupiah("30000"), Some(30000));
        assert_eq!(rupiah("30000.50"), None);
        assert_eq!(rupiah("-1.00"), None);
        assert_eq!(rupiah(""), None);
        assert_eq!(rupiah("99999999999999999999999.00"), None);
    }

    #[test]
    fn an_order_unknown_to_the_ledger_counts_only_when_money_was_taken() {
        assert!(judge_unknown(&record("settlement", "200", "10000.00", None)).is_some());
        assert!(judge_unknown(&record("pending", "201", "10000.00", None)).is_none());
        assert!(judge_unknown(&record("expire", "407", "10000.00", None)).is_none());
    }
}
