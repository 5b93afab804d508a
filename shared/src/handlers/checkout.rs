//! The checkout function: `POST /v1/checkouts`, invoices, quota, `/healthz`.

use std::sync::Arc;

use http::Method;

use super::{json_body, views};
use crate::config::Config;
use crate::domain::idempotency::{ClaimRefusal, IdempotencyKey, StoredResponse, request_hash};
use crate::domain::ids::{AccountId, InvoiceId, Ulid};
use crate::domain::invoice::{Invoice, InvoiceStatus};
use crate::domain::quantity::Quantity;
use crate::domain::time::{Clock, SystemClock};
use crate::http::{ApiError, ApiRequest, ApiResponse};
use crate::ledger::Ledger;
use crate::ledger::idempotency::Claim;
use crate::ledger::invoices::Opened;
use crate::midtrans::MidtransClient;
use crate::storage::DocumentStore;

const CHECKOUT_ROUTE: &str = "POST /v1/checkouts";
/// When the invocation deadline is unknown, a claim is held this long before others may take it.
const DEFAULT_IN_PROGRESS_MS: i64 = 30_000;
const DEFAULT_PAGE_SIZE: i32 = 20;
/// The scheduled sweep's period (template.yaml's `rate(5 minutes)`).
const SWEEP_PERIOD_SECONDS: u64 = 300;

/// Everything the HTTP API function needs, built once per container.
#[derive(Debug, Clone)]
pub struct CheckoutService {
    pub config: Config,
    pub ledger: Ledger,
    pub gateway: MidtransClient,
    pub documents: DocumentStore,
    /// Issuer certificates (DER) whose e-Meterai signatures `POST /v1/verify` accepts.
    pub trusted_issuers: Arc<Vec<Vec<u8>>>,
    /// "Now" for judging quota validity ([`SystemClock`] in production; tests move it).
    pub clock: Arc<dyn Clock>,
}

impl CheckoutService {
    pub fn new(
        config: Config,
        ledger: Ledger,
        gateway: MidtransClient,
        documents: DocumentStore,
        trusted_issuers: Vec<Vec<u8>>,
    ) -> Self {
        Self { config, ledger, gateway, documents, trusted_issuers: Arc::new(trusted_issuers), clock: Arc::new(SystemClock) }
    }

    /// Lambda entry point.
    pub async fn handle(
        &self,
        event: lambda_http::Request,
    ) -> Result<lambda_http::Response<lambda_http::Body>, std::convert::Infallible> {
        Ok(self.respond(ApiRequest::from_lambda(event)).await.into_lambda())
    }

    pub async fn respond(&self, req: ApiRequest) -> ApiResponse {
        self.route(&req).await.unwrap_or_else(|e| e.to_response())
    }

    async fn route(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let segments = req.segments();
        match (&req.method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => Ok(ApiResponse::json(200, views::to_json(&views::StatusOk::OK))),
            (&Method::GET, ["v1", "openapi.json"]) => Ok(ApiResponse::json(200, super::openapi::document_json().to_owned())),
            (&Method::POST, ["v1", "checkouts"]) => self.checkout(req).await,
            (&Method::GET, ["v1", "invoices"]) => self.list_invoices(req).await,
            (&Method::GET, ["v1", "invoices", id]) => self.get_invoice(req, id).await,
            (&Method::POST, ["v1", "invoices", id, "payment"]) => self.retry_payment(req, id).await,
            (&Method::POST, ["v1", "invoices", id, "refund"]) => self.refund(req, id).await,
            (&Method::GET, ["v1", "quota"]) => self.quota(req).await,
            (&Method::POST, ["v1", "documents"]) => self.create_document(req).await,
            (&Method::GET, ["v1", "documents", id]) => self.get_document(req, id).await,
            (&Method::GET, ["v1", "verify", serial]) => self.verify_serial(req, serial).await,
            (&Method::POST, ["v1", "verify"]) => self.verify_file(req).await,
            // Also what API Gateway's catch-all route (`ANY /v1/{proxy+}`, `ANY /healthz`) brings:
            // methods no route takes, and paths no route has.
            (_, segments) => Err(super::openapi::unrouted(segments)),
        }
    }

    async fn checkout(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let account = caller(req)?;
        let key = match req.header("idempotency-key") {
            None => return Err(ApiError::IdempotencyKeyRequired),
            Some(k) => IdempotencyKey::parse(k).map_err(|e| ApiError::IdempotencyKeyInvalid(e.to_string()))?,
        };
        let body = json_body(req)?;
        let quantity = Quantity::from_json(body.get("quantity").unwrap_or(&serde_json::Value::Null))
            .map_err(|e| ApiError::QuantityOutOfRange(e.to_string()))?;
        let hash = request_hash(CHECKOUT_ROUTE, &body);

        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let claim = Claim {
            account: &account,
            key: &key,
            request_hash: &hash,
            now_ms,
            in_progress_until_ms: req.deadline_ms.filter(|d| *d > now_ms).unwrap_or(now_ms + DEFAULT_IN_PROGRESS_MS),
        };
        let id = InvoiceId::new(Ulid::generate(u64::try_from(now_ms).unwrap_or(0), &mut rand::thread_rng()));
        let mut invoice = Invoice::open(id, account.clone(), quantity, self.config.unit_price, now, self.config.invoice_expiry)
            .map_err(|e| ApiError::Internal(e.to_string()))?;

        let max_unpaid = self.config.limits.unpaid_checkouts;
        match self.ledger.open_invoice(&claim, &invoice, now + self.config.reconcile_after, max_unpaid).await? {
            Opened::Created => {}
            // A slot frees when an invoice is paid (any time) or expired by the sweep, which runs
            // every five minutes: ask again after one sweep.
            Opened::TooManyUnpaid => {
                return Err(ApiError::TooManyUnpaidCheckouts { limit: max_unpaid, retry_after_seconds: SWEEP_PERIOD_SECONDS });
            }
            // The first attempt opened an invoice and died before answering: finish that one
            // (one intent, one invoice), never open a second.
            Opened::TakenOver(first) => {
                invoice = match self.ledger.invoice(&first).await? {
                    Some(first) if first.account == account => first,
                    _ => return Err(ApiError::Internal("the idempotency claim names an invoice that does not exist".into())),
                };
                tracing::warn!(invoice_id = %invoice.id, "idempotency claim taken over from an abandoned attempt; finishing its invoice");
            }
            Opened::Refused(ClaimRefusal::Replay(stored)) => {
                return Ok(ApiResponse::json(stored.status, stored.body).with_header("idempotent-replayed", "true"));
            }
            Opened::Refused(ClaimRefusal::KeyReused) => return Err(ApiError::IdempotencyKeyReused),
            Opened::Refused(ClaimRefusal::InProgress) => return Err(ApiError::IdempotencyKeyInProgress),
        }

        // The invoice exists whatever the gateway does; without a link, `payment` is null and
        // `POST /v1/invoices/{id}/payment` asks again.
        let mut new_link = None;
        if invoice.payment.is_none() && invoice.status == InvoiceStatus::Pending {
            new_link = match self.gateway.create_payment(&invoice).await {
                Ok(link) => Some(link),
                Err(e) => {
                    tracing::warn!(invoice_id = %invoice.id, error = %e, "payment gateway failed; invoice left without payment link");
                    None
                }
            };
            invoice.payment = new_link.clone();
        }
        let response = StoredResponse { status: 201, body: views::to_json(&views::invoice(&invoice)) };
        match self.ledger.finish_checkout(&claim, &invoice.id, new_link.as_ref(), &response).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(invoice_id = %invoice.id, "idempotency claim expired before completion"),
            // The invoice exists and the client gets it; a retry will see the claim in progress
            // until it expires. Logged for the operator.
            Err(e) => tracing::error!(invoice_id = %invoice.id, error = ?e, "could not complete idempotency record"),
        }
        Ok(ApiResponse::json(response.status, response.body))
    }

    async fn get_invoice(&self, req: &ApiRequest, id: &str) -> Result<ApiResponse, ApiError> {
        let invoice = self.owned_invoice(req, id).await?;
        Ok(ApiResponse::json(200, views::to_json(&views::invoice(&invoice))))
    }

    async fn list_invoices(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let account = caller(req)?;
        let limit = match req.query.get("limit") {
            None => DEFAULT_PAGE_SIZE,
            Some(l) => l
                .parse::<i32>()
                .ok()
                .filter(|l| (1..=crate::ledger::invoices::MAX_PAGE_SIZE).contains(l))
                .ok_or_else(|| ApiError::BadRequest("limit must be a whole number from 1 to 100".into()))?,
        };
        let cursor = req.query.get("cursor").map(String::as_str).filter(|c| !c.is_empty());
        let (invoices, next) = self
            .ledger
            .invoices_of(&account, cursor, limit)
            .await?
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let page = views::InvoicePage { invoices: invoices.iter().map(views::invoice).collect(), next_cursor: next };
        Ok(ApiResponse::json(200, views::to_json(&page)))
    }

    async fn retry_payment(&self, req: &ApiRequest, id: &str) -> Result<ApiResponse, ApiError> {
        let mut invoice = self.owned_invoice(req, id).await?;
        if invoice.status != InvoiceStatus::Pending {
            return Err(ApiError::InvoiceNotPending { status: invoice.status.as_str() });
        }
        if invoice.payment.is_none() {
            let link = self
                .gateway
                .create_payment(&invoice)
                .await
                .map_err(|e| {
                    tracing::warn!(invoice_id = %invoice.id, error = %e, "payment gateway failed again");
                    ApiError::GatewayUnavailable
                })?;
            if !self.ledger.attach_payment(&invoice.id, &link).await? {
                let now = self.ledger.invoice(&invoice.id).await?.map(|i| i.status).unwrap_or(invoice.status);
                return Err(ApiError::InvoiceNotPending { status: now.as_str() });
            }
            invoice.payment = Some(link);
        }
        Ok(ApiResponse::json(200, views::to_json(&views::invoice(&invoice))))
    }

    async fn quota(&self, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let account = caller(req)?;
        // Usable units only: those of PAID invoices still valid (units whose validity ended wait
        // for the sweep's refund and cannot be used).
        let balance = self.ledger.usable_balance(&account, self.clock.now()).await?;
        let quota = views::QuotaView {
            available: u64::try_from(balance.available).unwrap_or(0),
            pending: u64::try_from(balance.pending).unwrap_or(0),
        };
        Ok(ApiResponse::json(200, views::to_json(&quota)))
    }

    /// The caller's invoice; another account's invoice is reported as absent, never as forbidden.
    pub(crate) async fn owned_invoice(&self, req: &ApiRequest, id: &str) -> Result<Invoice, ApiError> {
        let account = caller(req)?;
        let id = InvoiceId::parse(id).map_err(|_| ApiError::NotFound("no such invoice"))?;
        match self.ledger.invoice(&id).await? {
            Some(invoice) if invoice.account == account => Ok(invoice),
            _ => Err(ApiError::NotFound("no such invoice")),
        }
    }
}

pub(crate) fn caller(req: &ApiRequest) -> Result<AccountId, ApiError> {
    req.caller.as_deref().and_then(|sub| AccountId::parse(sub).ok()).ok_or(ApiError::Unauthorized)
}
