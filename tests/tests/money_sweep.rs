//! The sweep removes only the work it did (issue 8, item 5): a webhook or a refund request that
//! moves an invoice between the sweep's reading of its list and its write keeps its own work.
//! Against DynamoDB Local and the Midtrans simulator; the race is made deterministic by pausing
//! the sweep's DynamoDB client just before it reads the invoice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use chrono::{DateTime, Duration, Utc};
use emeterai::handlers::sweep::{SweepReport, SweepService};
use emeterai::midtrans::MidtransClient;
use emeterai::ledger::Ledger;
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, request, spawn_app_with};
use http::Method;
use serde_json::Value;

/// Holds the first `GetItem` after it is armed until released: the sweep has read its due list
/// and is about to read the invoice.
#[derive(Debug, Clone, Default)]
struct PauseBeforeRead {
    armed: Arc<AtomicBool>,
    reached: Arc<AtomicBool>,
    released: Arc<(Mutex<bool>, Condvar)>,
}

impl PauseBeforeRead {
    fn release(&self) {
        let (lock, cvar) = &*self.released;
        *lock.lock().expect("lock") = true;
        cvar.notify_all();
    }
    async fn wait_until_reached(&self) {
        for _ in 0..500 {
            if self.reached.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the sweep never read an invoice");
    }
}

impl Intercept for PauseBeforeRead {
    fn name(&self) -> &'static str {
        "PauseBeforeRead"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let is_get = context.request().headers().get("x-amz-target").is_some_and(|t| t.ends_with(".GetItem"));
        if is_get && self.armed.swap(false, Ordering::SeqCst) {
            self.reached.store(true, Ordering::SeqCst);
            let (lock, cvar) = &*self.released;
            let guard = lock.lock().expect("lock");
            // Blocks the sweep's own thread only (see `run_apart`).
            let _unused = cvar.wait_timeout_while(guard, std::time::Duration::from_secs(20), |released| !*released).expect("wait");
        }
        Ok(())
    }
}

async fn app_with_sim() -> (TestApp, MidtransSim) {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    (app, sim)
}

/// The sweep of `app`, with its DynamoDB client paused before its first invoice read.
async fn pausable_sweep(app: &TestApp) -> (Arc<SweepService>, PauseBeforeRead) {
    let pause = PauseBeforeRead::default();
    pause.armed.store(true, Ordering::SeqCst);
    let (dynamodb, _) = emeterai_local::provision::clients_from_env().await;
    let client = aws_sdk_dynamodb::Client::from_conf(dynamodb.config().to_builder().interceptor(pause.clone()).build());
    let gateway = MidtransClient::new(&app.sweep.config.midtrans).expect("gateway client");
    let sweep = SweepService { ledger: Ledger::new(client, &app.table), gateway, config: app.sweep.config.clone() };
    (Arc::new(sweep), pause)
}

/// Runs `sweep` at `now` on a thread and runtime of its own, so that its pause blocks nothing
/// else (a blocked tokio worker could hold tasks the rest of the test needs).
fn run_apart(sweep: Arc<SweepService>, now: DateTime<Utc>) -> std::thread::JoinHandle<SweepReport> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(sweep.run(now))
    })
}

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order")
}

async fn invoice(app: &TestApp, inv: &Value) -> Value {
    app.get("alice", &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await.body
}

#[tokio::test]
async fn a_refund_requested_while_the_sweep_expires_quota_keeps_its_refund_work() {
    let (app, sim) = app_with_sim().await;
    let inv = app.buy("alice", 2).await;
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    let valid_until = invoice(&app, &inv).await["valid_until"].as_str().map(|v| DateTime::parse_from_rfc3339(v).expect("time").to_utc());
    let after_validity = valid_until.expect("valid_until") + Duration::minutes(1);

    // The sweep lists the invoice as quota to expire, then pauses before reading it.
    let (sweep, pause) = pausable_sweep(&app).await;
    let running = run_apart(sweep, after_validity);
    pause.wait_until_reached().await;
    // Meanwhile the buyer asks for the refund: the invoice is REFUNDED with refund work due.
    let path = format!("/v1/invoices/{}/refund", inv["invoice_id"].as_str().expect("id"));
    assert_eq!(app.call(request(Method::POST, &path, Some("alice"), None)).await.status, 202);
    pause.release();
    let first = running.join().expect("sweep");

    // Whatever the paused sweep did, the refund is paid back by the sweeps (not forgotten).
    let second = app.sweep.run(after_validity + Duration::minutes(5)).await;
    assert_eq!(first.refunds_completed + second.refunds_completed, 1, "{first:?} {second:?}");
    assert_eq!(invoice(&app, &inv).await["refund"]["status"], "COMPLETED");
    assert_eq!(sim.transaction(order(&inv)).expect("tx").refunds.len(), 1);
}

#[tokio::test]
async fn a_payment_arriving_while_the_sweep_reconciles_keeps_its_quota_expiry() {
    let (app, sim) = app_with_sim().await;
    let created = Utc::now();
    let inv = app.buy("alice", 2).await;

    // The sweep lists the PENDING invoice for reconciliation, then pauses before reading it.
    let (sweep, pause) = pausable_sweep(&app).await;
    let running = run_apart(sweep, created + Duration::minutes(11));
    pause.wait_until_reached().await;
    // Meanwhile the payment notification arrives: PAID, with its quota-expiry work due.
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    pause.release();
    running.join().expect("sweep");

    // At the end of the quota's validity the unused units are still refunded.
    let valid_until = invoice(&app, &inv).await["valid_until"].as_str().map(|v| DateTime::parse_from_rfc3339(v).expect("time").to_utc());
    let report = app.sweep.run(valid_until.expect("valid_until") + Duration::minutes(1)).await;
    assert_eq!((report.quota_refunds, report.refunds_completed), (1, 1), "{report:?}");
    assert_eq!(invoice(&app, &inv).await["status"], "REFUNDED");
}
