//! How the local stack names things and configures the functions, from `template.yaml`: the
//! references, `!Sub` strings and parameters of the template resolved to local values.

use std::collections::{BTreeMap, HashMap};

use crate::template::{Template, TemplateError, TemplateValue};

/// The table's local name when the template lets CloudFormation choose one.
pub const DEFAULT_TABLE: &str = "emeterai-ledger";
/// The bucket's local name when the template lets CloudFormation choose one (single bucket).
pub const DEFAULT_BUCKET: &str = "emeterai-documents";
/// The local stack's Midtrans server key (API.md), unless `EMETERAI_MIDTRANS_SERVER_KEY` is set.
pub const LOCAL_MIDTRANS_SERVER_KEY: &str = "SB-Mid-server-LOCAL";
/// `AWS::AccountId` locally.
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";
pub const DEFAULT_REGION: &str = "ap-southeast-3";

/// Where the local stack's parts listen, for the template's parameters that are URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalContext {
    pub region: String,
    /// The gateway (the API's public base URL locally).
    pub gateway_url: String,
    /// The Midtrans simulator (Snap and Core API base URL alike).
    pub midtrans_url: String,
    pub midtrans_server_key: String,
}

impl LocalContext {
    /// From `EMETERAI_PORT` (3000), `EMETERAI_MIDTRANS_SIM_PORT` (3001), `AWS_REGION` and
    /// `EMETERAI_MIDTRANS_SERVER_KEY`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> LocalContext {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        LocalContext {
            region: get("AWS_REGION").unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            gateway_url: format!("http://127.0.0.1:{}", get("EMETERAI_PORT").unwrap_or_else(|| "3000".into())),
            midtrans_url: format!(
                "http://127.0.0.1:{}",
                get("EMETERAI_MIDTRANS_SIM_PORT").unwrap_or_else(|| "3001".into())
            ),
            midtrans_server_key: get("EMETERAI_MIDTRANS_SERVER_KEY")
                .unwrap_or_else(|| LOCAL_MIDTRANS_SERVER_KEY.to_owned()),
        }
    }
}

/// Resolves template values to local strings.
struct Resolver<'a> {
    template: &'a Template,
    context: &'a LocalContext,
    /// Resource logical id → local name.
    resources: &'a HashMap<String, String>,
}

impl Resolver<'_> {
    /// The local value of a template parameter: the local part it names, else its default.
    fn parameter(&self, name: &str) -> Option<String> {
        match name {
            "MidtransServerKey" => Some(self.context.midtrans_server_key.clone()),
            "MidtransSnapBaseUrl" | "MidtransApiBaseUrl" => Some(self.context.midtrans_url.clone()),
            "PublicBaseUrl" => Some(self.context.gateway_url.clone()),
            "JwtIssuer" => Some(emeterai::auth::local_jwt::ISSUER.to_owned()),
            _ => self.template.parameter_default(name),
        }
    }

    fn name(&self, name: &str) -> Option<String> {
        match name {
            "AWS::AccountId" => Some(LOCAL_ACCOUNT_ID.to_owned()),
            "AWS::Region" => Some(self.context.region.clone()),
            "AWS::Partition" => Some("aws".to_owned()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_owned()),
            "AWS::StackName" => Some("emeterai-local".to_owned()),
            // No KMS locally: the PEM issuer signs (an empty key id means none). Set
            // EMETERAI_ISSUER_KMS_KEY_ID in the environment to sign in a KMS emulator instead.
            "IssuerKey" => Some(String::new()),
            _ => self.resources.get(name).cloned().or_else(|| self.parameter(name)),
        }
    }

    /// `${Name}` replaced by its value, `${!Text}` by `${Text}`; `None` if a name is unknown.
    fn sub(&self, text: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}')?;
            let name = &after[..end];
            match name.strip_prefix('!') {
                Some(literal) => {
                    out.push_str("${");
                    out.push_str(literal);
                    out.push('}');
                }
                None => out.push_str(&self.name(name.trim())?),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn value(&self, value: &TemplateValue) -> Option<String> {
        match value {
            TemplateValue::Literal(v) => Some(v.clone()),
            TemplateValue::Ref(name) => self.name(name),
            TemplateValue::Sub(text) => self.sub(text),
            TemplateValue::Unsupported(_) => None,
        }
    }
}

/// Names of the template's table and buckets on the local services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNames {
    pub table_logical_id: String,
    pub table: String,
    /// Bucket logical id → bucket name.
    pub buckets: HashMap<String, String>,
}

impl LocalNames {
    /// The names template.yaml gives (resolved locally), else `EMETERAI_TABLE` / `EMETERAI_BUCKET`
    /// from `lookup`, else the defaults above. An explicit `EMETERAI_TABLE` / `EMETERAI_BUCKET` wins.
    pub fn new(
        template: &Template,
        context: &LocalContext,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<LocalNames, TemplateError> {
        let empty = HashMap::new();
        let resolver = Resolver { template, context, resources: &empty };
        let table_def = template.table_definition()?;
        let table = lookup("EMETERAI_TABLE")
            .filter(|t| !t.is_empty())
            .or_else(|| table_def.table_name.as_ref().and_then(|v| resolver.value(v)))
            .unwrap_or_else(|| DEFAULT_TABLE.to_owned());
        let declared = template.buckets();
        let single = declared.len() == 1;
        let explicit_bucket = lookup("EMETERAI_BUCKET").filter(|n| single && !n.is_empty());
        let buckets = declared
            .into_iter()
            .map(|b| {
                let name = explicit_bucket
                    .clone()
                    .or_else(|| b.bucket_name.as_ref().and_then(|v| resolver.value(v)))
                    .unwrap_or_else(|| {
                        if single {
                            DEFAULT_BUCKET.to_owned()
                        } else {
                            format!("emeterai-{}", b.logical_id.to_ascii_lowercase())
                        }
                    });
                (b.logical_id, name)
            })
            .collect();
        Ok(LocalNames { table_logical_id: table_def.logical_id, table, buckets })
    }

    fn resources(&self) -> HashMap<String, String> {
        let mut resources = self.buckets.clone();
        resources.insert(self.table_logical_id.clone(), self.table.clone());
        resources
    }
}

/// Whether a literal value names a file of a Lambda layer (mounted under /opt on AWS), which
/// does not exist locally; the function's local default applies instead.
fn is_layer_path(value: &str) -> bool {
    value.starts_with("/opt/")
}

/// The environment of the functions: what `template.yaml` gives them (Globals and their own
/// variables), resolved locally. A variable already set in `lookup` (the caller's environment)
/// wins, so `EMETERAI_UNIT_PRICE=12000 make run` works.
pub fn function_environment(
    template: &Template,
    names: &LocalNames,
    context: &LocalContext,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let resources = names.resources();
    let resolver = Resolver { template, context, resources: &resources };
    let mut environment = BTreeMap::new();
    for function in template.functions()? {
        for (name, value) in function.environment {
            if let Some(explicit) = lookup(&name).filter(|v| !v.is_empty()) {
                environment.insert(name, explicit);
                continue;
            }
            // The table and bucket are the local ones whatever expression the template uses.
            let resolved = match name.as_str() {
                "EMETERAI_TABLE" => Some(names.table.clone()),
                "EMETERAI_BUCKET" if names.buckets.len() == 1 => names.buckets.values().next().cloned(),
                _ => resolver.value(&value),
            };
            match resolved {
                Some(v) if is_layer_path(&v) => {
                    tracing::debug!(variable = %name, "left unset: a Lambda layer file; the local default applies");
                }
                Some(v) => {
                    environment.insert(name, v);
                }
                None => tracing::warn!(variable = %name, ?value, "cannot resolve this variable locally; set it in the environment"),
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

    fn context() -> LocalContext {
        LocalContext::from_lookup(|k| match k {
            "EMETERAI_PORT" => Some("3900".into()),
            "EMETERAI_MIDTRANS_SIM_PORT" => Some("3901".into()),
            _ => None,
        })
    }

    /// The shapes the project's template uses: a fixed bucket name by !Sub, layer files, URLs.
    const TEMPLATE: &str = r#"
Parameters:
  PublicBaseUrl: { Type: String }
  MidtransServerKey: { Type: String, NoEcho: true }
  MidtransSnapBaseUrl: { Type: String, Default: "https://sandbox.invalid" }
  UnitPrice: { Type: Number, Default: 10000 }
Globals:
  Function:
    Environment:
      Variables:
        EMETERAI_TABLE: !Ref Ledger
        EMETERAI_BUCKET: !Sub "docs-${AWS::AccountId}-${AWS::Region}"
        EMETERAI_VERIFY_BASE_URL: !Ref PublicBaseUrl
        EMETERAI_ISSUER_CERT_FILE: /opt/issuer/issuer-cert.pem
        EMETERAI_UNIT_PRICE: !Ref UnitPrice
        EMETERAI_MIDTRANS_SERVER_KEY: !Ref MidtransServerKey
        EMETERAI_MIDTRANS_SNAP_BASE_URL: !Ref MidtransSnapBaseUrl
        LITERAL_DOLLAR: !Sub "cost ${!Amount}"
        UNKNOWN: !Sub "${Nowhere}"
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: f } }
  Ledger:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{ AttributeName: pk, KeyType: HASH }]
      AttributeDefinitions: [{ AttributeName: pk, AttributeType: S }]
  Docs:
    Type: AWS::S3::Bucket
    Properties: { BucketName: !Sub "docs-${AWS::AccountId}-${AWS::Region}" }
"#;

    #[test]
    fn names_follow_the_template_then_the_environment() {
        let t = Template::from_yaml_str(TEMPLATE).expect("template");
        let names = LocalNames::new(&t, &context(), |_| None).expect("names");
        assert_eq!(names.table, DEFAULT_TABLE);
        assert_eq!(names.buckets["Docs"], "docs-000000000000-ap-southeast-3");
        let names = LocalNames::new(&t, &context(), |k| match k {
            "EMETERAI_TABLE" => Some("t2".into()),
            "EMETERAI_BUCKET" => Some("b2".into()),
            _ => None,
        })
        .expect("names");
        assert_eq!((names.table.as_str(), names.buckets["Docs"].as_str()), ("t2", "b2"));
    }

    #[test]
    fn function_environment_resolves_refs_subs_and_parameters() {
        let t = Template::from_yaml_str(TEMPLATE).expect("template");
        let names = LocalNames::new(&t, &context(), |_| None).expect("names");
        let env = function_environment(&t, &names, &context(), |k| (k == "EMETERAI_UNIT_PRICE").then(|| "12000".to_owned()))
            .expect("env");
        assert_eq!(env["EMETERAI_TABLE"], DEFAULT_TABLE);
        assert_eq!(env["EMETERAI_BUCKET"], names.buckets["Docs"]);
        assert_eq!(env["EMETERAI_VERIFY_BASE_URL"], "http://127.0.0.1:3900");
        assert_eq!(env["EMETERAI_MIDTRANS_SERVER_KEY"], LOCAL_MIDTRANS_SERVER_KEY);
        assert_eq!(env["EMETERAI_MIDTRANS_SNAP_BASE_URL"], "http://127.0.0.1:3901");
        assert_eq!(env["EMETERAI_UNIT_PRICE"], "12000", "the caller's environment wins");
        assert_eq!(env["LITERAL_DOLLAR"], "cost ${Amount}");
        assert!(!env.contains_key("EMETERAI_ISSUER_CERT_FILE"), "layer files do not exist locally");
        assert!(!env.contains_key("UNKNOWN"));
    }

    #[test]
    fn the_real_template_resolves_completely() {
        let t = real();
        let names = LocalNames::new(&t, &context(), |_| None).expect("names");
        let env = function_environment(&t, &names, &context(), |_| None).expect("env");
        assert_eq!(env["EMETERAI_TABLE"], names.table);
        assert_eq!(Some(&env["EMETERAI_BUCKET"]), names.buckets.get("DocumentsBucket"));
        assert_eq!(env["EMETERAI_MIDTRANS_SERVER_KEY"], "SB-Mid-server-LOCAL");
        assert_eq!(env["EMETERAI_MIDTRANS_API_BASE_URL"], "http://127.0.0.1:3901");
        assert_eq!(env["RUST_LOG"], "info");
        for (name, value) in &env {
            assert!(!value.contains("${"), "{name}={value} unresolved");
            assert!(!is_layer_path(value), "{name}");
        }
    }
}
