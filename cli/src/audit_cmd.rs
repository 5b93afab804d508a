//! `emeterai audit [--segments N] [--json]`: every invariant of the ledger over the whole table
//! (API.md, "Operators' command line"). Table from `EMETERAI_TABLE`, endpoints and credentials
//! from the usual `AWS_*` variables, the documents bucket from `EMETERAI_BUCKET` when set.
//!
//! Standard output: one line per violation (`rule: subject: detail`), or with `--json` one
//! report. Standard error: progress about once a second and a closing summary.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emeterai::audit::{Audit, AuditReport, GatewayCheck, Progress};
use emeterai::config::Secret;
use emeterai::storage::DocumentStore;

use crate::{Failure, Outcome};

/// `emeterai audit`
#[derive(clap::Args)]
pub struct AuditArgs {
    /// Parallel scan segments (DynamoDB `Scan` `TotalSegments`).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    segments: u32,
    /// Also checks every invoice against the payment gateway's own record (Midtrans' Core API
    /// base URL, or the local simulator's); the server key from EMETERAI_MIDTRANS_SERVER_KEY.
    #[arg(long, value_name = "URL")]
    gateway_url: Option<String>,
    /// Prints one JSON report instead of one line per violation.
    #[arg(long)]
    json: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn run(args: AuditArgs) -> Result<Outcome, Failure> {
    let table = env("EMETERAI_TABLE").ok_or_else(|| Failure("environment variable EMETERAI_TABLE is required".into()))?;
    let bucket = env("EMETERAI_BUCKET");
    let gateway = match &args.gateway_url {
        None => None,
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Failure(format!("--gateway-url must be an http(s) URL, not {url:?}")));
            }
            let key = env("EMETERAI_MIDTRANS_SERVER_KEY")
                .ok_or_else(|| Failure("--gateway-url needs the server key in EMETERAI_MIDTRANS_SERVER_KEY".into()))?;
            Some(GatewayCheck::new(url, Secret::new(key))?)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let report = runtime.block_on(async {
        let aws = emeterai::config::aws_sdk_config().await;
        let mut audit = Audit::from_sdk_config(&aws, &table).with_segments(args.segments);
        if let Some(bucket) = &bucket {
            audit = audit.with_store(&DocumentStore::from_sdk_config(&aws, bucket));
        }
        if let Some(gateway) = gateway {
            audit = audit.with_gateway(gateway);
        }
        let ticker = tokio::spawn(report_progress(progress.clone(), started));
        let report = audit.run(progress.clone()).await;
        ticker.abort();
        report
    })?;
    let elapsed = started.elapsed();
    print_report(&report, args.json, elapsed)?;
    let seconds = elapsed.as_secs_f64().max(1e-3);
    eprintln!(
        "audit: {} items in {:.2} s ({:.0} items/s) with {} segments: {} accounts, {} invoices, {} ledger entries, \
         {} documents ({} stamped), {} serials, {} objects hashed{}; {} violation(s)",
        report.items_scanned,
        seconds,
        report.items_scanned as f64 / seconds,
        report.segments,
        report.accounts,
        report.invoices,
        report.ledger_entries,
        report.documents,
        report.stamped_documents,
        report.serials,
        report.objects_checked,
        report.gateway.as_ref().map_or_else(String::new, |g| format!(
            ", {} orders checked at the gateway ({}), {} paid but neither credited nor refunded",
            g.orders_checked,
            g.orders_listed.map_or_else(|| "it lists no orders".to_owned(), |n| format!("{n} listed")),
            g.paid_not_credited
        )),
        report.violations.len(),
    );
    Ok(if report.holds() { Outcome::Success } else { Outcome::Violated })
}

async fn report_progress(progress: Arc<Progress>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        eprintln!(
            "audit: {} items scanned ({:.0}/s), {} objects hashed, {} orders checked at the gateway",
            progress.items(),
            progress.items() as f64 / seconds,
            progress.objects_checked(),
            progress.orders_checked()
        );
    }
}

fn print_report(report: &AuditReport, json: bool, elapsed: Duration) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if json {
        let mut value = serde_json::to_value(report)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("holds".into(), report.holds().into());
            map.insert("elapsed_ms".into(), u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX).into());
        }
        writeln!(out, "{value}")?;
    } else {
        for v in &report.violations {
            writeln!(out, "{v}")?;
        }
    }
    out.flush()?;
    Ok(())
}
