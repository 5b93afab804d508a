//! The scheduled sweep: reconciliation, expiry, refunds. Clients are built once per container.

// The sweep future, wrapped by the metrics flush, is deeper than the compiler's default layout
// query depth (128).
#![recursion_limit = "256"]

use emeterai::config::{Config, aws_sdk_config};
use emeterai::handlers::sweep::SweepService;
use emeterai::ledger::Ledger;
use emeterai::midtrans::MidtransClient;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    emeterai::handlers::init_tracing();
    // Metrics in CloudWatch Embedded Metric Format, written to stdout after each invocation.
    emeterai::telemetry::install_from_env()?;
    let config = Config::from_env()?;
    let service = SweepService {
        ledger: Ledger::from_sdk_config(&aws_sdk_config().await, &config.table),
        gateway: MidtransClient::new(&config.midtrans)?,
        config,
    };
    run(service_fn(|event| emeterai::telemetry::flushed(service.handle(event)))).await
}
