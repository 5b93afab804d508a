"""Per-journey counts from a drill's output folder, for docs/capacity.md (issue 11).

    python drill/capacity.py .local/drill/<run>            # summary.json (+ dynamodb_counts.json)
    python drill/capacity.py .local/drill/<run> --json

From summary.json (Locust's per-step request counts and the journal's counts): HTTP requests and
Lambda invocations per function per journey, S3 requests (presigned uploads and downloads the
clients send, plus the stamp function's read of the upload and write of the result), KMS Sign
calls (one per stamp on AWS). From dynamodb_counts.json, when the run had the counting proxy in
front of DynamoDB Local (drill/dynamodb_counter.py, DRILL_DYNAMODB_COUNTS=its --out file for
drill.py): DynamoDB requests per journey by operation, the items of the transactions, and write/read
capacity units at the sizes seen. By default the counts at the end of the load are used: the settle
phase afterwards adds the sweeps forward in time (expiry, refunds of unused units) and the drill's
own reads of every invoice (GET /v1/invoices/{id}), which are not an applicant's.

The per-journey figures are for the drill's mix (5% never pay, 10% lost notifications, 20%
invalid/oversized/re-uploaded letters, 15% refunds, a sweep every 5 s): not a minimal journey.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

# Which function answers each Locust step (template.yaml's routes); steps not listed here are the
# client's own S3 requests or the local stack's /dev routes.
CHECKOUT_FUNCTION_STEPS = ("checkout", "checkout (retry, same key)", "payment link again", "quota", "create document",
                           "poll document", "verify serial", "verify file", "refund")
# The stamp function per stored upload: GetObject of incoming/, PutObject of stamped/ (a rejected
# letter: the read alone). Its DynamoDB requests come from the counting proxy.
STAMP_S3_PER_STAMPED = {"GetObject": 1, "PutObject": 1}


# template.yaml's MemorySize per function (Globals 128 MB; the stamp function 256 MB).
MEMORY_MB = {"checkout": 128, "payment-webhook": 128, "stamp": 256, "refund": 128}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
GATEWAY_REQUEST = re.compile(r"\bfunction=(?P<function>[\w-]+).*?\bms=(?P<ms>\d+)")


def invocation_durations(gateway_log: Path) -> dict[str, dict]:
    """Per function, the local gateway's time for each HTTP invocation it logged (its `request`
    lines: routing through cargo lambda watch included, so an upper bound of Lambda's billed
    duration on this machine), and the GB-seconds of the median at the template's memory size."""
    durations: dict[str, list[int]] = {}
    for line in gateway_log.read_text(errors="replace").splitlines():
        line = ANSI.sub("", line)
        if " request" not in line:
            continue
        m = GATEWAY_REQUEST.search(line)
        if m:
            durations.setdefault(m["function"], []).append(int(m["ms"]))
    out = {}
    for function, ms in sorted(durations.items()):
        ms.sort()
        median = ms[len(ms) // 2]
        out[function] = {"invocations": len(ms), "median_ms": median, "p90_ms": ms[int(len(ms) * 0.9)],
                         "memory_mb": MEMORY_MB.get(function),
                         "gb_s_at_median": round(MEMORY_MB.get(function, 128) / 1024 * median / 1000, 6)}
    return out


def per(total: float, journeys: int) -> float:
    return round(total / journeys, 3) if journeys else 0.0


def capacity_units(counts: dict, journeys: int) -> dict:
    """DynamoDB requests per journey by operation, and an estimate of capacity units: a
    transaction item costs 2 units (DynamoDB's rule), other writes 1 per KB, strongly consistent
    reads 1 per 4 KB, sizes bounded by the request (writes) or response (reads) bytes."""
    ops = counts.get("operations", {})
    out = {"requests_per_journey": {}, "refused_per_journey": {}}
    wcu = rcu = 0.0
    for name, op in sorted(ops.items()):
        n = op["requests"]
        if name in ("Scan", "DescribeTable", "CreateTable", "ListTables", "UpdateTimeToLive"):
            continue  # the audit's scan and the stack's set-up are not part of a journey
        out["requests_per_journey"][name] = per(n, journeys)
        if op.get("refused"):
            out["refused_per_journey"][name] = per(op["refused"], journeys)
        if name in ("PutItem", "UpdateItem", "DeleteItem"):
            wcu += n * max(1, math.ceil(op["request_bytes"] / max(n, 1) / 1024))
        elif name in ("GetItem", "Query"):
            rcu += n * max(1, math.ceil(op["response_bytes"] / max(n, 1) / 4096))
    items = counts.get("transaction_items", {})
    # ConditionCheck items cost write units like the others (2 each inside a transaction).
    transaction_wcu = 2 * sum(items.values())
    out["transaction_items_per_journey"] = {k: per(v, journeys) for k, v in sorted(items.items())}
    out["transactions_by_size"] = counts.get("transactions_by_size", {})
    out["write_units_per_journey"] = per(wcu + transaction_wcu, journeys)
    out["read_units_per_journey"] = per(rcu, journeys)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a drill output folder (holding summary.json)")
    parser.add_argument("--dynamodb-counts", help="dynamodb_counter.py's JSON (default: RUN/dynamodb_counts_load.json, "
                                                  "the counts at the end of the load, else RUN/dynamodb_counts.json)")
    parser.add_argument("--gateway-log", help="the local stack's gateway.log: HTTP invocation durations per function")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    run = Path(args.run)
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, ValueError) as e:
        print(f"capacity: cannot read {run / 'summary.json'}: {e}", file=sys.stderr)
        return 1
    journeys = int(summary.get("journeys") or 0)
    if journeys == 0:
        print("capacity: the run has no completed journey to divide by", file=sys.stderr)
        return 1
    steps = {name: s["count"] for name, s in summary.get("steps", {}).items()}
    journal = summary.get("journal_counts", {})
    stamped = steps.get("stamp (upload to STAMPED)", 0) - summary["steps"].get("stamp (upload to STAMPED)", {}).get(
        "failures", 0)
    uploads = steps.get("upload", 0)
    # Notifications the simulator sent (each a payment-webhook invocation): the deliveries asked
    # for, plus the `pending` ones sent first.
    figures = {
        "run": str(run), "journeys": journeys, "duration_s": round(summary.get("duration_s", 0), 1),
        "journeys_per_s": round(summary.get("journeys_per_s", 0), 2),
        "http_requests_per_journey": {k: per(v, journeys) for k, v in sorted(steps.items())
                                      if not k.startswith(("journey", "stamp ("))},
        "lambda_invocations_per_journey": {
            "checkout": per(sum(steps.get(s, 0) for s in CHECKOUT_FUNCTION_STEPS), journeys),
            "payment-webhook (checkout's count of /dev/pay deliveries is in the journal)": None,
            "stamp (one per stored upload)": per(uploads, journeys),
            "refund (sweeps; every 5 s in the drill, every 5 min on AWS)": per(
                steps.get("sweep", 0) + steps.get("sweep (overlapping)", 0), journeys),
        },
        "stamped_documents_per_journey": per(stamped, journeys),
        "s3_requests_per_journey": {
            "PutObject (client upload, presigned)": per(uploads, journeys),
            "GetObject (stamp function reads the upload)": per(uploads, journeys),
            "PutObject (stamp function writes the result)": per(stamped * STAMP_S3_PER_STAMPED["PutObject"], journeys),
            "GetObject (client download, presigned)": per(steps.get("download", 0), journeys),
        },
        "kms_sign_per_journey": per(stamped, journeys),
        "journal_counts": journal,
    }
    deliveries = None
    journal_path = run / "journal.jsonl"
    if journal_path.exists():
        deliveries = 0
        for line in journal_path.read_text().splitlines():
            entry = json.loads(line) if line.strip() else {}
            if entry.get("kind") == "paid":
                deliveries += len(entry.get("answers") or [])
        figures["lambda_invocations_per_journey"].pop(
            "payment-webhook (checkout's count of /dev/pay deliveries is in the journal)")
        figures["lambda_invocations_per_journey"]["payment-webhook (settlement deliveries)"] = per(deliveries, journeys)
    counts_path = Path(args.dynamodb_counts) if args.dynamodb_counts else next(
        (p for p in (run / "dynamodb_counts_load.json", run / "dynamodb_counts.json") if p.exists()),
        run / "dynamodb_counts.json")
    if counts_path.exists():
        figures["dynamodb"] = capacity_units(json.loads(counts_path.read_text()), journeys)
        figures["dynamodb"]["per_stamped_document"] = {
            "write_units": per(figures["dynamodb"]["write_units_per_journey"] * journeys, stamped),
            "read_units": per(figures["dynamodb"]["read_units_per_journey"] * journeys, stamped),
        }
    if args.gateway_log:
        figures["http_invocation_durations"] = invocation_durations(Path(args.gateway_log))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{run}: {journeys} journeys in {figures['duration_s']} s ({figures['journeys_per_s']}/s), "
          f"{figures['stamped_documents_per_journey']} stamped documents per journey")
    for section in ("http_requests_per_journey", "lambda_invocations_per_journey", "s3_requests_per_journey"):
        print(f"{section}:")
        for k, v in figures[section].items():
            print(f"  {k}: {v}")
    print(f"kms_sign_per_journey: {figures['kms_sign_per_journey']}")
    if "dynamodb" in figures:
        d = figures["dynamodb"]
        print("dynamodb requests per journey:")
        for k, v in d["requests_per_journey"].items():
            refused = d["refused_per_journey"].get(k)
            print(f"  {k}: {v}" + (f" (of which refused by a condition: {refused})" if refused else ""))
        print(f"  transaction items per journey: {d['transaction_items_per_journey']}; "
              f"transactions by item count: {d['transactions_by_size']}")
        print(f"  capacity units per journey: {d['write_units_per_journey']} write, {d['read_units_per_journey']} read; "
              f"per stamped document: {d['per_stamped_document']['write_units']} write, "
              f"{d['per_stamped_document']['read_units']} read")
    for function, d in figures.get("http_invocation_durations", {}).items():
        print(f"http invocations of {function}: {d['invocations']}, median {d['median_ms']} ms, p90 {d['p90_ms']} ms, "
              f"{d['gb_s_at_median']} GB-s at the median ({d['memory_mb']} MB)")
    if "dynamodb" not in figures:
        print(f"dynamodb: no {counts_path} (run the drill with drill/dynamodb_counter.py in front of DynamoDB Local)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
