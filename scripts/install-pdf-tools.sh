#!/usr/bin/env bash
# Installs the independent PDF checkers and producers used by the stamping tests:
# qpdf, poppler-utils (pdftoppm, pdfsig), zbar-tools (zbarimg), ghostscript (gs), mupdf-tools
# (mutool) from Debian packages, and pyHanko, reportlab, img2pdf and certomancer (the local RFC 3161
# timestamp authority of the PAdES tests) (pinned) into the project venv .local/venv. Idempotent: installs only what is missing.
# Seen with Debian 12: qpdf 11.3.0, poppler-utils 22.12.0, ghostscript 10.0.0, mupdf-tools 1.21.1.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.local/venv"

missing_debs=()
command -v qpdf >/dev/null 2>&1 || missing_debs+=(qpdf)
command -v pdftoppm >/dev/null 2>&1 || missing_debs+=(poppler-utils)
command -v zbarimg >/dev/null 2>&1 || missing_debs+=(zbar-tools)
command -v pdfsig >/dev/null 2>&1 || missing_debs+=(poppler-utils)
command -v gs >/dev/null 2>&1 || missing_debs+=(ghostscript)
command -v mutool >/dev/null 2>&1 || missing_debs+=(mupdf-tools)

if ((${#missing_debs[@]} > 0)); then
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing_debs[@]}"
fi

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$repo_root/.local"
    python3 -m venv "$venv"
fi
# `python -m pip`, never the venv's pip script: a venv copied from another checkout keeps that
# checkout's interpreter in its scripts' first line and would install there.
if ! "$venv/bin/python" -c "import pyhanko, pyhanko_certvalidator, qrcode, reportlab, img2pdf, certomancer, werkzeug" >/dev/null 2>&1; then
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "pyHanko[image-support,qr]==0.38.0" "pyhanko-certvalidator==0.33.0" \
        "reportlab==5.1.0" "img2pdf==0.6.3" "certomancer[web-api]==0.16.0"
fi

echo "pdf tools ready: $(command -v qpdf) $(command -v pdftoppm) $(command -v pdfsig) $(command -v zbarimg) $(command -v gs) $(command -v mutool) $venv/bin/python (pyHanko, reportlab, img2pdf, certomancer)"
