//! `available` means usable, and "no quota" is said only on consistent reads (issue 8, items 8
//! and 7), against DynamoDB Local and SeaweedFS.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration};
use emeterai::domain::ids::DocumentId;
use emeterai::handlers::stamp::Outcome;
use emeterai_tests::{TestApp, fixture, spawn_app};
use serde_json::{Value, json};

const DOC: &str = "rotate-270-a4-autocad.pdf";

fn valid_until(app_invoice: &Value) -> DateTime<chrono::Utc> {
    DateTime::parse_from_rfc3339(app_invoice["valid_until"].as_str().expect("valid_until")).expect("time").to_utc()
}

async fn paid_invoice(app: &TestApp, inv: &Value) -> Value {
    app.get("alice", &format!("/v1/invoices/{}", inv["invoice_id"].as_str().expect("id"))).await.body
}

#[tokio::test]
async fn units_whose_validity_ended_are_not_available() {
    let app = spawn_app().await;
    let inv = app.fund("alice", 2).await;
    assert_eq!(app.quota("alice").await, (2, 0));
    let ends = valid_until(&paid_invoice(&app, &inv).await);

    app.clock.set(ends - Duration::minutes(1));
    assert_eq!(app.quota("alice").await, (2, 0), "still valid");
    // The sweep has not refunded them yet, but they can no longer be used.
    app.clock.set(ends + Duration::minutes(1));
    assert_eq!(app.quota("alice").await, (0, 0), "validity ended");

    // The stamp's precheck agrees: refused before any serial is reserved or any work done.
    let (id, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    assert_eq!(outcome, Outcome::Rejected { code: "no_quota".into() });
    let doc = app.ledger.document(&DocumentId::parse(&id).expect("id")).await.expect("read").expect("doc");
    assert!(doc.reservation.is_none(), "refused by the precheck: {doc:?}");
}

#[tokio::test]
async fn a_lagging_index_never_turns_into_no_quota() {
    let app = spawn_app().await;
    let inv = app.fund("alice", 2).await;
    // The usable-quota index has not caught up with the credit yet (DynamoDB's GSIs are
    // eventually consistent; DynamoDB Local's are not, so the lag is made by hand).
    let id = inv["invoice_id"].as_str().expect("id").to_owned();
    let (client, _) = emeterai_local::provision::clients_from_env().await;
    let pk = AttributeValue::S(format!("INV#{id}"));
    let sk = AttributeValue::S("INVOICE".into());
    let hidden = client
        .update_item()
        .table_name(&app.table)
        .key("pk", pk.clone())
        .key("sk", sk.clone())
        .update_expression("REMOVE usable_sk")
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
        .send()
        .await
        .expect("hide from the index");
    let usable_sk = hidden.attributes().and_then(|a| a.get("usable_sk")).cloned().expect("usable_sk");

    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
    let doc_id = created.body["document_id"].as_str().expect("id").to_owned();
    let upload = TestApp::incoming_key("alice", &doc_id);
    let first = app.deliver(&upload).await;
    assert!(first.is_err(), "the run fails (the event is redelivered) instead of refusing: {first:?}");
    let doc = app.get("alice", &format!("/v1/documents/{doc_id}")).await.body;
    assert_ne!(doc["status"], "REJECTED", "{doc}");

    // The index catches up; the redelivered event stamps.
    client
        .update_item()
        .table_name(&app.table)
        .key("pk", pk)
        .key("sk", sk)
        .update_expression("SET usable_sk = :u")
        .expression_attribute_values(":u", usable_sk)
        .send()
        .await
        .expect("index caught up");
    let again = app.deliver(&upload).await.expect("stamp run");
    assert!(matches!(again, Outcome::Stamped { .. }), "{again:?}");
    assert_eq!(app.quota("alice").await, (1, 0));
}
