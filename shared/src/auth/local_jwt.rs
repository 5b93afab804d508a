//! HS256 bearer tokens of the local stack.
//!
//! On AWS the HTTP API's JWT authorizer validates tokens; locally the gateway validates tokens
//! signed with `EMETERAI_LOCAL_JWT_SECRET` (issuer `emeterai-local`, audience `emeterai`) and passes
//! their claims to the functions the same way the authorizer does.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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

/// Signs a token for `sub`, valid for `ttl_seconds` from `now` (Unix seconds).
pub fn issue(secret: &str, sub: &str, now: i64, ttl_seconds: i64) -> String {
    let claims = Claims {
        sub: sub.to_owned(),
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        iat: now,
        exp: now.saturating_add(ttl_seconds),
    };
    // The crate refuses only an unusable (empty) secret, which configuration never gives; the
    // empty token that would come out fails every validation rather than panicking.
    EncodingKey::from_secret(secret.as_bytes())
        .and_then(|key| jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key))
        .unwrap_or_default()
}

/// Validates a token the way the API Gateway JWT authorizer would, and returns its claims.
///
/// Expiry is judged against `now` (the caller's clock, so tests can move it) rather than the
/// crate's own reading of the system time; everything else is the crate's: algorithm pinned to
/// HS256, signature compared in constant time, issuer and audience required and matched.
pub fn validate(secret: &str, token: &str, now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    // A secret the crate cannot use verifies nothing.
    let key = DecodingKey::from_secret(secret.as_bytes()).map_err(|_| TokenError::BadSignature)?;
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongIssuerOrAudience,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Malformed,
        })?;
    let claims = data.claims;
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
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
    fn another_hmac_algorithm_is_refused() {
        let claims = Claims { sub: "a".into(), iss: ISSUER.into(), aud: AUDIENCE.into(), iat: 0, exp: 99_999_999_999 };
        let key = EncodingKey::from_secret(b"s").expect("key");
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key).expect("encode");
        assert_eq!(validate("s", &token, 0), Err(TokenError::WrongAlgorithm));
    }

    #[test]
    fn wrong_issuer_audience_and_empty_subject_are_refused() {
        let key = EncodingKey::from_secret(b"s").expect("key");
        let sign = |c: &Claims| jsonwebtoken::encode(&Header::new(Algorithm::HS256), c, &key).expect("encode");
        let good = Claims { sub: "a".into(), iss: ISSUER.into(), aud: AUDIENCE.into(), iat: 0, exp: 100 };
        let other_issuer = Claims { iss: "someone-else".into(), ..good.clone() };
        let other_audience = Claims { aud: "another-api".into(), ..good.clone() };
        let no_subject = Claims { sub: String::new(), ..good.clone() };
        assert_eq!(validate("s", &sign(&other_issuer), 0), Err(TokenError::WrongIssuerOrAudience));
        assert_eq!(validate("s", &sign(&other_audience), 0), Err(TokenError::WrongIssuerOrAudience));
        assert_eq!(validate("s", &sign(&no_subject), 0), Err(TokenError::EmptySubject));
        assert_eq!(validate("s", &sign(&good), 0).map(|c| c.sub), Ok("a".to_owned()));
        assert_eq!(validate("s", &"a".repeat(MAX_TOKEN_LEN + 1), 0), Err(TokenError::Malformed));
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"a","iss":"emeterai-local","aud":"emeterai","iat":0,"exp":99999999999}"#);
        let token = format!("{header}.{payload}.");
        // "none" is not an algorithm the crate knows: the header itself is refused.
        assert_eq!(validate("s", &token, 0), Err(TokenError::Malformed));
    }
}
