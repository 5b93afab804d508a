//! End to end through the local stack (`scripts/with-local-stack.sh`, part of `make test`): the
//! gateway derived from template.yaml, the real function binaries under the Lambda emulator,
//! DynamoDB Local, SeaweedFS and the Midtrans simulator, exercised only through HTTP as a client
//! would. Ignored in the plain `cargo test` run, which has no stack; `make test` runs them with
//! `--include-ignored` once the stack is up.

use std::time::Duration;

use emeterai::auth::local_jwt;
use emeterai::midtrans::signature::signature_key;
use emeterai_local::testing::unique_name;
use serde_json::{Value, json};

fn api() -> String {
    std::env::var("EMETERAI_API_URL")
        .expect("EMETERAI_API_URL is not set: run through `make test` or scripts/with-local-stack.sh")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client")
}

fn token(sub: &str) -> String {
    let secret = std::env::var("EMETERAI_LOCAL_JWT_SECRET").unwrap_or_else(|_| local_jwt::DEFAULT_SECRET.to_owned());
    local_jwt::issue(&secret, sub, chrono::Utc::now().timestamp(), 3600)
}

async fn json_of(response: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = response.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, value)
}

async fn quota(client: &reqwest::Client, token: &str) -> Value {
    let (status, _, body) = json_of(
        client.get(format!("{}/v1/quota", api())).bearer_auth(token).send().await.expect("quota"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn assert_problem(status: u16, content_type: Option<&str>, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(content_type, Some("application/problem+json"), "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
}

#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn gateway_answers_like_api_gateway() {
    let client = http();
    let health = client.get(format!("{}/healthz", api())).send().await.expect("healthz");
    assert_eq!(health.status(), 200);

    for bad in [None, Some("Bearer nope"), Some("Basic abc"), Some("Bearer a.b.c")] {
        let mut request = client.get(format!("{}/v1/quota", api()));
        if let Some(value) = bad {
            request = request.header("authorization", value);
        }
        let (status, ct, body) = json_of(request.send().await.expect("quota")).await;
        assert_problem(status, ct.as_deref(), &body, 401, "unauthorized");
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Unauthorized");
    }
    let expired = local_jwt::issue(local_jwt::DEFAULT_SECRET, "alice", 1_000, 60);
    let (status, ct, body) =
        json_of(client.get(format!("{}/v1/quota", api())).bearer_auth(expired).send().await.expect("q")).await;
    assert_problem(status, ct.as_deref(), &body, 401, "unauthorized");

    let (status, ct, body) = json_of(client.get(format!("{}/v1/nowhere", api())).send().await.expect("404")).await;
    assert_problem(status, ct.as_deref(), &body, 404, "not_found");
    let (status, ct, body) =
        json_of(client.delete(format!("{}/v1/quota", api())).send().await.expect("method")).await;
    assert_problem(status, ct.as_deref(), &body, 404, "not_found");

    let huge = vec![b' '; 7 * 1024 * 1024];
    let response = client
        .post(format!("{}/v1/checkouts", api()))
        .bearer_auth(token("big"))
        .header("idempotency-key", "big")
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("413");
    let (status, ct, body) = json_of(response).await;
    assert_problem(status, ct.as_deref(), &body, 413, "payload_too_large");

    // A forged notification reaches the webhook function and is refused there.
    let forged = json!({"order_id": "EMT-nope", "status_code": "200", "gross_amount": "10000.00",
        "transaction_status": "settlement", "signature_key": "00", "transaction_id": "t", "fraud_status": "accept"});
    let (status, _, body) = json_of(
        client.post(format!("{}/v1/webhooks/midtrans", api())).json(&forged).send().await.expect("webhook"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("bad_signature")), "{body}");

    let (status, ct, body) =
        json_of(client.post(format!("{}/dev/pay/EMT-unknown", api())).send().await.expect("pay")).await;
    assert_problem(status, ct.as_deref(), &body, 404, "not_found");
}

#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn checkout_pay_and_duplicate_notifications_credit_once() {
    let client = http();
    let account = unique_name("e2e");
    let token = token(&account);
    let key = unique_name("key");

    let checkout = || {
        client
            .post(format!("{}/v1/checkouts", api()))
            .bearer_auth(&token)
            .header("idempotency-key", &key)
            .json(&json!({"quantity": 3}))
            .send()
    };
    let first = checkout().await.expect("checkout");
    let (status, _, invoice) = json_of(first).await;
    assert_eq!(status, 201, "{invoice}");
    assert_eq!(invoice["status"], "PENDING");
    assert_eq!(invoice["quantity"], 3);
    assert_eq!(invoice["amount"], 30000);
    assert_eq!(invoice["payment"]["gateway"], "midtrans", "the simulator was reachable: {invoice}");
    let order_id = invoice["order_id"].as_str().expect("order_id").to_owned();
    let invoice_id = invoice["invoice_id"].as_str().expect("invoice_id").to_owned();

    let replay = checkout().await.expect("replay");
    assert_eq!(replay.headers().get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    let (status, _, replayed) = json_of(replay).await;
    assert_eq!((status, &replayed), (201, &invoice));

    assert_eq!(quota(&client, &token).await, json!({"available": 0, "pending": 3}));

    // Midtrans delivers the settlement three times; the quota is credited once.
    let (status, _, paid) = json_of(
        client
            .post(format!("{}/dev/pay/{order_id}", api()))
            .json(&json!({"transaction_status": "settlement", "deliveries": 3}))
            .send()
            .await
            .expect("pay"),
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    let deliveries = paid["deliveries"].as_array().expect("deliveries");
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.iter().all(|d| d["status"] == 200), "{paid}");
    let n = &paid["notification"];
    assert_eq!(n["gross_amount"], "30000.00");
    assert_eq!(
        n["signature_key"],
        signature_key(&order_id, "200", "30000.00", "SB-Mid-server-LOCAL"),
        "the simulator signs with the local server key"
    );
    assert_eq!(quota(&client, &token).await, json!({"available": 3, "pending": 0}));

    // Late duplicates change nothing.
    let again = client
        .post(format!("{}/dev/pay/{order_id}", api()))
        .json(&json!({"deliveries": 2}))
        .send()
        .await
        .expect("pay again");
    assert_eq!(again.status(), 200);
    assert_eq!(quota(&client, &token).await, json!({"available": 3, "pending": 0}));

    let (status, _, fetched) = json_of(
        client.get(format!("{}/v1/invoices/{invoice_id}", api())).bearer_auth(&token).send().await.expect("get"),
    )
    .await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["status"], "PAID");
    assert_eq!((fetched["used"].as_u64(), fetched["remaining"].as_u64(), fetched["refunded"].as_u64()), (Some(0), Some(3), Some(0)));

    // Another account cannot see it.
    let (status, ct, body) = json_of(
        client
            .get(format!("{}/v1/invoices/{invoice_id}", api()))
            .bearer_auth(self::token(&unique_name("other")))
            .send()
            .await
            .expect("other"),
    )
    .await;
    assert_problem(status, ct.as_deref(), &body, 404, "not_found");
}
