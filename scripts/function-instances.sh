#!/usr/bin/env bash
# function-instances.sh ENV_FILE RUNTIME_URL BIN_DIR CONCURRENCY FUNCTION...
#
# Runs CONCURRENCY instances of each FUNCTION (a built binary in BIN_DIR) against a Lambda runtime
# API, RUNTIME_URL/<function> (`cargo lambda watch --only-lambda-apis`, which then only routes
# invocations). run-local.sh uses it with EMETERAI_LAMBDA_RUNNER=direct: the emulator then starts
# no `cargo run` per instance and watches no files for them, which the drill measures
# (BENCHMARKS.md, "Deadline drill").
#
# An instance that exits or is killed is started again after half a second, as Lambda starts a
# new execution environment (the drill's faults kill instances). Environment: ENV_FILE's
# KEY=VALUE lines, then the variables the emulator gives its own instances. EMETERAI_INSTANCE_RUNNER
# (words) goes before each binary: run-local.sh sets `emeterai-local instance`, which applies the
# function's MemorySize and Timeout and replaces an instance that dies itself. Stop the whole
# process group (run-local.sh starts this under setsid).
set -euo pipefail
[[ $# -ge 5 ]] || { echo "usage: $0 ENV_FILE RUNTIME_URL BIN_DIR CONCURRENCY FUNCTION..." >&2; exit 2; }
env_file="$1" runtime_url="$2" bin_dir="$3" concurrency="$4"
shift 4

while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && export "${line?}"
done <"$env_file"
export AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=4096 AWS_LAMBDA_MAX_CONCURRENCY=1

for function in "$@"; do
    [[ -x "$bin_dir/$function" ]] || { echo "function-instances: $bin_dir/$function is not built" >&2; exit 1; }
done

read -r -a runner <<<"${EMETERAI_INSTANCE_RUNNER:-}"
for function in "$@"; do
    for ((i = 1; i <= concurrency; i++)); do
        (
            while true; do
                AWS_LAMBDA_RUNTIME_API="$runtime_url/$function" AWS_LAMBDA_FUNCTION_NAME="$function" \
                    "${runner[@]}" "$bin_dir/$function" </dev/null || true
                echo "function-instances: an instance of $function exited; starting another" >&2
                sleep 0.5
            done
        ) &
    done
done
wait
