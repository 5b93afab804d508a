#!/usr/bin/env bash
# with-test-services.sh CMD [ARGS...]
# Runs CMD with a fresh DynamoDB Local and SeaweedFS on free 127.0.0.1 ports, the AWS_* variables
# pointing at them, and stops both afterwards whatever happens. Exits with CMD's exit code.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 ]] || die "usage: $0 CMD [ARGS...]"

mkdir -p "$EMETERAI_LOCAL/run"
state="$(mktemp -d "$EMETERAI_LOCAL/run/test-services.XXXXXX")"
stop_services() { "$EMETERAI_ROOT/scripts/test-services.sh" stop "$state" || true; }
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

started=$SECONDS
"$EMETERAI_ROOT/scripts/test-services.sh" start "$state"
# shellcheck disable=SC1091
source "$state/env"
log "test services ready in $((SECONDS - started))s: DynamoDB $AWS_ENDPOINT_URL_DYNAMODB, S3 $AWS_ENDPOINT_URL_S3"

status=0
"$@" || status=$?
exit "$status"
