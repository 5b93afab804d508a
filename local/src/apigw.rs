//! What API Gateway's HTTP API does between a client and a function: pick the route declared in
//! `template.yaml`, turn the request into a payload format 2.0 event, and turn the function's
//! answer back into an HTTP response.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use crate::template::HttpRoute;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`: the rest of the path, one or more segments.
    Greedy(String),
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    route: HttpRoute,
    segments: Vec<Segment>,
    literal_count: usize,
}

/// The template's HTTP routes, ready to match requests.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub route: &'a HttpRoute,
    /// Percent-decoded values of the `{param}` segments.
    pub path_parameters: BTreeMap<String, String>,
    /// `METHOD /path/{param}` as API Gateway reports it.
    pub route_key: String,
}

fn split_path(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

impl RouteTable {
    pub fn new(routes: Vec<HttpRoute>) -> Result<RouteTable, String> {
        let mut compiled = Vec::new();
        for route in routes {
            let mut segments = Vec::new();
            let parts: Vec<&str> = split_path(&route.path).collect();
            for (i, part) in parts.iter().enumerate() {
                let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => match name.strip_suffix('+') {
                        Some(name) if i + 1 == parts.len() => Segment::Greedy(name.to_owned()),
                        Some(_) => return Err(format!("{}: a greedy {{name+}} must be the last segment", route.path)),
                        None => Segment::Param(name.to_owned()),
                    },
                    None => Segment::Literal((*part).to_owned()),
                };
                segments.push(segment);
            }
            let literal_count = segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
            compiled.push(CompiledRoute { route, segments, literal_count });
        }
        Ok(RouteTable { routes: compiled })
    }

    pub fn routes(&self) -> impl Iterator<Item = &HttpRoute> {
        self.routes.iter().map(|r| &r.route)
    }

    /// The most specific route for `method` and `raw_path` (more literal segments win, then an
    /// exact method over `ANY`), as API Gateway chooses.
    pub fn find(&self, method: &str, raw_path: &str) -> Option<RouteMatch<'_>> {
        let request_segments: Vec<&str> = split_path(raw_path).collect();
        // (route, its parameters, its rank: literal segments, exact method)
        type Candidate<'r> = (&'r CompiledRoute, BTreeMap<String, String>, (usize, bool));
        let mut best: Option<Candidate<'_>> = None;
        for compiled in &self.routes {
            let exact_method = compiled.route.method.eq_ignore_ascii_case(method);
            if !exact_method && compiled.route.method != "ANY" {
                continue;
            }
            let Some(params) = match_segments(&compiled.segments, &request_segments) else { continue };
            let rank = (compiled.literal_count, exact_method);
            if best.as_ref().is_none_or(|(_, _, best_rank)| rank > *best_rank) {
                best = Some((compiled, params, rank));
            }
        }
        best.map(|(compiled, path_parameters, _)| RouteMatch {
            route: &compiled.route,
            path_parameters,
            route_key: format!("{} {}", compiled.route.method, compiled.route.path),
        })
    }
}

fn decode(segment: &str) -> Option<String> {
    percent_decode_str(segment).decode_utf8().ok().map(|s| s.into_owned())
}

fn match_segments(pattern: &[Segment], request: &[&str]) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for (i, segment) in pattern.iter().enumerate() {
        match segment {
            Segment::Greedy(name) => {
                let rest = request.get(i..).filter(|r| !r.is_empty() && r.iter().all(|s| !s.is_empty()))?;
                params.insert(name.clone(), decode(&rest.join("/"))?);
                return Some(params);
            }
            Segment::Literal(literal) => {
                if decode(request.get(i)?)? != *literal {
                    return None;
                }
            }
            Segment::Param(name) => {
                let value = request.get(i).filter(|s| !s.is_empty())?;
                params.insert(name.clone(), decode(value)?);
            }
        }
    }
    (pattern.len() == request.len()).then_some(params)
}

/// An HTTP request as the gateway received it.
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
    pub source_ip: &'a str,
}

/// Content types API Gateway passes as text; everything else travels base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/xml"
        || ct.ends_with("+xml")
        || ct == "application/x-www-form-urlencoded"
        || ct == "application/javascript"
}

/// JWT claims as the HTTP API's JWT authorizer hands them to a function: every value a string.
pub fn authorizer_claims<T: serde::Serialize>(claims: &T) -> Map<String, Value> {
    let Ok(Value::Object(object)) = serde_json::to_value(claims) else { return Map::new() };
    object
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, Value::String(s))
        })
        .collect()
}

/// The payload format 2.0 event for `request` on `matched`. `claims` is `None` on routes
/// without an authorizer.
pub fn build_event(
    request: &IncomingRequest<'_>,
    matched: &RouteMatch<'_>,
    claims: Option<Map<String, Value>>,
    request_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in request.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = request.raw_query.unwrap_or("");
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(k.into_owned())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let content_type = headers.get("content-type").map(String::as_str);
    let (body, is_base64) = if request.body.is_empty() {
        (Value::Null, false)
    } else {
        match std::str::from_utf8(request.body) {
            Ok(text) if is_text(content_type) => (Value::String(text.to_owned()), false),
            _ => (Value::String(BASE64.encode(request.body)), true),
        }
    };
    let host = headers.get("host").cloned().unwrap_or_else(|| "localhost".to_owned());
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    let mut event = json!({
        "version": "2.0",
        "routeKey": matched.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(&host),
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": matched.route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !matched.path_parameters.is_empty() {
        event["pathParameters"] = json!(matched.path_parameters);
    }
    if !body.is_null() {
        event["body"] = body;
    }
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    event
}

/// A function's answer, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Interprets a function's result as API Gateway does for payload 2.0: a `{statusCode, ...}`
/// object is the response; any other JSON value is a 200 JSON body.
pub fn parse_response(payload: &[u8]) -> Result<FunctionResponse, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("function returned invalid JSON: {e}"))?;
    let Some(status) = value.get("statusCode") else {
        return Ok(FunctionResponse {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: payload.to_vec(),
        });
    };
    let status = status
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .and_then(|s| u16::try_from(s).ok())
        .ok_or_else(|| format!("function returned an invalid statusCode {status}"))?;
    let mut headers = Vec::new();
    for (name, value) in value.get("headers").and_then(Value::as_object).into_iter().flatten() {
        if let Some(v) = scalar(value) {
            headers.push((name.to_ascii_lowercase(), v));
        }
    }
    for (name, values) in value.get("multiValueHeaders").and_then(Value::as_object).into_iter().flatten() {
        let name = name.to_ascii_lowercase();
        if headers.iter().any(|(n, _)| *n == name) {
            continue;
        }
        for v in values.as_array().into_iter().flatten().filter_map(scalar) {
            headers.push((name.clone(), v));
        }
    }
    for cookie in value.get("cookies").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        headers.push(("set-cookie".to_owned(), cookie.to_owned()));
    }
    let body = match value.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            BASE64.decode(s).map_err(|e| format!("function returned invalid base64 body: {e}"))?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    Ok(FunctionResponse { status, headers, body })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;

    fn table() -> RouteTable {
        let t = Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template");
        RouteTable::new(t.http_routes().expect("routes")).expect("table")
    }

    fn route(method: &str, path: &str) -> HttpRoute {
        HttpRoute {
            event_id: "E".into(),
            function_logical_id: "F".into(),
            binary: "f".into(),
            method: method.into(),
            path: path.into(),
            auth_none: false,
        }
    }

    #[test]
    fn routes_of_the_template_match() {
        let table = table();
        let m = table.find("GET", "/v1/invoices/inv%2D1").expect("match");
        assert_eq!(m.route.path, "/v1/invoices/{invoice_id}");
        assert_eq!(m.path_parameters.get("invoice_id").map(String::as_str), Some("inv-1"));
        assert_eq!(m.route_key, "GET /v1/invoices/{invoice_id}");
        assert_eq!(table.find("GET", "/v1/invoices").expect("list").route.event_id, "ListInvoices");
        assert_eq!(table.find("POST", "/v1/invoices/x/payment").expect("retry").route.event_id, "RetryPayment");
        // A method or path no route takes falls to the template's catch-all (405/404 from the
        // API function), never to another operation.
        assert_eq!(table.find("DELETE", "/v1/invoices/x").expect("catch-all").route.event_id, "UnroutedApi");
        assert_eq!(table.find("GET", "/v1/invoices/a/b").expect("catch-all").route.event_id, "UnroutedApi");
        assert_eq!(table.find("PUT", "/healthz").expect("catch-all").route.event_id, "UnroutedHealth");
        assert_eq!(table.find("GET", "/healthz").expect("health").route.event_id, "Health");
        assert!(table.find("GET", "/v1/invoices/").is_none());
        assert!(table.find("GET", "/nope").is_none());
        assert!(table.find("GET", "/v1/invoices/%FF").is_none(), "invalid UTF-8 is no match, not a panic");
        assert!(table.find("GET", "").is_none());
    }

    #[test]
    fn literals_beat_parameters_and_exact_methods_beat_any() {
        let table = RouteTable::new(vec![
            route("ANY", "/{proxy+}"),
            route("GET", "/a/{id}"),
            route("GET", "/a/me"),
            route("ANY", "/a/me"),
        ])
        .expect("table");
        let m = table.find("GET", "/a/me").expect("m");
        assert_eq!((m.route.method.as_str(), m.route.path.as_str()), ("GET", "/a/me"));
        assert_eq!(table.find("POST", "/a/me").expect("any").route.method, "ANY");
        assert_eq!(table.find("GET", "/a/other").expect("param").route.path, "/a/{id}");
        let greedy = table.find("PUT", "/x/y/z").expect("greedy");
        assert_eq!(greedy.path_parameters.get("proxy").map(String::as_str), Some("x/y/z"));
        assert!(RouteTable::new(vec![route("GET", "/{a+}/b")]).is_err());
    }

    #[test]
    fn event_deserializes_as_lambda_http_sees_it() {
        let table = table();
        let matched = table.find("GET", "/v1/invoices/inv-1").expect("match");
        let mut headers = http::HeaderMap::new();
        headers.insert("host", "127.0.0.1:3000".parse().expect("h"));
        headers.append("x-multi", "a".parse().expect("h"));
        headers.append("x-multi", "b".parse().expect("h"));
        headers.insert("cookie", "a=1; b=2".parse().expect("h"));
        let request = IncomingRequest {
            method: "GET",
            raw_path: "/v1/invoices/inv-1",
            raw_query: Some("cursor=abc%3D&x=1&x=2"),
            headers: &headers,
            body: b"",
            source_ip: "127.0.0.1",
        };
        let claims = authorizer_claims(&json!({"sub": "alice", "iat": 5, "aud": "emeterai"}));
        let event = build_event(&request, &matched, Some(claims), "req-1", Utc::now());

        let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
            serde_json::from_value(event.clone()).expect("aws_lambda_events accepts the event");
        assert_eq!(typed.path_parameters.get("invoice_id").map(String::as_str), Some("inv-1"));
        let jwt = typed.request_context.authorizer.and_then(|a| a.jwt).expect("jwt");
        assert_eq!(jwt.claims.get("sub").map(String::as_str), Some("alice"));
        assert_eq!(jwt.claims.get("iat").map(String::as_str), Some("5"));
        assert_eq!(event["headers"]["x-multi"], "a,b");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["queryStringParameters"]["cursor"], "abc=");
        assert_eq!(event["queryStringParameters"]["x"], "1,2");

        // And lambda_http turns it into the request a handler sees.
        let lambda_request: lambda_http::request::LambdaRequest = serde_json::from_value(event).expect("lambda_http");
        let req: lambda_http::Request = lambda_request.into();
        use lambda_http::RequestExt;
        assert_eq!(req.uri().path(), "/v1/invoices/inv-1");
        assert_eq!(req.path_parameters().first("invoice_id"), Some("inv-1"));
        match req.request_context() {
            lambda_http::request::RequestContext::ApiGatewayV2(ctx) => {
                let claims = ctx.authorizer.and_then(|a| a.jwt).map(|j| j.claims).expect("claims");
                assert_eq!(claims.get("sub").map(String::as_str), Some("alice"));
            }
            other => panic!("wrong context {other:?}"),
        }
    }

    #[test]
    fn binary_bodies_travel_base64() {
        let table = RouteTable::new(vec![route("POST", "/v1/verify")]).expect("t");
        let matched = table.find("POST", "/v1/verify").expect("m");
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/pdf".parse().expect("h"));
        let body = b"%PDF-1.7\n\xff\xfe";
        let request = IncomingRequest {
            method: "POST",
            raw_path: "/v1/verify",
            raw_query: None,
            headers: &headers,
            body,
            source_ip: "127.0.0.1",
        };
        let event = build_event(&request, &matched, None, "r", Utc::now());
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(BASE64.decode(event["body"].as_str().expect("body")).expect("b64"), body);
        assert!(event["requestContext"].get("authorizer").is_none());
        assert!(event.get("queryStringParameters").is_none());

        let mut json_headers = http::HeaderMap::new();
        json_headers.insert("content-type", "application/json".parse().expect("h"));
        let request = IncomingRequest { body: br#"{"quantity":3}"#, headers: &json_headers, ..request };
        let event = build_event(&request, &matched, None, "r", Utc::now());
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["body"], r#"{"quantity":3}"#);
    }

    #[test]
    fn responses_are_interpreted_like_api_gateway() {
        let r = parse_response(
            br#"{"statusCode":201,"headers":{"Content-Type":"application/json","Idempotent-Replayed":"true"},
                "multiValueHeaders":{"x-a":["1","2"]},"cookies":["s=1"],"body":"{\"a\":1}","isBase64Encoded":false}"#,
        )
        .expect("parse");
        assert_eq!(r.status, 201);
        assert!(r.headers.contains(&("idempotent-replayed".into(), "true".into())));
        assert_eq!(r.headers.iter().filter(|(n, _)| n == "x-a").count(), 2);
        assert!(r.headers.contains(&("set-cookie".into(), "s=1".into())));
        assert_eq!(r.body, br#"{"a":1}"#);
        let b = parse_response(br#"{"statusCode":200,"body":"aGk=","isBase64Encoded":true}"#).expect("b64");
        assert_eq!(b.body, b"hi");
        let plain = parse_response(br#"{"ok":true}"#).expect("plain");
        assert_eq!((plain.status, plain.body.as_slice()), (200, br#"{"ok":true}"#.as_slice()));
        assert!(parse_response(b"not json").is_err());
        assert!(parse_response(br#"{"statusCode":1000}"#).is_err());
        assert!(parse_response(br#"{"statusCode":"200"}"#).is_err());
        assert!(parse_response(br#"{"statusCode":200,"body":"!!","isBase64Encoded":true}"#).is_err());
    }
}
