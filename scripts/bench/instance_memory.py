#!/usr/bin/env python3
"""Peak memory of each local function instance while a command runs, against each function's
MemorySize (issue 12: the local stack runs every instance under its template MemorySize).

    scripts/with-local-stack.sh scripts/bench/instance_memory.py [--interval S] -- CMD [ARGS...]

For example, with the release build and a short drill (BENCHMARKS.md, "Memory of the function
instances"):

    EMETERAI_RELEASE=1 scripts/with-local-stack.sh scripts/bench/instance_memory.py -- \\
        .local/venv/bin/python drill/drill.py --constant-users 8 --duration 30 --no-faults

Every INTERVAL seconds until CMD ends, it reads /proc/PID/status of each function binary running
under the stack (the process trees of EMETERAI_STACK_DIR's lambda.pid and instances.pid): VmHWM,
the instance's peak resident set since it started, which is what Lambda reports as "Max Memory
Used" for an execution environment; RssAnon and RssFile at the last reading. The MemorySize is the
instance's own "Max data size" limit, which `emeterai-local instance` sets to the function's
template MemorySize. Prints one Markdown row per function and exits with CMD's status.
"""

import argparse
import os
import subprocess
import sys
import time

FUNCTIONS = ["checkout", "payment-webhook", "stamp", "refund"]


def children_by_parent():
    tree = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The parent PID is the second field after the command, which is in parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def function_instances(stack_dir):
    roots = []
    for file in ("lambda.pid", "instances.pid"):
        try:
            with open(os.path.join(stack_dir, file)) as f:
                roots.append(int(f.read().strip()))
        except (OSError, ValueError):
            pass
    tree = children_by_parent()
    below, i = list(roots), 0
    while i < len(below):
        below.extend(tree.get(below[i], []))
        i += 1
    found = {}
    for pid in below:
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        except OSError:
            continue
        if exe in FUNCTIONS:
            found[pid] = exe
    return found


def kib(status, field):
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def data_limit(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max data size"):
                    value = line[len("Max data size"):].split()[0]
                    return None if value == "unlimited" else int(value)
    except OSError:
        pass
    return None


def sample(stack_dir, seen):
    for pid, function in function_instances(stack_dir).items():
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except OSError:
            continue
        entry = seen.setdefault(pid, {"function": function, "limit": data_limit(pid)})
        entry["hwm"] = max(entry.get("hwm", 0), kib(status, "VmHWM"))
        entry["anon"] = kib(status, "RssAnon")
        entry["file"] = kib(status, "RssFile")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("usage: instance_memory.py [--interval S] -- CMD [ARGS...]")
    stack_dir = os.environ.get("EMETERAI_STACK_DIR")
    if not stack_dir:
        sys.exit("EMETERAI_STACK_DIR is not set: run under scripts/with-local-stack.sh")
    seen = {}
    child = subprocess.Popen(command)
    while child.poll() is None:
        sample(stack_dir, seen)
        time.sleep(args.interval)
    sample(stack_dir, seen)
    print("| function | instances | peak RSS (VmHWM), largest instance | RssAnon / RssFile at the end | MemorySize | peak / MemorySize |")
    print("| --- | --- | --- | --- | --- | --- |")
    for function in FUNCTIONS:
        entries = [e for e in seen.values() if e["function"] == function]
        if not entries:
            print(f"| {function} | 0 | - | - | - | - |")
            continue
        top = max(entries, key=lambda e: e["hwm"])
        limit = top["limit"]
        share = f"{100 * top['hwm'] * 1024 / limit:.0f}%" if limit else "-"
        limit_text = f"{limit / 2**20:.0f} MB" if limit else "unlimited"
        print(f"| {function} | {len(entries)} | {top['hwm'] / 1024:.1f} MB | {top['anon'] / 1024:.1f} / {top['file'] / 1024:.1f} MB "
              f"| {limit_text} | {share} |")
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
