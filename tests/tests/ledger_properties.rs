//! The ledger against a model of what was delivered.
//!
//! Each case is a random sequence of steps on one account: checkouts (several requests with one
//! `Idempotency-Key` at once, or a notification arriving between the checkout's two writes),
//! notifications (settlement, captures with each fraud status, pending, expire, cancel, deny,
//! failure; duplicated, lost, with a wrong amount or a bad signature), sweeps at chosen times
//! (two at once, racing notifications), refund requests (racing a stamp), and stamps whose clock
//! is set past the quota's validity (racing the expiry refund), each followed by a re-upload and
//! a redelivery of its S3 event. Actions of one step run
//! concurrently against DynamoDB Local, SeaweedFS and the Midtrans simulator.
//!
//! The oracle is a model written from API.md, not from the code: it knows what was delivered and
//! computes every invoice's status, used/remaining/refunded units, refund, review flag, which
//! time paid it, and every response (401 for a bad signature, 422 exactly when a crediting
//! notification has the wrong amount, ...). Concurrent actions may take effect in any order, so
//! the model keeps every state some order of the step's actions leads to, and the observed state
//! must be one of them (then the others that disagree are dropped). At the end of a case, ledger
//! entries are added up with a raw DynamoDB `Query` (not the code's balance functions) and
//! compared with the model, as is the balance item and `GET /v1/quota`.
//!
//! `EMETERAI_PROPTEST_CASES` (default 256), `EMETERAI_PROPTEST_SEED` (fixed default, printed on
//! failure), `EMETERAI_PROPTEST_ONLY` (run one case of the seed), `EMETERAI_PROPTEST_LANES` (cases
//! run in this many independent tables at once, default 4).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use emeterai::domain::ids::{InvoiceId, Ulid};
use emeterai::handlers::stamp::Outcome;
use emeterai::midtrans::signature::signature_key;
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, fixture, request, spawn_app_with};
use futures::future::join_all;
use http::{HeaderValue, Method};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

// Non-default settings, so that the assertions below check the configuration is used.
const VALIDITY_DAYS: i64 = 3;
const EXPIRY_MINUTES: i64 = 1200;
const RECONCILE_MINUTES: i64 = 7;
const UNIT_PRICE: u64 = 12_000;
const LATE_SETTLEMENT_GRACE_HOURS: i64 = 48;
const DEFAULT_SEED: u64 = 0x00e0_e7e2_a114_0014;

/// When a sweep runs, relative to the wall clock at its step: the epochs of the model.
/// 0: now (nothing is due but refunds); 1: +11 min (PENDING invoices reconcile once);
/// 2: +25 h (unpaid invoices are past `expires_at`); 3: validity + 2 days (quota expired).
fn epoch_offset(epoch: u8) -> Duration {
    match epoch {
        0 => Duration::zero(),
        1 => Duration::minutes(11),
        2 => Duration::hours(25),
        _ => Duration::days(VALIDITY_DAYS + 2),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Settlement,
    CaptureAccept,
    CaptureChallenge,
    CaptureDeny,
    Pending,
    Expire,
    Cancel,
    Deny,
    Failure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Credit,
    Expire,
    Cancel,
    Nothing,
}

impl Kind {
    /// (transaction_status, fraud_status) the gateway reports after this event.
    fn gateway(self) -> (&'static str, Option<&'static str>) {
        match self {
            Kind::Settlement => ("settlement", None),
            Kind::CaptureAccept => ("capture", Some("accept")),
            Kind::CaptureChallenge => ("capture", Some("challenge")),
            Kind::CaptureDeny => ("capture", Some("deny")),
            Kind::Pending => ("pending", None),
            Kind::Expire => ("expire", None),
            Kind::Cancel => ("cancel", None),
            Kind::Deny => ("deny", None),
            Kind::Failure => ("failure", None),
        }
    }
}

/// API.md: `settlement`, or `capture` with `fraud_status` `accept`, credits; `expire` ends a
/// PENDING invoice EXPIRED; `cancel`, `deny`, `failure` end it CANCELLED; anything else (pending,
/// a capture under review or refused by the fraud check, refund echoes) changes nothing.
fn effect(status: &str, fraud: &str) -> Effect {
    match (status, fraud) {
        ("settlement", _) | ("capture", "accept") => Effect::Credit,
        ("expire", _) => Effect::Expire,
        ("cancel" | "deny" | "failure", _) => Effect::Cancel,
        _ => Effect::Nothing,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Mode {
    /// The gateway moves to the status and its signed notification is delivered.
    Normal,
    /// The gateway moves to the status; the notification never arrives.
    Lost,
    /// A correctly signed notification whose `gross_amount` is not the invoice's.
    WrongAmount,
    /// A notification whose signature does not verify.
    BadSignature,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Delivery {
    /// Index of an earlier invoice (modulo their number), or `None`: an order nobody created.
    invoice: Option<usize>,
    kind: Kind,
    mode: Mode,
    copies: u8,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `copies` requests with one Idempotency-Key and body, at once.
    Checkout { quantity: u32, copies: u8 },
    /// A notification delivered while the checkout waits for the gateway (between its writes).
    CheckoutRacedBy { quantity: u32, kind: Kind, wrong_amount: bool },
    /// Everything in here runs at once.
    Together(Together),
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Together {
    deliveries: Vec<Delivery>,
    /// Epochs of sweeps.
    sweeps: Vec<u8>,
    /// (invoice, with an Idempotency-Key)
    refunds: Vec<(usize, bool)>,
    /// A stamp; `true`: its clock at epoch 3.
    stamp: Option<bool>,
}

/// One atomic action of a `Together` step, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Act {
    Notify { invoice: Option<usize>, kind: Kind, mode: Mode },
    Sweep(u8),
    Refund(usize),
    /// `true`: the stamp's clock is at epoch 3 (past the validity of earlier quota).
    Stamp(bool),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Resp {
    Http(u16),
    Stamped(usize),
    NoQuota,
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MRefund {
    units: u32,
    reason: &'static str,
    status: &'static str,
    due_epoch: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MInv {
    quantity: u32,
    status: &'static str,
    used: u32,
    remaining: u32,
    refunded: u32,
    /// (epoch, step) of the credit: the order of `valid_until` among invoices.
    paid: Option<(u8, usize)>,
    refund: Option<MRefund>,
    flagged: bool,
    /// A reconciliation found the payment still open and moved its due time past epoch 1.
    rescheduled: bool,
    /// What the gateway's status API says: (transaction_status, fraud_status).
    gateway: (&'static str, &'static str),
    refund_requests: u32,
    /// During the current step: was it ever EXPIRED or CANCELLED, ever in another status? (A
    /// webhook decides on what it read, and acts a little later.)
    ended_seen: bool,
    open_seen: bool,
    /// When it ended EXPIRED or CANCELLED (epoch), until the sweep's last look at the gateway
    /// after the grace period (only a sweep at epoch 3 is that late, for endings before it).
    ended_at: Option<u8>,
}

/// What can be seen of an invoice from outside.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Seen {
    status: String,
    used: u32,
    remaining: u32,
    refunded: u32,
    paid_epoch: Option<u8>,
    refund: Option<(u32, String, String)>,
    flagged: bool,
    refund_requests: u32,
}

impl MInv {
    fn new(quantity: u32) -> Self {
        MInv {
            quantity,
            status: "PENDING",
            used: 0,
            remaining: 0,
            refunded: 0,
            paid: None,
            refund: None,
            flagged: false,
            rescheduled: false,
            gateway: ("pending", "accept"),
            refund_requests: 0,
            ended_seen: false,
            open_seen: true,
            ended_at: None,
        }
    }

    fn seen(&self) -> Seen {
        Seen {
            status: self.status.to_owned(),
            used: self.used,
            remaining: self.remaining,
            refunded: self.refunded,
            paid_epoch: self.paid.map(|p| p.0),
            refund: self.refund.as_ref().map(|r| (r.units, r.reason.to_owned(), r.status.to_owned())),
            flagged: self.flagged,
            refund_requests: self.refund_requests,
        }
    }

    fn ended(&self) -> bool {
        matches!(self.status, "EXPIRED" | "CANCELLED")
    }

    fn note_status(&mut self) {
        if self.ended() {
            self.ended_seen = true;
        } else {
            self.open_seen = true;
        }
    }

    fn apply(&mut self, effect: Effect, at: (u8, usize)) {
        match (self.status, effect) {
            ("PENDING" | "EXPIRED" | "CANCELLED", Effect::Credit) => {
                self.status = "PAID";
                self.remaining = self.quantity;
                self.paid = Some(at);
                self.ended_at = None;
            }
            ("PENDING", Effect::Expire) => {
                self.status = "EXPIRED";
                self.ended_at = Some(at.0);
            }
            ("PENDING", Effect::Cancel) => {
                self.status = "CANCELLED";
                self.ended_at = Some(at.0);
            }
            _ => {}
        }
    }

    fn refund(&mut self, reason: &'static str, due_epoch: u8) -> bool {
        if self.status != "PAID" || self.remaining == 0 || self.refund.is_some() {
            return false;
        }
        self.refund = Some(MRefund { units: self.remaining, reason, status: "REQUESTED", due_epoch });
        self.status = "REFUNDED";
        self.refunded += self.remaining;
        self.remaining = 0;
        true
    }
}

type Model = Vec<MInv>;

/// Every (state, response) one action can lead to from `m`.
fn apply(m: &Model, act: Act, step: usize) -> Vec<(Model, Resp)> {
    let mut m = m.clone();
    match act {
        Act::Notify { invoice: None, mode, .. } => {
            vec![(m, Resp::Http(if mode == Mode::BadSignature { 401 } else { 404 }))]
        }
        Act::Notify { invoice: Some(i), kind, mode } => {
            let (status, fraud) = kind.gateway();
            let e = effect(status, fraud.unwrap_or("accept"));
            if mode == Mode::BadSignature {
                return vec![(m, Resp::Http(401))];
            }
            if e != Effect::Credit {
                m[i].apply(e, (0, step));
                return vec![(m, Resp::Http(200))];
            }
            let mut out = Vec::new();
            // A settlement of an invoice that already ended is believed only when the gateway's
            // status API confirms it (whatever amount the notification says). The webhook
            // decides on what it read, which may be a moment old.
            if m[i].ended() || m[i].ended_seen {
                let mut confirmed = m.clone();
                let said = effect(m[i].gateway.0, m[i].gateway.1);
                confirmed[i].apply(said, (0, step));
                out.push((confirmed, Resp::Http(200)));
            }
            if mode == Mode::WrongAmount && (!m[i].ended() || m[i].open_seen) {
                let mut flagged = m.clone();
                flagged[i].flagged = true;
                out.push((flagged, Resp::Http(422)));
            } else if mode == Mode::Normal && !m[i].ended() {
                m[i].apply(e, (0, step));
                out.push((m, Resp::Http(200)));
            }
            out
        }
        Act::Refund(i) => {
            let ok = m[i].refund("requested", 0);
            vec![(m, Resp::Http(if ok { 202 } else { 409 }))]
        }
        Act::Sweep(epoch) => {
            for inv in m.iter_mut() {
                if inv.status == "PENDING" && (epoch >= 2 || (epoch == 1 && !inv.rescheduled)) {
                    match effect(inv.gateway.0, inv.gateway.1) {
                        // Past `expires_at`, expired only on the gateway's word that it is
                        // not paid (still waiting); a capture under review is not that.
                        Effect::Nothing if epoch >= 2 && inv.gateway.0 == "pending" => inv.apply(Effect::Expire, (epoch, step)),
                        Effect::Nothing => inv.rescheduled = true,
                        e => inv.apply(e, (epoch, step)),
                    }
                }
            }
            // The last look at ended invoices, once the grace period is over.
            if epoch == 3 {
                for inv in m.iter_mut() {
                    if inv.ended() && inv.ended_at.is_some_and(|e| e < 3) {
                        inv.ended_at = None;
                        if effect(inv.gateway.0, inv.gateway.1) == Effect::Credit {
                            inv.apply(Effect::Credit, (epoch, step));
                        }
                    }
                }
            }
            if epoch == 3 {
                for inv in m.iter_mut() {
                    if inv.paid.is_some_and(|p| p.0 < 3) {
                        inv.refund("expired", 3);
                    }
                }
            }
            for inv in m.iter_mut() {
                let quantity = inv.quantity;
                let accepted = matches!(inv.gateway.0, "settlement" | "capture" | "partial_refund");
                let Some(r) = inv.refund.as_mut() else { continue };
                if matches!(r.status, "REQUESTED" | "FAILED") && r.due_epoch <= epoch {
                    inv.refund_requests += 1;
                    if accepted {
                        r.status = "COMPLETED";
                        inv.gateway.0 = if r.units == quantity { "refund" } else { "partial_refund" };
                    } else {
                        // The gateway refuses it (the transaction is not settled there): for
                        // good, a person looks; never retried, never shown as paid back.
                        r.status = "NEEDS_REVIEW";
                    }
                }
            }
            vec![(m, Resp::Done)]
        }
        Act::Stamp(late) => {
            // Units come from the PAID invoice still valid at the stamp's clock whose validity
            // ends first; invoices paid at the same moment of the model may go in either order.
            let usable: Vec<usize> = (0..m.len())
                .filter(|&i| m[i].status == "PAID" && m[i].remaining > 0)
                .filter(|&i| !late || m[i].paid.is_some_and(|p| p.0 == 3))
                .collect();
            let Some(first) = usable.iter().filter_map(|&i| m[i].paid).min() else {
                return vec![(m, Resp::NoQuota)];
            };
            usable
                .into_iter()
                .filter(|&i| m[i].paid == Some(first))
                .map(|i| {
                    let mut m = m.clone();
                    m[i].used += 1;
                    m[i].remaining -= 1;
                    (m, Resp::Stamped(i))
                })
                .collect()
        }
    }
}

/// The distinct orders of a multiset of actions.
fn orders(acts: &[Act]) -> Vec<Vec<usize>> {
    fn go(acts: &[Act], left: &mut Vec<usize>, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if left.is_empty() {
            out.push(prefix.clone());
            return;
        }
        let mut tried: Vec<Act> = Vec::new();
        for k in 0..left.len() {
            let i = left[k];
            if tried.contains(&acts[i]) {
                continue;
            }
            tried.push(acts[i]);
            left.remove(k);
            prefix.push(i);
            go(acts, left, prefix, out);
            prefix.pop();
            left.insert(k, i);
        }
    }
    let mut out = Vec::new();
    go(acts, &mut (0..acts.len()).collect(), &mut Vec::new(), &mut out);
    out
}

/// Every (state, responses by action index) some order of `acts` leads to from `m`. Two sweeps
/// at once may also do the work of one ("safe to run twice at once": what one of them is doing,
/// the other leaves alone).
fn outcomes(m: &Model, acts: &[Act], step: usize) -> Vec<(Model, Vec<Resp>)> {
    let mut out: Vec<(Model, Vec<Resp>)> = Vec::new();
    let mut plans = orders(acts);
    let sweeps: Vec<usize> = (0..acts.len()).filter(|&i| matches!(acts[i], Act::Sweep(_))).collect();
    if let [first, second] = sweeps[..]
        && acts[first] == acts[second]
    {
        plans.extend(orders(acts).into_iter().map(|o| o.into_iter().filter(|&i| i != second).collect::<Vec<_>>()));
    }
    let mut start = m.clone();
    for inv in &mut start {
        inv.ended_seen = inv.ended();
        inv.open_seen = !inv.ended();
    }
    for order in plans {
        let mut states: Vec<(Model, Vec<Resp>)> = vec![(start.clone(), vec![Resp::Done; acts.len()])];
        for &i in &order {
            let mut next = Vec::new();
            for (s, resps) in &states {
                for (mut s2, r) in apply(s, acts[i], step) {
                    s2.iter_mut().for_each(MInv::note_status);
                    let mut resps = resps.clone();
                    resps[i] = r;
                    next.push((s2, resps));
                }
            }
            states = next;
        }
        for s in states {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Generation

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        5 => Just(Kind::Settlement),
        2 => Just(Kind::CaptureAccept),
        1 => Just(Kind::CaptureChallenge),
        1 => Just(Kind::CaptureDeny),
        1 => Just(Kind::Pending),
        2 => Just(Kind::Expire),
        1 => Just(Kind::Cancel),
        1 => Just(Kind::Deny),
        1 => Just(Kind::Failure),
    ]
}

fn delivery() -> impl Strategy<Value = Delivery> {
    let mode = prop_oneof![6 => Just(Mode::Normal), 2 => Just(Mode::Lost), 1 => Just(Mode::WrongAmount), 1 => Just(Mode::BadSignature)];
    let invoice = prop_oneof![12 => (0usize..6).prop_map(Some), 1 => Just(None)];
    (invoice, kind(), mode, 1u8..=2).prop_map(|(invoice, kind, mode, copies)| Delivery { invoice, kind, mode, copies })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u32..=4, 1u8..=3).prop_map(|(quantity, copies)| Step::Checkout { quantity, copies }),
        1 => (1u32..=4, kind(), prop::bool::weighted(0.2))
            .prop_map(|(quantity, kind, wrong_amount)| Step::CheckoutRacedBy { quantity, kind, wrong_amount }),
        6 => prop::collection::vec(delivery(), 1..=3).prop_map(|deliveries| Step::Together(Together { deliveries, ..Together::default() })),
        // Sweeps, alone, two at once, or racing notifications.
        4 => (0u8..=3, prop::bool::ANY, prop::collection::vec(delivery(), 0..=2)).prop_map(|(epoch, twice, deliveries)| {
            Step::Together(Together { deliveries, sweeps: if twice { vec![epoch, epoch] } else { vec![epoch] }, ..Together::default() })
        }),
        // Refund requests (with or without an Idempotency-Key), possibly racing a stamp.
        2 => (0usize..6, 1usize..=2, prop::bool::ANY, prop::bool::ANY).prop_map(|(i, copies, keyed, stamp)| {
            Step::Together(Together {
                refunds: (0..copies).map(|c| (i, keyed && c == 0)).collect(),
                stamp: stamp.then_some(false),
                ..Together::default()
            })
        }),
        // Stamps, at the wall clock or past the quota's validity, possibly racing the expiry sweep.
        2 => (prop::bool::ANY, 0usize..=2).prop_map(|(late, sweeps)| {
            Step::Together(Together { stamp: Some(late), sweeps: vec![3; sweeps], ..Together::default() })
        }),
    ]
}

fn case() -> impl Strategy<Value = Vec<Step>> {
    (1u32..=4, prop::collection::vec(step(), 1..=9)).prop_map(|(quantity, mut steps)| {
        steps.insert(0, Step::Checkout { quantity, copies: 1 });
        steps
    })
}

fn generate(seed: u64, case_no: u64) -> Vec<Step> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&case_no.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    case().new_tree(&mut runner).expect("generate").current()
}

// ---------------------------------------------------------------------------------------------
// Running a case against the system

struct Lane {
    app: TestApp,
    sim: MidtransSim,
    pdf: Vec<u8>,
    /// What a re-upload tries to put in place of `pdf`.
    other_pdf: Vec<u8>,
    /// A client of its own, to read the table raw (not through the code under test).
    dynamodb: aws_sdk_dynamodb::Client,
}

struct CaseRun<'a> {
    lane: &'a Lane,
    account: String,
    /// (invoice_id, order_id, amount) of each invoice, in the model's order.
    invoices: Vec<(String, String, u64)>,
    /// Model states consistent with everything seen so far.
    models: Vec<Model>,
    /// Every sweep time used, formatted as stored: a `paid_at` equal to one was paid by it.
    sweep_times: HashMap<String, u8>,
    stamped_documents: std::sync::Mutex<Vec<String>>,
    log: Vec<String>,
}

fn rfc3339_utc(v: &Value, what: &str) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    assert!(s.ends_with('Z'), "{what} is not UTC: {s}");
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{what} is not RFC 3339: {s}: {e}")).to_utc()
}

fn signed(order: &str, kind: Kind, status_code: &str, gross_amount: &str, key: &str) -> Value {
    let (status, fraud) = kind.gateway();
    json!({
        "transaction_time": "2026-11-28 10:00:00",
        "transaction_status": status,
        "transaction_id": format!("tx-{order}"),
        "status_message": "midtrans payment notification",
        "status_code": status_code,
        "signature_key": signature_key(order, status_code, gross_amount, key),
        "payment_type": if status == "capture" { "credit_card" } else { "qris" },
        "order_id": order,
        "merchant_id": "G000000000",
        "gross_amount": gross_amount,
        "fraud_status": fraud.unwrap_or("accept"),
        "currency": "IDR",
    })
}

fn status_code(kind: Kind) -> &'static str {
    match kind {
        Kind::Pending => "201",
        Kind::Deny | Kind::Failure => "202",
        Kind::Expire => "407",
        _ => "200",
    }
}

impl CaseRun<'_> {
    fn app(&self) -> &TestApp {
        &self.lane.app
    }

    fn fail(&self, what: String) -> ! {
        panic!("{what}\n--- steps so far:\n{}", self.log.join("\n"))
    }

    fn resolve(&self, i: usize) -> usize {
        i % self.invoices.len()
    }

    async fn checkout_request(&self, key: &str, quantity: u32) -> emeterai_tests::Reply {
        self.app().checkout(&self.account, Some(key), &json!({"quantity": quantity}).to_string()).await
    }

    /// Checks a fresh invoice as API.md describes it and adds it to the model.
    fn created(&mut self, body: &Value, quantity: u32) {
        let amount = u64::from(quantity) * UNIT_PRICE;
        if body["status"] != "PENDING"
            || body["quantity"] != quantity
            || body["unit_price"] != UNIT_PRICE
            || body["amount"] != amount
            || body["currency"] != "IDR"
        {
            self.fail(format!("checkout answered {body}"));
        }
        let created = rfc3339_utc(&body["created_at"], "created_at");
        let expires = rfc3339_utc(&body["expires_at"], "expires_at");
        assert_eq!(expires - created, Duration::minutes(EXPIRY_MINUTES), "expires_at = created_at + EMETERAI_INVOICE_EXPIRY_MINUTES");
        assert!(body["payment"]["token"].is_string(), "the gateway answered: {body}");
        let id = body["invoice_id"].as_str().expect("invoice_id").to_owned();
        let order = body["order_id"].as_str().expect("order_id").to_owned();
        self.invoices.push((id, order, amount));
        for m in &mut self.models {
            m.push(MInv::new(quantity));
        }
    }

    async fn replay_must_match(&self, key: &str, quantity: u32, original: &emeterai_tests::Reply) {
        let replay = self.checkout_request(key, quantity).await;
        if replay.status != 201 || replay.header("idempotent-replayed") != Some("true") || replay.raw.body != original.raw.body {
            self.fail(format!(
                "the same key and body must replay the first answer: got {} {:?} {}",
                replay.status,
                replay.header("idempotent-replayed"),
                replay.raw.body
            ));
        }
    }

    async fn checkout(&mut self, step: usize, quantity: u32, copies: u8) {
        let key = format!("co-{step}");
        let replies = join_all((0..copies).map(|_| self.checkout_request(&key, quantity))).await;
        let originals: Vec<_> = replies.iter().filter(|r| r.status == 201 && r.header("idempotent-replayed").is_none()).collect();
        if originals.len() != 1 {
            self.fail(format!("{copies} requests with one key created {} invoices: {replies:?}", originals.len()));
        }
        let original = originals[0].clone();
        for r in &replies {
            let fine = (r.status == 201 && r.raw.body == original.raw.body)
                || (r.status == 409 && r.code() == "idempotency_key_in_progress");
            if !fine {
                self.fail(format!("concurrent same-key checkout answered {} {}", r.status, r.raw.body));
            }
        }
        self.created(&original.body, quantity);
        self.replay_must_match(&key, quantity, &original).await;
    }

    async fn checkout_raced(&mut self, step: usize, quantity: u32, kind: Kind, wrong_amount: bool) {
        let key = format!("co-{step}");
        let mut held = self.lane.sim.hold_snap_requests();
        let checkout = self.checkout_request(&key, quantity);
        let race = async {
            let snap = tokio::time::timeout(std::time::Duration::from_secs(10), held.recv())
                .await
                .expect("the checkout reaches the gateway")
                .expect("held request");
            // The invoice is written; the checkout waits for the gateway before its second write.
            let amount = u64::from(quantity) * UNIT_PRICE + u64::from(wrong_amount);
            let body = signed(&snap.order_id, kind, status_code(kind), &format!("{amount}.00"), SERVER_KEY);
            let r = self.app().notify_raw(&body.to_string()).await;
            snap.release();
            r
        };
        let (reply, notified) = tokio::join!(checkout, race);
        self.lane.sim.stop_holding_snap_requests();
        if reply.status != 201 {
            self.fail(format!("checkout raced by a notification answered {} {}", reply.status, reply.raw.body));
        }
        self.created(&reply.body, quantity);
        let i = self.invoices.len() - 1;
        let mode = if wrong_amount { Mode::WrongAmount } else { Mode::Normal };
        let act = Act::Notify { invoice: Some(i), kind, mode };
        self.observe_step(step, &[act], &[Resp::Http(notified.status)]).await;
        if mode == Mode::Normal {
            // The gateway's own record catches up with the notification it sent.
            self.gateway_moves(i, kind).await;
        }
        self.replay_must_match(&key, quantity, &reply).await;
    }

    /// The gateway's transaction moves to `kind`; returns the notification it signs for it.
    async fn gateway_moves(&mut self, i: usize, kind: Kind) -> Value {
        let (status, fraud) = kind.gateway();
        let req = PayRequest { transaction_status: status.into(), deliveries: 0, fraud_status: fraud.map(Into::into) };
        let paid = self.lane.sim.pay(&self.invoices[i].1, &req).await.expect("simulator pays");
        let fraud = match (status, fraud) {
            ("settlement", _) => "accept",
            ("deny", _) => "deny",
            (_, Some(f)) => f,
            // Unchanged by this status.
            (_, None) => "",
        };
        for m in &mut self.models {
            m[i].gateway.0 = status;
            if !fraud.is_empty() {
                m[i].gateway.1 = fraud;
            }
        }
        paid.notification
    }

    fn notification_for(&self, i: Option<usize>, kind: Kind, mode: Mode) -> Value {
        let Some(i) = i else {
            let stranger = InvoiceId::new(Ulid::generate(1, &mut rand::thread_rng())).order_id().to_string();
            let key = if mode == Mode::BadSignature { "SB-Mid-server-WRONG" } else { SERVER_KEY };
            return signed(&stranger, kind, status_code(kind), "12000.00", key);
        };
        let (_, order, amount) = &self.invoices[i];
        match mode {
            Mode::WrongAmount => signed(order, kind, status_code(kind), &format!("{}.00", amount + 1), SERVER_KEY),
            Mode::BadSignature => signed(order, kind, status_code(kind), &format!("{amount}.00"), "SB-Mid-server-WRONG"),
            Mode::Normal | Mode::Lost => signed(order, kind, status_code(kind), &format!("{amount}.00"), SERVER_KEY),
        }
    }

    async fn refund_request(&self, i: usize, key: Option<String>) -> Resp {
        let path = format!("/v1/invoices/{}/refund", self.invoices[i].0);
        let mut req = request(Method::POST, &path, Some(&self.account), None);
        if let Some(k) = key {
            req.headers.insert("idempotency-key", HeaderValue::from_str(&k).expect("key"));
        }
        let r = self.app().call(req).await;
        match (r.status, r.code()) {
            (202, _) => {
                if r.body["status"] != "REQUESTED" || r.body["invoice_id"] != self.invoices[i].0.as_str() {
                    self.fail(format!("refund answered {}", r.body));
                }
                let units = r.body["units"].as_u64().expect("units");
                assert_eq!(r.body["amount"].as_u64(), Some(units * UNIT_PRICE), "100% of the unused units: {}", r.body);
            }
            (409, "nothing_to_refund") => {}
            _ => self.fail(format!("refund answered {} {}", r.status, r.raw.body)),
        }
        Resp::Http(r.status)
    }

    /// One stamp: create, upload, deliver; then, as a client and S3 might, the upload PUT again
    /// with other bytes and the S3 event again. Neither may change the outcome: the upload URL is
    /// single-use (412) and a redelivery finds the document final, so the model counts one stamp
    /// (a second charge would leave the ledger off the model).
    async fn stamp(&self) -> Resp {
        let app = self.app();
        let created = app
            .create_document(&self.account, &json!({"file_name": "surat-pernyataan.pdf", "placement": null}).to_string())
            .await;
        if created.status != 201 {
            self.fail(format!("document creation answered {} {}", created.status, created.raw.body));
        }
        let document = created.body["document_id"].as_str().expect("id").to_owned();
        let uploaded = app.upload(&created.body, &self.lane.pdf).await;
        if uploaded != 200 {
            self.fail(format!("upload answered {uploaded}"));
        }
        let key = TestApp::incoming_key(&self.account, &document);
        let outcome = app.deliver(&key).await.unwrap_or_else(|e| self.fail(format!("stamp run failed: {e}")));
        let reuploaded = app.upload(&created.body, &self.lane.other_pdf).await;
        if reuploaded != 412 {
            self.fail(format!("a second PUT to the upload URL answered {reuploaded}, not 412"));
        }
        match app.deliver(&key).await {
            Ok(Outcome::AlreadyFinal) => {}
            other => self.fail(format!("the S3 event delivered again ended {other:?}, not AlreadyFinal")),
        }
        match outcome {
            Outcome::Stamped { .. } => {
                self.stamped_documents.lock().expect("lock").push(document.clone());
                let doc = self.app().get(&self.account, &format!("/v1/documents/{document}")).await;
                let from = doc.body["invoice_id"].as_str().unwrap_or_default();
                match self.invoices.iter().position(|(id, _, _)| id == from) {
                    Some(i) => Resp::Stamped(i),
                    None => self.fail(format!("stamped document paid by an unknown invoice: {}", doc.body)),
                }
            }
            Outcome::Rejected { code } if code == "no_quota" => Resp::NoQuota,
            other => self.fail(format!("stamp ended {other:?}")),
        }
    }

    async fn together(&mut self, step: usize, deliveries: &[Delivery], sweeps: &[u8], refunds: &[(usize, bool)], stamp: Option<bool>) {
        let wall = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
        // The gateway moves first (in order); then everything is delivered and run at once.
        let mut acts = Vec::new();
        let mut bodies = Vec::new();
        for d in deliveries {
            let i = d.invoice.map(|i| self.resolve(i));
            let body = match (i, d.mode) {
                (Some(i), Mode::Normal) => self.gateway_moves(i, d.kind).await.to_string(),
                (Some(i), Mode::Lost) => {
                    self.gateway_moves(i, d.kind).await;
                    continue;
                }
                _ => self.notification_for(i, d.kind, d.mode).to_string(),
            };
            for _ in 0..d.copies {
                acts.push(Act::Notify { invoice: i, kind: d.kind, mode: d.mode });
                bodies.push(Some(body.clone()));
            }
        }
        for &e in sweeps {
            let at = wall + epoch_offset(e);
            self.sweep_times.insert(emeterai::domain::time::format(at), e);
            acts.push(Act::Sweep(e));
            bodies.push(None);
        }
        for (n, &(i, keyed)) in refunds.iter().enumerate() {
            acts.push(Act::Refund(self.resolve(i)));
            bodies.push(keyed.then(|| format!("rf-{step}-{n}")));
        }
        if let Some(late) = stamp {
            if late {
                self.app().clock.set(wall + epoch_offset(3));
            } else {
                self.app().clock.follow_wall_clock();
            }
            acts.push(Act::Stamp(late));
            bodies.push(None);
        }
        if acts.is_empty() {
            return;
        }
        let this = &*self;
        let runs = acts.iter().zip(&bodies).map(|(act, body)| async move {
            match *act {
                Act::Notify { .. } => Resp::Http(this.app().notify_raw(body.as_deref().expect("body")).await.status),
                Act::Sweep(e) => {
                    let report = this.app().sweep.run(wall + epoch_offset(e)).await;
                    if report.errors != 0 {
                        this.fail(format!("sweep at epoch {e} had errors: {report:?}"));
                    }
                    Resp::Done
                }
                Act::Refund(i) => this.refund_request(i, body.clone()).await,
                Act::Stamp(_) => this.stamp().await,
            }
        });
        let resps = join_all(runs).await;
        self.app().clock.follow_wall_clock();
        self.observe_step(step, &acts, &resps).await;
    }

    /// Keeps the model states that some order of `acts` leads to and that agree with what the
    /// system answered and now shows; fails when none does.
    async fn observe_step(&mut self, step: usize, acts: &[Act], resps: &[Resp]) {
        let seen = self.observe().await;
        let mut next: Vec<Model> = Vec::new();
        let mut near: Vec<(Vec<Seen>, Vec<Resp>)> = Vec::new();
        // Identical actions are interchangeable: compare their answers as a multiset.
        let canonical = |r: &[Resp]| {
            let mut pairs: Vec<String> = acts.iter().zip(r).map(|(a, r)| format!("{a:?} {r:?}")).collect();
            pairs.sort();
            pairs
        };
        let answered = canonical(resps);
        for m in &self.models {
            for (m2, expected) in outcomes(m, acts, step) {
                let projected: Vec<Seen> = m2.iter().map(MInv::seen).collect();
                if canonical(&expected) == answered && projected == seen {
                    if !next.contains(&m2) {
                        next.push(m2);
                    }
                } else if near.len() < 6 {
                    near.push((projected, expected));
                }
            }
        }
        self.log.push(format!("step {step}: {acts:?} answered {resps:?}"));
        if next.is_empty() {
            self.fail(format!(
                "no order of the step's actions explains what happened.\nanswers: {resps:?}\nseen: {seen:#?}\nthe model allows (first few): {near:#?}"
            ));
        }
        self.models = next;
    }

    /// Every invoice as `GET /v1/invoices/{id}` shows it, and refund requests the gateway got.
    async fn observe(&self) -> Vec<Seen> {
        let mut seen = Vec::new();
        for (id, order, _) in &self.invoices {
            let r = self.app().get(&self.account, &format!("/v1/invoices/{id}")).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let b = &r.body;
            let count = |k: &str| u32::try_from(b[k].as_u64().unwrap_or_else(|| panic!("{k}: {b}"))).expect("u32");
            let paid_epoch = match &b["paid_at"] {
                Value::Null => None,
                at => {
                    let paid_at = rfc3339_utc(at, "paid_at");
                    let valid_until = rfc3339_utc(&b["valid_until"], "valid_until");
                    assert_eq!(valid_until - paid_at, Duration::days(VALIDITY_DAYS), "valid_until = paid_at + EMETERAI_QUOTA_VALIDITY_DAYS: {b}");
                    Some(self.sweep_times.get(at.as_str().unwrap_or_default()).copied().unwrap_or(0))
                }
            };
            let refund = match &b["refund"] {
                Value::Null => None,
                r => Some((
                    u32::try_from(r["units"].as_u64().expect("units")).expect("u32"),
                    r["reason"].as_str().expect("reason").to_owned(),
                    r["status"].as_str().expect("status").to_owned(),
                )),
            };
            if let Some((units, _, _)) = &refund {
                assert_eq!(b["refund"]["amount"].as_u64(), Some(u64::from(*units) * UNIT_PRICE), "{b}");
                assert_eq!(b["refund"]["refund_id"].as_str().map(str::is_empty), Some(false));
            }
            seen.push(Seen {
                status: b["status"].as_str().expect("status").to_owned(),
                used: count("used"),
                remaining: count("remaining"),
                refunded: count("refunded"),
                paid_epoch,
                refund,
                flagged: !b["review"].is_null(),
                refund_requests: self.lane.sim.refund_requests(order),
            });
        }
        seen
    }

    /// The ledger, read raw: entries added up per kind, the balance item, `GET /v1/quota`.
    async fn check_ledger(&self) {
        let app = self.app();
        let dynamodb = &self.lane.dynamodb;
        let pk = AttributeValue::S(format!("ACC#{}", self.account));
        let mut entries: Vec<HashMap<String, AttributeValue>> = Vec::new();
        let mut start = None;
        loop {
            let out = dynamodb
                .query()
                .table_name(&app.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :ledger)")
                .expression_attribute_values(":pk", pk.clone())
                .expression_attribute_values(":ledger", AttributeValue::S("LEDGER#".into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("query ledger entries");
            entries.extend(out.items().iter().cloned());
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        let text = |item: &HashMap<String, AttributeValue>, k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let number = |item: &HashMap<String, AttributeValue>, k: &str| -> i64 {
            item.get(k).and_then(|v| v.as_n().ok()).map_or(0, |n| n.parse().expect("number"))
        };
        let mut sums: HashMap<String, i64> = HashMap::new();
        let mut credited_invoices: Vec<String> = Vec::new();
        let mut consumed_documents: Vec<String> = Vec::new();
        for e in &entries {
            let kind = text(e, "kind");
            *sums.entry(kind.clone()).or_default() += number(e, "units");
            match kind.as_str() {
                "CREDIT" => credited_invoices.push(text(e, "invoice_id")),
                "CONSUME" => consumed_documents.push(text(e, "document_id")),
                "REFUND" => {}
                other => self.fail(format!("ledger entry of unknown kind {other:?}")),
            }
        }
        let m = &self.models[0];
        let mut want_credited: Vec<String> = Vec::new();
        let (mut credited, mut consumed, mut refunded, mut available, mut pending) = (0i64, 0i64, 0i64, 0i64, 0i64);
        for (inv, (id, _, _)) in m.iter().zip(&self.invoices) {
            if inv.paid.is_some() {
                credited += i64::from(inv.quantity);
                want_credited.push(id.clone());
            }
            consumed += i64::from(inv.used);
            refunded += i64::from(inv.refunded);
            available += i64::from(inv.remaining);
            if inv.status == "PENDING" {
                pending += i64::from(inv.quantity);
            }
        }
        credited_invoices.sort();
        want_credited.sort();
        assert_eq!(credited_invoices, want_credited, "one CREDIT entry per paid invoice, none for others");
        let mut stamped = self.stamped_documents.lock().expect("lock").clone();
        stamped.sort();
        consumed_documents.sort();
        assert_eq!(consumed_documents, stamped, "one CONSUME entry per stamped document, none for others");
        let sum = |k: &str| sums.get(k).copied().unwrap_or(0);
        assert_eq!((sum("CREDIT"), sum("CONSUME"), sum("REFUND")), (credited, consumed, refunded), "ledger entries (raw query) against the model");
        assert_eq!(consumed_documents.len() as i64, consumed, "one CONSUME entry per stamped document");
        let balance = dynamodb
            .get_item()
            .table_name(&app.table)
            .key("pk", pk.clone())
            .key("sk", AttributeValue::S("BALANCE".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("balance item");
        let item = balance.item.unwrap_or_default();
        assert_eq!(
            (number(&item, "available"), number(&item, "pending"), number(&item, "credited"), number(&item, "consumed"), number(&item, "refunded")),
            (available, pending, credited, consumed, refunded),
            "balance item against the model"
        );
        assert_eq!(app.quota(&self.account).await, (available, pending), "GET /v1/quota");
    }

    /// Takes the case's invoices off the sweep's lists so later cases' sweeps do not see them.
    async fn retire(&self) {
        let dynamodb = &self.lane.dynamodb;
        for (id, _, _) in &self.invoices {
            dynamodb
                .update_item()
                .table_name(&self.app().table)
                .key("pk", AttributeValue::S(format!("INV#{id}")))
                .key("sk", AttributeValue::S("INVOICE".into()))
                .update_expression("REMOVE due_pk, due_at")
                .send()
                .await
                .expect("retire invoice");
        }
    }
}

async fn run_case(lane: &Lane, seed: u64, case_no: u64) {
    let steps = generate(seed, case_no);
    let mut run = CaseRun {
        lane,
        account: format!("prop-{case_no}"),
        invoices: Vec::new(),
        models: vec![Vec::new()],
        sweep_times: HashMap::new(),
        stamped_documents: std::sync::Mutex::new(Vec::new()),
        log: vec![format!("seed {seed:#x} case {case_no} (rerun: EMETERAI_PROPTEST_SEED={seed} EMETERAI_PROPTEST_ONLY={case_no}): {steps:?}")],
    };
    for (n, step) in steps.iter().enumerate() {
        match step {
            Step::Checkout { quantity, copies } => run.checkout(n, *quantity, *copies).await,
            Step::CheckoutRacedBy { quantity, kind, wrong_amount } => run.checkout_raced(n, *quantity, *kind, *wrong_amount).await,
            Step::Together(t) => run.together(n, &t.deliveries, &t.sweeps, &t.refunds, t.stamp).await,
        }
    }
    run.check_ledger().await;
    run.retire().await;
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        let v = v.trim();
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ledger_agrees_with_a_model_of_what_was_delivered() {
    let seed = env_u64("EMETERAI_PROPTEST_SEED").unwrap_or(DEFAULT_SEED);
    let cases = env_u64("EMETERAI_PROPTEST_CASES").unwrap_or(256);
    let lanes = env_u64("EMETERAI_PROPTEST_LANES").unwrap_or(4).max(1);
    let only = env_u64("EMETERAI_PROPTEST_ONLY");
    let started = std::time::Instant::now();
    let settings = [
        ("EMETERAI_QUOTA_VALIDITY_DAYS", VALIDITY_DAYS.to_string()),
        ("EMETERAI_INVOICE_EXPIRY_MINUTES", EXPIRY_MINUTES.to_string()),
        ("EMETERAI_RECONCILE_AFTER_MINUTES", RECONCILE_MINUTES.to_string()),
        ("EMETERAI_UNIT_PRICE", UNIT_PRICE.to_string()),
        ("EMETERAI_LATE_SETTLEMENT_GRACE_HOURS", LATE_SETTLEMENT_GRACE_HOURS.to_string()),
    ];
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut lane_runs = Vec::new();
    for lane_no in 0..lanes {
        let env = env.clone();
        lane_runs.push(async move {
            let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
            let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &env).await;
            let (dynamodb, _) = emeterai_local::provision::clients_from_env().await;
            let lane = Arc::new(Lane { app, sim, pdf: fixture("rotate-270-a4-autocad.pdf"), other_pdf: fixture("inherited-resources-a4-v1.3-scribus.pdf"), dynamodb });
            let mut ran = 0u64;
            for case_no in (lane_no..cases).step_by(usize::try_from(lanes).expect("lanes")) {
                if only.is_some_and(|o| o != case_no) {
                    continue;
                }
                run_case(&lane, seed, case_no).await;
                ran += 1;
            }
            ran
        });
    }
    let ran: u64 = join_all(lane_runs).await.into_iter().sum();
    eprintln!("ledger model: {ran} cases (seed {seed:#x}, {lanes} lanes) in {:.1?}", started.elapsed());
    assert!(ran >= 1, "no case ran");
}
