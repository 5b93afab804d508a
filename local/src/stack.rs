//! How the local stack names things and configures the functions, from `template.yaml`.

use std::collections::{BTreeMap, HashMap};

use crate::template::{Template, TemplateError, TemplateValue};

/// The table's local name unless `EMETERAI_TABLE` or the template's `TableName` says otherwise.
pub const DEFAULT_TABLE: &str = "emeterai-ledger";
/// The bucket's local name (single bucket) unless `EMETERAI_BUCKET` or `BucketName` says otherwise.
pub const DEFAULT_BUCKET: &str = "emeterai-documents";
/// The local stack's Midtrans server key (API.md), unless `EMETERAI_MIDTRANS_SERVER_KEY` is set.
pub const LOCAL_MIDTRANS_SERVER_KEY: &str = "SB-Mid-server-LOCAL";
/// Local value of the template's `JwtIssuer` parameter: the issuer of local tokens.
const LOCAL_JWT_ISSUER: &str = emeterai::auth::local_jwt::ISSUER;

/// Names of the template's table and buckets on the local services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNames {
    pub table_logical_id: String,
    pub table: String,
    /// Bucket logical id → bucket name.
    pub buckets: HashMap<String, String>,
}

impl LocalNames {
    pub fn new(template: &Template, lookup: impl Fn(&str) -> Option<String>) -> Result<LocalNames, TemplateError> {
        let table_def = template.table_definition()?;
        let table = lookup("EMETERAI_TABLE")
            .filter(|t| !t.is_empty())
            .or(table_def.table_name)
            .unwrap_or_else(|| DEFAULT_TABLE.to_owned());
        let declared = template.buckets();
        let single = declared.len() == 1;
        let buckets = declared
            .into_iter()
            .map(|b| {
                let name = b.bucket_name.clone().unwrap_or_else(|| {
                    match lookup("EMETERAI_BUCKET").filter(|n| single && !n.is_empty()) {
                        Some(n) => n,
                        None if single => DEFAULT_BUCKET.to_owned(),
                        None => format!("emeterai-{}", b.logical_id.to_ascii_lowercase()),
                    }
                });
                (b.logical_id, name)
            })
            .collect();
        Ok(LocalNames { table_logical_id: table_def.logical_id, table, buckets })
    }
}

/// The environment of the functions: what `template.yaml` gives them (Globals and their own
/// variables), with references resolved to local names and parameters to local values. A variable
/// already set in `lookup` (the caller's environment) wins, so `EMETERAI_UNIT_PRICE=12000 make run`
/// works. `midtrans_url` is the simulator's base URL (Snap and Core API alike).
pub fn function_environment(
    template: &Template,
    names: &LocalNames,
    midtrans_url: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let mut environment = BTreeMap::new();
    for function in template.functions()? {
        for (name, value) in function.environment {
            if let Some(explicit) = lookup(&name) {
                environment.insert(name, explicit);
                continue;
            }
            let resolved = match value {
                TemplateValue::Literal(v) => Some(v),
                TemplateValue::Ref(r) if r == names.table_logical_id => Some(names.table.clone()),
                TemplateValue::Ref(r) if names.buckets.contains_key(&r) => names.buckets.get(&r).cloned(),
                TemplateValue::Ref(param) => match param.as_str() {
                    "MidtransServerKey" => Some(LOCAL_MIDTRANS_SERVER_KEY.to_owned()),
                    "MidtransSnapBaseUrl" | "MidtransApiBaseUrl" => Some(midtrans_url.to_owned()),
                    "JwtIssuer" => Some(LOCAL_JWT_ISSUER.to_owned()),
                    _ => template.parameter_default(&param),
                },
                TemplateValue::Unsupported(tag) => {
                    tracing::warn!(variable = %name, %tag, "cannot resolve this variable locally; set it in the environment");
                    None
                }
            };
            if let Some(v) = resolved {
                environment.insert(name, v);
            }
        }
    }
    Ok(environment)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real() -> Template {
        Template::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("template")
    }

    #[test]
    fn names_default_and_follow_the_environment() {
        let names = LocalNames::new(&real(), |_| None).expect("names");
        assert_eq!(names.table, DEFAULT_TABLE);
        assert_eq!(names.buckets.get("DocumentsBucket").map(String::as_str), Some(DEFAULT_BUCKET));
        let names = LocalNames::new(&real(), |k| match k {
            "EMETERAI_TABLE" => Some("t2".into()),
            "EMETERAI_BUCKET" => Some("b2".into()),
            _ => None,
        })
        .expect("names");
        assert_eq!((names.table.as_str(), names.buckets["DocumentsBucket"].as_str()), ("t2", "b2"));
    }

    #[test]
    fn function_environment_resolves_the_template() {
        let t = real();
        let names = LocalNames::new(&t, |_| None).expect("names");
        let env = function_environment(&t, &names, "http://127.0.0.1:3001", |k| {
            (k == "EMETERAI_UNIT_PRICE").then(|| "12000".to_owned())
        })
        .expect("env");
        assert_eq!(env["EMETERAI_TABLE"], DEFAULT_TABLE);
        assert_eq!(env["EMETERAI_BUCKET"], DEFAULT_BUCKET);
        assert_eq!(env["EMETERAI_MIDTRANS_SERVER_KEY"], "SB-Mid-server-LOCAL");
        assert_eq!(env["EMETERAI_MIDTRANS_SNAP_BASE_URL"], "http://127.0.0.1:3001");
        assert_eq!(env["EMETERAI_MIDTRANS_API_BASE_URL"], "http://127.0.0.1:3001");
        assert_eq!(env["EMETERAI_UNIT_PRICE"], "12000", "the caller's environment wins");
        assert_eq!(env["EMETERAI_QUOTA_VALIDITY_DAYS"], "14");
        assert_eq!(env["RUST_LOG"], "info");
    }
}
