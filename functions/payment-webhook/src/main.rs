//! Midtrans payment notifications: credits quota exactly once. Clients are built once per container.

use emeterai::config::{Config, aws_sdk_config};
use emeterai::handlers::payment_webhook::PaymentWebhookService;
use emeterai::ledger::Ledger;
use emeterai::midtrans::MidtransClient;
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    emeterai::handlers::init_tracing();
    // Metrics in CloudWatch Embedded Metric Format, written to stdout after each invocation.
    emeterai::telemetry::install_from_env()?;
    let config = Config::from_env()?;
    let service = PaymentWebhookService {
        ledger: Ledger::from_sdk_config(&aws_sdk_config().await, &config.table),
        server_key: config.midtrans.server_key.clone(),
        policy: config.payment_policy(),
        gateway: MidtransClient::new(&config.midtrans)?,
        recheck_after: config.reconcile_after,
    };
    run(service_fn(|event| emeterai::telemetry::flushed(service.handle(event)))).await
}
