//! Checkout and invoices against DynamoDB Local: idempotency, validation, ownership.

use emeterai_local::midtrans_sim::MidtransSim;
use emeterai_tests::{Gateway, SERVER_KEY, request, spawn_app, spawn_app_with};
use futures::future::join_all;
use http::Method;

#[tokio::test]
async fn checkout_creates_a_pending_invoice_even_without_the_gateway() {
    let app = spawn_app().await;
    let r = app.checkout("alice", Some("first-checkout"), r#"{"quantity": 3}"#).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let b = &r.body;
    assert_eq!(b["status"], "PENDING");
    assert_eq!(b["quantity"], 3);
    assert_eq!(b["unit_price"], 10000);
    assert_eq!(b["amount"], 30000);
    assert_eq!(b["currency"], "IDR");
    assert!(b["payment"].is_null(), "gateway unreachable: payment must be null");
    assert!(b["invoice_id"].as_str().is_some_and(|s| s.starts_with("inv_")));
    assert!(b["order_id"].as_str().is_some_and(|s| s.starts_with("EMT-")));
    assert!(r.header("idempotent-replayed").is_none());

    let id = b["invoice_id"].as_str().expect("id");
    let got = app.get("alice", &format!("/v1/invoices/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["invoice_id"], b["invoice_id"]);
    assert_eq!(got.body["used"], 0);
    assert!(got.body["refund"].is_null());
    assert_eq!(app.quota("alice").await, (0, 3));
}

#[tokio::test]
async fn unit_price_comes_from_configuration() {
    let app = spawn_app_with(Gateway::Unreachable, &[("EMETERAI_UNIT_PRICE", "12000")]).await;
    let b = app.buy("alice", 2).await;
    assert_eq!(b["unit_price"], 12000);
    assert_eq!(b["amount"], 24000);
}

#[tokio::test]
async fn replay_returns_the_same_response_and_creates_nothing() {
    let app = spawn_app().await;
    let first = app.checkout("alice", Some("k-replay"), r#"{"quantity": 2}"#).await;
    assert_eq!(first.status, 201);
    // Same meaning, other formatting: still the same request.
    let again = app.checkout("alice", Some("k-replay"), "{ \"quantity\":2 }").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.raw.body, first.raw.body, "replay must be byte-identical");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let list = app.get("alice", "/v1/invoices").await;
    assert_eq!(list.body["invoices"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.quota("alice").await, (0, 2));
}

#[tokio::test]
async fn same_key_other_body_is_refused() {
    let app = spawn_app().await;
    assert_eq!(app.checkout("alice", Some("k1"), r#"{"quantity": 2}"#).await.status, 201);
    let r = app.checkout("alice", Some("k1"), r#"{"quantity": 3}"#).await;
    assert_eq!((r.status, r.code()), (422, "idempotency_key_reused"));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // Keys are per account: bob may use the same key.
    assert_eq!(app.checkout("bob", Some("k1"), r#"{"quantity": 3}"#).await.status, 201);
}

#[tokio::test]
async fn bad_requests_get_clear_codes() {
    let app = spawn_app().await;
    let cases: [(Option<&str>, &str, u16, &str); 11] = [
        (None, r#"{"quantity": 1}"#, 400, "idempotency_key_required"),
        (Some("has space"), r#"{"quantity": 1}"#, 400, "idempotency_key_invalid"),
        (Some(&"x".repeat(129)), r#"{"quantity": 1}"#, 400, "idempotency_key_invalid"),
        (Some("q0"), r#"{"quantity": 0}"#, 422, "quantity_out_of_range"),
        (Some("q1001"), r#"{"quantity": 1001}"#, 422, "quantity_out_of_range"),
        (Some("qneg"), r#"{"quantity": -1}"#, 422, "quantity_out_of_range"),
        (Some("qstr"), r#"{"quantity": "3"}"#, 422, "quantity_out_of_range"),
        (Some("qfrac"), r#"{"quantity": 1.5}"#, 422, "quantity_out_of_range"),
        (Some("qmissing"), r#"{}"#, 422, "quantity_out_of_range"),
        (Some("notjson"), r#"{"quantity": "#, 400, "bad_request"),
        (Some("array"), r#"[1]"#, 400, "bad_request"),
    ];
    for (key, body, status, code) in cases {
        let r = app.checkout("alice", key, body).await;
        assert_eq!((r.status, r.code()), (status, code), "key {key:?} body {body}");
    }
    let huge = format!(r#"{{"quantity": 1, "pad": "{}"}}"#, "x".repeat(70_000));
    let r = app.checkout("alice", Some("huge"), &huge).await;
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));
    assert_eq!(app.quota("alice").await, (0, 0), "rejected requests create nothing");
}

#[tokio::test]
async fn no_token_is_unauthorized_and_health_is_public() {
    let app = spawn_app().await;
    for (method, path) in [(Method::GET, "/v1/quota"), (Method::GET, "/v1/invoices"), (Method::POST, "/v1/checkouts")] {
        let r = app.call(request(method, path, None, Some("{}"))).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{path}");
    }
    let r = app.call(request(Method::GET, "/healthz", None, None)).await;
    assert_eq!(r.status, 200);
    let r = app.call(request(Method::GET, "/v1/nope", Some("alice"), None)).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app.call(request(Method::DELETE, "/v1/quota", Some("alice"), None)).await;
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn another_accounts_invoice_is_not_found() {
    let app = spawn_app().await;
    let inv = app.buy("alice", 1).await;
    let id = inv["invoice_id"].as_str().expect("id");
    let r = app.get("mallory", &format!("/v1/invoices/{id}")).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app.call(request(Method::POST, &format!("/v1/invoices/{id}/payment"), Some("mallory"), None)).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = app.get("mallory", "/v1/invoices/inv_not-an-id").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let list = app.get("mallory", "/v1/invoices").await;
    assert_eq!(list.body["invoices"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn sixteen_concurrent_same_key_checkouts_make_one_invoice() {
    let app = spawn_app().await;
    let replies = join_all((0..16).map(|_| app.checkout("alice", Some("storm"), r#"{"quantity": 5}"#))).await;
    let created: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert!(!created.is_empty(), "at least one request must win");
    for r in &replies {
        assert!(
            r.status == 201 || (r.status == 409 && r.code() == "idempotency_key_in_progress"),
            "unexpected {} {:?}",
            r.status,
            r.body
        );
    }
    let ids: std::collections::HashSet<_> = created.iter().map(|r| r.body["invoice_id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "every 201 names the same invoice");
    let list = app.get("alice", "/v1/invoices").await;
    assert_eq!(list.body["invoices"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.quota("alice").await, (0, 5));
}

/// Ordered by events, not time: the simulator holds the first request's call to the gateway
/// (made between the checkout's two writes) and tells the test; the second request is sent then,
/// while the first is surely in flight; only afterwards is the first let go.
#[tokio::test]
async fn same_key_while_first_is_in_flight_is_409() {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let mut held = sim.hold_snap_requests();
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    let first = app.checkout("alice", Some("slow"), r#"{"quantity": 1}"#);
    let second = async {
        let snap = held.recv().await.expect("the first request reaches the gateway");
        let second = app.checkout("alice", Some("slow"), r#"{"quantity": 1}"#).await;
        snap.release();
        second
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!((second.status, second.code()), (409, "idempotency_key_in_progress"));
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert!(first.body["payment"]["token"].is_string(), "the gateway answered once released");
    sim.stop_holding_snap_requests();
    let replay = app.checkout("alice", Some("slow"), r#"{"quantity": 1}"#).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.raw.body, first.raw.body);
}

#[tokio::test]
async fn listing_pages_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for q in 1..=5 {
        ids.push(app.buy("alice", q).await["invoice_id"].as_str().expect("id").to_owned());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut path = "/v1/invoices?limit=2".to_owned();
    for _ in 0..10 {
        let page = app.get("alice", &path).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        seen.extend(page.body["invoices"].as_array().expect("list").iter().map(|i| i["invoice_id"].as_str().expect("id").to_owned()));
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/invoices?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = app.get("alice", "/v1/invoices?cursor=garbage").await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
    let r = app.get("alice", "/v1/invoices?limit=0").await;
    assert_eq!((r.status, r.code()), (400, "bad_request"));
}
