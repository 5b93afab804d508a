//! Handler cost per request against DynamoDB Local and SeaweedFS (run through
//! `scripts/with-test-services.sh cargo bench -p emeterai-tests --bench handlers`; `make bench`).
//!
//! For each hot path: wall time per request (median, p95), this process's CPU time per request
//! (handler + AWS SDK; DynamoDB Local and the S3 server are other processes), and DynamoDB round
//! trips per request. Requests run one after another, so the numbers are per request, not
//! throughput.

use std::time::{Duration, Instant};

use emeterai_tests::{TestApp, fixture, spawn_app};
use serde_json::json;

/// User + system CPU time of this process so far (Linux `/proc/self/stat`, clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

struct Measured {
    name: &'static str,
    n: usize,
    walls: Vec<Duration>,
    cpu: Duration,
    dynamodb_calls: u64,
}

impl Measured {
    fn print(mut self) {
        self.walls.sort();
        let at = |q: f64| self.walls[((self.walls.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{:<28} n={:<4} wall median {:>7.2} ms  p95 {:>7.2} ms  cpu/req {:>6.3} ms  dynamodb/req {:.2}",
            self.name,
            self.n,
            at(0.5).as_secs_f64() * 1e3,
            at(0.95).as_secs_f64() * 1e3,
            self.cpu.as_secs_f64() * 1e3 / self.n as f64,
            self.dynamodb_calls as f64 / self.n as f64,
        );
    }
}

/// Runs `one(0..n)` in sequence; returns the measurement and what each run returned.
async fn measure<T, F, Fut>(app: &TestApp, name: &'static str, n: usize, mut one: F) -> (Measured, Vec<T>)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let calls_before = app.dynamodb_calls.load(std::sync::atomic::Ordering::SeqCst);
    let cpu_before = process_cpu();
    let mut walls = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        outputs.push(one(i).await);
        walls.push(start.elapsed());
    }
    let measured = Measured {
        name,
        n,
        walls,
        cpu: process_cpu().saturating_sub(cpu_before),
        dynamodb_calls: app.dynamodb_calls.load(std::sync::atomic::Ordering::SeqCst) - calls_before,
    };
    (measured, outputs)
}

fn main() {
    let n: usize = std::env::var("EMETERAI_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let app = spawn_app().await;
        println!("handler costs against DynamoDB Local and SeaweedFS on this machine ({} requests each)", n);

        let (checkout, invoices) = measure(&app, "POST /v1/checkouts", n, |i| {
            let app = &app;
            async move {
                let r = app.checkout("bench", Some(&format!("bench-{i}")), r#"{"quantity": 1}"#).await;
                assert_eq!(r.status, 201);
                r.body["order_id"].as_str().unwrap_or_default().to_owned()
            }
        })
        .await;
        checkout.print();

        let (replay, _) = measure(&app, "POST /v1/checkouts (replay)", n, |i| {
            let app = &app;
            async move {
                let r = app.checkout("bench", Some(&format!("bench-{i}")), r#"{"quantity": 1}"#).await;
                assert_eq!(r.status, 201);
            }
        })
        .await;
        replay.print();

        let (settle, _) = measure(&app, "webhook settlement", n, |i| {
            let (app, order) = (&app, invoices[i].clone());
            async move { assert_eq!(app.notify(&order, "settlement", "10000.00").await.status, 200) }
        })
        .await;
        settle.print();

        let (duplicate, _) = measure(&app, "webhook duplicate", n, |i| {
            let (app, order) = (&app, invoices[i].clone());
            async move { assert_eq!(app.notify(&order, "settlement", "10000.00").await.status, 200) }
        })
        .await;
        duplicate.print();

        let (quota, _) = measure(&app, "GET /v1/quota", n, |_| {
            let app = &app;
            async move { assert_eq!(app.get("bench", "/v1/quota").await.status, 200) }
        })
        .await;
        quota.print();

        // Stamping: documents are created and uploaded beforehand; only the S3-event run is measured.
        let stamps = (n / 5).max(1);
        let pdf = fixture("rotate-270-a4-autocad.pdf");
        let mut keys = Vec::with_capacity(stamps);
        for _ in 0..stamps {
            let created = app.create_document("bench", &json!({"file_name": "bench.pdf"}).to_string()).await;
            assert_eq!(app.upload(&created.body, &pdf).await, 200);
            keys.push(TestApp::incoming_key("bench", created.body["document_id"].as_str().unwrap_or_default()));
        }
        let (stamp, _) = measure(&app, "stamp on upload (3 KB PDF)", stamps, |i| {
            let (app, key) = (&app, keys[i].clone());
            async move {
                let outcome = app.deliver(&key).await.expect("stamp");
                assert!(matches!(outcome, emeterai::handlers::stamp::Outcome::Stamped { .. }), "{outcome:?}");
            }
        })
        .await;
        stamp.print();
    });
}
