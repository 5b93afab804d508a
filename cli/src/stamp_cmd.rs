//! `emeterai stamp`.

use std::path::Path;

use chrono::{DateTime, Utc};
use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::stamping::{self, Issuer, Rejection, StampRequest};

use crate::{Args, Failure, Outcome};

/// Base of the verification URL in the QR code when neither `--verify-base-url` nor
/// `EMETERAI_VERIFY_BASE_URL` says otherwise.
const DEFAULT_VERIFY_BASE_URL: &str = "http://localhost:3000";

pub fn run(raw: &[String]) -> Result<Outcome, Failure> {
    let args = Args::parse(raw, &["output", "serial", "page", "x-mm", "y-mm", "at", "verify-base-url"], &["json"])?;
    let json = args.flag("json");
    let [input] = args.positional.as_slice() else {
        return Err(Failure("stamp takes exactly one INPUT file".to_owned()));
    };
    let output = args.value("output").ok_or_else(|| Failure("--output is required".to_owned()))?;
    let serial_text = args.value("serial").ok_or_else(|| Failure("--serial is required".to_owned()))?;
    let serial = Serial::parse(serial_text).map_err(|e| Failure(format!("--serial: {e}")))?;
    let page = match args.value("page") {
        Some(text) => Some(text.parse::<u32>().ok().filter(|&p| p >= 1).ok_or_else(|| Failure("--page must be a whole number from 1".to_owned()))?),
        None => None,
    };
    let coordinate = |name: &str| -> Result<Option<f64>, Failure> {
        args.value(name)
            .map(|text| text.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| Failure(format!("--{name} must be a non-negative number of millimetres"))))
            .transpose()
    };
    let (x_mm, y_mm) = (coordinate("x-mm")?, coordinate("y-mm")?);
    let signed_at = match args.value("at") {
        Some(text) => DateTime::parse_from_rfc3339(text).map_err(|e| Failure(format!("--at: {e}")))?.with_timezone(&Utc),
        None => Utc::now(),
    };
    let base_url = args
        .value("verify-base-url")
        .map(str::to_owned)
        .or_else(|| std::env::var("EMETERAI_VERIFY_BASE_URL").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_VERIFY_BASE_URL.to_owned());
    let verify_url = format!("{}/v1/verify/{serial}", base_url.trim_end_matches('/'));

    let pdf = std::fs::read(input).map_err(|e| Failure(format!("cannot read {input}: {e}")))?;
    let placement = match (x_mm, y_mm) {
        (Some(x), Some(y)) => Placement::parse(page, x, y)?,
        (None, None) => stamping::default_placement(&pdf, page)?,
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
