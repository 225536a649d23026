#!/usr/bin/env python3
"""Instruction counts of the bench workloads (valgrind's cachegrind, `Ir`).

Wall-clock ratios on a shared 2-core VM move by 5-10 % between runs, more than
most code-generation changes are worth. The number of instructions a workload
executes does not move at all, so this driver is the A/B measure for changes to
the translated guest code: it runs every workload of bench/workloads/ once per
runner under `valgrind --tool=cachegrind --cache-sim=no`, subtracts each
runner's start-up (an empty program), and reports the counts and their ratio to
native python3.11. Fewer instructions is not the same as less time (stalls,
branch mispredictions and cache misses are not counted): confirm a change
with bench/run.py before claiming a speed-up.

The workload is passed with `-c` rather than as a file: valgrind does not
implement openat2(2), which the sandbox's file system uses, so a script path
would fail inside valgrind with ENOSYS. Every runner's output must equal
native's, as in bench/run.py.

  python3 bench/instructions.py [--build build] [--variant NAME=PATH ...]
                                [--only fib,nbody] [--jobs N] [--name instructions]
Writes bench/results/NAME.json and bench/results/NAME.md.
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from run import NATIVE, cpu_model, geomean  # noqa: E402

IR = re.compile(r"I\s+refs:\s+([\d,]+)")


def count(command):
    """(instructions, stdout) of one run under cachegrind."""
    proc = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                           "--cachegrind-out-file=/dev/null"] + command,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    match = IR.search(proc.stderr)
    if proc.returncode != 0 or not match:
        raise RuntimeError("%s failed (status %d):\n%s" % (" ".join(command[:2]), proc.returncode,
                                                           proc.stderr[-2000:]))
    return int(match.group(1).replace(",", "")), proc.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=PATH of a terrarium binary (repeatable; default: BUILD/terrarium)")
    parser.add_argument("--only", help="comma-separated workload names")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--name", default="instructions", help="results file stem")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("instructions.py: valgrind not found (apt-get install valgrind)")
    runners = [("native", None)]
    for item in args.variant or ["terrarium=" + os.path.join(args.build, "terrarium")]:
        name, sep, path = item.partition("=")
        if not sep or not name or not os.access(path, os.X_OK):
            sys.exit("instructions.py: --variant %r: expected NAME=PATH of an executable" % item)
        runners.append((name, os.path.abspath(path)))
    workloads_dir = os.path.join(HERE, "workloads")
    workloads = sorted(f[:-3] for f in os.listdir(workloads_dir) if f.endswith(".py"))
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(workloads))
        if unknown:
            sys.exit("instructions.py: unknown workload(s): %s" % ", ".join(unknown))
        workloads = [w for w in workloads if w in wanted]
    sources = {"_startup": "pass"}
    for w in workloads:
        with open(os.path.join(workloads_dir, w + ".py")) as f:
            sources[w] = f.read()

    def command(binary, code):
        return [NATIVE, "-c", code] if binary is None else [binary, "run", "-c", code]

    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for name, binary in runners:
            for w, code in sources.items():
                jobs[(name, w)] = pool.submit(count, command(binary, code))
        results = {}
        for key, job in jobs.items():
            results[key] = job.result()
            sys.stderr.write("[instructions] %s %s: %d\n" % (key[0], key[1], results[key][0]))
    for name, _ in runners[1:]:
        for w in workloads:
            if results[(name, w)][1] != results[("native", w)][1]:
                sys.exit("instructions.py: %s's output of %s differs from native's" % (name, w))

    net = {(name, w): results[(name, w)][0] - results[(name, "_startup")][0]
           for name, _ in runners for w in workloads}
    ratios = {name: [net[(name, w)] / net[("native", w)] for w in workloads] for name, _ in runners}
    stamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    md = ["# Instruction counts (`%s`)" % args.name, "",
          "%s; %s; valgrind cachegrind `Ir`, one run each (the counts do not vary), start-up "
          "(an empty program) subtracted. Ratios are to native `python3.11` (lower is better)." %
          (stamp, cpu_model()), "",
          "| workload | " + " | ".join(name for name, _ in runners) + " |",
          "| --- |" + " --- |" * len(runners)]
    for i, w in enumerate(workloads):
        cells = ["%.0f M" % (net[("native", w)] / 1e6)]
        cells += ["%.0f M · **%.3f×**" % (net[(name, w)] / 1e6, ratios[name][i]) for name, _ in runners[1:]]
        md.append("| %s | %s |" % (w, " | ".join(cells)))
    md.append("| **geometric mean** | 1 | " + " | ".join("**%.3f×**" % geomean(ratios[name])
                                                       for name, _ in runners[1:]) + " |")
    md.append("| *start-up (empty program)* | " + " | ".join(
        "%.0f M" % (results[(name, "_startup")][0] / 1e6) for name, _ in runners) + " |")
    md += ["", "Runners: " + "; ".join("`%s`: `%s`" % (name, binary or NATIVE) for name, binary in runners)]
    out_dir = os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, args.name + ".md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(out_dir, args.name + ".json"), "w") as f:
        json.dump({"date": stamp, "cpu": cpu_model(), "runners": dict(runners),
                   "instructions": {"%s/%s" % k: v for k, v in net.items()},
                   "startup": {name: results[(name, "_startup")][0] for name, _ in runners}},
                  f, indent=1, sort_keys=True)
    print("\n".join(md))


if __name__ == "__main__":
    main()
