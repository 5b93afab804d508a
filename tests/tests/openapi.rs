//! The machine-readable contract (issue 13): the OpenAPI document generated from the handlers'
//! types is the one committed as docs/openapi.json, names every route of template.yaml (and no
//! other), is internally consistent (every `$ref` and link resolves), and is what
//! `GET /v1/openapi.json` serves.

use std::collections::BTreeSet;

use emeterai::handlers::openapi::document_json;
use emeterai_tests::{request, spawn_app, template};
use http::Method;
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
const REGENERATE: &str = "EMETERAI_WRITE_OPENAPI=1 cargo test --workspace --test openapi";

fn generated() -> Value {
    serde_json::from_str(document_json()).expect("the generated document is JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options", "trace"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn committed_document_is_the_generated_one() {
    if std::env::var_os("EMETERAI_WRITE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, document_json()).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == document_json(),
        "docs/openapi.json differs from the document the code generates; regenerate it with\n    {REGENERATE}\nand commit it"
    );
}

#[test]
fn every_template_route_is_documented_and_nothing_else() {
    let routes: BTreeSet<(String, String)> = template()
        .http_routes()
        .expect("routes")
        .into_iter()
        .filter(|r| r.method != "ANY")
        .map(|r| (r.method, r.path))
        .collect();
    let documented = operations(&generated());
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(missing.is_empty(), "routes of template.yaml missing from the OpenAPI document: {missing:?}");
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(extra.is_empty(), "operations in the OpenAPI document that template.yaml does not route: {extra:?}");
}

/// API Gateway answers a method no route takes with its own 404; the catch-all routes bring such
/// requests to the API function instead, which answers 405 with `Allow` from this document.
/// `ANY` routes are the catch-alls and nothing else: an operation needs its own method.
#[test]
fn catch_all_routes_cover_every_documented_path() {
    let catch_alls: BTreeSet<(String, String, String, bool)> = template()
        .http_routes()
        .expect("routes")
        .into_iter()
        .filter(|r| r.method == "ANY")
        .map(|r| (r.method, r.path, r.binary, r.auth_none))
        .collect();
    let expected: BTreeSet<(String, String, String, bool)> = [("ANY", "/v1/{proxy+}"), ("ANY", "/healthz")]
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned(), "checkout".to_owned(), true))
        .collect();
    assert_eq!(catch_alls, expected, "the catch-all routes of template.yaml");
    for (_, path) in operations(&generated()) {
        assert!(path.starts_with("/v1/") || path == "/healthz", "{path} is outside the catch-alls");
    }
}

#[test]
fn public_routes_are_exactly_the_documented_public_operations() {
    let doc = generated();
    for route in template().http_routes().expect("routes").into_iter().filter(|r| r.method != "ANY") {
        let operation = &doc["paths"][&route.path][route.method.to_lowercase()];
        let public = operation["security"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(public, route.auth_none, "{} {}: security in the document vs Auth in template.yaml", route.method, route.path);
    }
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r);
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn document_is_consistent() {
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("external reference {r}"));
        assert!(doc.pointer(pointer).is_some(), "unresolved reference {r}");
    }
    // Operation ids are unique and every link names one of them, with parameters it has.
    let mut ids = std::collections::BTreeMap::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("path item").values() {
            let id = operation["operationId"].as_str().expect("every operation has an id");
            assert!(ids.insert(id.to_owned(), operation.clone()).is_none(), "duplicate operationId {id}");
        }
    }
    let mut links = 0;
    for operation in ids.values() {
        for response in operation["responses"].as_object().expect("responses").values() {
            for (name, link) in response["links"].as_object().into_iter().flatten() {
                links += 1;
                let target = link["operationId"].as_str().expect("link by operationId");
                let target = ids.get(target).unwrap_or_else(|| panic!("link {name} names no operation"));
                for parameter in link["parameters"].as_object().expect("link parameters").keys() {
                    let known = target["parameters"].as_array().into_iter().flatten().any(|p| p["name"] == *parameter);
                    assert!(known, "link {name}: {parameter} is not a parameter of its target");
                }
            }
        }
    }
    assert!(links >= 8, "checkout -> invoice -> payment/refund and document -> verification are linked");
    // The problem schema enumerates the codes, and every documented problem code is one of them.
    let codes: BTreeSet<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .expect("code enumeration")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for code in ["quantity_out_of_range", "idempotency_key_reused", "bad_signature", "not_pdf", "nothing_to_refund"] {
        assert!(codes.contains(code), "{code}");
    }
    for operation in ids.values() {
        for response in operation["responses"].as_object().expect("responses").values() {
            let examples = response["content"]["application/problem+json"]["examples"].as_object();
            for example in examples.into_iter().flatten().map(|(_, e)| &e["value"]) {
                let code = example["code"].as_str().expect("example code");
                assert!(codes.contains(code), "documented code {code} is not in the enumeration");
            }
        }
    }
    // The bearer JWT scheme is the default; the public operations opt out.
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"], "JWT");
    assert_eq!(doc["security"][0]["bearerAuth"], Value::Array(Vec::new()));
}

/// Each request example in the document is accepted by the handler it documents.
#[tokio::test]
async fn request_examples_are_accepted() {
    let app = spawn_app().await;
    let doc = generated();
    let schemas = &doc["components"]["schemas"];
    let checkout = app.checkout("contract", Some("contract-example"), &schemas["CheckoutRequest"]["example"].to_string()).await;
    assert_eq!(checkout.status, 201, "{:?}", checkout.body);
    let document = app.create_document("contract", &schemas["CreateDocumentRequest"]["example"].to_string()).await;
    assert_eq!(document.status, 201, "{:?}", document.body);
}

#[tokio::test]
async fn the_api_serves_the_document_without_a_caller() {
    let app = spawn_app().await;
    let reply = app.call(request(Method::GET, "/v1/openapi.json", None, None)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.raw.body, document_json());
}

/// A documented path asked with a method it does not take answers 405 with `Allow` naming the
/// documented methods; an undocumented path answers 404 (schemathesis' `unsupported_method`).
#[tokio::test]
async fn other_methods_answer_405_with_allow() {
    let app = spawn_app().await;
    let doc = generated();
    let documented = operations(&doc);
    for (path, _) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{invoice_id}", "01J9ZX0000000000000000000A").replace("{document_id}", "d1").replace("{serial}", "s1");
        let allow: Vec<&str> =
            documented.iter().filter(|(_, p)| p == path).map(|(m, _)| m.as_str()).collect();
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH", "TRACE", "OPTIONS"] {
            if allow.contains(&method) {
                continue;
            }
            let reply = app.call(request(Method::from_bytes(method.as_bytes()).expect("method"), &concrete, Some("contract"), None)).await;
            assert_eq!(reply.status, 405, "{method} {path}: {:?}", reply.body);
            assert_eq!(reply.header("allow"), Some(allow.join(", ").as_str()), "{method} {path}");
            assert_eq!(reply.body["code"], "method_not_allowed", "{method} {path}");
        }
    }
    let reply = app.call(request(Method::DELETE, "/v1/nowhere", Some("contract"), None)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["code"], "not_found");
}
