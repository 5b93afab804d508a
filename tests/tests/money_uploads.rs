//! One upload, one file (issue 8, item 1), against SeaweedFS and DynamoDB Local: the presigned
//! upload is single-use, the stamped output is written once, and `POST /v1/verify` registers a
//! file only when one of its revisions is the registered file byte for byte.

use emeterai::domain::serial::Serial;
use emeterai::handlers::stamp::{Outcome, Step};
use emeterai::stamping::{self, StampRequest};
use emeterai::storage::StorageError;
use emeterai_tests::{TestApp, UploadedDocument, fixture, request, spawn_app, test_issuer};
use http::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DOC: &str = "rotate-270-a4-autocad.pdf";
const OTHER: &str = "inherited-mediabox-and-resources-a4-lopdf-example.pdf";

async fn document(app: &TestApp, id: &str) -> Value {
    let r = app.get("alice", &format!("/v1/documents/{id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn download(doc: &Value) -> Vec<u8> {
    let response = reqwest::get(doc["download_url"].as_str().expect("download url")).await.expect("download");
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.expect("body").to_vec()
}

async fn verify_file(app: &TestApp, pdf: &[u8]) -> Value {
    let mut req = request(Method::POST, "/v1/verify", None, None);
    req.body = pdf.to_vec();
    let r = app.call(req).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["stamps"][0].clone()
}

#[tokio::test]
async fn a_second_put_changes_neither_the_stamped_file_nor_the_registry() {
    let app = spawn_app().await;
    app.fund("alice", 2).await;
    let UploadedDocument { created, id, key } = app.upload_document("alice", r#"{"file_name": "a.pdf"}"#, &fixture(DOC)).await;
    assert_eq!(created["upload"]["method"], "PUT");
    assert_eq!(created["upload"]["headers"]["content-type"], "application/pdf");

    // While PROCESSING (the first run died after reserving): the same URL again is refused.
    app.faults.crash_once_after(Step::Reserved);
    assert!(app.deliver(&key).await.is_err());
    assert_eq!(document(&app, &id).await["status"], "PROCESSING");
    assert_eq!(app.upload(&created, &fixture(OTHER)).await, 412, "single-use upload");
    assert!(matches!(app.deliver(&key).await.expect("redelivery"), Outcome::Stamped { .. }));

    // After STAMPED: refused too, and a redelivered event changes nothing.
    assert_eq!(app.upload(&created, &fixture(OTHER)).await, 412, "single-use upload");
    assert_eq!(app.deliver(&key).await.expect("redelivery"), Outcome::AlreadyFinal);
    let doc = document(&app, &id).await;
    let pdf = download(&doc).await;
    assert!(pdf.starts_with(&fixture(DOC)), "the first upload's bytes, stamped");
    assert_eq!(hex::encode(Sha256::digest(&pdf)), doc["sha256"].as_str().expect("sha"));
    let registry = app.get("alice", &format!("/v1/verify/{}", doc["serial"].as_str().expect("serial"))).await;
    assert_eq!(registry.body["document_sha256"], doc["sha256"]);
    assert_eq!(app.quota("alice").await, (1, 0), "one unit for one file");
}

#[tokio::test]
async fn a_losing_run_cannot_overwrite_the_stamped_file() {
    let app = spawn_app().await;
    let key = "stamped/alice/doc_race.pdf";
    app.store.write_pdf_once(key, b"%PDF winner".to_vec()).await.expect("first write");
    // A retry of the same reservation writes identical bytes: fine, nothing changes.
    app.store.write_pdf_once(key, b"%PDF winner".to_vec()).await.expect("identical bytes");
    let lost = app.store.write_pdf_once(key, b"%PDF loser!".to_vec()).await;
    assert!(matches!(lost, Err(StorageError::Conflict)), "{lost:?}");
    let kept = app.store.read_limited(key, 1000).await.expect("read");
    assert_eq!(kept, b"%PDF winner");
}

#[tokio::test]
async fn a_different_file_carrying_a_real_serial_is_not_registered() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    let doc = document(&app, &id).await;
    let genuine = download(&doc).await;
    let serial = Serial::parse(doc["serial"].as_str().expect("serial")).expect("serial");

    let v = verify_file(&app, &genuine).await;
    assert_eq!((v["signature_valid"].as_bool(), v["registered"].as_bool(), v["unmodified_since_stamp"].as_bool()), (Some(true), Some(true), Some(true)), "{v}");
    // Appended to after stamping: its stamped revision is still the registered file.
    let mut appended = genuine.clone();
    appended.extend_from_slice(b"\n% appended\n");
    let v = verify_file(&app, &appended).await;
    assert_eq!((v["registered"].as_bool(), v["unmodified_since_stamp"].as_bool()), (Some(true), Some(false)), "{v}");

    // Other content stamped with the real serial by the real key (what a losing run, or a second
    // upload stamped under the same reservation, would produce): validly signed, not registered.
    let other = fixture(OTHER);
    let placement = stamping::default_placement(&other, None).expect("placement");
    let req = StampRequest { serial: &serial, placement: &placement, signed_at: chrono::Utc::now(), verify_url: "http://localhost/v1/verify/x" };
    let forged = stamping::stamp(&other, &req, &test_issuer()).expect("stamp").pdf;
    let v = verify_file(&app, &forged).await;
    assert_eq!(v["serial"], serial.as_str());
    assert_eq!(v["signature_valid"], true, "{v}");
    assert_eq!(v["registered"], false, "a different file under a real serial: {v}");
}

/// The object key a document's stamped output lands at.
fn stamped_key(document_id: &str) -> String {
    emeterai::domain::document::keys::stamped(
        &TestApp::account("alice"),
        &emeterai::domain::ids::DocumentId::parse(document_id).expect("id"),
    )
}

async fn exists(app: &TestApp, key: &str) -> bool {
    app.s3.head_object().bucket(&app.bucket).key(key).send().await.is_ok()
}

/// Issue 8, item 1 (the ETag half): each stamp run is pinned to the object version its S3 event
/// names. An event naming an ETag that is not the stored object's reserves, stamps and spends
/// nothing, and leaves the document to the event of the stored version.
#[tokio::test]
async fn an_event_naming_another_version_stamps_nothing_and_spends_nothing() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    let UploadedDocument { id, key, .. } = app.upload_document("alice", r#"{"file_name": "a.pdf"}"#, &fixture(DOC)).await;

    let outcome = app.deliver_naming(&key, "0123456789abcdef0123456789abcdef").await.expect("a clear outcome, not a failed run");
    assert_eq!(outcome, Outcome::NotThatVersion);
    let doc = document(&app, &id).await;
    assert_eq!(doc["status"], "AWAITING_UPLOAD", "nothing reserved: {doc}");
    assert!(doc["serial"].is_null(), "{doc}");
    assert!(!exists(&app, &stamped_key(&id)).await, "nothing stamped");
    assert_eq!(app.quota("alice").await, (1, 0), "nothing spent");

    // The event of the stored version stamps it.
    let outcome = app.deliver(&key).await.expect("stamp run");
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    assert_eq!(app.quota("alice").await, (0, 0));
}

/// The reservation keeps the ETag it was made for: when the object under the key is replaced
/// after a run reserved (played by a direct write with the test's own S3 client, since the
/// presigned upload is single-use), neither the new version's event nor a redelivery of the old
/// one stamps anything with that reservation's serial, and nothing is spent.
#[tokio::test]
async fn a_reservation_stamps_only_the_version_it_was_made_for() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    let UploadedDocument { id, key, .. } = app.upload_document("alice", r#"{"file_name": "a.pdf"}"#, &fixture(DOC)).await;
    let first = app.s3.head_object().bucket(&app.bucket).key(&key).send().await.expect("head");
    let first_etag = first.e_tag().expect("etag").trim_matches('"').to_owned();
    app.faults.crash_once_after(Step::Reserved);
    assert!(app.deliver(&key).await.is_err(), "the run dies after reserving");

    app.store.write_pdf(&key, fixture(OTHER)).await.expect("replace the upload");
    let outcome = app.deliver(&key).await.expect("a clear outcome, not a failed run");
    assert_eq!(outcome, Outcome::NotThatVersion, "the new version's event");
    let outcome = app.deliver_naming(&key, &first_etag).await.expect("a clear outcome, not a failed run");
    assert_eq!(outcome, Outcome::NotThatVersion, "the old version's event, the object replaced");

    let doc = document(&app, &id).await;
    assert_eq!(doc["status"], "PROCESSING", "left for the sweep to release: {doc}");
    assert!(!exists(&app, &stamped_key(&id)).await, "nothing stamped");
    assert_eq!(app.quota("alice").await, (1, 0), "nothing spent");
}
