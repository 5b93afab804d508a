//! Checkout HTTP API: invoices and quota. Clients are built once per container.

use emeterai::config::{Config, aws_sdk_config};
use emeterai::handlers::checkout::CheckoutService;
use emeterai::ledger::Ledger;
use emeterai::midtrans::MidtransClient;
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    emeterai::handlers::init_tracing();
    let config = Config::from_env()?;
    let ledger = Ledger::from_sdk_config(&aws_sdk_config().await, &config.table);
    let gateway = MidtransClient::new(&config.midtrans)?;
    let service = CheckoutService::new(config, ledger, gateway);
    run(service_fn(|event| service.handle(event))).await
}
