#!/usr/bin/env bash
# Installs the load drill's tool (issue 11): Locust, pinned, into the project's Python env
# (.local/venv). Idempotent: a matching version is left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOCUST_VERSION="2.47.0"

if [[ ! -x "$EMETERAI_LOCAL/venv/bin/pip" ]]; then
    python3 -m venv "$EMETERAI_LOCAL/venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
if ! "$EMETERAI_LOCAL/venv/bin/python" - "$LOCUST_VERSION" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if version("locust") == sys.argv[1] else 1)
PY
    log "installing Locust $LOCUST_VERSION into .local/venv"
    "$EMETERAI_LOCAL/venv/bin/pip" install --quiet --disable-pip-version-check \
        "locust==$LOCUST_VERSION" >&2
fi
