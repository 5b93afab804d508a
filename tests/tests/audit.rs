//! `emeterai audit` (issue 11) against DynamoDB Local and SeaweedFS: a ledger built by the real
//! handlers (fund, stamp, refund) holds; then the table or the bucket is corrupted on purpose, one
//! invariant at a time, with raw SDK writes, and the audit must name each (exit 3, one line per
//! violation naming the account, invoice, document or serial).

use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;
use emeterai::handlers::stamp::Outcome;
use emeterai_local::provision::clients_from_env;
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, cli_binary, fixture, request, spawn_app, spawn_app_with};
use http::Method;
use serde_json::{Value, json};

const DOC: &str = "rotate-270-a4-autocad.pdf";

/// A ledger with every kind of history: alice bought 3 units, stamped 2 documents and had the
/// third refunded (REFUNDED: used 2, refunded 1); she bought 2 more (PAID, unused); bob has an
/// unpaid invoice (PENDING).
struct Healthy {
    app: TestApp,
    refunded_invoice: String,
    paid_invoice: String,
    documents: [String; 2],
}

async fn healthy() -> Healthy {
    let app = spawn_app().await;
    let first = app.fund("alice", 3).await;
    let mut documents = Vec::new();
    for _ in 0..2 {
        let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
        assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
        documents.push(id);
    }
    let refunded_invoice = id_of(&first);
    let r = app.call(request(Method::POST, &format!("/v1/invoices/{refunded_invoice}/refund"), Some("alice"), None)).await;
    assert_eq!((r.status, r.body["units"].as_u64()), (202, Some(1)), "{:?}", r.body);
    let paid_invoice = id_of(&app.fund("alice", 2).await);
    app.buy("bob", 1).await;
    let documents = [documents[0].clone(), documents[1].clone()];
    Healthy { app, refunded_invoice, paid_invoice, documents }
}

fn id_of(invoice: &Value) -> String {
    invoice["invoice_id"].as_str().expect("invoice id").to_owned()
}

struct Audited {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Audited {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
    /// Asserts exit 3 and a line of `rule` about `subject`; returns that line.
    fn names(&self, rule: &str, subject: &str) -> String {
        assert_eq!(self.code, Some(3), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        let prefix = format!("{rule}: {subject}: ");
        self.lines()
            .into_iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{}", self.stdout))
            .to_owned()
    }
}

fn audit_with(table: &str, bucket: Option<&str>, args: &[&str]) -> Audited {
    let mut cmd = Command::new(cli_binary());
    cmd.arg("audit").args(args).env("EMETERAI_TABLE", table).env_remove("EMETERAI_BUCKET");
    if let Some(b) = bucket {
        cmd.env("EMETERAI_BUCKET", b);
    }
    let out = cmd.output().expect("emeterai runs");
    Audited {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn audit(app: &TestApp) -> Audited {
    audit_with(&app.table, Some(&app.bucket), &[])
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    clients_from_env().await.0
}

/// Corrupts `account`'s balance item: one more in `attribute` than the ledger says.
async fn add_one_to_balance(table: &str, account: &str, attribute: &str) {
    dynamodb()
        .await
        .update_item()
        .table_name(table)
        .key("pk", s(&format!("ACC#{account}")))
        .key("sk", s("BALANCE"))
        .update_expression("ADD #attribute :one")
        .expression_attribute_names("#attribute", attribute)
        .expression_attribute_values(":one", n(1))
        .send()
        .await
        .expect("corrupt");
}

#[tokio::test]
async fn a_ledger_built_by_the_handlers_holds_whatever_the_segments() {
    let h = healthy().await;
    for segments in ["1", "4", "7"] {
        let out = audit_with(&h.app.table, Some(&h.app.bucket), &["--segments", segments]);
        assert_eq!(out.code, Some(0), "segments {segments}: stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(out.stderr.contains("0 violation(s)"), "a summary on stderr: {}", out.stderr);
    }
    let out = audit_with(&h.app.table, Some(&h.app.bucket), &["--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("one JSON report");
    assert_eq!(report["holds"], true, "{report}");
    assert_eq!(report["violations"], json!([]));
    // alice and bob; 3 invoices; credits 2, consumptions 2, refund 1; 2 documents, 2 serials.
    assert_eq!(
        [&report["accounts"], &report["invoices"], &report["ledger_entries"], &report["stamped_documents"], &report["serials"], &report["objects_checked"]],
        [&json!(2), &json!(3), &json!(5), &json!(2), &json!(2), &json!(2)],
        "{report}"
    );
}

#[tokio::test]
async fn a_balance_off_by_one_is_named() {
    let h = healthy().await;
    add_one_to_balance(&h.app.table, "alice", "available").await;
    let out = audit(&h.app);
    let line = out.names("balance", "account alice");
    assert!(line.contains("available 3 but ledger entries give 2"), "{line}");
    assert_eq!(out.lines().len(), 1, "only the balance is wrong:\n{}", out.stdout);
    let json = audit_with(&h.app.table, None, &["--json"]);
    assert_eq!(json.code, Some(3));
    let report: Value = serde_json::from_str(&json.stdout).expect("report");
    assert_eq!(report["holds"], false);
    assert_eq!(report["violations"][0]["rule"], "balance", "{report}");
    assert_eq!(report["violations"][0]["subject"], "account alice", "{report}");
}

#[tokio::test]
async fn an_unpaid_invoice_count_that_differs_is_named() {
    // bob's one PENDING invoice is counted on his balance item (the per-account checkout limit's
    // counter); a count that drifts would refuse his checkouts early or let him past the limit.
    let h = healthy().await;
    add_one_to_balance(&h.app.table, "bob", "unpaid_invoices").await;
    let out = audit(&h.app);
    let line = out.names("pending", "account bob");
    assert!(line.contains("unpaid_invoices 2 but it has 1 PENDING invoices"), "{line}");
    assert_eq!(out.lines().len(), 1, "only the count is wrong:\n{}", out.stdout);
}

#[tokio::test]
async fn a_second_credit_is_named() {
    let h = healthy().await;
    dynamodb()
        .await
        .put_item()
        .table_name(&h.app.table)
        .item("pk", s("ACC#alice"))
        .item("sk", s("LEDGER#CREDIT#replayed-notification"))
        .item("kind", s("CREDIT"))
        .item("units", n(2))
        .item("invoice_id", s(&h.paid_invoice))
        .item("at", s("2026-11-28T10:00:00Z"))
        .send()
        .await
        .expect("corrupt");
    let out = audit(&h.app);
    let line = out.names("credit", &format!("invoice {}", h.paid_invoice));
    assert!(line.contains("has 2 credits"), "{line}");
    out.names("balance", "account alice");
}

#[tokio::test]
async fn a_stamped_document_without_a_consumption_is_named() {
    let h = healthy().await;
    let doc = &h.documents[0];
    dynamodb()
        .await
        .delete_item()
        .table_name(&h.app.table)
        .key("pk", s("ACC#alice"))
        .key("sk", s(&format!("LEDGER#CONSUME#{doc}")))
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .expect("corrupt");
    let out = audit(&h.app);
    let line = out.names("consumption", &format!("document {doc}"));
    assert!(line.contains("has 0 consumptions"), "{line}");
    // The unit it took is missing from the invoice's and the account's sums too.
    out.names("usage", &format!("invoice {}", h.refunded_invoice));
    out.names("balance", "account alice");
}

#[tokio::test]
async fn a_serial_on_two_documents_is_named() {
    let h = healthy().await;
    let [first, second] = &h.documents;
    let client = dynamodb().await;
    let serial = h.app.get("alice", &format!("/v1/documents/{first}")).await.body["serial"].as_str().expect("serial").to_owned();
    client
        .update_item()
        .table_name(&h.app.table)
        .key("pk", s(&format!("DOC#{second}")))
        .key("sk", s("DOCUMENT"))
        .update_expression("SET serial = :serial")
        .expression_attribute_values(":serial", s(&serial))
        .send()
        .await
        .expect("corrupt");
    let out = audit(&h.app);
    let mut both = [first.as_str(), second.as_str()];
    both.sort_unstable();
    let line = out.names("serial_twice", &format!("serial {serial}"));
    assert!(line.ends_with(&format!("on documents {}, {}", both[0], both[1])), "{line}");
    let line = out.names("serial", &format!("document {second}"));
    assert!(line.contains(&format!("registered to document {first}")), "{line}");
}

#[tokio::test]
async fn a_stamped_object_whose_hash_differs_is_named_when_the_bucket_is_given() {
    let h = healthy().await;
    let doc = &h.documents[1];
    let key = format!("stamped/alice/{doc}.pdf");
    let mut tampered = h.app.store.read_limited(&key, 800_000).await.expect("stamped object");
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    h.app.store.write_pdf(&key, tampered).await.expect("corrupt");
    let out = audit(&h.app);
    let line = out.names("object", &format!("document {doc}"));
    assert!(line.contains("the registry says"), "{line}");
    assert_eq!(out.lines().len(), 1, "the ledger itself holds:\n{}", out.stdout);
    // Without a bucket the objects are not read, and the ledger holds.
    let without = audit_with(&h.app.table, None, &[]);
    assert_eq!(without.code, Some(0), "{}{}", without.stdout, without.stderr);

    h.app.store.delete(&key).await.expect("delete");
    audit(&h.app).names("object", &format!("document {doc}"));
}

#[tokio::test]
async fn a_unit_both_consumed_and_refunded_is_named() {
    let h = healthy().await;
    // A second refund of the REFUNDED invoice, covering a unit already used for a stamp.
    dynamodb()
        .await
        .put_item()
        .table_name(&h.app.table)
        .item("pk", s("ACC#alice"))
        .item("sk", s("LEDGER#REFUND#second-refund"))
        .item("kind", s("REFUND"))
        .item("units", n(1))
        .item("invoice_id", s(&h.refunded_invoice))
        .item("at", s("2026-11-28T10:00:00Z"))
        .send()
        .await
        .expect("corrupt");
    let out = audit(&h.app);
    let line = out.names("consumed_and_refunded", &format!("invoice {}", h.refunded_invoice));
    assert!(line.contains("2 units consumed and 2 refunded out of 3"), "{line}");
}

#[tokio::test]
async fn a_quantity_that_does_not_add_up_is_named() {
    let h = healthy().await;
    dynamodb()
        .await
        .update_item()
        .table_name(&h.app.table)
        .key("pk", s(&format!("INV#{}", h.paid_invoice)))
        .key("sk", s("INVOICE"))
        .update_expression("SET remaining = :three")
        .expression_attribute_values(":three", n(3))
        .send()
        .await
        .expect("corrupt");
    let out = audit(&h.app);
    let line = out.names("quantity", &format!("invoice {}", h.paid_invoice));
    assert!(line.contains("quantity 2 but used 0 + remaining 3 + refunded 0"), "{line}");
}

#[tokio::test]
async fn other_failures_exit_1_and_print_no_verdict() {
    let app = spawn_app().await;
    let missing = audit_with(&format!("{}-absent", app.table), None, &[]);
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert!(missing.stdout.is_empty());
    assert!(missing.stderr.contains("error: scanning table"), "{}", missing.stderr);

    let out = Command::new(cli_binary()).arg("audit").env_remove("EMETERAI_TABLE").output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("EMETERAI_TABLE"));

    let bad = audit_with(&app.table, None, &["--segments", "0"]);
    assert_eq!(bad.code, Some(1), "{}", bad.stderr);
    // An empty table holds.
    assert_eq!(audit_with(&app.table, Some(&app.bucket), &[]).code, Some(0));
}

fn audit_against_gateway(app: &TestApp, gateway_url: &str, json: bool) -> Audited {
    let mut cmd = Command::new(cli_binary());
    cmd.arg("audit").args(["--gateway-url", gateway_url]).env("EMETERAI_TABLE", &app.table).env_remove("EMETERAI_BUCKET");
    cmd.env("EMETERAI_MIDTRANS_SERVER_KEY", SERVER_KEY);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("emeterai runs");
    Audited {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn pay_at(sim: &MidtransSim, app: &TestApp, invoice: &Value, deliver: bool) {
    let order = invoice["order_id"].as_str().expect("order");
    let paid = sim.pay(order, &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    if deliver {
        assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    }
}

/// The cross-check with the payment gateway (issue 11): a ledger built through the simulator
/// holds; then money taken for an order whose notifications were all lost, money taken for an
/// order the ledger never opened, a credit the gateway never settled and a refund made at the
/// gateway behind the ledger's back are each named, and counted when money is held uncredited.
// The simulator runs in this process: the blocking `emeterai` call must leave it a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_cross_check_names_every_disagreement_with_the_simulator() {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    let kept = app.buy("alice", 2).await;
    pay_at(&sim, &app, &kept, true).await;
    let refunded = app.buy("alice", 1).await;
    pay_at(&sim, &app, &refunded, true).await;
    let path = format!("/v1/invoices/{}/refund", id_of(&refunded));
    let r = app.call(request(Method::POST, &path, Some("alice"), None)).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    app.buy("bob", 1).await;

    let healthy = audit_against_gateway(&app, sim.base_url(), true);
    assert_eq!(healthy.code, Some(0), "stdout:\n{}\nstderr:\n{}", healthy.stdout, healthy.stderr);
    let report: Value = serde_json::from_str(&healthy.stdout).expect("one JSON report");
    assert_eq!(report["gateway"]["orders_checked"], json!(3), "{report}");
    assert_eq!(report["gateway"]["orders_listed"], json!(3), "{report}");
    assert_eq!(report["gateway"]["paid_not_credited"], json!(0), "{report}");

    // Paid at the gateway, every notification lost, the sweep not run yet.
    let lost = app.buy("carol", 1).await;
    pay_at(&sim, &app, &lost, false).await;
    // Credited by a notification the gateway never sent (its record says pending).
    let forged = app.buy("dave", 1).await;
    assert_eq!(app.notify(forged["order_id"].as_str().expect("order"), "settlement", "10000.00").await.status, 200);
    // Refunded at the gateway by someone else (the ledger asked for no refund of this invoice).
    let http = reqwest::Client::new();
    let behind_our_back = http
        .post(format!("{}/v2/{}/refund", sim.base_url(), kept["order_id"].as_str().expect("order")))
        .basic_auth(SERVER_KEY, Some(""))
        .json(&json!({"refund_key": "manual-1", "amount": 10000}))
        .send()
        .await
        .expect("refund");
    assert!(behind_our_back.status().is_success());
    // An order the ledger never opened, settled at the gateway.
    let stranger = "EMT-7ZZZZZZZZZZZZZZZZZZZZZZZZZ";
    let created = http
        .post(format!("{}/snap/v1/transactions", sim.base_url()))
        .basic_auth(SERVER_KEY, Some(""))
        .json(&json!({"transaction_details": {"order_id": stranger, "gross_amount": 10000}}))
        .send()
        .await
        .expect("snap");
    assert!(created.status().is_success(), "{:?}", created.text().await);
    sim.pay(stranger, &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");

    let out = audit_against_gateway(&app, sim.base_url(), false);
    let line = out.names("gateway", &format!("invoice {}", id_of(&lost)));
    assert!(line.contains("the gateway took Rp 10000.00") && line.contains("PENDING: neither credited nor refunded"), "{line}");
    let line = out.names("gateway", &format!("invoice {}", id_of(&forged)));
    assert!(line.contains("PAID (credited) but the gateway reports transaction_status pending"), "{line}");
    let line = out.names("gateway", &format!("invoice {}", id_of(&kept)));
    assert!(line.contains("the gateway refunded Rp 10000 but the ledger has no refund"), "{line}");
    let line = out.names("gateway", &format!("order {stranger}"));
    assert!(line.contains("the ledger has no invoice for it"), "{line}");
    assert_eq!(out.lines().len(), 4, "nothing else disagrees:\n{}", out.stdout);
    assert!(out.stderr.contains("2 paid but neither credited nor refunded"), "{}", out.stderr);

    // The ledger by itself still holds: these are disagreements only the gateway can show.
    assert_eq!(audit_with(&app.table, None, &[]).code, Some(0));
    // The sweep reconciles the lost notification: that order stops being reported.
    app.sweep.run(chrono::Utc::now() + chrono::Duration::hours(1)).await;
    let after = audit_against_gateway(&app, sim.base_url(), false);
    assert!(!after.stdout.contains(&id_of(&lost)), "reconciled, yet:\n{}", after.stdout);
    assert_eq!(after.lines().len(), 3, "{}", after.stdout);
}

// The simulator runs in this process: the blocking `emeterai` call must leave it a thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_fails_the_audit_instead_of_passing_it() {
    let app = spawn_app().await;
    app.buy("alice", 1).await;
    let out = audit_against_gateway(&app, &emeterai_tests::unreachable_url(), false);
    assert_eq!(out.code, Some(1), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("asking the payment gateway about EMT-"), "{}", out.stderr);
}
