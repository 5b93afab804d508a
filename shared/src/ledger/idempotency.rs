//! Idempotency records (AWS Powertools' design) as table items.
//!
//! A claim is a conditional put that succeeds when no record exists, the record's TTL has passed
//! (DynamoDB deletes lazily), or an INPROGRESS record was abandoned past its in-progress expiry
//! (the Lambda that wrote it died). A failed claim returns the live record (ALL_OLD), which says
//! whether to replay, refuse as reused, or refuse as in progress.

use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

use super::item::{Item, Reader, n, s};
use super::keys::{self, IDEMPOTENCY_SK, PK, SK};
use super::{Cancellation, Ledger, LedgerError, TransactError, conflict_retries};
use crate::domain::idempotency::{ClaimRefusal, ExistingRecord, IdempotencyKey, StoredResponse, refusal};
use crate::domain::ids::AccountId;

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";
/// How long a completed response is replayed.
pub const RECORD_TTL_SECONDS: i64 = 24 * 3600;

/// A claim on an idempotency key, valid until the handler's deadline.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub account: &'a AccountId,
    pub key: &'a IdempotencyKey,
    pub request_hash: &'a str,
    pub now_ms: i64,
    /// When an INPROGRESS record may be taken over: the Lambda's deadline.
    pub in_progress_until_ms: i64,
}

impl Ledger {
    pub(crate) fn claim_action(&self, claim: &Claim<'_>, reference: &str) -> Result<TransactWriteItem, LedgerError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item(PK, s(keys::idempotency_pk(claim.account, claim.key)))
            .item(SK, s(IDEMPOTENCY_SK))
            .item("status", s(IN_PROGRESS))
            .item("request_hash", s(claim.request_hash))
            .item("in_progress_expiry", n(claim.in_progress_until_ms))
            .item("ttl", n(claim.now_ms / 1000 + RECORD_TTL_SECONDS))
            .item("reference", s(reference))
            // An abandoned INPROGRESS record is not claimed afresh here: it is taken over (see
            // `claim_with`), so the retry finishes what the first attempt started.
            .condition_expression("attribute_not_exists(#pk) OR #ttl < :now_s")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now_s", n(claim.now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Marks the claim COMPLETED with the response to replay, if it is still ours.
    pub(crate) fn complete_action(
        &self,
        claim: &Claim<'_>,
        response: &StoredResponse,
    ) -> Result<TransactWriteItem, LedgerError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::idempotency_pk(claim.account, claim.key)))
            .key(SK, s(IDEMPOTENCY_SK))
            .update_expression("SET #status = :completed, response_status = :rs, response_body = :rb REMOVE in_progress_expiry")
            .condition_expression("#status = :in_progress AND request_hash = :hash")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(COMPLETED))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":hash", s(claim.request_hash))
            .expression_attribute_values(":rs", n(response.status))
            .expression_attribute_values(":rb", s(&response.body))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The live record under a key, if any (consistent read), judged at `now_ms`.
    pub async fn live_idempotency_record(&self, claim: &Claim<'_>) -> Result<Option<ExistingRecord>, LedgerError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(keys::idempotency_pk(claim.account, claim.key)))
            .key(SK, s(IDEMPOTENCY_SK))
            .consistent_read(true)
            .send()
            .await?;
        match out.item {
            Some(item) if is_live(&item, claim.now_ms)? => parse_record(&item).map(Some),
            _ => Ok(None),
        }
    }
}

fn is_live(item: &Item, now_ms: i64) -> Result<bool, LedgerError> {
    let r = Reader::new(item, "idempotency record");
    let ttl = i64::try_from(r.u64("ttl")?).unwrap_or(i64::MAX);
    if ttl < now_ms / 1000 {
        return Ok(false);
    }
    if r.str("status")? == IN_PROGRESS {
        let until = i64::try_from(r.u64("in_progress_expiry")?).unwrap_or(i64::MAX);
        return Ok(until >= now_ms);
    }
    Ok(true)
}

/// An INPROGRESS record whose holder is past its deadline.
struct Abandoned {
    in_progress_expiry: i64,
    reference: String,
}

/// `old` (the record that refused a claim), when it is an INPROGRESS record of the same request
/// whose holder is past its deadline and whose TTL has not passed.
fn abandoned_by_same_request(old: &Item, claim: &Claim<'_>) -> Result<Option<Abandoned>, LedgerError> {
    let r = Reader::new(old, "idempotency record");
    if r.str("status")? != IN_PROGRESS || r.str("request_hash")? != claim.request_hash {
        return Ok(None);
    }
    let in_progress_expiry = i64::try_from(r.u64("in_progress_expiry")?).unwrap_or(i64::MAX);
    if in_progress_expiry >= claim.now_ms {
        return Ok(None);
    }
    Ok(Some(Abandoned { in_progress_expiry, reference: r.str("reference")?.to_owned() }))
}

/// Reads a record returned by ALL_OLD or a get.
fn parse_record(item: &Item) -> Result<ExistingRecord, LedgerError> {
    let r = Reader::new(item, "idempotency record");
    let request_hash = r.str("request_hash")?.to_owned();
    match r.str("status")? {
        IN_PROGRESS => Ok(ExistingRecord::InProgress { request_hash }),
        COMPLETED => Ok(ExistingRecord::Completed {
            request_hash,
            response: StoredResponse {
                status: u16::try_from(r.u64("response_status")?)
                    .map_err(|_| LedgerError::Corrupt("idempotency response status".into()))?,
                body: r.str("response_body")?.to_owned(),
            },
        }),
        _ => Err(LedgerError::Corrupt("idempotency record status is unknown".into())),
    }
}

/// What claiming a key gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// The key is ours and the actions were written with the claim.
    Fresh,
    /// An earlier attempt with the same request claimed the key and was abandoned (its Lambda
    /// died past its deadline). The key is ours now, nothing else was written: finish the work
    /// the earlier attempt recorded under `reference` instead of starting new work.
    TakenOver { reference: String },
    /// Someone else holds the key: answer this instead.
    Refused(ClaimRefusal),
    /// The key was free but the condition of `actions[action]` failed: nothing was written.
    ActionDeclined { action: usize },
}

impl Ledger {
    /// Claims a key on its own (for routes whose work is not one transaction with the claim).
    pub async fn claim(&self, claim: &Claim<'_>, reference: &str) -> Result<Claimed, LedgerError> {
        self.claim_with(claim, reference, Vec::new()).await
    }

    /// Claims a key and writes `actions` in the same transaction: either the key is ours and
    /// every action happened, or it was taken over from an abandoned attempt of the same request
    /// (nothing else written), or nothing was written and the refusal says what to answer.
    pub(crate) async fn claim_with(
        &self,
        claim: &Claim<'_>,
        reference: &str,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Claimed, LedgerError> {
        let mut all = vec![self.claim_action(claim, reference)?];
        all.extend(actions);
        for attempt in 0..conflict_retries() {
            match self.transact(all.clone()).await {
                Ok(()) => return Ok(Claimed::Fresh),
                Err(TransactError::Cancelled(reasons)) => {
                    if let Some(Cancellation::ConditionFailed { old: Some(old) }) = reasons.first() {
                        if let Some(abandoned) = abandoned_by_same_request(old, claim)? {
                            if let Some(taken) = self.take_over(claim, &abandoned).await? {
                                return Ok(taken);
                            }
                            // Another retry took it over first: look again.
                            Self::conflict_pause(attempt).await;
                            continue;
                        }
                        return Ok(Claimed::Refused(refusal(&parse_record(old)?, claim.request_hash)));
                    }
                    // The claim itself was fine (a replay is never refused by another action's
                    // condition: its own condition fails first, above), so the work is declined.
                    if matches!(reasons.first(), Some(Cancellation::NotTheCause)) {
                        if let Some(i) = reasons.iter().skip(1).position(|r| matches!(r, Cancellation::ConditionFailed { .. })) {
                            return Ok(Claimed::ActionDeclined { action: i });
                        }
                    }
                    // A conflict (or a condition failure without the old item): look at what
                    // holds the key now; if nothing live does, try again.
                    if let Some(existing) = self.live_idempotency_record(claim).await? {
                        return Ok(Claimed::Refused(refusal(&existing, claim.request_hash)));
                    }
                    Self::conflict_pause(attempt).await;
                }
                Err(TransactError::Failed(e)) => return Err(e),
            }
        }
        Err(LedgerError::Contended)
    }

    /// Takes over an abandoned INPROGRESS record: moves its in-progress expiry to ours, on the
    /// condition that nobody did so since it was read. `None` when somebody did.
    async fn take_over(&self, claim: &Claim<'_>, abandoned: &Abandoned) -> Result<Option<Claimed>, LedgerError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(keys::idempotency_pk(claim.account, claim.key)))
            .key(SK, s(IDEMPOTENCY_SK))
            .update_expression("SET in_progress_expiry = :ours")
            .condition_expression("#status = :in_progress AND request_hash = :hash AND in_progress_expiry = :seen")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":hash", s(claim.request_hash))
            .expression_attribute_values(":seen", n(abandoned.in_progress_expiry))
            .expression_attribute_values(":ours", n(claim.in_progress_until_ms))
            .build()?;
        let taken = self.transact_until_decided(vec![TransactWriteItem::builder().update(update).build()]).await?.is_ok();
        Ok(taken.then(|| Claimed::TakenOver { reference: abandoned.reference.clone() }))
    }

    /// Stores the response a claim replays. False when the claim was no longer ours.
    pub async fn complete(&self, claim: &Claim<'_>, response: &StoredResponse) -> Result<bool, LedgerError> {
        Ok(self.transact_until_decided(vec![self.complete_action(claim, response)?]).await?.is_ok())
    }

    /// Gives a claim up (the request failed before doing anything), so a retry may run.
    pub async fn release(&self, claim: &Claim<'_>) -> Result<(), LedgerError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(keys::idempotency_pk(claim.account, claim.key)))
            .key(SK, s(IDEMPOTENCY_SK))
            .condition_expression("#status = :in_progress AND request_hash = :hash")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":hash", s(claim.request_hash))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
