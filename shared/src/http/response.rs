//! A handler's answer, before it becomes a Lambda HTTP response.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl ApiResponse {
    pub fn json(status: u16, body: String) -> Self {
        Self { status, headers: vec![("content-type", "application/json".into())], body }
    }

    pub fn problem(status: u16, body: String) -> Self {
        Self { status, headers: vec![("content-type", "application/problem+json".into())], body }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn into_lambda(self) -> lambda_http::Response<lambda_http::Body> {
        let mut builder = lambda_http::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        builder
            .body(lambda_http::Body::Text(self.body))
            .unwrap_or_else(|_| lambda_http::Response::new(lambda_http::Body::Empty))
    }
}
