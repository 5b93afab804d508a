#!/usr/bin/env bash
# Installs the web app's third-party files from npm (pinned), never committed:
#   pdf.js (pdfjs-dist, legacy build for older phone browsers) copied into web/vendor/pdfjs/
#   (git-ignored), which the app loads only when a PDF is chosen; axe-core for the browser tests.
# Idempotent: does nothing when the pinned versions are in place.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PDFJS_VERSION="6.5.438"
AXE_VERSION="4.14.1"
npm_dir="$EMETERAI_LOCAL/web-npm"
vendor="$EMETERAI_ROOT/web/vendor/pdfjs"
stamp="$vendor/VERSION"

installed() { [[ -f "$npm_dir/node_modules/$1/package.json" ]] && grep -q "\"version\": \"$2\"" "$npm_dir/node_modules/$1/package.json"; }

if ! installed pdfjs-dist "$PDFJS_VERSION" || ! installed axe-core "$AXE_VERSION"; then
    command -v npm >/dev/null 2>&1 || die "npm is required (it installs pdf.js and axe-core)"
    log "installing npm pdfjs-dist@$PDFJS_VERSION and axe-core@$AXE_VERSION into .local/web-npm"
    mkdir -p "$npm_dir"
    npm install --silent --no-audit --no-fund --omit=optional --ignore-scripts --prefix "$npm_dir" \
        "pdfjs-dist@$PDFJS_VERSION" "axe-core@$AXE_VERSION" >&2
fi

if [[ "$(cat "$stamp" 2>/dev/null)" != "$PDFJS_VERSION" ]]; then
    log "copying pdf.js $PDFJS_VERSION into web/vendor/pdfjs"
    src="$npm_dir/node_modules/pdfjs-dist"
    rm -rf "$vendor"
    mkdir -p "$vendor"
    cp "$src/legacy/build/pdf.min.mjs" "$src/legacy/build/pdf.worker.min.mjs" "$src/LICENSE" "$vendor/"
    cp -r "$src/standard_fonts" "$src/wasm" "$vendor/"
    printf '%s\n' "$PDFJS_VERSION" >"$stamp"
fi
