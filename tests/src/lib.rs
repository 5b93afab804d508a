//! `spawn_app`: each test gets its own DynamoDB table, created from template.yaml's definition on
//! DynamoDB Local, and the real handlers wired to it exactly as the Lambda `main`s wire them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

use emeterai::config::Config;
use emeterai::domain::ids::AccountId;
use emeterai::domain::time::{Clock, Timestamp};
use emeterai::handlers::checkout::CheckoutService;
use emeterai::handlers::payment_webhook::PaymentWebhookService;
use emeterai::http::{ApiRequest, ApiResponse};
use emeterai::ledger::Ledger;
use emeterai::midtrans::MidtransClient;
use emeterai::midtrans::signature::signature_key;
use emeterai::handlers::stamp::{InjectedFault, Outcome, StampService, Step, StepHook};
use emeterai::handlers::sweep::SweepService;
use emeterai::stamping::Issuer;
use emeterai::storage::DocumentStore;
use emeterai_local::provision::{clients_from_env, create_table, ensure_bucket};
use emeterai_local::template::Template;
use emeterai_local::testing::{require_test_services, unique_name};
use http::{HeaderValue, Method};
use serde_json::{Value, json};

pub mod actions;
use actions::{ActionLog, FunctionActions};

pub const SERVER_KEY: &str = "SB-Mid-server-TEST";

/// One issuer key for the whole test process (generating one per test would only cost time).
pub fn test_issuer() -> Issuer {
    static ISSUER: OnceLock<Issuer> = OnceLock::new();
    ISSUER.get_or_init(|| Issuer::generate(&mut rand::thread_rng()).expect("issuer")).clone()
}

/// A fixture document from `tests/fixtures/pdf` (third-party files; see PROVENANCE.tsv there).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/pdf/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn template() -> Template {
    Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template.yaml")
}

pub struct TestApp {
    pub table: String,
    pub bucket: String,
    pub ledger: Ledger,
    pub store: DocumentStore,
    pub s3: aws_sdk_s3::Client,
    pub checkout: CheckoutService,
    pub webhook: PaymentWebhookService,
    pub stamp: StampService,
    pub sweep: SweepService,
    pub faults: Arc<Faults>,
    /// The stamp function's "now": the wall clock until a test sets it.
    pub clock: Arc<TestClock>,
    /// DynamoDB requests sent (every attempt), to hold the hot paths to their round-trip budget.
    pub dynamodb_calls: Arc<AtomicU64>,
    /// The AWS actions each function's handler called (each has its own clients, as on Lambda).
    pub actions: FunctionActions,
}

/// Counts every DynamoDB request attempt the SDK transmits.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(pub Arc<AtomicU64>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }
    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Crashes the stamp function once after a chosen step (the test's "kill -9").
#[derive(Default)]
pub struct Faults {
    crash_after: Mutex<Option<Step>>,
}

impl Faults {
    pub fn crash_once_after(&self, step: Step) {
        *self.crash_after.lock().expect("lock") = Some(step);
    }
}

impl StepHook for Faults {
    fn after(&self, step: Step) -> Result<(), InjectedFault> {
        let mut armed = self.crash_after.lock().expect("lock");
        if *armed == Some(step) {
            *armed = None;
            return Err(InjectedFault(step));
        }
        Ok(())
    }
}

/// A clock a test moves by hand; it follows the wall clock until set.
#[derive(Debug, Default)]
pub struct TestClock {
    fixed: Mutex<Option<Timestamp>>,
}

impl TestClock {
    /// From now on "now" is `at`.
    pub fn set(&self, at: Timestamp) {
        *self.fixed.lock().expect("lock") = Some(at);
    }
    /// Back to the wall clock.
    pub fn follow_wall_clock(&self) {
        *self.fixed.lock().expect("lock") = None;
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        self.fixed.lock().expect("lock").unwrap_or_else(chrono::Utc::now)
    }
}

/// A loopback URL nothing listens on: a port the kernel gave us, closed again at once (a fixed
/// port such as 9 may be served on some machine).
pub fn unreachable_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Where the payment gateway is, for this test.
pub enum Gateway {
    /// Nothing listens: every call fails fast (connection refused).
    Unreachable,
    /// A base URL serving the Midtrans API (or a listener that never answers).
    At(String),
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Gateway::Unreachable, &[]).await
}

pub async fn spawn_app_with(gateway: Gateway, extra_env: &[(&str, &str)]) -> TestApp {
    require_test_services();
    let table = unique_name("ledger");
    let bucket = unique_name("documents");
    let (dynamodb, s3) = clients_from_env().await;
    create_table(&dynamodb, &template().table_definition().expect("table definition"), &table)
        .await
        .expect("create table");
    ensure_bucket(&s3, &bucket).await.expect("create bucket");
    let base_url = match gateway {
        Gateway::Unreachable => unreachable_url(),
        Gateway::At(url) => url,
    };
    let mut env: HashMap<String, String> = HashMap::from([
        ("EMETERAI_TABLE".into(), table.clone()),
        ("EMETERAI_MIDTRANS_SERVER_KEY".into(), SERVER_KEY.into()),
        ("EMETERAI_MIDTRANS_SNAP_BASE_URL".into(), base_url.clone()),
        ("EMETERAI_MIDTRANS_API_BASE_URL".into(), base_url),
        ("EMETERAI_MIDTRANS_TIMEOUT_MS".into(), "2000".into()),
    ]);
    env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("config");
    let counter = CallCounter::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        dynamodb.config().to_builder().interceptor(counter.clone()).build(),
    );
    let actions = FunctionActions::default();
    let ledger_of = |log: &ActionLog| {
        Ledger::new(aws_sdk_dynamodb::Client::from_conf(dynamodb.config().to_builder().interceptor(log.clone()).build()), &table)
    };
    let store_of = |log: &ActionLog| {
        DocumentStore::new(aws_sdk_s3::Client::from_conf(s3.config().to_builder().interceptor(log.clone()).build()), &bucket)
    };
    let ledger = Ledger::new(dynamodb.clone(), &table);
    let store = DocumentStore::new(s3.clone(), &bucket);
    let gateway = MidtransClient::new(&config.midtrans).expect("gateway client");
    let issuer = test_issuer();
    let faults = Arc::new(Faults::default());
    let clock = Arc::new(TestClock::default());
    TestApp {
        table: table.clone(),
        bucket: bucket.clone(),
        s3: s3.clone(),
        webhook: PaymentWebhookService {
            ledger: ledger_of(&actions.payment_webhook),
            server_key: config.midtrans.server_key.clone(),
            policy: config.payment_policy(),
            gateway: gateway.clone(),
            recheck_after: config.reconcile_after,
        },
        stamp: StampService {
            ledger: ledger_of(&actions.stamp),
            store: store_of(&actions.stamp),
            issuer: Arc::new(issuer.clone()),
            verify_base_url: config.verify_base_url.clone(),
            hook: faults.clone(),
            clock: clock.clone(),
        },
        sweep: SweepService { ledger: ledger_of(&actions.refund), gateway: gateway.clone(), config: config.clone() },
        checkout: CheckoutService {
            clock: clock.clone(),
            ..CheckoutService::new(
                config,
                ledger_of(&actions.checkout),
                gateway,
                store_of(&actions.checkout),
                vec![issuer.certificate_der().to_vec()],
            )
        },
        ledger,
        store,
        faults,
        clock,
        dynamodb_calls: counter.0,
        actions,
    }
}

/// A response with its body parsed as JSON.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub raw: ApiResponse,
}

impl Reply {
    fn from(raw: ApiResponse) -> Self {
        let body = serde_json::from_str(&raw.body).unwrap_or(Value::Null);
        Self { status: raw.status, body, raw }
    }
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw.header(name)
    }
}

pub fn request(method: Method, path: &str, caller: Option<&str>, body: Option<&str>) -> ApiRequest {
    let mut req = ApiRequest::new(method, path.split('?').next().unwrap_or(path));
    if let Some((_, query)) = path.split_once('?') {
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            req.query.insert(k.to_owned(), v.to_owned());
        }
    }
    req.caller = caller.map(str::to_owned);
    if let Some(b) = body {
        req.body = b.as_bytes().to_vec();
        req.headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    req
}

impl TestApp {
    /// DynamoDB requests made while `f` ran.
    pub async fn dynamodb_calls_during<T>(&self, f: impl std::future::Future<Output = T>) -> (T, u64) {
        let before = self.dynamodb_calls.load(Ordering::SeqCst);
        let out = f.await;
        (out, self.dynamodb_calls.load(Ordering::SeqCst) - before)
    }

    pub async fn call(&self, req: ApiRequest) -> Reply {
        Reply::from(self.checkout.respond(req).await)
    }

    pub async fn get(&self, caller: &str, path: &str) -> Reply {
        self.call(request(Method::GET, path, Some(caller), None)).await
    }

    pub async fn checkout(&self, caller: &str, key: Option<&str>, body: &str) -> Reply {
        let mut req = request(Method::POST, "/v1/checkouts", Some(caller), Some(body));
        if let Some(k) = key {
            req.headers.insert("idempotency-key", HeaderValue::from_str(k).expect("header value"));
        }
        self.call(req).await
    }

    /// A checkout that must succeed; returns the invoice JSON.
    pub async fn buy(&self, caller: &str, quantity: u32) -> Value {
        let key = format!("buy-{}", unique_name("k"));
        let r = self.checkout(caller, Some(&key), &json!({"quantity": quantity}).to_string()).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        r.body
    }

    pub async fn notify_raw(&self, body: &str) -> Reply {
        let req = request(Method::POST, "/v1/webhooks/midtrans", None, Some(body));
        Reply::from(self.webhook.respond(req).await)
    }

    /// A correctly signed notification, as Midtrans sends it.
    pub async fn notify(&self, order_id: &str, transaction_status: &str, gross_amount: &str) -> Reply {
        self.notify_raw(&notification(order_id, transaction_status, gross_amount, SERVER_KEY).to_string()).await
    }

    pub async fn quota(&self, caller: &str) -> (i64, i64) {
        let r = self.get(caller, "/v1/quota").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        (r.body["available"].as_i64().expect("available"), r.body["pending"].as_i64().expect("pending"))
    }

    pub fn account(name: &str) -> AccountId {
        AccountId::parse(name).expect("account")
    }
}

pub fn notification(order_id: &str, transaction_status: &str, gross_amount: &str, server_key: &str) -> Value {
    let status_code = match transaction_status {
        "settlement" | "capture" => "200",
        "pending" => "201",
        _ => "202",
    };
    json!({
        "transaction_time": "2026-11-28 10:00:00",
        "transaction_status": transaction_status,
        "transaction_id": format!("tx-{order_id}"),
        "status_message": "midtrans payment notification",
        "status_code": status_code,
        "signature_key": signature_key(order_id, status_code, gross_amount, server_key),
        "payment_type": "qris",
        "order_id": order_id,
        "merchant_id": "G000000000",
        "gross_amount": gross_amount,
        "fraud_status": "accept",
        "currency": "IDR",
    })
}

impl TestApp {
    /// Buys and pays `units` in one go.
    pub async fn fund(&self, caller: &str, units: u32) -> Value {
        let inv = self.buy(caller, units).await;
        let amount = format!("{}.00", inv["amount"].as_u64().expect("amount"));
        let r = self.notify(inv["order_id"].as_str().expect("order"), "settlement", &amount).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        inv
    }

    /// `POST /v1/documents`; returns the response.
    pub async fn create_document(&self, caller: &str, body: &str) -> Reply {
        self.call(request(Method::POST, "/v1/documents", Some(caller), Some(body))).await
    }

    /// Uploads `pdf` with the presigned request of a `POST /v1/documents` answer, as a browser would.
    pub async fn upload(&self, created: &Value, pdf: &[u8]) -> u16 {
        let upload = &created["upload"];
        let mut req = reqwest::Client::new()
            .request(reqwest::Method::from_bytes(upload["method"].as_str().expect("method").as_bytes()).expect("method"), upload["url"].as_str().expect("url"));
        for (k, v) in upload["headers"].as_object().expect("headers") {
            req = req.header(k.as_str(), v.as_str().expect("header"));
        }
        req.body(pdf.to_vec()).send().await.expect("upload").status().as_u16()
    }

    /// The object key a document's upload lands at.
    pub fn incoming_key(caller: &str, document_id: &str) -> String {
        format!("incoming/{caller}/{document_id}.pdf")
    }

    /// Delivers the S3 `ObjectCreated:Put` event for `key` to the stamp function, as S3 would
    /// (the key URL-encoded, the size and ETag from the stored object).
    pub async fn deliver(&self, key: &str) -> Result<Outcome, emeterai::handlers::stamp::StampError> {
        let head = self.s3.head_object().bucket(&self.bucket).key(key).send().await.ok();
        let etag = head.as_ref().and_then(|h| h.e_tag()).unwrap_or("0").trim_matches('"').to_owned();
        self.deliver_naming(key, &etag).await
    }

    /// As [`TestApp::deliver`], with the event naming the object version `etag` (S3 events carry
    /// the ETag without quotes).
    pub async fn deliver_naming(&self, key: &str, etag: &str) -> Result<Outcome, emeterai::handlers::stamp::StampError> {
        let size = self
            .s3
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .ok()
            .and_then(|h| h.content_length())
            .unwrap_or(0);
        let event = s3_put_event(&self.bucket, key, size, etag);
        let event: aws_lambda_events::event::s3::S3Event = serde_json::from_value(event).expect("S3 event");
        self.stamp.process_record(&event.records[0]).await
    }

    /// Creates a document with `body` (POST /v1/documents, must answer 201) and uploads `pdf`
    /// through its upload URL (must answer 200); no event is delivered yet.
    pub async fn upload_document(&self, caller: &str, body: &str, pdf: &[u8]) -> UploadedDocument {
        let created = self.create_document(caller, body).await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        assert_eq!(self.upload(&created.body, pdf).await, 200);
        let id = created.body["document_id"].as_str().expect("id").to_owned();
        let key = Self::incoming_key(caller, &id);
        UploadedDocument { created: created.body, id, key }
    }

    /// Creates a document, uploads `pdf` and delivers the event once; returns the document id.
    pub async fn stamp_document(&self, caller: &str, pdf: &[u8], placement: Value) -> (String, Outcome) {
        let body = json!({"file_name": "surat-pernyataan.pdf", "placement": placement}).to_string();
        let UploadedDocument { id, key, .. } = self.upload_document(caller, &body, pdf).await;
        let outcome = self.deliver(&key).await.expect("stamp run");
        (id, outcome)
    }
}

/// A document created and uploaded, its event not delivered yet.
pub struct UploadedDocument {
    /// The POST /v1/documents answer (its `upload` request can be replayed).
    pub created: Value,
    pub id: String,
    /// The object key the upload landed at.
    pub key: String,
}

/// An S3 `ObjectCreated:Put` notification with every field AWS sends (`etag` without quotes).
pub fn s3_put_event(bucket: &str, key: &str, size: i64, etag: &str) -> Value {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect();
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "ap-southeast-3",
        "eventTime": "2026-11-28T12:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:TEST"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "TEST", "x-amz-id-2": "TEST"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "stamp-on-upload",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "TEST"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": size, "eTag": etag, "sequencer": "0A1B2C3D4E5F678901"}
        }
    }]})
}

/// The `emeterai` command line, built once per test run next to the running test executable
/// (same target folder and profile).
pub fn cli_binary() -> &'static std::path::Path {
    use std::path::{Path, PathBuf};
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target dir");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests crate sits in the repo");
        let mut build = std::process::Command::new(env!("CARGO"));
        // The same build `cargo test --workspace` makes (emeterai-cli's own tests need its binary),
        // so nothing is rebuilt: `cargo build -p emeterai-cli` alone would resolve features
        // differently and rebuild the AWS SDK crates (minutes).
        build.current_dir(repo_root).args(["test", "--quiet", "--workspace", "--no-run"]).arg("--target-dir").arg(target_dir);
        // Cargo runs this test with the package's CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ... set, and
        // some build scripts (ring's) rerun when those differ from the outer build's environment:
        // the nested build would then rebuild ring, rustls and every AWS SDK crate (minutes). Give
        // it the environment the outer `cargo test` saw.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_by_cargo_for_this_test = ["CARGO_PKG_", "CARGO_BIN_EXE_"].iter().any(|p| name.starts_with(p))
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_MANIFEST_LINKS",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&&*name);
            if set_by_cargo_for_this_test {
                build.env_remove(&*name);
            }
        }
        if release {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building emeterai-cli failed");
        profile_dir.join("emeterai")
    })
}

/// moto's server (`.local/venv/bin/moto_server`, installed by scripts/install.sh): the KMS and
/// SQS emulator of the tests, on a free loopback port, stopped when dropped.
pub struct Moto {
    child: std::process::Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Moto {
        use std::time::{Duration, Instant};
        let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/venv/bin/moto_server");
        assert!(std::path::Path::new(bin).exists(), "{bin} is missing: scripts/install.sh installs moto[server]");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = std::process::Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
