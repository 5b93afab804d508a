"""Audit throughput on a large table (issue 11): fill a DynamoDB table with a healthy synthetic
ledger, then time `emeterai audit` over it with several segment counts (items/s, peak RSS).

    # against any DynamoDB endpoint (DynamoDB Local: scripts/test-services.sh start DIR; . DIR/env)
    python drill/audit_bench.py --items 100000 --segments 1,4,8 --emeterai target/release/emeterai

The ledger is what the audit expects of a healthy table, so every run must end with exit 0 and
0 violations (a run that finds one is reported as a failure, not timed). Per account, 15 items:
its BALANCE, two PAID invoices of 3 units (one used up, one untouched), their two CREDIT entries,
three STAMPED documents with their CONSUME entries and SERIAL registry items, and one idempotency
record (an item the audit reads and skips). Items carry the other attributes the functions write
(timestamps, index keys, order ids, file names) so their size is close to a drill table's; the
average item size is printed next to the figures.

The table is made with the key schema only (pk, sk): the audit scans the base table, and index
upkeep would only slow the fill. Peak RSS and CPU are the audit process's own (wait4's rusage);
with --server-pid, the DynamoDB server's CPU seconds during each run are reported too.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import time

import boto3
from botocore.config import Config

ITEMS_PER_ACCOUNT = 15
BATCH = 25  # BatchWriteItem's limit


def s(v: str) -> dict:
    return {"S": v}


def n(v: int) -> dict:
    return {"N": str(v)}


def account_items(i: int) -> list[dict]:
    """One healthy account's 15 items."""
    account = f"bench-{i:07d}"
    created = "2026-12-01T10:00:00Z"
    inv_used, inv_unused = f"inv_bench{i:07d}a", f"inv_bench{i:07d}b"
    items = [
        {"pk": s(f"ACC#{account}"), "sk": s("BALANCE"), "available": n(3), "pending": n(0), "credited": n(6),
         "consumed": n(3), "refunded": n(0), "updated_at": s(created)},
        {"pk": s(f"IDEM#{account}#key-{i}"), "sk": s("IDEMPOTENCY"), "account": s(account), "request_sha256":
         s(hashlib.sha256(account.encode()).hexdigest()), "invoice_id": s(inv_used), "ttl": n(1_800_000_000)},
    ]
    for invoice, used in ((inv_used, 3), (inv_unused, 0)):
        items.append({
            "pk": s(f"INV#{invoice}"), "sk": s("INVOICE"), "account": s(account), "account_pk": s(f"ACC#{account}"),
            "created_sk": s(f"INV#{created}#{invoice}"), "status": s("PAID"), "quantity": n(3), "used": n(used),
            "remaining": n(3 - used), "refunded": n(0), "amount": n(30_000), "unit_price": n(10_000),
            "currency": s("IDR"), "order_id": s(f"EMT-{invoice}"), "created_at": s(created), "paid_at": s(created),
            "expires_at": s("2027-12-01T10:00:00Z"), "usable_sk": s(f"2027-12-01T10:00:00Z#{invoice}"),
            "payment_method": s("qris"), "version": n(3),
        })
        items.append({
            "pk": s(f"ACC#{account}"), "sk": s(f"LEDGER#CREDIT#{invoice}"), "kind": s("CREDIT"), "units": n(3),
            "invoice_id": s(invoice), "at": s(created),
        })
    for d in range(3):
        document, serial = f"doc_bench{i:07d}{d}", f"EMT{i:07d}{d:03d}"
        sha = hashlib.sha256(document.encode()).hexdigest()
        items += [
            {"pk": s(f"DOC#{document}"), "sk": s("DOCUMENT"), "account": s(account),
             "account_pk": s(f"ACC#{account}"), "created_sk": s(f"DOC#{created}#{document}"), "status": s("STAMPED"),
             "serial": s(serial), "sha256": s(sha), "file_name": s(f"surat-lamaran-{d}.pdf"),
             "upload_key": s(f"incoming/{account}/{document}.pdf"), "stamped_key": s(f"stamped/{account}/{document}.pdf"),
             "placement": {"M": {"page": n(1), "x_mm": n(120), "y_mm": n(220)}}, "invoice_id": s(inv_used),
             "created_at": s(created), "stamped_at": s(created), "size_bytes": n(48_213)},
            {"pk": s(f"ACC#{account}"), "sk": s(f"LEDGER#CONSUME#{document}"), "kind": s("CONSUME"), "units": n(1),
             "invoice_id": s(inv_used), "document_id": s(document), "at": s(created)},
            {"pk": s(f"SERIAL#{serial}"), "sk": s("SERIAL"), "status": s("STAMPED"), "document_id": s(document),
             "document_sha256": s(sha), "account": s(account), "stamped_at": s(created)},
        ]
    return items


def client(endpoint: str | None):
    return boto3.client("dynamodb", endpoint_url=endpoint,
                        config=Config(retries={"max_attempts": 10, "mode": "standard"}, max_pool_connections=32))


def create_table(ddb, table: str) -> None:
    try:
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
    except ddb.exceptions.ResourceInUseException:
        raise SystemExit(f"table {table} exists already: give another --table")
    ddb.get_waiter("table_exists").wait(TableName=table)


def write_accounts(ddb, table: str, first: int, count: int) -> None:
    pending: list[dict] = []
    for i in range(first, first + count):
        pending += [{"PutRequest": {"Item": item}} for item in account_items(i)]
        last = i == first + count - 1
        while len(pending) >= BATCH or (last and pending):
            batch, pending = pending[:BATCH], pending[BATCH:]
            while batch:
                out = ddb.batch_write_item(RequestItems={table: batch})
                batch = out.get("UnprocessedItems", {}).get(table, [])


def fill(ddb, table: str, items: int, writers: int) -> tuple[int, float]:
    accounts = max(1, items // ITEMS_PER_ACCOUNT)
    started = time.monotonic()
    share = -(-accounts // writers)
    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        jobs = [pool.submit(write_accounts, ddb, table, first, min(share, accounts - first))
                for first in range(0, accounts, share)]
        for job in jobs:
            job.result()
    return accounts * ITEMS_PER_ACCOUNT, time.monotonic() - started


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a running process (the DynamoDB server), from /proc."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_audit(emeterai: str, table: str, segments: int, server_pid: int | None) -> dict:
    env = dict(os.environ, EMETERAI_TABLE=table)
    env.pop("EMETERAI_BUCKET", None)
    # Not communicate(): wait4 must reap the child itself to hand back its own rusage.
    server_before = cpu_seconds(server_pid)
    with open(os.devnull, "wb") as devnull:
        started = time.monotonic()
        proc = subprocess.Popen([emeterai, "audit", "--segments", str(segments), "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=devnull)
        report_text = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
    server_after = cpu_seconds(server_pid)
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        report = json.loads(report_text)
    except json.JSONDecodeError:
        report = {}
    return {"segments": segments, "exit": proc.returncode, "wall_s": round(wall, 2),
            "items": report.get("items_scanned"), "violations": len(report.get("violations", [])) if report else None,
            "items_per_s": round(report.get("items_scanned", 0) / wall) if report else None,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "server_cpu_s": round(server_after - server_before, 2) if server_pid else None,
            "load_average_after": round(os.getloadavg()[0], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
    parser.add_argument("--table", default=f"audit-bench-{int(time.time())}")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=4, help="threads writing the table")
    parser.add_argument("--segments", default="1,4,8", help="comma-separated segment counts to time")
    parser.add_argument("--repeat", type=int, default=1, help="audit runs per segment count")
    parser.add_argument("--emeterai", default="target/release/emeterai")
    parser.add_argument("--server-pid", type=int, help="the DynamoDB server's PID, to report its CPU per run")
    parser.add_argument("--no-fill", action="store_true", help="the table is filled already")
    args = parser.parse_args()
    if not args.endpoint:
        raise SystemExit("no DynamoDB endpoint: --endpoint or AWS_ENDPOINT_URL_DYNAMODB")
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = args.endpoint
    ddb = client(args.endpoint)
    result: dict = {"table": args.table}
    if not args.no_fill:
        create_table(ddb, args.table)
        server_before = cpu_seconds(args.server_pid)
        written, seconds = fill(ddb, args.table, args.items, args.writers)
        result["fill"] = {"items": written, "seconds": round(seconds, 1), "items_per_s": round(written / seconds)}
        if args.server_pid:
            result["fill"]["server_cpu_s"] = round(cpu_seconds(args.server_pid) - server_before, 2)
        print(f"filled {args.table}: {written} items in {seconds:.1f} s ({written / seconds:.0f} items/s)", file=sys.stderr)
    described = ddb.describe_table(TableName=args.table)["Table"]
    if described.get("ItemCount"):
        result["avg_item_bytes"] = round(described["TableSizeBytes"] / described["ItemCount"])
    runs = []
    for segments in [int(x) for x in args.segments.split(",")]:
        for _ in range(args.repeat):
            run = timed_audit(args.emeterai, args.table, segments, args.server_pid)
            print(json.dumps(run), file=sys.stderr)
            runs.append(run)
    result["runs"] = runs
    print(json.dumps(result, indent=2))
    return 0 if all(r["exit"] == 0 and r["violations"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
