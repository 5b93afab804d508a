"""Counts the DynamoDB requests the local functions send, for docs/capacity.md (issue 11).

A forwarding HTTP proxy between the functions and DynamoDB Local: every request is passed on
unchanged (the SigV4 signature covers the body, so nothing is rewritten) and counted by its
operation (`X-Amz-Target`), with the items of each `TransactWriteItems` by kind, the requests
DynamoDB refused (400: failed conditions, cancelled transactions) apart, and the request and
response bytes (a bound on the items' sizes). The counts go to a JSON file every second and on
exit; `drill/capacity.py` divides them by the drill's journeys.

    python drill/dynamodb_counter.py --listen 8001 --upstream 8000 --out counts.json

Start the stack with EMETERAI_DYNAMODB_PORT=8000 EMETERAI_FUNCTIONS_DYNAMODB_URL=http://127.0.0.1:8001
(scripts/run-local.sh then points the functions, and only them, at this proxy), and run the drill
with DRILL_DYNAMODB_COUNTS=counts.json (it keeps a copy taken at the end of the load). Measurement only:
the proxy adds a hop and Python's CPU to every request, so throughput is measured without it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Hop-by-hop headers are the proxy's own business, never forwarded.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
# A request body larger than this is refused (DynamoDB's own request limit is 16 MB).
MAX_BODY = 16 * 1024 * 1024


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.operations: dict[str, dict[str, int]] = {}
        self.transaction_items: dict[str, int] = {}
        self.transaction_sizes: dict[str, int] = {}

    def add(self, operation: str, status: int, request_bytes: int, response_bytes: int, body: dict) -> None:
        with self.lock:
            op = self.operations.setdefault(operation, {"requests": 0, "refused": 0, "errors": 0,
                                                        "request_bytes": 0, "response_bytes": 0})
            op["requests"] += 1
            op["request_bytes"] += request_bytes
            op["response_bytes"] += response_bytes
            if status == 400:
                op["refused"] += 1
            elif status != 200:
                op["errors"] += 1
            if operation == "TransactWriteItems":
                items = body.get("TransactItems") or []
                size = str(len(items))
                self.transaction_sizes[size] = self.transaction_sizes.get(size, 0) + 1
                for item in items:
                    for kind in item:
                        self.transaction_items[kind] = self.transaction_items.get(kind, 0) + 1

    def snapshot(self) -> dict:
        with self.lock:
            return {"operations": json.loads(json.dumps(self.operations)),
                    "transaction_items": dict(self.transaction_items),
                    "transactions_by_size": dict(self.transaction_sizes)}


def make_handler(upstream_port: int, counts: Counts):
    local = threading.local()

    def upstream() -> http.client.HTTPConnection:
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
        return local.conn

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # one line per request would drown the drill's logs
            pass

        def do_GET(self) -> None:
            self.forward(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY:
                self.send_error(413, "request body too large for the counting proxy")
                return
            self.forward(self.rfile.read(length))

        def forward(self, body: bytes) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            for attempt in range(2):  # a kept-alive upstream connection may have been closed
                conn = upstream()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                    break
                except (ConnectionError, http.client.HTTPException, TimeoutError, OSError):
                    conn.close()
                    local.conn = None
                    if attempt == 1:
                        self.send_error(502, "DynamoDB Local did not answer")
                        return
            target = self.headers.get("X-Amz-Target", "")
            operation = target.rsplit(".", 1)[-1] if target else f"{self.command} {self.path}"
            try:
                parsed = json.loads(body) if body and operation == "TransactWriteItems" else {}
            except ValueError:
                parsed = {}
            counts.add(operation, response.status, len(body), len(payload), parsed)
            self.send_response(response.status)
            for k, v in response.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1 the functions use")
    parser.add_argument("--upstream", type=int, required=True, help="DynamoDB Local's port on 127.0.0.1")
    parser.add_argument("--out", required=True, help="JSON file the counts are written to")
    args = parser.parse_args()
    counts = Counts()
    out = Path(args.out)
    server = ThreadingHTTPServer(("127.0.0.1", args.listen), make_handler(args.upstream, counts))
    server.daemon_threads = True
    stop = threading.Event()

    def write() -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"written_at": time.time(), **counts.snapshot()}, indent=2))
        tmp.replace(out)

    def writer() -> None:
        while not stop.wait(1):
            write()

    threading.Thread(target=writer, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    stop.set()
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
