//! The issuer key in AWS KMS (`ECC_NIST_P256`, `SIGN_VERIFY`): the stamp function signs with
//! `kms:Sign` and never holds the private key.
//!
//! KMS is given the DER signed attributes themselves with `MessageType=RAW` and hashes them with
//! SHA-256 (`ECDSA_SHA_256`), exactly what the CMS signer info says. (Sending our own digest as
//! `DIGEST` would be the same on AWS, but moto's emulator hashes a DIGEST message again, so the
//! two would disagree; RAW is right on both.)

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use p256::pkcs8::DecodePublicKey as _;

use crate::stamping::Issuer;
use crate::stamping::issuer::{self, IssuerError, RemoteKey, SignError};

/// `EMETERAI_ISSUER_KMS_KEY_ID`: the key's id, ARN or alias. Set: the stamp function signs in KMS.
pub const KMS_KEY_ENV: &str = "EMETERAI_ISSUER_KMS_KEY_ID";

/// Long enough for KMS under load, short enough that a stuck call fails the run (and S3 retries
/// it) well inside the stamp function's 30 s.
const SIGN_TIMEOUT: Duration = Duration::from_secs(5);

pub struct KmsKey {
    client: aws_sdk_kms::Client,
    key_id: String,
    public_key: Vec<u8>,
    /// The runtime the client was built on; `sign` runs on a blocking thread and waits on it.
    runtime: tokio::runtime::Handle,
}

impl KmsKey {
    /// Reads the public key once (`kms:GetPublicKey`) and checks it is a P-256 signing key.
    pub async fn connect(aws: &aws_config::SdkConfig, key_id: &str) -> Result<KmsKey, SignError> {
        let config = aws_sdk_kms::config::Builder::from(aws)
            .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_timeout(SIGN_TIMEOUT).build())
            .build();
        let client = aws_sdk_kms::Client::from_conf(config);
        let out = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| SignError(format!("kms:GetPublicKey {key_id}: {}", aws_sdk_kms::error::DisplayErrorContext(e))))?;
        let spki = out.public_key().ok_or_else(|| SignError(format!("kms:GetPublicKey {key_id}: no key")))?;
        let public = p256::PublicKey::from_public_key_der(spki.as_ref())
            .map_err(|_| SignError(format!("{key_id} is not an ECC_NIST_P256 key")))?;
        // The same SEC1 form the certificate check compares (as for a local key).
        let point = p256::ecdsa::VerifyingKey::from(&public).to_sec1_bytes();
        Ok(KmsKey {
            client,
            key_id: key_id.to_owned(),
            public_key: point.to_vec(),
            runtime: tokio::runtime::Handle::current(),
        })
    }
}

impl RemoteKey for KmsKey {
    fn public_key_sec1(&self) -> &[u8] {
        &self.public_key
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let request = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send();
        let out = self
            .runtime
            .block_on(request)
            .map_err(|e| SignError(format!("kms:Sign {}: {}", self.key_id, aws_sdk_kms::error::DisplayErrorContext(e))))?;
        let der = out.signature().ok_or_else(|| SignError("kms:Sign returned no signature".to_owned()))?;
        // KMS may return either of the two equivalent S values; the low one is what strict
        // verifiers accept.
        let signature = p256::ecdsa::Signature::from_der(der.as_ref()).map_err(|_| SignError("kms:Sign returned a malformed signature".to_owned()))?;
        let signature = signature.normalize_s();
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

/// The stamp function's issuer: the KMS key named by `EMETERAI_ISSUER_KMS_KEY_ID` with the
/// configured certificate (and chain) when set, else the PEM issuer (`Issuer::from_env_or_local`);
/// either way with the timestamp authority named by `EMETERAI_TSA_URL` when set.
pub async fn issuer_from_env(aws: &aws_config::SdkConfig) -> Result<Issuer, IssuerError> {
    let Some(key_id) = std::env::var(KMS_KEY_ENV).ok().filter(|v| !v.is_empty()) else {
        return Issuer::from_env_or_local();
    };
    let mut certificates = issuer::certificates_from_env()?.ok_or(IssuerError::KeyServiceWithoutCertificate)?.into_iter();
    let certificate = certificates.next().ok_or(IssuerError::KeyServiceWithoutCertificate)?;
    let key = KmsKey::connect(aws, &key_id).await?;
    let issuer = Issuer::with_remote_key(Arc::new(key), certificate)?.with_chain(certificates.collect())?;
    Ok(issuer.with_timestamp_authority_from_env())
}

/// A PKCS#10 certification request for the KMS key `key_id` (its public key from
/// `kms:GetPublicKey`, signed with `kms:Sign` RAW ECDSA_SHA_256): `emeterai issuer csr`.
pub async fn certification_request(
    aws: &aws_config::SdkConfig,
    key_id: &str,
    organization: &str,
    common_name: &str,
) -> Result<Vec<u8>, SignError> {
    let key = KmsKey::connect(aws, key_id).await?;
    let (organization, common_name) = (organization.to_owned(), common_name.to_owned());
    // `sign` waits on the runtime, so it runs on a blocking thread (as in the stamp engine).
    tokio::task::spawn_blocking(move || {
        issuer::certification_request(key.public_key_sec1(), &organization, &common_name, |info| key.sign(info))
    })
    .await
    .map_err(|e| SignError(format!("the signing task failed: {e}")))?
}
