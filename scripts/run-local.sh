#!/usr/bin/env bash
# The whole system on 127.0.0.1 (issue 3): DynamoDB Local, SeaweedFS, the functions under
# `cargo lambda watch`, and the local gateway with the Midtrans simulator. Ctrl-C stops all of it.
# Data stays in .local/data between runs (`make clean-local-data` forgets it).
#
# Settings (environment): EMETERAI_PORT (gateway, 3000), EMETERAI_MIDTRANS_SIM_PORT (3001),
# EMETERAI_DYNAMODB_PORT, EMETERAI_S3_PORT, EMETERAI_LAMBDA_PORT (default: free ports),
# EMETERAI_LAMBDA_CONCURRENCY (instances per function, 2), EMETERAI_LOCAL_JWT_SECRET,
# EMETERAI_MIDTRANS_SERVER_KEY, EMETERAI_FUNCTIONS_DYNAMODB_URL (the functions' DynamoDB endpoint
# instead of DynamoDB Local's own, for drill/dynamodb_counter.py), and any variable the functions
# read (EMETERAI_UNIT_PRICE=...).
# EMETERAI_LAMBDA_RUNNER=direct runs the built function binaries as instances of their own
# (scripts/function-instances.sh; a killed one is started again) behind `cargo lambda watch
# --only-lambda-apis`, instead of one `cargo run` and file watcher per instance (default: watch);
# EMETERAI_LAMBDA_WATCH_FLAGS adds flags to cargo lambda watch; EMETERAI_DYNAMODB_IN_MEMORY=1 keeps
# the table in memory only; EMETERAI_DYNAMODB_JVM_OPTS replaces DynamoDB Local's JVM flags;
# EMETERAI_BIN_DIR runs the gateway and (direct) functions from binaries built elsewhere.
# Port 0 means a free port. EMETERAI_STACK_DIR / EMETERAI_DATA_DIR move the run state and data.
# EMETERAI_RELEASE=1 builds and runs the gateway and the functions in release mode (what the load
# drill measures; the first release build takes a long while).
#
# With arguments, `run-local.sh CMD...` runs CMD once the stack is ready (EMETERAI_API_URL and
# EMETERAI_MIDTRANS_URL exported), stops the stack and exits with CMD's status; see
# scripts/with-local-stack.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$EMETERAI_ROOT"

command_mode=false
[[ $# -gt 0 ]] && command_mode=true
gateway_port="${EMETERAI_PORT:-3000}"
sim_port="${EMETERAI_MIDTRANS_SIM_PORT:-3001}"
[[ "$gateway_port" == 0 ]] && gateway_port="$(free_port)"
[[ "$sim_port" == 0 ]] && sim_port="$(free_port)"
concurrency="${EMETERAI_LAMBDA_CONCURRENCY:-2}"
state="${EMETERAI_STACK_DIR:-$EMETERAI_LOCAL/run/stack}"
data="${EMETERAI_DATA_DIR:-$EMETERAI_LOCAL/data}"
target_dir="${CARGO_TARGET_DIR:-$EMETERAI_ROOT/target}"
started_at=$SECONDS

if [[ -t 2 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '%s[%3ss] %s%s\n' "$bold" "$((SECONDS - started_at))" "$*" "$plain" >&2; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ -f "$state/gateway.pid" ]] && kill -0 "$(cat "$state/gateway.pid")" 2>/dev/null; then
    die "a local stack of this checkout is already running (gateway pid $(cat "$state/gateway.pid")); stop it with Ctrl-C where it runs, or make stop"
fi
for port in "$gateway_port" "$sim_port"; do
    port_in_use "$port" && die "port $port is in use (set EMETERAI_PORT / EMETERAI_MIDTRANS_SIM_PORT to choose others)"
done
rm -rf "$state"
mkdir -p "$state" "$data"
# Absolute, since the functions and services run from other working directories.
state="$(cd "$state" && pwd)"
data="$(cd "$data" && pwd)"

# Everything started below is stopped by PID on exit, newest first.
stop_all() {
    local status=$?
    trap - EXIT
    # Stopping must finish even if the terminal's reader is gone (a closed pipe) or Ctrl-C repeats.
    trap '' INT TERM HUP PIPE
    set +e
    echo >&2
    step "stopping"
    stop_stack "$state"
    if $command_mode; then step "stopped"; else step "stopped (data kept in $data)"; fi
    exit "$status"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The services keep their ports from one run to the next (URLs handed out stay valid), unless
# the port was taken meanwhile; the first run picks free ones.
ports_file="$data/ports"
remembered_port() {
    local name="$1" port=""
    [[ -f "$ports_file" ]] && port="$(sed -n "s/^$name=\([0-9]*\)$/\1/p" "$ports_file")"
    if [[ -z "$port" ]] || port_in_use "$port"; then
        port="$(free_port)"
    fi
    printf '%s\n' "$port"
}

step "installing what is missing into .local/"
scripts/install.sh --all

profile=debug
profile_flag=()
if [[ "${EMETERAI_RELEASE:-0}" == 1 ]]; then
    profile=release
    profile_flag=(--release)
fi
bin_dir="$target_dir/$profile"
if [[ -n "${EMETERAI_BIN_DIR:-}" ]]; then
    # Binaries built elsewhere (another checkout's release build, an artifact): nothing is built,
    # and the functions can only run directly (cargo lambda watch would build them).
    [[ "${EMETERAI_LAMBDA_RUNNER:-watch}" == direct ]] || die "EMETERAI_BIN_DIR needs EMETERAI_LAMBDA_RUNNER=direct"
    bin_dir="$(cd "$EMETERAI_BIN_DIR" && pwd)"
    step "using the binaries in $bin_dir (EMETERAI_BIN_DIR; nothing built)"
else
    step "building the functions and the gateway (cargo build ${profile_flag[*]} --workspace --bins)"
    cargo build "${profile_flag[@]}" --workspace --bins
fi
gateway_bin="$bin_dir/emeterai-local"
[[ -x "$gateway_bin" ]] || die "$gateway_bin was not built"

dynamodb_port="${EMETERAI_DYNAMODB_PORT:-$(remembered_port dynamodb)}"
s3_port="${EMETERAI_S3_PORT:-$(remembered_port s3)}"
lambda_port="${EMETERAI_LAMBDA_PORT:-$(remembered_port lambda)}"
# Free ports are chosen one at a time; the kernel could hand out the same one twice.
while [[ "$s3_port" == "$dynamodb_port" ]]; do s3_port="$(free_port)"; done
while [[ "$lambda_port" == "$dynamodb_port" || "$lambda_port" == "$s3_port" ]]; do lambda_port="$(free_port)"; done
printf 'dynamodb=%s\ns3=%s\nlambda=%s\n' "$dynamodb_port" "$s3_port" "$lambda_port" >"$ports_file"

if [[ "${EMETERAI_DYNAMODB_IN_MEMORY:-0}" == 1 ]]; then
    # A throw-away stack's table need not outlive it (the drill's measurements compare both).
    step "starting DynamoDB Local on 127.0.0.1:$dynamodb_port (in memory: gone when it stops)"
    start_dynamodb "$state" "$dynamodb_port"
else
    step "starting DynamoDB Local on 127.0.0.1:$dynamodb_port (data in $data/dynamodb)"
    start_dynamodb "$state" "$dynamodb_port" "$data/dynamodb"
fi

notification_token="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
step "starting SeaweedFS S3 on 127.0.0.1:$s3_port (data in $data/s3)"
start_seaweedfs "$state" "$s3_port" "$data/s3" \
    "http://127.0.0.1:$gateway_port/dev/s3-notifications" "$notification_token"

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$dynamodb_port"
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$s3_port"
export AWS_ACCESS_KEY_ID="$EMETERAI_TEST_ACCESS_KEY"
export AWS_SECRET_ACCESS_KEY="$EMETERAI_TEST_SECRET_KEY"
export AWS_REGION="$EMETERAI_TEST_REGION"
export AWS_DEFAULT_REGION="$EMETERAI_TEST_REGION"
export EMETERAI_MIDTRANS_SIM_PORT="$sim_port"
export EMETERAI_PORT="$gateway_port"

# Local values of settings that point at AWS-only things in template.yaml (they win over it):
# the issuer key and certificate (generated once under the data folder), the QR codes' base URL.
export EMETERAI_ISSUER_DIR="${EMETERAI_ISSUER_DIR:-$data/issuer}"
export EMETERAI_VERIFY_BASE_URL="${EMETERAI_VERIFY_BASE_URL:-http://127.0.0.1:$gateway_port}"

# The functions' environment comes from template.yaml (Globals and each function's variables).
{
    "$gateway_bin" function-env
    for name in AWS_ENDPOINT_URL_S3 AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION; do
        printf '%s=%s\n' "$name" "${!name}"
    done
    # EMETERAI_FUNCTIONS_DYNAMODB_URL puts something between the functions and DynamoDB Local
    # (drill/dynamodb_counter.py, which counts their requests for docs/capacity.md).
    printf 'AWS_ENDPOINT_URL_DYNAMODB=%s\n' "${EMETERAI_FUNCTIONS_DYNAMODB_URL:-$AWS_ENDPOINT_URL_DYNAMODB}"
    # Local data of the functions themselves (the issuer key the stamp function generates once).
    printf 'EMETERAI_DATA_DIR=%s\n' "$data"
} >"$state/functions.env"

# Every function instance runs under `emeterai-local instance`, as Lambda would run it: under the
# function's MemorySize and Timeout from template.yaml, replaced by a new instance when it dies
# (local/src/instance.rs). cargo lambda watch starts instances with `cargo run`, so it is cargo's
# runner for this machine's target; scripts/function-instances.sh puts it before each binary.
# Only for those two commands: a CMD run below (cargo test) must run its own binaries plainly.
host_triple="$(rustc -vV | sed -n 's/^host: //p')"
instance_runner=("CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$host_triple")_RUNNER=$gateway_bin instance"
    "EMETERAI_INSTANCE_RUNNER=$gateway_bin instance" "EMETERAI_TEMPLATE=$EMETERAI_ROOT/template.yaml")

# EMETERAI_LAMBDA_WATCH_FLAGS adds flags to cargo lambda watch (the drill's measurements try some).
read -r -a watch_flags <<<"${EMETERAI_LAMBDA_WATCH_FLAGS:-}"
runner="${EMETERAI_LAMBDA_RUNNER:-watch}"
emulator_concurrency="$concurrency"
case "$runner" in
watch)
    step "starting the functions under cargo lambda watch on 127.0.0.1:$lambda_port"
    ;;
direct)
    # The emulator only routes invocations; the built binaries run as instances of their own
    # (scripts/function-instances.sh), with no `cargo run` or file watcher per instance.
    watch_flags+=(--only-lambda-apis --ignore-changes)
    # Above 1, the emulator's instance monitor starts `cargo run` instances of its own whenever
    # invocations queue up, --only-lambda-apis or not (seen in a drill): ours are the instances.
    emulator_concurrency=1
    step "starting the Lambda emulator on 127.0.0.1:$lambda_port and $concurrency instance(s) of each function"
    ;;
*) die "EMETERAI_LAMBDA_RUNNER must be watch or direct, not $runner" ;;
esac
# setsid: a terminal's Ctrl-C reaches this script, which stops everything in order.
env "${instance_runner[@]}" PATH="$EMETERAI_LOCAL/venv/bin:$PATH" setsid cargo lambda watch "${profile_flag[@]}" "${watch_flags[@]}" \
    --invoke-address 127.0.0.1 --invoke-port "$lambda_port" \
    --env-file "$state/functions.env" --concurrency "$emulator_concurrency" \
    </dev/null >"$state/lambda.log" 2>&1 &
echo $! >"$state/lambda.pid"
if [[ "$runner" == watch ]]; then
    wait_until 300 "$(cat "$state/lambda.pid")" "$state/lambda.log" "cargo lambda watch" \
        http_answers "http://127.0.0.1:$lambda_port/"
else
    # Not GET /: without functions of its own the emulator takes that for an invocation of a
    # default function and starts `cargo run` for it. An open port is enough.
    wait_until 300 "$(cat "$state/lambda.pid")" "$state/lambda.log" "the Lambda emulator" \
        port_in_use "$lambda_port"
fi
if [[ "$runner" == direct ]]; then
    # Copies: another build of this target folder (a shared release folder) must not swap the
    # binaries under a running stack.
    mkdir -p "$state/functions-bin"
    functions=()
    for manifest in functions/*/Cargo.toml; do
        functions+=("$(basename "$(dirname "$manifest")")")
        cp "$bin_dir/${functions[-1]}" "$state/functions-bin/"
    done
    env "${instance_runner[@]}" setsid scripts/function-instances.sh "$state/functions.env" "http://127.0.0.1:$lambda_port/.rt" \
        "$state/functions-bin" "$concurrency" "${functions[@]}" </dev/null >"$state/instances.log" 2>&1 &
    echo $! >"$state/instances.pid"
fi

step "starting the gateway on 127.0.0.1:$gateway_port (creates the table and bucket of template.yaml if absent)"
EMETERAI_LAMBDA_URL="http://127.0.0.1:$lambda_port" EMETERAI_S3_NOTIFICATION_TOKEN="$notification_token" \
    EMETERAI_MIDTRANS_SIM_STORE="$data/midtrans-sim.json" "$gateway_bin" gateway </dev/null >"$state/gateway.log" 2>&1 &
echo $! >"$state/gateway.pid"
wait_until 60 "$(cat "$state/gateway.pid")" "$state/gateway.log" "the gateway" \
    http_answers "http://127.0.0.1:$gateway_port/dev/routes"

step "waking the functions (first start of each)"
# cargo lambda watch compiles each function on its first start (minutes on a new machine, longer
# while another build holds the target folder), and the gateway answers 504 after the function's
# timeout meanwhile: ask again until it answers, for up to 15 minutes.
wake_deadline=$((SECONDS + 900))
until curl -sf --max-time 300 "http://127.0.0.1:$gateway_port/healthz" >/dev/null; do
    if ((SECONDS >= wake_deadline)); then
        log "GET /healthz failed for 15 minutes; last lines of $state/lambda.log:"
        tail -n 30 "$state/lambda.log" >&2
        exit 1
    fi
    sleep 3
done

api="http://127.0.0.1:$gateway_port"
if [[ $# -gt 0 ]]; then
    step "ready; running: $*"
    export EMETERAI_API_URL="$api" EMETERAI_MIDTRANS_URL="http://127.0.0.1:$sim_port"
    status=0
    "$@" || status=$?
    exit "$status"
fi
cat >&2 <<TXT

$(step "ready")
  API (gateway)       $api          routes: $api/dev/routes
  Midtrans simulator  http://127.0.0.1:$sim_port
  DynamoDB Local      $AWS_ENDPOINT_URL_DYNAMODB   table $(grep '^EMETERAI_TABLE=' "$state/functions.env" | cut -d= -f2)
  S3 (SeaweedFS)      $AWS_ENDPOINT_URL_S3   bucket $(grep '^EMETERAI_BUCKET=' "$state/functions.env" | cut -d= -f2)
  credentials         AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY AWS_REGION=$AWS_REGION
  logs                .local/run/stack/{gateway,lambda,dynamodb,seaweedfs}.log

Try it (another terminal):
  TOKEN=\$(curl -s '$api/dev/token?sub=alice')
  curl -s -X POST $api/v1/checkouts -H "Authorization: Bearer \$TOKEN" \\
       -H 'Idempotency-Key: first-try' -H 'Content-Type: application/json' -d '{"quantity": 3}'
  # pay: use the order_id from the answer (or open its payment.redirect_url in a browser)
  curl -s -X POST $api/dev/pay/ORDER_ID -d '{"transaction_status": "settlement", "deliveries": 2}'
  curl -s $api/v1/quota -H "Authorization: Bearer \$TOKEN"
  # stamp a PDF: ask for an upload URL, PUT the file, then poll the document
  curl -s -X POST $api/v1/documents -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"file_name": "surat.pdf", "placement": {"page": 1, "x_mm": 120, "y_mm": 220}}'
  curl -s -X PUT -H 'content-type: application/pdf' --data-binary @surat.pdf 'UPLOAD_URL'
  curl -s $api/v1/documents/DOCUMENT_ID -H "Authorization: Bearer \$TOKEN"   # then curl -o stamped.pdf 'DOWNLOAD_URL'
  curl -s -X POST $api/dev/sweep -d '{"now": "2030-01-01T00:00:00Z"}'           # run the scheduled sweep once

Ctrl-C stops everything.
TXT

# Until Ctrl-C, or until one of the parts dies.
while true; do
    for part in gateway lambda instances seaweedfs dynamodb; do
        [[ -f "$state/$part.pid" ]] || continue
        # The drill (drill/faults.py) restarts a part on purpose and says so with this marker.
        [[ -e "$state/$part.restarting" ]] && continue
        if ! kill -0 "$(cat "$state/$part.pid")" 2>/dev/null; then
            log "$part stopped unexpectedly; last lines of $state/$part.log:"
            tail -n 30 "$state/$part.log" >&2 || true
            exit 1
        fi
    done
    sleep 1
done
