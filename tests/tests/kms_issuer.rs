//! The issuer key in KMS: the stamp engine and the stamp function sign through `kms:Sign`
//! against a real KMS emulator (moto's server, installed by `make test` into .local/venv), and a
//! KMS that fails makes the stamp run fail for redelivery, never a rejected document.

use std::process::Command;
use std::sync::Arc;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::handlers::stamp::{Outcome, StampError};
use emeterai::kms::KmsKey;
use emeterai::stamping::issuer::IssuerError;
use emeterai::stamping::{self, Issuer, Rejection, StampRequest};
use emeterai_tests::{Moto, TestApp, fixture, spawn_app, test_issuer};
use serde_json::json;

const DOC: &str = "rotate-270-a4-autocad.pdf";

async fn aws_config_for(moto: &Moto) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("ap-southeast-3"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new("test", "test", None, None, "moto"))
        .endpoint_url(&moto.url)
        .load()
        .await
}

/// A fresh ECC_NIST_P256 SIGN_VERIFY key, as the template creates.
async fn new_key(aws: &aws_config::SdkConfig) -> Arc<KmsKey> {
    let client = aws_sdk_kms::Client::new(aws);
    let created = client
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .send()
        .await
        .expect("kms:CreateKey");
    let key_id = created.key_metadata().expect("metadata").key_id().to_owned();
    Arc::new(KmsKey::connect(aws, &key_id).await.expect("connect"))
}

fn stamp_blocking(issuer: &Issuer, serial: &str) -> Result<stamping::Stamped, Rejection> {
    let serial = Serial::parse(serial).expect("serial");
    let placement = Placement::parse(Some(1), 20.0, 20.0).expect("placement");
    let req = StampRequest { serial: &serial, placement: &placement, signed_at: chrono::Utc::now(), verify_url: "http://localhost/v1/verify/x" };
    stamping::stamp(&fixture(DOC), &req, issuer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stamp_engine_signs_through_kms_and_verifiers_accept_it() {
    let mut moto = Moto::start();
    let aws = aws_config_for(&moto).await;
    let key = new_key(&aws).await;
    let signer = Arc::clone(&key);
    // Signing blocks on KMS: off the async executor, as the stamp function does it.
    let issuer = tokio::task::spawn_blocking(move || Issuer::self_signed_remote(signer)).await.expect("task").expect("issuer");
    assert!(matches!(issuer.key_pem(), Err(IssuerError::KeyNotExportable)), "a KMS key never leaves KMS");

    // Several stamps: KMS signatures are randomised, each must verify.
    for n in 0..4 {
        let signer = issuer.clone();
        let serial = format!("KMS{n:019}");
        let stamped = tokio::task::spawn_blocking(move || stamp_blocking(&signer, &serial)).await.expect("task").expect("stamped");
        let found = stamping::verify(&stamped.pdf, Some(&[issuer.certificate_der().to_vec()])).expect("verify");
        assert_eq!(found.len(), 1);
        assert!(found[0].signature_valid, "stamp {n}: {:?}", found[0]);
        assert_eq!(found[0].issuer_trusted, Some(true));
    }

    // A certificate for another key is refused at start, not at the first stamp.
    let mismatch = Issuer::with_remote_key(key.clone(), test_issuer().certificate_der().to_vec());
    assert!(matches!(mismatch, Err(IssuerError::KeyCertificateMismatch)), "{mismatch:?}");

    // KMS gone: the engine says the signer is unavailable, not that the document is bad.
    moto.stop();
    let signer = issuer.clone();
    let failed = tokio::task::spawn_blocking(move || stamp_blocking(&signer, "KMS0000000000000000009")).await.expect("task");
    assert_eq!(failed.err(), Some(Rejection::SignerUnavailable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stamp_function_signs_in_kms_and_retries_when_kms_fails() {
    let mut moto = Moto::start();
    let aws = aws_config_for(&moto).await;
    let key = new_key(&aws).await;
    let issuer = tokio::task::spawn_blocking(move || Issuer::self_signed_remote(key)).await.expect("task").expect("issuer");
    let mut app = spawn_app().await;
    app.stamp.issuer = Arc::new(issuer.clone());
    app.fund("alice", 2).await;

    let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    let stamped = app.s3.get_object().bucket(&app.bucket).key(format!("stamped/alice/{id}.pdf")).send().await.expect("output");
    let pdf = stamped.body.collect().await.expect("bytes").into_bytes();
    let found = stamping::verify(&pdf, Some(&[issuer.certificate_der().to_vec()])).expect("verify");
    assert!(found[0].signature_valid && found[0].issuer_trusted == Some(true), "{:?}", found[0]);

    // KMS down: the run fails (S3 redelivers it), the document is neither rejected nor paid.
    moto.stop();
    let created = app.create_document("alice", r#"{"file_name": "b.pdf"}"#).await;
    assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
    let second = created.body["document_id"].as_str().expect("id").to_owned();
    let run = app.deliver(&TestApp::incoming_key("alice", &second)).await;
    assert!(matches!(run, Err(StampError::Signer)), "{run:?}");
    let doc = app.get("alice", &format!("/v1/documents/{second}")).await;
    assert_eq!(doc.body["status"], "PROCESSING", "{:?}", doc.body);
    assert_eq!(app.quota("alice").await.0, 1, "the failed run spent nothing");
}

/// `emeterai issuer csr`: a PKCS#10 request for the KMS key, signed in KMS, that OpenSSL verifies
/// and whose public key is the key's own (what the CA will certify).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_csr_prints_a_request_openssl_verifies_for_the_kms_key() {
    let moto = Moto::start();
    let aws = aws_config_for(&moto).await;
    let client = aws_sdk_kms::Client::new(&aws);
    let created = client.create_key().key_spec(KeySpec::EccNistP256).key_usage(KeyUsageType::SignVerify).send().await.expect("kms:CreateKey");
    let key_id = created.key_metadata().expect("metadata").key_id().to_owned();

    let csr = |key_id: &str, extra: &[&str]| {
        Command::new(emeterai_tests::cli_binary())
            .args(["issuer", "csr", "--key-id", key_id])
            .args(extra)
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ENDPOINT_URL_KMS", &moto.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "ap-southeast-3")
            .output()
            .expect("emeterai runs")
    };
    let out = csr(&key_id, &["--common-name", "Penerbit Uji"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let pem = String::from_utf8(out.stdout).expect("PEM");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"), "{pem}");
    let file = std::env::temp_dir().join(format!("emeterai-csr-{key_id}.pem"));
    std::fs::write(&file, &pem).expect("write CSR");

    let openssl = |args: &[&str]| Command::new("openssl").args(args).arg("-in").arg(&file).output().expect("openssl runs");
    let verified = openssl(&["req", "-verify", "-noout"]);
    let said = format!("{}{}", String::from_utf8_lossy(&verified.stdout), String::from_utf8_lossy(&verified.stderr));
    assert!(verified.status.success() && said.contains("verify OK"), "openssl req -verify: {said}");
    let subject = String::from_utf8_lossy(&openssl(&["req", "-noout", "-subject", "-nameopt", "oneline"]).stdout).into_owned();
    assert!(subject.contains("C = ID") && subject.contains("O = e-Meterai") && subject.contains("CN = Penerbit Uji"), "{subject}");
    let public_pem = String::from_utf8(openssl(&["req", "-noout", "-pubkey"]).stdout).expect("PEM");
    let in_request = emeterai::stamping::issuer::pem_body(&public_pem, "PUBLIC KEY").expect("a public key");
    let in_kms = client.get_public_key().key_id(&key_id).send().await.expect("kms:GetPublicKey");
    assert_eq!(in_request, in_kms.public_key().expect("public key").as_ref(), "the request carries the KMS key's public key");
    let _ = std::fs::remove_file(&file);

    // A subject no CA would take is refused before anything is signed.
    let refused = csr(&key_id, &["--common-name", &"x".repeat(65)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("64"), "{}", String::from_utf8_lossy(&refused.stderr));
    // An unknown key is a failure with KMS's reason, not a request.
    let unknown = csr("00000000-0000-0000-0000-000000000000", &[]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.stdout.is_empty() && String::from_utf8_lossy(&unknown.stderr).contains("GetPublicKey"));
}
