#!/usr/bin/env bash
# Installs the template's linters, pinned, each in its own venv under .local/ (their
# dependency pins clash with the test tools'): cfn-lint with the serverless rules, and the
# AWS SAM CLI for `sam validate --lint`. Idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CFN_LINT_VERSION="1.58.0"
CFN_LINT_SERVERLESS_VERSION="0.3.6"
SAM_CLI_VERSION="1.170.0"

install_into() {
    local venv="$1" check="$2"; shift 2
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    if ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        log "installing $* into $venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    fi
}

install_into "$EMETERAI_LOCAL/lint-venv" \
    "import importlib.metadata as m; assert m.version('cfn-lint') == '$CFN_LINT_VERSION' and m.version('cfn-lint-serverless') == '$CFN_LINT_SERVERLESS_VERSION'" \
    "cfn-lint==$CFN_LINT_VERSION" "cfn-lint-serverless==$CFN_LINT_SERVERLESS_VERSION"
install_into "$EMETERAI_LOCAL/sam-venv" \
    "import importlib.metadata as m; assert m.version('aws-sam-cli') == '$SAM_CLI_VERSION'" \
    "aws-sam-cli==$SAM_CLI_VERSION"
