//! What the local gateway adds to a request: route matching, token check, the payload 2.0 event,
//! the extra HTTP hop and the response mapping. Measures the same function call made directly on
//! a stand-in Lambda invoke endpoint and through the gateway, sequentially on one connection each.
//!
//!     cargo bench -p emeterai-local --bench gateway_overhead
//!
//! Numbers are kept in local/BENCHMARKS.md; nothing here asserts a time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use emeterai::auth::local_jwt;
use emeterai_local::gateway::{Gateway, GatewayConfig};
use emeterai_local::lambda::LambdaInvoker;
use emeterai_local::template::Template;
use serde_json::json;

const REQUESTS: usize = 2_000;
const WARMUP: usize = 200;
const SECRET: &str = "bench-secret";

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await });
    addr
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

async fn measure(label: &str, mut send: impl AsyncFnMut() -> u16) -> f64 {
    for _ in 0..WARMUP {
        assert_eq!(send().await, 200);
    }
    let mut times = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        assert_eq!(send().await, 200);
        times.push(started.elapsed());
    }
    times.sort();
    let (p50, p90, p99) = (percentile(&times, 0.5), percentile(&times, 0.9), percentile(&times, 0.99));
    println!("{label:44} p50 {p50:7.0} µs   p90 {p90:7.0} µs   p99 {p99:7.0} µs");
    p50
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The stand-in function answers a fixed small JSON body, as /v1/quota would.
    let function = Router::new().route(
        "/2015-03-31/functions/{name}/invocations",
        post(|| async {
            axum::Json(json!({"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": "{\"available\":3,\"pending\":0}"}))
        }),
    );
    let lambda = serve(function).await;
    let template = Template::from_yaml_str(
        r#"
Resources:
  Api: { Type: AWS::Serverless::HttpApi, Properties: { Auth: { DefaultAuthorizer: Jwt } } }
  Web:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: web } }
    Properties:
      Events:
        Quota: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: /v1/quota } }
        Invoice: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: "/v1/invoices/{invoice_id}" } }
  Ledger:
    Type: AWS::DynamoDB::Table
    Properties: { KeySchema: [{ AttributeName: pk, KeyType: HASH }], AttributeDefinitions: [{ AttributeName: pk, AttributeType: S }] }
"#,
    )
    .expect("template");
    let invoker = LambdaInvoker::new(&format!("http://{lambda}"), Duration::from_secs(10)).expect("invoker");
    let config = GatewayConfig { jwt_secret: SECRET.to_owned(), run_schedules: false, ..GatewayConfig::default() };
    let gateway = Gateway::new(&template, invoker, None, config).expect("gateway");
    let gateway = serve(gateway.router()).await;

    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    let token = local_jwt::issue(SECRET, "bench", chrono::Utc::now().timestamp(), 3600);
    let event = json!({"version": "2.0", "rawPath": "/v1/quota", "requestContext": {"http": {"method": "GET"}}});
    let invoke_url = format!("http://{lambda}/2015-03-31/functions/web/invocations");

    println!("{REQUESTS} sequential requests after {WARMUP} warm-up, one keep-alive connection each");
    let direct = measure("direct invoke (no gateway)", async || {
        http.post(&invoke_url).json(&event).send().await.expect("invoke").status().as_u16()
    })
    .await;
    let via = measure("GET /v1/quota through the gateway (JWT)", async || {
        http.get(format!("http://{gateway}/v1/quota")).bearer_auth(&token).send().await.expect("gateway").status().as_u16()
    })
    .await;
    let with_params = measure("GET /v1/invoices/{id}?q through the gateway", async || {
        http.get(format!("http://{gateway}/v1/invoices/inv_01ABC?cursor=x"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("gateway")
            .status()
            .as_u16()
    })
    .await;
    println!("gateway overhead at p50: {:.0} µs (quota), {:.0} µs (path and query parameters)", via - direct, with_params - direct);
}
