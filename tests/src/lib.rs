//! `spawn_app`: each test gets its own DynamoDB table, created from template.yaml's definition on
//! DynamoDB Local, and the real handlers wired to it exactly as the Lambda `main`s wire them.

use std::collections::HashMap;

use emeterai::config::{Config, aws_sdk_config};
use emeterai::domain::ids::AccountId;
use emeterai::handlers::checkout::CheckoutService;
use emeterai::handlers::payment_webhook::PaymentWebhookService;
use emeterai::http::{ApiRequest, ApiResponse};
use emeterai::ledger::Ledger;
use emeterai::midtrans::MidtransClient;
use emeterai::midtrans::signature::signature_key;
use emeterai_local::provision::create_table;
use emeterai_local::template::Template;
use emeterai_local::testing::{require_test_services, unique_name};
use http::{HeaderValue, Method};
use serde_json::{Value, json};

pub const SERVER_KEY: &str = "SB-Mid-server-TEST";

pub fn template() -> Template {
    Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template.yaml")
}

pub struct TestApp {
    pub table: String,
    pub ledger: Ledger,
    pub checkout: CheckoutService,
    pub webhook: PaymentWebhookService,
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
    let aws = aws_sdk_config().await;
    let table = unique_name("ledger");
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    create_table(&dynamodb, &template().table_definition().expect("table definition"), &table)
        .await
        .expect("create table");
    let base_url = match gateway {
        // Port 9 (discard) on loopback: nothing listens there in the test sandbox.
        Gateway::Unreachable => "http://127.0.0.1:9".to_owned(),
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
    let ledger = Ledger::new(dynamodb, &table);
    let gateway = MidtransClient::new(&config.midtrans).expect("gateway client");
    TestApp {
        table,
        webhook: PaymentWebhookService {
            ledger: ledger.clone(),
            server_key: config.midtrans.server_key.clone(),
            quota_validity_days: config.quota_validity_days,
        },
        checkout: CheckoutService::new(config, ledger.clone(), gateway),
        ledger,
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
