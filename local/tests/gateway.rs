//! The gateway in process, in front of a stand-in Lambda invoke endpoint that records each event
//! and answers like a function would. Checks what API Gateway, S3 and EventBridge would do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use emeterai::auth::local_jwt;
use emeterai_local::gateway::{Gateway, GatewayConfig};
use emeterai_local::lambda::LambdaInvoker;
use emeterai_local::midtrans_sim::MidtransSim;
use emeterai_local::template::Template;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// Records (function, event); `broken` fails with HTTP 500, `garbage` answers non-JSON, others
/// echo the event back as a JSON body.
async fn fake_lambda() -> (String, Seen) {
    async fn invoke(State(seen): State<Seen>, Path(function): Path<String>, body: axum::body::Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.lock().expect("lock").push((function.clone(), event.clone()));
        match function.as_str() {
            "broken" => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, r#"{"errorType":"Panic"}"#).into_response(),
            "garbage" => "not json".into_response(),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(20)).await;
                "{}".into_response()
            }
            _ => axum::Json(json!({
                "statusCode": 200,
                "headers": {"content-type": "application/json", "x-function": function},
                "body": json!({"function": function, "event": event}).to_string(),
            }))
            .into_response(),
        }
    }
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

const TEMPLATE: &str = r#"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties: { Auth: { DefaultAuthorizer: Jwt } }
  Web:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: web } }
    Properties:
      Events:
        Health: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /healthz, Auth: { Authorizer: NONE } } }
        Quota: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /v1/quota } }
        Invoice: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: "/v1/invoices/{invoice_id}" } }
        Checkout: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: POST, Path: /v1/checkouts } }
  Hook:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: hook } }
    Properties:
      Events:
        Notify: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: POST, Path: /v1/webhooks/midtrans, Auth: { Authorizer: NONE } } }
  Broken:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: broken } }
    Properties:
      Events:
        Fail: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /broken, Auth: { Authorizer: NONE } } }
  Garbage:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: garbage } }
    Properties:
      Events:
        Junk: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /garbage, Auth: { Authorizer: NONE } } }
  Slow:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: slow } }
    Properties:
      Timeout: 1
      Events:
        Wait: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /slow, Auth: { Authorizer: NONE } } }
  Stamp:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: stamp } }
    Properties:
      Events:
        Upload:
          Type: S3
          Properties:
            Bucket: !Ref Docs
            Events: s3:ObjectCreated:*
            Filter: { S3Key: { Rules: [{ Name: prefix, Value: incoming/ }, { Name: suffix, Value: .pdf }] } }
  Refund:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: refund } }
    Properties:
      Events:
        Sweep: { Type: Schedule, Properties: { Schedule: rate(5 minutes) } }
  Docs:
    Type: AWS::S3::Bucket
  Ledger:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{ AttributeName: pk, KeyType: HASH }]
      AttributeDefinitions: [{ AttributeName: pk, AttributeType: S }]
"#;

const SECRET: &str = "gateway-test-secret";
const NOTIFY_TOKEN: &str = "notify-token";
const MAX_BODY: usize = 4096;

struct Running {
    url: String,
    seen: Seen,
    sim: Arc<MidtransSim>,
    http: reqwest::Client,
}

impl Running {
    fn events_for(&self, function: &str) -> Vec<Value> {
        self.seen.lock().expect("lock").iter().filter(|(f, _)| f == function).map(|(_, e)| e.clone()).collect()
    }
}

async fn start() -> Running {
    let (lambda_url, seen) = fake_lambda().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}");
    let sim = Arc::new(
        MidtransSim::start("SB-Mid-server-T", Some(format!("{url}/v1/webhooks/midtrans"))).await.expect("sim"),
    );
    let config = GatewayConfig {
        jwt_secret: SECRET.to_owned(),
        max_body_bytes: MAX_BODY,
        body_read_timeout: Duration::from_secs(2),
        bucket_names: HashMap::from([("Docs".to_owned(), "docs-bucket".to_owned())]),
        s3_notification_token: Some(NOTIFY_TOKEN.to_owned()),
        run_schedules: false,
        s3_event_retries: 0,
        ..GatewayConfig::default()
    };
    let template = Template::from_yaml_str(TEMPLATE).expect("template");
    let invoker = LambdaInvoker::new(&lambda_url, Duration::from_secs(5)).expect("invoker");
    let gateway = Gateway::new(&template, invoker, Some(sim.clone()), config).expect("gateway");
    tokio::spawn(gateway.serve(listener, std::future::pending()));
    Running { url, seen, sim, http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http") }
}

fn token(sub: &str) -> String {
    local_jwt::issue(SECRET, sub, chrono::Utc::now().timestamp(), 600)
}

async fn body_json(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let ct = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.expect("text");
    (status, ct, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn routes_auth_and_events() {
    let g = start().await;
    let (status, _, body) = body_json(g.http.get(format!("{}/healthz", g.url)).send().await.expect("healthz")).await;
    assert_eq!(status, 200);
    assert_eq!(body["function"], "web");
    assert_eq!(body["event"]["routeKey"], "GET /healthz");
    assert!(body["event"]["requestContext"].get("authorizer").is_none());

    let (status, ct, body) = body_json(g.http.get(format!("{}/v1/quota", g.url)).send().await.expect("q")).await;
    assert_eq!((status, ct.as_str()), (401, "application/problem+json"));
    assert_eq!(body, json!({"type": "about:blank", "title": "Unauthorized", "status": 401, "code": "unauthorized", "detail": "a valid bearer token is required"}));
    let wrong_secret = local_jwt::issue("other", "alice", chrono::Utc::now().timestamp(), 600);
    let r = g.http.get(format!("{}/v1/quota", g.url)).bearer_auth(wrong_secret).send().await.expect("q");
    assert_eq!(r.status(), 401);

    let (status, _, body) = body_json(
        g.http.get(format!("{}/v1/invoices/inv%201?x=1", g.url)).bearer_auth(token("alice")).send().await.expect("inv"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event = &body["event"];
    assert_eq!(event["pathParameters"]["invoice_id"], "inv 1");
    assert_eq!(event["rawPath"], "/v1/invoices/inv%201");
    assert_eq!(event["queryStringParameters"]["x"], "1");
    assert_eq!(event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"], "alice");
    assert!(event["requestContext"]["authorizer"]["jwt"]["claims"]["exp"].is_string(), "claims are strings, as AWS sends them");

    let (status, ct, body) = body_json(g.http.get(format!("{}/v1/nope", g.url)).send().await.expect("404")).await;
    assert_eq!((status, ct.as_str(), body["code"].as_str()), (404, "application/problem+json", Some("not_found")));
    // A known path with another method is no route either (API Gateway answers 404 too).
    let r = g.http.delete(format!("{}/v1/quota", g.url)).bearer_auth(token("alice")).send().await.expect("405");
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn oversized_malformed_and_failing_requests_are_answered() {
    let g = start().await;
    let (status, ct, body) = body_json(
        g.http
            .post(format!("{}/v1/checkouts", g.url))
            .bearer_auth(token("alice"))
            .body(vec![b'x'; MAX_BODY + 1])
            .send()
            .await
            .expect("413"),
    )
    .await;
    assert_eq!((status, ct.as_str(), body["code"].as_str()), (413, "application/problem+json", Some("payload_too_large")));
    let ok = g.http.post(format!("{}/v1/checkouts", g.url)).bearer_auth(token("a")).body(vec![b' '; MAX_BODY]).send().await;
    assert_eq!(ok.expect("at the limit").status(), 200);

    let (status, _, body) = body_json(g.http.get(format!("{}/broken", g.url)).send().await.expect("broken")).await;
    assert_eq!((status, body["code"].as_str()), (500, Some("function_error")), "{body}");
    let (status, _, body) = body_json(g.http.get(format!("{}/garbage", g.url)).send().await.expect("garbage")).await;
    assert_eq!((status, body["code"].as_str()), (500, Some("function_error")), "{body}");

    // A function that outlives its template Timeout (1 s, plus Lambda's 10 s for a cold start's
    // init, as AWS allows) is answered for, and not before.
    let started = std::time::Instant::now();
    let (status, _, body) = body_json(g.http.get(format!("{}/slow", g.url)).timeout(Duration::from_secs(25)).send().await.expect("slow")).await;
    assert_eq!((status, body["code"].as_str()), (504, Some("gateway_timeout")), "{body}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(11) && waited < Duration::from_secs(16), "waited {waited:?}");

    // Raw garbage on the socket gets an answer (or a close), and the gateway keeps serving.
    for junk in [&b"\x00\x01\x02 garbage\r\n\r\n"[..], b"GET /healthz HTTP/9.9\r\n\r\n", b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"] {
        let mut socket = tokio::net::TcpStream::connect(g.url.trim_start_matches("http://")).await.expect("connect");
        socket.write_all(junk).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut answer)).await;
    }
    // A client that sends headers and then nothing is cut off after the body timeout.
    let mut slow = tokio::net::TcpStream::connect(g.url.trim_start_matches("http://")).await.expect("connect");
    slow.write_all(b"POST /v1/webhooks/midtrans HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc").await.expect("w");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the slow client was not cut off");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));

    let health = g.http.get(format!("{}/healthz", g.url)).send().await.expect("still up");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn dev_pay_delivers_signed_notifications_through_the_webhook_route() {
    let g = start().await;
    let basic = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "SB-Mid-server-T:"));
    let created = g
        .http
        .post(format!("{}/snap/v1/transactions", g.sim.base_url()))
        .header("authorization", basic)
        .json(&json!({"transaction_details": {"order_id": "EMT-1", "gross_amount": 20000}}))
        .send()
        .await
        .expect("snap");
    assert_eq!(created.status(), 201);

    let (status, _, outcome) = body_json(
        g.http.post(format!("{}/dev/pay/EMT-1", g.url)).body(r#"{"deliveries": 2}"#).send().await.expect("pay"),
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    let hooks = g.events_for("hook");
    assert_eq!(hooks.len(), 2);
    let body: Value = serde_json::from_str(hooks[0]["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["order_id"], "EMT-1");
    assert_eq!(
        body["signature_key"],
        emeterai::midtrans::signature::signature_key("EMT-1", "200", "20000.00", "SB-Mid-server-T")
    );
    assert!(hooks[0]["requestContext"].get("authorizer").is_none(), "the webhook route has no authorizer");

    let (status, ct, _) = body_json(g.http.get(format!("{}/dev/pay/EMT-1", g.url)).send().await.expect("get")).await;
    assert_eq!((status, ct.as_str()), (405, "application/problem+json"));
    let r = g.http.post(format!("{}/dev/pay/EMT-404", g.url)).send().await.expect("unknown");
    assert_eq!(r.status(), 404);
    let r = g.http.post(format!("{}/dev/pay/EMT-1", g.url)).body("{nope").send().await.expect("bad json");
    assert_eq!(r.status(), 400);
    let r = g.http.post(format!("{}/dev/pay/EMT-1", g.url)).body(r#"{"transaction_status":"paid"}"#).send().await.expect("bad");
    assert_eq!(r.status(), 422);
}

#[tokio::test]
async fn sweep_and_s3_notifications_reach_their_functions() {
    let g = start().await;
    let (status, _, body) = body_json(
        g.http.post(format!("{}/dev/sweep", g.url)).body(r#"{"now": "2030-01-02T03:04:05Z"}"#).send().await.expect("sweep"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sweeps = g.events_for("refund");
    assert_eq!(sweeps[0]["time"], "2030-01-02T03:04:05Z");
    assert_eq!(sweeps[0]["detail-type"], "Scheduled Event");

    let notification = |key: &str, name: &str, parent: &str| {
        json!({"event_type": "create", "key": key, "message": {"new_entry": {"name": name,
            "attributes": {"file_size": 9, "mtime": 1795869324, "md5": "EPP/MebuH2b94s28vtDTeQ=="}},
            "new_parent_path": parent}})
    };
    let send = |body: Value, token: Option<&'static str>| {
        let mut r = g.http.post(format!("{}/dev/s3-notifications", g.url)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let upload = notification("/buckets/docs-bucket/incoming/acc/a b.pdf", "a b.pdf", "/buckets/docs-bucket/incoming/acc");
    assert_eq!(send(upload.clone(), None).await.expect("send").status(), 401, "the token is required");
    assert_eq!(send(upload, Some(NOTIFY_TOKEN)).await.expect("send").status(), 204);
    for ignored in [
        notification("/buckets/docs-bucket/stamped/acc/a.pdf", "a.pdf", "/buckets/docs-bucket/stamped/acc"),
        notification("/buckets/docs-bucket/incoming/acc/a.txt", "a.txt", "/buckets/docs-bucket/incoming/acc"),
        notification("/buckets/other/incoming/acc/a.pdf", "a.pdf", "/buckets/other/incoming/acc"),
    ] {
        assert_eq!(send(ignored, Some(NOTIFY_TOKEN)).await.expect("send").status(), 204);
    }
    let bad = g.http.post(format!("{}/dev/s3-notifications", g.url)).bearer_auth(NOTIFY_TOKEN).body("{").send().await;
    assert_eq!(bad.expect("send").status(), 400);

    // Delivery is asynchronous, as S3's is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while g.events_for("stamp").is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stamps = g.events_for("stamp");
    assert_eq!(stamps.len(), 1, "only the incoming/*.pdf object of the template's bucket: {stamps:?}");
    let record = &stamps[0]["Records"][0];
    assert_eq!(record["eventName"], "ObjectCreated:Put");
    assert_eq!(record["s3"]["bucket"]["name"], "docs-bucket");
    assert_eq!(record["s3"]["object"]["key"], "incoming/acc/a+b.pdf");
    assert_eq!(record["s3"]["object"]["size"], 9);
}
