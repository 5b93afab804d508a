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
