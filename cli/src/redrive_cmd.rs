//! `emeterai redrive --queue-url URL --function-name NAME [--max N] [--dry-run]`: hands the stamp
//! function's dead letters back to it (docs/deploy.md, "Redriving a stamp dead letter").
//!
//! Each message of the stamp function's on-failure destination (the template's
//! `StampDeadLetters`) is Lambda's destination record, whose `requestPayload` is the S3 event that
//! failed every retry. The command invokes the function synchronously with that event and deletes
//! the message only when the invocation succeeded; a message whose redrive failed, or that is not
//! such a record, stays on the queue and is reported. Redriving the same record twice is safe: the
//! stamp run is idempotent per document (a final document is left alone, a reserved serial is
//! reused, one unit at most is consumed).
//!
//! Credentials, region and endpoints from the usual `AWS_*` variables. Standard error: one line
//! per message. Standard output: the summary. Exit 0 when every message received was redriven and
//! deleted (or the queue was empty), 3 when any stays on the queue, 1 on any other failure.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;

use crate::{Failure, Outcome};

/// Lambda's largest function timeout (900 s) plus a cold start and the round trip: a synchronous
/// invocation that takes longer is not coming back.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(16 * 60);
/// How long a received message stays hidden from other receivers: longer than one invocation
/// can take, so it never comes back while it is being redriven. Messages kept are made visible
/// again when the run ends (the next run sees them at once).
const HOLD_SECONDS: i32 = 17 * 60;
/// Long polling for a second makes SQS ask all of its servers, so an almost empty queue is not
/// mistaken for an empty one (a short poll samples only some of them).
const RECEIVE_WAIT_SECONDS: i32 = 1;
/// Reasons quoted from a record or a function error are cut to this many characters.
const MAX_QUOTED_CHARS: usize = 300;

/// `emeterai redrive`
#[derive(clap::Args)]
pub struct RedriveArgs {
    /// The stamp function's dead-letter queue (the stack's output `StampDeadLettersUrl`).
    #[arg(long, value_name = "URL")]
    queue_url: String,
    /// The stamp function: name or ARN (the stack's output `StampFunctionName`).
    #[arg(long, value_name = "NAME")]
    function_name: String,
    /// At most this many messages taken from the queue in this run.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max: u32,
    /// Lists what would be redriven; invokes nothing and deletes nothing.
    #[arg(long)]
    dry_run: bool,
}

/// What a dead letter asks for: the event to hand back to the function.
#[derive(Debug, PartialEq)]
pub struct DeadLetter {
    /// The original S3 event, exactly as the function first received it.
    pub event: Value,
    /// `s3://bucket/key` of each record, for the report.
    pub objects: Vec<String>,
    /// What the last attempt failed with (the record's `responsePayload`), when it says.
    pub failure: Option<String>,
}

/// Reads a message body as a Lambda on-failure destination record of an S3-triggered function.
pub fn dead_letter(body: &str) -> Result<DeadLetter, String> {
    let record: Value = serde_json::from_str(body).map_err(|_| "the body is not JSON".to_owned())?;
    let event = record
        .get("requestPayload")
        .filter(|p| p.is_object())
        .ok_or("not a Lambda destination record (no requestPayload object)")?;
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or("requestPayload is not an S3 event (no Records)")?;
    let mut objects = Vec::with_capacity(records.len());
    for r in records {
        if r.get("eventSource").and_then(Value::as_str) != Some("aws:s3") {
            return Err("requestPayload is not an S3 event (a record's eventSource is not aws:s3)".into());
        }
        let bucket = r.pointer("/s3/bucket/name").and_then(Value::as_str);
        let key = r.pointer("/s3/object/key").and_then(Value::as_str);
        match (bucket, key) {
            (Some(bucket), Some(key)) if !bucket.is_empty() && !key.is_empty() => {
                objects.push(format!("s3://{bucket}/{key}"));
            }
            _ => return Err("requestPayload is not an S3 event (a record names no bucket or key)".into()),
        }
    }
    let failure = record.get("responsePayload").and_then(function_error_text);
    Ok(DeadLetter { event: event.clone(), objects, failure })
}

/// `errorType: errorMessage` of a Lambda error payload, cut short.
fn function_error_text(payload: &Value) -> Option<String> {
    let error_type = payload.get("errorType").and_then(Value::as_str);
    let message = payload.get("errorMessage").and_then(Value::as_str);
    let text = match (error_type, message) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (Some(t), None) => t.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => return None,
    };
    Some(quoted(&text))
}

/// One line, at most [`MAX_QUOTED_CHARS`] characters.
fn quoted(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// What became of the messages received in one run.
#[derive(Default)]
struct Tally {
    received: u32,
    redriven: u32,
    /// Messages left on the queue (not redriven, or not deleted).
    kept: u32,
    /// Receipt handles of the messages this run holds hidden and leaves on the queue: made
    /// visible again at the end.
    to_release: Vec<String>,
}

impl Tally {
    fn keep(&mut self, receipt: String) {
        self.kept += 1;
        self.to_release.push(receipt);
    }
}

pub fn run(args: RedriveArgs) -> Result<Outcome, Failure> {
    if args.queue_url.trim().is_empty() || args.function_name.trim().is_empty() {
        return Err(Failure("--queue-url and --function-name must not be empty".into()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let tally = runtime.block_on(redrive(&args))?;
    let kept = tally.kept;
    if args.dry_run {
        println!(
            "redrive (dry run): {} received, {} would be redriven, {} not redrivable; nothing invoked or deleted",
            tally.received, tally.redriven, kept
        );
        return Ok(if tally.redriven == tally.received { Outcome::Success } else { Outcome::Left });
    }
    println!("redrive: {} received, {} redriven and deleted, {kept} kept on the queue", tally.received, tally.redriven);
    Ok(if kept == 0 { Outcome::Success } else { Outcome::Left })
}

async fn redrive(args: &RedriveArgs) -> Result<Tally, Failure> {
    let aws = emeterai::config::aws_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let timeouts = aws_sdk_lambda::config::timeout::TimeoutConfig::builder().operation_timeout(INVOKE_TIMEOUT).build();
    let lambda = aws_sdk_lambda::Client::from_conf(aws_sdk_lambda::config::Builder::from(&aws).timeout_config(timeouts).build());
    let mut tally = Tally::default();
    let outcome = take_messages(args, &sqs, &lambda, &mut tally).await;
    // Kept messages were hidden for HOLD_SECONDS; show them again now, so the next run (after the
    // cause is fixed) sees them at once. Should this fail, they come back when the hold ends.
    for receipt in &tally.to_release {
        if let Err(e) = sqs.change_message_visibility().queue_url(&args.queue_url).receipt_handle(receipt).visibility_timeout(0).send().await {
            eprintln!("redrive: a message left on the queue stays hidden until its hold ends: {}", quoted(&DisplayErrorContext(&e).to_string()));
        }
    }
    outcome.map(|()| tally)
}

async fn take_messages(
    args: &RedriveArgs,
    sqs: &aws_sdk_sqs::Client,
    lambda: &aws_sdk_lambda::Client,
    tally: &mut Tally,
) -> Result<(), Failure> {
    // A run longer than the hold could receive a message it already handled: never twice.
    let mut seen = HashSet::new();
    while tally.received < args.max {
        // One message at a time: the hold then only has to outlast one invocation.
        let received = sqs
            .receive_message()
            .queue_url(&args.queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .visibility_timeout(HOLD_SECONDS)
            .send()
            .await
            .map_err(|e| Failure(format!("sqs:ReceiveMessage on {}: {}", args.queue_url, DisplayErrorContext(&e))))?;
        let Some(message) = received.messages.unwrap_or_default().into_iter().next() else {
            return Ok(());
        };
        let (Some(id), Some(receipt)) = (message.message_id, message.receipt_handle) else {
            return Err(Failure("sqs:ReceiveMessage answered a message without an id or receipt handle".into()));
        };
        if !seen.insert(id.clone()) {
            // Already handled (and counted) in this run: only give it back.
            tally.to_release.push(receipt);
            return Ok(());
        }
        tally.received += 1;
        let letter = match dead_letter(message.body.as_deref().unwrap_or_default()) {
            Ok(letter) => letter,
            Err(reason) => {
                eprintln!("redrive: {id}: kept: {reason}");
                tally.keep(receipt);
                continue;
            }
        };
        let objects = letter.objects.join(", ");
        if args.dry_run {
            let failed = letter.failure.as_deref().map_or_else(String::new, |f| format!(" (it failed with {f})"));
            eprintln!("redrive: {id}: would redrive {objects}{failed}");
            tally.redriven += 1;
            tally.to_release.push(receipt);
            continue;
        }
        match invoke(lambda, &args.function_name, &letter.event).await {
            Err(reason) => {
                eprintln!("redrive: {id}: kept: {objects}: {reason}");
                tally.keep(receipt);
            }
            Ok(()) => match sqs.delete_message().queue_url(&args.queue_url).receipt_handle(&receipt).send().await {
                Ok(_) => {
                    eprintln!("redrive: {id}: redriven and deleted: {objects}");
                    tally.redriven += 1;
                }
                Err(e) => {
                    // Redriving it again later is harmless (the stamp is idempotent per document).
                    eprintln!(
                        "redrive: {id}: redriven, but kept: sqs:DeleteMessage failed: {}",
                        quoted(&DisplayErrorContext(&e).to_string())
                    );
                    tally.keep(receipt);
                }
            },
        }
    }
    Ok(())
}

/// Invokes the function synchronously with the event; `Err` says why the run did not succeed.
async fn invoke(lambda: &aws_sdk_lambda::Client, function: &str, event: &Value) -> Result<(), String> {
    let payload = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    let output = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| format!("lambda:Invoke failed: {}", quoted(&DisplayErrorContext(&e).to_string())))?;
    if let Some(kind) = output.function_error() {
        let said = output
            .payload()
            .and_then(|p| serde_json::from_slice::<Value>(p.as_ref()).ok())
            .and_then(|p| function_error_text(&p))
            .unwrap_or_else(|| kind.to_owned());
        return Err(format!("the function failed again: {said}"));
    }
    if !(200..300).contains(&output.status_code()) {
        return Err(format!("lambda:Invoke answered status {}", output.status_code()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s3_event(bucket: &str, key: &str) -> Value {
        json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1234, "eTag": "abc"}}}]})
    }

    #[test]
    fn a_destination_record_yields_its_original_event() {
        let event = s3_event("docs", "incoming/alice/D1");
        let record = json!({
            "version": "1.0", "timestamp": "2026-12-03T10:00:00.000Z",
            "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:ap-southeast-3:1:function:stamp:$LATEST",
                "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "StorageError", "errorMessage": "S3 unavailable"},
        });
        let letter = dead_letter(&record.to_string()).expect("a dead letter");
        assert_eq!(letter.event, event);
        assert_eq!(letter.objects, ["s3://docs/incoming/alice/D1"]);
        assert_eq!(letter.failure.as_deref(), Some("StorageError: S3 unavailable"));
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let not_s3 = json!({"requestPayload": {"version": "0", "detail-type": "Scheduled Event"}});
        let other_source = json!({"requestPayload": {"Records": [{"eventSource": "aws:sqs"}]}});
        let no_key = json!({"requestPayload": {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}}}]}});
        let cases = [
            ("garbage".to_owned(), "not JSON"),
            ("[1, 2]".to_owned(), "no requestPayload"),
            (json!({"Records": []}).to_string(), "no requestPayload"),
            (not_s3.to_string(), "no Records"),
            (other_source.to_string(), "eventSource"),
            (no_key.to_string(), "no bucket or key"),
        ];
        for (body, reason) in cases {
            let refused = dead_letter(&body).expect_err(&body);
            assert!(refused.contains(reason), "{body}: {refused}");
        }
    }

    #[test]
    fn quoted_text_is_one_bounded_line() {
        assert_eq!(quoted("a\nb"), "a b");
        let long = quoted(&"x".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_QUOTED_CHARS + 3);
    }
}
