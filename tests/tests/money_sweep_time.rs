//! The sweep fits its time (issue 8, item 6): against DynamoDB Local and the Midtrans simulator
//! answering slowly, a backlog in one phase and a short deadline still leave every other phase
//! its share; the run ends before the deadline, says what it left, and the next run finishes it.

use std::time::Instant;

use chrono::{Duration, Utc};
use emeterai::handlers::stamp::Step;
use emeterai_local::midtrans_sim::{MidtransSim, Outage, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, fixture, request, spawn_app_with};
use http::Method;
use serde_json::Value;

/// PENDING invoices waiting for reconciliation: more than the test's short run can ask about.
const BACKLOG: u32 = 24;
/// How long the simulated gateway takes to answer each API call.
const GATEWAY_DELAY_MS: u64 = 300;

async fn paid_at_the_gateway(app: &TestApp, sim: &MidtransSim, caller: &str, units: u32) -> Value {
    let inv = app.buy(caller, units).await;
    let order = inv["order_id"].as_str().expect("order");
    let paid = sim.pay(order, &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    inv
}

#[tokio::test]
async fn a_backlog_in_one_phase_leaves_time_for_the_others_and_is_finished_next_run() {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;

    // Quota-expiry work: alice's paid units, never used.
    paid_at_the_gateway(&app, &sim, "alice", 2).await;
    // Stale-document work: alice's stamp run died after reserving its serial.
    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(app.upload(&created.body, &fixture("rotate-270-a4-autocad.pdf")).await, 200);
    let document_id = created.body["document_id"].as_str().expect("id").to_owned();
    app.faults.crash_once_after(Step::Reserved);
    assert!(app.deliver(&TestApp::incoming_key("alice", &document_id)).await.is_err(), "the run dies after reserving");
    // Refund work: bob asks for his money back.
    let bobs = paid_at_the_gateway(&app, &sim, "bob", 1).await;
    let path = format!("/v1/invoices/{}/refund", bobs["invoice_id"].as_str().expect("id"));
    assert_eq!(app.call(request(Method::POST, &path, Some("bob"), None)).await.status, 202);
    // The backlog: checkouts never paid, each needing a (slow) question to the gateway.
    for n in 0..BACKLOG {
        app.buy(&format!("carol-{n}"), 1).await;
    }

    // Fifteen days on, every kind of work is due, and the gateway is slow.
    let now = Utc::now() + Duration::days(15);
    sim.set_outage(Outage { fail_percent: 0, delay_ms: GATEWAY_DELAY_MS }).expect("outage");
    let time = std::time::Duration::from_secs(6);
    let started = Instant::now();
    let first = app.sweep.run_until(now, tokio::time::Instant::now() + time).await;
    let took = started.elapsed();
    println!("first run, {took:?} of {time:?}: {first:?}");

    assert!(took < time, "the run ended after its deadline: {took:?} {first:?}");
    assert_eq!(first.errors, 0, "{first:?}");
    // The backlog got its share, not all of the time: some asked, the rest left and counted.
    assert!(first.reconciled >= 1, "{first:?}");
    assert!(first.left_for_next_run.reconcile >= 1, "{first:?}");
    assert_eq!(first.reconciled + first.left_for_next_run.reconcile, BACKLOG, "{first:?}");
    // Every other phase did its work.
    assert_eq!(first.quota_refunds, 1, "{first:?}");
    assert!(first.refunds_completed >= 1, "bob's refund was submitted: {first:?}");
    assert_eq!(first.documents_released, 1, "{first:?}");
    let left = &first.left_for_next_run;
    assert_eq!((left.recheck, left.quota_expiry, left.stale_documents), (0, 0, 0), "{first:?}");
    let bobs_refund = app.get("bob", &format!("/v1/invoices/{}", bobs["invoice_id"].as_str().expect("id"))).await.body;
    assert_eq!(bobs_refund["refund"]["status"], "COMPLETED", "{bobs_refund}");

    // The next run (the gateway well again) finishes what was left, and nothing is left over.
    sim.set_outage(Outage::default()).expect("outage over");
    let second = app.sweep.run(now + Duration::minutes(5)).await;
    assert_eq!(second.errors, 0, "{second:?}");
    assert_eq!(second.left_for_next_run.total(), 0, "{second:?}");
    assert_eq!(second.reconciled, first.left_for_next_run.reconcile, "{second:?}");
    assert_eq!(first.expired + second.expired, BACKLOG, "every unpaid checkout expired: {first:?} {second:?}");
    for n in 0..BACKLOG {
        assert_eq!(app.quota(&format!("carol-{n}")).await, (0, 0));
    }
}
