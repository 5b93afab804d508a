//! The documents bucket (S3): presigned uploads and downloads, bounded reads, idempotent writes.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

pub const PDF_CONTENT_TYPE: &str = "application/pdf";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("S3 request failed")]
    S3(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("object is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("object does not exist")]
    Missing,
    /// A write-once object already holds other bytes than the ones being written.
    #[error("object already exists with other content")]
    Conflict,
    /// The object is not the version asked for (its ETag differs: `If-Match` failed).
    #[error("object is not the version named")]
    NotThatVersion,
}

impl<E, R> From<SdkError<E, R>> for StorageError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn from(e: SdkError<E, R>) -> Self {
        Self::S3(Box::new(e))
    }
}

/// A presigned request the client performs itself.
#[derive(Debug, Clone)]
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct DocumentStore {
    pub(crate) client: Client,
    bucket: String,
}

impl DocumentStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    /// An S3 client for this environment. Path-style addressing when an endpoint override is set
    /// (local S3 servers need it; AWS itself does not).
    pub fn from_sdk_config(aws: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let local = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let config = aws_sdk_s3::config::Builder::from(aws).force_path_style(local).build();
        Self::new(Client::from_conf(config), bucket)
    }

    /// The same client on another bucket.
    pub fn for_bucket(&self, bucket: impl Into<String>) -> Self {
        Self { client: self.client.clone(), bucket: bucket.into() }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// A presigned PUT of a PDF to `key`, usable once: it signs `If-None-Match: *`, so S3 refuses
    /// (412) any PUT once the object exists. A second upload can neither replace the file being
    /// stamped nor trigger a second run on other bytes. The client sends exactly `headers`.
    pub async fn presign_upload(&self, key: &str, expires_in: Duration) -> Result<PresignedRequest, StorageError> {
        let presigned = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(PDF_CONTENT_TYPE)
            .if_none_match("*")
            .presigned(PresigningConfig::expires_in(expires_in).map_err(|e| StorageError::S3(Box::new(e)))?)
            .await?;
        Ok(PresignedRequest {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers: vec![
                ("content-type".to_owned(), PDF_CONTENT_TYPE.to_owned()),
                ("if-none-match".to_owned(), "*".to_owned()),
            ],
        })
    }

    /// A presigned GET of `key`.
    pub async fn presign_download(&self, key: &str, expires_in: Duration) -> Result<String, StorageError> {
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(PresigningConfig::expires_in(expires_in).map_err(|e| StorageError::S3(Box::new(e)))?)
            .await?;
        Ok(presigned.uri().to_owned())
    }

    /// Reads an object, refusing to hold more than `limit` bytes in memory.
    pub async fn read_limited(&self, key: &str, limit: usize) -> Result<Vec<u8>, StorageError> {
        self.read_version_limited(key, None, limit).await
    }

    /// As [`Self::read_limited`], and when `etag` is given only the object with that ETag
    /// (`If-Match`): another version is [`StorageError::NotThatVersion`], never its bytes.
    pub async fn read_version_limited(&self, key: &str, etag: Option<&str>, limit: usize) -> Result<Vec<u8>, StorageError> {
        // HTTP entity tags are quoted; S3 events name them without the quotes.
        let if_match = etag.map(|e| format!("\"{}\"", e.trim_matches('"')));
        let out = match self.client.get_object().bucket(&self.bucket).key(key).set_if_match(if_match).send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Err(StorageError::Missing),
            // 412 Precondition Failed is not a modelled error of GetObject: judged by the status.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => return Err(StorageError::NotThatVersion),
            Err(e) => return Err(e.into()),
        };
        if out.content_length().is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit)) {
            return Err(StorageError::TooLarge { limit });
        }
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| StorageError::S3(Box::new(e)))? {
            if bytes.len() + chunk.len() > limit {
                return Err(StorageError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// Writes a PDF, replacing whatever is at `key` (tools and tests; the stamp function writes
    /// with [`Self::write_pdf_once`]).
    pub async fn write_pdf(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(PDF_CONTENT_TYPE)
            .body(ByteStream::from(bytes))
            .send()
            .await?;
        Ok(())
    }

    /// Writes a PDF once: the put is conditional on the key being free (`If-None-Match: *`), so
    /// a run that loses a race can never overwrite the bytes another run wrote. When the key is
    /// taken, the bytes there are compared with `bytes` (compare-and-keep): identical (a retry of
    /// the same reservation, which stamps identical bytes) is success; anything else is
    /// [`StorageError::Conflict`] and the existing object stays.
    pub async fn write_pdf_once(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(PDF_CONTENT_TYPE)
            .if_none_match("*")
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                let existing = self.read_limited(key, bytes.len()).await;
                match existing {
                    Ok(existing) if existing == bytes => Ok(()),
                    Ok(_) | Err(StorageError::TooLarge { .. }) => Err(StorageError::Conflict),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await?;
        Ok(())
    }
}
