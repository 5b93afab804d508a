//! Refunds and the scheduled sweep against DynamoDB Local and the project's Midtrans simulator.

use chrono::{Duration, Utc};
use emeterai::domain::ids::AccountId;
use emeterai::handlers::sweep::SweepService;
use emeterai::midtrans::MidtransClient;
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, fixture, request, spawn_app_with};
use http::{HeaderValue, Method};
use serde_json::{Value, json};

async fn app_with_sim() -> (TestApp, MidtransSim) {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    (app, sim)
}

async fn refund(app: &TestApp, caller: &str, invoice: &Value, key: Option<&str>) -> emeterai_tests::Reply {
    let path = format!("/v1/invoices/{}/refund", invoice["invoice_id"].as_str().expect("id"));
    let mut req = request(Method::POST, &path, Some(caller), None);
    if let Some(k) = key {
        req.headers.insert("idempotency-key", HeaderValue::from_str(k).expect("key"));
    }
    app.call(req).await
}

async fn invoice(app: &TestApp, caller: &str, inv: &Value) -> Value {
    app.get(caller, &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await.body
}

/// Buys and pays at the simulator (so that it will accept refunds), then delivers the
/// notification to the webhook.
async fn fund(app: &TestApp, sim: &MidtransSim, caller: &str, units: u32) -> Value {
    let inv = app.buy(caller, units).await;
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    let r = app.notify_raw(&paid.notification.to_string()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    inv
}

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order")
}

async fn assert_ledger_balances(app: &TestApp, caller: &str) {
    let account = AccountId::parse(caller).expect("account");
    let balance = app.ledger.balance(&account).await.expect("balance");
    let totals = app.ledger.entry_totals(&account).await.expect("totals");
    assert_eq!(balance.available, totals.available());
}

#[tokio::test]
async fn refund_takes_unused_units_out_of_use_once_and_the_sweep_pays_it_back_once() {
    let (app, sim) = app_with_sim().await;
    let inv = fund(&app, &sim, "alice", 3).await;
    assert!(inv["payment"]["token"].is_string(), "Snap token from the simulator");
    let (_, outcome) = app.stamp_document("alice", &fixture("rotate-270-a4-autocad.pdf"), json!(null)).await;
    assert!(matches!(outcome, emeterai::handlers::stamp::Outcome::Stamped { .. }));

    let r = refund(&app, "alice", &inv, Some("refund-1")).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!((r.body["units"].as_u64(), r.body["amount"].as_u64()), (Some(2), Some(20000)));
    assert_eq!(r.body["status"], "REQUESTED");
    assert_eq!(r.body["invoice_id"], inv["invoice_id"]);
    let replay = refund(&app, "alice", &inv, Some("refund-1")).await;
    assert_eq!((replay.status, replay.header("idempotent-replayed")), (202, Some("true")));
    assert_eq!(replay.raw.body, r.raw.body);
    let again = refund(&app, "alice", &inv, None).await;
    assert_eq!((again.status, again.code()), (409, "nothing_to_refund"));

    let now = invoice(&app, "alice", &inv).await;
    assert_eq!(now["status"], "REFUNDED");
    assert_eq!((now["used"].as_u64(), now["remaining"].as_u64(), now["refunded"].as_u64()), (Some(1), Some(0), Some(2)));
    assert_eq!(now["refund"]["refund_id"], r.body["refund_id"]);
    assert_eq!(app.quota("alice").await, (0, 0));

    // A refunded unit can never be used.
    let (_, outcome) = app.stamp_document("alice", &fixture("rotate-270-a4-autocad.pdf"), json!(null)).await;
    assert_eq!(outcome, emeterai::handlers::stamp::Outcome::Rejected { code: "no_quota".into() });

    let report = app.sweep.run(Utc::now()).await;
    assert_eq!(report.refunds_completed, 1, "{report:?}");
    assert_eq!(invoice(&app, "alice", &inv).await["refund"]["status"], "COMPLETED");
    let report = app.sweep.run(Utc::now() + Duration::hours(1)).await;
    assert_eq!(report.refunds_completed, 0, "{report:?}");
    let refunds = sim.transaction(order(&inv)).expect("transaction").refunds;
    assert_eq!(refunds.len(), 1, "one refund at the gateway");
    assert_eq!(refunds[0].refund_key, r.body["refund_id"].as_str().expect("refund id"));
    assert_eq!(refunds[0].refund_amount, 20000);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn nothing_to_refund_and_other_accounts() {
    let (app, _sim) = app_with_sim().await;
    let unpaid = app.buy("alice", 1).await;
    assert_eq!(refund(&app, "alice", &unpaid, None).await.code(), "nothing_to_refund");
    let paid = app.fund("alice", 1).await;
    assert_eq!(refund(&app, "mallory", &paid, None).await.status, 404);
    let (_, outcome) = app.stamp_document("alice", &fixture("rotate-270-a4-autocad.pdf"), json!(null)).await;
    assert!(matches!(outcome, emeterai::handlers::stamp::Outcome::Stamped { .. }));
    let r = refund(&app, "alice", &paid, None).await;
    assert_eq!((r.status, r.code()), (409, "nothing_to_refund"), "every unit was used");
}

#[tokio::test]
async fn expired_quota_is_refunded_in_full_by_the_sweep() {
    let (app, sim) = app_with_sim().await;
    let inv = fund(&app, &sim, "alice", 2).await;
    let paid = invoice(&app, "alice", &inv).await;
    let valid_until = chrono::DateTime::parse_from_rfc3339(paid["valid_until"].as_str().expect("valid_until")).expect("time");

    let early = app.sweep.run(valid_until.to_utc() - Duration::minutes(1)).await;
    assert_eq!(early.quota_refunds, 0, "{early:?}");
    assert_eq!(app.quota("alice").await, (2, 0));

    let report = app.sweep.run(valid_until.to_utc() + Duration::minutes(1)).await;
    assert_eq!((report.quota_refunds, report.refunds_completed), (1, 1), "{report:?}");
    let after = invoice(&app, "alice", &inv).await;
    assert_eq!(after["status"], "REFUNDED");
    assert_eq!(after["refund"]["reason"], "expired");
    assert_eq!(after["refund"]["amount"], 20000, "100% of the unused amount");
    assert_eq!(after["refund"]["status"], "COMPLETED");
    assert_eq!(app.quota("alice").await, (0, 0));
    assert_eq!(sim.transaction(order(&inv)).expect("tx").refunds.len(), 1);
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn a_settled_payment_whose_notification_never_came_is_credited_by_the_sweep() {
    let (app, sim) = app_with_sim().await;
    let created_at = Utc::now();
    let inv = app.buy("alice", 2).await;
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert!(paid.deliveries.is_empty());

    let too_early = app.sweep.run(created_at + Duration::minutes(5)).await;
    assert_eq!(too_early.reconciled, 0, "{too_early:?}");
    let report = app.sweep.run(created_at + Duration::minutes(11)).await;
    assert_eq!((report.reconciled, report.credited), (1, 1), "{report:?}");
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "PAID");
    assert_eq!(app.quota("alice").await, (2, 0));

    // The notification arrives after all: nothing more is credited.
    assert_eq!(app.notify(order(&inv), "settlement", "20000.00").await.status, 200);
    assert_eq!(app.sweep.run(created_at + Duration::minutes(30)).await.credited, 0);
    assert_eq!(app.quota("alice").await, (2, 0));
    assert_ledger_balances(&app, "alice").await;
}

#[tokio::test]
async fn unpaid_invoices_expire_and_a_late_payment_still_counts() {
    let (app, sim) = app_with_sim().await;
    let created_at = Utc::now();
    let inv = app.buy("alice", 1).await;
    let mid = app.sweep.run(created_at + Duration::hours(2)).await;
    assert_eq!((mid.reconciled, mid.expired), (1, 0), "{mid:?}");
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "PENDING");
    let report = app.sweep.run(created_at + Duration::hours(25)).await;
    assert_eq!(report.expired, 1, "{report:?}");
    assert_eq!(invoice(&app, "alice", &inv).await["status"], "EXPIRED");
    assert_eq!(app.quota("alice").await, (0, 0));
    sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify(order(&inv), "settlement", "10000.00").await.status, 200);
    assert_eq!(app.quota("alice").await, (1, 0));
}

#[tokio::test]
async fn a_failed_refund_is_retried_by_the_next_sweep_and_two_sweeps_at_once_refund_once() {
    let (app, sim) = app_with_sim().await;
    let inv = fund(&app, &sim, "alice", 2).await;
    assert_eq!(refund(&app, "alice", &inv, None).await.status, 202);

    let mut dead = app.sweep.config.clone();
    dead.midtrans.api_base_url = emeterai_tests::unreachable_url();
    let broken = SweepService {
        ledger: app.ledger.clone(),
        gateway: MidtransClient::new(&dead.midtrans).expect("client"),
        config: dead,
    };
    let report = broken.run(Utc::now()).await;
    assert_eq!(report.refunds_failed, 1, "{report:?}");
    assert_eq!(invoice(&app, "alice", &inv).await["refund"]["status"], "FAILED");

    let later = Utc::now() + Duration::minutes(5);
    assert_eq!(sim.refund_requests(order(&inv)), 0, "the failed attempt never reached the gateway");
    let (a, b) = tokio::join!(app.sweep.run(later), app.sweep.run(later));
    assert_eq!(a.refunds_completed + b.refunds_completed, 1, "{a:?} {b:?}");
    assert_eq!(sim.refund_requests(order(&inv)), 1, "two sweeps at once ask the gateway once");
    assert_eq!(invoice(&app, "alice", &inv).await["refund"]["status"], "COMPLETED");
    assert_eq!(sim.transaction(order(&inv)).expect("tx").refunds.len(), 1, "refund_key makes a retry the same refund");
    assert_ledger_balances(&app, "alice").await;
}
