//! The stamp function: an upload under `incoming/` becomes a stamped PDF under `stamped/`, paid
//! for with exactly one unit, or a REJECTED document that costs nothing.
//!
//! Order of steps, and why it is crash-safe at every point:
//! 0. read the upload, pinned to the ETag the S3 event names (`If-Match`): the bytes stamped are
//!    the ones the event announced, or nothing is done;
//! 1. reserve serial and signing time on the document (so every retry produces identical bytes),
//!    with that ETag: a later run for another version of the object stops before signing;
//! 2. stamp (CPU, on the blocking pool);
//! 3. write `stamped/...` once (conditional put; a retry finds its own identical bytes there, a
//!    run with other bytes cannot overwrite them; not downloadable until step 4);
//! 4. one transaction: consume a unit, mark STAMPED, register the serial.
//!
//! A crash before 4 leaves nothing consumed and nothing downloadable; redelivery redoes 1-4 with
//! the same reservation. A crash after 4 is seen on redelivery as "already STAMPED".

use std::sync::Arc;

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use lambda_runtime::LambdaEvent;

use crate::domain::document::{Document, DocumentRejection, DocumentStatus, StampRecord, StampReservation, keys};
use crate::domain::serial::Serial;
use crate::domain::time::{Clock, Timestamp};
use crate::ledger::documents::{Consumed, Reserved, UsableInvoice};
use crate::ledger::{Ledger, LedgerError};
use crate::stamping::{self, Issuer, MAX_PDF_BYTES, StampRequest};
use crate::storage::{DocumentStore, StorageError};

/// Points between the steps where a test can make the function "crash".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Reserved,
    Stamped,
    Uploaded,
    Consumed,
}

/// Called after each step; production uses [`NoFaults`]. Tests inject crashes here.
pub trait StepHook: Send + Sync {
    fn after(&self, step: Step) -> Result<(), InjectedFault>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fault injected after step {0:?}")]
pub struct InjectedFault(pub Step);

pub struct NoFaults;

impl StepHook for NoFaults {
    fn after(&self, _: Step) -> Result<(), InjectedFault> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StampError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Injected(#[from] InjectedFault),
    #[error("stamping task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("the issuer's key could not sign")]
    Signer,
    #[error("the timestamp authority gave no token")]
    Timestamp,
}

impl From<StampError> for lambda_runtime::Diagnostic {
    fn from(e: StampError) -> Self {
        let error_type = match &e {
            StampError::Ledger(_) => "LedgerError",
            StampError::Storage(_) => "StorageError",
            StampError::Injected(_) => "InjectedFault",
            StampError::Task(_) => "TaskError",
            StampError::Signer => "SignerError",
            StampError::Timestamp => "TimestampError",
        };
        tracing::error!(error = ?e, "stamp run failed; the event will be redelivered");
        Self { error_type: error_type.into(), error_message: e.to_string() }
    }
}

/// What happened to one uploaded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stamped { serial: Serial },
    Rejected { code: String },
    /// A duplicate delivery: the document was already STAMPED or REJECTED.
    AlreadyFinal,
    /// Not an upload this system asked for (unknown key or document); nothing to do.
    Ignored,
    /// The event names an object version (ETag) that is not the one stored, or not the one the
    /// document's reservation was made for: nothing stamped, nothing charged, the document as it
    /// was (a run for the right version, or the sweep, ends it).
    NotThatVersion,
}

pub struct StampService {
    pub ledger: Ledger,
    pub store: DocumentStore,
    pub issuer: Arc<Issuer>,
    /// Base of the URL in the QR code: `{verify_base_url}/v1/verify/{serial}`.
    pub verify_base_url: String,
    pub hook: Arc<dyn StepHook>,
    /// "Now" of every run: the signing time of new reservations and the moment quota validity is
    /// judged. Production uses [`crate::domain::time::SystemClock`].
    pub clock: Arc<dyn Clock>,
}

impl StampService {
    /// Lambda entry point. A transient failure is returned as an error so that Lambda redelivers
    /// the event; records already done are recognised on redelivery.
    pub async fn handle(&self, event: LambdaEvent<S3Event>) -> Result<(), StampError> {
        for record in &event.payload.records {
            let outcome = self.process_record(record).await?;
            tracing::info!(?outcome, "upload processed");
        }
        Ok(())
    }

    pub async fn process_record(&self, record: &S3EventRecord) -> Result<Outcome, StampError> {
        let Some(raw_key) = record.s3.object.key.as_deref() else { return Ok(Outcome::Ignored) };
        let key = url_decode_key(raw_key);
        let size = record.s3.object.size.and_then(|s| u64::try_from(s).ok());
        // S3 names the ETag of the object version that was created; an event without one is not
        // S3's, and stamping "whatever is there now" is what the pinning exists to prevent.
        let Some(etag) = record.s3.object.e_tag.as_deref().map(|e| e.trim_matches('"')).filter(|e| !e.is_empty()) else {
            tracing::warn!(key, "S3 event without the object's ETag; ignored");
            return Ok(Outcome::Ignored);
        };
        let upload = Upload { key: &key, size, etag };
        let outcome = match record.s3.bucket.name.as_deref() {
            Some(bucket) if bucket != self.store.bucket() => self.process_in(&self.store.for_bucket(bucket), &upload).await?,
            _ => self.process_in(&self.store, &upload).await?,
        };
        match &outcome {
            Outcome::Stamped { .. } => crate::telemetry::record::stamp_issued(),
            Outcome::Rejected { code } => crate::telemetry::record::rejection(code),
            Outcome::AlreadyFinal | Outcome::Ignored | Outcome::NotThatVersion => {}
        }
        Ok(outcome)
    }

    /// Processes the upload an event announced.
    async fn process_in(&self, store: &DocumentStore, upload: &Upload<'_>) -> Result<Outcome, StampError> {
        let Upload { key, size, etag } = *upload;
        let Some((account, document_id)) = keys::parse_incoming(key) else {
            tracing::warn!(key, "object is not an upload of this system");
            return Ok(Outcome::Ignored);
        };
        let Some(doc) = self.ledger.document(&document_id).await? else {
            tracing::warn!(%document_id, "upload for an unknown document");
            return Ok(Outcome::Ignored);
        };
        if doc.account != account {
            tracing::warn!(%document_id, "upload under another account's prefix");
            return Ok(Outcome::Ignored);
        }
        if doc.status.is_final() {
            return Ok(Outcome::AlreadyFinal);
        }
        // Cheap refusals first: no download, no signing, no serial.
        if size.is_some_and(|s| s > MAX_PDF_BYTES as u64) {
            return self.reject(&doc, stamping::Rejection::TooLarge.into()).await;
        }
        // Usable quota, from the index (one query, whose answer the consumption reuses); "none"
        // is only believed from consistent reads, never from an index that may lag.
        let now = self.clock.now();
        let candidates = self.ledger.usable_invoices(&account, now).await?;
        if candidates.is_empty() && self.ledger.usable_balance(&account, now).await?.available < 1 {
            return self.reject(&doc, DocumentRejection::no_quota()).await;
        }

        // Read before reserving: an event naming another version than the one stored reserves
        // nothing, so the event for the stored version can still stamp it.
        let pdf = match store.read_version_limited(key, Some(etag), MAX_PDF_BYTES).await {
            Ok(pdf) => pdf,
            Err(StorageError::TooLarge { .. }) => return self.reject(&doc, stamping::Rejection::TooLarge.into()).await,
            Err(StorageError::Missing) => {
                tracing::warn!(%document_id, "uploaded object is gone; nothing to stamp");
                return Ok(Outcome::Ignored);
            }
            Err(StorageError::NotThatVersion) => {
                tracing::warn!(%document_id, etag, "the event names an object version that is not the one stored; nothing stamped");
                return Ok(Outcome::NotThatVersion);
            }
            Err(e) => return Err(e.into()),
        };

        let reservation = match self.ledger.reserve_stamp(&doc, || new_reservation(now, etag)).await? {
            Reserved::Final(_) => return Ok(Outcome::AlreadyFinal),
            Reserved::Ready(r) => r,
        };
        if reservation.source_etag.as_deref().is_some_and(|pinned| pinned != etag) {
            // The reservation (an earlier run's) was made for another version: its serial and
            // signing time belong to those bytes, never to these.
            tracing::warn!(%document_id, etag, pinned = ?reservation.source_etag, "upload changed since the reservation; nothing stamped");
            return Ok(Outcome::NotThatVersion);
        }
        let doc = Document { reservation: Some(reservation.clone()), ..doc };
        self.hook.after(Step::Reserved)?;

        let stamped = match self.stamp_blocking(pdf, &doc, &reservation).await? {
            Ok(stamped) => stamped,
            // The key service's failure, not the document's: redelivery retries the run.
            Err(stamping::Rejection::SignerUnavailable) => return Err(StampError::Signer),
            Err(stamping::Rejection::TimestampUnavailable) => return Err(StampError::Timestamp),
            Err(rejection) => return self.reject(&doc, rejection.into()).await,
        };
        self.hook.after(Step::Stamped)?;

        let output_key = keys::stamped(&account, &doc.id);
        let sha256 = stamped.sha256_hex();
        match store.write_pdf_once(&output_key, stamped.pdf).await {
            Ok(()) => {}
            // Other bytes are already there: never overwritten, never paid for by this run. The
            // document stays PROCESSING (the run that wrote them consumes, or the sweep releases).
            Err(StorageError::Conflict) => {
                tracing::error!(%document_id, "stamped output already holds other bytes; this run stops");
                return Ok(Outcome::Ignored);
            }
            Err(e) => return Err(e.into()),
        }
        self.hook.after(Step::Uploaded)?;

        let outcome = self.consume(&doc, &reservation, sha256, candidates).await?;
        let unpaid = match &outcome {
            Outcome::Rejected { .. } => true,
            // Ended while this run worked: by a duplicate delivery that stamped the same bytes
            // (keep them), or by the sweep releasing the document as stale (nobody paid).
            Outcome::AlreadyFinal => {
                self.ledger.document(&doc.id).await?.is_some_and(|d| d.status == DocumentStatus::Rejected)
            }
            _ => false,
        };
        if unpaid {
            // Paid for by nobody: it must not linger (it is not downloadable through the API).
            if let Err(e) = store.delete(&output_key).await {
                tracing::warn!(%document_id, error = %e, "could not delete unpaid stamped output");
            }
        }
        self.hook.after(Step::Consumed)?;
        Ok(outcome)
    }

    async fn stamp_blocking(
        &self,
        pdf: Vec<u8>,
        doc: &Document,
        reservation: &StampReservation,
    ) -> Result<Result<stamping::Stamped, stamping::Rejection>, StampError> {
        let issuer = Arc::clone(&self.issuer);
        let placement = doc.placement;
        let serial = reservation.serial.clone();
        let signed_at = reservation.signed_at;
        let verify_url = format!("{}/v1/verify/{serial}", self.verify_base_url.trim_end_matches('/'));
        Ok(tokio::task::spawn_blocking(move || {
            let placement = match placement {
                Some(p) => p,
                None => stamping::default_placement(&pdf, None).map_err(|_| stamping::Rejection::PlacementOutOfBounds)?,
            };
            let req = StampRequest { serial: &serial, placement: &placement, signed_at, verify_url: &verify_url };
            stamping::stamp(&pdf, &req, &issuer)
        })
        .await?)
    }

    /// Consumes one unit from the PAID invoice whose validity ends first; `first` are the
    /// candidates the precheck already read.
    async fn consume(
        &self,
        doc: &Document,
        reservation: &StampReservation,
        sha256: String,
        first: Vec<UsableInvoice>,
    ) -> Result<Outcome, StampError> {
        const ROUNDS: u32 = 5;
        let mut next = Some(first);
        for round in 0..ROUNDS {
            let candidates = match next.take() {
                Some(candidates) => candidates,
                None => self.ledger.usable_invoices(&doc.account, reservation.signed_at).await?,
            };
            if candidates.is_empty() {
                if self.ledger.usable_balance(&doc.account, reservation.signed_at).await?.available < 1 {
                    return self.reject(doc, DocumentRejection::no_quota()).await;
                }
                // The balance, read consistently, holds usable units the index does not show
                // yet (it lags a fresh credit): wait a little and look again. If it still does
                // not, the run fails and the event is redelivered; no "no_quota" on a lag.
                tracing::warn!(document_id = %doc.id, round, "usable quota not in the index yet; waiting for it");
                tokio::time::sleep(std::time::Duration::from_millis(100 << round)).await;
                continue;
            }
            for mut candidate in candidates {
                let record = StampRecord {
                    serial: reservation.serial.clone(),
                    sha256: sha256.clone(),
                    stamped_at: reservation.signed_at,
                    invoice_id: candidate.invoice_id,
                };
                loop {
                    match self.ledger.consume_for_stamp(doc, &candidate, &record).await? {
                        Consumed::Stamped => return Ok(Outcome::Stamped { serial: reservation.serial.clone() }),
                        Consumed::DocumentFinal => return Ok(Outcome::AlreadyFinal),
                        Consumed::NoQuota => return self.reject(doc, DocumentRejection::no_quota()).await,
                        // The index was stale: read the invoice itself and try it again if it
                        // still has units, else move on to the next one.
                        Consumed::InvoiceChanged => match self.ledger.invoice(&candidate.invoice_id).await? {
                            Some(fresh) if fresh.remaining > 0 && fresh.remaining != candidate.remaining => {
                                candidate = UsableInvoice { invoice_id: fresh.id, remaining: fresh.remaining };
                            }
                            _ => break,
                        },
                    }
                }
            }
        }
        Err(LedgerError::Contended.into())
    }

    async fn reject(&self, doc: &Document, rejection: DocumentRejection) -> Result<Outcome, StampError> {
        if self.ledger.reject_document(doc, &rejection).await? {
            tracing::info!(document_id = %doc.id, code = rejection.code, "document rejected");
            Ok(Outcome::Rejected { code: rejection.code })
        } else {
            Ok(Outcome::AlreadyFinal)
        }
    }
}

/// An uploaded object as its S3 event names it.
#[derive(Debug, Clone, Copy)]
struct Upload<'a> {
    /// URL-decoded.
    key: &'a str,
    size: Option<u64>,
    /// Without quotes.
    etag: &'a str,
}

fn new_reservation(now: Timestamp, source_etag: &str) -> StampReservation {
    // Whole seconds: the PDF's /M has no finer resolution, and the ledger keeps the same value.
    let signed_at = chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    StampReservation { serial: Serial::random(&mut rand::rngs::OsRng), signed_at, source_etag: Some(source_etag.to_owned()) }
}

/// S3 event keys are URL-encoded, with `+` for spaces. Malformed escapes are kept as written.
pub fn url_decode_key(key: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => Some(hi * 16 + lo),
            _ => None,
        };
        match (b, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (other, None) => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(url_decode_key("incoming/a%40b.com/doc_X.pdf"), "incoming/a@b.com/doc_X.pdf");
        assert_eq!(url_decode_key("a+b"), "a b");
        assert_eq!(url_decode_key("100%"), "100%");
        assert_eq!(url_decode_key("%zz%4"), "%zz%4");
        assert_eq!(url_decode_key("%E2%9C%93"), "✓");
        assert_eq!(url_decode_key("%aé"), "%aé");
    }
}
