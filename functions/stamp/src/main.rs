//! Stamps PDFs uploaded under `incoming/`. Clients and the issuer key are loaded once per container.

use std::sync::Arc;

use emeterai::config::{Config, aws_sdk_config};
use emeterai::domain::time::SystemClock;
use emeterai::handlers::stamp::{NoFaults, StampService};
use emeterai::ledger::Ledger;
use emeterai::storage::DocumentStore;
use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    emeterai::handlers::init_tracing();
    // Metrics in CloudWatch Embedded Metric Format, written to stdout after each invocation.
    emeterai::telemetry::install_from_env()?;
    let config = Config::from_env()?;
    let aws = aws_sdk_config().await;
    let service = StampService {
        ledger: Ledger::from_sdk_config(&aws, &config.table),
        // Each S3 event names its bucket; EMETERAI_BUCKET is only the default.
        store: DocumentStore::from_sdk_config(&aws, config.bucket.clone().unwrap_or_default()),
        // The KMS key when EMETERAI_ISSUER_KMS_KEY_ID is set (on AWS), else the PEM issuer.
        issuer: Arc::new(emeterai::kms::issuer_from_env(&aws).await?),
        verify_base_url: config.verify_base_url.clone(),
        hook: Arc::new(NoFaults),
        clock: Arc::new(SystemClock),
    };
    run(service_fn(|event| emeterai::telemetry::flushed(service.handle(event)))).await
}
