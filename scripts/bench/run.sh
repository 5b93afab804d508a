#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: builds release, makes the ~760 KB scanned A4, runs the Rust bench and
# pyHanko's visible QR signature on the same file.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
bash scripts/install-pdf-tools.sh >/dev/null
python="$repo_root/.local/venv/bin/python"
work="$repo_root/.local/bench"
mkdir -p "$work"
[ -f "$work/scan-760k.pdf" ] || "$python" scripts/bench/make_scan_pdf.py "$work/scan-760k.pdf" 760000
target_dir="${CARGO_TARGET_DIR:-$repo_root/target}"
# --workspace, never -p: -p resolves features anew and rebuilds the AWS SDK.
cargo build --release --quiet --workspace --bin emeterai
cargo bench --quiet --workspace --bench stamp -- "$work/scan-760k.pdf" "$target_dir/release/emeterai" "${RUNS:-50}"
EMETERAI_DATA_DIR="$work/data" "$target_dir/release/emeterai" stamp "$work/scan-760k.pdf" --output "$work/warm.pdf" \
    --serial 0123456789ABCDEFGHIJKL --at 2026-11-28T10:00:00Z >/dev/null
"$python" scripts/bench/pyhanko_qr_sign.py "$work/scan-760k.pdf" "$work/data/issuer/issuer-key.pem" "$work/data/issuer/issuer-cert.pem" 7
