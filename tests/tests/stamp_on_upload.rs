//! Stamp on upload against DynamoDB Local and SeaweedFS: a unit is consumed exactly once per
//! stamped document, whatever is delivered twice, crashes or races; refused documents cost nothing.

use emeterai::domain::document::{Document, StampReservation};
use emeterai::domain::ids::{AccountId, DocumentId, InvoiceId};
use emeterai::handlers::stamp::{InjectedFault, Outcome, StampError, Step};
use emeterai::stamping::{self, StampRequest};
use emeterai::storage::StorageError;
use emeterai_tests::{TestApp, fixture, request, spawn_app};
use futures::future::join_all;
use http::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const DOC: &str = "rotate-270-a4-autocad.pdf";

async fn document(app: &TestApp, caller: &str, id: &str) -> Value {
    let r = app.get(caller, &format!("/v1/documents/{id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn download(doc: &Value) -> Vec<u8> {
    let url = doc["download_url"].as_str().expect("download url");
    let response = reqwest::get(url).await.expect("download");
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.expect("body").to_vec()
}

async fn consumed_units(app: &TestApp, caller: &str) -> i64 {
    app.ledger.entry_totals(&AccountId::parse(caller).expect("account")).await.expect("totals").consumed
}

async fn verify_file(app: &TestApp, pdf: &[u8]) -> Value {
    let mut req = request(Method::POST, "/v1/verify", None, None);
    req.body = pdf.to_vec();
    let r = app.call(req).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn upload_is_stamped_paid_for_once_and_verifiable() {
    let app = spawn_app().await;
    let inv = app.fund("alice", 2).await;
    let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!({"page": 1, "x_mm": 120, "y_mm": 120})).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");

    let doc = document(&app, "alice", &id).await;
    assert_eq!(doc["status"], "STAMPED");
    assert_eq!(doc["invoice_id"], inv["invoice_id"]);
    assert!(doc["rejection"].is_null());
    let serial = doc["serial"].as_str().expect("serial").to_owned();
    assert_eq!(serial.len(), 22);
    let pdf = download(&doc).await;
    assert_eq!(hex::encode(Sha256::digest(&pdf)), doc["sha256"].as_str().expect("sha"));
    assert!(pdf.starts_with(&fixture(DOC)), "incremental update keeps the original bytes");

    assert_eq!(app.quota("alice").await, (1, 0));
    let invoice = app.get("alice", &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await.body;
    assert_eq!((invoice["used"].as_u64(), invoice["remaining"].as_u64()), (Some(1), Some(1)));

    let by_serial = app.call(request(Method::GET, &format!("/v1/verify/{serial}"), None, None)).await;
    assert_eq!(by_serial.status, 200);
    assert_eq!(by_serial.body["status"], "STAMPED");
    assert_eq!(by_serial.body["document_sha256"], doc["sha256"]);
    assert!(by_serial.body.get("account").is_none() && !by_serial.raw.body.contains("alice"), "no personal data");

    let verified = verify_file(&app, &pdf).await;
    let stamps = verified["stamps"].as_array().expect("stamps");
    assert_eq!(stamps.len(), 1, "{verified}");
    assert_eq!(stamps[0]["serial"], serial.as_str());
    assert_eq!(stamps[0]["signature_valid"], true);
    assert_eq!(stamps[0]["registered"], true);
    assert_eq!(stamps[0]["unmodified_since_stamp"], true);

    // Tampering after the stamp is seen.
    let mut appended = pdf.clone();
    appended.extend_from_slice(b"\n% appended after stamping\n");
    let v = verify_file(&app, &appended).await;
    assert_eq!(v["stamps"][0]["unmodified_since_stamp"], false);
    // One byte changed inside the first content stream of the original revision.
    let mut flipped = pdf.clone();
    let at = flipped.windows(7).position(|w| w == b"stream\n").expect("a stream") + 10;
    flipped[at] ^= 0x01;
    let v = verify_file(&app, &flipped).await;
    let stamps = v["stamps"].as_array().expect("stamps");
    assert_eq!(stamps.len(), 1, "{v}");
    assert_eq!(stamps[0]["signature_valid"], false, "{v}");
}

#[tokio::test]
async fn duplicate_and_concurrent_deliveries_consume_one_unit() {
    let app = spawn_app().await;
    app.fund("alice", 3).await;
    let (id, first) = app.stamp_document("alice", &fixture(DOC), json!({"x_mm": 20, "y_mm": 20})).await;
    assert!(matches!(first, Outcome::Stamped { .. }));
    let key = TestApp::incoming_key("alice", &id);
    assert_eq!(app.deliver(&key).await.expect("redelivery"), Outcome::AlreadyFinal);

    // A second document delivered five times at once.
    let created = app.create_document("alice", r#"{"file_name": "b.pdf"}"#).await;
    assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
    let id2 = created.body["document_id"].as_str().expect("id").to_owned();
    let key2 = TestApp::incoming_key("alice", &id2);
    let outcomes = join_all((0..5).map(|_| app.deliver(&key2))).await;
    let stamped = outcomes.iter().filter(|o| matches!(o, Ok(Outcome::Stamped { .. }))).count();
    assert_eq!(stamped, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Outcome::Stamped { .. } | Outcome::AlreadyFinal))), "{outcomes:?}");
    assert_eq!(consumed_units(&app, "alice").await, 2);
    assert_eq!(app.quota("alice").await, (1, 0));
    let a = document(&app, "alice", &id).await;
    let b = document(&app, "alice", &id2).await;
    assert_ne!(a["serial"], b["serial"], "every document its own serial");
}

/// The bytes a stamp run with `reservation` must produce for `pdf`: stamped here, offline, with
/// the same issuer key, placement, serial and signing time (the oracle for "byte-identical").
fn expected_output(app: &TestApp, pdf: &[u8], doc: &Document, reservation: &StampReservation) -> Vec<u8> {
    let placement = doc.placement.expect("the test gives a placement");
    let url = format!("{}/v1/verify/{}", app.stamp.verify_base_url.trim_end_matches('/'), reservation.serial);
    let req = StampRequest { serial: &reservation.serial, placement: &placement, signed_at: reservation.signed_at, verify_url: &url };
    stamping::stamp(pdf, &req, &app.stamp.issuer).expect("the fixture stamps").pdf
}

/// `got` and `want` are the same bytes (told apart by length and SHA-256, not printed whole).
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    let digest = |b: &[u8]| hex::encode(Sha256::digest(b));
    assert!(got == want, "{what}: {} bytes, sha256 {}; expected {} bytes, sha256 {}", got.len(), digest(got), want.len(), digest(want));
}

/// `GET /v1/verify/{serial}`: the status and body.
async fn verify_serial(app: &TestApp, serial: &str) -> (u16, Value) {
    let r = app.call(request(Method::GET, &format!("/v1/verify/{serial}"), None, None)).await;
    (r.status, r.body)
}

#[tokio::test]
async fn a_crash_between_any_two_steps_ends_in_exactly_one_stamp_with_identical_bytes() {
    for step in [Step::Reserved, Step::Stamped, Step::Uploaded, Step::Consumed] {
        let app = spawn_app().await;
        app.fund("alice", 1).await;
        let created = app.create_document("alice", r#"{"file_name": "a.pdf", "placement": {"x_mm": 30, "y_mm": 40}}"#).await;
        assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
        let id = created.body["document_id"].as_str().expect("id").to_owned();
        let key = TestApp::incoming_key("alice", &id);
        let output_key = format!("stamped/alice/{id}.pdf");

        app.faults.crash_once_after(step);
        // Exactly the injected crash: a storage or ledger error must not pass for it.
        let crashed = app.deliver(&key).await;
        assert!(matches!(crashed, Err(StampError::Injected(InjectedFault(at))) if at == step), "{step:?}: {crashed:?}");

        // Every step comes after the reservation: the serial and signing time are fixed now,
        // and with them the only bytes any run may write.
        let stored = app.ledger.document(&DocumentId::parse(&id).expect("id")).await.expect("read").expect("document");
        let reservation = stored.reservation.clone().expect("reserved before the crash");
        let expected = expected_output(&app, &fixture(DOC), &stored, &reservation);
        let serial = reservation.serial.to_string();
        let after_crash = document(&app, "alice", &id).await;
        let output_after_crash = app.store.read_limited(&output_key, 1_000_000).await;
        match step {
            Step::Reserved | Step::Stamped => {
                assert_eq!(after_crash["status"], "PROCESSING", "{step:?}");
                assert!(matches!(output_after_crash, Err(StorageError::Missing)), "{step:?}: nothing written yet: {output_after_crash:?}");
            }
            Step::Uploaded => {
                assert_eq!(after_crash["status"], "PROCESSING", "{step:?}");
                assert_same_bytes(&output_after_crash.expect("written before the crash"), &expected, &format!("{step:?}: the written bytes"));
            }
            Step::Consumed => {
                assert_eq!(after_crash["status"], "STAMPED", "{step:?}");
                assert_same_bytes(&output_after_crash.expect("written before the crash"), &expected, &format!("{step:?}: the written bytes"));
            }
        }
        if step == Step::Consumed {
            assert_eq!(after_crash["serial"], serial.as_str(), "{step:?}");
            assert_eq!(consumed_units(&app, "alice").await, 1, "{step:?}");
        } else {
            assert!(after_crash["download_url"].is_null() && after_crash["serial"].is_null(), "{step:?}: nothing shown before payment: {after_crash}");
            assert_eq!(consumed_units(&app, "alice").await, 0, "{step:?}: nothing consumed before the stamp is stored");
            let (status, body) = verify_serial(&app, &serial).await;
            assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{step:?}: a reserved serial is not registered: {body}");
        }

        // The event is delivered again (Lambda's retry): one outcome per step.
        let outcome = app.deliver(&key).await.expect("redelivery succeeds");
        let want = if step == Step::Consumed {
            Outcome::AlreadyFinal
        } else {
            Outcome::Stamped { serial: reservation.serial.clone() }
        };
        assert_eq!(outcome, want, "{step:?}");
        let done = document(&app, "alice", &id).await;
        assert_eq!(done["status"], "STAMPED", "{step:?}");
        assert_eq!(done["serial"], serial.as_str(), "{step:?}: the reserved serial is the one issued");
        assert_eq!(consumed_units(&app, "alice").await, 1, "{step:?}");
        assert_eq!(app.quota("alice").await, (0, 0), "{step:?}");
        let pdf = download(&done).await;
        assert_same_bytes(&pdf, &expected, &format!("{step:?}: a retried stamp writes byte-identical output"));
        assert_eq!(hex::encode(Sha256::digest(&pdf)), done["sha256"].as_str().expect("sha"));
        let (status, registered) = verify_serial(&app, &serial).await;
        assert_eq!(status, 200, "{step:?}: the reserved serial is registered now: {registered}");
        assert_eq!(registered["document_sha256"], done["sha256"], "{step:?}");
    }
}

#[tokio::test]
async fn more_concurrent_uploads_than_units() {
    let app = spawn_app().await;
    app.fund("alice", 3).await;
    let mut keys = Vec::new();
    for i in 0..6 {
        let created = app.create_document("alice", &json!({"file_name": format!("{i}.pdf")}).to_string()).await;
        assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
        keys.push((created.body["document_id"].as_str().expect("id").to_owned(), TestApp::incoming_key("alice", created.body["document_id"].as_str().expect("id"))));
    }
    let outcomes = join_all(keys.iter().map(|(_, k)| app.deliver(k))).await;
    let stamped = outcomes.iter().filter(|o| matches!(o, Ok(Outcome::Stamped { .. }))).count();
    let no_quota = outcomes.iter().filter(|o| matches!(o, Ok(Outcome::Rejected { code }) if code == "no_quota")).count();
    assert_eq!((stamped, no_quota), (3, 3), "{outcomes:?}");
    assert_eq!(app.quota("alice").await, (0, 0));
    assert_eq!(consumed_units(&app, "alice").await, 3);
    for (id, _) in &keys {
        let doc = document(&app, "alice", id).await;
        let output = app.store.read_limited(&format!("stamped/alice/{id}.pdf"), 1_000_000).await;
        match doc["status"].as_str() {
            Some("STAMPED") => assert!(output.is_ok()),
            Some("REJECTED") => {
                assert_eq!(doc["rejection"]["code"], "no_quota");
                assert!(output.is_err(), "no unpaid stamped file is left behind");
                assert!(doc["serial"].is_null());
            }
            other => panic!("unexpected status {other:?}"),
        }
    }
}

#[tokio::test]
async fn refused_documents_cost_nothing() {
    let app = spawn_app().await;
    app.fund("alice", 2).await;
    let (id, outcome) = app.stamp_document("alice", b"this is not a pdf", json!(null)).await;
    assert_eq!(outcome, Outcome::Rejected { code: "not_pdf".into() });
    let doc = document(&app, "alice", &id).await;
    assert_eq!(doc["status"], "REJECTED");
    assert_eq!(doc["rejection"]["code"], "not_pdf");
    assert!(doc["rejection"]["message"].as_str().is_some_and(|m| !m.is_empty()));

    let (_, outcome) = app.stamp_document("alice", &fixture(DOC), json!({"x_mm": 300, "y_mm": 10})).await;
    assert_eq!(outcome, Outcome::Rejected { code: "placement_out_of_bounds".into() });
    let (_, outcome) = app.stamp_document("alice", &fixture(DOC), json!({"page": 9, "x_mm": 10, "y_mm": 10})).await;
    assert_eq!(outcome, Outcome::Rejected { code: "page_out_of_range".into() });

    let mut big = fixture(DOC);
    big.resize(800_001, b' ');
    let (_, outcome) = app.stamp_document("alice", &big, json!(null)).await;
    assert_eq!(outcome, Outcome::Rejected { code: "too_large".into() });

    // A stamped document is final: stamping it again is refused, not charged.
    let (stamped_id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }));
    let stamped = download(&document(&app, "alice", &stamped_id).await).await;
    let (_, outcome) = app.stamp_document("alice", &stamped, json!(null)).await;
    assert_eq!(outcome, Outcome::Rejected { code: "already_stamped".into() });

    assert_eq!(consumed_units(&app, "alice").await, 1);
    assert_eq!(app.quota("alice").await, (1, 0));
}

#[tokio::test]
async fn without_quota_the_document_is_rejected() {
    let app = spawn_app().await;
    app.buy("alice", 1).await; // unpaid: pending, not usable
    let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert_eq!(outcome, Outcome::Rejected { code: "no_quota".into() });
    let doc = document(&app, "alice", &id).await;
    assert_eq!(doc["rejection"]["code"], "no_quota");
    assert!(doc["download_url"].is_null());
}

#[tokio::test]
async fn the_invoice_whose_validity_ends_first_is_used_first() {
    let app = spawn_app().await;
    let first_bought = app.buy("alice", 1).await;
    let second_bought = app.fund("alice", 1).await; // paid first: its validity ends first
    let amount = format!("{}.00", first_bought["amount"]);
    assert_eq!(app.notify(first_bought["order_id"].as_str().expect("order"), "settlement", &amount).await.status, 200);
    let (id, _) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert_eq!(document(&app, "alice", &id).await["invoice_id"], second_bought["invoice_id"]);
    let paid_later = app.ledger.invoice(&InvoiceId::parse(first_bought["invoice_id"].as_str().expect("id")).expect("id")).await;
    assert_eq!(paid_later.expect("read").expect("exists").remaining, 1);
}

#[tokio::test]
async fn a_signed_document_keeps_its_signature_when_stamped() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    let original = fixture("signed-selfsigned-a4-v1.7-pdfjs.pdf");
    let (id, outcome) = app.stamp_document("alice", &original, json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    let pdf = download(&document(&app, "alice", &id).await).await;
    assert_eq!(&pdf[..original.len()], &original[..], "the signed revision is untouched");
}

#[tokio::test]
async fn documents_api_validates_and_hides_other_accounts() {
    let app = spawn_app().await;
    let cases = [
        (r#"{}"#, 400, "bad_request"),
        (r#"{"file_name": ""}"#, 400, "bad_request"),
        (r#"{"file_name": "a.pdf", "placement": {"page": 0, "x_mm": 1, "y_mm": 1}}"#, 422, "page_out_of_range"),
        (r#"{"file_name": "a.pdf", "placement": {"x_mm": -1, "y_mm": 1}}"#, 422, "placement_out_of_bounds"),
        (r#"{"file_name": "a.pdf", "placement": {"x_mm": "left", "y_mm": 1}}"#, 400, "bad_request"),
        (r#"{"file_name": "a.pdf", "placement": 7}"#, 400, "bad_request"),
    ];
    for (body, status, code) in cases {
        let r = app.create_document("alice", body).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}");
    }
    // Coordinates the ledger could not store (DynamoDB numbers stop at 1e126 and 1e-130): too
    // large is refused like any placement off the page; negligible is zero (schemathesis found
    // a 1e200 answered 503 by the failed write).
    let r = app.create_document("alice", r#"{"file_name": "a.pdf", "placement": {"x_mm": 1e200, "y_mm": 1}}"#).await;
    assert_eq!((r.status, r.code()), (422, "placement_out_of_bounds"), "{:?}", r.body);
    let r = app.create_document("alice", r#"{"file_name": "a.pdf", "placement": {"x_mm": 1e-200, "y_mm": 1000000}}"#).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let tiny = app.get("alice", &format!("/v1/documents/{}", r.body["document_id"].as_str().expect("id"))).await;
    assert_eq!((tiny.body["placement"]["x_mm"].as_f64(), tiny.body["placement"]["y_mm"].as_f64()), (Some(0.0), Some(1_000_000.0)));
    let created = app.create_document("alice", r#"{"file_name": "surat.pdf", "placement": {"page": 1, "x_mm": 120, "y_mm": 220}}"#).await;
    assert_eq!(created.status, 201);
    let b = &created.body;
    assert_eq!(b["status"], "AWAITING_UPLOAD");
    assert_eq!(b["max_bytes"], 800000);
    assert_eq!(b["upload"]["method"], "PUT");
    assert_eq!(b["upload"]["headers"]["content-type"], "application/pdf");
    assert!(b["upload"]["url"].as_str().is_some_and(|u| u.contains(&format!("incoming/alice/{}.pdf", b["document_id"].as_str().unwrap_or("")))));
    let id = b["document_id"].as_str().expect("id");
    assert_eq!(app.get("mallory", &format!("/v1/documents/{id}")).await.status, 404);
    assert_eq!(app.call(request(Method::POST, "/v1/documents", None, Some("{}"))).await.status, 401);
    let r = app.call(request(Method::GET, "/v1/verify/NOTASERIAL", None, None)).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app.call(request(Method::GET, "/v1/verify/0000000000000000000000", None, None)).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let mut not_pdf = request(Method::POST, "/v1/verify", None, None);
    not_pdf.body = b"hello".to_vec();
    let r = app.call(not_pdf).await;
    assert_eq!((r.status, r.code()), (422, "not_pdf"));
}
