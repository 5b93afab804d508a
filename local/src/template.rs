//! Reads the AWS SAM `template.yaml` so the local stack derives its table, bucket, HTTP routes and
//! triggers from the same file that deploys to AWS, instead of keeping a second list.
//!
//! CloudFormation short tags (`!Ref X`, `!Sub "..."`, `!GetAtt A.B`) parse as YAML tagged values;
//! the reader keeps them as [`TemplateValue`] where it matters (environment variables) and
//! otherwise only needs plain scalars.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use yaml_serde::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] yaml_serde::Error),
    #[error("template has no Resources mapping")]
    NoResources,
    #[error("template declares {0} AWS::DynamoDB::Table resources; the local stack expects exactly one")]
    TableCount(usize),
    #[error("{resource}: {problem}")]
    Invalid { resource: String, problem: String },
}

/// What SAM gives a function without `Timeout`.
const SAM_DEFAULT_TIMEOUT_SECONDS: u64 = 3;
/// What SAM gives a function without `MemorySize`.
const SAM_DEFAULT_MEMORY_SIZE_MB: u64 = 128;

fn invalid(resource: &str, problem: impl Into<String>) -> TemplateError {
    TemplateError::Invalid { resource: resource.to_owned(), problem: problem.into() }
}

/// A parsed `template.yaml`.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// A value as written in the template: a plain scalar or one of the intrinsic functions the
/// local stack can resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateValue {
    Literal(String),
    /// `!Ref Name` or `{Ref: Name}`: a parameter or a resource's logical id.
    Ref(String),
    /// `!Sub "text ${Name} ${AWS::Region}"` (the one-string form).
    Sub(String),
    /// Anything else (`!Sub`, `!GetAtt`, ...), kept as its tag for diagnostics.
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Hash,
    Range,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute_name: String,
    pub key_type: KeyType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDefinition {
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSecondaryIndex {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection: Projection,
}

/// The one `AWS::DynamoDB::Table` of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDefinition {
    pub logical_id: String,
    /// `TableName` when the template fixes one (it usually lets CloudFormation choose).
    pub table_name: Option<TemplateValue>,
    pub key_schema: Vec<KeyElement>,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    /// The TTL attribute when `TimeToLiveSpecification` is enabled.
    pub ttl_attribute: Option<String>,
}

/// An `AWS::S3::Bucket` of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDefinition {
    pub logical_id: String,
    pub bucket_name: Option<TemplateValue>,
}

/// An `AWS::Serverless::Function` and what it is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDefinition {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// Globals' variables overlaid with the function's own.
    pub environment: BTreeMap<String, TemplateValue>,
    /// `Timeout` (the function's, else Globals', else SAM's default of 3 s).
    pub timeout: Duration,
    /// `MemorySize` in MB (the function's, else Globals', else SAM's default of 128).
    pub memory_size_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// The event's logical id within the function (`CreateCheckout`).
    pub event_id: String,
    pub function_logical_id: String,
    pub binary: String,
    /// Upper case (`GET`, `POST`, or `ANY`).
    pub method: String,
    /// As written, with `{param}` segments (`/v1/invoices/{invoice_id}`).
    pub path: String,
    /// True when the route opts out of the API's authorizer (`Auth: {Authorizer: NONE}`) or the
    /// API has no default authorizer.
    pub auth_none: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Trigger {
    pub event_id: String,
    pub function_logical_id: String,
    pub binary: String,
    pub bucket_logical_id: String,
    /// As written (`s3:ObjectCreated:*`, `s3:ObjectCreated:Put`, ...).
    pub events: Vec<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

impl S3Trigger {
    /// Whether an event named like `s3:ObjectCreated:Put` on `key` fires this trigger.
    pub fn matches(&self, event_name: &str, key: &str) -> bool {
        let event_matches = self.events.iter().any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => event_name.starts_with(prefix),
            None => pattern == event_name,
        });
        event_matches
            && self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTrigger {
    pub event_id: String,
    pub function_logical_id: String,
    pub binary: String,
    /// As written (`rate(5 minutes)`, `cron(...)`).
    pub expression: String,
    /// The period for `rate(...)` expressions; `None` for `cron(...)`, which the local stack
    /// does not fire on its own (use `POST /dev/sweep`).
    pub rate: Option<Duration>,
    pub enabled: bool,
}

impl Template {
    pub fn load(path: impl AsRef<Path>) -> Result<Template, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| TemplateError::Read { path: path.display().to_string(), source })?;
        Template::from_yaml_str(&text)
    }

    pub fn from_yaml_str(text: &str) -> Result<Template, TemplateError> {
        let root: Value = yaml_serde::from_str(text)?;
        if !root.get("Resources").is_some_and(Value::is_mapping) {
            return Err(TemplateError::NoResources);
        }
        Ok(Template { root })
    }

    /// Every resource as (logical id, Type, whole resource), in template order.
    fn resources(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(id, resource)| {
                Some((id.as_str()?, resource.get("Type").and_then(Value::as_str)?, resource))
            })
    }

    /// The default of a template parameter, as a string.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        scalar_string(self.root.get("Parameters")?.get(name)?.get("Default")?)
    }

    pub fn table_definition(&self) -> Result<TableDefinition, TemplateError> {
        let tables: Vec<_> =
            self.resources().filter(|(_, ty, _)| *ty == "AWS::DynamoDB::Table").collect();
        let [(logical_id, _, resource)] = tables.as_slice() else {
            return Err(TemplateError::TableCount(tables.len()));
        };
        let id = *logical_id;
        let props = resource.get("Properties").ok_or_else(|| invalid(id, "no Properties"))?;
        let key_schema = parse_key_schema(id, props.get("KeySchema"))?;
        let attribute_definitions = sequence(props.get("AttributeDefinitions"))
            .iter()
            .map(|a| {
                Ok(AttributeDefinition {
                    attribute_name: required_str(id, a, "AttributeName")?,
                    attribute_type: required_str(id, a, "AttributeType")?,
                })
            })
            .collect::<Result<Vec<_>, TemplateError>>()?;
        let global_secondary_indexes = sequence(props.get("GlobalSecondaryIndexes"))
            .iter()
            .map(|gsi| {
                let projection = gsi.get("Projection");
                Ok(GlobalSecondaryIndex {
                    index_name: required_str(id, gsi, "IndexName")?,
                    key_schema: parse_key_schema(id, gsi.get("KeySchema"))?,
                    projection: Projection {
                        projection_type: projection
                            .and_then(|p| p.get("ProjectionType"))
                            .and_then(scalar_string)
                            .unwrap_or_else(|| "ALL".to_owned()),
                        non_key_attributes: sequence(projection.and_then(|p| p.get("NonKeyAttributes")))
                            .iter()
                            .filter_map(scalar_string)
                            .collect(),
                    },
                })
            })
            .collect::<Result<Vec<_>, TemplateError>>()?;
        let ttl = props.get("TimeToLiveSpecification");
        let ttl_enabled = ttl.and_then(|t| t.get("Enabled")).is_some_and(is_true);
        Ok(TableDefinition {
            logical_id: id.to_owned(),
            table_name: props.get("TableName").map(template_value),
            key_schema,
            attribute_definitions,
            global_secondary_indexes,
            ttl_attribute: if ttl_enabled {
                ttl.and_then(|t| t.get("AttributeName")).and_then(scalar_string)
            } else {
                None
            },
        })
    }

    pub fn buckets(&self) -> Vec<BucketDefinition> {
        self.resources()
            .filter(|(_, ty, _)| *ty == "AWS::S3::Bucket")
            .map(|(id, _, r)| BucketDefinition {
                logical_id: id.to_owned(),
                bucket_name: r.get("Properties").and_then(|p| p.get("BucketName")).map(template_value),
            })
            .collect()
    }

    pub fn functions(&self) -> Result<Vec<FunctionDefinition>, TemplateError> {
        let global_function = self.root.get("Globals").and_then(|g| g.get("Function"));
        let globals = global_function.and_then(|f| f.get("Environment")).and_then(|e| e.get("Variables"));
        self.resources()
            .filter(|(_, ty, _)| *ty == "AWS::Serverless::Function")
            .map(|(id, _, r)| {
                let binary = r
                    .get("Metadata")
                    .and_then(|m| m.get("BuildProperties"))
                    .and_then(|b| b.get("Binary"))
                    .and_then(scalar_string)
                    .ok_or_else(|| invalid(id, "no Metadata.BuildProperties.Binary"))?;
                let own = r
                    .get("Properties")
                    .and_then(|p| p.get("Environment"))
                    .and_then(|e| e.get("Variables"));
                let mut environment = BTreeMap::new();
                for vars in [globals, own].into_iter().flatten() {
                    for (name, value) in vars.as_mapping().into_iter().flatten() {
                        if let Some(name) = name.as_str() {
                            environment.insert(name.to_owned(), template_value(value));
                        }
                    }
                }
                // The function's own number, else the Globals' (SAM's inheritance).
                let number = |key: &str| {
                    r.get("Properties")
                        .and_then(|p| p.get(key))
                        .or_else(|| global_function.and_then(|f| f.get(key)))
                        .and_then(Value::as_u64)
                };
                let timeout = number("Timeout").filter(|s| (1..=900).contains(s)).unwrap_or(SAM_DEFAULT_TIMEOUT_SECONDS);
                // Lambda's range: 128 MB to 10,240 MB.
                let memory_size_mb =
                    number("MemorySize").filter(|m| (128..=10_240).contains(m)).unwrap_or(SAM_DEFAULT_MEMORY_SIZE_MB);
                Ok(FunctionDefinition {
                    logical_id: id.to_owned(),
                    binary,
                    environment,
                    timeout: Duration::from_secs(timeout),
                    memory_size_mb,
                })
            })
            .collect()
    }

    /// Every event of every function as (function, event id, event type, event properties).
    fn events(&self) -> Result<Vec<(FunctionDefinition, String, String, Value)>, TemplateError> {
        let functions = self.functions()?;
        let mut out = Vec::new();
        for (id, ty, r) in self.resources() {
            if ty != "AWS::Serverless::Function" {
                continue;
            }
            let Some(function) = functions.iter().find(|f| f.logical_id == id) else { continue };
            let events = r.get("Properties").and_then(|p| p.get("Events")).and_then(Value::as_mapping);
            for (event_id, event) in events.into_iter().flatten() {
                let event_id = event_id.as_str().ok_or_else(|| invalid(id, "event id is not a string"))?;
                let event_type = event
                    .get("Type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(id, format!("event {event_id} has no Type")))?;
                let props = event.get("Properties").cloned().unwrap_or(Value::Null);
                out.push((function.clone(), event_id.to_owned(), event_type.to_owned(), props));
            }
        }
        Ok(out)
    }

    /// Whether the API named by logical id has a default authorizer (then routes need a token
    /// unless they say `Authorizer: NONE`).
    fn api_has_default_authorizer(&self, api_id: Option<&str>) -> bool {
        self.resources()
            .filter(|(id, ty, _)| *ty == "AWS::Serverless::HttpApi" && api_id.is_none_or(|a| a == *id))
            .any(|(_, _, r)| {
                r.get("Properties")
                    .and_then(|p| p.get("Auth"))
                    .and_then(|a| a.get("DefaultAuthorizer"))
                    .and_then(scalar_string)
                    .is_some_and(|name| name != "NONE")
            })
    }

    pub fn http_routes(&self) -> Result<Vec<HttpRoute>, TemplateError> {
        let mut routes = Vec::new();
        for (function, event_id, event_type, props) in self.events()? {
            if event_type != "HttpApi" {
                continue;
            }
            let where_ = format!("{}.{}", function.logical_id, event_id);
            // SAM: an HttpApi event without Method/Path is the catch-all route of the implicit API.
            let method = props.get("Method").and_then(scalar_string).unwrap_or_else(|| "ANY".to_owned());
            let path = props.get("Path").and_then(scalar_string).unwrap_or_else(|| "/{proxy+}".to_owned());
            if !path.starts_with('/') {
                return Err(invalid(&where_, format!("path {path:?} does not start with /")));
            }
            let api_id = match props.get("ApiId").map(template_value) {
                Some(TemplateValue::Ref(id)) => Some(id),
                _ => None,
            };
            let authorizer = props.get("Auth").and_then(|a| a.get("Authorizer")).and_then(scalar_string);
            let auth_none = match authorizer.as_deref() {
                Some("NONE") => true,
                Some(_) => false,
                None => !self.api_has_default_authorizer(api_id.as_deref()),
            };
            routes.push(HttpRoute {
                event_id,
                function_logical_id: function.logical_id.clone(),
                binary: function.binary.clone(),
                method: method.to_ascii_uppercase(),
                path,
                auth_none,
            });
        }
        Ok(routes)
    }

    pub fn s3_triggers(&self) -> Result<Vec<S3Trigger>, TemplateError> {
        let mut triggers = Vec::new();
        for (function, event_id, event_type, props) in self.events()? {
            if event_type != "S3" {
                continue;
            }
            let where_ = format!("{}.{}", function.logical_id, event_id);
            let bucket_logical_id = match props.get("Bucket").map(template_value) {
                Some(TemplateValue::Ref(id)) => id,
                _ => return Err(invalid(&where_, "Bucket must be !Ref of a bucket in the template")),
            };
            let events: Vec<String> = match props.get("Events") {
                Some(Value::Sequence(s)) => s.iter().filter_map(scalar_string).collect(),
                Some(v) => scalar_string(v).into_iter().collect(),
                None => Vec::new(),
            };
            if events.is_empty() {
                return Err(invalid(&where_, "no Events"));
            }
            let rules = props.get("Filter").and_then(|f| f.get("S3Key")).and_then(|k| k.get("Rules"));
            let rule = |wanted: &str| {
                sequence(rules).iter().find_map(|r| {
                    let name = r.get("Name").and_then(scalar_string)?;
                    name.eq_ignore_ascii_case(wanted).then(|| r.get("Value").and_then(scalar_string)).flatten()
                })
            };
            triggers.push(S3Trigger {
                event_id,
                function_logical_id: function.logical_id.clone(),
                binary: function.binary.clone(),
                bucket_logical_id,
                events,
                prefix: rule("prefix"),
                suffix: rule("suffix"),
            });
        }
        Ok(triggers)
    }

    pub fn schedule_triggers(&self) -> Result<Vec<ScheduleTrigger>, TemplateError> {
        let mut triggers = Vec::new();
        for (function, event_id, event_type, props) in self.events()? {
            // Schedule uses `Schedule`, ScheduleV2 (EventBridge Scheduler) `ScheduleExpression`.
            let expression = match event_type.as_str() {
                "Schedule" => props.get("Schedule"),
                "ScheduleV2" => props.get("ScheduleExpression"),
                _ => continue,
            };
            let where_ = format!("{}.{}", function.logical_id, event_id);
            let expression = expression
                .and_then(scalar_string)
                .ok_or_else(|| invalid(&where_, "no schedule expression"))?;
            let rate = if expression.starts_with("rate(") {
                Some(parse_rate(&expression).ok_or_else(|| invalid(&where_, format!("bad rate {expression:?}")))?)
            } else {
                None
            };
            let enabled = match props.get("Enabled").or_else(|| props.get("State")) {
                None => true,
                Some(Value::String(s)) => !s.eq_ignore_ascii_case("DISABLED") && s != "false",
                Some(v) => is_true(v),
            };
            triggers.push(ScheduleTrigger {
                event_id,
                function_logical_id: function.logical_id.clone(),
                binary: function.binary.clone(),
                expression,
                rate,
                enabled,
            });
        }
        Ok(triggers)
    }
}

/// Parses EventBridge `rate(N unit)` (`minute(s)`, `hour(s)`, `day(s)`; N ≥ 1).
pub fn parse_rate(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let mut parts = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else { return None };
    let n: u64 = n.parse().ok().filter(|n| *n >= 1)?;
    let seconds_per_unit = match unit {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3_600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(seconds_per_unit)?))
}

fn sequence(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_sequence).map(Vec::as_slice).unwrap_or(&[])
}

fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn template_value(value: &Value) -> TemplateValue {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => match scalar_string(&tagged.value) {
            Some(name) => TemplateValue::Ref(name),
            None => TemplateValue::Unsupported("!Ref".to_owned()),
        },
        Value::Tagged(tagged) if tagged.tag == "Sub" => match &tagged.value {
            Value::String(text) => TemplateValue::Sub(text.clone()),
            _ => TemplateValue::Unsupported("!Sub".to_owned()),
        },
        Value::Tagged(tagged) => TemplateValue::Unsupported(format!("{}", tagged.tag)),
        Value::Mapping(m) if m.len() == 1 => {
            if let Some(name) = m.get("Ref").and_then(scalar_string) {
                TemplateValue::Ref(name)
            } else if let Some(Value::String(text)) = m.get("Fn::Sub") {
                TemplateValue::Sub(text.clone())
            } else {
                TemplateValue::Unsupported(m.keys().next().and_then(Value::as_str).unwrap_or("mapping").to_owned())
            }
        }
        other => match scalar_string(other) {
            Some(s) => TemplateValue::Literal(s),
            None => TemplateValue::Unsupported("non-scalar".to_owned()),
        },
    }
}

fn required_str(resource: &str, value: &Value, field: &str) -> Result<String, TemplateError> {
    value.get(field).and_then(scalar_string).ok_or_else(|| invalid(resource, format!("missing {field}")))
}

fn parse_key_schema(resource: &str, value: Option<&Value>) -> Result<Vec<KeyElement>, TemplateError> {
    let elements = sequence(value)
        .iter()
        .map(|k| {
            let key_type = match required_str(resource, k, "KeyType")?.as_str() {
                "HASH" => KeyType::Hash,
                "RANGE" => KeyType::Range,
                other => return Err(invalid(resource, format!("KeyType {other:?}"))),
            };
            Ok(KeyElement { attribute_name: required_str(resource, k, "AttributeName")?, key_type })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if elements.first().map(|k| k.key_type) != Some(KeyType::Hash) {
        return Err(invalid(resource, "KeySchema must start with a HASH key"));
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Template {
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template.yaml parses")
    }

    #[test]
    fn table_definition_matches_template() {
        let table = real().table_definition().expect("one table");
        assert_eq!(table.logical_id, "LedgerTable");
        assert_eq!(table.table_name, None);
        assert_eq!(
            table.key_schema,
            vec![
                KeyElement { attribute_name: "pk".into(), key_type: KeyType::Hash },
                KeyElement { attribute_name: "sk".into(), key_type: KeyType::Range },
            ]
        );
        assert!(table.attribute_definitions.iter().all(|a| a.attribute_type == "S"));
        assert_eq!(table.attribute_definitions.len(), 7);
        let names: Vec<_> = table.global_secondary_indexes.iter().map(|g| g.index_name.as_str()).collect();
        assert_eq!(names, ["by_account", "usable_quota", "due"]);
        let due = &table.global_secondary_indexes[2];
        assert_eq!(due.key_schema[0].attribute_name, "due_pk");
        assert_eq!(due.key_schema[1].attribute_name, "due_at");
        assert_eq!(due.projection.projection_type, "KEYS_ONLY");
        assert_eq!(table.global_secondary_indexes[0].projection.projection_type, "ALL");
        assert_eq!(table.ttl_attribute.as_deref(), Some("ttl"));
        // Every key attribute is declared, as DynamoDB requires.
        for key in table.key_schema.iter().chain(table.global_secondary_indexes.iter().flat_map(|g| &g.key_schema)) {
            assert!(table.attribute_definitions.iter().any(|a| a.attribute_name == key.attribute_name));
        }
    }

    #[test]
    fn http_routes_come_from_function_events() {
        let routes = real().http_routes().expect("routes");
        let find = |method: &str, path: &str| {
            routes.iter().find(|r| r.method == method && r.path == path).unwrap_or_else(|| panic!("{method} {path}"))
        };
        let health = find("GET", "/healthz");
        assert!(health.auth_none);
        assert_eq!(health.binary, "checkout");
        let invoice = find("GET", "/v1/invoices/{invoice_id}");
        assert!(!invoice.auth_none);
        assert_eq!(invoice.function_logical_id, "CheckoutFunction");
        let webhook = find("POST", "/v1/webhooks/midtrans");
        assert!(webhook.auth_none);
        assert_eq!(webhook.binary, "payment-webhook");
        assert!(!find("POST", "/v1/checkouts").auth_none);
        // The machine-readable contract is public and compiled into the API function.
        let contract = find("GET", "/v1/openapi.json");
        assert!(contract.auth_none);
        assert_eq!(contract.binary, "checkout");
        assert!(routes.len() >= 7);
    }

    #[test]
    fn functions_merge_global_environment() {
        let functions = real().functions().expect("functions");
        let checkout = functions.iter().find(|f| f.binary == "checkout").expect("checkout");
        assert_eq!(checkout.environment.get("EMETERAI_TABLE"), Some(&TemplateValue::Ref("LedgerTable".into())));
        assert_eq!(checkout.environment.get("RUST_LOG"), Some(&TemplateValue::Literal("info".into())));
        assert_eq!(real().parameter_default("UnitPrice").as_deref(), Some("10000"));
        // Empty: the template's own Cognito user pool is the issuer (the local stack uses its own).
        assert_eq!(real().parameter_default("JwtIssuer").as_deref(), Some(""));
        assert_eq!(checkout.timeout, Duration::from_secs(10), "Globals' Timeout");
        assert_eq!(checkout.memory_size_mb, 128, "Globals' MemorySize");
    }

    #[test]
    fn buckets_are_found() {
        let buckets: Vec<String> = real().buckets().into_iter().map(|b| b.logical_id).collect();
        assert_eq!(buckets, ["DocumentsBucket", "WebBucket"]);
    }

    const WITH_TRIGGERS: &str = r#"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  Bucket:
    Type: AWS::S3::Bucket
    Properties: { BucketName: docs }
  StampFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: stamp } }
    Properties:
      Environment: { Variables: { EXTRA: !Sub "${Bucket}-x", JOINED: !Join ["-", [a, b]], LONG: { "Fn::Sub": "${AWS::Region}" } } }
      Events:
        Upload:
          Type: S3
          Properties:
            Bucket: !Ref Bucket
            Events: s3:ObjectCreated:*
            Filter:
              S3Key:
                Rules:
                  - { Name: prefix, Value: incoming/ }
                  - { Name: suffix, Value: .pdf }
        Open:
          Type: HttpApi
          Properties: { ApiId: !Ref Api, Method: get, Path: /open }
  RefundFunction:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: refund } }
    Properties:
      Events:
        Sweep:
          Type: Schedule
          Properties: { Schedule: rate(5 minutes), Enabled: true }
        Nightly:
          Type: Schedule
          Properties: { Schedule: "cron(0 1 * * ? *)", Enabled: false }
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{ AttributeName: id, KeyType: HASH }]
      AttributeDefinitions: [{ AttributeName: id, AttributeType: S }]
"#;

    #[test]
    fn s3_and_schedule_triggers() {
        let t = Template::from_yaml_str(WITH_TRIGGERS).expect("parses");
        let s3 = t.s3_triggers().expect("s3");
        assert_eq!(s3.len(), 1);
        let upload = &s3[0];
        assert_eq!((upload.binary.as_str(), upload.bucket_logical_id.as_str()), ("stamp", "Bucket"));
        assert_eq!(upload.prefix.as_deref(), Some("incoming/"));
        assert_eq!(upload.suffix.as_deref(), Some(".pdf"));
        assert!(upload.matches("s3:ObjectCreated:Put", "incoming/a/b.pdf"));
        assert!(!upload.matches("s3:ObjectCreated:Put", "stamped/a/b.pdf"));
        assert!(!upload.matches("s3:ObjectCreated:Put", "incoming/a/b.txt"));
        assert!(!upload.matches("s3:ObjectRemoved:Delete", "incoming/a/b.pdf"));

        let schedules = t.schedule_triggers().expect("schedules");
        assert_eq!(schedules.len(), 2);
        assert_eq!(schedules[0].rate, Some(Duration::from_secs(300)));
        assert!(schedules[0].enabled);
        assert_eq!(schedules[1].rate, None);
        assert!(!schedules[1].enabled);

        // No default authorizer on this API: the route is open.
        let routes = t.http_routes().expect("routes");
        assert_eq!(routes[0].method, "GET");
        assert!(routes[0].auth_none);
        assert_eq!(t.buckets()[0].bucket_name, Some(TemplateValue::Literal("docs".into())));
        let stamp = t.functions().expect("functions").into_iter().find(|f| f.binary == "stamp").expect("stamp");
        assert_eq!(stamp.environment.get("EXTRA"), Some(&TemplateValue::Sub("${Bucket}-x".into())));
        assert_eq!(stamp.environment.get("LONG"), Some(&TemplateValue::Sub("${AWS::Region}".into())));
        assert_eq!(stamp.environment.get("JOINED"), Some(&TemplateValue::Unsupported("!Join".into())));
        assert_eq!(stamp.timeout, Duration::from_secs(3), "SAM's default");
        assert_eq!(t.table_definition().expect("table").ttl_attribute, None);
    }

    #[test]
    fn real_template_triggers_are_exactly_the_upload_and_the_schedule() {
        let t = real();
        let s3 = t.s3_triggers().expect("s3");
        assert_eq!(s3.len(), 1, "{s3:?}");
        let upload = &s3[0];
        assert_eq!(
            (upload.event_id.as_str(), upload.function_logical_id.as_str(), upload.binary.as_str(), upload.bucket_logical_id.as_str()),
            ("Upload", "StampFunction", "stamp", "DocumentsBucket")
        );
        assert_eq!(upload.events, vec!["s3:ObjectCreated:*".to_owned()]);
        assert_eq!((upload.prefix.as_deref(), upload.suffix.as_deref()), (Some("incoming/"), Some(".pdf")));
        assert!(upload.matches("s3:ObjectCreated:Put", "incoming/alice/doc_1.pdf"));
        assert!(upload.matches("s3:ObjectCreated:CompleteMultipartUpload", "incoming/alice/doc_1.pdf"));
        assert!(!upload.matches("s3:ObjectCreated:Put", "stamped/alice/doc_1.pdf"), "outputs never re-trigger");
        assert!(!upload.matches("s3:ObjectCreated:Put", "incoming/alice/doc_1.txt"));
        assert!(!upload.matches("s3:ObjectRemoved:Delete", "incoming/alice/doc_1.pdf"));
        let schedules = t.schedule_triggers().expect("schedules");
        assert_eq!(schedules.len(), 1, "{schedules:?}");
        let sweep = &schedules[0];
        assert_eq!(
            (sweep.event_id.as_str(), sweep.function_logical_id.as_str(), sweep.binary.as_str(), sweep.expression.as_str()),
            ("Sweep", "RefundFunction", "refund", "rate(5 minutes)")
        );
        assert_eq!((sweep.rate, sweep.enabled), (Some(Duration::from_secs(300)), true));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("rate(1 minute)"), Some(Duration::from_secs(60)));
        assert_eq!(parse_rate("rate(2 hours)"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_rate("rate(1 day)"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_rate("rate(0 minutes)"), None);
        assert_eq!(parse_rate("rate(5 fortnights)"), None);
        assert_eq!(parse_rate("rate(5)"), None);
        assert_eq!(parse_rate("rate(99999999999999999 days)"), None);
    }

    #[test]
    fn broken_templates_are_errors_not_panics() {
        assert!(matches!(Template::from_yaml_str("a: [1, 2"), Err(TemplateError::Yaml(_))));
        assert!(matches!(Template::from_yaml_str("a: 1"), Err(TemplateError::NoResources)));
        let two_tables = "Resources:\n  A: {Type: AWS::DynamoDB::Table}\n  B: {Type: AWS::DynamoDB::Table}\n";
        assert!(matches!(
            Template::from_yaml_str(two_tables).and_then(|t| t.table_definition()),
            Err(TemplateError::TableCount(2))
        ));
        let no_hash = "Resources:\n  A: {Type: AWS::DynamoDB::Table, Properties: {KeySchema: [{AttributeName: x, KeyType: RANGE}]}}\n";
        assert!(matches!(
            Template::from_yaml_str(no_hash).and_then(|t| t.table_definition()),
            Err(TemplateError::Invalid { .. })
        ));
        let bad_route = "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: f}}\n    Properties: {Events: {E: {Type: HttpApi, Properties: {Method: GET, Path: nope}}}}\n";
        assert!(Template::from_yaml_str(bad_route).expect("yaml").http_routes().is_err());
        assert!(matches!(Template::load("/nonexistent/template.yaml"), Err(TemplateError::Read { .. })));
    }
}
