#!/usr/bin/env bash
# Installs what the browser tests drive: Debian's Chromium (apt; never a browser downloaded by a
# test tool) and Playwright for Python with pytest, pinned, into .local/venv. Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PLAYWRIGHT_VERSION="1.64.1" # its driver matches Chromium 156
PYTEST_VERSION="8.4.2"

if ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian's chromium (apt)"
    sudo_cmd=()
    [[ "$(id -u)" -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update >&2
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends chromium >&2
fi

pip_pinned "$EMETERAI_LOCAL/venv" "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"
