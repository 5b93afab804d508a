//! End to end through the local stack (`scripts/with-local-stack.sh`, part of `make test`): the
//! gateway derived from template.yaml, the real function binaries under the Lambda emulator,
//! DynamoDB Local, SeaweedFS and the Midtrans simulator, exercised only through HTTP as a client
//! would. Ignored in the plain `cargo test` run, which has no stack; `make test` runs them with
//! `--include-ignored` once the stack is up.

use std::path::Path;
use std::time::Duration;

use emeterai::auth::local_jwt;
use emeterai::midtrans::signature::signature_key;
use emeterai_local::instance::InstanceLimits;
use emeterai_local::testing::unique_name;
use serde_json::{Value, json};

/// Tests that kill or stop function instances take this alone; every other test shares it, so a
/// fault never lands on another test's request.
static STACK: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

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
    // The contract's Problem requires `detail`, the gateway's own answers included.
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
}

#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn gateway_answers_like_api_gateway() {
    let _shared = STACK.read().await;
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
    // A method the path does not take reaches the API function through template.yaml's catch-all
    // routes, as on AWS, and is 405 with `Allow` (RFC 9110), with or without a token.
    for (method, path, allow) in [("DELETE", "/v1/quota", "GET"), ("GET", "/v1/webhooks/midtrans", "POST"), ("PUT", "/healthz", "GET")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = client.request(method.clone(), format!("{}{path}", api())).send().await.expect("method");
        assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
        let (status, ct, body) = json_of(response).await;
        assert_problem(status, ct.as_deref(), &body, 405, "method_not_allowed");
    }

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
    let _shared = STACK.read().await;
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

    let q = quota(&client, &token).await;
    assert_eq!((q["available"].as_u64(), q["pending"].as_u64()), (Some(0), Some(3)), "{q}");

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
    let q = quota(&client, &token).await;
    assert_eq!((q["available"].as_u64(), q["pending"].as_u64()), (Some(3), Some(0)), "{q}");

    // Late duplicates, four senders at once, change nothing.
    let late = (0..4).map(|_| {
        client.post(format!("{}/dev/pay/{order_id}", api())).json(&json!({"deliveries": 2})).send()
    });
    for answer in futures::future::join_all(late).await {
        let (status, _, outcome) = json_of(answer.expect("pay again")).await;
        assert_eq!(status, 200, "{outcome}");
        assert!(outcome["deliveries"].as_array().expect("deliveries").iter().all(|d| d["status"] == 200), "{outcome}");
    }
    let q = quota(&client, &token).await;
    assert_eq!((q["available"].as_u64(), q["pending"].as_u64()), (Some(3), Some(0)), "{q}");

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

/// A one-page A4 PDF with a line on it, written out by hand (objects, xref, trailer).
fn a4_pdf() -> Vec<u8> {
    let content = "0.5 w 72 720 m 300 720 l S";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.28 841.89] /Contents 4 0 R /Resources << >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    // 1.7 already: the stamp rewrites lower header versions, and this test checks the original bytes stay.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    pdf
}

async fn buy_and_pay(client: &reqwest::Client, token: &str, quantity: u32) {
    let (status, _, invoice) = json_of(
        client
            .post(format!("{}/v1/checkouts", api()))
            .bearer_auth(token)
            .header("idempotency-key", unique_name("buy"))
            .json(&json!({"quantity": quantity}))
            .send()
            .await
            .expect("checkout"),
    )
    .await;
    assert_eq!(status, 201, "{invoice}");
    let order_id = invoice["order_id"].as_str().expect("order_id");
    let paid = client.post(format!("{}/dev/pay/{order_id}", api())).send().await.expect("pay");
    assert_eq!(paid.status(), 200);
}

#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn upload_triggers_the_stamp_function_through_s3_events() {
    let _shared = STACK.read().await;
    let client = http();
    let token = token(&unique_name("stamp"));
    buy_and_pay(&client, &token, 1).await;
    assert_eq!(quota(&client, &token).await["available"], 1);

    let (status, _, document) = json_of(
        client
            .post(format!("{}/v1/documents", api()))
            .bearer_auth(&token)
            .json(&json!({"file_name": "surat pernyataan.pdf", "placement": {"page": 1, "x_mm": 120, "y_mm": 220}}))
            .send()
            .await
            .expect("create document"),
    )
    .await;
    assert_eq!(status, 201, "{document}");
    assert_eq!(document["status"], "AWAITING_UPLOAD");
    let document_id = document["document_id"].as_str().expect("document_id").to_owned();
    let upload = &document["upload"];
    assert_eq!(upload["method"], "PUT", "{document}");
    let mut put = client.put(upload["url"].as_str().expect("url"));
    for (name, value) in upload["headers"].as_object().into_iter().flatten() {
        put = put.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    let original = a4_pdf();
    let uploaded = put.body(original.clone()).send().await.expect("upload");
    assert!(uploaded.status().is_success(), "upload answered {}", uploaded.status());

    // SeaweedFS notifies the gateway, which delivers the S3 event to the stamp function.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let stamped = loop {
        let (status, _, doc) = json_of(
            client.get(format!("{}/v1/documents/{document_id}", api())).bearer_auth(&token).send().await.expect("get"),
        )
        .await;
        assert_eq!(status, 200, "{doc}");
        if doc["status"] == "STAMPED" || doc["status"] == "REJECTED" {
            break doc;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {} after 120 s", doc["status"]);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(stamped["status"], "STAMPED", "{stamped}");
    let serial = stamped["serial"].as_str().expect("serial").to_owned();
    assert_eq!(serial.len(), 22);
    let download = client.get(stamped["download_url"].as_str().expect("download_url")).send().await.expect("download");
    assert_eq!(download.status(), 200);
    let bytes = download.bytes().await.expect("bytes");
    assert!(bytes.starts_with(&original), "an incremental update keeps the original bytes");
    assert_eq!(stamped["sha256"].as_str(), Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)).as_str()));
    assert_eq!(quota(&client, &token).await["available"], 0, "one unit consumed");

    let (status, _, verified) =
        json_of(client.get(format!("{}/v1/verify/{serial}", api())).send().await.expect("verify serial")).await;
    assert_eq!((status, verified["status"].as_str()), (200, Some("STAMPED")), "{verified}");
    let (status, _, report) = json_of(
        client
            .post(format!("{}/v1/verify", api()))
            .header("content-type", "application/pdf")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("verify file"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["stamps"][0]["serial"], serial.as_str(), "{report}");
    assert_eq!(report["stamps"][0]["signature_valid"], true, "{report}");
    assert_eq!(report["stamps"][0]["registered"], true, "{report}");
    assert_eq!(report["stamps"][0]["unmodified_since_stamp"], true, "{report}");

    // Tampering is seen: bytes added after the stamp, or a byte changed under the signature.
    let verify = |pdf: Vec<u8>| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{}/v1/verify", api()))
                .header("content-type", "application/pdf")
                .body(pdf)
                .send()
                .await
                .expect("verify tampered");
            json_of(response).await
        }
    };
    let mut appended = bytes.to_vec();
    appended.extend_from_slice(b"\n% edited after stamping\n");
    let (status, _, report) = verify(appended).await;
    assert_eq!((status, &report["stamps"][0]["unmodified_since_stamp"]), (200, &json!(false)), "{report}");
    let mut changed = bytes.to_vec();
    let at = changed.windows(7).position(|w| w == b"0.5 w 7").expect("the original drawing");
    changed[at] = b'9';
    let (status, _, report) = verify(changed).await;
    assert_eq!((status, &report["stamps"][0]["signature_valid"]), (200, &json!(false)), "{report}");
}

/// `POST /dev/sweep` at `now` (whole seconds); checks the function reports that very time.
async fn sweep_at(client: &reqwest::Client, now: chrono::DateTime<chrono::Utc>) -> Value {
    let sent = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, _, body) =
        json_of(client.post(format!("{}/dev/sweep", api())).json(&json!({"now": sent})).send().await.expect("sweep")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"][0]["function"], "refund", "{body}");
    let reported = body["runs"][0]["result"]["now"].as_str().map(chrono::DateTime::parse_from_rfc3339);
    let sent = chrono::DateTime::parse_from_rfc3339(&sent).expect("time");
    assert_eq!(reported, Some(Ok(sent)), "the function's report names the event's time: {body}");
    body
}

async fn invoice_status(client: &reqwest::Client, token: &str, invoice_id: &str) -> String {
    let (status, _, invoice) = json_of(
        client.get(format!("{}/v1/invoices/{invoice_id}", api())).bearer_auth(token).send().await.expect("invoice"),
    )
    .await;
    assert_eq!(status, 200, "{invoice}");
    invoice["status"].as_str().expect("status").to_owned()
}

#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn dev_sweep_runs_the_scheduled_function_with_the_given_time() {
    let _shared = STACK.read().await;
    let client = http();
    let token = token(&unique_name("sweep"));
    // A payment the gateway took whose notification never came: the sweep reconciles it once
    // the invoice is EMETERAI_RECONCILE_AFTER_MINUTES (10 by default) old, judged by the time in
    // its event. Other tests' invoices are younger than that at the early time, and reconciling
    // them later only confirms what the gateway says.
    let (status, _, invoice) = json_of(
        client
            .post(format!("{}/v1/checkouts", api()))
            .bearer_auth(&token)
            .header("idempotency-key", unique_name("buy"))
            .json(&json!({"quantity": 2}))
            .send()
            .await
            .expect("checkout"),
    )
    .await;
    assert_eq!(status, 201, "{invoice}");
    let invoice_id = invoice["invoice_id"].as_str().expect("invoice_id");
    let order_id = invoice["order_id"].as_str().expect("order_id");
    let created_at: chrono::DateTime<chrono::Utc> =
        invoice["created_at"].as_str().expect("created_at").parse().expect("RFC 3339 created_at");
    let (status, _, paid) = json_of(
        client.post(format!("{}/dev/pay/{order_id}", api())).json(&json!({"deliveries": 0})).send().await.expect("pay"),
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(invoice_status(&client, &token, invoice_id).await, "PENDING", "the notification was lost");

    // One minute after checkout: not due yet, whatever the wall clock says.
    let early = created_at + chrono::Duration::minutes(1);
    let body = sweep_at(&client, early).await;
    assert_eq!(invoice_status(&client, &token, invoice_id).await, "PENDING", "swept before it was due: {body}");
    let q = quota(&client, &token).await;
    assert_eq!((q["available"].as_u64(), q["pending"].as_u64()), (Some(0), Some(2)), "{q}");

    // Eleven minutes after checkout (minutes ahead of the wall clock): due, so reconciled.
    let later = created_at + chrono::Duration::minutes(11);
    let body = sweep_at(&client, later).await;
    assert_eq!(invoice_status(&client, &token, invoice_id).await, "PAID", "not reconciled at the event's time: {body}");
    let q = quota(&client, &token).await;
    assert_eq!((q["available"].as_u64(), q["pending"].as_u64()), (Some(2), Some(0)), "{q}");

    let (status, ct, body) = json_of(
        client.post(format!("{}/dev/sweep", api())).json(&json!({"now": "yesterday"})).send().await.expect("bad"),
    )
    .await;
    assert_problem(status, ct.as_deref(), &body, 400, "bad_request");
}

// ---- Lambda's limits on each instance (local/src/instance.rs) ----------------------------------

/// The running instances of `function` in this stack: the processes below `cargo lambda watch`
/// or scripts/function-instances.sh (their PID files in EMETERAI_STACK_DIR) whose executable is
/// the function's binary.
fn instances_of(function: &str) -> Vec<u32> {
    let dir = std::env::var("EMETERAI_STACK_DIR").expect("EMETERAI_STACK_DIR (set by scripts/with-local-stack.sh)");
    let roots: Vec<u32> = ["lambda.pid", "instances.pid"]
        .iter()
        .filter_map(|file| std::fs::read_to_string(format!("{dir}/{file}")).ok()?.trim().parse().ok())
        .collect();
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The parent PID is the second field after the command, which is in parentheses.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        parents.push((pid, ppid.unwrap_or(0)));
    }
    let mut below = roots;
    let mut i = 0;
    while i < below.len() {
        let parent = below[i];
        below.extend(parents.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    below
        .into_iter()
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.file_name().is_some_and(|n| n == function)))
        .collect()
}

/// The soft limit `name` (a row of /proc/PID/limits, such as "Max data size") of a process.
fn limit_of(pid: u32, name: &str) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits.lines().find(|l| l.starts_with(name))?.trim_start_matches(name).split_whitespace().next()?.parse().ok()
}

fn signal(pids: &[u32], signal: &str) {
    for pid in pids {
        let _ = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    }
}

/// The checkout function's template limits, read as its instances' supervisor reads them.
fn checkout_limits() -> InstanceLimits {
    InstanceLimits::of(&emeterai_tests::template(), Path::new("checkout")).expect("checkout in template.yaml")
}

#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn an_instance_out_of_memory_dies_and_the_gateway_answers_500_like_api_gateway() {
    let _alone = STACK.write().await;
    let client = http();
    assert_eq!(client.get(format!("{}/healthz", api())).send().await.expect("healthz").status(), 200);
    let instances = instances_of("checkout");
    assert!(!instances.is_empty(), "no checkout instance found below cargo lambda watch");
    // MemorySize in bytes, computed here rather than by the supervisor under test.
    let memory_size = checkout_limits().memory_size_mb * 1024 * 1024;
    for pid in &instances {
        assert_eq!(limit_of(*pid, "Max data size"), Some(memory_size), "instance {pid} runs under MemorySize");
    }

    // Shrink every instance's memory to what it holds now: the next request that needs more (a
    // 700 KB body to verify) is the input that would kill a Lambda with that little memory.
    for pid in &instances {
        let status = std::process::Command::new("prlimit").arg(format!("--pid={pid}")).arg("--data=8000000").status();
        assert!(status.is_ok_and(|s| s.success()), "prlimit --pid {pid}");
    }
    let not_a_pdf = vec![b'x'; 700_000];
    let mut failures = Vec::new();
    for _ in 0..6 {
        let response = client
            .post(format!("{}/v1/verify", api()))
            .header("content-type", "application/pdf")
            .body(not_a_pdf.clone())
            .send()
            .await
            .expect("verify");
        let (status, ct, body) = json_of(response).await;
        if status == 422 && instances.iter().all(|pid| !instances_of("checkout").contains(pid)) {
            break;
        }
        assert_problem(status, ct.as_deref(), &body, 500, "function_error");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("Runtime exited")), "{body}");
        failures.push(body);
    }
    assert!(!failures.is_empty(), "no instance died");
    // Each died once and was replaced by a new instance under the template's limit.
    let replaced = instances_of("checkout");
    assert!(!replaced.is_empty() && replaced.iter().all(|pid| !instances.contains(pid)), "{instances:?} -> {replaced:?}");
    for pid in &replaced {
        assert_eq!(limit_of(*pid, "Max data size"), Some(memory_size));
    }
    let (status, _, body) = json_of(
        client.post(format!("{}/v1/verify", api())).header("content-type", "application/pdf").body(not_a_pdf).send().await.expect("v"),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("not_pdf")), "{body}");
}

#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn an_invocation_past_its_timeout_is_killed_and_answered_500_like_api_gateway() {
    let _alone = STACK.write().await;
    let client = http();
    assert_eq!(client.get(format!("{}/healthz", api())).send().await.expect("healthz").status(), 200);
    let timeout = checkout_limits().timeout;
    // Stopped instances never answer: the invocation outlives the function's Timeout.
    let instances = instances_of("checkout");
    signal(&instances, "STOP");
    let started = std::time::Instant::now();
    let response = client.get(format!("{}/healthz", api())).send().await;
    let waited = started.elapsed();
    signal(&instances, "CONT");
    let (status, ct, body) = json_of(response.expect("healthz")).await;
    assert_problem(status, ct.as_deref(), &body, 500, "function_error");
    let said = format!("Task timed out after {}.00 seconds", timeout.as_secs());
    assert!(body["detail"].as_str().is_some_and(|d| d.contains(&said)), "{body}");
    assert!(waited >= timeout && waited < timeout + Duration::from_secs(4), "answered after {waited:?}");
    // The timed-out instance was killed and replaced; the function answers again.
    let now = instances_of("checkout");
    assert!(instances.iter().any(|pid| !now.contains(pid)), "no instance was killed: {instances:?} -> {now:?}");
    assert_eq!(client.get(format!("{}/healthz", api())).send().await.expect("healthz").status(), 200);
}

/// `KEY=VALUE` of the stack's functions' environment (run-local.sh writes it), such as EMETERAI_TABLE.
fn function_env(name: &str) -> String {
    let dir = std::env::var("EMETERAI_STACK_DIR").expect("EMETERAI_STACK_DIR (set by scripts/with-local-stack.sh)");
    let env = std::fs::read_to_string(format!("{dir}/functions.env")).expect("functions.env");
    env.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
        .unwrap_or_else(|| panic!("{name} is not in functions.env"))
}

/// Waits until a function instance's log (run-local.sh keeps them in EMETERAI_STACK_DIR) has a
/// line holding every one of `words`.
async fn wait_for_function_log(words: &[&str]) {
    let dir = std::env::var("EMETERAI_STACK_DIR").expect("EMETERAI_STACK_DIR");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let logged = ["instances.log", "lambda.log"].iter().any(|file| {
            std::fs::read_to_string(format!("{dir}/{file}"))
                .is_ok_and(|log| log.lines().any(|line| words.iter().all(|w| line.contains(w))))
        });
        if logged {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no function logged a line with {words:?} within 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn document_of(client: &reqwest::Client, token: &str, document_id: &str) -> Value {
    let (status, _, doc) =
        json_of(client.get(format!("{}/v1/documents/{document_id}", api())).bearer_auth(token).send().await.expect("get")).await;
    assert_eq!(status, 200, "{doc}");
    doc
}

/// `emeterai redrive` (issue 12): a stamp dead letter on an SQS queue (moto's server) is handed back
/// to the stamp function through the Lambda emulator's Invoke API, which stamps the document, and
/// the message is deleted; a message that is not a dead letter stays and the exit code says so;
/// the same dead letter redriven again changes nothing (the stamp is idempotent per document).
#[tokio::test]
#[ignore = "needs the local stack (make test runs it)"]
async fn redrive_hands_a_stamp_dead_letter_back_once_and_keeps_what_it_cannot() {
    let _shared = STACK.read().await;
    let client = http();
    let account = unique_name("redrive");
    let token = token(&account);
    buy_and_pay(&client, &token, 2).await;
    let (status, _, document) = json_of(
        client
            .post(format!("{}/v1/documents", api()))
            .bearer_auth(&token)
            .json(&json!({"file_name": "akta.pdf", "placement": {"page": 1, "x_mm": 120, "y_mm": 220}}))
            .send()
            .await
            .expect("create document"),
    )
    .await;
    assert_eq!(status, 201, "{document}");
    let document_id = document["document_id"].as_str().expect("document_id").to_owned();

    // A run that failed before reserving a serial: its upload is stored, its document still
    // AWAITING_UPLOAD and on no sweep list. Made here by hiding the document item while the
    // upload's S3 event runs (the function finds no document and does nothing), then putting it
    // back as it was.
    let (dynamodb, s3) = emeterai_local::provision::clients_from_env().await;
    let (table, bucket) = (function_env("EMETERAI_TABLE"), function_env("EMETERAI_BUCKET"));
    let item_key = [("pk", format!("DOC#{document_id}")), ("sk", "DOCUMENT".to_owned())]
        .map(|(name, value)| (name.to_owned(), aws_sdk_dynamodb::types::AttributeValue::S(value)));
    let item = dynamodb
        .get_item()
        .table_name(&table)
        .set_key(Some(item_key.clone().into_iter().collect()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the document item");
    dynamodb.delete_item().table_name(&table).set_key(Some(item_key.into_iter().collect())).send().await.expect("DeleteItem");
    let upload = &document["upload"];
    let mut put = client.put(upload["url"].as_str().expect("url"));
    for (name, value) in upload["headers"].as_object().into_iter().flatten() {
        put = put.header(name.as_str(), value.as_str().unwrap_or_default());
    }
    let uploaded = put.body(a4_pdf()).send().await.expect("upload");
    assert!(uploaded.status().is_success(), "upload answered {}", uploaded.status());
    wait_for_function_log(&["upload for an unknown document", &document_id]).await;
    dynamodb.put_item().table_name(&table).set_item(Some(item)).send().await.expect("PutItem");
    assert_eq!(document_of(&client, &token, &document_id).await["status"], "AWAITING_UPLOAD");

    // Its dead letter, as Lambda's on-failure destination writes it: the S3 event in requestPayload.
    let incoming = format!("incoming/{account}/{document_id}.pdf");
    let head = s3.head_object().bucket(&bucket).key(&incoming).send().await.expect("HeadObject");
    let object = emeterai_local::s3_events::ObjectCreated {
        bucket: bucket.clone(),
        key: incoming.clone(),
        size: u64::try_from(head.content_length.unwrap_or_default()).expect("size"),
        etag: head.e_tag.as_deref().unwrap_or_default().trim_matches('"').to_owned(),
        sequencer: "0A1B2C3D4E5F".to_owned(),
    };
    let event = emeterai_local::s3_events::s3_put_event(&object, "StampOnUpload", "ap-southeast-3", chrono::Utc::now());
    let dead_letter = json!({
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "requestContext": {"requestId": unique_name("req"), "functionArn": "arn:aws:lambda:ap-southeast-3:000000000000:function:stamp:$LATEST",
            "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "LedgerError", "errorMessage": "the ledger could not be reached"},
    })
    .to_string();

    let moto = emeterai_tests::Moto::start();
    let sqs_config = aws_sdk_sqs::config::Builder::from(&aws_config::load_from_env().await).endpoint_url(&moto.url).build();
    let sqs = aws_sdk_sqs::Client::from_conf(sqs_config);
    let queue = sqs.create_queue().queue_name(unique_name("stamp-dead-letters")).send().await.expect("CreateQueue");
    let queue_url = queue.queue_url.expect("queue url");
    let garbage = "not a destination record";
    // A dead letter the function cannot take (an S3 event whose object size is not a number): the
    // invocation fails again, so it must stay.
    let mut poison: Value = serde_json::from_str(&dead_letter).expect("JSON");
    poison["requestPayload"]["Records"][0]["s3"]["object"]["size"] = json!("not a number");
    let poison = poison.to_string();
    for body in [dead_letter.as_str(), garbage, poison.as_str()] {
        sqs.send_message().queue_url(&queue_url).message_body(body).send().await.expect("SendMessage");
    }
    let (_, _, routes) = json_of(client.get(format!("{}/dev/routes", api())).send().await.expect("routes")).await;
    let lambda_url = routes["lambda"].as_str().expect("the emulator's URL").to_owned();
    let redrive = || {
        let out = std::process::Command::new(emeterai_tests::cli_binary())
            .args(["redrive", "--queue-url", &queue_url, "--function-name", "stamp"])
            .env("AWS_ENDPOINT_URL_SQS", &moto.url)
            .env("AWS_ENDPOINT_URL_LAMBDA", &lambda_url)
            .output()
            .expect("emeterai runs");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let waiting = || async {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap_or_default();
        let count = |name| attributes.get(&name).and_then(|v| v.parse::<u32>().ok()).unwrap_or(u32::MAX);
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    };

    // First run: the dead letter stamps its document and leaves; the garbage and the dead letter
    // that fails again stay, exit 3.
    let (code, stdout, stderr) = redrive();
    assert_eq!(code, Some(3), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("3 received, 1 redriven and deleted, 2 kept on the queue"), "{stdout}");
    assert!(stderr.contains(&format!("redriven and deleted: s3://{bucket}/{incoming}")), "{stderr}");
    assert!(stderr.contains("kept: the body is not JSON"), "{stderr}");
    // On AWS a function error is answered 200 with FunctionError, by cargo lambda's emulator as an
    // error status: kept either way, with the function's own reason.
    let poison_line = stderr.lines().find(|l| l.contains(&format!("kept: s3://{bucket}/{incoming}: "))).unwrap_or_default();
    assert!(poison_line.contains("failed to deserialize"), "{stderr}");
    let stamped = document_of(&client, &token, &document_id).await;
    assert_eq!(stamped["status"], "STAMPED", "{stamped}");
    assert_eq!(quota(&client, &token).await["available"], 1, "one unit consumed");
    // The kept messages are visible again at once (the run gave them back): the garbage and the poison.
    assert_eq!(waiting().await, 2);
    let mut left = Vec::new();
    while left.len() < 2 {
        let received = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).wait_time_seconds(1).send().await;
        let received = received.expect("ReceiveMessage").messages.unwrap_or_default();
        assert!(!received.is_empty(), "the kept messages are visible");
        left.extend(received);
    }
    let mut bodies: Vec<_> = left.iter().map(|m| m.body.clone().unwrap_or_default()).collect();
    bodies.sort();
    let mut kept = vec![garbage.to_owned(), poison.clone()];
    kept.sort();
    assert_eq!(bodies, kept);
    for message in &left {
        let receipt = message.receipt_handle.as_deref().expect("receipt");
        sqs.delete_message().queue_url(&queue_url).receipt_handle(receipt).send().await.expect("DeleteMessage");
    }

    // The same dead letter again (a second operator, an at-least-once queue): nothing changes.
    sqs.send_message().queue_url(&queue_url).message_body(&dead_letter).send().await.expect("SendMessage");
    let (code, stdout, stderr) = redrive();
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("1 received, 1 redriven and deleted, 0 kept on the queue"), "{stdout}");
    assert_eq!(waiting().await, 0, "the queue is empty");
    let again = document_of(&client, &token, &document_id).await;
    assert_eq!((&again["status"], &again["serial"], &again["sha256"]), (&stamped["status"], &stamped["serial"], &stamped["sha256"]));
    assert_eq!(quota(&client, &token).await["available"], 1, "still one unit consumed: one serial spent");
    let outputs = s3.list_objects_v2().bucket(&bucket).prefix(format!("stamped/{account}/")).send().await.expect("ListObjectsV2");
    assert_eq!(outputs.contents.unwrap_or_default().len(), 1, "one stamped file");
}
