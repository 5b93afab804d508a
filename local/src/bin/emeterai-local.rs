//! `emeterai-local`: the local stack's own process (dev tooling, never deployed).
//!
//! - `emeterai-local gateway`: provisions the table and bucket of template.yaml, starts the
//!   Midtrans simulator and serves the gateway until Ctrl-C.
//! - `emeterai-local function-env`: prints the functions' environment (KEY=VALUE lines).
//! - `emeterai-local token --sub ACCOUNT [--ttl SECONDS]`: prints a local bearer token.
//! - `emeterai-local instance BINARY [ARGS...]`: runs a function binary as Lambda instances under
//!   its template `MemorySize` and `Timeout` (cargo's runner under `cargo lambda watch`).
//!
//! Configuration comes from the environment; see README, "Local stack".

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use emeterai_local::gateway::{Gateway, GatewayConfig};
use emeterai_local::lambda::LambdaInvoker;
use emeterai_local::midtrans_sim::MidtransSim;
use emeterai_local::provision::{clients_from_env, ensure_bucket, ensure_table};
use emeterai_local::stack::{LocalContext, LocalNames, function_environment};
use emeterai_local::template::Template;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, BoxError> {
    match env(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| format!("{name}={v:?} is not a number").into()),
    }
}

fn template_path() -> PathBuf {
    env("EMETERAI_TEMPLATE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("template.yaml"))
}

/// The web app's folder (`EMETERAI_WEB_DIR`, default `web`), if it exists.
fn web_root() -> Option<PathBuf> {
    let dir = env("EMETERAI_WEB_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("web"));
    if dir.is_dir() {
        Some(dir)
    } else {
        tracing::warn!(dir = %dir.display(), "no web app folder: / serves nothing (set EMETERAI_WEB_DIR)");
        None
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

async fn gateway() -> Result<(), BoxError> {
    let template = Template::load(template_path())?;
    let context = LocalContext::from_lookup(env);
    let names = LocalNames::new(&template, &context, env)?;
    let port = env_number::<u16>("EMETERAI_PORT", 3000)?;
    let lambda_url = env("EMETERAI_LAMBDA_URL").ok_or("EMETERAI_LAMBDA_URL (the Lambda emulator's invoke address) is required")?;

    if env("EMETERAI_PROVISION").as_deref() != Some("off") {
        let (dynamodb, s3) = clients_from_env().await;
        let def = template.table_definition()?;
        let table = ensure_table(&dynamodb, &def, &names.table).await?;
        tracing::info!(table = %names.table, outcome = ?table, "table from template.yaml");
        for bucket in names.buckets.values() {
            let outcome = ensure_bucket(&s3, bucket).await?;
            tracing::info!(%bucket, ?outcome, "bucket from template.yaml");
        }
    }

    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port} (EMETERAI_PORT): {e}"))?;
    let notify_path = env("EMETERAI_MIDTRANS_NOTIFY_PATH").unwrap_or_else(|| "/v1/webhooks/midtrans".to_owned());
    let server_key = context.midtrans_server_key.clone();
    let sim_port = env_number::<u16>("EMETERAI_MIDTRANS_SIM_PORT", 3001)?;
    let midtrans = MidtransSim::start_persisted(
        SocketAddr::from(([127, 0, 0, 1], sim_port)),
        server_key,
        Some(format!("http://127.0.0.1:{port}{notify_path}")),
        env("EMETERAI_MIDTRANS_SIM_STORE").map(PathBuf::from),
    )
    .await
    .map_err(|e| format!("cannot start the Midtrans simulator on 127.0.0.1:{sim_port} (EMETERAI_MIDTRANS_SIM_PORT): {e}"))?;
    let midtrans_base = midtrans.base_url().to_owned();
    // The dashboard's Finish Redirect URL: the payer comes back to the web app after paying.
    midtrans.set_finish_redirect_url(Some(
        env("EMETERAI_MIDTRANS_FINISH_URL").unwrap_or_else(|| format!("http://127.0.0.1:{port}/")),
    ));

    let timeout = Duration::from_secs(env_number("EMETERAI_INVOKE_TIMEOUT_SECONDS", 30)?);
    let config = GatewayConfig {
        jwt_secret: env("EMETERAI_LOCAL_JWT_SECRET").unwrap_or_else(|| emeterai::auth::local_jwt::DEFAULT_SECRET.to_owned()),
        max_body_bytes: env_number("EMETERAI_MAX_BODY_BYTES", GatewayConfig::default().max_body_bytes)?,
        region: context.region.clone(),
        bucket_names: names.buckets.clone(),
        s3_notification_token: env("EMETERAI_S3_NOTIFICATION_TOKEN"),
        run_schedules: env("EMETERAI_SCHEDULES").as_deref() != Some("off"),
        web_root: web_root(),
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&template, LambdaInvoker::new(&lambda_url, timeout)?, Some(Arc::new(midtrans)), config)?;
    tracing::info!(gateway = %format!("http://127.0.0.1:{port}"), midtrans = %midtrans_base, lambda = %lambda_url, "local gateway ready");
    gateway.serve(listener, shutdown_signal()).await?;
    Ok(())
}

fn function_env() -> Result<(), BoxError> {
    let template = Template::load(template_path())?;
    let context = LocalContext::from_lookup(env);
    let names = LocalNames::new(&template, &context, env)?;
    for (name, value) in function_environment(&template, &names, &context, env)? {
        if value.contains('\n') {
            return Err(format!("{name} contains a newline; the env file cannot carry it").into());
        }
        println!("{name}={value}");
    }
    Ok(())
}

fn token(args: &[String]) -> Result<(), BoxError> {
    let mut sub = None;
    let mut ttl: i64 = 12 * 3600;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sub" => sub = it.next().cloned(),
            "--ttl" => ttl = it.next().ok_or("--ttl needs seconds")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let sub = sub.filter(|s| !s.is_empty()).ok_or("usage: emeterai-local token --sub ACCOUNT [--ttl SECONDS]")?;
    let secret = env("EMETERAI_LOCAL_JWT_SECRET").unwrap_or_else(|| emeterai::auth::local_jwt::DEFAULT_SECRET.to_owned());
    println!("{}", emeterai::auth::local_jwt::issue(&secret, &sub, chrono::Utc::now().timestamp(), ttl));
    Ok(())
}

fn instance(args: &[String]) -> Result<(), BoxError> {
    let (binary, rest) = args.split_first().ok_or("usage: emeterai-local instance BINARY [ARGS...]")?;
    let template = Template::load(template_path())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(emeterai_local::instance::supervise(&template, std::path::Path::new(binary), rest))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("EMETERAI_LOCAL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gateway") => tokio::runtime::Runtime::new().map_err(BoxError::from).and_then(|rt| rt.block_on(gateway())),
        Some("function-env") => function_env(),
        Some("token") => token(&args[1..]),
        Some("instance") => instance(&args[1..]),
        _ => Err("usage: emeterai-local gateway | function-env | token --sub ACCOUNT | instance BINARY [ARGS...]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("emeterai-local: {e}");
            ExitCode::FAILURE
        }
    }
}
