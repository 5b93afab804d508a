//! Which AWS actions a function's code calls, as IAM names them, recorded from the SDK itself so
//! that the template's policies can be held to exactly those (tests/tests/least_privilege.rs).
//!
//! Recorded after serialization, which presigned requests also pass through: a presigned upload
//! needs `s3:PutObject` in the signer's policy although the function never sends it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::Value;

/// One action on one resource: `dynamodb:UpdateItem` on `table`, `dynamodb:Query` on
/// `index/due`, `s3:GetObject` on `incoming/*`.
pub type Action = (String, String);

#[derive(Debug, Clone, Default)]
pub struct ActionLog(Arc<Mutex<BTreeSet<Action>>>);

impl ActionLog {
    pub fn actions(&self) -> BTreeSet<Action> {
        self.0.lock().expect("lock").clone()
    }

    fn record(&self, action: String, resource: String) {
        self.0.lock().expect("lock").insert((action, resource));
    }

    fn record_dynamodb(&self, operation: &str, body: Option<&[u8]>) {
        let body: Value = body.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        let on = |v: &Value| match v.get("IndexName").and_then(Value::as_str) {
            Some(index) => format!("index/{index}"),
            None => "table".to_owned(),
        };
        match operation {
            // IAM authorizes a transaction item by item, under the single-item actions' names.
            "TransactWriteItems" => {
                for item in body["TransactItems"].as_array().into_iter().flatten() {
                    for (kind, action) in
                        [("Put", "PutItem"), ("Update", "UpdateItem"), ("Delete", "DeleteItem"), ("ConditionCheck", "ConditionCheckItem")]
                    {
                        if item.get(kind).is_some() {
                            self.record(format!("dynamodb:{action}"), "table".to_owned());
                        }
                    }
                }
            }
            "TransactGetItems" => self.record("dynamodb:GetItem".to_owned(), "table".to_owned()),
            other => self.record(format!("dynamodb:{other}"), on(&body)),
        }
    }

    fn record_s3(&self, operation: &str, key: &str) {
        let prefix = key.split_once('/').map_or("(bucket)".to_owned(), |(first, _)| format!("{first}/*"));
        // IAM names HeadObject's permission GetObject.
        let action = if operation == "HeadObject" { "GetObject" } else { operation };
        self.record(format!("s3:{action}"), prefix);
    }
}

impl Intercept for ActionLog {
    fn name(&self) -> &'static str {
        "ActionLog"
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else { return Ok(()) };
        let request = context.request();
        match metadata.service() {
            "DynamoDB" => self.record_dynamodb(metadata.name(), request.body().bytes()),
            "S3" => {
                // Before the endpoint is applied the URI is the object's key alone: /{Key}?x-id=...
                let uri = request.uri();
                let key = uri.split('?').next().unwrap_or("").trim_start_matches('/');
                let key = percent_decode(key);
                self.record_s3(metadata.name(), &key)
            }
            other => self.record(format!("{other}:{}", metadata.name()), "*".to_owned()),
        }
        Ok(())
    }
}

/// One log per function, each given to the clients that function's handler uses.
#[derive(Debug, Clone, Default)]
pub struct FunctionActions {
    pub checkout: ActionLog,
    pub payment_webhook: ActionLog,
    pub stamp: ActionLog,
    pub refund: ActionLog,
}

impl FunctionActions {
    /// By the template's logical id of each function.
    pub fn by_function(&self) -> [(&'static str, &ActionLog); 4] {
        [
            ("CheckoutFunction", &self.checkout),
            ("PaymentWebhookFunction", &self.payment_webhook),
            ("StampFunction", &self.stamp),
            ("RefundFunction", &self.refund),
        ]
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}
