//! HS256 bearer tokens of the local stack.
//!
//! On AWS the HTTP API's JWT authorizer validates tokens; locally the gateway validates tokens
//! signed with `EMETERAI_LOCAL_JWT_SECRET` (issuer `emeterai-local`, audience `emeterai`) and passes
//! their claims to the functions the same way the authorizer does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const ISSUER: &str = "emeterai-local";
pub const AUDIENCE: &str = "emeterai";
pub const DEFAULT_SECRET: &str = "local-dev-secret";
/// Upper bound on a token we are willing to look at; real tokens are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not HS256")]
    WrongAlgorithm,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token issuer or audience is not accepted")]
    WrongIssuerOrAudience,
    #[error("token subject is empty")]
    EmptySubject,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// Signs a token for `sub`, valid for `ttl_seconds` from `now` (Unix seconds).
pub fn issue(secret: &str, sub: &str, now: i64, ttl_seconds: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = Claims {
        sub: sub.to_owned(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl_seconds),
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret.as_bytes());
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Validates a token the way the API Gateway JWT authorizer would, and returns its claims.
pub fn validate(secret: &str, token: &str, now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "HS256" {
        return Err(TokenError::WrongAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)?;
    let mut m = mac(secret.as_bytes());
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    // verify_slice compares in constant time.
    m.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if claims.iss != ISSUER || claims.aud != AUDIENCE {
        return Err(TokenError::WrongIssuerOrAudience);
    }
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    if claims.sub.is_empty() {
        return Err(TokenError::EmptySubject);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_validates() {
        let t = issue("s3cret", "alice", 1_000, 60);
        let c = validate("s3cret", &t, 1_010).expect("valid");
        assert_eq!(c.sub, "alice");
    }

    #[test]
    fn wrong_secret_expired_and_garbage_are_refused() {
        let t = issue("s3cret", "alice", 1_000, 60);
        assert_eq!(validate("other", &t, 1_010), Err(TokenError::BadSignature));
        assert_eq!(validate("s3cret", &t, 1_060), Err(TokenError::Expired));
        assert_eq!(validate("s3cret", "a.b", 0), Err(TokenError::Malformed));
        assert_eq!(validate("s3cret", "x.y.z", 0), Err(TokenError::Malformed));
        let tampered = t.replacen('.', ".e30", 1);
        assert!(validate("s3cret", &tampered, 1_010).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"a","iss":"emeterai-local","aud":"emeterai","iat":0,"exp":99999999999}"#);
        let token = format!("{header}.{payload}.");
        assert_eq!(validate("s", &token, 0), Err(TokenError::WrongAlgorithm));
    }
}
