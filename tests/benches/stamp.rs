//! Stamping benchmark: a bench binary (no timed assertions anywhere). Run it with
//! `scripts/bench/run.sh`, which prepares the ~760 KB scanned A4 and the pyHanko comparison.
//!
//! usage: stamp-bench SCAN_PDF EMETERAI_BIN [RUNS]
//! Prints, as one JSON line: median in-process `stamp` time, two floors, and the median wall time
//! and peak RSS of a whole `emeterai stamp`. The floors: SHA-256 of the file plus one ECDSA
//! signature (DESIGN.md's), and reading the file, hashing it and writing it out again (the least
//! any tool that stamps a file on disk does), compared with reading, stamping and writing.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::stamping::{self, Issuer, StampRequest, cms};

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let (Some(scan), Some(cli)) = (args.first(), args.get(1)) else {
        eprintln!("usage: stamp-bench SCAN_PDF EMETERAI_BIN [RUNS]");
        std::process::exit(1);
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(50);
    let pdf = std::fs::read(scan).expect("scan pdf");
    let data_dir = std::env::temp_dir().join(format!("emeterai-bench-{}", std::process::id()));
    let issuer = Issuer::load_or_create_local(&data_dir.join("issuer")).expect("issuer");
    let serial = Serial::parse("0123456789ABCDEFGHIJKL").expect("serial");
    let placement = Placement::parse(None, 150.0, 240.0).expect("placement");
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").expect("time").with_timezone(&chrono::Utc);
    let url = format!("https://emeterai.test/v1/verify/{serial}");
    let request = StampRequest { serial: &serial, placement: &placement, signed_at: at, verify_url: &url };

    let mut in_process = Vec::new();
    let mut floor = Vec::new();
    let mut file_in_process = Vec::new();
    let mut file_floor = Vec::new();
    std::fs::create_dir_all(&data_dir).expect("bench dir");
    let written = data_dir.join("in-process.pdf");
    for _ in 0..runs {
        let start = Instant::now();
        let input = std::fs::read(scan).expect("scan pdf");
        let stamped = stamping::stamp(&input, &request, &issuer).expect("stamps");
        std::fs::write(&written, &stamped.pdf).expect("write");
        file_in_process.push(start.elapsed().as_secs_f64() * 1000.0);

        let start = Instant::now();
        let input = std::fs::read(scan).expect("scan pdf");
        let digest = cms::sha256(&[&input]);
        std::fs::write(&written, &input).expect("write");
        file_floor.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&digest);

        let start = Instant::now();
        let stamped = stamping::stamp(&pdf, &request, &issuer).expect("stamps");
        in_process.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&stamped);

        let start = Instant::now();
        let digest = cms::sha256(&[&pdf]);
        let signature = cms::sign_detached(&issuer, &digest).expect("local key signs");
        floor.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&signature);
    }

    let out = data_dir.join("out.pdf");
    let mut process = Vec::new();
    let mut peak_rss_kb = Vec::new();
    let time_tool = Path::new("/usr/bin/time");
    for _ in 0..runs.min(30) {
        let start = Instant::now();
        let mut command = if time_tool.exists() {
            let mut c = Command::new(time_tool);
            c.args(["-f", "%M"]).arg(cli);
            c
        } else {
            Command::new(cli)
        };
        let output = command
            .args(["stamp", scan, "--output"])
            .arg(&out)
            .args(["--serial", serial.as_str(), "--x-mm", "150", "--y-mm", "240", "--at", "2026-11-28T10:00:00Z"])
            .env("EMETERAI_DATA_DIR", &data_dir)
            .output()
            .expect("emeterai runs");
        process.push(start.elapsed().as_secs_f64() * 1000.0);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        if let Some(kb) = String::from_utf8_lossy(&output.stderr).lines().last().and_then(|l| l.trim().parse::<f64>().ok()) {
            peak_rss_kb.push(kb);
        }
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    let result = serde_json::json!({
        "input_bytes": pdf.len(),
        "runs": runs,
        "in_process_median_ms": median(in_process),
        "floor_sha256_plus_signature_median_ms": median(floor),
        "read_stamp_write_median_ms": median(file_in_process),
        "floor_read_sha256_write_median_ms": median(file_floor),
        "cli_process_median_ms": median(process),
        "cli_peak_rss_mb": peak_rss_kb.iter().copied().fold(f64::NAN, f64::max) / 1024.0,
    });
    println!("{result}");
}
