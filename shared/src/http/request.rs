//! The request as the API handlers see it: method, path, query, headers, body, and the caller
//! the JWT authorizer vouched for. Built from the Lambda event in one place.

use std::collections::HashMap;

use http::{HeaderMap, Method};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};

#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The `sub` claim passed by the API Gateway JWT authorizer (or the local gateway), if any.
    pub caller: Option<String>,
    /// The Lambda invocation's deadline (ms since the epoch), if known.
    pub deadline_ms: Option<i64>,
}

impl ApiRequest {
    pub fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            query: HashMap::new(),
            headers: HeaderMap::new(),
            body: Vec::new(),
            caller: None,
            deadline_ms: None,
        }
    }

    pub fn from_lambda(req: lambda_http::Request) -> Self {
        let caller = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .and_then(|jwt| jwt.claims.get("sub").cloned()),
            _ => None,
        };
        let query = req
            .query_string_parameters_ref()
            .map(|q| q.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
            .unwrap_or_default();
        let deadline_ms = req.lambda_context_ref().and_then(|c| i64::try_from(c.deadline).ok());
        let path = match req.raw_http_path() {
            "" => req.uri().path().to_owned(),
            raw => raw.to_owned(),
        };
        let (parts, body) = req.into_parts();
        let body = match body {
            Body::Empty => Vec::new(),
            Body::Text(t) => t.into_bytes(),
            Body::Binary(b) => b,
            _ => Vec::new(),
        };
        Self { method: parts.method, path, query, headers: parts.headers, body, caller, deadline_ms }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Path segments after the leading slash, ignoring one trailing slash.
    pub fn segments(&self) -> Vec<&str> {
        let p = self.path.strip_prefix('/').unwrap_or(&self.path);
        let p = p.strip_suffix('/').unwrap_or(p);
        if p.is_empty() { Vec::new() } else { p.split('/').collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API Gateway HTTP API (payload 2.0) event with JWT authorizer claims, as AWS sends it.
    const EVENT: &str = r#"{
        "version": "2.0", "routeKey": "GET /v1/quota", "rawPath": "/v1/quota", "rawQueryString": "cursor=abc",
        "headers": {"authorization": "Bearer x", "idempotency-key": "k1"},
        "queryStringParameters": {"cursor": "abc"},
        "requestContext": {
            "accountId": "123", "apiId": "api", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "GET", "path": "/v1/quota", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
            "requestId": "r", "routeKey": "GET /v1/quota", "stage": "$default", "time": "t", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {"sub": "alice", "iss": "emeterai-local"}, "scopes": null}}
        },
        "isBase64Encoded": false
    }"#;

    #[test]
    fn claims_query_and_headers_come_through() {
        let req = lambda_http::request::from_str(EVENT).expect("valid event");
        let api = ApiRequest::from_lambda(req);
        assert_eq!(api.caller.as_deref(), Some("alice"));
        assert_eq!(api.path, "/v1/quota");
        assert_eq!(api.method, Method::GET);
        assert_eq!(api.query.get("cursor").map(String::as_str), Some("abc"));
        assert_eq!(api.header("idempotency-key"), Some("k1"));
        assert_eq!(api.segments(), vec!["v1", "quota"]);
    }
}
