//! `emeterai issuer csr --key-id KEY [--organization O] [--common-name CN]`: prints a PKCS#10
//! certification request (PEM) for the issuer key in AWS KMS, for the operator's CA to certify
//! (docs/deploy.md, "The issuer certificate"). The key never leaves KMS: the request carries the
//! public key from `kms:GetPublicKey` and is signed with `kms:Sign`. Credentials, region and
//! endpoint from the usual `AWS_*` variables.

use emeterai::kms;
use emeterai::stamping::issuer;

use crate::{Failure, Outcome};

/// `emeterai issuer`
#[derive(clap::Args)]
pub struct IssuerArgs {
    #[command(subcommand)]
    command: IssuerCommand,
}

#[derive(clap::Subcommand)]
enum IssuerCommand {
    /// Prints a PKCS#10 certification request (PEM) for the issuer key in AWS KMS.
    Csr(CsrArgs),
}

#[derive(clap::Args)]
struct CsrArgs {
    /// The KMS key: id, ARN or alias (the stack's output `IssuerKeyId`); default
    /// EMETERAI_ISSUER_KMS_KEY_ID.
    #[arg(long, value_name = "KEY")]
    key_id: Option<String>,
    /// The subject's organization (O).
    #[arg(long, value_name = "NAME", default_value = "e-Meterai", value_parser = subject_attribute)]
    organization: String,
    /// The subject's common name (CN).
    #[arg(long, value_name = "NAME", default_value = "e-Meterai Issuer", value_parser = subject_attribute)]
    common_name: String,
}

/// What a CA takes in a subject: 1 to 64 characters (X.520's bound), none of them a control.
fn subject_attribute(text: &str) -> Result<String, String> {
    let chars = text.chars().count();
    if chars == 0 || chars > issuer::MAX_SUBJECT_ATTRIBUTE_CHARS || text.chars().any(char::is_control) {
        return Err(format!("must be 1 to {} printable characters", issuer::MAX_SUBJECT_ATTRIBUTE_CHARS));
    }
    Ok(text.to_owned())
}

pub fn run(args: IssuerArgs) -> Result<Outcome, Failure> {
    let IssuerCommand::Csr(args) = args.command;
    let key_id = args
        .key_id
        .or_else(|| std::env::var(kms::KMS_KEY_ENV).ok())
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| Failure(format!("--key-id or {} is required", kms::KMS_KEY_ENV)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let request = runtime.block_on(async {
        let aws = emeterai::config::aws_sdk_config().await;
        kms::certification_request(&aws, &key_id, &args.organization, &args.common_name).await
    })?;
    print!("{}", issuer::certification_request_pem(&request));
    Ok(Outcome::Success)
}
