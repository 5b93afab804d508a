//! Talking to functions through a Lambda runtime emulator's invoke API (`cargo lambda watch`),
//! and the events EventBridge sends on a schedule.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Lambda caps a synchronous response at 6 MB; anything bigger is the function's bug.
const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the Lambda emulator at {0} cannot be reached: {1}")]
    Unreachable(String, String),
    #[error("the function did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the function failed ({status}): {body}")]
    Failed { status: u16, body: String },
    #[error("the function's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

/// Invokes functions by name (their cargo binary name) through the Lambda invoke API.
#[derive(Debug, Clone)]
pub struct LambdaInvoker {
    base_url: String,
    timeout: Duration,
    http: reqwest::Client,
}

impl LambdaInvoker {
    /// `timeout` bounds every invocation unless [`LambdaInvoker::invoke_within`] says otherwise.
    pub fn new(base_url: &str, timeout: Duration) -> Result<LambdaInvoker, reqwest::Error> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build()?;
        Ok(LambdaInvoker { base_url: base_url.trim_end_matches('/').to_owned(), timeout, http })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Invokes `function` synchronously with `payload` and returns its result's bytes.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Vec<u8>, InvokeError> {
        self.invoke_within(function, payload, self.timeout).await
    }

    /// As [`LambdaInvoker::invoke`], giving up after `timeout`.
    pub async fn invoke_within(&self, function: &str, payload: &Value, timeout: Duration) -> Result<Vec<u8>, InvokeError> {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.base_url);
        let mut response = self.http.post(&url).timeout(timeout).json(payload).send().await.map_err(|e| {
            if e.is_timeout() {
                InvokeError::TimedOut(timeout)
            } else {
                InvokeError::Unreachable(self.base_url.clone(), e.to_string())
            }
        })?;
        let status = response.status().as_u16();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(InvokeError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(InvokeError::TimedOut(timeout)),
                Err(e) => return Err(InvokeError::Unreachable(self.base_url.clone(), e.to_string())),
            }
        }
        if !(200..300).contains(&status) || function_error {
            let mut text = String::from_utf8_lossy(&body).into_owned();
            text.truncate(text.char_indices().nth(2000).map_or(text.len(), |(i, _)| i));
            return Err(InvokeError::Failed { status, body: text });
        }
        Ok(body)
    }
}

/// The event EventBridge sends when a schedule rule fires; the function takes "now" from `time`.
pub fn scheduled_event(rule_name: &str, time: DateTime<Utc>, region: &str) -> Value {
    let id: [u8; 16] = rand::random();
    json!({
        "version": "0",
        "id": hex::encode(id),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:000000000000:rule/{rule_name}")],
        "detail": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_event_is_what_eventbridge_sends() {
        let time = DateTime::parse_from_rfc3339("2026-12-01T00:05:00Z").expect("time").with_timezone(&Utc);
        let event = scheduled_event("Sweep", time, "ap-southeast-3");
        let typed: aws_lambda_events::eventbridge::EventBridgeEvent<Value> =
            serde_json::from_value(event.clone()).expect("aws_lambda_events accepts it");
        assert_eq!(typed.detail_type, "Scheduled Event");
        assert_eq!(typed.time.map(|t| t.to_rfc3339()), Some("2026-12-01T00:05:00+00:00".to_owned()));
        assert_eq!(event["time"], "2026-12-01T00:05:00Z");
    }

    #[tokio::test]
    async fn unreachable_emulator_is_an_error_not_a_hang() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let invoker = LambdaInvoker::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).expect("client");
        let err = invoker.invoke("checkout", &json!({})).await.expect_err("nobody listens");
        assert!(matches!(err, InvokeError::Unreachable(..)), "{err}");
    }
}
