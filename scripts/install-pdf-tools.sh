#!/usr/bin/env bash
# Installs the independent PDF checkers used by the stamping tests:
# qpdf, poppler-utils (pdftoppm), zbar-tools (zbarimg) from Debian packages, and pyHanko into the
# project venv .local/venv. Idempotent: installs only what is missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo_root/.local/venv"

missing_debs=()
command -v qpdf >/dev/null 2>&1 || missing_debs+=(qpdf)
command -v pdftoppm >/dev/null 2>&1 || missing_debs+=(poppler-utils)
command -v zbarimg >/dev/null 2>&1 || missing_debs+=(zbar-tools)

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
if ! "$venv/bin/python" -c "import pyhanko, pyhanko_certvalidator, qrcode" >/dev/null 2>&1; then
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "pyHanko[image-support,qr]>=0.25" "pyhanko-certvalidator"
fi

echo "pdf tools ready: $(command -v qpdf) $(command -v pdftoppm) $(command -v zbarimg) $venv/bin/python (pyHanko)"
