#!/usr/bin/env python3
"""Runs CPython's own regression tests (Lib/test of the Debian source the guest
is built from) inside the sandbox, module by module, and the same modules with
the same python.wasm under Node's WASI as a reference.

  run.py record [--modules-file F | MODULE...]   run both hosts, write the pass
                                                 lists and summary.md here
  run.py check FILE [--limit N]                  run the modules listed in FILE
                                                 under Terrarium; exit 1 if one
                                                 does not pass

Each module runs as `python -m test -v MODULE` (no -u resources) with a
writable /tmp (a fresh host temp dir per run) and a per-module timeout; at most
--jobs (default 2) runs at once. A module "passes" when regrtest reports
"Tests result: SUCCESS" with the module OK (a module skipped as a whole, e.g.
test_ssl without _ssl, is recorded as skipped, not passed). Logs go to
BUILD/cpython-tests/HOST/MODULE.log.

Stdlib only, so the build's python3 runs it.
"""
import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from regrtest_sandbox import GUEST_TEST, REGRTEST, env_options, scratch, terrarium_command  # noqa: E402

GUEST_STDLIB = "/usr/local/lib/python3.11"


def source_dir(build):
    with open(os.path.join(build, "guest", "cpython", "source-dir.txt")) as f:
        return f.read().strip()


def all_modules(build):
    test_dir = os.path.join(source_dir(build), "Lib", "test")
    names = []
    for entry in sorted(os.listdir(test_dir)):
        path = os.path.join(test_dir, entry)
        if entry.startswith("test_") and entry.endswith(".py"):
            names.append(entry[:-3])
        elif entry.startswith("test_") and os.path.isfile(os.path.join(path, "__init__.py")):
            names.append(entry)
    return names


def command(host, build, module, tmp):
    lib_test = os.path.join(source_dir(build), "Lib", "test")
    if host == "terrarium":
        return terrarium_command(os.path.join(build, "terrarium"), lib_test, tmp, ["-v", module])
    return (["node", "--no-warnings", os.path.join(HERE, "node_runner.mjs"),
             "--wasm", os.path.join(build, "guest", "python.wasm"),
             "--dir", f"{tmp}/root::/",
             "--dir", f"{os.path.join(build, 'guest', 'stdlib')}::{GUEST_STDLIB}",
             "--dir", f"{lib_test}::{GUEST_TEST}", "--dir", f"{tmp}/tmp::/tmp"]
            + env_options() + ["--"] + REGRTEST + ["-v", module])


def reason_for(status, text):
    """One line saying why a run did not pass."""
    lines = text.splitlines()
    for line in lines:
        if "guest trapped" in line or "terrarium:" in line and "limit" in line:
            return line.strip()
    m = re.search(r"^(test_\S+) skipped -- (.*)$", text, re.M)
    if m:
        return "skipped: " + m.group(2).strip()
    problems = [l for l in lines if re.match(r"^(ERROR|FAIL): ", l)]
    if problems:
        first = problems[0]
        # The assertion/exception line of the first problem, if any.
        detail = ""
        idx = text.find(first + "\n")
        block = text[idx:].split("\n\n=====")[0].splitlines() if idx >= 0 else []
        for l in reversed(block):
            if re.match(r"^\w[\w.]*(Error|Exception|Failure|Exit|Interrupt)\b", l):
                detail = " — " + l.strip()
                break
        return f"{len(problems)} failing test(s), first: {first}{detail}"[:300]
    if "Tests result: NO TESTS RAN" in text:
        return "no tests ran"
    for l in reversed(lines):
        if re.match(r"^\w[\w.]*(Error|Exception)\b", l):
            return ("exit %d: " % status) + l.strip()[:250]
    tail = [l for l in lines if l.strip()][-1:] or [""]
    return f"exit {status}: {tail[0].strip()[:250]}"


def run_one(host, build, module, timeout, logdir):
    # A fresh, empty, writable "/" and /tmp per run, the same on both hosts.
    start = time.monotonic()
    with scratch(f"terrarium-cpython-{host}-") as tmp:
        for attempt in range(5):  # the binary may be being relinked right now
            try:
                proc = subprocess.Popen(command(host, build, module, tmp), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                break
            except OSError:
                if attempt == 4:
                    raise
                time.sleep(2)
        try:
            out, _ = proc.communicate(timeout=timeout)
            status = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            status = None
    elapsed = time.monotonic() - start
    text = out.decode("utf-8", "replace")
    if logdir:
        os.makedirs(logdir, exist_ok=True)
        with open(os.path.join(logdir, module + ".log"), "w") as f:
            f.write(text)
            f.write(f"\n[run.py] status={status} elapsed={elapsed:.1f}s\n")
    return (module,) + classify(status, text, timeout) + (elapsed,)


def classify(status, text, timeout):
    """(outcome, reason): pass, skip (the module, or every test in it, was
    skipped), fail, or timeout (status None)."""
    if status is None:
        return "timeout", f"timeout after {timeout:.0f} s"
    ok = status == 0 and "Tests result: SUCCESS" in text
    ran = sum(int(n) for n in re.findall(r"^Ran (\d+) tests? in ", text, re.M))
    skipped = sum(int(n) for n in re.findall(r"^OK \(.*?skipped=(\d+)", text, re.M))
    if ok and re.search(r"^1 test OK\.", text, re.M):
        if ran == skipped:
            why = re.search(r"\.\.\. skipped '(.*)'$", text, re.M)
            return "skip", f"all {ran} tests skipped" + (f", e.g. {why.group(1)}" if why else "")
        return "pass", ""
    if ok or re.search(r"^(test_\S+) skipped -- ", text, re.M):
        return "skip", reason_for(status, text)
    return "fail", reason_for(status, text)


def from_logs(host, logroot, modules, timeout):
    """Results re-read from the logs of an earlier run (summarize)."""
    results = {}
    for module in modules:
        path = os.path.join(logroot, host, module + ".log")
        if not os.path.exists(path):
            results[module] = ("fail", "not run", 0.0)
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        m = re.search(r"^\[run\.py\] status=(\S+) elapsed=([\d.]+)s$", text, re.M)
        status = None if m.group(1) == "None" else int(m.group(1))
        results[module] = classify(status, text[:m.start()], timeout) + (float(m.group(2)),)
    return results


def run_many(host, build, modules, timeout, jobs, logroot, progress=True):
    results = {}
    logdir = os.path.join(logroot, host) if logroot else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, host, build, m, timeout, logdir) for m in modules]
        for n, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            module, outcome, reason, elapsed = fut.result()
            results[module] = (outcome, reason, elapsed)
            if progress:
                print(f"[{host} {n}/{len(modules)}] {module}: {outcome} ({elapsed:.1f} s)"
                      + (f" {reason}" if reason and outcome != "pass" else ""), flush=True)
    return results


def write_list(path, names, header):
    with open(path, "w") as f:
        f.write(header)
        for n in sorted(names):
            f.write(n + "\n")


def read_list(path):
    with open(path) as f:
        return [l.split("#")[0].strip() for l in f if l.split("#")[0].strip()]


def summary(modules, res, timeout, node_timeout):
    t = res["terrarium"]
    n = res["node"]
    def count(r, o):
        return sum(1 for m in modules if r[m][0] == o)
    out = ["# CPython regression tests: Terrarium vs Node WASI", "",
           f"Generated by `tests/cpython/run.py record` ({len(modules)} modules, "
           f"`python -m test -v MODULE`, no `-u` resources, a cap per module of {timeout:.0f} s "
           f"under Terrarium and {node_timeout:.0f} s under Node, 2 runs at a time). Same python.wasm for both hosts. Node 20's WASI hangs in "
           "time.sleep() (absolute-clock poll_oneoff subscriptions), so modules that sleep "
           "time out there.", "",
           "A module passes when regrtest reports it OK with at least one test run; "
           "\"skipped\" means the module, or every test in it, was skipped.", "",
           "| | pass | skipped | fail | timeout | total run time |",
           "| --- | --- | --- | --- | --- | --- |"]
    for host, r in (("Terrarium", t), ("Node 20 WASI", n)):
        total = sum(r[m][2] for m in modules) / 60
        out.append(f"| {host} | {count(r, 'pass')} | {count(r, 'skip')} | {count(r, 'fail')} "
                   f"| {count(r, 'timeout')} | {total:.0f} min |")
    only_node = [m for m in modules if n[m][0] == "pass" and t[m][0] != "pass"]
    only_t = [m for m in modules if t[m][0] == "pass" and n[m][0] != "pass"]
    out += ["", f"Pass under Node but not Terrarium: {len(only_node)}"
            + (" — " + ", ".join(only_node) if only_node else "") + ".",
            "(Known cause for test_bdb, test_runpy, test_support, test_trace: they write files into "
            "the first sys.path directory, the stdlib. Terrarium serves the stdlib from its "
            "read-only image; Node's WASI has no read-only preopens, so there the staged stdlib "
            "directory is writable.)",
            f"Pass under Terrarium but not Node: {len(only_t)}.", "",
            "## Modules that do not pass under Terrarium", "",
            "| module | Terrarium | Node |", "| --- | --- | --- |"]
    def cell(r, m):
        o, why, _ = r[m]
        return o if o == "pass" else f"{o}: {why}".replace("|", "\\|")
    for m in modules:
        if t[m][0] != "pass":
            out.append(f"| {m} | {cell(t, m)} | {cell(n, m)} |")
    out += ["", "## Modules that pass under Terrarium but not Node", "",
            "| module | Node |", "| --- | --- |"]
    for m in only_t:
        out.append(f"| {m} | {cell(n, m)} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--modules-file")
    rec.add_argument("--hosts", default="terrarium,node")
    rec.add_argument("--node-timeout", type=float, help="timeout under Node (default: --timeout)")
    rec.add_argument("--out", default=HERE)
    rec.add_argument("--from-logs", action="store_true",
                     help="do not run: re-read the logs of the last run (BUILD/cpython-tests)")
    rec.add_argument("modules", nargs="*")
    chk = sub.add_parser("check")
    chk.add_argument("list")
    chk.add_argument("--limit", type=int)
    args = ap.parse_args()
    args.jobs = max(1, min(args.jobs, 2))
    build = os.path.abspath(args.build)
    logroot = os.path.join(build, "cpython-tests")

    if args.cmd == "check":
        modules = read_list(args.list)[: args.limit]
        res = run_many("terrarium", build, modules, args.timeout, args.jobs, logroot)
        bad = sorted(m for m, r in res.items() if r[0] != "pass")
        for m in bad:
            print(f"NO LONGER PASSES: {m}: {res[m][0]} {res[m][1]} (log: {logroot}/terrarium/{m}.log)")
        print(f"{len(modules) - len(bad)}/{len(modules)} modules pass")
        return 1 if bad else 0

    if args.modules:
        modules = args.modules
    elif args.modules_file:
        modules = read_list(args.modules_file)
    else:
        modules = all_modules(build)
    res = {}
    for host in args.hosts.split(","):
        timeout = args.node_timeout if host == "node" and args.node_timeout else args.timeout
        if args.from_logs:
            res[host] = from_logs(host, logroot, modules, timeout)
        else:
            res[host] = run_many(host, build, modules, timeout, args.jobs, logroot)
    os.makedirs(args.out, exist_ok=True)
    header = ("# Modules of CPython's Lib/test that pass under {} "
              "(tests/cpython/run.py record; one per line)\n")
    for host in res:
        passed = [m for m in modules if res[host][m][0] == "pass"]
        write_list(os.path.join(args.out, f"{host}-pass.txt"), passed, header.format(host))
    if "terrarium" in res and "node" in res:
        with open(os.path.join(args.out, "summary.md"), "w") as f:
            f.write(summary(modules, res, args.timeout, args.node_timeout or args.timeout))
    for host in res:
        print(host, {o: sum(1 for r in res[host].values() if r[0] == o)
                     for o in ("pass", "skip", "fail", "timeout")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
