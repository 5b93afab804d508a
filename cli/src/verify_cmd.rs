//! `emeterai verify`.

use emeterai::stamping::{self, Issuer};

use crate::{Failure, Outcome};

/// `emeterai verify FILE [--json]`
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The PDF to check.
    file: String,
    /// Prints the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Exit 0 when at least one e-Meterai is found and every one is valid; exit 2 when none is
/// found, any is invalid, or the file cannot be read as a PDF; exit 1 for other failures.
/// Signatures are checked cryptographically against the certificate they carry; when the
/// issuer is configured (`EMETERAI_ISSUER_CERT_FILE`) or exists locally, `issuer` tells
/// whether the signer is that issuer.
pub fn run(args: VerifyArgs) -> Result<Outcome, Failure> {
    let VerifyArgs { file, json } = args;
    let pdf = std::fs::read(&file).map_err(|e| Failure(format!("cannot read {file}: {e}")))?;
    let trusted = known_issuer_certificates();
    let found = match stamping::verify(&pdf, trusted.as_deref()) {
        Ok(found) => found,
        Err(rejection) => {
            eprintln!("rejected: {}: {}", rejection.code(), rejection.message());
            if json {
                println!("{}", serde_json::json!({"file": file, "valid": false, "rejection": {"code": rejection.code(), "message": rejection.message()}, "stamps": []}));
            }
            return Ok(Outcome::Refused);
        }
    };
    let all_valid = !found.is_empty() && found.iter().all(|s| s.signature_valid);
    if json {
        println!("{}", serde_json::json!({"file": file, "valid": all_valid, "stamps": found}));
    } else {
        if found.is_empty() {
            println!("no e-Meterai found in {file}");
        }
        for stamp in &found {
            let validity = if stamp.signature_valid { "valid" } else { "INVALID" };
            let coverage = if stamp.unmodified_since_stamp { "covers the whole file" } else { "covers its revision; changed since" };
            let issuer = match stamp.issuer_trusted {
                Some(true) => ", issuer: known",
                Some(false) => ", issuer: unknown",
                None => "",
            };
            let at = stamp.signed_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".to_owned());
            let level = stamp.level.map(|l| format!(", PAdES {}", l.as_str())).unwrap_or_default();
            let timestamp = match &stamp.timestamp {
                None => String::new(),
                Some(t) => format!(
                    "; timestamp {} by {} ({})",
                    t.time.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".to_owned()),
                    t.authority.as_deref().unwrap_or("an unnamed authority"),
                    if t.valid { "valid" } else if t.unsupported_algorithm { "algorithm not checked" } else { "INVALID" },
                ),
            };
            println!("e-Meterai {} {validity} ({coverage}{issuer}{level}) signed {at}{timestamp}", stamp.serial);
        }
    }
    Ok(if all_valid { Outcome::Success } else { Outcome::Refused })
}

/// The configured issuer's certificate, else the local one if it was already created.
fn known_issuer_certificates() -> Option<Vec<Vec<u8>>> {
    if let Ok(Some(issuer)) = Issuer::from_env() {
        return Some(vec![issuer.certificate_der().to_vec()]);
    }
    let dir = Issuer::default_local_dir();
    if dir.join("issuer-cert.pem").exists() {
        return Issuer::load_or_create_local(&dir).ok().map(|i| vec![i.certificate_der().to_vec()]);
    }
    None
}
