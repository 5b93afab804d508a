#!/usr/bin/env python3
"""Cold start of each function binary: process start until it asks the Lambda Runtime API for its
first event (GET .../invocation/next), which is where Lambda's "Init Duration" ends.

    scripts/bench/cold_start.py TARGET_DIR [RUNS]     (TARGET_DIR: e.g. target/release)

The runtime API is a local HTTP listener that records the first request and never answers it.
Credentials and region come from the environment (static keys: no credential fetch, as the goal
asks), endpoints point at a port nothing listens on: init must not call AWS. Prints init time
(median, min, max over RUNS) and binary size per function.
"""

import http.server
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FUNCTIONS = ["checkout", "payment-webhook", "stamp", "refund"]


class FirstNext(http.server.BaseHTTPRequestHandler):
    seen = None  # (time, event) set by the server

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        if self.path.endswith("/invocation/next") and not FirstNext.seen[1].is_set():
            FirstNext.seen[0].append(time.perf_counter())
            FirstNext.seen[1].set()
        # Never answer: the function waits here as it would for a first event.
        time.sleep(5)

    def log_message(self, *args):
        pass


def measure(binary, port, env):
    arrived = threading.Event()
    FirstNext.seen = ([], arrived)
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ok = arrived.wait(10)
    proc.kill()
    _, err = proc.communicate()
    if not ok:
        sys.exit(f"{binary} never asked for an event:\n{err.decode(errors='replace')[-2000:]}")
    return (FirstNext.seen[0][0] - start) * 1000


def unreachable_url():
    """A loopback URL nothing listens on: a port the kernel gave us, closed again at once (a fixed
    port such as 9 may be served on some machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def main():
    target = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FirstNext)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    issuer_dir = tempfile.mkdtemp(prefix="emeterai-issuer-")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "AWS_REGION": "ap-southeast-3",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": unreachable_url(),
        "EMETERAI_TABLE": "bench",
        "EMETERAI_BUCKET": "bench",
        "EMETERAI_MIDTRANS_SERVER_KEY": "bench",
        "EMETERAI_ISSUER_DIR": issuer_dir,
        "RUST_LOG": "warn",
    }
    print(f"| function | init median (min-max) over {runs} runs | binary |")
    print("| --- | --- | --- |")
    for name in FUNCTIONS:
        binary = os.path.join(target, name)
        measure(binary, port, env)  # the first run creates the local issuer; not counted
        times = [measure(binary, port, env) for _ in range(runs)]
        size = os.path.getsize(binary)
        print(f"| {name} | {statistics.median(times):.1f} ms ({min(times):.1f}-{max(times):.1f}) | {size / 1e6:.2f} MB |")
    server.shutdown()


if __name__ == "__main__":
    main()
