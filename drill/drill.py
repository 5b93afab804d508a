"""`make drill`: the deadline drill from start to verdict (issue 11).

1. Locust runs drill/locustfile.py headless along its LoadTestShape.
2. Meanwhile, on a local stack, drill/faults.py breaks things on a schedule (function instances
   killed mid-request, DynamoDB Local paused, SeaweedFS restarted, the payment simulator failing).
3. Afterwards the sweep is run forward in time until every invoice the drill made is settled,
   expired or refunded (local stack only: /dev/sweep), then `emeterai audit` checks the ledger
   (with --gateway-url: the simulator, and on a local stack the stack's own server key), and
   every order the drill paid must be credited
   (PAID) or refunded (REFUNDED).
4. Locust's HTML and CSV reports, the journal, the audit report and summary.json go to the
   output folder; one summary line goes to standard output.

Exit 0 when the audit found zero violations and no paid order is neither credited nor refunded;
1 otherwise. Errors during the load (timeouts while DynamoDB is paused, ...) are reported, they do
not fail the drill: the drill is about what the ledger looks like afterwards.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import faults  # noqa: E402
from locustfile import local_token  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def http(method: str, url: str, body: dict | None = None, token: str | None = None, timeout: float = 120):
    """(status, parsed JSON or text). Never raises for an HTTP status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        return 0, str(e)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def read_journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def invoice_states(host: str, journal: list[dict]) -> dict[str, dict]:
    """Every invoice the drill created, as the API shows it now (local tokens: local stack only)."""
    states = {}
    retry_until = time.monotonic() + 120  # a function that stays down must not stall the verdict
    for entry in journal:
        if entry["kind"] != "checkout" or entry["invoice_id"] in states:
            continue
        # A loaded machine can time a read out (the gateway's 504, or no answer): ask again before
        # an invoice counts as unreadable, which the verdict treats as not credited.
        for attempt in range(6):
            status, body = http("GET", f"{host}/v1/invoices/{entry['invoice_id']}", token=local_token(entry["account"]),
                                timeout=30)
            if status == 200 or status in (401, 403, 404) or time.monotonic() > retry_until:
                break
            time.sleep(1 + attempt)
        states[entry["invoice_id"]] = body if status == 200 else {"status": f"HTTP {status}", "body": body}
    return states


def unsettled(states: dict[str, dict]) -> list[str]:
    """Invoices not yet at rest: PENDING, or a refund still on its way."""
    left = []
    for invoice_id, inv in states.items():
        refund = inv.get("refund") or {}
        if inv.get("status") == "PENDING" or refund.get("status") in ("REQUESTED", "SUBMITTED", "FAILED"):
            left.append(invoice_id)
        elif inv.get("status") == "PAID" and inv.get("remaining", 0) > 0:
            left.append(invoice_id)  # unused units: the sweep refunds them once valid_until passes
    return left


def settle(host: str, journal: list[dict], log) -> dict:
    """Sweeps with "now" moving forward until every journaled invoice is at rest."""
    start = datetime.now(timezone.utc)
    # Reconcile lost notifications (> 10 min), expire unpaid (> 24 h), refund unused (> 14 days),
    # then keep going a day at a time for refunds still moving (REQUESTED -> SUBMITTED -> COMPLETED).
    steps = [timedelta(minutes=11), timedelta(hours=25), timedelta(days=15, hours=1)]
    steps += [timedelta(days=16 + i) for i in range(12)]
    sweeps = 0
    failed_in_a_row = 0
    left: list[str] = []
    at_rest = False
    for i, step in enumerate(steps):
        now = (start + step).isoformat()
        status, body = http("POST", f"{host}/dev/sweep", {"now": now}, timeout=300)
        sweeps += 1
        if status != 200:
            log(f"settle: sweep at {now} answered {status}: {str(body)[:300]}")
            failed_in_a_row += 1
            if failed_in_a_row >= 3:
                # A stack that stopped answering (it happened: a deadlocked gateway) would
                # otherwise cost every remaining step its timeout, then pass with nothing checked.
                log("settle: three sweeps in a row failed: the stack stopped answering")
                break
            time.sleep(2)
            continue
        failed_in_a_row = 0
        if i >= 2:
            left = unsettled(invoice_states(host, journal))
            log(f"settle: sweep at +{step}: {len(left)} invoice(s) not at rest")
            if not left:
                at_rest = True
                break
    if not at_rest and not left:
        # Never confirmed: the drill must not pass on invoices nobody could look at.
        left = ["(not confirmed: the settle sweeps failed)"]
    return {"sweeps": sweeps, "not_at_rest": left}


def stack_env(stack_dir: Path) -> dict[str, str]:
    """The table, bucket, endpoints and Midtrans server key the local functions use (their env
    file). The key is the one the stack's simulator signs with, so the audit's gateway
    cross-check can ask the simulator; it goes to the audit's environment only, never to a log."""
    env = {}
    path = stack_dir / "functions.env"
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    wanted = ("AWS_", "EMETERAI_TABLE", "EMETERAI_BUCKET", "EMETERAI_MIDTRANS_SERVER_KEY")
    return {k: v for k, v in env.items() if k.startswith(wanted)}


def audit(binary: Path, env_extra: dict[str, str], gateway_url: str | None, out: Path, log) -> dict:
    help_text = subprocess.run([str(binary), "audit", "--help"], capture_output=True, text=True).stdout
    args = [str(binary), "audit", "--json"]
    env = {**os.environ, **env_extra}
    # The cross-check asks the gateway with the server key (the caller's, or on a local stack the
    # one in the functions' env file); without one it is not attempted.
    cross_check = bool(gateway_url) and "--gateway-url" in help_text and bool(env.get("EMETERAI_MIDTRANS_SERVER_KEY"))
    if cross_check:
        args += ["--gateway-url", gateway_url]
    if "EMETERAI_TABLE" not in env:
        log("audit: EMETERAI_TABLE is not set; the audit was not run")
        return {"ran": False, "reason": "EMETERAI_TABLE not set"}
    started = time.monotonic()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    (out / "audit.json").write_text(done.stdout)
    (out / "audit.stderr").write_text(done.stderr)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {}
    result = {
        "ran": True,
        "exit": done.returncode,
        "gateway_cross_check": cross_check,
        "violations": len(report.get("violations", [])) if report else None,
        "holds": report.get("holds") if report else False,
        "seconds": round(time.monotonic() - started, 1),
        "counts": {k: v for k, v in report.items() if k not in ("violations", "holds")},
    }
    for v in report.get("violations", [])[:20]:
        log(f"audit violation: {v.get('rule')}: {v.get('subject')}: {v.get('detail')}")
    if done.returncode not in (0, 3):
        log(f"audit failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return result


STACK_PARTS = ("gateway", "lambda", "instances", "dynamodb", "seaweedfs")


def cpu_snapshot(stack_dir: Path, locust_pid: int | None) -> dict[str, int]:
    """CPU clock ticks (user + system) used so far by each kind of process of the local stack
    and by Locust, found through the stack's PID files and their descendants (by executable
    name: `checkout`, `stamp`, `java`, `weed`, `cargo-lambda`, ...). A process that ended
    meanwhile (an instance killed by a fault) takes its ticks with it: compare runs without
    faults."""
    ticks: dict[str, int] = {}
    pids = {}
    for part in STACK_PARTS:
        pid = faults.read_pid(stack_dir, part)
        if pid is not None:
            pids[pid] = part
            for child in faults.descendants(pid):
                pids[child] = part
    if locust_pid is not None:
        pids[locust_pid] = "locust"
        for child in faults.descendants(locust_pid):
            pids[child] = "locust"
    for pid, part in pids.items():
        name = faults.executable_name(pid) or "?"
        key = f"{part}:{name}"
        ticks[key] = ticks.get(key, 0) + faults.cpu_ticks(pid)
    return ticks


def cpu_used(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, dict]:
    """CPU seconds and share of one core per process kind between two snapshots."""
    hz = os.sysconf("SC_CLK_TCK")
    used = {}
    for key in sorted(set(before) | set(after)):
        delta = (after.get(key, 0) - before.get(key, 0)) / hz
        if delta > 0:
            used[key] = {"cpu_s": round(delta, 2), "cores": round(delta / seconds, 3) if seconds else 0.0}
    return used


def paid_but_not_credited(states: dict[str, dict], journal: list[dict]) -> list[str]:
    """Orders the simulator settled whose invoice is neither PAID (credited) nor REFUNDED."""
    invoice_of = {e["order_id"]: e["invoice_id"] for e in journal if e["kind"] == "checkout"}
    bad = []
    for entry in journal:
        if entry["kind"] != "paid":
            continue
        inv = states.get(invoice_of.get(entry["order_id"], ""), {})
        if inv.get("status") not in ("PAID", "REFUNDED"):
            bad.append(f"{entry['order_id']} ({inv.get('status')})")
    return sorted(set(bad))


def locust_stats(out: Path) -> tuple[list[dict], list[dict]]:
    stats_path, failures_path = out / "drill_stats.csv", out / "drill_failures.csv"
    stats = list(csv.DictReader(stats_path.open())) if stats_path.exists() else []
    failures = list(csv.DictReader(failures_path.open())) if failures_path.exists() else []
    return stats, failures


def summary_line(result: dict) -> str:
    steps = " ".join(f"{name}={s['p50_ms']}/{s['p99_ms']}ms" for name, s in result["steps"].items())
    errors = ", ".join(f"{k} x{v}" for k, v in sorted(result["errors"].items(), key=lambda kv: -kv[1])[:8]) or "none"
    expected = ", ".join(f"{k} x{v}" for k, v in sorted(result["expected_refusals"].items())) or "none"
    faults_text = ", ".join(f"{k} x{v}" for k, v in sorted(result["faults"].items())) or "none"
    a = result["audit"]
    audit_text = (f"{a['violations']} violation(s){' +gateway cross-check' if a.get('gateway_cross_check') else ''}"
                  if a.get("ran") else f"not run ({a.get('reason')})")
    return (f"drill {'PASSED' if result['passed'] else 'FAILED'}: {result['journeys']} journeys in "
            f"{result['duration_s']:.0f} s = {result['journeys_per_s']:.2f} journeys/s "
            f"(journey p50/p99 {result['journey_p50_ms']}/{result['journey_p99_ms']} ms); "
            f"steps p50/p99: {steps}; errors: {errors}; expected refusals: {expected}; "
            f"faults: {faults_text}; paid-not-credited: {len(result['paid_not_credited'])}; audit: {audit_text}; "
            f"load average {result['load_average']['before'][0]}->{result['load_average']['after'][0]}, "
            f"CPU {result['cpu_s_per_journey']} s/journey")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("EMETERAI_API_URL", "http://127.0.0.1:3000"))
    parser.add_argument("--gateway-url", default=os.environ.get("EMETERAI_MIDTRANS_URL"),
                        help="the payment gateway (simulator) for the audit's cross-check")
    parser.add_argument("--stack-dir", default=os.environ.get("EMETERAI_STACK_DIR", str(ROOT / ".local/run/stack")))
    parser.add_argument("--duration", type=float, default=float(os.environ.get("DRILL_DURATION_S", "300")))
    parser.add_argument("--baseline", type=int, default=int(os.environ.get("DRILL_BASELINE_USERS", "2")))
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--constant-users", type=int, default=0,
                        help="instead of the deadline's shape, this many applicants for the whole duration "
                             "(throughput measurements, BENCHMARKS.md)")
    parser.add_argument("--locust-processes", type=int, default=int(os.environ.get("DRILL_LOCUST_PROCESSES", "1")),
                        help="Locust worker processes on this machine (Locust's --processes; 1: one process)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--emeterai", default=os.environ.get("EMETERAI_CLI"),
                        help="the emeterai binary for the audit (default: target/release or target/debug)")
    args = parser.parse_args()

    host = args.host.rstrip("/")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out or ROOT / ".local/drill" / stamp)
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / "drill.log").open("a")

    def log(message: str) -> None:
        line = f"[drill {datetime.now(timezone.utc).strftime('%H:%M:%S')}] {message}"
        print(line, file=sys.stderr, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    status, _ = http("GET", f"{host}/dev/routes", timeout=10)
    local = status == 200
    stack_dir = Path(args.stack_dir)
    inject = local and not args.no_faults and (stack_dir / "gateway.pid").exists()
    log(f"host {host} ({'local stack, /dev routes' if local else 'deployment: no /dev routes, no faults, no settle'}); "
        f"faults {'on' if inject else 'off'}; output {out}")

    journal_path = out / "journal.jsonl"
    # Locust appends to the journal: one left by an earlier run in the same --out folder (make
    # test run twice in one checkout) would have this run look for another stack's invoices (seen:
    # 57 "paid but not credited", each HTTP 404).
    journal_path.unlink(missing_ok=True)
    env = {**os.environ, "DRILL_DURATION_S": str(args.duration), "DRILL_BASELINE_USERS": str(args.baseline),
           "DRILL_LOCAL": "1" if local else "0", "DRILL_JOURNAL": str(journal_path), "PYTHONUNBUFFERED": "1",
           "DRILL_CONSTANT_USERS": str(max(0, args.constant_users))}
    locust = [str(Path(sys.executable).parent / "locust"), "-f", str(ROOT / "drill/locustfile.py"), "--headless",
              "--host", host, "--html", str(out / "report.html"), "--csv", str(out / "drill"), "--only-summary",
              "--loglevel", "WARNING", "--exit-code-on-error", "0",
              # Journeys under way when the shape ends may finish (a short drill waits less).
              "--stop-timeout", str(int(min(120, max(10, args.duration / 2))))]
    if args.locust_processes > 1:
        # One process tops out at one core; workers forked from a master spread the applicants.
        locust += ["--processes", str(args.locust_processes)]
    load_before = os.getloadavg()
    started = time.monotonic()
    runner = subprocess.Popen(locust, env=env, stdout=(out / "locust.out").open("w"), stderr=subprocess.STDOUT)
    cpu_before = cpu_snapshot(stack_dir, runner.pid) if local else {}
    cpu_after: dict[str, int] = {}

    injected: list[dict] = []
    stop = threading.Event()
    injector = None
    if inject:
        injector = threading.Thread(target=faults.run_schedule,
                                    args=(stack_dir, host, args.duration, stop, injected, log), daemon=True)
        injector.start()
    try:
        # The last CPU snapshot before Locust exits (an exited process's ticks are gone).
        while runner.poll() is None:
            if local:
                cpu_after = cpu_snapshot(stack_dir, runner.pid)
            time.sleep(1)
    finally:
        stop.set()
        if injector:
            injector.join(timeout=60)
        faults.resume_everything(stack_dir, log)
    load_seconds = time.monotonic() - started
    load_after = os.getloadavg()
    counts_file = os.environ.get("DRILL_DYNAMODB_COUNTS")
    if counts_file and Path(counts_file).exists():
        # The counting proxy's figures at the end of the load, before the settle phase's sweeps and
        # its own invoice reads (drill/capacity.py reads both).
        (out / "dynamodb_counts_load.json").write_text(Path(counts_file).read_text())
    cpu = cpu_used(cpu_before, cpu_after, load_seconds)
    log(f"load finished after {load_seconds:.0f} s (locust exit {runner.returncode}); load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; CPU s: "
        + ", ".join(f"{k} {v['cpu_s']}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]["cpu_s"])))

    journal = read_journal(journal_path)
    settled = {"sweeps": 0, "not_at_rest": []}
    states: dict[str, dict] = {}
    if local:
        settled = settle(host, journal, log)
        states = invoice_states(host, journal)
    paid_uncredited = paid_but_not_credited(states, journal) if local else []
    for order in paid_uncredited[:20]:
        log(f"paid but neither credited nor refunded: {order}")

    profile = "release" if os.environ.get("EMETERAI_RELEASE") == "1" else "debug"
    binary = Path(args.emeterai) if args.emeterai else ROOT / "target" / profile / "emeterai"
    binary = binary if binary.exists() else None
    if binary is None:
        audit_result = {"ran": False, "reason": "no emeterai binary (cargo build --workspace --bins)"}
    else:
        audit_env = stack_env(stack_dir) if local else {}
        audit_result = audit(binary, audit_env, args.gateway_url if local else None, out, log)
        if local and audit_result.get("ran") and not audit_result.get("gateway_cross_check"):
            log("audit ran without the gateway cross-check (no simulator URL, no server key, or an "
                "`emeterai` without --gateway-url)")

    stats, failures = locust_stats(out)
    steps, expected, errors = {}, {}, {}
    journeys = journey_p50 = journey_p99 = 0
    for row in stats:
        if row["Name"] == "Aggregated":
            continue
        if row["Type"] == "EXPECTED":
            expected[row["Name"]] = int(row["Request Count"])
            continue
        if row["Name"] == "journey":
            journeys = int(row["Request Count"]) - int(row["Failure Count"])
            journey_p50, journey_p99 = row["50%"], row["99%"]
            continue
        steps[row["Name"]] = {"count": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                              "p50_ms": row["50%"], "p99_ms": row["99%"]}
    for row in failures:
        kind = f"{row['Name']}: {row['Error'][:80]}"
        errors[kind] = errors.get(kind, 0) + int(row["Occurrences"])
    fault_counts: dict[str, int] = {}
    for f in injected:
        kind = f["kind"] if f.get("ok") else f"{f['kind']} (not injected)"
        fault_counts[kind] = fault_counts.get(kind, 0) + 1
    audit_ok = audit_result.get("ran") and audit_result.get("exit") == 0 and audit_result.get("violations") == 0
    result = {
        "host": host, "local": local, "duration_s": load_seconds, "journeys": journeys,
        "journeys_per_s": journeys / load_seconds if load_seconds else 0.0,
        "journey_p50_ms": journey_p50, "journey_p99_ms": journey_p99, "steps": steps,
        "errors": errors, "expected_refusals": expected, "faults": fault_counts, "faults_detail": injected,
        "settle": settled, "paid_not_credited": paid_uncredited, "audit": audit_result,
        # The machine is shared: the load average beside every number, and the CPU each part used.
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "cpu": cpu,
        "cpu_s_per_journey": round(sum(v["cpu_s"] for v in cpu.values()) / journeys, 4) if journeys else None,
        "journal_counts": {k: sum(1 for e in journal if e["kind"] == k) for k in {e["kind"] for e in journal}},
        # A deployment without table access is judged by the load alone; wherever the audit ran,
        # it must hold.
        "passed": bool((audit_ok if audit_result.get("ran") else not local) and not paid_uncredited
                       and not settled["not_at_rest"]),
    }
    if counts_file and Path(counts_file).exists():
        (out / "dynamodb_counts.json").write_text(Path(counts_file).read_text())
    (out / "summary.json").write_text(json.dumps(result, indent=2))
    line = summary_line(result)
    (out / "summary.txt").write_text(line + "\n")
    print(line, flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
