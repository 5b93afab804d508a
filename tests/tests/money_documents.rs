//! Documents and quota under rare interleavings (issue 8, items 7 and 8), against DynamoDB Local
//! and SeaweedFS: what "now" the stamp function uses, stuck documents, and usable quota.

use chrono::{Duration, TimeZone, Utc};
use emeterai::handlers::stamp::Outcome;
use emeterai_tests::{fixture, spawn_app};
use serde_json::json;

const DOC: &str = "rotate-270-a4-autocad.pdf";

#[tokio::test]
async fn the_stamp_function_reads_now_from_its_clock() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    // Within the quota's validity (14 days from payment), at a whole second.
    let at = Utc.timestamp_opt(Utc::now().timestamp() + 3600, 0).single().expect("time");
    app.clock.set(at);
    let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    let doc = app.get("alice", &format!("/v1/documents/{id}")).await.body;
    assert_eq!(doc["stamped_at"], emeterai::domain::time::format(at), "{doc}");
    assert!(at - Utc::now() > Duration::minutes(30), "not the wall clock");
}

/// Every invariant of the ledger (and each stamped object's hash) holds, by the operator's audit.
async fn assert_audit_holds(app: &emeterai_tests::TestApp) {
    let (dynamodb, _) = emeterai_local::provision::clients_from_env().await;
    let report = emeterai::audit::Audit::new(dynamodb, &app.table)
        .with_bucket(app.s3.clone(), &app.bucket)
        .run(std::sync::Arc::new(emeterai::audit::Progress::default()))
        .await
        .expect("audit runs");
    assert!(report.holds(), "{:?}", report.violations);
}

/// Issue 8, item 7: a stamp run that dies after reserving its serial (and every retry with it,
/// the event gone to the dead-letter queue) leaves the document PROCESSING. The sweep releases
/// it once it is stale: REJECTED `retry`, the serial never issued, the quota untouched, and a
/// late redelivery of the event changes nothing. Two sweeps at once release it once.
#[tokio::test]
async fn a_document_whose_stamp_run_died_is_released_by_the_sweep_with_nothing_charged() {
    use emeterai::handlers::stamp::Step;
    use emeterai::ledger::documents::STALE_PROCESSING_MINUTES;
    use emeterai_tests::TestApp;

    let app = spawn_app().await;
    app.fund("alice", 1).await;
    let reserved_at = Utc.timestamp_opt(Utc::now().timestamp(), 0).single().expect("time");
    app.clock.set(reserved_at);
    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
    let id = created.body["document_id"].as_str().expect("id").to_owned();
    let key = TestApp::incoming_key("alice", &id);
    app.faults.crash_once_after(Step::Reserved);
    assert!(app.deliver(&key).await.is_err(), "the run dies after reserving");
    let doc = app.get("alice", &format!("/v1/documents/{id}")).await.body;
    assert_eq!(doc["status"], "PROCESSING");
    let document_id = emeterai::domain::ids::DocumentId::parse(&id).expect("id");
    let reserved = app.ledger.document(&document_id).await.expect("read").expect("doc").reservation.expect("reserved");

    // Before the threshold: a stamp run (or Lambda's retry of it) may still be under way.
    let stale_at = reserved_at + Duration::minutes(STALE_PROCESSING_MINUTES);
    let early = app.sweep.run(stale_at - Duration::minutes(1)).await;
    assert_eq!(early.documents_released, 0, "{early:?}");
    assert_eq!(app.get("alice", &format!("/v1/documents/{id}")).await.body["status"], "PROCESSING");

    // After it: two sweeps at once release it exactly once.
    let (a, b) = tokio::join!(app.sweep.run(stale_at + Duration::minutes(1)), app.sweep.run(stale_at + Duration::minutes(1)));
    assert_eq!(a.documents_released + b.documents_released, 1, "{a:?} {b:?}");
    assert_eq!(a.errors + b.errors, 0, "{a:?} {b:?}");
    let doc = app.get("alice", &format!("/v1/documents/{id}")).await.body;
    assert_eq!(doc["status"], "REJECTED", "{doc}");
    assert_eq!(doc["rejection"]["code"], "retry", "{doc}");
    assert!(doc["download_url"].is_null() && doc["serial"].is_null(), "{doc}");
    app.clock.follow_wall_clock();
    assert_eq!(app.quota("alice").await, (1, 0), "nothing was charged");
    let registry = app.get("alice", &format!("/v1/verify/{}", reserved.serial.as_str())).await;
    assert_eq!(registry.status, 404, "the reserved serial was never issued: {:?}", registry.body);

    // The event, redriven from the dead-letter queue after the release: nothing more happens.
    assert_eq!(app.deliver(&key).await.expect("redelivery"), Outcome::AlreadyFinal);
    assert_eq!(app.quota("alice").await, (1, 0));
    let later = app.sweep.run(stale_at + Duration::minutes(10)).await;
    assert_eq!(later.documents_released, 0, "{later:?}");
    assert_audit_holds(&app).await;

    // The released unit still buys a stamp.
    let (_, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    assert_eq!(app.quota("alice").await, (0, 0));
    assert_audit_holds(&app).await;
}

/// A document that ends normally leaves the sweep's list in the same write (no extra round
/// trip, no entry left for the sweep to read), whether it was stamped or rejected after its
/// serial was reserved.
#[tokio::test]
async fn a_finished_document_leaves_the_sweeps_list() {
    let app = spawn_app().await;
    app.fund("alice", 1).await;
    let (stamped, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert!(matches!(outcome, Outcome::Stamped { .. }), "{outcome:?}");
    app.fund("alice", 1).await;
    let (rejected, outcome) = app.stamp_document("alice", b"%PDF-1.7\nnot really a PDF", json!(null)).await;
    assert!(matches!(outcome, Outcome::Rejected { .. }), "{outcome:?}");
    let later = Utc::now() + Duration::hours(2);
    assert_eq!(app.ledger.stale_documents(later, 25).await.expect("query").items, vec![], "nothing left on the list");
    let report = app.sweep.run(later).await;
    assert_eq!((report.documents_released, report.errors), (0, 0), "{report:?}");
    assert_eq!(app.get("alice", &format!("/v1/documents/{stamped}")).await.body["status"], "STAMPED");
    assert_eq!(app.get("alice", &format!("/v1/documents/{rejected}")).await.body["status"], "REJECTED");
    assert_audit_holds(&app).await;
}
