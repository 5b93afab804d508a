#!/usr/bin/env bash
# Installs the load drill's tool (issue 11): Locust, pinned, into the project's Python env
# (.local/venv). Idempotent: a matching version is left alone.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOCUST_VERSION="2.47.0"

pip_pinned "$EMETERAI_LOCAL/venv" "locust==$LOCUST_VERSION"
