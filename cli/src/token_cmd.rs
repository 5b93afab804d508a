//! `emeterai token --sub ACCOUNT [--ttl SECONDS]`: a bearer token for the local stack, signed with
//! `EMETERAI_LOCAL_JWT_SECRET` (default `local-dev-secret`), as API.md describes.

use emeterai::auth::local_jwt;
use emeterai::domain::ids::AccountId;

use crate::{Failure, Outcome};

const DEFAULT_TTL_SECONDS: i64 = 12 * 3600;
const MAX_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// `emeterai token --sub ACCOUNT [--ttl SECONDS]`
#[derive(clap::Args)]
pub struct TokenArgs {
    /// The account the token speaks for (its `sub` claim).
    #[arg(long, value_name = "ACCOUNT", value_parser = parse_account)]
    sub: String,
    /// How long the token is valid, in seconds (at most 30 days).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TTL_SECONDS,
          value_parser = clap::value_parser!(i64).range(1..=MAX_TTL_SECONDS))]
    ttl: i64,
}

fn parse_account(text: &str) -> Result<String, String> {
    AccountId::parse(text).map(|_| text.to_owned()).map_err(|e| e.to_string())
}

pub fn run(args: TokenArgs) -> Result<Outcome, Failure> {
    let TokenArgs { sub, ttl } = args;
    let sub = sub.as_str();
    let secret = std::env::var("EMETERAI_LOCAL_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| local_jwt::DEFAULT_SECRET.to_owned());
    println!("{}", local_jwt::issue(&secret, sub, chrono::Utc::now().timestamp(), ttl));
    Ok(Outcome::Success)
}
