//! `emeterai audit`: reads the whole table with a parallel `Scan` and checks every invariant of
//! the ledger (DESIGN.md, "Money and quota"), and, given the documents bucket, that each stamped
//! object's SHA-256 is the one the registry holds.
//!
//! Memory stays bounded by the number of accounts, invoices, documents and serials, not by the
//! size of the table: each segment turns an item into a small fact (a few numbers and ids) and
//! hands it to one aggregator, which keeps per-key tallies only. Items are never kept whole.
//!
//! The operator's tool, not a hot path: this is the one place that scans the table.

mod gateway;
mod tally;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use gateway::{GatewayCheck, GatewayReport};
pub use tally::{Rule, Violation};
use tally::{Fact, Tally};

/// The attributes the checks read; everything else stays in DynamoDB.
const PROJECTED: &[&str] = &[
    "pk", "sk", "kind", "units", "invoice_id", "document_id", "available", "pending", "credited", "consumed",
    "refunded", "account", "status", "quantity", "used", "remaining", "serial", "sha256", "document_sha256", "amount",
    "refund", "unpaid_invoices",
];

/// How many stamped objects are read at the same time.
const OBJECT_CONCURRENCY: usize = 8;

/// Stamped objects are at most 800,000 bytes (DESIGN.md); a larger one is reported, not read whole.
const MAX_STAMPED_OBJECT: u64 = 800_000;

/// What the audit has done so far, for a progress line while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub items: AtomicU64,
    pub pages: AtomicU64,
    pub segments_done: AtomicU64,
    pub objects_checked: AtomicU64,
    /// Orders asked about at the payment gateway.
    pub orders_checked: AtomicU64,
}

impl Progress {
    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }
    pub fn objects_checked(&self) -> u64 {
        self.objects_checked.load(Ordering::Relaxed)
    }
    pub fn orders_checked(&self) -> u64 {
        self.orders_checked.load(Ordering::Relaxed)
    }
}

/// The audit's result: counts of what was read, and every invariant found broken.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub table: String,
    pub bucket: Option<String>,
    pub segments: u32,
    pub items_scanned: u64,
    pub accounts: u64,
    pub invoices: u64,
    pub ledger_entries: u64,
    pub documents: u64,
    pub stamped_documents: u64,
    pub serials: u64,
    pub objects_checked: u64,
    /// The cross-check with the payment gateway, when one was given.
    pub gateway: Option<GatewayReport>,
    pub violations: Vec<Violation>,
}

impl AuditReport {
    pub fn holds(&self) -> bool {
        self.violations.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("scanning table {table} failed: {reason}")]
    Scan { table: String, reason: String },
    #[error("reading {key} from bucket {bucket} failed: {reason}")]
    Object { bucket: String, key: String, reason: String },
    #[error("asking the payment gateway about {order} failed: {reason}")]
    Gateway { order: String, reason: String },
    #[error("an audit task failed: {0}")]
    Task(String),
}

/// The audit of one table (and optionally the documents bucket).
#[derive(Debug, Clone)]
pub struct Audit {
    dynamodb: Client,
    table: String,
    bucket: Option<(aws_sdk_s3::Client, String)>,
    gateway: Option<GatewayCheck>,
    segments: u32,
}

impl Audit {
    pub fn new(dynamodb: Client, table: impl Into<String>) -> Self {
        Self { dynamodb, table: table.into(), bucket: None, gateway: None, segments: 4 }
    }

    /// The audit of `table` with this environment's DynamoDB endpoint and credentials.
    pub fn from_sdk_config(aws: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(aws), table)
    }

    /// Also checks the stamped objects of `store`'s bucket.
    pub fn with_store(self, store: &crate::storage::DocumentStore) -> Self {
        self.with_bucket(store.client.clone(), store.bucket())
    }

    /// Also checks each STAMPED document's stamped object against the registry's SHA-256.
    pub fn with_bucket(mut self, s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        self.bucket = Some((s3, bucket.into()));
        self
    }

    /// Also checks every invoice against the payment gateway's record of its order.
    pub fn with_gateway(mut self, gateway: GatewayCheck) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// Parallel scan segments (at least 1).
    pub fn with_segments(mut self, segments: u32) -> Self {
        self.segments = segments.max(1);
        self
    }

    pub async fn run(&self, progress: Arc<Progress>) -> Result<AuditReport, AuditError> {
        let (tx, mut rx) = mpsc::channel::<Vec<Fact>>(2 * self.segments as usize);
        let mut scans = tokio::task::JoinSet::new();
        for segment in 0..self.segments {
            let (client, table, tx, progress) = (self.dynamodb.clone(), self.table.clone(), tx.clone(), progress.clone());
            let total = self.segments;
            scans.spawn(async move { scan_segment(client, table, segment, total, tx, progress).await });
        }
        drop(tx);
        let mut tally = Tally::default();
        while let Some(facts) = rx.recv().await {
            for fact in facts {
                tally.add(fact);
            }
        }
        while let Some(done) = scans.join_next().await {
            done.map_err(|e| AuditError::Task(e.to_string()))??;
        }
        let mut violations = tally.check();
        let mut objects_checked = 0;
        if let Some((s3, bucket)) = &self.bucket {
            let (checked, found) = check_objects(s3, bucket, tally.stamped_objects(), &progress).await?;
            objects_checked = checked;
            violations.extend(found);
        }
        let mut gateway = None;
        if let Some(check) = &self.gateway {
            let (report, found) = check.run(tally.ledger_invoices(), &progress).await?;
            gateway = Some(report);
            violations.extend(found);
        }
        violations.sort();
        violations.dedup();
        let counts = tally.counts();
        Ok(AuditReport {
            table: self.table.clone(),
            bucket: self.bucket.as_ref().map(|(_, b)| b.clone()),
            segments: self.segments,
            items_scanned: progress.items(),
            accounts: counts.accounts,
            invoices: counts.invoices,
            ledger_entries: counts.ledger_entries,
            documents: counts.documents,
            stamped_documents: counts.stamped_documents,
            serials: counts.serials,
            objects_checked,
            gateway,
            violations,
        })
    }
}

async fn scan_segment(
    client: Client,
    table: String,
    segment: u32,
    total: u32,
    tx: mpsc::Sender<Vec<Fact>>,
    progress: Arc<Progress>,
) -> Result<(), AuditError> {
    let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    let mut request = client
        .scan()
        .table_name(&table)
        .segment(to_i32(segment))
        .total_segments(to_i32(total))
        .consistent_read(true);
    let mut names = Vec::with_capacity(PROJECTED.len());
    for (i, attr) in PROJECTED.iter().enumerate() {
        names.push(format!("#a{i}"));
        request = request.expression_attribute_names(format!("#a{i}"), *attr);
    }
    request = request.projection_expression(names.join(", "));
    let mut pages = request.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AuditError::Scan { table: table.clone(), reason: DisplayErrorContext(e).to_string() })?;
        let items = page.items();
        let facts: Vec<Fact> = items.iter().map(Fact::of).collect();
        progress.items.fetch_add(items.len() as u64, Ordering::Relaxed);
        progress.pages.fetch_add(1, Ordering::Relaxed);
        if tx.send(facts).await.is_err() {
            // The aggregator is gone: the audit is being abandoned.
            return Ok(());
        }
    }
    progress.segments_done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A stamped document whose object is to be hashed: its key and the registry's SHA-256.
#[derive(Debug, Clone)]
pub(crate) struct StampedObject {
    pub document_id: String,
    pub key: String,
    pub expected_sha256: String,
}

async fn check_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    objects: Vec<StampedObject>,
    progress: &Arc<Progress>,
) -> Result<(u64, Vec<Violation>), AuditError> {
    let mut violations = Vec::new();
    let mut checked = 0;
    let mut running = tokio::task::JoinSet::new();
    let mut queue = objects.into_iter();
    loop {
        while running.len() < OBJECT_CONCURRENCY {
            let Some(object) = queue.next() else { break };
            let (s3, bucket) = (s3.clone(), bucket.to_owned());
            running.spawn(async move { check_object(&s3, &bucket, object).await });
        }
        let Some(done) = running.join_next().await else { break };
        if let Some(v) = done.map_err(|e| AuditError::Task(e.to_string()))?? {
            violations.push(v);
        }
        checked += 1;
        progress.objects_checked.fetch_add(1, Ordering::Relaxed);
    }
    Ok((checked, violations))
}

/// Streams the object through SHA-256 (never more than one chunk in memory).
async fn check_object(s3: &aws_sdk_s3::Client, bucket: &str, object: StampedObject) -> Result<Option<Violation>, AuditError> {
    let failed = |reason: String| AuditError::Object { bucket: bucket.to_owned(), key: object.key.clone(), reason };
    let subject = format!("document {}", object.document_id);
    let out = match s3.get_object().bucket(bucket).key(&object.key).send().await {
        Ok(out) => out,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Ok(Some(Violation::new(Rule::Object, subject, format!("stamped object {} is missing", object.key))));
        }
        Err(e) => return Err(failed(DisplayErrorContext(e).to_string())),
    };
    if out.content_length().is_some_and(|n| u64::try_from(n).map_or(true, |n| n > MAX_STAMPED_OBJECT)) {
        return Ok(Some(Violation::new(
            Rule::Object,
            subject,
            format!("stamped object {} is larger than {MAX_STAMPED_OBJECT} bytes", object.key),
        )));
    }
    let mut body = out.body;
    let mut hasher = Sha256::new();
    let mut read: u64 = 0;
    while let Some(chunk) = body.try_next().await.map_err(|e| failed(e.to_string()))? {
        read += chunk.len() as u64;
        if read > MAX_STAMPED_OBJECT {
            return Ok(Some(Violation::new(
                Rule::Object,
                subject,
                format!("stamped object {} is larger than {MAX_STAMPED_OBJECT} bytes", object.key),
            )));
        }
        hasher.update(&chunk);
    }
    let actual = hex::encode(hasher.finalize());
    Ok((!actual.eq_ignore_ascii_case(&object.expected_sha256)).then(|| {
        Violation::new(
            Rule::Object,
            subject,
            format!("stamped object {} has SHA-256 {actual}, the registry says {}", object.key, object.expected_sha256),
        )
    }))
}
