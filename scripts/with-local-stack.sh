#!/usr/bin/env bash
# with-local-stack.sh CMD [ARGS...]
# Runs CMD against a throw-away local stack (the same one `make run` starts, on free ports, with
# its own empty data, schedules off), then stops it. EMETERAI_API_URL tells CMD where the API is.
# Throw-away stacks keep their table in memory and run the built function binaries directly
# behind the Lambda emulator (run-local.sh, EMETERAI_LAMBDA_RUNNER=direct): half the CPU per
# request of `cargo run` instances under file watchers, and a killed instance is started again
# (BENCHMARKS.md, "Deadline drill"). Set either variable to choose otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $# -ge 1 ]] || die "usage: $0 CMD [ARGS...]"

mkdir -p "$EMETERAI_LOCAL/run"
dir="$(mktemp -d "$EMETERAI_LOCAL/run/local-stack.XXXXXX")"
status=0
EMETERAI_STACK_DIR="$dir/run" EMETERAI_DATA_DIR="$dir/data" EMETERAI_PORT=0 EMETERAI_MIDTRANS_SIM_PORT=0 \
    EMETERAI_SCHEDULES=off EMETERAI_LAMBDA_RUNNER="${EMETERAI_LAMBDA_RUNNER:-direct}" \
    EMETERAI_DYNAMODB_IN_MEMORY="${EMETERAI_DYNAMODB_IN_MEMORY:-1}" "$EMETERAI_ROOT/scripts/run-local.sh" "$@" || status=$?
if [[ $status -eq 0 ]]; then
    rm -rf "$dir"
else
    log "kept the logs of the failed run in $dir/run"
    rm -rf "$dir/data"
fi
exit "$status"
