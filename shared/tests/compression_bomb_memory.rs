//! A compression bomb is refused without being inflated, measured: the growth of this process's
//! peak resident set (Linux `VmHWM`, reset before each call through `/proc/self/clear_refs`, as
//! in stamping_memory.rs) while `check`, `stamp` and `verify` read a few-hundred-KB file whose
//! only object stream inflates to 256 MiB. The reader may decode at most `MAX_DECODED_BYTES`
//! (8 MiB) per document; the bound leaves room for that and the parser's own tables, and is far
//! below what inflating the stream would take.
//!
//! Its own test binary with one test function: the resident set is the whole process's, so
//! nothing else may run while a call is measured. (A counting global allocator would need
//! `unsafe`, which the workspace forbids.)

use std::io::Write as _;

use chrono::{DateTime, Utc};
use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::stamping::pdf::MAX_DECODED_BYTES;
use emeterai::stamping::{self, Issuer, Rejection, StampRequest};

/// What the stream would inflate to.
const INFLATED_BYTES: usize = 256 << 20;

/// Peak growth allowed: twice the decoding budget (a growing buffer may hold the budget while it
/// is copied) plus 8 MiB for everything else the reader builds.
const MAX_GROWTH_KIB: u64 = (2 * MAX_DECODED_BYTES as u64 + (8 << 20)) / 1024;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `f`; returns its result and by how much the peak resident set while it ran exceeded
/// `baseline_kib` (the resident set before the first measured call: memory an earlier call freed
/// but the allocator kept counts against the later ones, never for them).
fn peak_growth_kib<T>(baseline_kib: u64, f: impl FnOnce() -> T) -> (T, u64) {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM needs Linux /proc/self/clear_refs");
    let result = f();
    let peak = status_kib("VmHWM:").expect("VmHWM");
    (result, peak.saturating_sub(baseline_kib))
}

/// A PDF whose only object stream (the one holding the catalog) inflates to `inflated` spaces.
fn object_stream_bomb(inflated: usize) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..inflated / spaces.len() {
        encoder.write_all(&spaces).expect("in memory");
    }
    let compressed = encoder.finish().expect("in memory");
    let mut out = b"%PDF-1.7\n".to_vec();
    let objstm_at = out.len();
    out.extend_from_slice(
        format!("1 0 obj\n<</Type/ObjStm/N 1/First 4/Filter/FlateDecode/Length {}>>\nstream\n", compressed.len()).as_bytes(),
    );
    out.extend_from_slice(&compressed);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_at = out.len();
    let mut xref = Vec::new();
    for (kind, field2, field3) in [(0u8, 0u32, 65535u16), (1, objstm_at as u32, 0), (2, 1, 0)] {
        xref.push(kind);
        xref.extend_from_slice(&field2.to_be_bytes());
        xref.extend_from_slice(&field3.to_be_bytes());
    }
    out.extend_from_slice(
        format!("3 0 obj\n<</Type/XRef/Size 4/W[1 4 2]/Index[0 3]/Root 2 0 R/Length {}>>\nstream\n", xref.len()).as_bytes(),
    );
    out.extend_from_slice(&xref);
    out.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    out
}

#[test]
fn a_compression_bomb_is_refused_within_a_bounded_peak_memory() {
    let bomb = object_stream_bomb(INFLATED_BYTES);
    assert!(bomb.len() <= stamping::MAX_PDF_BYTES, "the bomb fits the size limit: {}", bomb.len());
    let serial = Serial::parse("0123456789ABCDEFGHIJKL").expect("serial");
    let placement = Placement::parse(None, 10.0, 10.0).expect("placement");
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").expect("time").with_timezone(&Utc);
    let issuer = Issuer::generate(&mut rand::thread_rng()).expect("issuer");
    let url = format!("https://emeterai.test/v1/verify/{serial}");
    let request = StampRequest { serial: &serial, placement: &placement, signed_at: at, verify_url: &url };

    let baseline = status_kib("VmRSS:").expect("VmRSS");
    let (checked, check_growth) = peak_growth_kib(baseline, || stamping::check(&bomb, &placement));
    let (stamped, stamp_growth) = peak_growth_kib(baseline, || stamping::stamp(&bomb, &request, &issuer).map(|s| s.pdf.len()));
    let (verified, verify_growth) = peak_growth_kib(baseline, || stamping::verify(&bomb, None).map(|found| found.len()));
    let report = format!(
        "{} bytes inflating to {} MiB: check {checked:?} +{check_growth} KiB; stamp {stamped:?} +{stamp_growth} KiB; \
         verify {verified:?} +{verify_growth} KiB (bound +{MAX_GROWTH_KIB} KiB)",
        bomb.len(),
        INFLATED_BYTES >> 20
    );
    println!("{report}");
    assert_eq!(checked, Err(Rejection::Corrupt), "{report}");
    assert_eq!(stamped, Err(Rejection::Corrupt), "{report}");
    assert!(verified.is_err(), "{report}");
    for (what, growth) in [("check", check_growth), ("stamp", stamp_growth), ("verify", verify_growth)] {
        assert!(growth <= MAX_GROWTH_KIB, "{what} grew the peak resident set by {growth} KiB\n{report}");
    }
}
