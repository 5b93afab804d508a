//! `emeterai stamp`.

use std::path::Path;

use chrono::{DateTime, Utc};
use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::stamping::{self, Issuer, Rejection, StampRequest};

use crate::{Failure, Outcome};

/// Base of the verification URL in the QR code when neither `--verify-base-url` nor
/// `EMETERAI_VERIFY_BASE_URL` says otherwise.
const DEFAULT_VERIFY_BASE_URL: &str = "http://localhost:3000";

/// `emeterai stamp INPUT --output OUTPUT --serial SN ...`
#[derive(clap::Args)]
pub struct StampArgs {
    /// The PDF to stamp (at most 800,000 bytes, A4).
    input: String,
    /// Where the stamped PDF goes (written beside it first, then renamed: never partial).
    #[arg(long, value_name = "OUTPUT")]
    output: String,
    /// The stamp's serial: 22 characters of 0-9 A-Z.
    #[arg(long, value_name = "SN", value_parser = parse_serial)]
    serial: Serial,
    /// The page to stamp, from 1 (default: the last page).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    page: Option<u32>,
    /// The stamp's left edge, in millimetres from the page's left (with --y-mm; default: a free corner).
    #[arg(long = "x-mm", value_name = "X", requires = "y_mm", value_parser = parse_millimetres)]
    x_mm: Option<f64>,
    /// The stamp's bottom edge, in millimetres from the page's bottom (with --x-mm).
    #[arg(long = "y-mm", value_name = "Y", requires = "x_mm", value_parser = parse_millimetres)]
    y_mm: Option<f64>,
    /// The signing time (default: now). The same input, serial, placement and time give byte-identical output.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    at: Option<DateTime<Utc>>,
    /// Base of the verification URL in the QR code (default: $EMETERAI_VERIFY_BASE_URL, else http://localhost:3000).
    #[arg(long = "verify-base-url", value_name = "URL")]
    verify_base_url: Option<String>,
    /// Prints the result as one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_serial(text: &str) -> Result<Serial, String> {
    Serial::parse(text).map_err(|e| e.to_string())
}

fn parse_millimetres(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| "must be a non-negative number of millimetres".to_owned())
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| e.to_string())
}

pub fn run(args: StampArgs) -> Result<Outcome, Failure> {
    let StampArgs { input, output, serial, page, x_mm, y_mm, at, verify_base_url, json } = args;
    let output = output.as_str();
    let signed_at = at.unwrap_or_else(Utc::now);
    let base_url = verify_base_url
        .or_else(|| std::env::var("EMETERAI_VERIFY_BASE_URL").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_VERIFY_BASE_URL.to_owned());
    let verify_url = format!("{}/v1/verify/{serial}", base_url.trim_end_matches('/'));

    let pdf = std::fs::read(&input).map_err(|e| Failure(format!("cannot read {input}: {e}")))?;
    let placement = match (x_mm, y_mm) {
        (Some(x), Some(y)) => Placement::parse(page, x, y)?,
        (None, None) => stamping::default_placement(&pdf, page)?,
        // clap requires the two together.
        _ => return Err(Failure("give both --x-mm and --y-mm, or neither".to_owned())),
    };
    // Every check runs before the issuer is loaded, so a rejected file never creates key
    // material.
    let request = StampRequest { serial: &serial, placement: &placement, signed_at, verify_url: &verify_url };
    let prepared = match stamping::prepare_stamp(&pdf, &request) {
        Ok(prepared) => prepared,
        Err(rejection) => return Ok(reject(rejection, json)),
    };
    let issuer = Issuer::from_env_or_local()?;
    let stamped = match prepared.sign(&issuer) {
        Ok(stamped) => stamped,
        // Ours, not the document's: a failure (exit 1) to retry, never a rejection.
        Err(failure @ (Rejection::SignerUnavailable | Rejection::TimestampUnavailable)) => return Err(Failure(failure.message())),
        Err(rejection) => return Ok(reject(rejection, json)),
    };
    write_atomically(Path::new(output), &stamped.pdf)?;
    if json {
        let result = serde_json::json!({
            "status": "stamped",
            "serial": serial.as_str(),
            "sha256": stamped.sha256_hex(),
            "page": stamped.page,
            "x_mm": placement.x_mm(),
            "y_mm": placement.y_mm(),
            "output": output,
            "bytes": stamped.pdf.len(),
            "signed_at": signed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "verify_url": verify_url,
        });
        println!("{result}");
    } else {
        println!("stamped {serial} on page {} -> {output} (sha256 {})", stamped.page, stamped.sha256_hex());
    }
    Ok(Outcome::Success)
}

fn reject(rejection: Rejection, json: bool) -> Outcome {
    eprintln!("rejected: {}: {}", rejection.code(), rejection.message());
    if json {
        let result = serde_json::json!({
            "status": "rejected",
            "rejection": {"code": rejection.code(), "message": rejection.message()},
        });
        println!("{result}");
    }
    Outcome::Refused
}

/// Writes beside the target and renames, so a failure never leaves a partial output file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let file_name = path.file_name().ok_or_else(|| Failure(format!("--output {} is not a file path", path.display())))?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| Failure(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Failure(format!("cannot write {}: {e}", path.display()))
    })
}
