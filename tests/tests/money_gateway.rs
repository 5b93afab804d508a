//! What the payment gateway says, and what it only seems to say (issue 8, items 2 to 4), against
//! DynamoDB Local and the project's Midtrans simulator.

use chrono::{Duration, Utc};
use emeterai::handlers::payment_webhook::PaymentWebhookService;
use emeterai::midtrans::MidtransClient;
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, notification, request, spawn_app_with};
use http::Method;
use serde_json::Value;

async fn app_with_sim() -> (TestApp, MidtransSim) {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    (app, sim)
}

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order")
}

async fn status_of(app: &TestApp, caller: &str, inv: &Value) -> String {
    let got = app.get(caller, &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await;
    got.body["status"].as_str().expect("status").to_owned()
}

/// The webhook of `app`, but with a payment gateway that cannot be reached.
fn webhook_without_gateway(app: &TestApp) -> PaymentWebhookService {
    let mut dead = app.sweep.config.midtrans.clone();
    dead.api_base_url = emeterai_tests::unreachable_url();
    dead.snap_base_url = emeterai_tests::unreachable_url();
    PaymentWebhookService { gateway: MidtransClient::new(&dead).expect("client"), ..app.webhook.clone() }
}

#[tokio::test]
async fn a_signed_pending_notification_relabelled_settlement_credits_nothing() {
    let (app, _sim) = app_with_sim().await;
    let inv = app.buy("alice", 2).await;
    // Midtrans signs order_id + status_code + gross_amount only: status 201 (pending) stays
    // correctly signed whatever `transaction_status` says.
    let mut forged = notification(order(&inv), "pending", "20000.00", SERVER_KEY);
    forged["transaction_status"] = "settlement".into();
    let r = app.notify_raw(&forged.to_string()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(status_of(&app, "alice", &inv).await, "PENDING");
    assert_eq!(app.quota("alice").await, (0, 2));

    // The gateway unreachable: still nothing credited on the notification's word.
    let blind = webhook_without_gateway(&app);
    let reply = blind.respond(request(Method::POST, "/v1/webhooks/midtrans", None, Some(&forged.to_string()))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(status_of(&app, "alice", &inv).await, "PENDING");
    assert_eq!(app.quota("alice").await, (0, 2));
}

#[tokio::test]
async fn a_cancel_notification_relabelled_settlement_is_checked_with_the_gateway() {
    let (app, sim) = app_with_sim().await;
    let inv = app.buy("alice", 1).await;
    let cancelled = PayRequest { transaction_status: "cancel".into(), deliveries: 0, fraud_status: None };
    let paid = sim.pay(order(&inv), &cancelled).await.expect("cancel");
    assert_eq!(paid.notification["status_code"], "200", "Midtrans signs a cancel with 200, as a settlement");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    assert_eq!(status_of(&app, "alice", &inv).await, "CANCELLED");

    let mut forged = paid.notification.clone();
    forged["transaction_status"] = "settlement".into();
    let r = app.notify_raw(&forged.to_string()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(status_of(&app, "alice", &inv).await, "CANCELLED", "the status API says cancel");
    assert_eq!(app.quota("alice").await, (0, 0));
}

#[tokio::test]
async fn a_late_settlement_that_cannot_be_confirmed_yet_is_credited_by_the_sweep() {
    let (app, sim) = app_with_sim().await;
    let inv = app.buy("alice", 2).await;
    assert_eq!(app.notify(order(&inv), "expire", "20000.00").await.status, 200);
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");

    // The settlement arrives while the status API is down: not credited on trust, not lost.
    let blind = webhook_without_gateway(&app);
    let body = paid.notification.to_string();
    let reply = blind.respond(request(Method::POST, "/v1/webhooks/midtrans", None, Some(&body))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(status_of(&app, "alice", &inv).await, "EXPIRED");
    assert_eq!(app.quota("alice").await, (0, 0));

    let report = app.sweep.run(Utc::now() + Duration::minutes(11)).await;
    assert_eq!(report.late_credited, 1, "{report:?}");
    assert_eq!(status_of(&app, "alice", &inv).await, "PAID");
    assert_eq!(app.quota("alice").await, (2, 0));
    let again = app.sweep.run(Utc::now() + Duration::minutes(30)).await;
    assert_eq!((again.rechecked, again.late_credited), (0, 0), "{again:?}");
}

#[tokio::test]
async fn an_amount_mismatch_is_flagged_once() {
    let (app, _sim) = app_with_sim().await;
    let inv = app.buy("alice", 1).await;
    let (first, calls) = app.dynamodb_calls_during(app.notify(order(&inv), "settlement", "1.00")).await;
    assert_eq!((first.status, calls), (422, 2), "read, then the flag");
    let (again, calls) = app.dynamodb_calls_during(app.notify(order(&inv), "settlement", "1.00")).await;
    assert_eq!((again.status, calls), (422, 1), "the same mismatch is not written again");
    assert_eq!(app.quota("alice").await, (0, 1));
}
