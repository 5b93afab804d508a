//! The ledger of money and quota: one DynamoDB table (single-table design).
//!
//! Every write that moves money or quota is conditional, and every change that touches two
//! items is one `TransactWriteItems`. A failed condition is read from the SDK's error variant
//! (`TransactionCanceledException` and its cancellation reasons, or
//! `ConditionalCheckFailedException`) and becomes a domain outcome; it is never matched on text.

pub mod balance;
pub mod documents;
pub mod idempotency;
pub mod invoices;
pub mod item;
pub mod keys;
pub mod refunds;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{CancellationReason, TransactWriteItem};

use item::Item;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("DynamoDB request failed")]
    Dynamo(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    #[error("too many concurrent changes to the same items; try again")]
    Contended,
}

impl<E, R> From<SdkError<E, R>> for LedgerError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn from(e: SdkError<E, R>) -> Self {
        Self::Dynamo(Box::new(e))
    }
}

impl From<aws_sdk_dynamodb::error::BuildError> for LedgerError {
    fn from(e: aws_sdk_dynamodb::error::BuildError) -> Self {
        Self::Dynamo(Box::new(e))
    }
}

/// Why one action of a cancelled transaction failed, as DynamoDB reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancellation {
    /// This action's condition was false; `old` is the item as it was (ALL_OLD) when requested.
    ConditionFailed { old: Option<Item> },
    /// Another transaction was changing the same item.
    Conflict,
    /// This action was fine; another one cancelled the transaction.
    NotTheCause,
    Other(String),
}

impl Cancellation {
    fn from_reason(r: &CancellationReason) -> Self {
        match r.code() {
            Some("ConditionalCheckFailed") => Self::ConditionFailed { old: r.item().cloned() },
            Some("TransactionConflict") => Self::Conflict,
            None | Some("None") => Self::NotTheCause,
            Some(other) => Self::Other(other.to_owned()),
        }
    }
}

#[derive(Debug)]
pub enum TransactError {
    /// One cancellation per action, in the order the actions were given.
    Cancelled(Vec<Cancellation>),
    Failed(LedgerError),
}

impl TransactError {
    /// Whether the transaction lost a race and may simply be tried again.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Cancelled(reasons) => {
                reasons.iter().any(|r| matches!(r, Cancellation::Conflict))
                    && !reasons.iter().any(|r| matches!(r, Cancellation::ConditionFailed { .. }))
            }
            Self::Failed(_) => false,
        }
    }
}

/// The ledger: the table and a client built once per container.
#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    table: String,
}

/// How often a transaction that lost a race to a concurrent one is retried before giving up.
const CONFLICT_RETRIES: u32 = 6;

impl Ledger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn from_sdk_config(aws: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(aws), table)
    }

    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TransactError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(ctx)) => match ctx.into_err() {
                TransactWriteItemsError::TransactionCanceledException(e) => Err(TransactError::Cancelled(
                    e.cancellation_reasons().iter().map(Cancellation::from_reason).collect(),
                )),
                other => Err(TransactError::Failed(LedgerError::Dynamo(Box::new(other)))),
            },
            Err(other) => Err(TransactError::Failed(other.into())),
        }
    }

    /// Runs a transaction, again while it only loses races to concurrent transactions, until it
    /// commits (`Ok(Ok(()))`) or a condition decides against it (`Ok(Err(reasons))`).
    pub(crate) async fn transact_until_decided(
        &self,
        actions: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<Cancellation>>, LedgerError> {
        for attempt in 0..CONFLICT_RETRIES {
            match self.transact(actions.clone()).await {
                Ok(()) => return Ok(Ok(())),
                Err(e) if e.is_conflict() => Self::conflict_pause(attempt).await,
                Err(TransactError::Cancelled(reasons)) => return Ok(Err(reasons)),
                Err(TransactError::Failed(e)) => return Err(e),
            }
        }
        Err(LedgerError::Contended)
    }

    /// Backoff between attempts after a transaction conflict: short, jittered, growing.
    pub(crate) async fn conflict_pause(attempt: u32) {
        // Every retry after a lost race passes here: the contention operators watch.
        crate::telemetry::record::ledger_contention_retry();
        use rand::Rng;
        let base = 10u64 << attempt.min(5);
        let jitter = rand::thread_rng().gen_range(0..=base);
        tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
    }
}

pub(crate) fn conflict_retries() -> u32 {
    CONFLICT_RETRIES
}

#[cfg(test)]
mod tests {
    use super::Ledger;
    use crate::telemetry;

    /// The only test of this binary that installs the process-wide collector and pauses after
    /// a conflict, so the flush below holds exactly its counts.
    #[tokio::test]
    async fn every_pause_after_a_lost_race_counts_one_contention_retry() {
        telemetry::install("eMeterai/unit-test").expect("collector");
        telemetry::flush_to(std::io::sink()).expect("discard");
        for attempt in 0..3 {
            Ledger::conflict_pause(attempt).await;
        }
        let mut out = Vec::new();
        telemetry::flush_to(&mut out).expect("flush");
        let line: serde_json::Value = serde_json::from_slice(&out).expect("one EMF document");
        assert_eq!(line[telemetry::names::LEDGER_CONTENTION_RETRIES], 3, "{line}");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Count", "{line}");
    }
}
