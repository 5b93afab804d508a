//! Turns SeaweedFS filer notifications (its `notification.webhook`) into the S3 event records
//! AWS delivers to a function bound to a bucket's `ObjectCreated` events.
//!
//! SeaweedFS reports file-system events: `{"event_type": "create", "key": "/buckets/B/K",
//! "message": {"new_entry": {...}, "old_entry": {...}, "new_parent_path": "..."}}`. Objects of
//! bucket `B` live under `/buckets/B/`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Where SeaweedFS keeps S3 buckets in its filer namespace.
const BUCKETS_ROOT: &str = "/buckets/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The object key, not encoded.
    pub key: String,
    pub size: u64,
    /// Hex, without quotes.
    pub etag: String,
    /// Increases with each write of a key (hex, as S3's `sequencer`).
    pub sequencer: String,
}

fn entry_path(notification: &Value) -> Option<String> {
    let message = notification.get("message")?;
    let name = message.get("new_entry")?.get("name")?.as_str()?;
    match message.get("new_parent_path").and_then(Value::as_str) {
        Some(parent) => Some(format!("{}/{name}", parent.trim_end_matches('/'))),
        None => notification.get("key")?.as_str().map(str::to_owned),
    }
}

fn etag_of(entry: &Value) -> Option<String> {
    // SeaweedFS keeps the S3 ETag (hex, base64-wrapped) for multipart objects; otherwise the
    // object's MD5, which is the ETag of a single PUT.
    if let Some(wrapped) = entry.get("extended").and_then(|e| e.get("Seaweed-X-Amz-ETag")).and_then(Value::as_str)
        && let Some(etag) = BASE64.decode(wrapped).ok().and_then(|b| String::from_utf8(b).ok())
    {
        return Some(etag.trim_matches('"').to_owned());
    }
    let md5 = entry.get("attributes")?.get("md5")?.as_str()?;
    BASE64.decode(md5).ok().map(hex::encode)
}

fn modified_ns(entry: &Value) -> u64 {
    let attributes = entry.get("attributes");
    let seconds = attributes.and_then(|a| a.get("mtime")).and_then(Value::as_u64).unwrap_or(0);
    let nanos = attributes.and_then(|a| a.get("mtime_ns")).and_then(Value::as_u64).unwrap_or(0);
    let chunk_ns = entry
        .get("chunks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("modified_ts_ns").and_then(Value::as_u64))
        .max()
        .unwrap_or(0);
    chunk_ns.max(seconds.saturating_mul(1_000_000_000).saturating_add(nanos % 1_000_000_000))
}

/// The object a filer notification created or overwrote, or `None` for anything else
/// (directories, deletions, SeaweedFS' own bookkeeping, metadata-only updates).
pub fn object_created(notification: &Value) -> Option<ObjectCreated> {
    let event_type = notification.get("event_type")?.as_str()?;
    if event_type != "create" && event_type != "update" {
        return None;
    }
    let message = notification.get("message")?;
    let entry = message.get("new_entry")?;
    if entry.get("is_directory").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let path = entry_path(notification)?;
    let (bucket, key) = path.strip_prefix(BUCKETS_ROOT)?.split_once('/')?;
    // Dot-names are SeaweedFS internals (`.system`, multipart `.uploads`), not S3 objects.
    if bucket.is_empty() || bucket.starts_with('.') || key.is_empty() || key.starts_with(".uploads/") {
        return None;
    }
    let etag = etag_of(entry)?;
    if event_type == "update" {
        // An update that keeps the content and the time is a metadata change: no S3 event.
        let old = message.get("old_entry");
        if old.and_then(etag_of).as_deref() == Some(etag.as_str())
            && old.map(modified_ns) == Some(modified_ns(entry))
        {
            return None;
        }
    }
    let size = entry
        .get("attributes")
        .and_then(|a| a.get("file_size"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| {
            entry
                .get("chunks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("size").and_then(Value::as_u64))
                .sum()
        });
    Some(ObjectCreated {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        etag,
        sequencer: format!("{:016X}", modified_ns(entry)),
    })
}

/// S3 encodes keys in event records like an HTML form value, keeping the slashes.
pub fn encode_key(key: &str) -> String {
    key.split('/').map(|segment| form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>()).collect::<Vec<_>>().join("/")
}

/// A complete `ObjectCreated:Put` S3 event (one record) as Lambda receives it.
pub fn s3_put_event(object: &ObjectCreated, configuration_id: &str, region: &str, now: DateTime<Utc>) -> Value {
    let request_id: [u8; 8] = rand::random();
    json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": region,
            "eventTime": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:EMETERAILOCAL"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {
                "x-amz-request-id": hex::encode_upper(request_id),
                "x-amz-id-2": BASE64.encode(request_id),
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": configuration_id,
                "bucket": {
                    "name": object.bucket,
                    "ownerIdentity": {"principalId": "EMETERAILOCAL"},
                    "arn": format!("arn:aws:s3:::{}", object.bucket),
                },
                "object": {
                    "key": encode_key(&object.key),
                    "size": object.size,
                    "eTag": object.etag,
                    "sequencer": object.sequencer,
                },
            },
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification as SeaweedFS 4.48 sent it for a PUT of 15 bytes (captured from a real run).
    fn put_notification(key: &str, name: &str, parent: &str) -> Value {
        json!({"event_type":"create","key":key,"message":{"new_entry":{"name":name,
            "chunks":[{"size":15,"modified_ts_ns":1795869324881784359u64,"e_tag":"EPP/MebuH2b94s28vtDTeQ==",
                "fid":{"volume_id":1,"file_key":1,"cookie":4151521011u64}}],
            "attributes":{"file_size":15,"mtime":1795869324,"file_mode":432,"crtime":1795869324,"mime":"application/pdf",
                "md5":"EPP/MebuH2b94s28vtDTeQ==","inode":9235532765243769895u64,"ctime":1795869324,"atime":1795869324},
            "extended":{"Seaweed-X-Amz-ETag":"MTBmM2ZmMzFlNmVlMWY2NmZkZTJjZGJjYmVkMGQzNzk=","Seaweed-X-Amz-Owner":"YWRtaW4="}},
            "delete_chunks":true,"new_parent_path":parent,"signatures":[1368540370]}})
    }

    #[test]
    fn a_put_becomes_an_object_created_record() {
        let n = put_notification("/buckets/bkt/incoming/acc1/doc.pdf", "doc.pdf", "/buckets/bkt/incoming/acc1");
        let object = object_created(&n).expect("object");
        assert_eq!(object.bucket, "bkt");
        assert_eq!(object.key, "incoming/acc1/doc.pdf");
        assert_eq!(object.size, 15);
        assert_eq!(object.etag, "10f3ff31e6ee1f66fde2cdbcbed0d379");
        assert_eq!(object.sequencer.len(), 16);

        let event = s3_put_event(&object, "StampOnUpload", "ap-southeast-3", Utc::now());
        let typed: aws_lambda_events::s3::S3Event = serde_json::from_value(event.clone()).expect("aws_lambda_events accepts it");
        let record = &typed.records[0];
        assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Put"));
        assert_eq!(record.s3.object.key.as_deref(), Some("incoming/acc1/doc.pdf"));
        assert_eq!(record.s3.object.size, Some(15));
        assert_eq!(record.s3.bucket.name.as_deref(), Some("bkt"));
    }

    #[test]
    fn keys_are_url_encoded_like_s3() {
        assert_eq!(encode_key("incoming/acc 1/surat pernyataan+final.pdf"), "incoming/acc+1/surat+pernyataan%2Bfinal.pdf");
        assert_eq!(encode_key("a/é.pdf"), "a/%C3%A9.pdf");
        let n = put_notification("/buckets/b/x y.pdf", "x y.pdf", "/buckets/b");
        let event = s3_put_event(&object_created(&n).expect("object"), "c", "r", Utc::now());
        assert_eq!(event["Records"][0]["s3"]["object"]["key"], "x+y.pdf");
    }

    #[test]
    fn directories_internals_and_junk_are_ignored() {
        let dir = json!({"event_type":"create","key":"/buckets/bkt/incoming","message":{"new_entry":{"name":"incoming","is_directory":true,"attributes":{}},"new_parent_path":"/buckets/bkt"}});
        assert_eq!(object_created(&dir), None);
        let system = put_notification("/buckets/.system/owners/x", "x", "/buckets/.system/owners");
        assert_eq!(object_created(&system), None);
        let outside = put_notification("/etc/x", "x", "/etc");
        assert_eq!(object_created(&outside), None);
        let uploads = put_notification("/buckets/b/.uploads/123/0001.part", "0001.part", "/buckets/b/.uploads/123");
        assert_eq!(object_created(&uploads), None);
        let mut delete = put_notification("/buckets/b/k.pdf", "k.pdf", "/buckets/b");
        delete["event_type"] = json!("delete");
        assert_eq!(object_created(&delete), None);
        for junk in [json!(null), json!([]), json!({"event_type": 5}), json!({"event_type": "create"}),
                     json!({"event_type":"create","message":{"new_entry":{"name":"k"}},"key":"/buckets/b/k"})] {
            assert_eq!(object_created(&junk), None, "{junk}");
        }
    }

    #[test]
    fn overwrites_fire_and_metadata_updates_do_not() {
        let mut n = put_notification("/buckets/b/k.pdf", "k.pdf", "/buckets/b");
        n["event_type"] = json!("update");
        n["message"]["old_entry"] = n["message"]["new_entry"].clone();
        assert_eq!(object_created(&n), None, "same content, same time");
        n["message"]["new_entry"]["attributes"]["mtime"] = json!(1795869999);
        n["message"]["new_entry"]["chunks"][0]["modified_ts_ns"] = json!(1795869999000000000u64);
        assert!(object_created(&n).is_some(), "rewritten");
    }
}
