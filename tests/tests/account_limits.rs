//! Per-account limits against DynamoDB Local and SeaweedFS: unpaid checkouts and open documents
//! answer 429 problem+json with Retry-After once an account holds its limit, a replay is never
//! refused, and a slot comes back when an invoice or a document ends.

use emeterai::domain::time;
use emeterai::handlers::stamp::Outcome;
use emeterai_tests::{Gateway, Reply, TestApp, fixture, spawn_app_with};
use futures::future::join_all;

fn assert_limited(r: &Reply, code: &str) {
    assert_eq!((r.status, r.code()), (429, code), "{:?}", r.body);
    assert_eq!(r.body["status"], 429);
    assert_eq!(r.body["title"], "Too Many Requests");
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

fn retry_after(r: &Reply) -> u64 {
    r.header("retry-after").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("Retry-After in {:?}", r.raw.headers))
}

#[tokio::test]
async fn unpaid_checkouts_are_limited_per_account_and_free_up_when_paid_or_ended() {
    let app = spawn_app_with(Gateway::Unreachable, &[("EMETERAI_MAX_UNPAID_CHECKOUTS", "2")]).await;
    let first = app.checkout("alice", Some("limit-1"), r#"{"quantity": 1}"#).await;
    let second = app.checkout("alice", Some("limit-2"), r#"{"quantity": 2}"#).await;
    assert_eq!((first.status, second.status), (201, 201));

    let refused = app.checkout("alice", Some("limit-3"), r#"{"quantity": 1}"#).await;
    assert_limited(&refused, "too_many_unpaid_checkouts");
    assert_eq!(retry_after(&refused), 300, "one sweep period");
    assert_eq!(app.quota("alice").await, (0, 3), "nothing opened by the refused checkout");
    assert_eq!(app.get("alice", "/v1/invoices").await.body["invoices"].as_array().map(Vec::len), Some(2));

    // A replay of an existing checkout is never refused by the limit.
    let replay = app.checkout("alice", Some("limit-1"), r#"{"quantity": 1}"#).await;
    assert_eq!((replay.status, replay.header("idempotent-replayed")), (201, Some("true")), "{:?}", replay.body);
    assert_eq!(replay.raw.body, first.raw.body);
    // Another account has its own limit.
    assert_eq!(app.checkout("bob", Some("limit-1"), r#"{"quantity": 1}"#).await.status, 201);

    // Paid: a slot is free again, and the refused key now works (nothing was written under it).
    let paid = app.notify(first.body["order_id"].as_str().expect("order"), "settlement", "10000.00").await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    assert_eq!(app.checkout("alice", Some("limit-3"), r#"{"quantity": 1}"#).await.status, 201);
    assert_limited(&app.checkout("alice", Some("limit-4"), r#"{"quantity": 1}"#).await, "too_many_unpaid_checkouts");

    // Expired by the gateway: a slot again.
    let expired = app.notify(second.body["order_id"].as_str().expect("order"), "expire", "20000.00").await;
    assert_eq!(expired.status, 200, "{:?}", expired.body);
    assert_eq!(app.checkout("alice", Some("limit-4"), r#"{"quantity": 1}"#).await.status, 201);
    assert_eq!(app.quota("alice").await, (1, 2), "one paid unit, two pending");
}

#[tokio::test]
async fn concurrent_checkouts_never_exceed_the_unpaid_limit() {
    let app = spawn_app_with(Gateway::Unreachable, &[("EMETERAI_MAX_UNPAID_CHECKOUTS", "3")]).await;
    let keys: Vec<String> = (0..12).map(|i| format!("race-{i}")).collect();
    let replies = join_all(keys.iter().map(|k| app.checkout("carol", Some(k), r#"{"quantity": 1}"#))).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    let limited = replies.iter().filter(|r| r.status == 429 && r.code() == "too_many_unpaid_checkouts").count();
    assert_eq!((created, limited), (3, 9), "{:?}", replies.iter().map(|r| (r.status, r.code().to_owned())).collect::<Vec<_>>());
    assert_eq!(app.quota("carol").await, (0, 3));
}

#[tokio::test]
async fn open_documents_are_limited_per_account_until_stamped_or_rejected() {
    let app = spawn_app_with(Gateway::Unreachable, &[("EMETERAI_MAX_OPEN_DOCUMENTS", "2")]).await;
    let body = r#"{"file_name": "surat.pdf"}"#;
    let to_stamp = app.create_document("dina", body).await;
    let to_reject = app.create_document("dina", body).await;
    assert_eq!((to_stamp.status, to_reject.status), (201, 201));

    let refused = app.create_document("dina", body).await;
    assert_limited(&refused, "too_many_open_documents");
    // The oldest open document leaves the 30-minute window first.
    assert!((1..=30 * 60).contains(&retry_after(&refused)), "{:?}", refused.raw.headers);
    assert_eq!(app.create_document("eko", body).await.status, 201, "another account has its own limit");

    // Stamped: no longer open.
    app.fund("dina", 1).await;
    assert_eq!(app.upload(&to_stamp.body, &fixture("rotate-270-a4-autocad.pdf")).await, 200);
    let key = TestApp::incoming_key("dina", to_stamp.body["document_id"].as_str().expect("id"));
    assert!(matches!(app.deliver(&key).await, Ok(Outcome::Stamped { .. })));
    let third = app.create_document("dina", body).await;
    assert_eq!(third.status, 201, "{:?}", third.body);
    assert_limited(&app.create_document("dina", body).await, "too_many_open_documents");

    // Rejected (not a PDF): no longer open either.
    assert_eq!(app.upload(&to_reject.body, b"plain text, not a PDF").await, 200);
    let key = TestApp::incoming_key("dina", to_reject.body["document_id"].as_str().expect("id"));
    assert!(matches!(app.deliver(&key).await, Ok(Outcome::Rejected { .. })), "not a PDF");
    assert_eq!(app.create_document("dina", body).await.status, 201);

    // Only documents created inside the window count: none was created after an hour from now.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let open = app.ledger.open_documents(&TestApp::account("dina"), later, 10).await.expect("query");
    assert_eq!(open.count, 0);
    let open = app.ledger.open_documents(&TestApp::account("dina"), later - chrono::Duration::hours(2), 10).await.expect("query");
    assert_eq!(open.count, 2, "the third and the last document");
    assert!(open.oldest_created_at.is_some_and(|t| time::format(t) <= time::format(chrono::Utc::now())));
}
