#!/usr/bin/env bash
# Stops a local stack of this checkout (`make run`) by the PIDs it recorded, for when its terminal
# is gone. Ctrl-C where `make run` runs does the same.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
state="${EMETERAI_STACK_DIR:-$EMETERAI_LOCAL/run/stack}"
[[ -d "$state" ]] || { log "no local stack recorded in $state"; exit 0; }
stop_stack "$state"
log "stopped the local stack recorded in $state"
