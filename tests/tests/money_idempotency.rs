//! An idempotency takeover reuses what the first attempt created (issue 8, item 9), against
//! DynamoDB Local: the first attempt "dies" after its ledger write and before its answer was
//! stored; the client's retry comes after the claim's in-progress expiry.

use chrono::{Duration, Utc};
use emeterai::domain::idempotency::{IdempotencyKey, request_hash};
use emeterai::domain::ids::{AccountId, InvoiceId, Ulid};
use emeterai::domain::invoice::Invoice;
use emeterai::domain::money::Rupiah;
use emeterai::domain::quantity::Quantity;
use emeterai::domain::refund::{RefundReason, refund_id_of};
use emeterai::ledger::idempotency::{Claim, Claimed};
use emeterai::ledger::invoices::Opened;
use emeterai::ledger::refunds::RefundRequested;
use emeterai_tests::{request, spawn_app};
use http::{HeaderValue, Method};
use serde_json::json;

#[tokio::test]
async fn a_checkout_retried_after_the_first_attempt_died_returns_its_invoice() {
    let app = spawn_app().await;
    let account = AccountId::parse("alice").expect("account");
    let key = IdempotencyKey::parse("buy-once").expect("key");
    let body = json!({"quantity": 2});
    let hash = request_hash("POST /v1/checkouts", &body);
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    // The first attempt: claim + invoice written in one transaction, then the Lambda died.
    let claim = Claim { account: &account, key: &key, request_hash: &hash, now_ms, in_progress_until_ms: now_ms + 1 };
    let id = InvoiceId::new(Ulid::generate(u64::try_from(now_ms).expect("ms"), &mut rand::thread_rng()));
    let first = Invoice::open(id, account.clone(), Quantity::new(2).expect("q"), Rupiah::new(10_000), now, Duration::hours(24))
        .expect("invoice");
    assert!(matches!(app.ledger.open_invoice(&claim, &first, now + Duration::minutes(10), 100).await.expect("open"), Opened::Created));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let retry = app.checkout("alice", Some("buy-once"), &body.to_string()).await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    assert_eq!(retry.body["invoice_id"], first.id.to_string(), "the first attempt's invoice, not a second one");
    let listed = app.get("alice", "/v1/invoices").await.body;
    assert_eq!(listed["invoices"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(app.quota("alice").await, (0, 2), "two units pending, not four");
    // And from now on the key replays that answer.
    let replay = app.checkout("alice", Some("buy-once"), &body.to_string()).await;
    assert_eq!((replay.status, replay.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(replay.body["invoice_id"], first.id.to_string());
}

#[tokio::test]
async fn a_refund_request_whose_answer_was_lost_replays_as_the_same_refund() {
    let app = spawn_app().await;
    let inv = app.fund("alice", 2).await;
    let invoice_id = InvoiceId::parse(inv["invoice_id"].as_str().expect("id")).expect("invoice id");
    let account = AccountId::parse("alice").expect("account");
    let key = IdempotencyKey::parse("refund-once").expect("key");
    let hash = request_hash("POST /v1/invoices/{invoice_id}/refund", &json!({"invoice_id": invoice_id.to_string()}));
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    // The first attempt: key claimed, refund made, then it died before storing its answer.
    let claim = Claim { account: &account, key: &key, request_hash: &hash, now_ms, in_progress_until_ms: now_ms + 1 };
    assert_eq!(app.ledger.claim(&claim, &refund_id_of(&invoice_id).to_string()).await.expect("claim"), Claimed::Fresh);
    let stored = app.ledger.invoice(&invoice_id).await.expect("read").expect("invoice");
    let made = app.ledger.request_refund(&stored, RefundReason::Requested, now).await.expect("refund");
    assert!(matches!(made, RefundRequested::Created(_)));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let mut retry = request(Method::POST, &format!("/v1/invoices/{invoice_id}/refund"), Some("alice"), None);
    retry.headers.insert("idempotency-key", HeaderValue::from_static("refund-once"));
    let r = app.call(retry).await;
    assert_eq!(r.status, 202, "the same refund, not nothing_to_refund: {:?}", r.body);
    assert_eq!(r.body["refund_id"], refund_id_of(&invoice_id).to_string());
    assert_eq!((r.body["units"].as_u64(), r.body["amount"].as_u64()), (Some(2), Some(20000)));
    // Without the key, asking again is still "nothing to refund".
    let again = app.call(request(Method::POST, &format!("/v1/invoices/{invoice_id}/refund"), Some("alice"), None)).await;
    assert_eq!((again.status, again.code()), (409, "nothing_to_refund"));
}
