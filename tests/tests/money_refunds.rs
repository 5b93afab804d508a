//! Refunds judged by the gateway's answer, not its HTTP status (issue 8, item 4), against
//! DynamoDB Local and the project's Midtrans simulator answering as Midtrans does.

use chrono::{Duration, Utc};
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, request, spawn_app_with};
use http::Method;
use serde_json::Value;

async fn app_with_sim() -> (TestApp, MidtransSim) {
    app_with_sim_and(&[]).await
}

async fn app_with_sim_and(extra_env: &[(&str, &str)]) -> (TestApp, MidtransSim) {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    // Midtrans answers many Core API failures with HTTP 200 and the failure in the body.
    sim.set_errors_in_body(true);
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), extra_env).await;
    (app, sim)
}

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order")
}

/// Buys and pays at the simulator, delivers the notification, and asks for the refund.
async fn refunded(app: &TestApp, sim: &MidtransSim, units: u32) -> Value {
    let inv = app.buy("alice", units).await;
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    let path = format!("/v1/invoices/{}/refund", inv["invoice_id"].as_str().expect("id"));
    let r = app.call(request(Method::POST, &path, Some("alice"), None)).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    inv
}

async fn refund_of(app: &TestApp, inv: &Value) -> Value {
    app.get("alice", &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await.body["refund"].clone()
}

#[tokio::test]
async fn a_refund_refused_in_the_body_needs_review_and_never_shows_as_paid_back() {
    let (app, sim) = app_with_sim().await;
    let inv = refunded(&app, &sim, 2).await;
    sim.refuse_refunds(order(&inv), Some(412));
    let now = Utc::now();
    let report = app.sweep.run(now).await;
    assert_eq!((report.refunds_completed, report.refunds_needing_review), (0, 1), "{report:?}");
    let refund = refund_of(&app, &inv).await;
    assert_eq!(refund["status"], "NEEDS_REVIEW", "{refund}");
    assert!(refund["note"].as_str().expect("note").contains("412"), "{refund}");
    assert!(sim.transaction(order(&inv)).expect("tx").refunds.is_empty(), "nothing was paid back");

    // Never retried automatically, and it holds up no newer refund.
    sim.refuse_refunds(order(&inv), None);
    let newer = refunded(&app, &sim, 1).await;
    let later = app.sweep.run(now + Duration::days(1)).await;
    assert_eq!((later.refunds_completed, later.refunds_failed, later.refunds_needing_review), (1, 0, 0), "{later:?}");
    assert_eq!(refund_of(&app, &inv).await["status"], "NEEDS_REVIEW");
    assert_eq!(refund_of(&app, &newer).await["status"], "COMPLETED");
    assert!(sim.transaction(order(&inv)).expect("tx").refunds.is_empty());
}

#[tokio::test]
async fn a_refund_failing_for_now_backs_off_with_an_attempt_count() {
    let (app, sim) = app_with_sim().await;
    let inv = refunded(&app, &sim, 2).await;
    sim.refuse_refunds(order(&inv), Some(503));
    let t0 = Utc::now();
    let first = app.sweep.run(t0).await;
    assert_eq!(first.refunds_failed, 1, "{first:?}");
    let refund = refund_of(&app, &inv).await;
    assert_eq!((refund["status"].as_str(), refund["attempts"].as_u64()), (Some("FAILED"), Some(1)), "{refund}");

    let too_soon = app.sweep.run(t0 + Duration::minutes(2)).await;
    assert_eq!(too_soon.refunds_failed, 0, "backing off: {too_soon:?}");
    let second = app.sweep.run(t0 + Duration::minutes(6)).await;
    assert_eq!(second.refunds_failed, 1, "{second:?}");
    assert_eq!(refund_of(&app, &inv).await["attempts"], 2);
    let still_backing_off = app.sweep.run(t0 + Duration::minutes(12)).await;
    assert_eq!(still_backing_off.refunds_failed, 0, "the wait doubled: {still_backing_off:?}");

    sim.refuse_refunds(order(&inv), None);
    let third = app.sweep.run(t0 + Duration::minutes(17)).await;
    assert_eq!(third.refunds_completed, 1, "{third:?}");
    assert_eq!(refund_of(&app, &inv).await["status"], "COMPLETED");
    let refunds = sim.transaction(order(&inv)).expect("tx").refunds;
    assert_eq!((refunds.len(), refunds[0].refund_amount), (1, 20000));
}

/// Issue 8, item 4, head of line: the sweep reads each due shard earliest first, a batch of
/// `BATCH_PER_SHARD` per run. More refunds than a batch, all in one shard and all failing, must
/// not hold up a newer refund there: a failure moves later by its backoff, so the next run
/// reaches the newer one.
#[tokio::test]
async fn more_failing_refunds_than_a_batch_in_one_shard_never_block_a_newer_one() {
    use emeterai::domain::ids::InvoiceId;
    use emeterai::handlers::sweep::BATCH_PER_SHARD;
    use emeterai::ledger::keys::shard_of;

    // Filling one of the due index's shards takes well over a hundred unpaid invoices at once
    // (27 in one of 8 shards), past the default per-account limit of unpaid checkouts.
    let (app, sim) = app_with_sim_and(&[("EMETERAI_MAX_UNPAID_CHECKOUTS", "100000")]).await;
    // Invoices until one shard holds a full batch of failing ones, one more, and the good one.
    let needed = usize::try_from(BATCH_PER_SHARD).expect("batch") + 2;
    let mut by_shard: std::collections::HashMap<u8, Vec<Value>> = std::collections::HashMap::new();
    let mut invoices = loop {
        let inv = app.buy("alice", 1).await;
        let shard = shard_of(InvoiceId::parse(inv["invoice_id"].as_str().expect("id")).expect("id").ulid());
        let same_shard = by_shard.entry(shard).or_default();
        same_shard.push(inv);
        if same_shard.len() == needed {
            break std::mem::take(same_shard);
        }
    };
    let good = invoices.pop().expect("good");
    for inv in &invoices {
        let paid = sim.pay(order(inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
        assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
        sim.refuse_refunds(order(inv), Some(503));
        let path = format!("/v1/invoices/{}/refund", inv["invoice_id"].as_str().expect("id"));
        assert_eq!(app.call(request(Method::POST, &path, Some("alice"), None)).await.status, 202);
    }
    let first = app.sweep.run(Utc::now()).await;
    assert_eq!(first.refunds_failed, u32::try_from(BATCH_PER_SHARD).expect("batch"), "a full batch failed: {first:?}");

    // The good refund is asked for after that run: every failing one is due before it.
    let paid = sim.pay(order(&good), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    let path = format!("/v1/invoices/{}/refund", good["invoice_id"].as_str().expect("id"));
    assert_eq!(app.call(request(Method::POST, &path, Some("alice"), None)).await.status, 202);
    let next = app.sweep.run(Utc::now() + Duration::minutes(2)).await;
    assert_eq!(next.refunds_completed, 1, "{next:?}");
    assert_eq!(refund_of(&app, &good).await["status"], "COMPLETED");
}
