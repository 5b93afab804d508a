//! Statements of API.md that no other test checked (issue 14, "Contract statements with no
//! test"), against DynamoDB Local, SeaweedFS and the project's Midtrans simulator. Statements
//! already covered elsewhere are listed with their tests in /work/notes/issue-14.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use chrono::{DateTime, Duration, Utc};
use emeterai::domain::ids::{AccountId, DocumentId, InvoiceId, Ulid};
use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::handlers::payment_webhook::PaymentWebhookService;
use emeterai::handlers::stamp::Outcome;
use emeterai::handlers::sweep::SweepService;
use emeterai::ledger::Ledger;
use emeterai::midtrans::MidtransClient;
use emeterai::stamping::{self, Issuer, MAX_PDF_BYTES, StampRequest};
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_local::provision::clients_from_env;
use emeterai_tests::actions::ActionLog;
use emeterai_tests::{Gateway, Reply, SERVER_KEY, TestApp, fixture, request, spawn_app, spawn_app_with, test_issuer, unreachable_url};
use futures::StreamExt as _;
use http::{HeaderValue, Method};
use serde_json::{Value, json};

const DOC: &str = "rotate-270-a4-autocad.pdf";

async fn app_with_sim(env: &[(&str, &str)]) -> (TestApp, MidtransSim) {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), env).await;
    (app, sim)
}

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order_id")
}

fn id_of(inv: &Value) -> &str {
    inv["invoice_id"].as_str().expect("invoice_id")
}

async fn invoice(app: &TestApp, inv: &Value) -> Value {
    let r = app.get("alice", &format!("/v1/invoices/{}", id_of(inv))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// `field` of `v`, which must be an RFC 3339 time in UTC.
fn utc_time(v: &Value, field: &str) -> DateTime<Utc> {
    let text = v[field].as_str().unwrap_or_else(|| panic!("{field} missing: {v}"));
    let t = DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{field} {text:?} is not RFC 3339: {e}"));
    assert_eq!(t.offset().local_minus_utc(), 0, "{field} {text:?} is not UTC");
    t.to_utc()
}

/// `t` lies between `from` and `to` (times in the API have millisecond resolution).
fn assert_between(what: &str, t: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) {
    assert!(from - Duration::milliseconds(1) <= t && t <= to, "{what} {t} is not between {from} and {to}");
}

/// Buys and pays at the simulator (so that it accepts refunds and answers status queries), then
/// delivers the notification to the webhook.
async fn fund_at_gateway(app: &TestApp, sim: &MidtransSim, caller: &str, units: u32) -> Value {
    let inv = app.buy(caller, units).await;
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    let r = app.notify_raw(&paid.notification.to_string()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    inv
}

async fn post(app: &TestApp, caller: &str, path: &str) -> Reply {
    app.call(request(Method::POST, path, Some(caller), None)).await
}

async fn verify_pdf(app: &TestApp, pdf: Vec<u8>) -> Reply {
    let mut req = request(Method::POST, "/v1/verify", None, None);
    req.headers.insert("content-type", HeaderValue::from_static("application/pdf"));
    req.body = pdf;
    app.call(req).await
}

fn new_ulid() -> Ulid {
    Ulid::generate(u64::try_from(Utc::now().timestamp_millis()).expect("after 1970"), &mut rand::thread_rng())
}

/// The fixture stamped offline by `issuer` with `serial`.
fn stamped_offline(issuer: &Issuer, serial: &Serial) -> Vec<u8> {
    let placement = Placement::parse(None, 20.0, 20.0).expect("placement");
    let url = format!("https://emeterai.test/v1/verify/{serial}");
    let req = StampRequest { serial, placement: &placement, signed_at: Utc::now(), verify_url: &url };
    stamping::stamp(&fixture(DOC), &req, issuer).expect("stamps").pdf
}

#[tokio::test]
async fn times_are_rfc3339_utc_and_say_when_things_happened() {
    let (app, sim) =
        app_with_sim(&[("EMETERAI_INVOICE_EXPIRY_MINUTES", "90"), ("EMETERAI_QUOTA_VALIDITY_DAYS", "5")]).await;
    let before = Utc::now();
    let inv = app.buy("alice", 2).await;
    let after = Utc::now();
    let created_at = utc_time(&inv, "created_at");
    assert_between("created_at", created_at, before, after);
    let expires_at = utc_time(&inv, "expires_at");
    assert_eq!(expires_at - created_at, Duration::minutes(90), "EMETERAI_INVOICE_EXPIRY_MINUTES");

    // The sweep expires it at expires_at, not before (the gateway says it is still pending).
    let unpaid = app.buy("alice", 1).await;
    let unpaid_expires_at = utc_time(&unpaid, "expires_at");
    app.sweep.run(unpaid_expires_at - Duration::minutes(1)).await;
    assert_eq!(invoice(&app, &unpaid).await["status"], "PENDING");
    let report = app.sweep.run(unpaid_expires_at + Duration::seconds(1)).await;
    assert_eq!(invoice(&app, &unpaid).await["status"], "EXPIRED", "{report:?}");

    let before = Utc::now();
    let paid = sim.pay(order(&inv), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    let after = Utc::now();
    let got = invoice(&app, &inv).await;
    assert_eq!((utc_time(&got, "created_at"), utc_time(&got, "expires_at")), (created_at, expires_at));
    let paid_at = utc_time(&got, "paid_at");
    assert_between("paid_at", paid_at, before, after);
    assert_eq!(utc_time(&got, "valid_until") - paid_at, Duration::days(5), "EMETERAI_QUOTA_VALIDITY_DAYS");

    let before = Utc::now();
    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let upload_expires_at = utc_time(&created.body, "expires_at");
    assert!(upload_expires_at > before && upload_expires_at <= before + Duration::days(7), "{upload_expires_at}");

    // The stamp's time is the stamp function's "now" (whole seconds: a PDF's /M has no finer).
    let stamp_time = DateTime::from_timestamp(Utc::now().timestamp() + 3600, 0).expect("time");
    app.clock.set(stamp_time);
    assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
    let id = created.body["document_id"].as_str().expect("id");
    let outcome = app.deliver(&TestApp::incoming_key("alice", id)).await.expect("stamp run");
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    let doc = app.get("alice", &format!("/v1/documents/{id}")).await.body;
    assert_eq!(utc_time(&doc, "stamped_at"), stamp_time, "{doc}");
    let by_serial = app.call(request(Method::GET, &format!("/v1/verify/{}", doc["serial"].as_str().expect("serial")), None, None)).await;
    assert_eq!(utc_time(&by_serial.body, "stamped_at"), stamp_time, "{:?}", by_serial.body);
}

#[tokio::test]
async fn another_accounts_resources_answer_exactly_as_missing_ones() {
    let app = spawn_app().await;
    let inv = app.fund("alice", 1).await;
    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    let doc_id = created.body["document_id"].as_str().expect("id").to_owned();
    let missing_invoice = InvoiceId::new(new_ulid()).to_string();
    let missing_doc = DocumentId::new(new_ulid()).to_string();
    let routes: [(Method, &str, String, String); 4] = [
        (Method::GET, "invoice", format!("/v1/invoices/{}", id_of(&inv)), format!("/v1/invoices/{missing_invoice}")),
        (Method::POST, "payment", format!("/v1/invoices/{}/payment", id_of(&inv)), format!("/v1/invoices/{missing_invoice}/payment")),
        (Method::POST, "refund", format!("/v1/invoices/{}/refund", id_of(&inv)), format!("/v1/invoices/{missing_invoice}/refund")),
        (Method::GET, "document", format!("/v1/documents/{doc_id}"), format!("/v1/documents/{missing_doc}")),
    ];
    for (method, what, theirs, missing) in routes {
        let other = app.call(request(method.clone(), &theirs, Some("mallory"), None)).await;
        let absent = app.call(request(method, &missing, Some("mallory"), None)).await;
        assert_eq!((other.status, other.code()), (404, "not_found"), "{what}: {:?}", other.body);
        assert_eq!(other.raw.body, absent.raw.body, "{what}: another account's answer differs from a missing one's");
        assert_eq!(other.header("content-type"), absent.header("content-type"), "{what}");
    }
    // Nothing happened to alice's invoice.
    let mine = invoice(&app, &inv).await;
    assert_eq!((mine["status"].as_str(), mine["refund"].is_null()), (Some("PAID"), true), "{mine}");
}

#[tokio::test]
async fn a_payment_link_is_asked_for_again_until_the_gateway_answers() {
    let (app, sim) = app_with_sim(&[]).await;
    let mut down = app.checkout.config.midtrans.clone();
    down.snap_base_url = unreachable_url();
    down.api_base_url = unreachable_url();
    let offline = emeterai::handlers::checkout::CheckoutService {
        gateway: MidtransClient::new(&down).expect("client"),
        ..app.checkout.clone()
    };
    let mut req = request(Method::POST, "/v1/checkouts", Some("alice"), Some(r#"{"quantity": 2}"#));
    req.headers.insert("idempotency-key", HeaderValue::from_static("offline-checkout"));
    let answer = offline.respond(req).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let inv: Value = serde_json::from_str(&answer.body).expect("json");
    assert!(inv["payment"].is_null(), "{inv}");
    let path = format!("/v1/invoices/{}/payment", id_of(&inv));

    // The gateway still down: 502 gateway_unavailable, the invoice unchanged.
    let still_down = offline.respond(request(Method::POST, &path, Some("alice"), None)).await;
    let body: Value = serde_json::from_str(&still_down.body).expect("json");
    assert_eq!((still_down.status, body["code"].as_str()), (502, Some("gateway_unavailable")), "{body}");
    assert_eq!(still_down.header("content-type"), Some("application/problem+json"));
    let now = invoice(&app, &inv).await;
    assert!(now["payment"].is_null() && now["status"] == "PENDING", "{now}");
    assert!(sim.transaction(order(&inv)).is_none(), "nothing reached the gateway");

    // The gateway back: 200 with the invoice and its payment, stored.
    let linked = post(&app, "alice", &path).await;
    assert_eq!(linked.status, 200, "{:?}", linked.body);
    assert_eq!(linked.body["payment"]["gateway"], "midtrans", "{:?}", linked.body);
    assert!(linked.body["payment"]["token"].as_str().is_some_and(|t| !t.is_empty()), "{:?}", linked.body);
    assert!(linked.body["payment"]["redirect_url"].as_str().is_some_and(|u| u.starts_with("http")), "{:?}", linked.body);
    assert_eq!(linked.body["invoice_id"], inv["invoice_id"]);
    assert_eq!(linked.body["status"], "PENDING");
    assert!(sim.transaction(order(&inv)).is_some(), "created at the gateway");
    assert_eq!(invoice(&app, &inv).await["payment"], linked.body["payment"]);
    // Asked again: the same link, nothing new.
    let again = post(&app, "alice", &path).await;
    assert_eq!((again.status, &again.body["payment"]), (200, &linked.body["payment"]));

    // Not PENDING any more: 409 invoice_not_pending.
    assert_eq!(app.notify(order(&inv), "settlement", "20000.00").await.status, 200);
    let paid = post(&app, "alice", &path).await;
    assert_eq!((paid.status, paid.code()), (409, "invoice_not_pending"), "{:?}", paid.body);
    let cancelled = app.buy("alice", 1).await;
    assert_eq!(app.notify(order(&cancelled), "cancel", "10000.00").await.status, 200);
    let r = post(&app, "alice", &format!("/v1/invoices/{}/payment", id_of(&cancelled))).await;
    assert_eq!((r.status, r.code()), (409, "invoice_not_pending"), "{:?}", r.body);
}

/// Fails every DynamoDB write, as an unavailable table would.
#[derive(Debug, Clone)]
struct FailWrites;

impl Intercept for FailWrites {
    fn name(&self) -> &'static str {
        "FailWrites"
    }
    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match cfg.load::<Metadata>().map(Metadata::name) {
            Some("TransactWriteItems" | "UpdateItem" | "PutItem" | "DeleteItem") => Err("DynamoDB write refused (injected)".into()),
            _ => Ok(()),
        }
    }
}

/// Lets `allowed` steps through (a step: one DynamoDB request or one payment gateway request),
/// then fails every later one: the function "stops" there, nothing it does afterwards reaches
/// the table or the gateway.
#[derive(Debug, Clone)]
struct StopAfter {
    allowed: u64,
    sent: Arc<AtomicU64>,
}

impl StopAfter {
    /// Whether the next step may go ahead.
    fn step(&self) -> bool {
        self.sent.fetch_add(1, Ordering::SeqCst) < self.allowed
    }
}

impl Intercept for StopAfter {
    fn name(&self) -> &'static str {
        "StopAfter"
    }
    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.step() { Ok(()) } else { Err("the function stopped here (injected)".into()) }
    }
}

/// One HTTP request read from `conn`: method, path, headers and body (Content-Length framing,
/// as the gateway client sends).
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<(reqwest::Method, String, Vec<(String, String)>, Vec<u8>)> {
    use tokio::io::AsyncReadExt as _;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = conn.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = reqwest::Method::from_bytes(first.next()?.as_bytes()).ok()?;
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&buf[..n]);
    }
    Some((method, path, headers, body))
}

/// A forwarder to the payment gateway at `target` that counts each request as a step of `stop`
/// and, once stopped, closes the connection instead. Returns its base URL.
async fn stoppable_gateway(target: String, stop: StopAfter) -> String {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            let (client, target, stop) = (client.clone(), target.clone(), stop.clone());
            tokio::spawn(async move {
                let Some((method, path, headers, body)) = read_request(&mut conn).await else { return };
                if !stop.step() {
                    return;
                }
                let mut forward = client.request(method, format!("{target}{path}"));
                for (name, value) in headers {
                    if !matches!(name.as_str(), "host" | "content-length" | "connection") {
                        forward = forward.header(name, value);
                    }
                }
                let Ok(answer) = forward.body(body).send().await else { return };
                let status = answer.status().as_u16();
                let content_type =
                    answer.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_owned();
                let bytes = answer.bytes().await.unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 {status} Forwarded\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    bytes.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&bytes).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    url
}

/// A ledger on `table` whose client runs `interceptor` (and `log`), without retries.
async fn ledger_with(table: &str, interceptor: impl Intercept + 'static, log: &ActionLog) -> Ledger {
    let (dynamodb, _) = clients_from_env().await;
    let config = dynamodb
        .config()
        .to_builder()
        .interceptor(interceptor)
        .interceptor(log.clone())
        .retry_config(RetryConfig::disabled())
        .build();
    Ledger::new(aws_sdk_dynamodb::Client::from_conf(config), table)
}

#[tokio::test]
async fn a_ledger_failure_is_answered_5xx_so_that_midtrans_retries() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 2).await;
    let failing = PaymentWebhookService {
        ledger: ledger_with(&app.table, FailWrites, &ActionLog::default()).await,
        ..app.webhook.clone()
    };
    let body = emeterai_tests::notification(order(&inv), "settlement", "20000.00", SERVER_KEY).to_string();
    let answer = failing.respond(request(Method::POST, "/v1/webhooks/midtrans", None, Some(&body))).await;
    assert!(answer.status >= 500, "a notification that was not recorded must be retried: {} {}", answer.status, answer.body);
    assert_eq!(invoice(&app, &inv).await["status"], "PENDING");
    assert_eq!(app.quota("alice").await, (0, 2));
    // Midtrans retries: credited once.
    assert_eq!(app.notify_raw(&body).await.status, 200);
    assert_eq!(app.notify_raw(&body).await.status, 200);
    assert_eq!(app.quota("alice").await, (2, 0));
    let totals = app.ledger.entry_totals(&AccountId::parse("alice").expect("account")).await.expect("totals");
    assert_eq!(totals.credited, 2);
}

#[tokio::test]
async fn an_expiry_refund_after_partial_use_pays_back_exactly_the_unused_units_under_its_refund_id() {
    let (app, sim) = app_with_sim(&[]).await;
    let inv = fund_at_gateway(&app, &sim, "alice", 3).await;
    let (_, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    let valid_until = utc_time(&invoice(&app, &inv).await, "valid_until");
    let report = app.sweep.run(valid_until + Duration::minutes(1)).await;
    assert_eq!((report.quota_refunds, report.refunds_completed), (1, 1), "{report:?}");
    let after = invoice(&app, &inv).await;
    assert_eq!(after["status"], "REFUNDED", "{after}");
    assert_eq!((after["used"].as_u64(), after["remaining"].as_u64(), after["refunded"].as_u64()), (Some(1), Some(0), Some(2)));
    let refund = &after["refund"];
    assert_eq!((refund["units"].as_u64(), refund["amount"].as_u64()), (Some(2), Some(20_000)), "{refund}");
    assert_eq!((refund["reason"].as_str(), refund["status"].as_str()), (Some("expired"), Some("COMPLETED")), "{refund}");
    let at_gateway = sim.transaction(order(&inv)).expect("transaction").refunds;
    assert_eq!(at_gateway.len(), 1, "{at_gateway:?}");
    assert_eq!(at_gateway[0].refund_key, refund["refund_id"].as_str().expect("refund_id"), "refund_key = refund_id");
    assert_eq!(at_gateway[0].refund_amount, 20_000);
}

/// Reads one HTTP request's head from `stream` (what the sweep sent the gateway).
async fn request_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "the sweep closed the connection: {}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn a_refund_is_submitted_while_the_gateway_has_it_and_a_sweep_stopped_then_leaves_it_to_a_later_one() {
    let (app, sim) = app_with_sim(&[]).await;
    let inv = fund_at_gateway(&app, &sim, "alice", 2).await;
    let requested = post(&app, "alice", &format!("/v1/invoices/{}/refund", id_of(&inv))).await;
    assert_eq!((requested.status, requested.body["status"].as_str()), (202, Some("REQUESTED")), "{:?}", requested.body);
    let refund_id = requested.body["refund_id"].as_str().expect("refund_id").to_owned();

    // A gateway that takes the refund request and never answers: the sweep is inside the call.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut holding = app.sweep.config.clone();
    holding.midtrans.api_base_url = format!("http://{}", listener.local_addr().expect("address"));
    holding.midtrans.timeout = std::time::Duration::from_secs(600);
    let held = SweepService {
        ledger: app.sweep.ledger.clone(),
        gateway: MidtransClient::new(&holding.midtrans).expect("client"),
        config: holding,
    };
    let now = Utc::now();
    let sweep = tokio::spawn(async move { held.run(now).await });
    let accepted = tokio::time::timeout(std::time::Duration::from_secs(60), listener.accept()).await;
    let (mut connection, _) = accepted.expect("the sweep calls the gateway within a minute").expect("accept");
    let head = request_head(&mut connection).await;
    assert!(head.starts_with(&format!("POST /v2/{}/refund ", order(&inv))), "{head}");
    let during = invoice(&app, &inv).await;
    assert_eq!(during["refund"]["status"], "SUBMITTED", "{during}");
    assert_eq!(during["refund"]["refund_id"], refund_id.as_str());

    // The function stops here (timeout, crash): nothing more from it.
    sweep.abort();
    assert!(sweep.await.expect_err("aborted").is_cancelled());
    drop(connection);
    // Not answered is not refunded: it stays SUBMITTED, and the next run before the submission
    // times out leaves it alone (no second request while the first may still land).
    app.sweep.run(now + Duration::minutes(1)).await;
    assert_eq!(sim.refund_requests(order(&inv)), 0);
    assert_eq!(invoice(&app, &inv).await["refund"]["status"], "SUBMITTED");
    let report = app.sweep.run(now + Duration::minutes(6)).await;
    assert_eq!(report.refunds_completed, 1, "{report:?}");
    let after = invoice(&app, &inv).await;
    assert_eq!(after["refund"]["status"], "COMPLETED", "{after}");
    let at_gateway = sim.transaction(order(&inv)).expect("transaction").refunds;
    assert_eq!(at_gateway.len(), 1, "{at_gateway:?}");
    assert_eq!(at_gateway[0].refund_key, refund_id, "refund_key = refund_id");
    assert_eq!(at_gateway[0].refund_amount, 20_000);
}

/// One of each kind of sweep work, all due at the returned time: a payment whose notification
/// was lost (reconcile and credit), an unpaid invoice (expire), a PAID invoice past its validity
/// (quota refund, then submit it), and a refund requested by its owner (submit it).
struct SweepWork {
    lost_notification: Value,
    unpaid: Value,
    past_validity: Value,
    refund_requested: Value,
    requested_refund_id: String,
    due: DateTime<Utc>,
}

async fn sweep_work(app: &TestApp, sim: &MidtransSim) -> SweepWork {
    let past_validity = fund_at_gateway(app, sim, "alice", 2).await;
    let refund_requested = fund_at_gateway(app, sim, "alice", 1).await;
    let r = post(app, "alice", &format!("/v1/invoices/{}/refund", id_of(&refund_requested))).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let lost_notification = app.buy("alice", 1).await;
    sim.pay(order(&lost_notification), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    let unpaid = app.buy("alice", 1).await;
    let valid_until = utc_time(&invoice(app, &past_validity).await, "valid_until");
    SweepWork {
        lost_notification,
        unpaid,
        past_validity,
        refund_requested,
        requested_refund_id: r.body["refund_id"].as_str().expect("refund_id").to_owned(),
        due: valid_until + Duration::minutes(1),
    }
}

/// Everything `work` asked for is done, exactly once.
async fn assert_sweep_work_done(app: &TestApp, sim: &MidtransSim, work: &SweepWork, context: &str) {
    let paid = invoice(app, &work.lost_notification).await;
    assert_eq!((paid["status"].as_str(), paid["remaining"].as_u64()), (Some("PAID"), Some(1)), "{context}: {paid}");
    assert_eq!(invoice(app, &work.unpaid).await["status"], "EXPIRED", "{context}");
    for (inv, units) in [(&work.past_validity, 2u32), (&work.refund_requested, 1)] {
        let got = invoice(app, inv).await;
        let refund = &got["refund"];
        assert_eq!((got["status"].as_str(), refund["status"].as_str()), (Some("REFUNDED"), Some("COMPLETED")), "{context}: {got}");
        assert_eq!(refund["units"].as_u64(), Some(u64::from(units)), "{context}: {got}");
        let at_gateway = sim.transaction(order(inv)).expect("transaction").refunds;
        assert_eq!(at_gateway.len(), 1, "{context}: one refund at the gateway: {at_gateway:?}");
        assert_eq!(at_gateway[0].refund_key, refund["refund_id"].as_str().expect("refund_id"), "{context}");
        assert_eq!(at_gateway[0].refund_amount, i64::from(units) * 10_000, "{context}");
    }
    assert_eq!(invoice(app, &work.refund_requested).await["refund"]["refund_id"], work.requested_refund_id.as_str(), "{context}");
    let account = AccountId::parse("alice").expect("account");
    let totals = app.ledger.entry_totals(&account).await.expect("totals");
    assert_eq!((totals.credited, totals.consumed, totals.refunded), (4, 0, 3), "{context}: ledger entries");
    assert_eq!(app.ledger.balance(&account).await.expect("balance").available, 1, "{context}: balance");
}

fn assert_no_scan(log: &ActionLog, context: &str) {
    let actions = log.actions();
    assert!(!actions.iter().any(|(action, _)| action == "dynamodb:Scan"), "{context}: the sweep scanned: {actions:?}");
    assert!(
        actions.iter().filter(|(action, _)| action == "dynamodb:Query").all(|(_, on)| on.starts_with("index/")),
        "{context}: the sweep queried the table itself: {actions:?}"
    );
}

#[tokio::test]
async fn the_sweep_reads_its_due_index_and_never_scans() {
    let (app, sim) = app_with_sim(&[]).await;
    let work = sweep_work(&app, &sim).await;
    let report = app.sweep.run(work.due).await;
    assert_eq!(report.errors, 0, "{report:?}");
    assert_sweep_work_done(&app, &sim, &work, "one sweep").await;
    assert_no_scan(&app.actions.refund, "one sweep");
}

#[tokio::test]
async fn the_sweep_is_safe_to_stop_at_any_point() {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    // Stopped after `allowed` steps, DynamoDB or gateway requests (None: never), then the next
    // scheduled run; returns the steps the stopped run tried.
    let case = |allowed: Option<u64>| {
        let sim = &sim;
        async move {
            let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
            let work = sweep_work(&app, sim).await;
            let sent = Arc::new(AtomicU64::new(0));
            let log = ActionLog::default();
            let stopping = StopAfter { allowed: allowed.unwrap_or(u64::MAX), sent: sent.clone() };
            let mut config = app.sweep.config.clone();
            config.midtrans.api_base_url = stoppable_gateway(sim.base_url().to_owned(), stopping.clone()).await;
            let stopped = SweepService {
                ledger: ledger_with(&app.table, stopping, &log).await,
                gateway: MidtransClient::new(&config.midtrans).expect("client"),
                config,
            };
            stopped.run(work.due).await;
            // The next run comes 5 minutes later; a submission left unanswered is retried then.
            app.sweep.run(work.due + Duration::minutes(6)).await;
            let context = format!("stopped after {allowed:?} requests");
            assert_sweep_work_done(&app, sim, &work, &context).await;
            assert_no_scan(&log, &context);
            assert_no_scan(&app.actions.refund, &context);
            sent.load(Ordering::SeqCst)
        }
    };
    let whole_run = case(None).await;
    assert!(whole_run > 10, "the sweep made {whole_run} requests");
    let stops: Vec<u64> = futures::stream::iter(0..whole_run).map(|n| case(Some(n))).buffer_unordered(4).collect().await;
    assert_eq!(stops.len() as u64, whole_run);
    println!("stopped before each of the {whole_run} requests of a sweep: the next run finished the work every time");
}

#[tokio::test]
async fn verifying_a_file_tells_registered_serials_trusted_keys_and_the_size_limit() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    let doc = app.get("alice", &format!("/v1/documents/{id}")).await.body;
    let registered = Serial::parse(doc["serial"].as_str().expect("serial")).expect("serial");

    // Our key, a serial never registered: a valid signature, not registered.
    let unregistered = Serial::random(&mut rand::rngs::OsRng);
    let r = verify_pdf(&app, stamped_offline(&test_issuer(), &unregistered)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let stamp = &r.body["stamps"][0];
    assert_eq!(stamp["serial"], unregistered.as_str(), "{}", r.body);
    assert_eq!((&stamp["signature_valid"], &stamp["registered"]), (&json!(true), &json!(false)), "{}", r.body);

    // Another key carrying a registered serial: not a valid e-Meterai.
    let foreign = Issuer::generate(&mut rand::thread_rng()).expect("issuer");
    let r = verify_pdf(&app, stamped_offline(&foreign, &registered)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let stamp = &r.body["stamps"][0];
    assert_eq!(stamp["serial"], registered.as_str(), "{}", r.body);
    assert_eq!(stamp["signature_valid"], false, "a foreign key's signature: {}", r.body);

    // At most 800,000 bytes: padding after the end of the file keeps it a PDF.
    let mut at_limit = stamped_offline(&test_issuer(), &unregistered);
    at_limit.resize(MAX_PDF_BYTES, b'\n');
    let r = verify_pdf(&app, at_limit.clone()).await;
    assert_eq!(r.status, 200, "{} bytes: {:?}", at_limit.len(), r.body);
    assert_eq!(r.body["stamps"][0]["serial"], unregistered.as_str(), "{}", r.body);
    at_limit.push(b'\n');
    let r = verify_pdf(&app, at_limit).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"), "{:?}", r.body);
}

#[tokio::test]
async fn uploads_under_another_accounts_prefix_or_for_an_unknown_document_are_ignored() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    app.fund("mallory", 1).await;
    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    let id = created.body["document_id"].as_str().expect("id").to_owned();
    let unknown = DocumentId::new(new_ulid()).to_string();
    let pdf = fixture(DOC);
    for key in [TestApp::incoming_key("mallory", &id), TestApp::incoming_key("alice", &unknown)] {
        app.s3.put_object().bucket(&app.bucket).key(&key).body(pdf.clone().into()).send().await.expect("put");
        let outcome = app.deliver(&key).await.expect("stamp run");
        assert_eq!(outcome, Outcome::Ignored, "{key}");
        let written = app.s3.list_objects_v2().bucket(&app.bucket).prefix("stamped/").send().await.expect("list");
        assert_eq!(written.key_count(), Some(0), "{key}: nothing stamped");
    }
    let doc = app.get("alice", &format!("/v1/documents/{id}")).await.body;
    assert_eq!(doc["status"], "AWAITING_UPLOAD", "{doc}");
    assert_eq!(app.quota("alice").await, (1, 0));
    assert_eq!(app.quota("mallory").await, (1, 0));
    // The owner's own upload is stamped.
    assert_eq!(app.upload(&created.body, &pdf).await, 200);
    let outcome = app.deliver(&TestApp::incoming_key("alice", &id)).await.expect("stamp run");
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    assert_eq!(app.quota("alice").await, (0, 0));
}
