//! Least privilege: each function's policy in template.yaml allows exactly the AWS actions its
//! code calls, on exactly the resources it calls them on. The calls are recorded from the SDK
//! (tests/src/actions.rs) while every function walks its paths against DynamoDB Local, SeaweedFS
//! and the Midtrans simulator; the policies are read from the template.
//!
//! An action the template allows that no path used fails the test (take it out, or add the path
//! that needs it here); an action a path used that the template does not allow fails it too
//! (on AWS that path would be denied).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use emeterai::handlers::stamp::{Outcome, Step};
use emeterai_local::midtrans_sim::{MidtransSim, PayRequest};
use emeterai_tests::actions::Action;
use emeterai_tests::{Gateway, SERVER_KEY, TestApp, fixture, notification, request, spawn_app_with};
use http::{HeaderValue, Method};
use serde_json::{Value, json};
use yaml_serde::Value as Yaml;

const DOC: &str = "rotate-270-a4-autocad.pdf";

fn order(inv: &Value) -> &str {
    inv["order_id"].as_str().expect("order")
}

fn id(inv: &Value) -> &str {
    inv["invoice_id"].as_str().expect("invoice id")
}

/// Every path of the four functions that reaches AWS, once.
async fn walk_every_path(app: &TestApp, sim: &MidtransSim) {
    // Checkout: new, replayed, conflicting reuse of a key; reads; payment retry; quota.
    let first = app.checkout("alice", Some("lp-1"), r#"{"quantity": 3}"#).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(app.checkout("alice", Some("lp-1"), r#"{"quantity": 3}"#).await.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.checkout("alice", Some("lp-1"), r#"{"quantity": 2}"#).await.status, 422);
    assert_eq!(app.get("alice", "/v1/invoices").await.status, 200);
    assert_eq!(app.get("alice", &format!("/v1/invoices/{}", id(&first.body))).await.status, 200);
    let retry = app.call(request(Method::POST, &format!("/v1/invoices/{}/payment", id(&first.body)), Some("alice"), None)).await;
    assert_eq!(retry.status, 200, "{:?}", retry.body);
    assert_eq!(app.get("alice", "/v1/quota").await.status, 200);

    // Webhook: settlement, duplicate, wrong amount, unknown order, bad signature.
    let paid = sim.pay(order(&first.body), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    let other = app.buy("alice", 1).await;
    assert_eq!(app.notify(order(&other), "settlement", "1.00").await.status, 422);
    assert_eq!(app.notify("EMT-unknown", "settlement", "10000.00").await.status, 404);
    let forged = notification(order(&other), "settlement", "10000.00", "not-the-key");
    assert_eq!(app.notify_raw(&forged.to_string()).await.status, 401);

    // Stamp: stamped, redelivered, refused as invalid; documents and verification.
    let (document, outcome) = app.stamp_document("alice", &fixture(DOC), json!(null)).await;
    let Outcome::Stamped { serial, .. } = &outcome else { panic!("{outcome:?}") };
    let key = TestApp::incoming_key("alice", &document);
    assert_eq!(app.deliver(&key).await.expect("redelivery"), Outcome::AlreadyFinal);
    let (_, refused) = app.stamp_document("alice", b"%PDF-1.7\nnot really", json!(null)).await;
    assert!(matches!(refused, Outcome::Rejected { .. }), "{refused:?}");
    // A stamp run that dies after reserving its serial: the sweep releases the document later.
    app.faults.crash_once_after(Step::Reserved);
    let created = app.create_document("alice", r#"{"file_name": "dies.pdf"}"#).await;
    assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
    let dies = TestApp::incoming_key("alice", created.body["document_id"].as_str().expect("id"));
    assert!(app.deliver(&dies).await.is_err(), "the run dies after reserving");
    let got = app.get("alice", &format!("/v1/documents/{document}")).await;
    assert!(got.body["download_url"].is_string(), "{:?}", got.body);
    assert_eq!(app.call(request(Method::GET, &format!("/v1/verify/{serial}"), None, None)).await.status, 200);
    let mut verify = request(Method::POST, "/v1/verify", None, None);
    let stamped = app.s3.get_object().bucket(&app.bucket).key(format!("stamped/alice/{document}.pdf")).send().await.expect("stamped");
    verify.body = stamped.body.collect().await.expect("bytes").into_bytes().to_vec();
    assert_eq!(app.call(verify).await.status, 200);

    // Two uploads racing for one unit: both pass the precheck, the loser's stamped output is
    // deleted (nobody paid for it). Repeated until the race happened that way.
    let stamp_log = &app.actions.stamp;
    for round in 0..20 {
        if stamp_log.actions().contains(&("s3:DeleteObject".to_owned(), "stamped/*".to_owned())) {
            break;
        }
        assert!(round < 19, "two uploads never raced for the last unit");
        let racer = format!("racer{round}");
        app.fund(&racer, 1).await;
        let mut keys = Vec::new();
        for _ in 0..2 {
            let created = app.create_document(&racer, r#"{"file_name": "a.pdf"}"#).await;
            assert_eq!(app.upload(&created.body, &fixture(DOC)).await, 200);
            keys.push(TestApp::incoming_key(&racer, created.body["document_id"].as_str().expect("id")));
        }
        let (a, b) = tokio::join!(app.deliver(&keys[0]), app.deliver(&keys[1]));
        let stamped = [a.expect("run"), b.expect("run")].iter().filter(|o| matches!(o, Outcome::Stamped { .. })).count();
        assert_eq!(stamped, 1, "one unit, one stamp");
    }

    // Stamp without quota: bob has none.
    let (_, no_quota) = app.stamp_document("bob", &fixture(DOC), json!(null)).await;
    assert_eq!(no_quota, Outcome::Rejected { code: "no_quota".into() });

    // Refund request, with a key (and its replay).
    let path = format!("/v1/invoices/{}/refund", id(&first.body));
    let mut refund = request(Method::POST, &path, Some("alice"), None);
    refund.headers.insert("idempotency-key", HeaderValue::from_static("lp-refund"));
    assert_eq!(app.call(refund.clone()).await.status, 202);
    assert_eq!(app.call(refund).await.header("idempotent-replayed"), Some("true"));
    // A refused refund request gives its key back.
    let mut nothing = request(Method::POST, &format!("/v1/invoices/{}/refund", id(&other)), Some("alice"), None);
    nothing.headers.insert("idempotency-key", HeaderValue::from_static("lp-nothing"));
    assert_eq!(app.call(nothing).await.code(), "nothing_to_refund");

    // Sweep: refund submission now; later, reconciliation of a lost notification, expiry of an
    // unpaid invoice, the expiry refund of unused quota.
    app.sweep.run(Utc::now()).await;
    let lost = app.buy("carol", 1).await;
    sim.pay(order(&lost), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    let _unpaid = app.buy("dave", 1).await;
    let unused = app.buy("erin", 1).await;
    let paid = sim.pay(order(&unused), &PayRequest { deliveries: 0, ..PayRequest::default() }).await.expect("pay");
    assert_eq!(app.notify_raw(&paid.notification.to_string()).await.status, 200);
    let report = app.sweep.run(Utc::now() + Duration::minutes(30)).await;
    assert_eq!((report.credited, report.documents_released), (1, 1), "{report:?}");
    let report = app.sweep.run(Utc::now() + Duration::days(30)).await;
    assert!(report.expired >= 1 && report.quota_refunds >= 1, "{report:?}");
}

/// The template's policy statements for `function`, as (action, resource) pairs in the log's terms.
fn allowed(template: &Yaml, function: &str) -> BTreeSet<Action> {
    let policies = &template["Resources"][function]["Properties"]["Policies"];
    let mut allowed = BTreeSet::new();
    for policy in policies.as_sequence().expect("Policies is a list") {
        let Some(statements) = policy.get("Statement") else {
            // A SAM policy template (DynamoDBCrudPolicy, ...) grants more than any function here calls.
            allowed.insert((format!("policy template {policy:?}"), "*".to_owned()));
            continue;
        };
        for statement in statements.as_sequence().expect("Statement list") {
            assert_eq!(statement["Effect"].as_str(), Some("Allow"));
            let actions = list(&statement["Action"]).into_iter().map(|a| text(&a));
            let resources: Vec<String> = list(&statement["Resource"]).iter().map(resource).collect();
            for action in actions {
                for r in &resources {
                    allowed.insert((action.clone(), r.clone()));
                }
            }
        }
    }
    allowed
}

fn list(v: &Yaml) -> Vec<Yaml> {
    match v {
        Yaml::Sequence(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn text(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Tagged(t) => text(&t.value),
        other => panic!("not a string: {other:?}"),
    }
}

/// `!GetAtt LedgerTable.Arn` → `table`; `${LedgerTable.Arn}/index/due` → `index/due`;
/// `arn:aws:s3:::...-${AWS::Region}/incoming/*` → `incoming/*`.
fn resource(v: &Yaml) -> String {
    let s = text(v);
    if s == "LedgerTable.Arn" {
        "table".to_owned()
    } else if let Some(index) = s.strip_prefix("${LedgerTable.Arn}/") {
        index.to_owned()
    } else if s.starts_with("arn:aws:s3:::") || s.starts_with("arn:${AWS::Partition}:s3:::") {
        s.split_once("}/").map(|(_, prefix)| prefix.to_owned()).unwrap_or_else(|| panic!("bucket-wide resource {s}"))
    } else {
        panic!("unrecognised resource {s}")
    }
}

#[tokio::test]
async fn every_function_is_allowed_exactly_what_its_code_calls() {
    let sim = MidtransSim::start(SERVER_KEY, None).await.expect("simulator");
    let app = spawn_app_with(Gateway::At(sim.base_url().to_owned()), &[]).await;
    walk_every_path(&app, &sim).await;
    // The gateway down: checkout gives its idempotency claim back only on this path.
    let offline = spawn_app_with(Gateway::Unreachable, &[]).await;
    assert_eq!(offline.checkout("alice", Some("lp-offline"), r#"{"quantity": 1}"#).await.status, 201);
    offline.sweep.run(Utc::now() + Duration::minutes(30)).await;

    let template: Yaml =
        yaml_serde::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template"))
            .expect("yaml");
    let mut problems = BTreeMap::new();
    for ((function, log), (_, offline_log)) in app.actions.by_function().into_iter().zip(offline.actions.by_function()) {
        let called: BTreeSet<Action> = log.actions().union(&offline_log.actions()).cloned().collect();
        let allowed = allowed(&template, function);
        let unused: Vec<_> = allowed.difference(&called).collect();
        let denied: Vec<_> = called.difference(&allowed).collect();
        if !unused.is_empty() || !denied.is_empty() {
            problems.insert(function, format!("allowed but never called: {unused:?}\n    called but not allowed: {denied:?}\n    called: {called:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.iter().map(|(f, p)| format!("{f}:\n    {p}")).collect::<Vec<_>>().join("\n"));
}
