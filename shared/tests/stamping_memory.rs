//! Memory and time of `check`, `stamp` and `verify` on hostile documents of at most 800,000
//! bytes, made here: the peak resident set of this whole test process (Linux `VmHWM`, reset
//! before each call through `/proc/self/clear_refs`), at most 64 MiB; time at most one second
//! (ten in unoptimised builds).
//!
//! One test function runs every case in turn, so that nothing else runs in the process while a
//! case is measured.

use std::io::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::stamping::{self, Issuer, StampRequest};

const MAX_PEAK_KIB: u64 = 64 * 1024;

fn max_time() -> Duration {
    if cfg!(debug_assertions) { Duration::from_secs(10) } else { Duration::from_secs(1) }
}

/// The peak resident set since the last reset, in KiB (`None` where /proc says nothing).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs `f`, returning its result, the process's peak resident set while it ran, and the time.
fn measure<T>(f: impl FnOnce() -> T) -> (T, u64, Duration) {
    let reset = reset_peak();
    let started = Instant::now();
    let result = f();
    let elapsed = started.elapsed();
    let peak = if reset { peak_rss_kib().unwrap_or(0) } else { 0 };
    (result, peak, elapsed)
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).expect("in memory");
    encoder.finish().expect("in memory")
}

/// A document whose objects are written in order with a classic xref table.
struct Builder {
    out: Vec<u8>,
    offsets: Vec<(u32, usize)>,
}

impl Builder {
    fn new() -> Builder {
        Builder { out: b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec(), offsets: Vec::new() }
    }
    fn object(&mut self, id: u32, body: &[u8]) {
        self.offsets.push((id, self.out.len()));
        self.out.extend_from_slice(format!("{id} 0 obj\n").as_bytes());
        self.out.extend_from_slice(body);
        self.out.extend_from_slice(b"\nendobj\n");
    }
    fn object_stream(&mut self, id: u32, inner: &[(u32, Vec<u8>)]) {
        let mut header = String::new();
        let mut body = Vec::new();
        for (number, object) in inner {
            header.push_str(&format!("{number} {} ", body.len()));
            body.extend_from_slice(object);
            body.push(b' ');
        }
        let mut data = header.clone().into_bytes();
        data.extend_from_slice(&body);
        let packed = deflate(&data);
        let mut object = format!("<</Type/ObjStm/N {}/First {}/Filter/FlateDecode/Length {}>>\nstream\n", inner.len(), header.len(), packed.len()).into_bytes();
        object.extend_from_slice(&packed);
        object.extend_from_slice(b"\nendstream");
        self.object(id, &object);
    }
    /// A cross-reference stream (so objects in object streams resolve), then the end.
    fn finish(mut self, compressed: &[(u32, u32, u32)], root: u32) -> Vec<u8> {
        let xref_id = self.offsets.iter().map(|(id, _)| *id).chain(compressed.iter().map(|c| c.0)).max().unwrap_or(0) + 1;
        let xref_at = self.out.len();
        self.offsets.push((xref_id, xref_at));
        let size = xref_id + 1;
        let mut rows = vec![[0u8; 7]; size as usize];
        rows[0] = [0, 0, 0, 0, 0, 0xFF, 0xFF];
        for (id, offset) in &self.offsets {
            let o = u32::try_from(*offset).expect("small").to_be_bytes();
            rows[*id as usize] = [1, o[0], o[1], o[2], o[3], 0, 0];
        }
        for (id, container, index) in compressed {
            let c = container.to_be_bytes();
            let i = u16::try_from(*index).expect("small").to_be_bytes();
            rows[*id as usize] = [2, c[0], c[1], c[2], c[3], i[0], i[1]];
        }
        let data: Vec<u8> = rows.concat();
        let mut object = format!("<</Type/XRef/Size {size}/W[1 4 2]/Root {root} 0 R/Length {}>>\nstream\n", data.len()).into_bytes();
        object.extend_from_slice(&data);
        object.extend_from_slice(b"\nendstream");
        self.out.extend_from_slice(format!("{xref_id} 0 obj\n").as_bytes());
        self.out.extend_from_slice(&object);
        self.out.extend_from_slice(format!("\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
        self.out
    }
}

fn million_integers() -> Vec<u8> {
    let mut array = b"[".to_vec();
    array.extend(std::iter::repeat_n(&b"0 "[..], 1_000_000).flatten());
    array.push(b']');
    array
}

/// The file: an A4 page and four object streams, each one array of a million integers.
/// With `needed`, the page's /Annots names one of those arrays, so a reader must open it.
fn four_million_integers(needed: bool) -> Vec<u8> {
    let mut b = Builder::new();
    b.object(1, b"<</Type/Catalog/Pages 2 0 R>>");
    b.object(2, b"<</Type/Pages/Kids[3 0 R]/Count 1>>");
    let annots = if needed { "/Annots 10 0 R" } else { "" };
    b.object(3, format!("<</Type/Page/Parent 2 0 R/MediaBox[0 0 595.276 841.89]{annots}>>").as_bytes());
    let array = million_integers();
    for k in 0..4u32 {
        b.object_stream(4 + k, &[(10 + k, array.clone())]);
    }
    let compressed: Vec<(u32, u32, u32)> = (0..4).map(|k| (10 + k, 4 + k, 0)).collect();
    b.finish(&compressed, 1)
}

/// An object stream that inflates to 200 MB of spaces, named by the page.
fn inflating_object_stream() -> Vec<u8> {
    let mut b = Builder::new();
    b.object(1, b"<</Type/Catalog/Pages 2 0 R>>");
    b.object(2, b"<</Type/Pages/Kids[3 0 R]/Count 1>>");
    b.object(3, b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595.276 841.89]/Annots 10 0 R>>");
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(b"10 0 ").expect("mem");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..200 {
        encoder.write_all(&spaces).expect("mem");
    }
    encoder.write_all(b"[]").expect("mem");
    let packed = encoder.finish().expect("mem");
    let mut object = format!("<</Type/ObjStm/N 1/First 5/Filter/FlateDecode/Length {}>>\nstream\n", packed.len()).into_bytes();
    object.extend_from_slice(&packed);
    object.extend_from_slice(b"\nendstream");
    b.object(4, &object);
    b.finish(&[(10, 4, 0)], 1)
}

/// Thousands of signature fields, each with its own value claiming to be an e-Meterai over
/// the whole file: verification must not hash the file thousands of times.
fn thousands_of_signature_fields(fields: u32) -> Vec<u8> {
    // Built twice: the second time the ranges end exactly at the end of the file.
    let first = signature_fields_with_range_end(fields, 0);
    signature_fields_with_range_end(fields, first.len() - 20)
}

fn signature_fields_with_range_end(fields: u32, range_length: usize) -> Vec<u8> {
    let mut b = Builder::new();
    b.object(1, b"<</Type/Catalog/Pages 2 0 R/AcroForm 4 0 R>>");
    b.object(2, b"<</Type/Pages/Kids[3 0 R]/Count 1>>");
    b.object(3, b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595.276 841.89]>>");
    let first_field = 10u32;
    let refs: Vec<String> = (0..fields).map(|i| format!("{} 0 R", first_field + 2 * i)).collect();
    b.object(4, format!("<</Fields[{}]>>", refs.join(" ")).as_bytes());
    for i in 0..fields {
        let field = first_field + 2 * i;
        b.object(field, format!("<</FT/Sig/T(s{i})/V {} 0 R>>", field + 1).as_bytes());
        let value = format!("<</Type/Sig/Reason([0123456789ABCDEFGHIJKL] e-Meterai 10000)/ByteRange[0 10 20 {range_length:07}]/Contents<00>>>");
        b.object(field + 1, value.as_bytes());
    }
    b.finish(&[], 1)
}

/// An unsigned file whose startxref is off (so it is read by scanning) with an array of
/// 370,000 integers that the stamp does not need.
fn broken_startxref_with_a_large_array() -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    let bodies: Vec<Vec<u8>> = vec![
        b"<</Type/Catalog/Pages 2 0 R>>".to_vec(),
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>".to_vec(),
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595.276 841.89]/X 4 0 R>>".to_vec(),
        {
            let mut array = b"[".to_vec();
            array.extend(std::iter::repeat_n(&b"0 "[..], 370_000).flatten());
            array.push(b']');
            array
        },
    ];
    for (i, body) in bodies.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<</Size 5/Root 1 0 R>>\nstartxref\n{}\n%%EOF\n", xref + 7).as_bytes());
    out
}

#[test]
fn hostile_documents_stay_within_memory_and_time() {
    let serial = Serial::parse("0123456789ABCDEFGHIJKL").expect("serial");
    let placement = Placement::parse(None, 10.0, 10.0).expect("placement");
    let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").expect("time").with_timezone(&Utc);
    let issuer = Issuer::generate(&mut rand::thread_rng()).expect("issuer");
    let url = format!("https://emeterai.test/v1/verify/{serial}");
    let request = StampRequest { serial: &serial, placement: &placement, signed_at: at, verify_url: &url };

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("four object streams of a million integers", four_million_integers(false)),
        ("the same, one of them needed by the page", four_million_integers(true)),
        ("an object stream inflating to 200 MB", inflating_object_stream()),
        ("4,000 signature fields", thousands_of_signature_fields(4_000)),
        ("a broken startxref and 370,000 integers", broken_startxref_with_a_large_array()),
    ];
    let mut report = Vec::new();
    for (name, pdf) in &cases {
        assert!(pdf.len() <= stamping::MAX_PDF_BYTES, "{name}: {} bytes", pdf.len());
        if let Ok(dir) = std::env::var("EMETERAI_HOSTILE_DIR") {
            let _ = std::fs::write(format!("{dir}/{}.pdf", name.replace([' ', ','], "-")), pdf);
        }
        let (checked, check_peak, check_time) = measure(|| stamping::check(pdf, &placement));
        let (stamped, stamp_peak, stamp_time) = measure(|| stamping::stamp(pdf, &request, &issuer).map(|s| s.pdf.len()));
        let (verified, verify_peak, verify_time) = measure(|| stamping::verify(pdf, None).map(|found| found.len()));
        report.push(format!(
            "{name} ({} bytes): check {:?} {} KiB {:?}; stamp {:?} {} KiB {:?}; verify {:?} {} KiB {:?}",
            pdf.len(),
            checked.err().map(|r| r.code()),
            check_peak,
            check_time,
            stamped.as_ref().err().map(|r| r.code()),
            stamp_peak,
            stamp_time,
            verified.as_ref().map_err(|r| r.code()),
            verify_peak,
            verify_time
        ));
        for (what, peak, time) in [("check", check_peak, check_time), ("stamp", stamp_peak, stamp_time), ("verify", verify_peak, verify_time)] {
            assert!(peak <= MAX_PEAK_KIB, "{name}: {what} peaked at {peak} KiB\n{}", report.join("\n"));
            assert!(time <= max_time(), "{name}: {what} took {time:?}\n{}", report.join("\n"));
        }
    }
    println!("{}", report.join("\n"));
    // The unused arrays do not stop a stamp: only what the stamp needs is read.
    assert!(report[0].contains("stamp None"), "{}", report[0]);
    // An object that would not fit the budgets reads as corrupt.
    assert!(report[1].contains("stamp Some(\"corrupt\")"), "{}", report[1]);
    assert!(report[2].contains("stamp Some(\"corrupt\")"), "{}", report[2]);
    // Read by scanning (no whole-file rewrite), the unneeded array never parsed.
    assert!(report[4].contains("stamp None"), "{}", report[4]);
}
