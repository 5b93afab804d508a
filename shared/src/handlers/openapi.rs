//! The machine-readable contract: an OpenAPI 3.1 document of every HTTP route, served at
//! `GET /v1/openapi.json` and committed as `docs/openapi.json`.
//!
//! Schemas come from the types the handlers serialize (`views`, `http::problem::Problem`, the
//! Midtrans notification the webhook reads), so a field added to an answer appears here by
//! itself. The operations (statuses, codes, links) are written below, next to each other, from
//! what the handlers answer; the tests in `tests/tests/contract.rs` hold this document to
//! template.yaml's routes and to the committed file.

use std::sync::OnceLock;

use serde_json::{Value, json};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathsBuilder, Ref, RefOr, Required};
use utoipa::{OpenApi, ToSchema};

use super::MAX_JSON_BODY;
use super::views::*;
use crate::domain::notification::Notification;
use crate::http::problem::Problem;
use crate::stamping::{MAX_PDF_BYTES, Rejection};

/// The security scheme's name in the document.
const BEARER: &str = "bearerAuth";
const JSON: &str = "application/json";
const PROBLEM_JSON: &str = "application/problem+json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "e-Meterai API",
        description = "Buy e-Meterai quota, stamp PDFs, verify stamps, refund unused units. \
            Amounts are whole rupiah; times are RFC 3339 UTC; errors are RFC 9457 problem details \
            with a machine-readable `code`. Another account's resource answers 404 `not_found`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(
        CheckoutRequest,
        CreateDocumentRequest,
        PlacementBody,
        InvoiceView,
        InvoicePage,
        QuotaView,
        RefundView,
        DocumentView,
        CreatedDocument,
        RegisteredSerialView,
        VerifyReport,
        StatusOk,
        Problem,
        Notification,
    )),
    security(("bearerAuth" = [])),
)]
struct Components;

/// The document, built once per process.
pub fn document() -> &'static Document {
    static DOCUMENT: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// The document as `GET /v1/openapi.json` answers it and `docs/openapi.json` holds it: pretty
/// JSON with a final newline.
pub fn document_json() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = document().to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document did not serialize");
            String::from("{}")
        });
        text.push('\n');
        text
    })
}

fn build() -> Document {
    let mut doc = Components::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "A JWT whose `sub` claim is the account. On AWS the HTTP API's JWT authorizer \
                     validates it (Cognito or any OIDC issuer); the local stack accepts HS256 tokens \
                     with `iss` = `emeterai-local` and `aud` = `emeterai` (`emeterai token --sub ACCOUNT`).",
                ))
                .build(),
        ),
    );
    doc.paths = PathsBuilder::new()
        .path("/healthz", PathItem::new(HttpMethod::Get, health()))
        .path("/v1/openapi.json", PathItem::new(HttpMethod::Get, contract()))
        .path("/v1/checkouts", PathItem::new(HttpMethod::Post, create_checkout()))
        .path("/v1/invoices", PathItem::new(HttpMethod::Get, list_invoices()))
        .path("/v1/invoices/{invoice_id}", PathItem::new(HttpMethod::Get, get_invoice()))
        .path("/v1/invoices/{invoice_id}/payment", PathItem::new(HttpMethod::Post, retry_payment()))
        .path("/v1/invoices/{invoice_id}/refund", PathItem::new(HttpMethod::Post, request_refund()))
        .path("/v1/quota", PathItem::new(HttpMethod::Get, quota()))
        .path("/v1/documents", PathItem::new(HttpMethod::Post, create_document()))
        .path("/v1/documents/{document_id}", PathItem::new(HttpMethod::Get, get_document()))
        .path("/v1/verify/{serial}", PathItem::new(HttpMethod::Get, verify_serial()))
        .path("/v1/verify", PathItem::new(HttpMethod::Post, verify_file()))
        .path("/v1/webhooks/midtrans", PathItem::new(HttpMethod::Post, midtrans_notification()))
        .build();
    doc
}

// ---- building blocks -------------------------------------------------------------------------

fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

fn json_response<T: ToSchema>(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(JSON, ContentBuilder::new().schema(Some(schema_ref::<T>())).build())
}

/// A problem+json answer for `status`, listing the `code`s it carries with an example of each.
fn problem(status: u16, title: &str, codes: &[(&str, &str)]) -> (String, RefOr<utoipa::openapi::Response>) {
    (status.to_string(), problem_response(status, title, codes).build().into())
}

/// A 429 for a per-account limit, with the `Retry-After` header every such answer carries.
fn account_limit(code: &str, detail: &str) -> (String, RefOr<utoipa::openapi::Response>) {
    let retry_after = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Integer)).minimum(Some(1)).build()))
        .description(Some("Seconds to wait before asking again (RFC 9110 delay-seconds)."))
        .build();
    let response = problem_response(429, "Too Many Requests", &[(code, detail)]).header("Retry-After", retry_after);
    ("429".to_owned(), response.build().into())
}

fn problem_response(status: u16, title: &str, codes: &[(&str, &str)]) -> ResponseBuilder {
    let mut content = ContentBuilder::new().schema(Some(schema_ref::<Problem>()));
    let mut lines = Vec::with_capacity(codes.len());
    for (code, detail) in codes {
        lines.push(format!("`{code}`: {detail}"));
        content = content.examples_from_iter([(
            *code,
            ExampleBuilder::new()
                .summary(*code)
                .value(Some(json!({"type": "about:blank", "title": title, "status": status, "code": code, "detail": detail})))
                .build(),
        )]);
    }
    ResponseBuilder::new().description(lines.join("; ")).content(PROBLEM_JSON, content.build())
}

fn unauthorized() -> (String, RefOr<utoipa::openapi::Response>) {
    problem(401, "Unauthorized", &[("unauthorized", "a valid bearer token is required")])
}

fn unavailable() -> (String, RefOr<utoipa::openapi::Response>) {
    problem(503, "Service Unavailable", &[("service_unavailable", "the service is temporarily unavailable; try again")])
}

fn internal() -> (String, RefOr<utoipa::openapi::Response>) {
    problem(500, "Internal Server Error", &[("internal_error", "internal error")])
}

fn too_large(limit: usize) -> (String, RefOr<utoipa::openapi::Response>) {
    problem(413, "Content Too Large", &[("payload_too_large", &format!("request body is too large (at most {limit} bytes)"))])
}

fn not_found(what: &str) -> (String, RefOr<utoipa::openapi::Response>) {
    problem(404, "Not Found", &[("not_found", &format!("no such {what} (or it belongs to another account)"))])
}

fn bad_request(detail: &str) -> (String, RefOr<utoipa::openapi::Response>) {
    problem(400, "Bad Request", &[("bad_request", detail)])
}

fn json_body<T: ToSchema>(description: &str) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .description(Some(description))
        .required(Some(Required::True))
        .content(JSON, ContentBuilder::new().schema(Some(schema_ref::<T>())).build())
        .build()
}

fn string_schema(pattern: Option<&str>, min: Option<usize>, max: Option<usize>) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(pattern)
        .min_length(min)
        .max_length(max)
        .into()
}

fn path_parameter(name: &str, description: &str, pattern: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(string_schema(Some(pattern), None, None)))
        .build()
}

fn idempotency_key(required: bool) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(if required { Required::True } else { Required::False })
        .description(Some(
            "Names one intent: the same key with the same request replays the first answer \
             (with `Idempotent-Replayed: true`) and creates nothing new.",
        ))
        .schema(Some(string_schema(Some("^[A-Za-z0-9_:.-]{1,128}$"), Some(1), Some(128))))
        .example(Some(json!("8f14e45f-ceea-467f-a0e6-4d2f8c1b7e55")))
        .build()
}

fn replayed_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).enum_values(Some(["true"])).build()))
        .description(Some("Present on a replay of an earlier request with the same Idempotency-Key."))
        .build()
}

/// A link to the operation `operation_id` with its parameter taken from this answer's body.
fn link(operation_id: &str, parameter: &str, pointer: &str, description: &str) -> utoipa::openapi::link::Link {
    LinkBuilder::new()
        .operation_id(operation_id)
        .parameter(parameter, Value::String(format!("$response.body#{pointer}")))
        .description(description)
        .build()
}

fn public() -> Vec<SecurityRequirement> {
    Vec::new()
}

// ---- operations ------------------------------------------------------------------------------

fn health() -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some("health"))
        .tag("operations")
        .summary(Some("Liveness"))
        .securities(Some(public()))
        .responses(ResponsesBuilder::new().response("200", json_response::<StatusOk>("The API function answers.")))
}

fn contract() -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some("getOpenApi"))
        .tag("operations")
        .summary(Some("This document"))
        .securities(Some(public()))
        .responses(ResponsesBuilder::new().response(
            "200",
            ResponseBuilder::new().description("The OpenAPI 3.1 document of the API.").content(
                JSON,
                ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Object)).build())).build(),
            ),
        ))
}

fn create_checkout() -> OperationBuilder {
    let created = json_response::<InvoiceView>(
        "The invoice, PENDING, with its payment link (`payment` is null when the gateway could not be reached).",
    )
    .header("Idempotent-Replayed", replayed_header())
    .link("GetInvoice", link("getInvoice", "invoice_id", "/invoice_id", "The invoice just opened."))
    .link("RetryPayment", link("retryPayment", "invoice_id", "/invoice_id", "Ask the gateway for a payment link again."))
    .link("RequestRefund", link("requestRefund", "invoice_id", "/invoice_id", "Refund its unused units once paid."));
    OperationBuilder::new()
        .operation_id(Some("createCheckout"))
        .tag("invoices")
        .summary(Some("Buy quota: open an invoice and a payment"))
        .parameter(idempotency_key(true))
        .request_body(Some(json_body::<CheckoutRequest>("How many units to buy.")))
        .responses(
            ResponsesBuilder::new()
                .response("201", created)
                .responses_from_iter([
                    problem(
                        400,
                        "Bad Request",
                        &[
                            ("idempotency_key_required", "the Idempotency-Key header is required"),
                            ("idempotency_key_invalid", "Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 - _ : ."),
                            ("bad_request", "body must be a JSON object"),
                        ],
                    ),
                    unauthorized(),
                    problem(409, "Conflict", &[(
                        "idempotency_key_in_progress",
                        "a request with this Idempotency-Key is still in progress; retry later",
                    )]),
                    too_large(MAX_JSON_BODY),
                    problem(
                        422,
                        "Unprocessable Content",
                        &[
                            ("quantity_out_of_range", "quantity must be a whole number from 1 to 1000"),
                            ("idempotency_key_reused", "this Idempotency-Key was already used with a different request"),
                        ],
                    ),
                    account_limit(
                        "too_many_unpaid_checkouts",
                        "this account already has 100 unpaid checkouts; pay one or wait until one expires",
                    ),
                    internal(),
                    unavailable(),
                ]),
        )
}

fn invoice_id() -> utoipa::openapi::path::Parameter {
    path_parameter("invoice_id", "The invoice (`inv_...`).", "^inv_[0-7][0-9A-HJKMNP-TV-Z]{25}$")
}

fn list_invoices() -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some("listInvoices"))
        .tag("invoices")
        .summary(Some("The caller's invoices, newest first"))
        .parameter(
            ParameterBuilder::new()
                .name("cursor")
                .parameter_in(ParameterIn::Query)
                .description(Some("`next_cursor` of the previous page, as given (opaque)."))
                .schema(Some(string_schema(Some("^[A-Za-z0-9_-]*$"), None, Some(2048)))),
        )
        .parameter(
            ParameterBuilder::new()
                .name("limit")
                .parameter_in(ParameterIn::Query)
                .description(Some("Invoices per page (default 20)."))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(SchemaType::Type(Type::Integer))
                        .minimum(Some(1))
                        .maximum(Some(crate::ledger::invoices::MAX_PAGE_SIZE)),
                )),
        )
        .responses(ResponsesBuilder::new().response("200", json_response::<InvoicePage>("A page of invoices.")).responses_from_iter([
            bad_request("limit must be a whole number from 1 to 100 (or: cursor is not valid for this listing)"),
            unauthorized(),
            internal(),
            unavailable(),
        ]))
}

fn get_invoice() -> OperationBuilder {
    let found = json_response::<InvoiceView>("The invoice with its units used, remaining and refunded.")
        .link("RetryPayment", link("retryPayment", "invoice_id", "/invoice_id", "Ask the gateway for a payment link again."))
        .link("RequestRefund", link("requestRefund", "invoice_id", "/invoice_id", "Refund its unused units."));
    OperationBuilder::new()
        .operation_id(Some("getInvoice"))
        .tag("invoices")
        .summary(Some("One invoice"))
        .parameter(invoice_id())
        .responses(
            ResponsesBuilder::new()
                .response("200", found)
                .responses_from_iter([unauthorized(), not_found("invoice"), internal(), unavailable()]),
        )
}

fn retry_payment() -> OperationBuilder {
    let ok = json_response::<InvoiceView>("The PENDING invoice with its payment link.")
        .link("GetInvoice", link("getInvoice", "invoice_id", "/invoice_id", "The invoice."));
    OperationBuilder::new()
        .operation_id(Some("retryPayment"))
        .tag("invoices")
        .summary(Some("Ask the payment gateway again for a PENDING invoice's payment link"))
        .parameter(invoice_id())
        .responses(ResponsesBuilder::new().response("200", ok).responses_from_iter([
            unauthorized(),
            not_found("invoice"),
            problem(409, "Conflict", &[("invoice_not_pending", "invoice is PAID; only a PENDING invoice can be paid")]),
            internal(),
            problem(502, "Bad Gateway", &[("gateway_unavailable", "the payment gateway is unavailable; try again")]),
            unavailable(),
        ]))
}

fn request_refund() -> OperationBuilder {
    let accepted = json_response::<RefundView>("The refund of every unused unit, REQUESTED; the sweep submits it.")
        .header("Idempotent-Replayed", replayed_header())
        .link("GetInvoice", link("getInvoice", "invoice_id", "/invoice_id", "The invoice, whose `refund` follows this refund."));
    OperationBuilder::new()
        .operation_id(Some("requestRefund"))
        .tag("invoices")
        .summary(Some("Refund every unused unit of a PAID invoice (100%)"))
        .parameter(invoice_id())
        .parameter(idempotency_key(false))
        .responses(ResponsesBuilder::new().response("202", accepted).responses_from_iter([
            problem(400, "Bad Request", &[(
                "idempotency_key_invalid",
                "Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 - _ : .",
            )]),
            unauthorized(),
            not_found("invoice"),
            problem(
                409,
                "Conflict",
                &[
                    ("nothing_to_refund", "the invoice has no unused unit to refund"),
                    ("idempotency_key_in_progress", "a request with this Idempotency-Key is still in progress; retry later"),
                ],
            ),
            problem(422, "Unprocessable Content", &[(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request",
            )]),
            internal(),
            unavailable(),
        ]))
}

fn quota() -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some("getQuota"))
        .tag("invoices")
        .summary(Some("Usable and pending units"))
        .responses(
            ResponsesBuilder::new()
                .response("200", json_response::<QuotaView>("The caller's units."))
                .responses_from_iter([unauthorized(), internal(), unavailable()]),
        )
}

fn create_document() -> OperationBuilder {
    let created = json_response::<CreatedDocument>(
        "The document, AWAITING_UPLOAD, and a presigned request to upload its PDF with; the upload starts the stamping.",
    )
    .link("GetDocument", link("getDocument", "document_id", "/document_id", "What became of the upload."));
    OperationBuilder::new()
        .operation_id(Some("createDocument"))
        .tag("documents")
        .summary(Some("Announce a PDF to stamp; get where to upload it"))
        .request_body(Some(json_body::<CreateDocumentRequest>("The file's name and where the stamp goes.")))
        .responses(ResponsesBuilder::new().response("201", created).responses_from_iter([
            bad_request("file_name is required"),
            unauthorized(),
            too_large(MAX_JSON_BODY),
            problem(
                422,
                "Unprocessable Content",
                &[
                    ("page_out_of_range", "page numbers start at 1"),
                    ("placement_out_of_bounds", "x_mm and y_mm must be numbers from 0 to 1000000 (millimetres)"),
                ],
            ),
            account_limit(
                "too_many_open_documents",
                "this account already has 500 documents awaiting upload or being stamped; wait until some finish",
            ),
            internal(),
            unavailable(),
        ]))
}

fn get_document() -> OperationBuilder {
    let found = json_response::<DocumentView>("The document; `serial`, `download_url` and `sha256` once STAMPED.")
        .link("VerifySerial", link("verifySerial", "serial", "/serial", "The public registry's word on its e-Meterai."));
    OperationBuilder::new()
        .operation_id(Some("getDocument"))
        .tag("documents")
        .summary(Some("A document and what became of it"))
        .parameter(path_parameter("document_id", "The document (`doc_...`).", "^doc_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .responses(
            ResponsesBuilder::new()
                .response("200", found)
                .responses_from_iter([unauthorized(), not_found("document"), internal(), unavailable()]),
        )
}

fn html() -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).build())).build()
}

fn verify_serial() -> OperationBuilder {
    let lang = ParameterBuilder::new()
        .name("lang")
        .parameter_in(ParameterIn::Query)
        .description(Some("The HTML page's language: Indonesian unless `en`."))
        .schema(Some(ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).enum_values(Some(["id", "en"]))));
    let found = json_response::<RegisteredSerialView>(
        "A registered e-Meterai (JSON), or a page for people when the request prefers `text/html`.",
    )
    .content("text/html; charset=utf-8", html());
    let (status, missing) = not_found("serial");
    let missing = match missing {
        RefOr::T(mut r) => {
            r.content.insert("text/html; charset=utf-8".into(), RefOr::T(html()));
            RefOr::T(r)
        }
        other => other,
    };
    OperationBuilder::new()
        .operation_id(Some("verifySerial"))
        .tag("verification")
        .summary(Some("Is this serial a registered e-Meterai?"))
        .securities(Some(public()))
        .parameter(path_parameter("serial", "The e-Meterai serial: 22 characters of 0-9 A-Z.", "^[0-9A-Z]{22}$"))
        .parameter(lang)
        .responses(ResponsesBuilder::new().response("200", found).response(status, missing).responses_from_iter([internal(), unavailable()]))
}

fn verify_file() -> OperationBuilder {
    let pdf = ContentBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .content_media_type("application/pdf")
                .max_length(Some(MAX_PDF_BYTES)),
        ))
        .build();
    let mut refused: Vec<(&str, String)> = Rejection::ALL.iter().map(|r| (r.code(), r.message())).collect();
    refused.truncate(4); // not_pdf, corrupt, encrypted, too_large: what reading a file can find
    let refused: Vec<(&str, &str)> = refused.iter().map(|(c, m)| (*c, m.as_str())).collect();
    OperationBuilder::new()
        .operation_id(Some("verifyFile"))
        .tag("verification")
        .summary(Some("Check the e-Meterai signatures in a PDF"))
        .securities(Some(public()))
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some("The PDF, at most 800,000 bytes."))
                .required(Some(Required::True))
                .content("application/pdf", pdf)
                .build(),
        ))
        .responses(
            ResponsesBuilder::new()
                .response("200", json_response::<VerifyReport>("Every e-Meterai in the file (none: an empty list)."))
                .responses_from_iter([
                    too_large(MAX_PDF_BYTES),
                    problem(422, "Unprocessable Content", &refused),
                    internal(),
                    unavailable(),
                ]),
        )
}

fn midtrans_notification() -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some("midtransNotification"))
        .tag("payments")
        .summary(Some("Midtrans HTTP notification"))
        .description(Some(
            "Called by Midtrans, not by clients. The signature is checked over the fields as received; \
             a settlement credits the invoice's quantity exactly once, however often and in whatever order \
             notifications arrive. 5xx only when Midtrans should retry.",
        ))
        .securities(Some(public()))
        .request_body(Some(json_body::<Notification>("Midtrans' notification JSON (more fields may be present).")))
        .responses(
            ResponsesBuilder::new()
                .response("200", json_response::<StatusOk>("Taken; its effect is durable (duplicates answer the same)."))
                .responses_from_iter([
                    bad_request("not a Midtrans notification: missing field `signature_key`"),
                    problem(401, "Unauthorized", &[("bad_signature", "signature_key does not match the notification")]),
                    not_found("order"),
                    too_large(MAX_JSON_BODY),
                    problem(422, "Unprocessable Content", &[(
                        "amount_mismatch",
                        "gross_amount 1.00 differs from the invoice amount 30000.00; flagged for review",
                    )]),
                    internal(),
                    unavailable(),
                ]),
        )
}

// ---- requests no operation takes ---------------------------------------------------------------

/// The methods of every documented path, as `(path segments, "GET, POST")`, built once from the
/// document so that the 405's `Allow` can never disagree with the contract.
fn allowed_methods() -> &'static [(Vec<String>, String)] {
    static TABLE: OnceLock<Vec<(Vec<String>, String)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        document()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("OPTIONS", item.options.is_some()),
                    ("HEAD", item.head.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("TRACE", item.trace.is_some()),
                ];
                let allow: Vec<&str> = methods.iter().filter(|(_, declared)| *declared).map(|(m, _)| *m).collect();
                (path.trim_start_matches('/').split('/').map(str::to_owned).collect(), allow.join(", "))
            })
            .collect()
    })
}

/// Whether request path `segments` fit a documented path: literals equal, a `{parameter}` takes
/// any one non-empty segment.
fn fits(template: &[String], segments: &[&str]) -> bool {
    template.len() == segments.len()
        && template.iter().zip(segments).all(|(t, s)| {
            if t.starts_with('{') && t.ends_with('}') { !s.is_empty() } else { t == s }
        })
}

/// The answer to a request no operation takes (the router found no method and path for it): a
/// documented path with another method is 405 `method_not_allowed` with `Allow` listing the
/// documented methods (RFC 9110); anything else is 404 `not_found`.
pub fn unrouted(segments: &[&str]) -> crate::http::ApiError {
    use crate::http::ApiError;
    match allowed_methods().iter().find(|(template, _)| fits(template, segments)) {
        Some((_, allow)) => ApiError::MethodNotAllowed { allow },
        None => ApiError::NotFound("no such route"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ApiError;

    fn allow_of(path: &str) -> Option<&'static str> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match unrouted(&segments) {
            ApiError::MethodNotAllowed { allow } => Some(allow),
            ApiError::NotFound(_) => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn documented_paths_answer_405_with_their_methods() {
        assert_eq!(allow_of("/v1/quota"), Some("GET"));
        assert_eq!(allow_of("/v1/checkouts"), Some("POST"));
        assert_eq!(allow_of("/healthz"), Some("GET"));
        assert_eq!(allow_of("/v1/invoices/01J9ZX/refund"), Some("POST"));
        assert_eq!(allow_of("/v1/verify/EM-1"), Some("GET"));
        assert_eq!(allow_of("/v1/verify"), Some("POST"));
        assert_eq!(allow_of("/v1/webhooks/midtrans"), Some("POST"));
    }

    #[test]
    fn other_paths_answer_404() {
        assert_eq!(allow_of("/v1/quota2"), None);
        assert_eq!(allow_of("/v1/invoices/01J9ZX/refund/more"), None);
        assert_eq!(allow_of("/v1/invoices//refund"), None);
        assert_eq!(allow_of("/"), None);
    }

    #[test]
    fn the_405_carries_allow() {
        let response = unrouted(&["v1", "documents"]).to_response();
        assert_eq!(response.status, 405);
        assert_eq!(response.header("allow"), Some("POST"));
        let body: Value = serde_json::from_str(&response.body).expect("json");
        assert_eq!(body["code"], "method_not_allowed");
    }
}
