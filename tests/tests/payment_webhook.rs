//! Midtrans notifications against DynamoDB Local: credited exactly once, whatever arrives.

use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, notification, spawn_app, spawn_app_with};
use futures::future::join_all;
use serde_json::Value;

fn order_of(invoice: &Value) -> String {
    invoice["order_id"].as_str().expect("order id").to_owned()
}

async fn invoice(app: &TestApp, caller: &str, inv: &Value) -> Value {
    let r = app.get(caller, &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await;
    assert_eq!(r.status, 200);
    r.body
}

async fn assert_credited_once(app: &TestApp, caller: &str, units: i64) {
    let account = TestApp::account(caller);
    let balance = app.ledger.balance(&account).await.expect("balance");
    let totals = app.ledger.entry_totals(&account).await.expect("entries");
    assert_eq!(balance.available, units);
    assert_eq!(totals.credited, units, "exactly one credit entry per paid invoice");
    assert_eq!(totals.available(), balance.available, "balance = sum of ledger entries");
}

#[tokio::test]
async fn settlement_credits_the_quantity() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 3).await;
    let r = app.notify(&order_of(&inv), "settlement", "30000.00").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, serde_json::json!({"status": "ok"}));
    let now = invoice(&app, "alice", &inv).await;
    assert_eq!(now["status"], "PAID");
    assert_eq!((now["used"].as_u64(), now["remaining"].as_u64(), now["refunded"].as_u64()), (Some(0), Some(3), Some(0)));
    assert!(now["paid_at"].is_string() && now["valid_until"].is_string());
    assert_eq!(app.quota("alice").await, (3, 0));
    assert_credited_once(&app, "alice", 3).await;
}

#[tokio::test]
async fn capture_accepted_credits_and_capture_challenged_waits() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 1).await;
    let mut challenged = notification(&order_of(&inv), "capture", "10000.00", SERVER_KEY);
    challenged["fraud_status"] = "challenge".into();
    assert_eq!(app.notify_raw(&challenged.to_string()).await.status, 200);
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "PENDING");
    assert_eq!(app.notify(&order_of(&inv), "capture", "10000.00").await.status, 200);
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "PAID");
    assert_eq!(app.quota("alice").await, (1, 0));
}

#[tokio::test]
async fn ten_concurrent_duplicate_settlements_credit_once() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 4).await;
    let order = order_of(&inv);
    let replies = join_all((0..10).map(|_| app.notify(&order, "settlement", "40000.00"))).await;
    for r in &replies {
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    // And late duplicates after that.
    assert_eq!(app.notify(&order, "settlement", "40000.00").await.status, 200);
    assert_eq!(app.quota("alice").await, (4, 0));
    assert_credited_once(&app, "alice", 4).await;
}

#[tokio::test]
async fn bad_signature_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 2).await;
    let forged = notification(&order_of(&inv), "settlement", "20000.00", "not-the-server-key");
    let r = app.notify_raw(&forged.to_string()).await;
    assert_eq!((r.status, r.code()), (401, "bad_signature"));
    // A signature over other fields does not carry over to a changed amount.
    let mut tampered = notification(&order_of(&inv), "settlement", "20000.00", SERVER_KEY);
    tampered["gross_amount"] = "2000.00".into();
    assert_eq!(app.notify_raw(&tampered.to_string()).await.code(), "bad_signature");
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "PENDING");
    assert_eq!(app.quota("alice").await, (0, 2));
}

#[tokio::test]
async fn amount_mismatch_is_flagged_and_not_credited() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 2).await;
    let r = app.notify(&order_of(&inv), "settlement", "10000.00").await;
    assert_eq!((r.status, r.code()), (422, "amount_mismatch"));
    let now = invoice(&app, "alice", &inv).await;
    assert_eq!(now["status"], "PENDING");
    assert_eq!(now["review"]["reason"], "amount_mismatch");
    assert_eq!(app.quota("alice").await, (0, 2));
    assert_credited_once(&app, "alice", 0).await;
}

#[tokio::test]
async fn late_settlement_after_expiry_is_still_credited() {
    // A settlement of an ended invoice is confirmed with the status API first (issue 8, item 2).
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    let inv = app.buy("alice", 2).await;
    let order = order_of(&inv);
    assert_eq!(app.notify(&order, "expire", "20000.00").await.status, 200);
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "EXPIRED");
    assert_eq!(app.quota("alice").await, (0, 0));
    sim.pay(&order, &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify(&order, "settlement", "20000.00").await.status, 200);
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "PAID");
    assert_eq!(app.quota("alice").await, (2, 0));
    // An expiry arriving after the payment changes nothing.
    assert_eq!(app.notify(&order, "expire", "20000.00").await.status, 200);
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "PAID");
    assert_credited_once(&app, "alice", 2).await;
}

#[tokio::test]
async fn failures_end_pending_invoices_and_pending_changes_nothing() {
    let app = spawn_app().await;
    let a = app.buy("alice", 1).await;
    let b = app.buy("alice", 1).await;
    let c = app.buy("alice", 1).await;
    assert_eq!(app.notify(&order_of(&a), "pending", "10000.00").await.status, 200);
    assert_eq!(invoice(&app, "alice", &a).await["status"], "PENDING");
    assert_eq!(app.notify(&order_of(&a), "cancel", "10000.00").await.status, 200);
    assert_eq!(app.notify(&order_of(&b), "deny", "10000.00").await.status, 200);
    assert_eq!(app.notify(&order_of(&c), "failure", "10000.00").await.status, 200);
    for inv in [&a, &b, &c] {
        assert_eq!(invoice(&app, "alice", inv).await["status"], "CANCELLED");
    }
    assert_eq!(app.quota("alice").await, (0, 0));
}

#[tokio::test]
async fn unknown_orders_and_malformed_bodies() {
    let app = spawn_app().await;
    let r = app.notify("EMT-01JZZZZZZZZZZZZZZZZZZZZZZZ", "settlement", "10000.00").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app.notify("someone-elses-order", "settlement", "10000.00").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    for body in ["", "not json", "[]", r#"{"order_id": "x"}"#, r#"{"order_id": 1, "status_code": "200", "gross_amount": "1", "transaction_status": "settlement", "signature_key": "x"}"#] {
        let r = app.notify_raw(body).await;
        assert_eq!((r.status, r.code()), (400, "bad_request"), "{body}");
    }
}

#[tokio::test]
async fn an_invoice_whose_amount_was_flagged_can_still_settle_correctly() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 1).await;
    assert_eq!(app.notify(&order_of(&inv), "settlement", "1.00").await.status, 422);
    assert_eq!(app.notify(&order_of(&inv), "settlement", "10000.00").await.status, 200);
    assert_eq!(app.quota("alice").await, (1, 0));
}
