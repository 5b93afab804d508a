//! PAdES baseline signatures through the `emeterai` CLI, checked with pyHanko and poppler's
//! `pdfsig`: B-B without a timestamp authority (and still byte-for-byte deterministic), B-T with a
//! real local authority (certomancer's `animate`, `tests/scripts/local_tsa.py`), the issuer's chain
//! carried in the signature, and an unreachable authority failing cleanly.
//!
//! Tools from `scripts/install-pdf-tools.sh` (pyHanko, certomancer in `.local/venv`, pdfsig).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SERIAL: &str = "0123456789ABCDEFGHIJKL";
const AT: &str = "2026-11-28T10:00:00Z";
const DOCUMENT: &str = "ver1.5-a4-acroform-libreoffice.pdf";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests crate sits in the repo").to_path_buf()
}

fn venv_python() -> PathBuf {
    let python = repo_root().join(".local/venv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import pyhanko, certomancer, werkzeug"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ready, "pyHanko and certomancer are missing from .local/venv: run scripts/install-pdf-tools.sh (make test does)");
    python
}

fn pdfsig() -> PathBuf {
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("pdfsig"))
        .find(|p| p.is_file());
    found.expect("pdfsig is missing: run scripts/install-pdf-tools.sh (make test does)")
}

struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(label: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("emeterai-pades-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch { dir }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// certomancer's `animate` serving a timestamp authority, with the PKI it made; stopped (by its
/// own pid) when dropped.
struct LocalTsa {
    child: Child,
    url: String,
    work: PathBuf,
}

impl LocalTsa {
    fn start(scratch: &Scratch) -> LocalTsa {
        let port = free_port();
        let work = scratch.path("pki");
        let child = Command::new(venv_python())
            .arg(repo_root().join("tests/scripts/local_tsa.py"))
            .arg(&work)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("local TSA starts");
        let mut tsa = LocalTsa { child, url: format!("http://127.0.0.1:{port}/emeterai-test/tsa/tsa"), work };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = tsa.child.try_wait() {
                panic!("the local TSA exited: {status}");
            }
            assert!(Instant::now() < deadline, "the local TSA did not listen within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        tsa
    }
    fn file(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }
}

impl Drop for LocalTsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on at the moment (bound by us, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn emeterai(scratch: &Scratch, args: &[&str], env: &[(&str, &Path)], tsa_url: Option<&str>) -> Output {
    let mut command = Command::new(emeterai_tests::cli_binary());
    command
        .args(args)
        .env("EMETERAI_DATA_DIR", scratch.path("data"))
        .env_remove("EMETERAI_ISSUER_KEY_FILE")
        .env_remove("EMETERAI_ISSUER_CERT_FILE")
        .env_remove("EMETERAI_TSA_URL")
        .current_dir(&scratch.dir);
    for (key, value) in env {
        command.env(key, value);
    }
    if let Some(url) = tsa_url {
        command.env("EMETERAI_TSA_URL", url);
    }
    command.output().expect("emeterai runs")
}

fn stamp(scratch: &Scratch, output: &str, env: &[(&str, &Path)], tsa_url: Option<&str>) -> Output {
    let input = repo_root().join("tests/fixtures/pdf").join(DOCUMENT);
    let output = scratch.path(output);
    let args = ["stamp", input.to_str().expect("utf-8"), "--output", output.to_str().expect("utf-8"), "--serial", SERIAL, "--at", AT];
    emeterai(scratch, &args, env, tsa_url)
}

/// pyHanko's view of the e-Meterai signature (the last one).
fn pyhanko_view(pdf: &Path, trust: Option<&Path>) -> serde_json::Value {
    let mut command = Command::new(venv_python());
    command.arg(repo_root().join("tests/scripts/pdf_signatures.py")).arg(pdf);
    if let Some(trust) = trust {
        command.arg(trust);
    }
    let out = command.output().expect("python runs");
    assert!(out.status.success(), "pdf_signatures.py: {}", String::from_utf8_lossy(&out.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let signatures = parsed["signatures"].as_array().cloned().unwrap_or_default();
    let ours = signatures.into_iter().find(|s| s["reason"].as_str().is_some_and(|r| r.contains(SERIAL)));
    ours.expect("pyHanko finds the e-Meterai")
}

fn pdfsig_says_every_signature_is_valid(pdf: &Path) {
    let out = Command::new(pdfsig()).arg(pdf).output().expect("pdfsig runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let signatures = text.matches("Signature Validation:").count();
    let valid = text.matches("Signature is Valid").count();
    assert!(signatures > 0 && valid == signatures, "pdfsig: {text}");
}

fn verify_json(scratch: &Scratch, pdf: &Path) -> serde_json::Value {
    let out = emeterai(scratch, &["verify", pdf.to_str().expect("utf-8"), "--json"], &[], None);
    assert_eq!(out.status.code(), Some(0), "verify: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    json["stamps"][0].clone()
}

#[test]
fn without_an_authority_the_stamp_is_pades_b_b_and_deterministic() {
    let scratch = Scratch::new("bb");
    assert_eq!(stamp(&scratch, "one.pdf", &[], None).status.code(), Some(0));
    assert_eq!(stamp(&scratch, "two.pdf", &[], None).status.code(), Some(0));
    let one = std::fs::read(scratch.path("one.pdf")).expect("output");
    assert_eq!(one, std::fs::read(scratch.path("two.pdf")).expect("output"), "same input, serial, placement, time: same bytes");

    let view = pyhanko_view(&scratch.path("one.pdf"), None);
    assert_eq!(view["sub_filter"], "/ETSI.CAdES.detached", "{view}");
    assert_eq!(view["pades_level"], "B-B", "{view}");
    assert!(view.get("timestamp").is_none(), "{view}");
    pdfsig_says_every_signature_is_valid(&scratch.path("one.pdf"));

    let ours = verify_json(&scratch, &scratch.path("one.pdf"));
    assert_eq!(ours["level"], "B-B", "{ours}");
    assert!(ours["timestamp"].is_null(), "{ours}");
}

#[test]
fn with_an_authority_the_stamp_is_pades_b_t_and_carries_the_issuer_chain() {
    let scratch = Scratch::new("bt");
    let tsa = LocalTsa::start(&scratch);
    // The issuer certified by the test PKI's root, its PEM holding the issuer and the root.
    let key = tsa.file("issuer-key.pem");
    let chain = tsa.file("issuer-chain.pem");
    let issuer_env = [("EMETERAI_ISSUER_KEY_FILE", key.as_path()), ("EMETERAI_ISSUER_CERT_FILE", chain.as_path())];
    let before = chrono::Utc::now();
    let out = stamp(&scratch, "stamped.pdf", &issuer_env, Some(&tsa.url));
    assert_eq!(out.status.code(), Some(0), "stamp: {}", String::from_utf8_lossy(&out.stderr));
    let stamped = scratch.path("stamped.pdf");

    // Trusting only the root: the path to the issuer is built from the certificates the
    // signature carries, and the timestamp's authority is certified by the same root.
    let view = pyhanko_view(&stamped, Some(&tsa.file("root.pem")));
    assert_eq!(view["pades_level"], "B-T", "{view}");
    assert_eq!(view["trusted"], true, "the chain travels in the signature: {view}");
    let timestamp = &view["timestamp"];
    assert_eq!(timestamp["intact"], true, "{view}");
    assert_eq!(timestamp["valid"], true, "{view}");
    assert_eq!(timestamp["trusted"], true, "{view}");
    pdfsig_says_every_signature_is_valid(&stamped);

    let ours = verify_json(&scratch, &stamped);
    assert_eq!(ours["signature_valid"], true, "{ours}");
    assert_eq!(ours["level"], "B-T", "{ours}");
    assert_eq!(ours["timestamp"]["valid"], true, "{ours}");
    assert_eq!(ours["timestamp"]["authority"], "e-Meterai Test TSA", "{ours}");
    let time: chrono::DateTime<chrono::Utc> =
        ours["timestamp"]["time"].as_str().and_then(|t| t.parse().ok()).expect("timestamp time");
    assert!(time >= before - chrono::Duration::seconds(2) && time <= chrono::Utc::now() + chrono::Duration::seconds(2), "{time}");
    let line = emeterai(&scratch, &["verify", stamped.to_str().expect("utf-8")], &[], None);
    let line = String::from_utf8_lossy(&line.stdout);
    assert!(line.contains("PAdES B-T") && line.contains("by e-Meterai Test TSA (valid)"), "{line}");
}

#[test]
fn an_unreachable_authority_fails_the_run_and_writes_nothing() {
    let scratch = Scratch::new("down");
    let url = format!("http://127.0.0.1:{}/tsa", free_port());
    let out = stamp(&scratch, "stamped.pdf", &[], Some(&url));
    assert_eq!(out.status.code(), Some(1), "a failure of ours, not a rejection of the document");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timestamp authority"), "{stderr}");
    assert!(!scratch.path("stamped.pdf").exists(), "no half-stamped file");
    let leftovers: Vec<_> = std::fs::read_dir(&scratch.dir).expect("dir").flatten().filter(|e| e.file_name().to_string_lossy().contains("stamped")).collect();
    assert!(leftovers.is_empty(), "no temporary file left: {leftovers:?}");
}
