//! One cold stamp per process, the steps `emeterai stamp` takes, each timed: where a whole
//! process's milliseconds go that the in-process loop (`stamp`) never sees, because it pays
//! one-time costs once. Built here, not stripped, so `valgrind --tool=callgrind` and `perf`
//! name the functions.
//!
//! `cold_stamp SCAN_PDF OUTPUT` with `EMETERAI_DATA_DIR` (or the issuer variables) set, like the
//! CLI. Prints one JSON line of phase times in microseconds on standard error.

use std::time::Instant;

use emeterai::domain::placement::Placement;
use emeterai::domain::serial::Serial;
use emeterai::stamping::{self, Issuer, StampRequest};

// The CLI's allocator, so the page-fault and RSS picture is the CLI's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let start = Instant::now();
    let mut phases: Vec<(&str, f64)> = Vec::new();
    let mut last = start;
    let mut mark = |name: &'static str| {
        let now = Instant::now();
        phases.push((name, (now - last).as_secs_f64() * 1e6));
        last = now;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cold_stamp SCAN_PDF OUTPUT");
        std::process::exit(1);
    };
    let serial = Serial::parse("0123456789ABCDEFGHIJKL").expect("serial");
    let placement = Placement::parse(None, 150.0, 240.0).expect("placement");
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z").expect("time").with_timezone(&chrono::Utc);
    let url = format!("http://localhost:3000/v1/verify/{serial}");
    mark("arguments");
    let pdf = std::fs::read(input).expect("input");
    mark("read_input");
    let request = StampRequest { serial: &serial, placement: &placement, signed_at: at, verify_url: &url };
    let prepared = stamping::prepare_stamp(&pdf, &request).expect("prepares");
    mark("prepare_stamp");
    let issuer = match Issuer::from_env().expect("issuer env") {
        Some(issuer) => issuer,
        None => Issuer::load_or_create_local(&Issuer::default_local_dir()).expect("issuer"),
    };
    mark("load_issuer");
    let stamped = prepared.sign(&issuer).expect("signs");
    mark("sign");
    std::fs::write(output, &stamped.pdf).expect("write");
    mark("write_output");
    let fields: Vec<String> = phases.iter().map(|(name, us)| format!("\"{name}_us\":{us:.0}")).collect();
    eprintln!("{{{},\"total_us\":{:.0}}}", fields.join(","), start.elapsed().as_secs_f64() * 1e6);
}
