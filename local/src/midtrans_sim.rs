//! A Midtrans-compatible payment simulator: the functions reach it by base URL exactly as they
//! would reach Midtrans' sandbox, so the same client code runs locally and in production.
//!
//! It serves:
//! - Snap `POST /snap/v1/transactions` (Basic auth with the server key) → `{"token","redirect_url"}`;
//! - the status API `GET /v2/{order_id}/status`;
//! - the refund API `POST /v2/{order_id}/refund`, idempotent on `refund_key`;
//! - a payment page at the Snap `redirect_url`, where a person can pay with one click (button
//!   "Pay"), then goes back to the merchant's finish URL as Snap does.
//!
//! [`MidtransSim::pay`] settles (or fails) an order and POSTs a correctly signed HTTP notification
//! to the notification URL, as Midtrans does. Transactions live in memory: the simulator stands in
//! for an external service, not for the project's own storage.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, FixedOffset, Utc};
use emeterai::midtrans::signature::signature_key;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Requests to the simulator are small JSON documents.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Upper bound of notification deliveries per `pay` call (a test of duplicates needs a few).
pub const MAX_DELIVERIES: u32 = 20;
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(15);
const MERCHANT_ID: &str = "G000LOCAL";
/// Midtrans prints times in Western Indonesia Time (UTC+7).
const WIB_OFFSET_SECONDS: i32 = 7 * 3600;

/// Statuses a simulated payment can take (Midtrans' `transaction_status` values).
pub const PAYABLE_STATUSES: [&str; 7] = ["settlement", "capture", "pending", "deny", "cancel", "expire", "failure"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refund {
    pub refund_key: String,
    pub refund_amount: i64,
    pub reason: Option<String>,
    pub refund_chargeback_id: u64,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transaction {
    pub order_id: String,
    pub gross_amount: i64,
    pub token: String,
    pub transaction_id: String,
    pub transaction_status: String,
    pub fraud_status: String,
    pub payment_type: String,
    pub transaction_time: String,
    pub settlement_time: Option<String>,
    pub refunds: Vec<Refund>,
    /// Snap's `callbacks.finish` of the transaction request, if it gave one.
    #[serde(default)]
    pub finish_url: Option<String>,
    /// When the payment page closes (WIB, as Midtrans prints it), from the request's `expiry`.
    #[serde(default)]
    pub expiry_time: Option<String>,
}

impl Transaction {
    fn refunded(&self) -> i64 {
        self.refunds.iter().map(|r| r.refund_amount).sum()
    }
}

/// Midtrans' `status_code` for a `transaction_status`.
fn status_code_for(transaction_status: &str) -> &'static str {
    match transaction_status {
        "pending" => "201",
        "deny" | "failure" => "202",
        "expire" => "407",
        _ => "200",
    }
}

fn gross_amount_string(amount: i64) -> String {
    format!("{amount}.00")
}

fn wib_time(at: DateTime<Utc>) -> String {
    let wib = FixedOffset::east_opt(WIB_OFFSET_SECONDS).unwrap_or_else(|| FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
    at.with_timezone(&wib).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let h = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The transaction as Midtrans reports it (notification and status API share these fields).
fn transaction_json(t: &Transaction, server_key: &str, status_message: &str) -> Value {
    let status_code = status_code_for(&t.transaction_status);
    let gross_amount = gross_amount_string(t.gross_amount);
    let mut v = json!({
        "transaction_time": t.transaction_time,
        "transaction_status": t.transaction_status,
        "transaction_id": t.transaction_id,
        "status_message": status_message,
        "status_code": status_code,
        "signature_key": signature_key(&t.order_id, status_code, &gross_amount, server_key),
        "payment_type": t.payment_type,
        "order_id": t.order_id,
        "merchant_id": MERCHANT_ID,
        "gross_amount": gross_amount,
        "fraud_status": t.fraud_status,
        "currency": "IDR",
    });
    if let Some(settled) = &t.settlement_time {
        v["settlement_time"] = json!(settled);
    }
    if let Some(expiry) = &t.expiry_time {
        v["expiry_time"] = json!(expiry);
    }
    if !t.refunds.is_empty() {
        v["refund_amount"] = json!(gross_amount_string(t.refunded()));
        v["refunds"] = json!(t.refunds.iter().map(|r| json!({
            "refund_chargeback_id": r.refund_chargeback_id,
            "refund_amount": gross_amount_string(r.refund_amount),
            "created_at": r.created_at,
            "reason": r.reason,
            "refund_key": r.refund_key,
        })).collect::<Vec<_>>());
    }
    v
}

struct SimState {
    server_key: String,
    notify_url: Option<String>,
    base_url: String,
    transactions: Mutex<HashMap<String, Transaction>>,
    /// Refund responses by (order_id, refund_key), so a retried refund answers the same.
    refund_responses: Mutex<HashMap<(String, String), (StatusCode, Value)>>,
    http: reqwest::Client,
    /// Where the transactions are kept between runs (the local stack's data folder), if anywhere.
    store: Option<PathBuf>,
    /// The merchant's "Finish Redirect URL" (a Midtrans dashboard setting): where the payment
    /// page sends the payer back to when the transaction request named none.
    finish_redirect_url: Mutex<Option<String>>,
    /// Core API errors answered as Midtrans does for many of them: HTTP 200, the failure in the
    /// body's `status_code` (tests turn this on to hold the client to reading the body).
    errors_in_body: std::sync::atomic::AtomicBool,
    /// Refunds of these orders are refused with this `status_code` (412: for good; 5xx: for now).
    refund_refusals: Mutex<HashMap<String, u16>>,
    /// Refund API requests received, per order id (every request, replays included).
    refund_requests: Mutex<HashMap<String, u32>>,
    /// While set, every Snap transaction request is held until the test releases it.
    snap_hold: Mutex<Option<tokio::sync::mpsc::UnboundedSender<HeldSnap>>>,
    /// A simulated outage of the gateway's API (the drill's "payment gateway slow or failing").
    outage: Mutex<Outage>,
    /// API requests seen while an outage was set: picks which ones fail.
    outage_requests: std::sync::atomic::AtomicU64,
}

/// A simulated outage of the API routes (Snap, status, refund; not the payment page, not
/// [`MidtransSim::pay`]): each request waits `delay_ms`, then `fail_percent` of them are answered
/// 503 as Midtrans answers when it is down. Set through [`MidtransSim::set_outage`] or the local
/// gateway's `POST /dev/midtrans/faults`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    #[serde(default)]
    pub fail_percent: u8,
    #[serde(default)]
    pub delay_ms: u64,
}

impl Outage {
    /// The longest delay accepted: longer than any caller's timeout, short enough not to pile up.
    pub const MAX_DELAY_MS: u64 = 30_000;

    pub fn validate(&self) -> Result<(), String> {
        if self.fail_percent > 100 {
            return Err("fail_percent must be 0 to 100".into());
        }
        if self.delay_ms > Self::MAX_DELAY_MS {
            return Err(format!("delay_ms must be 0 to {}", Self::MAX_DELAY_MS));
        }
        Ok(())
    }

    /// Whether the `n`th request under this outage fails. 37 is coprime with 100, so each run of
    /// 100 requests fails exactly `fail_percent` of them, spread out rather than in one burst.
    fn fails(&self, n: u64) -> bool {
        (n.wrapping_mul(37) % 100) < u64::from(self.fail_percent)
    }
}

/// A Snap transaction request held by [`MidtransSim::hold_snap_requests`]: the order it is
/// for; the simulator answers it once this is released (or dropped).
#[derive(Debug)]
pub struct HeldSnap {
    pub order_id: String,
    release: oneshot::Sender<()>,
}

impl HeldSnap {
    /// Lets the held request go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// The simulator's state on disk.
#[derive(Default, Serialize, Deserialize)]
struct Stored {
    transactions: Vec<Transaction>,
    /// (order_id, refund_key, HTTP status, answer)
    refund_responses: Vec<(String, String, u16, Value)>,
}

impl SimState {
    /// Writes the state to the store (whole file, replaced atomically); a failure is logged,
    /// since the simulator keeps working from memory.
    fn save(&self) {
        let Some(path) = &self.store else { return };
        // One lock at a time: `refund` holds the refund responses while it takes the
        // transactions, so holding the transactions here while taking the refund responses
        // would deadlock (and block both tokio workers).
        let transactions = self.transactions().values().cloned().collect();
        let refund_responses = self
            .refund_responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((order, key), (status, body))| (order.clone(), key.clone(), status.as_u16(), body.clone()))
            .collect();
        let stored = Stored { transactions, refund_responses };
        let write = || -> std::io::Result<()> {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_vec(&stored).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the Midtrans simulator's transactions");
        }
    }

    fn transactions(&self) -> MutexGuard<'_, HashMap<String, Transaction>> {
        // A panic while holding the lock cannot leave a transaction half-written (each update is
        // one assignment), so a poisoned lock is still safe to use.
        self.transactions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What `pay` asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    #[serde(default = "default_status")]
    pub transaction_status: String,
    #[serde(default = "default_deliveries")]
    pub deliveries: u32,
    /// For `capture`: `accept` (default), `challenge` or `deny`.
    #[serde(default)]
    pub fraud_status: Option<String>,
}

fn default_status() -> String {
    "settlement".to_owned()
}
fn default_deliveries() -> u32 {
    1
}

impl Default for PayRequest {
    fn default() -> Self {
        PayRequest { transaction_status: default_status(), deliveries: default_deliveries(), fraud_status: None }
    }
}

/// One notification delivery and how the webhook answered.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The HTTP status, or `None` when the webhook could not be reached.
    pub status: Option<u16>,
    /// The answer's body (cut to 2 KB), or the connection error.
    pub body: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayOutcome {
    pub order_id: String,
    pub transaction_status: String,
    pub notification: Value,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayError {
    #[error("no transaction with order_id {0:?} was created through Snap")]
    UnknownOrder(String),
    #[error("transaction_status must be one of {PAYABLE_STATUSES:?}")]
    BadStatus,
    #[error("deliveries must be at most {MAX_DELIVERIES}")]
    TooManyDeliveries,
}

/// A running simulator; stops when dropped.
pub struct MidtransSim {
    state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl MidtransSim {
    /// Starts on a free port of 127.0.0.1. `notify_url` receives the payment notifications.
    pub async fn start(server_key: impl Into<String>, notify_url: Option<String>) -> std::io::Result<MidtransSim> {
        MidtransSim::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), server_key, notify_url).await
    }

    pub async fn start_on(
        addr: SocketAddr,
        server_key: impl Into<String>,
        notify_url: Option<String>,
    ) -> std::io::Result<MidtransSim> {
        MidtransSim::start_persisted(addr, server_key, notify_url, None).await
    }

    /// As [`MidtransSim::start_on`], keeping the transactions in `store` (a JSON file) so that
    /// orders created before a restart can still be paid, queried and refunded.
    pub async fn start_persisted(
        addr: SocketAddr,
        server_key: impl Into<String>,
        notify_url: Option<String>,
        store: Option<PathBuf>,
    ) -> std::io::Result<MidtransSim> {
        let stored: Stored = match &store {
            Some(path) if path.exists() => serde_json::from_slice(&std::fs::read(path)?)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            _ => Stored::default(),
        };
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .timeout(NOTIFY_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(SimState {
            server_key: server_key.into(),
            notify_url,
            base_url: format!("http://{local}"),
            transactions: Mutex::new(stored.transactions.into_iter().map(|t| (t.order_id.clone(), t)).collect()),
            refund_responses: Mutex::new(
                stored
                    .refund_responses
                    .into_iter()
                    .map(|(order, key, status, body)| {
                        ((order, key), (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
                    })
                    .collect(),
            ),
            http,
            store,
            finish_redirect_url: Mutex::new(None),
            refund_requests: Mutex::new(HashMap::new()),
            snap_hold: Mutex::new(None),
            errors_in_body: std::sync::atomic::AtomicBool::new(false),
            refund_refusals: Mutex::new(HashMap::new()),
            outage: Mutex::new(Outage::default()),
            outage_requests: std::sync::atomic::AtomicU64::new(0),
        });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "Midtrans simulator stopped");
            }
        });
        Ok(MidtransSim { state, shutdown: Some(shutdown) })
    }

    /// `http://127.0.0.1:PORT`: both the Snap and the API base URL.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// Sets the merchant's Finish Redirect URL (the payer returns there after paying).
    pub fn set_finish_redirect_url(&self, url: Option<String>) {
        *self.state.finish_redirect_url.lock().unwrap_or_else(|e| e.into_inner()) = url;
    }

    /// Sets (or with `Outage::default()` ends) a simulated outage of the API routes.
    pub fn set_outage(&self, outage: Outage) -> Result<(), String> {
        outage.validate()?;
        *self.state.outage.lock().unwrap_or_else(|e| e.into_inner()) = outage;
        self.state.outage_requests.store(0, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Answers Core API errors of the refund API with HTTP 200 and the failure only in the
    /// body's `status_code`, as Midtrans does.
    pub fn set_errors_in_body(&self, on: bool) {
        self.state.errors_in_body.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Refuses every refund of `order_id` with `status_code` (e.g. 412 for good, 503 for now)
    /// until called with `None`. A refund already approved under a refund key still replays.
    pub fn refuse_refunds(&self, order_id: &str, status_code: Option<u16>) {
        let mut refusals = self.state.refund_refusals.lock().unwrap_or_else(|e| e.into_inner());
        match status_code {
            Some(code) => refusals.insert(order_id.to_owned(), code),
            None => refusals.remove(order_id),
        };
    }

    pub fn server_key(&self) -> &str {
        &self.state.server_key
    }

    /// How many refund API requests for `order_id` arrived (replays of a `refund_key` included):
    /// what a test counts to show a refund was asked for exactly once.
    pub fn refund_requests(&self, order_id: &str) -> u32 {
        self.state.refund_requests.lock().unwrap_or_else(|e| e.into_inner()).get(order_id).copied().unwrap_or(0)
    }

    /// From now on every Snap transaction request waits until the test releases it; each one
    /// arrives on the returned channel (with its order id) when the simulator receives it. Tests
    /// use this to order events: something happens while a checkout is between its two writes.
    pub fn hold_snap_requests(&self) -> tokio::sync::mpsc::UnboundedReceiver<HeldSnap> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.state.snap_hold.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Snap requests are answered at once again (those already held wait for their release).
    pub fn stop_holding_snap_requests(&self) {
        *self.state.snap_hold.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn transaction(&self, order_id: &str) -> Option<Transaction> {
        self.state.transactions().get(order_id).cloned()
    }

    /// Moves the order to `request.transaction_status` and delivers the signed notification
    /// `request.deliveries` times, one after the other, as Midtrans' retries would.
    pub async fn pay(&self, order_id: &str, request: &PayRequest) -> Result<PayOutcome, PayError> {
        pay(&self.state, order_id, request).await
    }
}

impl Drop for MidtransSim {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn pay(state: &SimState, order_id: &str, request: &PayRequest) -> Result<PayOutcome, PayError> {
    if !PAYABLE_STATUSES.contains(&request.transaction_status.as_str()) {
        return Err(PayError::BadStatus);
    }
    if request.deliveries > MAX_DELIVERIES {
        return Err(PayError::TooManyDeliveries);
    }
    let notification = {
        let mut transactions = state.transactions();
        let t = transactions.get_mut(order_id).ok_or_else(|| PayError::UnknownOrder(order_id.to_owned()))?;
        let now = Utc::now();
        t.transaction_status = request.transaction_status.clone();
        match request.transaction_status.as_str() {
            "capture" => {
                t.payment_type = "credit_card".to_owned();
                t.fraud_status = request.fraud_status.clone().unwrap_or_else(|| "accept".to_owned());
                t.settlement_time.get_or_insert_with(|| wib_time(now));
            }
            "settlement" => {
                t.fraud_status = "accept".to_owned();
                t.settlement_time.get_or_insert_with(|| wib_time(now));
            }
            "deny" => t.fraud_status = "deny".to_owned(),
            _ => {}
        }
        transaction_json(t, &state.server_key, "midtrans payment notification")
    };
    state.save();
    let mut deliveries = Vec::new();
    if let Some(url) = &state.notify_url {
        for _ in 0..request.deliveries {
            deliveries.push(deliver(&state.http, url, &notification).await);
        }
    }
    Ok(PayOutcome {
        order_id: order_id.to_owned(),
        transaction_status: request.transaction_status.clone(),
        notification,
        deliveries,
    })
}

async fn deliver(http: &reqwest::Client, url: &str, notification: &Value) -> Delivery {
    match http.post(url).json(notification).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let mut body = response.text().await.unwrap_or_default();
            if body.len() > 2048 {
                let mut cut = 2048;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
            }
            Delivery { status: Some(status), body }
        }
        Err(e) => Delivery { status: None, body: e.to_string() },
    }
}

fn router(state: Arc<SimState>) -> Router {
    let api = Router::new()
        .route("/snap/v1/transactions", post(create_transaction))
        .route("/v2/{order_id}/status", get(transaction_status))
        .route("/v2/{order_id}/refund", post(refund))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), outage_layer));
    Router::new()
        .merge(api)
        .route("/snap/v4/redirection/{token}", get(payment_page))
        .route("/snap/v4/redirection/{token}/pay", post(pay_from_page))
        // The audit's listing stays up through a simulated outage: it is not Midtrans' API.
        .route("/local/v1/orders", get(list_orders))
        .fallback(|| async { midtrans_error(StatusCode::NOT_FOUND, "The requested resource is not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The simulated outage in front of the API routes: delay, then fail some requests with 503.
async fn outage_layer(State(state): State<Arc<SimState>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let outage = *state.outage.lock().unwrap_or_else(|e| e.into_inner());
    if outage == Outage::default() {
        return next.run(request).await;
    }
    if outage.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(outage.delay_ms)).await;
    }
    let n = state.outage_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if outage.fails(n) {
        return midtrans_error(StatusCode::SERVICE_UNAVAILABLE, "Midtrans is unavailable (simulated outage)");
    }
    next.run(request).await
}

/// An error of the Core API: under HTTP `status`, or (when the simulator is set so) under HTTP
/// 200 with the failure only in the body, which is how Midtrans answers many of them.
fn core_error(state: &SimState, status: StatusCode, message: &str) -> Response {
    let mut response = midtrans_error(status, message);
    if state.errors_in_body.load(std::sync::atomic::Ordering::SeqCst) {
        *response.status_mut() = StatusCode::OK;
    }
    response
}

fn midtrans_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "status_code": status.as_u16().to_string(),
        "status_message": message,
        "error_messages": [message],
    });
    (status, axum::Json(body)).into_response()
}

/// Midtrans authenticates API calls with HTTP Basic: the server key as user, no password.
fn authorized(state: &SimState, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(encoded) = value.strip_prefix("Basic ") else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    let Ok(decoded) = String::from_utf8(decoded) else { return false };
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(user, _)| user);
    user == state.server_key
}

fn unauthorized() -> Response {
    midtrans_error(
        StatusCode::UNAUTHORIZED,
        "Access denied due to unauthorized transaction, please check client or server key",
    )
}

// The error is the finished answer; handlers return it as is, so boxing would only add noise.
#[allow(clippy::result_large_err)]
fn parse_json(body: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| midtrans_error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")))
}

/// Whole rupiah: an integer, or a number or string with no fraction.
fn parse_amount(v: &Value) -> Option<i64> {
    let amount = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64)),
        Value::String(s) => s.strip_suffix(".00").unwrap_or(s).parse().ok(),
        _ => None,
    }?;
    (amount > 0).then_some(amount)
}

fn valid_order_id(order_id: &str) -> bool {
    !order_id.is_empty()
        && order_id.len() <= 50
        && order_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '~' | '.'))
}

async fn create_transaction(State(state): State<Arc<SimState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let request = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let details = &request["transaction_details"];
    let Some(order_id) = details["order_id"].as_str().filter(|id| valid_order_id(id)) else {
        return midtrans_error(
            StatusCode::BAD_REQUEST,
            "transaction_details.order_id is required: 1 to 50 characters of letters, digits, - _ ~ .",
        );
    };
    let Some(gross_amount) = parse_amount(&details["gross_amount"]) else {
        return midtrans_error(StatusCode::BAD_REQUEST, "transaction_details.gross_amount must be a positive whole amount");
    };
    let hold = state.snap_hold.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(hold) = hold {
        let (release, released) = oneshot::channel();
        if hold.send(HeldSnap { order_id: order_id.to_owned(), release }).is_ok() {
            let _ = released.await;
        }
    }
    let expiry_time = match snap_expiry(&request["expiry"]) {
        Ok(expiry) => expiry.map(wib_time),
        Err(message) => return midtrans_error(StatusCode::BAD_REQUEST, message),
    };
    let mut transactions = state.transactions();
    if let Some(existing) = transactions.get(order_id) {
        // Midtrans refuses a reused order_id. The simulator answers a retry of the very same
        // request with the same token, which a client retrying after a lost answer needs.
        if existing.gross_amount != gross_amount {
            return midtrans_error(StatusCode::BAD_REQUEST, "transaction_details.order_id has already been taken");
        }
        let body = json!({"token": existing.token, "redirect_url": redirect_url(&state, &existing.token)});
        return (StatusCode::CREATED, axum::Json(body)).into_response();
    }
    let token = random_id();
    transactions.insert(
        order_id.to_owned(),
        Transaction {
            order_id: order_id.to_owned(),
            gross_amount,
            token: token.clone(),
            transaction_id: random_id(),
            transaction_status: "pending".to_owned(),
            fraud_status: "accept".to_owned(),
            payment_type: "bank_transfer".to_owned(),
            transaction_time: wib_time(Utc::now()),
            settlement_time: None,
            refunds: Vec::new(),
            finish_url: request["callbacks"]["finish"].as_str().filter(|u| is_http_url(u)).map(str::to_owned),
            expiry_time,
        },
    );
    drop(transactions);
    state.save();
    let body = json!({"token": token, "redirect_url": redirect_url(&state, &token)});
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Snap's optional `expiry` (`start_time` "yyyy-MM-dd HH:mm:ss Z", `unit`, `duration`): when the
/// payment page closes. Absent: `None` (Snap's default applies).
fn snap_expiry(expiry: &Value) -> Result<Option<DateTime<Utc>>, &'static str> {
    if expiry.is_null() {
        return Ok(None);
    }
    const BAD: &str = "expiry must have start_time (yyyy-MM-dd HH:mm:ss Z), unit (minute, hour, day) and a positive duration";
    let start = match expiry["start_time"].as_str() {
        None => Utc::now(),
        Some(s) => DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z").map_err(|_| BAD)?.to_utc(),
    };
    let duration = expiry["duration"].as_i64().filter(|d| (1..=1_000_000).contains(d)).ok_or(BAD)?;
    let unit = match expiry["unit"].as_str() {
        Some("minute" | "minutes") => chrono::Duration::minutes(1),
        Some("hour" | "hours") => chrono::Duration::hours(1),
        Some("day" | "days") => chrono::Duration::days(1),
        _ => return Err(BAD),
    };
    Ok(Some(start + unit * i32::try_from(duration).map_err(|_| BAD)?))
}

fn redirect_url(state: &SimState, token: &str) -> String {
    format!("{}/snap/v4/redirection/{token}", state.base_url)
}

async fn transaction_status(State(state): State<Arc<SimState>>, headers: HeaderMap, Path(order_id): Path<String>) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let transactions = state.transactions();
    match transactions.get(&order_id) {
        Some(t) => axum::Json(transaction_json(t, &state.server_key, "Success, transaction is found")).into_response(),
        None => midtrans_error(StatusCode::NOT_FOUND, "Transaction doesn't exist."),
    }
}

/// Most orders one listing page returns.
const MAX_LISTED: usize = 1000;

#[derive(Debug, Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /local/v1/orders?after=ORDER&limit=N` (simulator only; Midtrans has no such API): every
/// order in order-id order, as the status API reports each, so `emeterai audit --gateway-url`
/// finds orders the ledger has never heard of.
async fn list_orders(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<ListQuery>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let limit = query.limit.unwrap_or(MAX_LISTED).clamp(1, MAX_LISTED);
    let transactions = state.transactions();
    let mut ids: Vec<&String> =
        transactions.keys().filter(|id| query.after.as_ref().is_none_or(|after| id.as_str() > after.as_str())).collect();
    ids.sort();
    ids.truncate(limit);
    let orders: Vec<Value> =
        ids.iter().filter_map(|id| transactions.get(*id)).map(|t| transaction_json(t, &state.server_key, "listed")).collect();
    let next_after = (ids.len() == limit).then(|| ids.last().map(|id| (*id).clone())).flatten();
    axum::Json(json!({"orders": orders, "next_after": next_after})).into_response()
}

async fn refund(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    *state.refund_requests.lock().unwrap_or_else(|e| e.into_inner()).entry(order_id.clone()).or_insert(0) += 1;
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let request = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(refund_key) = request["refund_key"].as_str().filter(|k| !k.is_empty() && k.len() <= 100) else {
        return core_error(&state, StatusCode::BAD_REQUEST, "refund_key is required (1 to 100 characters)");
    };
    let replay_key = (order_id.clone(), refund_key.to_owned());
    let mut responses = state.refund_responses.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((status, body)) = responses.get(&replay_key) {
        return (*status, axum::Json(body.clone())).into_response();
    }
    let refused = state.refund_refusals.lock().unwrap_or_else(|e| e.into_inner()).get(&order_id).copied();
    if let Some(code) = refused {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::PRECONDITION_FAILED);
        let message = if status.is_server_error() {
            "Sorry, we encountered internal server error. We will fix this soon."
        } else {
            "Merchant cannot modify the status of the transaction"
        };
        return core_error(&state, status, message);
    }
    let mut transactions = state.transactions();
    let Some(t) = transactions.get_mut(&order_id) else {
        return core_error(&state, StatusCode::NOT_FOUND, "Transaction doesn't exist.");
    };
    if !matches!(t.transaction_status.as_str(), "settlement" | "capture" | "partial_refund") {
        return core_error(&state, StatusCode::PRECONDITION_FAILED, "Merchant cannot modify the status of the transaction");
    }
    let remaining = t.gross_amount - t.refunded();
    let amount = match request.get("amount").filter(|a| !a.is_null()) {
        None => remaining,
        Some(a) => match parse_amount(a) {
            Some(a) => a,
            None => return core_error(&state, StatusCode::BAD_REQUEST, "amount must be a positive whole amount"),
        },
    };
    if amount > remaining {
        return core_error(&state, StatusCode::PRECONDITION_FAILED, "Refund amount exceeds the refundable amount");
    }
    let chargeback_id = rand::random::<u32>() as u64;
    t.refunds.push(Refund {
        refund_key: refund_key.to_owned(),
        refund_amount: amount,
        reason: request["reason"].as_str().map(str::to_owned),
        refund_chargeback_id: chargeback_id,
        created_at: wib_time(Utc::now()),
    });
    t.transaction_status = if t.refunded() == t.gross_amount { "refund" } else { "partial_refund" }.to_owned();
    let body = json!({
        "status_code": "200",
        "status_message": "Success, refund request is approved",
        "transaction_id": t.transaction_id,
        "order_id": t.order_id,
        "gross_amount": gross_amount_string(t.gross_amount),
        "currency": "IDR",
        "payment_type": t.payment_type,
        "transaction_time": t.transaction_time,
        "transaction_status": t.transaction_status,
        "refund_chargeback_id": chargeback_id,
        "refund_amount": gross_amount_string(amount),
        "refund_key": refund_key,
    });
    responses.insert(replay_key, (StatusCode::OK, body.clone()));
    drop(transactions);
    drop(responses);
    state.save();
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn find_by_token(state: &SimState, token: &str) -> Option<Transaction> {
    state.transactions().values().find(|t| t.token == token).cloned()
}

async fn payment_page(State(state): State<Arc<SimState>>, Path(token): Path<String>) -> Response {
    let Some(t) = find_by_token(&state, &token) else {
        return (StatusCode::NOT_FOUND, Html("<h1>Unknown payment</h1>".to_owned())).into_response();
    };
    let pay_button = if t.transaction_status == "pending" {
        format!(
            r#"<form method="post" action="/snap/v4/redirection/{}/pay"><button>Pay</button></form>"#,
            html_escape(&t.token),
        )
    } else {
        String::new()
    };
    Html(format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>Midtrans simulator</title><main><h1>Midtrans simulator (local stack)</h1>\
         <p>Order <code>{}</code>: Rp{}, status <b>{}</b>.</p>{pay_button}</main></html>",
        html_escape(&t.order_id),
        t.gross_amount,
        html_escape(&t.transaction_status)
    ))
    .into_response()
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.len() <= 2048
}

/// Snap's return to the merchant: the finish URL with the order and its outcome in the query.
fn finish_redirect(base: &str, t: &Transaction) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("order_id", &t.order_id)
        .append_pair("status_code", status_code_for(&t.transaction_status))
        .append_pair("transaction_status", &t.transaction_status)
        .finish();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{query}")
}

async fn pay_from_page(State(state): State<Arc<SimState>>, Path(token): Path<String>) -> Response {
    let Some(t) = find_by_token(&state, &token) else {
        return (StatusCode::NOT_FOUND, Html("<h1>Unknown payment</h1>".to_owned())).into_response();
    };
    let outcome = pay(&state, &t.order_id, &PayRequest::default()).await;
    let finish = t.finish_url.clone().or_else(|| state.finish_redirect_url.lock().unwrap_or_else(|e| e.into_inner()).clone());
    if let (Ok(_), Some(base)) = (&outcome, finish) {
        let paid = find_by_token(&state, &token).unwrap_or(t);
        return (StatusCode::SEE_OTHER, [(header::LOCATION, finish_redirect(&base, &paid))]).into_response();
    }
    let delivered = match outcome {
        Ok(o) => o.deliveries.iter().map(|d| format!("{:?}", d.status)).collect::<Vec<_>>().join(", "),
        Err(e) => e.to_string(),
    };
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>Paid</title><h1>Paid</h1>\
         <p>Order <code>{}</code> settled; notification answered: {}</p>",
        html_escape(&t.order_id),
        html_escape(&delivered)
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "SB-Mid-server-TEST";

    fn basic(key: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{key}:")))
    }

    async fn create(sim: &MidtransSim, http: &reqwest::Client, order_id: &str, amount: i64) -> reqwest::Response {
        http.post(format!("{}/snap/v1/transactions", sim.base_url()))
            .header("authorization", basic(KEY))
            .json(&json!({"transaction_details": {"order_id": order_id, "gross_amount": amount}}))
            .send()
            .await
            .expect("send")
    }

    /// Receives notifications like the webhook would and records them.
    async fn recorder() -> (String, Arc<Mutex<Vec<Value>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().route(
            "/hook",
            post({
                let seen = seen.clone();
                move |axum::Json(v): axum::Json<Value>| async move {
                    seen.lock().expect("lock").push(v);
                    axum::Json(json!({"status": "ok"}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, seen)
    }

    #[tokio::test]
    async fn an_outage_fails_its_share_of_api_requests_slowly_and_ends() {
        let sim = MidtransSim::start(KEY, None).await.expect("start");
        let http = reqwest::Client::new();
        assert_eq!(create(&sim, &http, "order-out", 10000).await.status(), 201);
        let status = |http: reqwest::Client, url: String| async move {
            http.get(url).header("authorization", basic(KEY)).send().await.expect("status").status().as_u16()
        };
        let url = format!("{}/v2/order-out/status", sim.base_url());

        sim.set_outage(Outage { fail_percent: 30, delay_ms: 0 }).expect("valid");
        let mut failed = 0;
        for _ in 0..100 {
            match status(http.clone(), url.clone()).await {
                503 => failed += 1,
                200 => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(failed, 30, "exactly the share asked for, out of 100");

        sim.set_outage(Outage { fail_percent: 0, delay_ms: 300 }).expect("valid");
        let started = std::time::Instant::now();
        assert_eq!(status(http.clone(), url.clone()).await, 200);
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());

        sim.set_outage(Outage { fail_percent: 100, delay_ms: 0 }).expect("valid");
        assert_eq!(create(&sim, &http, "order-out-2", 10000).await.status(), 503, "Snap fails too");
        // The payment page and the drill's own pay() are not the gateway's API: they still work.
        assert!(sim.pay("order-out", &PayRequest::default()).await.is_ok());

        sim.set_outage(Outage::default()).expect("valid");
        assert_eq!(status(http.clone(), url.clone()).await, 200);
        assert!(sim.set_outage(Outage { fail_percent: 101, delay_ms: 0 }).is_err());
        assert!(sim.set_outage(Outage { fail_percent: 0, delay_ms: Outage::MAX_DELAY_MS + 1 }).is_err());
    }

    #[tokio::test]
    async fn snap_pay_notify_status_refund() {
        let (hook, seen) = recorder().await;
        let sim = MidtransSim::start(KEY, Some(hook)).await.expect("start");
        let http = reqwest::Client::new();

        let created = create(&sim, &http, "order-1", 30000).await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.expect("json");
        let token = created["token"].as_str().expect("token");
        assert!(created["redirect_url"].as_str().expect("url").ends_with(token));
        // A retry of the same request gets the same token; another amount is refused.
        let again: Value = create(&sim, &http, "order-1", 30000).await.json().await.expect("json");
        assert_eq!(again["token"], created["token"]);
        assert_eq!(create(&sim, &http, "order-1", 40000).await.status(), 400);

        let outcome = sim.pay("order-1", &PayRequest { deliveries: 3, ..PayRequest::default() }).await.expect("pay");
        assert_eq!(outcome.deliveries.len(), 3);
        assert!(outcome.deliveries.iter().all(|d| d.status == Some(200)));
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 3);
        let n = &seen[0];
        assert_eq!(n["transaction_status"], "settlement");
        assert_eq!(n["gross_amount"], "30000.00");
        assert_eq!(n["status_code"], "200");
        assert_eq!(n["signature_key"], signature_key("order-1", "200", "30000.00", KEY));
        assert_eq!(seen[1], seen[0], "duplicates are identical, as Midtrans' retries are");

        let status: Value = http
            .get(format!("{}/v2/order-1/status", sim.base_url()))
            .header("authorization", basic(KEY))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        assert_eq!(status["transaction_status"], "settlement");
        assert_eq!(status["transaction_id"], n["transaction_id"]);

        let refund = |key: &'static str, amount: Option<i64>| {
            let http = http.clone();
            let url = format!("{}/v2/order-1/refund", sim.base_url());
            async move {
                let mut body = json!({"refund_key": key, "reason": "unused"});
                if let Some(a) = amount {
                    body["amount"] = json!(a);
                }
                let r = http.post(url).header("authorization", basic(KEY)).json(&body).send().await.expect("refund");
                (r.status().as_u16(), r.json::<Value>().await.expect("json"))
            }
        };
        let (s1, first) = refund("rf-1", Some(10000)).await;
        assert_eq!(s1, 200);
        assert_eq!(first["transaction_status"], "partial_refund");
        let (s2, replay) = refund("rf-1", Some(10000)).await;
        assert_eq!((s2, &replay), (200, &first), "same refund_key, same answer, no second refund");
        assert_eq!(sim.transaction("order-1").expect("t").refunds.len(), 1);
        let (s3, _) = refund("rf-2", Some(30000)).await;
        assert_eq!(s3, 412, "more than what is left");
        let (s4, rest) = refund("rf-3", None).await;
        assert_eq!(s4, 200);
        assert_eq!(rest["refund_amount"], "20000.00");
        assert_eq!(rest["transaction_status"], "refund");
    }

    #[tokio::test]
    async fn refuses_bad_auth_bad_input_and_unknown_orders() {
        let sim = MidtransSim::start(KEY, None).await.expect("start");
        let http = reqwest::Client::new();
        let url = format!("{}/snap/v1/transactions", sim.base_url());
        let body = json!({"transaction_details": {"order_id": "o", "gross_amount": 10}});
        assert_eq!(http.post(&url).json(&body).send().await.expect("send").status(), 401);
        let wrong = http.post(&url).header("authorization", basic("other")).json(&body).send().await.expect("send");
        assert_eq!(wrong.status(), 401);
        let garbage = http.post(&url).header("authorization", basic(KEY)).body("{not json").send().await.expect("send");
        assert_eq!(garbage.status(), 400);
        for bad in [json!({}), json!({"transaction_details": {"order_id": "o", "gross_amount": -5}}),
                    json!({"transaction_details": {"order_id": "a/b", "gross_amount": 5}}),
                    json!({"transaction_details": {"order_id": "o", "gross_amount": 1.5}})] {
            let r = http.post(&url).header("authorization", basic(KEY)).json(&bad).send().await.expect("send");
            assert_eq!(r.status(), 400, "{bad}");
        }
        let huge = vec![b'a'; MAX_BODY_BYTES + 1];
        let r = http.post(&url).header("authorization", basic(KEY)).body(huge).send().await.expect("send");
        assert_eq!(r.status(), 413);
        let status = http
            .get(format!("{}/v2/nope/status", sim.base_url()))
            .header("authorization", basic(KEY))
            .send()
            .await
            .expect("send");
        assert_eq!(status.status(), 404);
        assert_eq!(sim.pay("nope", &PayRequest::default()).await.err(), Some(PayError::UnknownOrder("nope".into())));
        let bad_status = PayRequest { transaction_status: "paid".into(), ..PayRequest::default() };
        assert_eq!(sim.pay("nope", &bad_status).await.err(), Some(PayError::BadStatus));
        // Refunding an unpaid order is refused.
        create(&sim, &http, "unpaid", 10000).await;
        let r = http
            .post(format!("{}/v2/unpaid/refund", sim.base_url()))
            .header("authorization", basic(KEY))
            .json(&json!({"refund_key": "k"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 412);
    }

    #[tokio::test]
    async fn a_persisted_simulator_remembers_orders_and_refunds_across_restarts() {
        let dir = std::env::temp_dir().join(format!("midtrans-sim-{}", random_id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = dir.join("sim.json");
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let http = reqwest::Client::new();
        {
            let sim = MidtransSim::start_persisted(addr, KEY, None, Some(store.clone())).await.expect("start");
            create(&sim, &http, "kept", 10000).await;
            sim.pay("kept", &PayRequest::default()).await.expect("pay");
            let r = http
                .post(format!("{}/v2/kept/refund", sim.base_url()))
                .header("authorization", basic(KEY))
                .json(&json!({"refund_key": "rk"}))
                .send()
                .await
                .expect("refund");
            assert_eq!(r.status(), 200);
        }
        let sim = MidtransSim::start_persisted(addr, KEY, None, Some(store.clone())).await.expect("restart");
        let t = sim.transaction("kept").expect("remembered");
        assert_eq!((t.transaction_status.as_str(), t.refunds.len()), ("refund", 1));
        let replay = http
            .post(format!("{}/v2/kept/refund", sim.base_url()))
            .header("authorization", basic(KEY))
            .json(&json!({"refund_key": "rk"}))
            .send()
            .await
            .expect("refund");
        assert_eq!(replay.status(), 200, "the refund_key is remembered too");
        assert_eq!(sim.transaction("kept").expect("t").refunds.len(), 1);
        std::fs::write(&store, b"{broken").expect("write");
        assert!(MidtransSim::start_persisted(addr, KEY, None, Some(store)).await.is_err(), "a broken store is reported");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn expire_notification_is_signed_with_its_own_status_code() {
        let (hook, seen) = recorder().await;
        let sim = MidtransSim::start(KEY, Some(hook)).await.expect("start");
        let http = reqwest::Client::new();
        create(&sim, &http, "order-x", 20000).await;
        let req = PayRequest { transaction_status: "expire".into(), deliveries: 1, fraud_status: None };
        sim.pay("order-x", &req).await.expect("pay");
        let n = seen.lock().expect("lock")[0].clone();
        assert_eq!(n["status_code"], "407");
        assert_eq!(n["signature_key"], signature_key("order-x", "407", "20000.00", KEY));
        // The payment page shows the order.
        let page = http
            .get(sim.transaction("order-x").map(|t| redirect_url(&sim.state, &t.token)).expect("t"))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), 200);
        assert!(page.text().await.expect("text").contains("order-x"));
    }

    #[tokio::test]
    async fn the_pay_button_settles_and_returns_to_the_finish_url() {
        let (hook, seen) = recorder().await;
        let sim = MidtransSim::start(KEY, Some(hook)).await.expect("start");
        sim.set_finish_redirect_url(Some("http://app.local/?lang=en".into()));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        create(&sim, &http, "order-p", 30000).await;
        let page_url = sim.transaction("order-p").map(|t| redirect_url(&sim.state, &t.token)).expect("t");
        let page = http.get(&page_url).send().await.expect("page").text().await.expect("text");
        assert!(page.contains("<button>Pay</button>"), "{page}");
        let paid = http.post(format!("{page_url}/pay")).send().await.expect("pay");
        assert_eq!(paid.status(), 303);
        assert_eq!(
            paid.headers()["location"],
            "http://app.local/?lang=en&order_id=order-p&status_code=200&transaction_status=settlement"
        );
        assert_eq!(sim.transaction("order-p").expect("t").transaction_status, "settlement");
        assert_eq!(seen.lock().expect("lock").len(), 1, "one signed notification");
        // A paid order has no button any more.
        let again = http.get(&page_url).send().await.expect("page").text().await.expect("text");
        assert!(!again.contains("<button>"));

        // The transaction's own callbacks.finish wins over the dashboard setting.
        http.post(format!("{}/snap/v1/transactions", sim.base_url()))
            .header("authorization", basic(KEY))
            .json(&json!({"transaction_details": {"order_id": "order-q", "gross_amount": 10000},
                          "callbacks": {"finish": "https://merchant.example/done"}}))
            .send()
            .await
            .expect("create");
        let page_url = sim.transaction("order-q").map(|t| redirect_url(&sim.state, &t.token)).expect("t");
        let paid = http.post(format!("{page_url}/pay")).send().await.expect("pay");
        assert!(paid.headers()["location"].to_str().expect("ascii").starts_with("https://merchant.example/done?order_id=order-q&"));
    }

    /// A refund holds the refund responses and then takes the transactions; saving the store must
    /// never hold the transactions while it takes the refund responses (the opposite order): the
    /// two std mutexes would deadlock, and both tokio workers with them, which is how the drill's
    /// gateway once stopped answering altogether under load.
    #[test]
    fn saving_while_refunding_never_deadlocks() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
            runtime.block_on(async {
                let dir = std::env::temp_dir().join(format!("midtrans-sim-{}", random_id()));
                std::fs::create_dir_all(&dir).expect("dir");
                let addr = SocketAddr::from(([127, 0, 0, 1], 0));
                let sim = MidtransSim::start_persisted(addr, KEY, None, Some(dir.join("sim.json"))).await.expect("start");
                let http = reqwest::Client::new();
                let orders: Vec<String> = (0..20).map(|i| format!("order-{i}")).collect();
                for order in &orders {
                    create(&sim, &http, order, 30000).await;
                    sim.pay(order, &PayRequest::default()).await.expect("pay");
                }
                let mut tasks = Vec::new();
                for round in 0..30 {
                    for order in &orders {
                        let state = sim.state.clone();
                        let refunded = order.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut headers = HeaderMap::new();
                            headers.insert("authorization", basic(KEY).parse().expect("header"));
                            let body = json!({"refund_key": format!("rk-{round}"), "amount": 1}).to_string();
                            let _ = refund(State(state), headers, Path(refunded), body.into()).await;
                        }));
                        let state = sim.state.clone();
                        let paid = order.clone();
                        tasks.push(tokio::spawn(async move {
                            let _ = pay(&state, &paid, &PayRequest::default()).await;
                        }));
                    }
                }
                for task in tasks {
                    task.await.expect("task");
                }
                let _ = std::fs::remove_dir_all(&dir);
            });
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(60)).is_ok(),
            "1,200 concurrent refunds and payments did not finish in 60 s: the simulator's locks deadlocked"
        );
    }
}
