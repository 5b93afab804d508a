//! A document to stamp, and the rules of its life: AWAITING_UPLOAD → PROCESSING → STAMPED or
//! REJECTED. STAMPED and REJECTED are final.

use super::ids::{AccountId, DocumentId, InvoiceId};
use super::placement::Placement;
use super::serial::Serial;
use super::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentStatus {
    AwaitingUpload,
    Processing,
    Stamped,
    Rejected,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "AWAITING_UPLOAD",
            Self::Processing => "PROCESSING",
            Self::Stamped => "STAMPED",
            Self::Rejected => "REJECTED",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "AWAITING_UPLOAD" => Self::AwaitingUpload,
            "PROCESSING" => Self::Processing,
            "STAMPED" => Self::Stamped,
            "REJECTED" => Self::Rejected,
            _ => return None,
        })
    }
    pub fn is_final(self) -> bool {
        matches!(self, Self::Stamped | Self::Rejected)
    }
}

/// Why a document was refused: a stamping-engine code, or one of [`DocumentRejection::LEDGER_CODES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRejection {
    pub code: String,
    pub message: String,
}

impl DocumentRejection {
    /// Rejection codes given by the ledger and the sweep rather than the stamping engine
    /// (whose codes are [`crate::stamping::Rejection::code`]).
    pub const LEDGER_CODES: &'static [&'static str] = &["no_quota", "retry"];

    pub fn no_quota() -> Self {
        Self { code: "no_quota".into(), message: "no usable e-Meterai quota: buy quota, then upload again".into() }
    }

    /// The stamp run never finished (its event went to the dead-letter queue, or the function
    /// died after reserving a serial) and the sweep released the document. Nothing was charged
    /// and the serial was never issued: the client creates a new document and uploads again.
    pub fn retry() -> Self {
        Self {
            code: "retry".into(),
            message: "stamping did not finish; nothing was charged: create a new document and upload the file again".into(),
        }
    }
}

impl From<crate::stamping::Rejection> for DocumentRejection {
    fn from(r: crate::stamping::Rejection) -> Self {
        Self { code: r.code().into(), message: r.message() }
    }
}

/// The serial and signing time fixed for a document before it is stamped, so that every retry
/// produces the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampReservation {
    pub serial: Serial,
    pub signed_at: Timestamp,
    /// The ETag of the upload the reservation was made for (from the S3 event): every run of
    /// this reservation stamps that object version or nothing. None for reservations older
    /// than the pinning.
    pub source_etag: Option<String>,
}

/// What a successful stamp recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampRecord {
    pub serial: Serial,
    pub sha256: String,
    pub stamped_at: Timestamp,
    pub invoice_id: InvoiceId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: DocumentId,
    pub account: AccountId,
    pub file_name: FileName,
    pub placement: Option<Placement>,
    pub status: DocumentStatus,
    pub created_at: Timestamp,
    pub upload_expires_at: Timestamp,
    pub reservation: Option<StampReservation>,
    pub stamp: Option<StampRecord>,
    pub rejection: Option<DocumentRejection>,
}

pub const MAX_FILE_NAME_LEN: usize = 255;

/// The name the user gave the file: shown back, never used as a storage key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file_name must be 1 to {MAX_FILE_NAME_LEN} characters, not only spaces, without control characters")]
pub struct InvalidFileName;

impl FileName {
    pub fn parse(s: &str) -> Result<Self, InvalidFileName> {
        // Characters, not bytes: the contract's `maxLength` counts characters (a 255-character
        // Indonesian or emoji-laden name is valid), and at most 4 bytes each it stays small.
        if s.trim().is_empty() || s.chars().count() > MAX_FILE_NAME_LEN || s.chars().any(char::is_control) {
            return Err(InvalidFileName);
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Object keys in the documents bucket. Uploads land under `incoming/` (which triggers the
/// stamp function); results go under `stamped/` (which triggers nothing).
pub mod keys {
    use super::{AccountId, DocumentId};

    pub const INCOMING_PREFIX: &str = "incoming/";
    pub const STAMPED_PREFIX: &str = "stamped/";

    pub fn incoming(account: &AccountId, document: &DocumentId) -> String {
        format!("{INCOMING_PREFIX}{account}/{document}.pdf")
    }

    pub fn stamped(account: &AccountId, document: &DocumentId) -> String {
        format!("{STAMPED_PREFIX}{account}/{document}.pdf")
    }

    /// The account and document of an `incoming/{account}/{document}.pdf` key.
    pub fn parse_incoming(key: &str) -> Option<(AccountId, DocumentId)> {
        let rest = key.strip_prefix(INCOMING_PREFIX)?.strip_suffix(".pdf")?;
        let (account, document) = rest.rsplit_once('/')?;
        Some((AccountId::parse(account).ok()?, DocumentId::parse(document).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Ulid;

    #[test]
    fn keys_round_trip_and_outputs_never_look_like_uploads() {
        let account = AccountId::parse("alice").expect("account");
        let doc = DocumentId::new(Ulid::generate(1, &mut rand::thread_rng()));
        let key = keys::incoming(&account, &doc);
        assert_eq!(keys::parse_incoming(&key), Some((account.clone(), doc)));
        assert_eq!(keys::parse_incoming(&keys::stamped(&account, &doc)), None);
        assert_eq!(keys::parse_incoming("incoming/alice/not-a-doc.pdf"), None);
        assert_eq!(keys::parse_incoming("incoming/doc_x.pdf"), None);
    }

    #[test]
    fn file_names() {
        assert!(FileName::parse("surat-pernyataan.pdf").is_ok());
        assert!(FileName::parse("").is_err());
        assert!(FileName::parse("   ").is_err());
        assert!(FileName::parse("a\u{0}b").is_err());
        assert!(FileName::parse(&"a".repeat(256)).is_err());
        // The limit counts characters as the contract's maxLength does, not UTF-8 bytes.
        assert!(FileName::parse(&"é".repeat(255)).is_ok());
        assert!(FileName::parse(&"😀".repeat(255)).is_ok());
        assert!(FileName::parse(&"é".repeat(256)).is_err());
    }

    #[test]
    fn statuses() {
        for s in [DocumentStatus::AwaitingUpload, DocumentStatus::Processing, DocumentStatus::Stamped, DocumentStatus::Rejected] {
            assert_eq!(DocumentStatus::parse(s.as_str()), Some(s));
        }
        assert!(DocumentStatus::Stamped.is_final() && !DocumentStatus::Processing.is_final());
    }
}
