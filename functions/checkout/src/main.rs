//! The HTTP API: checkout, invoices, quota, documents, verification. Clients are built once per
//! container.

use emeterai::config::{Config, aws_sdk_config};
use emeterai::handlers::checkout::CheckoutService;
use emeterai::handlers::verification::trusted_issuers_from_env;
use emeterai::ledger::Ledger;
use emeterai::midtrans::MidtransClient;
use emeterai::storage::DocumentStore;
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    emeterai::handlers::init_tracing();
    // Metrics in CloudWatch Embedded Metric Format, written to stdout after each invocation.
    emeterai::telemetry::install_from_env()?;
    let config = Config::from_env()?;
    let aws = aws_sdk_config().await;
    let ledger = Ledger::from_sdk_config(&aws, &config.table);
    let documents = DocumentStore::from_sdk_config(&aws, config.require_bucket()?);
    let gateway = MidtransClient::new(&config.midtrans)?;
    let service = CheckoutService::new(config, ledger, gateway, documents, trusted_issuers_from_env()?);
    run(service_fn(|event| emeterai::telemetry::flushed(service.handle(event)))).await
}
