#!/usr/bin/env bash
# Starts or stops a throw-away DynamoDB Local (in memory) and SeaweedFS (temporary data) for tests.
#   scripts/test-services.sh start STATE_DIR   starts both, writes STATE_DIR/env (export lines)
#   scripts/test-services.sh stop STATE_DIR    stops both by the PIDs in STATE_DIR, removes it
# Each STATE_DIR is its own pair of services on its own free ports, so runs can overlap.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { die "usage: $0 start|stop STATE_DIR"; }
[[ $# -eq 2 ]] || usage
action="$1" state="$2"

case "$action" in
start)
    mkdir -p "$state"
    state="$(cd "$state" && pwd)"
    read -r dynamodb_port s3_port < <(free_ports 2 | paste -s -d' ')
    start_dynamodb "$state" "$dynamodb_port"
    start_seaweedfs "$state" "$s3_port" "$state/s3-data"
    cat >"$state/env" <<ENV
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$dynamodb_port
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port
export AWS_ACCESS_KEY_ID=$EMETERAI_TEST_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$EMETERAI_TEST_SECRET_KEY
export AWS_REGION=$EMETERAI_TEST_REGION
export AWS_DEFAULT_REGION=$EMETERAI_TEST_REGION
ENV
    ;;
stop)
    [[ -d "$state" ]] || exit 0
    # Both stop at once: each takes a few seconds to shut down.
    stop_pidfile "$state/seaweedfs.pid" &
    stop_pidfile "$state/dynamodb.pid" &
    wait
    rm -rf "$state"
    ;;
*) usage ;;
esac
