#!/usr/bin/env bash
# with-local-stack.sh CMD [ARGS...]
# Runs CMD against a throw-away local stack (the same one `make run` starts, on free ports, with
# its own empty data, schedules off), then stops it. EMETERAI_API_URL tells CMD where the API is.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $# -ge 1 ]] || die "usage: $0 CMD [ARGS...]"

mkdir -p "$EMETERAI_LOCAL/run"
dir="$(mktemp -d "$EMETERAI_LOCAL/run/local-stack.XXXXXX")"
status=0
EMETERAI_STACK_DIR="$dir/run" EMETERAI_DATA_DIR="$dir/data" EMETERAI_PORT=0 EMETERAI_MIDTRANS_SIM_PORT=0 \
    EMETERAI_SCHEDULES=off "$EMETERAI_ROOT/scripts/run-local.sh" "$@" || status=$?
if [[ $status -eq 0 ]]; then
    rm -rf "$dir"
else
    log "kept the logs of the failed run in $dir/run"
    rm -rf "$dir/data"
fi
exit "$status"
