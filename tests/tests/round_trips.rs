//! The hot paths' DynamoDB budget: one round trip per state change (plus the reads that decide).

use emeterai::handlers::stamp::Outcome;
use emeterai_tests::{TestApp, fixture, spawn_app};

#[tokio::test]
async fn checkout_notification_and_stamp_stay_within_their_round_trips() {
    let app = spawn_app().await;
    // Checkout: open invoice + claim (1 transaction), store link + response (1 transaction).
    let (reply, calls) = app.dynamodb_calls_during(app.checkout("alice", Some("rt-1"), r#"{"quantity": 2}"#)).await;
    assert_eq!(reply.status, 201);
    assert_eq!(calls, 2, "checkout");
    // Replay: the failed claim returns the stored response (1 transaction).
    let (reply, calls) = app.dynamodb_calls_during(app.checkout("alice", Some("rt-1"), r#"{"quantity": 2}"#)).await;
    assert_eq!(reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(calls, 1, "replay");

    let order = reply.body["order_id"].as_str().expect("order").to_owned();
    // Settlement: read the invoice, then one transaction.
    let (reply, calls) = app.dynamodb_calls_during(app.notify(&order, "settlement", "20000.00")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(calls, 2, "settlement");
    // Duplicate: the read alone.
    let (_, calls) = app.dynamodb_calls_during(app.notify(&order, "settlement", "20000.00")).await;
    assert_eq!(calls, 1, "duplicate notification");

    let created = app.create_document("alice", r#"{"file_name": "a.pdf"}"#).await;
    assert_eq!(app.upload(&created.body, &fixture("rotate-270-a4-autocad.pdf")).await, 200);
    let key = TestApp::incoming_key("alice", created.body["document_id"].as_str().expect("id"));
    // Stamp: read document, query usable invoices (the precheck, whose answer the consumption
    // reuses), reserve serial, consume.
    let (outcome, calls) = app.dynamodb_calls_during(app.deliver(&key)).await;
    assert!(matches!(outcome, Ok(Outcome::Stamped { .. })), "{outcome:?}");
    assert_eq!(calls, 4, "stamp");
    // Redelivery after success: the document read alone.
    let (outcome, calls) = app.dynamodb_calls_during(app.deliver(&key)).await;
    assert_eq!(outcome.ok(), Some(Outcome::AlreadyFinal));
    assert_eq!(calls, 1, "duplicate S3 event");
}
