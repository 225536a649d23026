#!/usr/bin/env python3
"""Terrarium benchmark driver (stdlib only).

Runs every workload in bench/workloads/ with
  * native CPython   (/usr/bin/python3.11),
  * `terrarium run`  (one or more builds: --variant NAME=PATH, default build/terrarium),
  * the same python.wasm under Node's WASI (bench/node_wasi_runner.mjs),
interleaved (each repetition runs every workload on every runner, in a rotating
order), and reports medians and ratios to native. Every runner's stdout must be
identical to native's, otherwise the driver stops with a diff (exit status 1).

Two times are recorded per run: wall clock and the child's CPU time
(user + sys from getrusage). The machine may be shared, so CPU time is the
steadier of the two; Node's CPU time includes its JIT compiler threads.

  python3 bench/run.py [--build build] [--reps 5] [--variant NAME=PATH ...]
                       [--no-node] [--only fib,nbody] [--name latest]
Writes bench/results/NAME.json and bench/results/NAME.md.
"""
import argparse
import datetime
import difflib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NATIVE = "/usr/bin/python3.11"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(command):
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), \
        proc.stderr.decode("utf-8", "replace"), wall, cpu


def geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=PATH of a terrarium binary (repeatable)")
    parser.add_argument("--no-node", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--name", default="latest", help="results file stem")
    parser.add_argument("--node", default="node")
    args = parser.parse_args()

    workload_dir = os.path.join(HERE, "workloads")
    workloads = sorted(f[:-3] for f in os.listdir(workload_dir) if f.endswith(".py"))
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if w not in workloads]
        if unknown:
            sys.exit("bench: unknown workload(s): %s" % ", ".join(unknown))
        workloads = wanted

    runners = [("native", lambda script: [NATIVE, script])]
    variants = args.variant or ["terrarium=%s" % os.path.join(args.build, "terrarium")]
    for spec in variants:
        name, _, path = spec.partition("=")
        if not path or not os.access(path, os.X_OK):
            sys.exit("bench: no executable terrarium binary for variant %r" % spec)
        runners.append((name, lambda script, path=path: [path, "run", script]))
    if not args.no_node:
        wasm = os.path.join(args.build, "guest", "python.wasm")
        stdlib = os.path.join(args.build, "guest", "stdlib")
        runner = os.path.join(HERE, "node_wasi_runner.mjs")
        if not (os.path.exists(wasm) and os.path.isdir(stdlib)):
            sys.exit("bench: %s or %s missing (build first, or pass --no-node)" % (wasm, stdlib))
        runners.append(("node-wasi", lambda script: [args.node, "--no-warnings", runner,
                                                     wasm, stdlib, script]))

    names = [name for name, _ in runners]
    times = {w: {n: [] for n in names} for w in workloads}
    cpus = {w: {n: [] for n in names} for w in workloads}
    print("bench: %d workloads x %d runners x %d reps (interleaved)"
          % (len(workloads), len(runners), args.reps), flush=True)
    startup = {n: [] for n in names}
    retries = {}
    for rep in range(args.reps):
        # Start-up cost of each runner (an empty script), outside the means.
        for name, command in runners:
            status, _, err, wall, _ = run_once(command(os.path.join(HERE, "startup.py")))
            if status != 0:
                sys.exit("bench: FAILED: startup on %s exited %d\n%s" % (name, status, err[-3000:]))
            startup[name].append(wall)
        for wi, workload in enumerate(workloads):
            script = os.path.join(workload_dir, workload + ".py")
            shift = (rep + wi) % len(runners)
            for name, command in runners[shift:] + runners[:shift]:
                status, out, err, wall, cpu = run_once(command(script))
                # Node itself occasionally dies (SIGSEGV in V8, or a spurious
                # TypeError from its WASI layer), not the guest; rerun it, and
                # count it. Terrarium gets no second chance.
                tries = 0
                while name == "node-wasi" and status != 0 and tries < 2:
                    tries += 1
                    retries[name] = retries.get(name, 0) + 1
                    sys.stderr.write("bench: warning: %s on %s failed (status %d); rerunning\n"
                                     % (workload, name, status))
                    status, out, err, wall, cpu = run_once(command(script))
                if status != 0:
                    sys.stderr.write("bench: FAILED: %s on %s exited %d\n%s\n"
                                     % (workload, name, status, err[-3000:]))
                    sys.exit(1)
                outputs = cpus[workload].setdefault("_out", {})
                outputs[name] = out
                times[workload][name].append(wall)
                cpus[workload][name].append(cpu)
            outs = cpus[workload].pop("_out")
            for name in names:
                if outs[name] != outs["native"]:
                    sys.stderr.write("bench: OUTPUT MISMATCH in %s: %s differs from native\n"
                                     % (workload, name))
                    sys.stderr.writelines(difflib.unified_diff(
                        outs["native"].splitlines(True), outs[name].splitlines(True),
                        "native", name))
                    sys.exit(1)
            print("  rep %d %-12s %s" % (rep + 1, workload, "  ".join(
                "%s %.2fs" % (n, times[workload][n][-1]) for n in names)), flush=True)

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(),
                    "loadavg_at_end": os.getloadavg()},
        "reps": args.reps,
        "runners": {name: " ".join(command("SCRIPT")) for name, command in runners},
        "startup_median_wall_s": {n: round(statistics.median(v), 4) for n, v in startup.items()},
        "crash_retries": retries,
        "workloads": {},
        "geomean_ratio_wall": {},
        "geomean_ratio_cpu": {},
        "max_ratio_wall": {},
    }
    for workload in workloads:
        entry = {}
        native_wall = statistics.median(times[workload]["native"])
        native_cpu = statistics.median(cpus[workload]["native"])
        for name in names:
            wall = statistics.median(times[workload][name])
            cpu = statistics.median(cpus[workload][name])
            entry[name] = {"median_wall_s": round(wall, 4), "median_cpu_s": round(cpu, 4),
                           "ratio_wall": round(wall / native_wall, 3),
                           "ratio_cpu": round(cpu / native_cpu, 3),
                           "wall_s": [round(t, 4) for t in times[workload][name]],
                           "cpu_s": [round(t, 4) for t in cpus[workload][name]]}
        results["workloads"][workload] = entry
    for name in names:
        results["geomean_ratio_wall"][name] = round(
            geomean([results["workloads"][w][name]["ratio_wall"] for w in workloads]), 3)
        results["geomean_ratio_cpu"][name] = round(
            geomean([results["workloads"][w][name]["ratio_cpu"] for w in workloads]), 3)
        results["max_ratio_wall"][name] = max(
            results["workloads"][w][name]["ratio_wall"] for w in workloads)

    lines = ["# Benchmark results (`%s`)" % args.name, "",
             "%s; %d CPUs (%s); %d interleaved repetitions, medians; load average at end %s."
             % (results["date"], results["machine"]["nproc"], results["machine"]["cpu"],
                args.reps, " ".join("%.1f" % x for x in results["machine"]["loadavg_at_end"])),
             "Ratios are to native `python3.11` (lower is better): wall clock, and CPU time in "
             "parentheses.", ""]
    header = "| workload | native | " + " | ".join(n for n in names if n != "native") + " |"
    lines.append(header)
    lines.append("|" + " --- |" * (len(names) + 1))
    for workload in workloads:
        entry = results["workloads"][workload]
        cells = ["%.2f s" % entry["native"]["median_wall_s"]]
        for name in names:
            if name == "native":
                continue
            cells.append("%.2f s · **%.2f×** (%.2f×)" % (entry[name]["median_wall_s"],
                                                       entry[name]["ratio_wall"],
                                                       entry[name]["ratio_cpu"]))
        lines.append("| %s | %s |" % (workload, " | ".join(cells)))
    lines.append("| **geometric mean** | 1 | " + " | ".join(
        "**%.2f×** (%.2f×)" % (results["geomean_ratio_wall"][n], results["geomean_ratio_cpu"][n])
        for n in names if n != "native") + " |")
    lines.append("| *start-up (empty script, not in the mean)* | %.3f s | " % results["startup_median_wall_s"]["native"]
                 + " | ".join("%.3f s" % results["startup_median_wall_s"][n] for n in names if n != "native") + " |")
    lines.append("")
    lines.append("Runners: " + "; ".join("`%s`: `%s`" % (n, c) for n, c in results["runners"].items()))
    lines.append("")
    text = "\n".join(lines)

    out_dir = os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, args.name + ".json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, args.name + ".md"), "w") as f:
        f.write(text)
    print()
    print(text)


if __name__ == "__main__":
    main()
