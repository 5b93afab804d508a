#!/usr/bin/env bash
# run.sh: schemathesis against a running local stack (EMETERAI_API_URL), with every check and the
# stateful phase through the document's links; `make test` runs it inside scripts/with-local-stack.sh.
# Two accounts (tokens from the local gateway's /dev/token) are the peers of the object-level
# authorization check. Settings and every exclusion, each with its reason: schemathesis.toml here.
# Reports: .local/test-output/contract (JUnit and the NDJSON event log). Arguments go to
# `schemathesis run` (e.g. `--seed 7` for another seed than schemathesis.toml's).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
[[ -n "${EMETERAI_API_URL:-}" ]] || die "EMETERAI_API_URL is not set (run me through scripts/with-local-stack.sh)"
st="$EMETERAI_LOCAL/schemathesis-venv/bin/schemathesis"
[[ -x "$st" ]] || die "schemathesis is not installed (scripts/install-schemathesis.sh)"

out="$EMETERAI_LOCAL/test-output/contract"
rm -rf "$out"
mkdir -p "$out"

# Fresh accounts per run: the stack's data folder is thrown away after the run anyway, but a
# reused stack (make run) must not see one account's leftovers judged as the other's.
run_id="$(date -u +%Y%m%d%H%M%S)-$$"
token() {
    curl --silent --show-error --fail "$EMETERAI_API_URL/dev/token?sub=$1&ttl_seconds=3600"
}
owner_token="$(token "contract-owner-$run_id")"
peer_token="$(token "contract-peer-$run_id")"
# A Web Fuzzing Commons auth file: one entry per account, the bearer token as a fixed header.
# Tokens live an hour and are written only under .local/ (git-ignored); they sign nothing but the
# throw-away local stack's requests.
python3 - "$out/auth.json" "$owner_token" "$peer_token" <<'PY'
import json, sys
path, owner, peer = sys.argv[1:]
users = [("owner", owner), ("peer", peer)]
doc = {"auth": [{"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
                for name, token in users]}
with open(path, "w") as f:
    json.dump(doc, f)
PY

# The functions' environment of the stack under test (scripts/run-local.sh writes it): hooks.py
# signs positive webhook notifications with its Midtrans server key, as Midtrans would.
functions_env="${EMETERAI_STACK_DIR:-$EMETERAI_LOCAL/run/stack}/functions.env"
[[ -r "$functions_env" ]] || die "no $functions_env: is the local stack of this checkout running?"

started=$SECONDS
status=0
# From the output folder, without bytecode: nothing is written into the checkout, whose file
# changes would make `cargo lambda watch` restart the functions mid-run (504s).
cd "$out"
EMETERAI_CONTRACT_AUTH="$out/auth.json" EMETERAI_CONTRACT_FUNCTIONS_ENV="$functions_env" SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$EMETERAI_ROOT/tests/contract" \
    PYTHONDONTWRITEBYTECODE=1 "$st" --config-file "$EMETERAI_ROOT/tests/contract/schemathesis.toml" run \
    --url "$EMETERAI_API_URL" \
    --report junit,ndjson --report-dir "$out" \
    "$@" "$EMETERAI_API_URL/v1/openapi.json" || status=$?
log "schemathesis took $((SECONDS - started)) s (exit $status; reports in $out)"
exit "$status"
