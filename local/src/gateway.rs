//! The local gateway: API Gateway's HTTP API, S3's event notifications and EventBridge's schedule
//! for the functions running under the Lambda emulator, all derived from `template.yaml`, plus the
//! local-only `/dev/...` routes of API.md.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::apigw::{self, IncomingRequest, RouteTable};
use crate::lambda::{InvokeError, LambdaInvoker, scheduled_event};
use crate::midtrans_sim::{MidtransSim, Outage, PayError, PayRequest};
use crate::s3_events::{object_created, s3_put_event};
use crate::template::{S3Trigger, ScheduleTrigger, Template, TemplateError};

/// What the gateway needs to know beyond `template.yaml`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Secret of the local HS256 tokens.
    pub jwt_secret: String,
    /// Largest request body passed to a function (Lambda's synchronous payload limit is 6 MB).
    pub max_body_bytes: usize,
    /// How long a client may take to send its body.
    pub body_read_timeout: Duration,
    pub region: String,
    /// Bucket logical id (template) → bucket name (local service).
    pub bucket_names: HashMap<String, String>,
    /// Bearer token SeaweedFS sends with its notifications; `None` accepts any.
    pub s3_notification_token: Option<String>,
    /// Fire `rate(...)` schedules on their own (off in tests, which use `/dev/sweep`).
    pub run_schedules: bool,
    /// How often an S3 event is retried after a function error (AWS retries async invokes twice).
    pub s3_event_retries: u32,
    /// The web app's folder, served at `/` (outside `/v1/`), as CloudFront serves the web bucket.
    pub web_root: Option<PathBuf>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            jwt_secret: emeterai::auth::local_jwt::DEFAULT_SECRET.to_owned(),
            max_body_bytes: 6 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
            region: "ap-southeast-3".to_owned(),
            bucket_names: HashMap::new(),
            s3_notification_token: None,
            run_schedules: true,
            s3_event_retries: 2,
            web_root: None,
        }
    }
}

struct GatewayState {
    routes: RouteTable,
    s3_triggers: Vec<S3Trigger>,
    schedules: Vec<ScheduleTrigger>,
    invoker: LambdaInvoker,
    config: GatewayConfig,
    /// Bucket name → logical id.
    bucket_ids: HashMap<String, String>,
    /// Function binary → its `Timeout` in template.yaml.
    timeouts: HashMap<String, Duration>,
    midtrans: Option<Arc<MidtransSim>>,
}

/// The gateway, ready to serve.
pub struct Gateway {
    state: Arc<GatewayState>,
}

/// API Gateway waits at most this long for an HTTP API integration (its integration timeout's
/// maximum), whatever the function's own `Timeout`.
const HTTP_API_MAX_WAIT: Duration = Duration::from_secs(30);
/// Lambda gives a new instance's init phase up to 10 s of its own, outside the function's
/// `Timeout`; `cargo lambda watch` starts instances on demand too (seconds on a loaded machine).
const LAMBDA_INIT_LIMIT: Duration = Duration::from_secs(10);

/// How long the gateway waits for a function whose template `Timeout` is `own`: as long as AWS
/// would let it run from a cold start (init, then its `Timeout`), and for an HTTP route never
/// longer than API Gateway's integration limit. Beyond that AWS answers 5xx; so does the gateway.
fn longest_wait(own: Option<Duration>, http_route: bool) -> Duration {
    let cold_start_and_run = own.unwrap_or(HTTP_API_MAX_WAIT) + LAMBDA_INIT_LIMIT;
    if http_route { cold_start_and_run.min(HTTP_API_MAX_WAIT) } else { cold_start_and_run }
}

impl GatewayState {
    fn wait_for(&self, function: &str, http_route: bool) -> Duration {
        longest_wait(self.timeouts.get(function).copied(), http_route)
    }
}

/// RFC 9457 problem details, as the API answers errors. `detail` is always there, as in the
/// functions' answers (the contract's `Problem` requires it); without a more precise one it
/// repeats the title.
pub fn problem(status: StatusCode, code: &str, detail: Option<String>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "code": code,
        "detail": detail.unwrap_or_else(|| title.to_owned()),
    });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

impl Gateway {
    pub fn new(
        template: &Template,
        invoker: LambdaInvoker,
        midtrans: Option<Arc<MidtransSim>>,
        config: GatewayConfig,
    ) -> Result<Gateway, TemplateError> {
        let routes = RouteTable::new(template.http_routes()?)
            .map_err(|problem| TemplateError::Invalid { resource: "HttpApi routes".into(), problem })?;
        let bucket_ids = config.bucket_names.iter().map(|(id, name)| (name.clone(), id.clone())).collect();
        let timeouts = template.functions()?.into_iter().map(|f| (f.binary, f.timeout)).collect();
        Ok(Gateway {
            state: Arc::new(GatewayState {
                routes,
                s3_triggers: template.s3_triggers()?,
                schedules: template.schedule_triggers()?,
                invoker,
                config,
                bucket_ids,
                timeouts,
                midtrans,
            }),
        })
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/dev/pay/{order_id}", post(dev_pay))
            .route("/dev/midtrans/faults", post(dev_midtrans_faults))
            .route("/dev/sweep", post(dev_sweep))
            .route("/dev/token", get(dev_token))
            .route("/dev/routes", get(dev_routes))
            .route("/dev/s3-notifications", post(s3_notification))
            .fallback(api)
            .method_not_allowed_fallback(|| async {
                problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            })
            .with_state(self.state.clone())
    }

    /// Fires each enabled `rate(...)` schedule of the template at its rate, until the runtime stops.
    pub fn spawn_schedules(&self) {
        if !self.state.config.run_schedules {
            return;
        }
        for schedule in self.state.schedules.iter().filter(|s| s.enabled) {
            let Some(rate) = schedule.rate else {
                tracing::warn!(schedule = %schedule.expression, "only rate(...) schedules fire locally; use POST /dev/sweep");
                continue;
            };
            let state = self.state.clone();
            let schedule = schedule.clone();
            tokio::spawn(async move {
                // EventBridge fires one period after the rule is created, not at once.
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + rate, rate);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let event = scheduled_event(&schedule.event_id, Utc::now(), &state.config.region);
                    let wait = state.wait_for(&schedule.binary, false);
                    match state.invoker.invoke_within(&schedule.binary, &event, wait).await {
                        Ok(result) => tracing::info!(function = %schedule.binary, result = %String::from_utf8_lossy(&result), "schedule fired"),
                        Err(e) => tracing::error!(function = %schedule.binary, error = %e, "scheduled run failed"),
                    }
                }
            });
        }
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.spawn_schedules();
        axum::serve(listener, self.router().into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

fn invoke_problem(error: &InvokeError) -> Response {
    match error {
        InvokeError::TimedOut(_) => problem(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", Some(error.to_string())),
        InvokeError::Unreachable(..) => {
            problem(StatusCode::SERVICE_UNAVAILABLE, "function_unavailable", Some(error.to_string()))
        }
        // API Gateway answers 500 when the function fails: an error, a crash, running out of
        // memory or past its Timeout (the instance supervisor reports those as Lambda does).
        InvokeError::Failed { .. } | InvokeError::TooLarge => {
            problem(StatusCode::INTERNAL_SERVER_ERROR, "function_error", Some(error.to_string()))
        }
    }
}

/// Beyond this much, an oversized body is not read to its end before answering 413.
const MAX_DRAIN_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a request body of at most `max_body_bytes` within the configured time. An oversized body
/// is still read (and dropped) up to [`MAX_DRAIN_BYTES`], so that a client which writes its whole
/// body before reading sees the 413 rather than a broken connection.
async fn read_body(state: &GatewayState, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", Some(format!("the body must be at most {limit} bytes")))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN_BYTES) {
        return Err(too_large());
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        let mut seen: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                problem(StatusCode::BAD_REQUEST, "bad_request", Some(format!("could not read the body: {e}")))
            })?;
            seen += chunk.len() as u64;
            if seen > MAX_DRAIN_BYTES {
                return Err(too_large());
            }
            if seen <= limit as u64 {
                bytes.extend_from_slice(&chunk);
            }
        }
        if seen > limit as u64 {
            return Err(too_large());
        }
        Ok(Bytes::from(bytes))
    };
    match tokio::time::timeout(state.config.body_read_timeout, read).await {
        Err(_) => Err(problem(StatusCode::REQUEST_TIMEOUT, "request_timeout", None)),
        Ok(result) => result,
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn request_id() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode(bytes)
}

/// Every route of `template.yaml`: authorize, build the payload 2.0 event, invoke, answer.
async fn api(State(state): State<Arc<GatewayState>>, request: Request) -> Response {
    let started = Instant::now();
    let connect = request.extensions().get::<ConnectInfo<SocketAddr>>().cloned();
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let raw_path = parts.uri.path().to_owned();
    let Some(matched) = state.routes.find(&method, &raw_path) else {
        if let Some(root) = &state.config.web_root
            && crate::web::is_site_path(&raw_path)
            && matches!(parts.method, Method::GET | Method::HEAD)
        {
            return crate::web::serve(root, &parts.method, &raw_path, &parts.headers).await;
        }
        return problem(StatusCode::NOT_FOUND, "not_found", Some(format!("no route for {method} {raw_path}")));
    };
    let claims = if matched.route.auth_none {
        None
    } else {
        let now = Utc::now().timestamp();
        let validated = bearer_token(&parts.headers)
            .map(|token| emeterai::auth::local_jwt::validate(&state.config.jwt_secret, token, now));
        match validated {
            Some(Ok(claims)) => Some(apigw::authorizer_claims(&claims)),
            _ => return problem(StatusCode::UNAUTHORIZED, "unauthorized", Some("a valid bearer token is required".into())),
        }
    };
    let body = match read_body(&state, &parts.headers, body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let source_ip = connect.map(|c| c.0.ip().to_string()).unwrap_or_else(|| "127.0.0.1".to_owned());
    let incoming = IncomingRequest {
        method: &method,
        raw_path: &raw_path,
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
        source_ip: &source_ip,
    };
    let id = request_id();
    let event = apigw::build_event(&incoming, &matched, claims, &id, Utc::now());
    let function = matched.route.binary.clone();
    let response = match state.invoker.invoke_within(&function, &event, state.wait_for(&function, true)).await {
        Ok(payload) => match apigw::parse_response(&payload) {
            Ok(r) => {
                let mut response = Response::new(Body::from(r.body));
                *response.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
                for (name, value) in r.headers {
                    // The body is re-framed here; the function's own framing headers would lie.
                    if matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
                        continue;
                    }
                    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                        response.headers_mut().append(name, value);
                    }
                }
                response
            }
            // A malformed proxy response: API Gateway answers 500 as well.
            Err(detail) => problem(StatusCode::INTERNAL_SERVER_ERROR, "function_error", Some(detail)),
        },
        Err(e) => invoke_problem(&e),
    };
    let mut response = response;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("apigw-requestid", v);
    }
    tracing::info!(
        %method, path = %raw_path, %function, status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64, "request"
    );
    response
}

/// Optional JSON body: empty means the defaults.
// The error is the finished answer; handlers return it as is, so boxing would only add noise.
#[allow(clippy::result_large_err)]
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| problem(StatusCode::BAD_REQUEST, "bad_request", Some(e.to_string())))
}

async fn dev_pay(State(state): State<Arc<GatewayState>>, Path(order_id): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let Some(midtrans) = &state.midtrans else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "simulator_off", Some("the Midtrans simulator is not running".into()));
    };
    let body = match read_body(&state, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request: PayRequest = match optional_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match midtrans.pay(&order_id, &request).await {
        Ok(outcome) => axum::Json(outcome).into_response(),
        Err(e @ PayError::UnknownOrder(_)) => problem(StatusCode::NOT_FOUND, "not_found", Some(e.to_string())),
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, "bad_request", Some(e.to_string())),
    }
}

/// `POST /dev/midtrans/faults` `{"fail_percent": 0..=100, "delay_ms": 0..=30000}`: the simulator's
/// API (Snap, status, refund) slow and failing until set back to zeros (the load drill's
/// "payment gateway slow or failing"). Local only, like every /dev route.
async fn dev_midtrans_faults(State(state): State<Arc<GatewayState>>, headers: HeaderMap, body: Body) -> Response {
    let Some(midtrans) = &state.midtrans else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "simulator_off", Some("the Midtrans simulator is not running".into()));
    };
    let body = match read_body(&state, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let outage: Outage = match optional_json(&body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match midtrans.set_outage(outage) {
        Ok(()) => axum::Json(outage).into_response(),
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, "bad_request", Some(e)),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepRequest {
    now: Option<String>,
}

async fn dev_sweep(State(state): State<Arc<GatewayState>>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&state, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request: SweepRequest = match optional_json(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = match request.now.as_deref().map(DateTime::parse_from_rfc3339) {
        None => Utc::now(),
        Some(Ok(t)) => t.with_timezone(&Utc),
        Some(Err(e)) => {
            return problem(StatusCode::BAD_REQUEST, "bad_request", Some(format!("now must be an RFC 3339 time: {e}")));
        }
    };
    if state.schedules.is_empty() {
        return problem(StatusCode::NOT_FOUND, "not_found", Some("template.yaml declares no Schedule event".into()));
    }
    let mut runs = Vec::new();
    for schedule in &state.schedules {
        let event = scheduled_event(&schedule.event_id, now, &state.config.region);
        match state.invoker.invoke_within(&schedule.binary, &event, state.wait_for(&schedule.binary, false)).await {
            Ok(result) => {
                let result = serde_json::from_slice::<Value>(&result)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&result).into_owned()));
                runs.push(json!({"function": schedule.binary, "event": schedule.event_id, "result": result}));
            }
            Err(e) => return invoke_problem(&e),
        }
    }
    axum::Json(json!({"time": now.to_rfc3339(), "runs": runs})).into_response()
}

/// A local bearer token for `sub`, as text (for `TOKEN=$(curl ...)`).
async fn dev_token(State(state): State<Arc<GatewayState>>, RawQuery(query): RawQuery) -> Response {
    let params: HashMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let Some(sub) = params.get("sub").filter(|s| !s.is_empty() && s.len() <= 128).cloned() else {
        return problem(StatusCode::BAD_REQUEST, "bad_request", Some("use /dev/token?sub=ACCOUNT (1 to 128 characters)".into()));
    };
    let ttl = params.get("ttl_seconds").and_then(|t| t.parse::<i64>().ok()).unwrap_or(12 * 3600).clamp(1, 30 * 86_400);
    let token = emeterai::auth::local_jwt::issue(&state.config.jwt_secret, &sub, Utc::now().timestamp(), ttl);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], token).into_response()
}

async fn dev_routes(State(state): State<Arc<GatewayState>>) -> Response {
    let routes: Vec<Value> = state
        .routes
        .routes()
        .map(|r| json!({"method": r.method, "path": r.path, "function": r.binary, "auth": if r.auth_none { "NONE" } else { "JWT" }}))
        .collect();
    let s3: Vec<Value> = state
        .s3_triggers
        .iter()
        .map(|t| json!({"function": t.binary, "bucket": t.bucket_logical_id, "events": t.events, "prefix": t.prefix, "suffix": t.suffix}))
        .collect();
    let schedules: Vec<Value> = state
        .schedules
        .iter()
        .map(|s| json!({"function": s.binary, "schedule": s.expression, "enabled": s.enabled}))
        .collect();
    axum::Json(json!({"http": routes, "s3": s3, "schedules": schedules, "lambda": state.invoker.base_url()})).into_response()
}

/// SeaweedFS filer notifications → S3 events for the functions bound to the bucket. Answers at
/// once (SeaweedFS retries otherwise) and invokes in the background, retrying like Lambda's
/// asynchronous invocation does.
async fn s3_notification(State(state): State<Arc<GatewayState>>, headers: HeaderMap, body: Body) -> Response {
    if let Some(expected) = &state.config.s3_notification_token
        && bearer_token(&headers) != Some(expected.as_str())
    {
        return problem(StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    let body = match read_body(&state, &headers, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(notification) = serde_json::from_slice::<Value>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "bad_request", Some("not JSON".into()));
    };
    let Some(object) = object_created(&notification) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let Some(bucket_id) = state.bucket_ids.get(&object.bucket) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    for trigger in state.s3_triggers.iter().filter(|t| &t.bucket_logical_id == bucket_id) {
        if !trigger.matches("s3:ObjectCreated:Put", &object.key) {
            continue;
        }
        let state = state.clone();
        let trigger = trigger.clone();
        let event = s3_put_event(&object, &trigger.event_id, &state.config.region, Utc::now());
        let key = object.key.clone();
        tokio::spawn(async move {
            for attempt in 0..=state.config.s3_event_retries {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
                match state.invoker.invoke_within(&trigger.binary, &event, state.wait_for(&trigger.binary, false)).await {
                    Ok(_) => {
                        tracing::info!(function = %trigger.binary, %key, "S3 event delivered");
                        return;
                    }
                    Err(e) => tracing::warn!(function = %trigger.binary, %key, attempt, error = %e, "S3 event failed"),
                }
            }
            tracing::error!(function = %trigger.binary, %key, "S3 event dropped after retries");
        });
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_as_long_as_aws_would_for_a_cold_function() {
        let secs = Duration::from_secs;
        // The API functions (Timeout 10): a cold start's init, then the run.
        assert_eq!(longest_wait(Some(secs(10)), true), secs(20));
        // API Gateway never waits past its integration limit, however long the function may run.
        assert_eq!(longest_wait(Some(secs(29)), true), HTTP_API_MAX_WAIT);
        assert_eq!(longest_wait(None, true), HTTP_API_MAX_WAIT);
        // S3 events and schedules invoke the function directly: no API Gateway limit.
        assert_eq!(longest_wait(Some(secs(60)), false), secs(70));
    }
}
