//! A payment taken is never lost, even after the invoice expired (issue 8, item 3), against
//! DynamoDB Local and the project's Midtrans simulator.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use emeterai::domain::ids::AccountId;
use emeterai::handlers::sweep::SweepService;
use emeterai::midtrans::MidtransClient;
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, spawn_app_with};
use serde_json::Value;

async fn app_with_sim(env: &[(&str, &str)]) -> (TestApp, MidtransSim) {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), env).await;
    (app, sim)
}

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order")
}

fn time_of(inv: &Value, field: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(inv[field].as_str().expect(field)).expect("time").to_utc()
}

async fn invoice(app: &TestApp, inv: &Value) -> Value {
    app.get("alice", &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await.body
}

/// The sweep of `app` with a payment gateway that cannot be reached.
fn sweep_without_gateway(app: &TestApp) -> SweepService {
    let mut dead = app.sweep.config.clone();
    dead.midtrans.api_base_url = emeterai_tests::unreachable_url();
    SweepService { ledger: app.ledger.clone(), gateway: MidtransClient::new(&dead.midtrans).expect("client"), config: dead }
}

#[tokio::test]
async fn the_payment_page_expires_with_the_invoice() {
    let (app, sim) = app_with_sim(&[]).await;
    let inv = app.buy("alice", 1).await;
    let expires_at = time_of(&inv, "expires_at");
    let whole_second = DateTime::from_timestamp(expires_at.timestamp(), 0).expect("time");
    let wib = FixedOffset::east_opt(7 * 3600).expect("offset");
    let at_gateway = sim.transaction(order(&inv)).expect("created through Snap").expiry_time;
    assert_eq!(at_gateway, Some(whole_second.with_timezone(&wib).format("%Y-%m-%d %H:%M:%S").to_string()));
}

#[tokio::test]
async fn an_unreachable_gateway_never_expires_an_invoice() {
    let (app, _sim) = app_with_sim(&[]).await;
    let inv = app.buy("alice", 1).await;
    let past_expiry = time_of(&inv, "expires_at") + Duration::hours(1);
    let blind = sweep_without_gateway(&app).run(past_expiry).await;
    assert_eq!(blind.expired, 0, "{blind:?}");
    assert_eq!(invoice(&app, &inv).await["status"], "PENDING", "unknown is not \"not paid\"");
    // The gateway answers again: it says pending, so the invoice expires.
    let report = app.sweep.run(past_expiry + Duration::minutes(5)).await;
    assert_eq!(report.expired, 1, "{report:?}");
    assert_eq!(invoice(&app, &inv).await["status"], "EXPIRED");
}

#[tokio::test]
async fn a_payment_after_expiry_whose_notification_was_lost_is_credited() {
    let (app, sim) = app_with_sim(&[]).await;
    let inv = app.buy("alice", 2).await;
    let expired_at = time_of(&inv, "expires_at") + Duration::minutes(1);
    assert_eq!(app.sweep.run(expired_at).await.expired, 1);
    assert_eq!(invoice(&app, &inv).await["status"], "EXPIRED");

    // The buyer pays anyway (a bank transfer settles late); the notification never arrives.
    sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    let soon = app.sweep.run(expired_at + Duration::hours(1)).await;
    assert_eq!(soon.rechecked, 0, "not before the grace period: {soon:?}");
    let later = app.sweep.run(expired_at + Duration::hours(72) + Duration::minutes(1)).await;
    assert_eq!((later.rechecked, later.late_credited), (1, 1), "{later:?}");
    let paid = invoice(&app, &inv).await;
    assert_eq!(paid["status"], "PAID");
    assert_eq!(app.quota("alice").await, (2, 0));
    let again = app.sweep.run(expired_at + Duration::hours(80)).await;
    assert_eq!((again.rechecked, again.late_credited), (0, 0), "{again:?}");
    assert_eq!(app.quota("alice").await, (2, 0));
}

#[tokio::test]
async fn by_configuration_a_late_payment_is_refunded_in_full_instead() {
    let (app, sim) =
        app_with_sim(&[("EMETERAI_REFUND_LATE_PAYMENTS", "true"), ("EMETERAI_LATE_SETTLEMENT_GRACE_HOURS", "2")]).await;
    let inv = app.buy("alice", 2).await;
    let expired_at = time_of(&inv, "expires_at") + Duration::minutes(1);
    assert_eq!(app.sweep.run(expired_at).await.expired, 1);
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(paid.transaction_status, "settlement");

    let report = app.sweep.run(expired_at + Duration::hours(2) + Duration::minutes(1)).await;
    assert_eq!((report.late_credited, report.late_refunds, report.refunds_completed), (1, 1, 1), "{report:?}");
    let after = invoice(&app, &inv).await;
    assert_eq!(after["status"], "REFUNDED");
    assert_eq!(after["refund"]["reason"], "late_payment");
    assert_eq!(after["refund"]["status"], "COMPLETED");
    assert_eq!(after["refund"]["amount"], 20000, "in full");
    assert_eq!(app.quota("alice").await, (0, 0));
    let refunds = sim.transaction(order(&inv)).expect("tx").refunds;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].refund_amount, 20000);
    let account = AccountId::parse("alice").expect("account");
    let balance = app.ledger.balance(&account).await.expect("balance");
    assert_eq!(balance.available, app.ledger.entry_totals(&account).await.expect("totals").available());
}
