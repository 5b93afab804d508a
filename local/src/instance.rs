//! One function instance as Lambda runs it: under its template `MemorySize` and `Timeout`.
//!
//! `cargo lambda watch` starts each instance with `cargo run`, so `emeterai-local instance` is
//! set as cargo's runner for the host target (scripts/run-local.sh) and gets the function's
//! binary as its first argument. It then:
//!
//! - runs the binary under a data-size limit (`prlimit --data`) of its `MemorySize`, so an input
//!   that needs more memory than the Lambda has kills it here too;
//! - stands between the binary and the emulator's Runtime API (a forwarding proxy), so it knows
//!   which invocation is in flight and since when;
//! - kills the binary when an invocation outlives the function's `Timeout`, and reports that
//!   invocation failed as Lambda does ("Task timed out after N seconds");
//! - reports the in-flight invocation failed when the binary dies (out of memory, a crash, a
//!   `SIGKILL` from the drill), and starts a new instance, as Lambda starts a new execution
//!   environment. (`cargo lambda watch` itself never replaces an instance that died: this
//!   process is what it sees, and it does not die.)
//!
//! Which limit: RLIMIT_AS counts address space, which tokio's threads and glibc's per-thread
//! malloc arenas reserve by the hundred megabytes without touching (an idle debug instance: 240 MB
//! of address space for 30 MB resident), so it cannot be set near `MemorySize`. RLIMIT_DATA counts
//! the private writable mappings only (heap, arenas as far as they are made writable, thread
//! stacks), not reserved address space nor the binary's code: an idle instance holds 5 to 10 MB of
//! it. So the limit is `MemorySize` itself, applied to what a function allocates; Lambda's memory
//! also holds the code and runtime (a few tens of MB), which this leaves out, so a function at the
//! edge dies a little later here than on AWS, never earlier.

use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::template::Template;

/// Lambda's own bound on an invocation's event and response.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 + 64 * 1024;
/// An instance that dies this soon after starting, without an invocation, is not restarted at
/// once (a function that cannot initialise would otherwise spin).
const RESTART_PAUSE: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the template says about the function this instance runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLimits {
    pub function: String,
    pub memory_size_mb: u64,
    pub timeout: Duration,
}

impl InstanceLimits {
    /// The limits of the function whose cargo binary is `binary` (a path; its file name counts).
    pub fn of(template: &Template, binary: &Path) -> Result<InstanceLimits, BoxError> {
        let name = binary.file_name().and_then(|n| n.to_str()).ok_or("the function binary has no file name")?;
        let function = template
            .functions()?
            .into_iter()
            .find(|f| f.binary == name)
            .ok_or_else(|| format!("template.yaml has no function built from binary {name:?}"))?;
        Ok(InstanceLimits { function: name.to_owned(), memory_size_mb: function.memory_size_mb, timeout: function.timeout })
    }

    /// The data-size limit (bytes) the binary runs under.
    pub fn data_bytes(&self) -> u64 {
        self.memory_size_mb * 1024 * 1024
    }
}

/// The invocation the binary is working on, as the proxy saw it leave `/next`.
#[derive(Debug, Clone)]
struct InFlight {
    request_id: String,
    deadline: Instant,
}

struct Shared {
    /// The emulator's Runtime API, as `AWS_LAMBDA_RUNTIME_API` gave it (`http://host:port/prefix`).
    upstream: String,
    timeout: Duration,
    in_flight: Mutex<Option<InFlight>>,
    changed: Notify,
    http: reqwest::Client,
}

impl Shared {
    fn in_flight(&self) -> Option<InFlight> {
        self.in_flight.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// Takes the in-flight invocation if it is `request_id` (or any, with `None`), so only one
    /// of "the binary answered" and "the supervisor reports a failure" happens.
    fn take(&self, request_id: Option<&str>) -> Option<InFlight> {
        let mut guard = self.in_flight.lock().ok()?;
        match (&*guard, request_id) {
            (Some(f), Some(id)) if f.request_id != id => None,
            _ => guard.take(),
        }
    }

    /// Tells the emulator that invocation `request_id` failed, as Lambda's runtime does.
    async fn report_failure(&self, request_id: &str, error_type: &str, message: &str) {
        let url = format!("{}/2018-06-01/runtime/invocation/{request_id}/error", self.upstream);
        let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
        let sent = self
            .http
            .post(&url)
            .header("lambda-runtime-function-error-type", error_type)
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!(request_id, error = %e, "could not report the failed invocation to the emulator");
        }
    }
}

/// Forwards one Runtime API request of the binary to the emulator, noting invocations as they
/// start and end.
async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let Ok(body) = to_bytes(body, MAX_PAYLOAD_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
    };
    // The binary answered (or failed) an invocation: it is no longer ours to time out.
    let answered = path
        .strip_prefix("/2018-06-01/runtime/invocation/")
        .and_then(|rest| rest.strip_suffix("/response").or_else(|| rest.strip_suffix("/error")));
    if let Some(id) = answered {
        if shared.take(Some(id)).is_none() {
            tracing::warn!(request_id = id, "answer for an invocation already reported as failed");
        }
        shared.changed.notify_one();
    }
    let mut upstream = shared.http.request(parts.method.clone(), format!("{}{path}", shared.upstream)).body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            upstream = upstream.header(name, value);
        }
    }
    let response = match upstream.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("the Lambda emulator did not answer: {e}")).into_response(),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let Ok(bytes) = response.bytes().await else {
        return (StatusCode::BAD_GATEWAY, "the Lambda emulator's answer broke off").into_response();
    };
    if path == "/2018-06-01/runtime/invocation/next" && status.is_success() {
        if let Some(id) = headers.get("lambda-runtime-aws-request-id").and_then(|v| v.to_str().ok()) {
            let started = InFlight { request_id: id.to_owned(), deadline: Instant::now() + shared.timeout };
            if let Ok(mut guard) = shared.in_flight.lock() {
                *guard = Some(started);
            }
            shared.changed.notify_one();
        }
    }
    let mut answer = Response::builder().status(status);
    for (name, value) in &headers {
        if name != http::header::TRANSFER_ENCODING && name != http::header::CONTENT_LENGTH && name != http::header::CONNECTION {
            answer = answer.header(name, value);
        }
    }
    answer.body(Body::from(bytes)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Why an instance ended.
enum Ended {
    Exited(ExitStatus),
    TimedOut(InFlight),
    Stopped,
}

/// Runs `binary args` as instances of its function until this process is told to stop.
pub async fn supervise(template: &Template, binary: &Path, args: &[String]) -> Result<(), BoxError> {
    let limits = InstanceLimits::of(template, binary)?;
    let upstream_env = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| "AWS_LAMBDA_RUNTIME_API is not set")?;
    let upstream = if upstream_env.contains("://") { upstream_env.clone() } else { format!("http://{upstream_env}") };
    let shared = Arc::new(Shared {
        upstream: upstream.trim_end_matches('/').to_owned(),
        timeout: limits.timeout,
        in_flight: Mutex::new(None),
        changed: Notify::new(),
        http: reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy = format!("127.0.0.1:{}", listener.local_addr()?.port());
    // The same form the emulator used (with or without a scheme).
    let proxy = if upstream_env.contains("://") { format!("http://{proxy}") } else { proxy };
    let router = axum::Router::new().fallback(forward).with_state(shared.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the Runtime API proxy stopped");
        }
    });
    tracing::info!(
        function = %limits.function,
        memory_size_mb = limits.memory_size_mb,
        data_bytes = limits.data_bytes(),
        timeout_s = limits.timeout.as_secs(),
        "instance supervisor ready"
    );
    let mut stop = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let started = Instant::now();
        let mut child = Command::new("prlimit")
            .arg(format!("--data={}", limits.data_bytes()))
            .arg("--core=0")
            .arg("--")
            .arg(binary)
            .args(args)
            .env("AWS_LAMBDA_RUNTIME_API", &proxy)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", limits.memory_size_mb.to_string())
            .kill_on_drop(true)
            .spawn()?;
        let ended = watch(&shared, &mut child, &mut stop).await?;
        match ended {
            Ended::Stopped => {
                let _ = child.kill().await;
                return Ok(());
            }
            Ended::TimedOut(invocation) => {
                let _ = child.kill().await;
                let message = format!("Task timed out after {:.2} seconds", limits.timeout.as_secs_f64());
                tracing::warn!(function = %limits.function, request_id = %invocation.request_id, "{message}; instance killed");
                shared.report_failure(&invocation.request_id, "Sandbox.Timedout", &message).await;
            }
            Ended::Exited(status) => {
                let failed = shared.take(None);
                let message = format!("Runtime exited with error: {status}");
                tracing::warn!(function = %limits.function, request_id = ?failed.as_ref().map(|f| &f.request_id), "{message}");
                if let Some(invocation) = failed {
                    shared.report_failure(&invocation.request_id, "Runtime.ExitError", &message).await;
                } else if started.elapsed() < RESTART_PAUSE {
                    tokio::time::sleep(RESTART_PAUSE).await;
                }
            }
        }
        // A new instance, as Lambda starts a new execution environment.
    }
}

/// Waits until the binary exits, its invocation passes the deadline, or this process must stop.
async fn watch(shared: &Shared, child: &mut Child, stop: &mut tokio::signal::unix::Signal) -> Result<Ended, BoxError> {
    loop {
        let deadline = shared.in_flight().map(|f| f.deadline);
        tokio::select! {
            status = child.wait() => return Ok(Ended::Exited(status?)),
            () = sleep_until(deadline) => {
                let overdue = shared.in_flight().filter(|f| f.deadline <= Instant::now());
                if let Some(f) = overdue.and_then(|f| shared.take(Some(&f.request_id))) {
                    return Ok(Ended::TimedOut(f));
                }
            }
            () = shared.changed.notified() => {}
            _ = stop.recv() => return Ok(Ended::Stopped),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
