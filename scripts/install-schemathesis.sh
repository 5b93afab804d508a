#!/usr/bin/env bash
# Installs schemathesis (pinned) into its own virtualenv, .local/schemathesis-venv: the contract
# fuzzer `make test` runs against the local stack (tests/contract/run.sh). Its own venv keeps its
# pins (hypothesis, pytest plugins) from meeting the browser tests' pytest. Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCHEMATHESIS_VERSION="4.32.5"
venv="$EMETERAI_LOCAL/schemathesis-venv"

pip_pinned "$venv" "schemathesis==$SCHEMATHESIS_VERSION"
