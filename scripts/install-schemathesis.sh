#!/usr/bin/env bash
# Installs schemathesis (pinned) into its own virtualenv, .local/schemathesis-venv: the contract
# fuzzer `make test` runs against the local stack (tests/contract/run.sh). Its own venv keeps its
# pins (hypothesis, pytest plugins) from meeting the browser tests' pytest. Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCHEMATHESIS_VERSION="4.32.5"
venv="$EMETERAI_LOCAL/schemathesis-venv"

if [[ ! -x "$venv/bin/pip" ]]; then
    python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
if ! "$venv/bin/python" - "$SCHEMATHESIS_VERSION" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if version("schemathesis") == sys.argv[1] else 1)
PY
    log "installing schemathesis $SCHEMATHESIS_VERSION into .local/schemathesis-venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
