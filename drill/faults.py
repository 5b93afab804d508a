"""Faults injected into a local stack during the drill (issue 11).

Every process is found through the PID files the stack writes into its state folder
(scripts/run-local.sh: gateway.pid, lambda.pid, dynamodb.pid, seaweedfs.pid) and the children
of `cargo lambda watch` read from /proc; nothing is looked up or killed by name pattern.

- kill_function_instance: SIGKILL to one running function instance (a child of cargo lambda
  watch), chosen among those of the busiest functions: an invocation in flight dies with it, as a
  Lambda execution environment that crashes or times out mid-request.
- pause_dynamodb: SIGSTOP to DynamoDB Local for a few seconds, then SIGCONT (a throttled or
  unreachable table: every request in flight waits).
- restart_seaweedfs: SIGTERM to the S3 server, then the same command line started again from the
  same folder with the same environment (data kept). `seaweedfs.restarting` in the state folder
  tells run-local.sh's watch loop that the part is away on purpose.
- simulator_failing: the payment simulator answers 5xx / slowly for a while (POST
  /dev/midtrans/faults on the local gateway), when the gateway has that route.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

FUNCTION_BINARIES = ("checkout", "payment-webhook", "stamp", "refund")


def read_pid(stack_dir: Path, part: str) -> int | None:
    try:
        pid = int((stack_dir / f"{part}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def children(pid: int) -> list[int]:
    """Direct children of pid, from /proc/*/stat (the field after the command in parentheses)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def executable_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def function_instances(stack_dir: Path) -> dict[int, str]:
    """PID -> function binary, for every function process under cargo lambda watch, or under
    scripts/function-instances.sh when the stack runs them itself (EMETERAI_LAMBDA_RUNNER=direct)."""
    pids = []
    for part in ("lambda", "instances"):
        parent = read_pid(stack_dir, part)
        if parent is not None:
            pids += descendants(parent)
    return {pid: name for pid in pids if (name := executable_name(pid)) in FUNCTION_BINARIES}


def cpu_ticks(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def killable_instances(stack_dir: Path) -> dict[int, str]:
    """Instances whose function keeps at least one other live instance. cargo lambda watch does
    not replace a killed instance (the instance supervisor, `emeterai-local instance`, now starts a
    new one as Lambda would, after an init of its own; the rule stays), so killing a
    function's last one would leave it answering 504 for the rest of the drill and turn the
    verdict into one about the harness (seen: every GET /v1/invoices timing out in the settle
    phase after both checkout instances were killed)."""
    instances = function_instances(stack_dir)
    live: dict[str, int] = {}
    for name in instances.values():
        live[name] = live.get(name, 0) + 1
    return {pid: name for pid, name in instances.items() if live[name] >= 2}


def kill_function_instance(stack_dir: Path, log, prefer: tuple[str, ...] = ("stamp", "checkout")) -> dict:
    instances = killable_instances(stack_dir)
    if not instances:
        return {"kind": "function_instance_killed", "ok": False,
                "detail": "no function has a second live instance (the last one is never killed)"}
    # An instance that used CPU in the last 200 ms is most likely in the middle of a request: look
    # for one for up to 5 s (preferring the given functions), else take an idle one.
    deadline = time.monotonic() + 5
    while True:
        before = {pid: cpu_ticks(pid) for pid in instances}
        time.sleep(0.2)
        used = {pid: cpu_ticks(pid) - before[pid] for pid in instances}
        busy = sorted(instances, key=lambda pid: (used[pid] == 0, instances[pid] not in prefer, -used[pid],
                                                  random.random()))
        if used[busy[0]] > 0 or time.monotonic() > deadline:
            break
        instances = killable_instances(stack_dir) or instances
    victim = busy[0]
    try:
        os.kill(victim, signal.SIGKILL)
    except ProcessLookupError:
        return {"kind": "function_instance_killed", "ok": False, "detail": f"{victim} already gone"}
    detail = f"{instances[victim]} pid {victim} (busy {used[victim]} ticks in the 200 ms before)"
    log(f"fault: SIGKILL to function instance {detail}")
    return {"kind": "function_instance_killed", "ok": True, "detail": detail}


_paused: set[int] = set()


def pause_dynamodb(stack_dir: Path, log, seconds: float, stop) -> dict:
    pid = read_pid(stack_dir, "dynamodb")
    if pid is None:
        return {"kind": "dynamodb_paused", "ok": False, "detail": "no dynamodb.pid"}
    log(f"fault: SIGSTOP to DynamoDB Local (pid {pid}) for {seconds:.0f} s")
    _paused.add(pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        stop.wait(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
        _paused.discard(pid)
    log("fault: SIGCONT to DynamoDB Local")
    return {"kind": "dynamodb_paused", "ok": True, "detail": f"pid {pid}, {seconds:.0f} s"}


def resume_everything(stack_dir: Path, log) -> None:
    """Whatever happens to the drill, nothing stays stopped."""
    for pid in list(_paused) + [p for p in [read_pid(stack_dir, "dynamodb")] if p]:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    _paused.clear()
    marker = stack_dir / "seaweedfs.restarting"
    if marker.exists():
        log("a SeaweedFS restart did not finish; the stack's watch loop will notice")
        marker.unlink(missing_ok=True)


def s3_port(cmdline: list[str]) -> int | None:
    for arg in cmdline:
        if arg.startswith("-s3.port="):
            return int(arg.split("=", 1)[1])
    return None


def port_answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def restart_seaweedfs(stack_dir: Path, log) -> dict:
    pid = read_pid(stack_dir, "seaweedfs")
    if pid is None:
        return {"kind": "seaweedfs_restarted", "ok": False, "detail": "no seaweedfs.pid"}
    cmdline = [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0") if a]
    cwd = os.readlink(f"/proc/{pid}/cwd")
    env = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv)
    marker = stack_dir / "seaweedfs.restarting"
    marker.write_text(str(pid))
    started = time.monotonic()
    try:
        log(f"fault: restarting SeaweedFS (SIGTERM to pid {pid})")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            # A zombie still has /proc/PID until its parent reaps it; its state is Z.
            try:
                if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
                    break
            except (OSError, IndexError):
                break
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with open(stack_dir / "seaweedfs.log", "ab") as out:
            new = subprocess.Popen(cmdline, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        (stack_dir / "seaweedfs.pid").write_text(f"{new.pid}\n")
        port = s3_port(cmdline)
        deadline = time.monotonic() + 60
        while port and not port_answers(port) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        marker.unlink(missing_ok=True)
    took = time.monotonic() - started
    log(f"fault: SeaweedFS back as pid {new.pid} after {took:.1f} s")
    return {"kind": "seaweedfs_restarted", "ok": True, "detail": f"pid {pid} -> {new.pid}, {took:.1f} s down"}


def simulator_failing(host: str, log, seconds: float, stop) -> dict:
    """The simulator answers its API with 503s and 1.5 s delays for `seconds` (local route)."""
    def post(body: dict) -> int:
        request = urllib.request.Request(f"{host}/dev/midtrans/faults", data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except (urllib.error.URLError, OSError):
            return 0

    status = post({"fail_percent": 50, "delay_ms": 1500})
    if status != 200:
        return {"kind": "simulator_failing", "ok": False, "detail": f"/dev/midtrans/faults answered {status}"}
    log(f"fault: payment simulator failing half its requests and 1.5 s slow for {seconds:.0f} s")
    try:
        stop.wait(seconds)
    finally:
        post({"fail_percent": 0, "delay_ms": 0})
    log("fault: payment simulator healthy again")
    return {"kind": "simulator_failing", "ok": True, "detail": f"50% 503, 1.5 s delay, {seconds:.0f} s"}


def run_schedule(stack_dir: Path, host: str, duration: float, stop, injected: list, log) -> None:
    """The faults at fixed points of the run (fractions of its length), peaks included."""
    pause = max(2.0, min(8.0, duration * 0.05))
    schedule = [
        (0.15, lambda: kill_function_instance(stack_dir, log)),
        (0.30, lambda: pause_dynamodb(stack_dir, log, pause, stop)),
        (0.40, lambda: simulator_failing(host, log, max(3.0, duration * 0.08), stop)),
        (0.50, lambda: restart_seaweedfs(stack_dir, log)),
        (0.65, lambda: kill_function_instance(stack_dir, log, prefer=("payment-webhook", "checkout"))),
        (0.75, lambda: pause_dynamodb(stack_dir, log, pause, stop)),
        (0.85, lambda: kill_function_instance(stack_dir, log)),
    ]
    started = time.monotonic()
    for at, inject in schedule:
        if stop.wait(max(0.0, started + at * duration - time.monotonic())):
            return
        try:
            outcome = inject()
        except Exception as e:  # noqa: BLE001 - a fault that could not be injected is reported, not fatal
            outcome = {"kind": "injection_failed", "ok": False, "detail": repr(e)}
        if not outcome.get("ok"):
            log(f"fault not injected: {outcome}")
        injected.append({**outcome, "at_s": round(time.monotonic() - started, 1)})
