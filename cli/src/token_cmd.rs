//! `emeterai token --sub ACCOUNT [--ttl SECONDS]`: a bearer token for the local stack, signed with
//! `EMETERAI_LOCAL_JWT_SECRET` (default `local-dev-secret`), as API.md describes.

use emeterai::auth::local_jwt;
use emeterai::domain::ids::AccountId;

use crate::{Args, Failure, Outcome};

const DEFAULT_TTL_SECONDS: i64 = 12 * 3600;
const MAX_TTL_SECONDS: i64 = 30 * 24 * 3600;

pub fn run(raw: &[String]) -> Result<Outcome, Failure> {
    let args = Args::parse(raw, &["sub", "ttl"], &[])?;
    if !args.positional.is_empty() {
        return Err(Failure(format!("unexpected argument {:?}", args.positional[0])));
    }
    let sub = args.value("sub").ok_or_else(|| Failure("--sub ACCOUNT is required".into()))?;
    AccountId::parse(sub).map_err(|e| Failure(format!("--sub: {e}")))?;
    let ttl = match args.value("ttl") {
        None => DEFAULT_TTL_SECONDS,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|t| (1..=MAX_TTL_SECONDS).contains(t))
            .ok_or_else(|| Failure(format!("--ttl must be 1 to {MAX_TTL_SECONDS} seconds")))?,
    };
    let secret = std::env::var("EMETERAI_LOCAL_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| local_jwt::DEFAULT_SECRET.to_owned());
    println!("{}", local_jwt::issue(&secret, sub, chrono::Utc::now().timestamp(), ttl));
    Ok(Outcome::Success)
}
