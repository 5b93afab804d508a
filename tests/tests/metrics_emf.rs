//! Operator metrics (issue 12, item 4): what each function writes to stdout after an invocation
//! is CloudWatch Embedded Metric Format, and its counts are what the invocation did. The handlers
//! run for real against DynamoDB Local, SeaweedFS and the Midtrans simulator; the EMF lines are
//! captured exactly as `emeterai::telemetry::flushed` writes them and read as CloudWatch would.
//!
//! Contention retries are counted where every retry loop pauses (`Ledger::conflict_pause`, a unit
//! test in shared/src/ledger/mod.rs): DynamoDB Local serializes transactions, so 32 deliveries of
//! one settlement racing on 4 threads never produced a TransactionConflict to observe here.
//!
//! One test binary, one process-wide metrics collector: the invocations here run one at a time
//! (a lock), so each captured flush holds that invocation's counts only.

use std::collections::BTreeSet;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, TimeZone, Utc};
use emeterai::handlers::stamp::Step;
use emeterai::telemetry::{self, names};
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, fixture, request, s3_put_event, spawn_app_with};
use http::Method;
use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};

const NAMESPACE: &str = "eMeterai/metrics-test";
const DOC: &str = "rotate-270-a4-autocad.pdf";

/// Invocations of this binary, one at a time (the collector is process-wide).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The EMF documents one invocation wrote, checked against the specification's shape.
#[derive(Debug)]
struct Emf(Vec<Value>);

impl Emf {
    fn parse(bytes: &[u8]) -> Emf {
        let text = std::str::from_utf8(bytes).expect("EMF is UTF-8");
        let docs: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).expect("one JSON document per line")).collect();
        for doc in &docs {
            let aws = &doc["_aws"];
            assert!(aws["Timestamp"].as_u64().is_some(), "Timestamp in milliseconds: {doc}");
            let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
            assert_eq!(directives.len(), 1, "{doc}");
            let directive = &directives[0];
            assert_eq!(directive["Namespace"], NAMESPACE, "{doc}");
            for set in directive["Dimensions"].as_array().expect("Dimensions") {
                for dimension in set.as_array().expect("a dimension set") {
                    let name = dimension.as_str().expect("dimension name");
                    assert!(doc[name].is_string(), "dimension {name} has its value at the top level: {doc}");
                }
            }
            for metric in directive["Metrics"].as_array().expect("Metrics") {
                let name = metric["Name"].as_str().expect("metric name");
                assert!(doc[name].is_number(), "metric {name} has its value at the top level: {doc}");
                assert!(matches!(metric["Unit"].as_str(), Some("Count" | "Seconds")), "{doc}");
            }
        }
        Emf(docs)
    }

    /// The value of `metric` with exactly the dimensions `dims` (summed over documents).
    fn value(&self, metric: &str, dims: &[(&str, &str)]) -> f64 {
        let mut total = 0.0;
        for doc in &self.0 {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            let set: BTreeSet<&str> = directive["Dimensions"][0].as_array().expect("set").iter().filter_map(Value::as_str).collect();
            let wanted: BTreeSet<&str> = dims.iter().map(|(k, _)| *k).collect();
            let matches = set == wanted && dims.iter().all(|(k, v)| doc[*k] == *v);
            let has = directive["Metrics"].as_array().expect("Metrics").iter().any(|m| m["Name"] == metric);
            if matches && has {
                total += doc[metric].as_f64().expect("number");
            }
        }
        total
    }

    /// Every counter (metric, dimensions) written, for "nothing else was counted". The sweep's
    /// gauge is left out: a gauge, once set, is written with every flush of its process (on AWS
    /// only the refund function's, which sets it every run; here the tests share one process).
    fn series(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for doc in &self.0 {
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            let dims: Vec<String> = directive["Dimensions"][0]
                .as_array()
                .expect("set")
                .iter()
                .filter_map(Value::as_str)
                .map(|k| format!("{k}={}", doc[k].as_str().unwrap_or("?")))
                .collect();
            for metric in directive["Metrics"].as_array().expect("Metrics").iter().filter(|m| m["Name"] != names::OLDEST_DUE_AGE) {
                out.insert(format!("{}{{{}}}", metric["Name"].as_str().unwrap_or("?"), dims.join(",")));
            }
        }
        out
    }
}

/// Runs one invocation and returns its result with the EMF it flushed.
async fn invocation<T>(f: impl std::future::Future<Output = T>) -> (T, Emf) {
    let mut out = Vec::new();
    let result = telemetry::flushed_into(&mut out, f).await;
    (result, Emf::parse(&out))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn setup() -> (TestApp, MidtransSim) {
    telemetry::install(NAMESPACE).expect("collector installed");
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    sim.set_errors_in_body(true);
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    (app, sim)
}

/// Drops whatever setup counted (table creation, earlier work) before the invocation under test.
fn discard_pending() {
    telemetry::flush_to(std::io::sink()).expect("discard");
}

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order")
}

fn sweep_event(at: DateTime<Utc>) -> LambdaEvent<EventBridgeEvent> {
    let event: EventBridgeEvent = serde_json::from_value(json!({
        "version": "0", "id": "metrics-test", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": at.to_rfc3339(), "region": "ap-southeast-3",
        "resources": [], "detail": {}
    }))
    .expect("scheduled event");
    LambdaEvent::new(event, Context::default())
}

async fn stamp_event(app: &TestApp, key: &str) -> LambdaEvent<aws_lambda_events::event::s3::S3Event> {
    let head = app.s3.head_object().bucket(&app.bucket).key(key).send().await.ok();
    let size = head.as_ref().and_then(|h| h.content_length()).unwrap_or(0);
    let etag = head.as_ref().and_then(|h| h.e_tag()).unwrap_or("0").trim_matches('"').to_owned();
    LambdaEvent::new(serde_json::from_value(s3_put_event(&app.bucket, key, size, &etag)).expect("S3 event"), Context::default())
}

async fn upload(app: &TestApp, pdf: &[u8]) -> String {
    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(app.upload(&created.body, pdf).await, 200);
    TestApp::incoming_key("alice", created.body["document_id"].as_str().expect("id"))
}

#[tokio::test]
async fn a_webhook_credit_and_stamp_runs_are_counted_once_each() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, sim) = setup().await;
    let inv = app.buy("alice", 3).await;
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    discard_pending();

    let (reply, emf) = invocation(app.notify_raw(&paid.notification.to_string())).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(emf.value(names::CREDITS, &[("Source", "notification")]), 1.0, "{emf:?}");
    assert_eq!(emf.series(), set(&["Credits{Source=notification}"]));
    // The duplicate notification credits nothing, and says so by counting nothing.
    let (reply, emf) = invocation(app.notify_raw(&paid.notification.to_string())).await;
    assert_eq!(reply.status, 200);
    assert!(emf.series().is_empty(), "{emf:?}");

    // The stamp function: one stamped, one rejected (not a PDF), each with its own flush.
    let good = upload(&app, &fixture(DOC)).await;
    let bad = upload(&app, b"this is not a PDF at all").await;
    discard_pending();
    let (done, emf) = invocation(app.stamp.handle(stamp_event(&app, &good).await)).await;
    done.expect("stamped");
    assert_eq!(emf.value(names::STAMPS_ISSUED, &[]), 1.0, "{emf:?}");
    assert_eq!(emf.series(), set(&["StampsIssued{}"]));
    let (done, emf) = invocation(app.stamp.handle(stamp_event(&app, &bad).await)).await;
    done.expect("rejected is a handled outcome");
    assert_eq!(emf.value(names::REJECTIONS, &[("Code", "not_pdf")]), 1.0, "{emf:?}");
    assert_eq!(emf.series(), set(&["Rejections{Code=not_pdf}"]));
    // Redelivered: already final, counted again nowhere.
    let (_, emf) = invocation(app.stamp.handle(stamp_event(&app, &good).await)).await;
    assert!(emf.series().is_empty(), "{emf:?}");
}

#[tokio::test]
async fn the_sweep_counts_releases_refunds_late_credits_and_the_oldest_due_item() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (app, sim) = setup().await;

    // A stamp run that dies after reserving: the document stays PROCESSING until the sweep.
    app.fund("alice", 1).await;
    let reserved_at = Utc.timestamp_opt(Utc::now().timestamp(), 0).single().expect("time");
    app.clock.set(reserved_at);
    let key = upload(&app, &fixture(DOC)).await;
    app.faults.crash_once_after(Step::Reserved);
    assert!(app.deliver(&key).await.is_err(), "the run dies after reserving");
    app.clock.follow_wall_clock();
    let stale_at = reserved_at + Duration::minutes(emeterai::ledger::documents::STALE_PROCESSING_MINUTES);

    discard_pending();
    let run_at = stale_at + Duration::minutes(3);
    let (report, emf) = invocation(app.sweep.handle(sweep_event(run_at))).await;
    let report = report.expect("sweep");
    assert_eq!(report.documents_released, 1, "{report:?}");
    assert_eq!(emf.value(names::STALE_DOCUMENTS_RELEASED, &[]), 1.0, "{emf:?}");
    // The document fell due at the stale threshold: three minutes before this run.
    let oldest = emf.value(names::OLDEST_DUE_AGE, &[]);
    assert!((180.0..=181.0).contains(&oldest), "oldest due item {oldest} s: {emf:?}");
    assert!(!emf.series().iter().any(|s| s.starts_with("Refunds")), "no refund was submitted: {emf:?}");

    // A refund the gateway refuses for good: NEEDS_REVIEW, the alarm's metric.
    let inv = app.buy("alice", 2).await;
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    let path = format!("/v1/invoices/{}/refund", inv["invoice_id"].as_str().expect("id"));
    assert_eq!(app.call(request(Method::POST, &path, Some("alice"), None)).await.status, 202);
    sim.refuse_refunds(order(&inv), Some(412));
    discard_pending();
    let (report, emf) = invocation(app.sweep.handle(sweep_event(Utc::now()))).await;
    assert_eq!(report.expect("sweep").refunds_needing_review, 1);
    assert_eq!(emf.value(names::REFUNDS, &[("Status", "NEEDS_REVIEW")]), 1.0, "{emf:?}");
    assert_eq!(emf.value(names::REFUNDS, &[("Status", "COMPLETED")]), 0.0, "{emf:?}");

    // A payment after expiry whose notification was lost: found by the recheck, credited late.
    let late = app.buy("alice", 1).await;
    let expires_at = DateTime::parse_from_rfc3339(late["expires_at"].as_str().expect("expires_at")).expect("time").to_utc();
    assert_eq!(app.sweep.run(expires_at + Duration::minutes(1)).await.expired, 1);
    sim.pay(order(&late), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    discard_pending();
    let (report, emf) = invocation(app.sweep.handle(sweep_event(expires_at + Duration::hours(73)))).await;
    assert_eq!(report.expect("sweep").late_credited, 1);
    assert_eq!(emf.value(names::LATE_CREDITS, &[]), 1.0, "{emf:?}");
    assert_eq!(emf.value(names::CREDITS, &[("Source", "reconciliation")]), 1.0, "{emf:?}");
}
