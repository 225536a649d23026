#!/usr/bin/python3
"""Benchmark of the function runtime against its peers, in one run.

Rows (the same two ops everywhere: a small JSON op `lambda x: x["a"] + x["b"]`
and an import_function op that uses json and re):
  cpp ...            the C++ API in process (Functions::handle), fresh sandbox
                     per call and warm (isolation = "warm")
  stdio ...          `terrarium functions stdio`: JSON-RPC round trips over a pipe
  native-worker ...  a persistent python3.11 over a pipe, same JSON-RPC lines
                     (unsandboxed, state shared by every call)
  python3.11-per-call a fresh native python3.11 process per call
  http               `terrarium functions serve`, POST /ops/small, wrk 32 connections
  Metatype           published: ~200 ms cold, ~5 ms warm per Python call (reference)

Each row is the median of --repeat runs. Writes bench/results/functions.md and
functions.json.

    /usr/bin/python3 bench/functions/run.py [--build build] [--quick]
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# bench/run.py's helpers (first on the path: this file is a run.py too).
sys.path.insert(0, os.path.dirname(HERE))
from run import cpu_model  # noqa: E402

OPS_TOML = """
[[op]]
name = "small"
lambda = "lambda x: x['a'] + x['b']"

[[op]]
name = "import"
file = "ops/main.py"
function = "handler"
deps = ["ops/lib"]
"""
MAIN_PY = """import json, re
from .lib import patterns
def handler(inp):
    text = inp['text']
    return {'numbers': [int(n) for n in patterns.NUMBER.findall(text)],
            'words': len(text.split()), 'echo': json.loads(json.dumps(inp))}
"""
PATTERNS_PY = "import re\nNUMBER = re.compile(r'\\d+')\n"
PER_CALL = "import json, sys; x = json.loads(sys.argv[1]); print(x['a'] + x['b'])"
POST_LUA = """wrk.method = "POST"
wrk.body = '{"a": 1, "b": 2}'
wrk.headers["Content-Type"] = "application/json"
"""


def machine():
    return "%d cores, %s, Linux %s" % (os.cpu_count(), cpu_model(), platform.release())


def lines_of(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(command), result.stderr[-2000:]))
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk_run(url, script, duration, connections=32):
    out = subprocess.run(["wrk", "-t2", "-c%d" % connections, "-d%ds" % duration, "--latency",
                          "-s", script, url], capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))

    def latency(label):
        match = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    return {"rps": rate, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20000, help="calls per in-process row")
    parser.add_argument("--pipe-calls", type=int, default=5000)
    parser.add_argument("--spawn-calls", type=int, default=30)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="1 repeat, fewer calls, 3 s wrk runs")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.calls, args.pipe_calls, args.spawn_calls, args.duration = 1, 5000, 2000, 10, 3
    terrarium = os.path.join(args.build, "terrarium")
    bench = os.path.join(args.build, "bench", "functions_bench")
    python = shutil.which("python3.11") or "/usr/bin/python3"
    work = tempfile.mkdtemp(prefix="functions-bench-", dir=args.build)
    os.makedirs(os.path.join(work, "ops", "lib"))
    for name, text in (("ops.toml", OPS_TOML), ("ops/main.py", MAIN_PY),
                       ("ops/lib/patterns.py", PATTERNS_PY), ("post.lua", POST_LUA)):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    manifest = os.path.join(work, "ops.toml")

    samples = {}  # row -> list of (median, p99)

    def add(rows):
        for row in rows:
            samples.setdefault(row["row"], []).append((row["median_us"], row["p99_us"]))

    http_runs = []
    for repeat in range(args.repeat):
        print("[bench] repeat %d/%d" % (repeat + 1, args.repeat), file=sys.stderr, flush=True)
        add(lines_of([bench, "inproc", str(args.calls)]))
        add(lines_of([bench, "pipe", str(args.pipe_calls), "stdio", "--", terrarium, "functions",
                      "stdio", manifest, "--workers", "1"]))
        add(lines_of([bench, "pipe", str(args.pipe_calls), "native-worker", "--", python,
                      os.path.join(HERE, "native_worker.py")]))
        add(lines_of([bench, "spawn", str(args.spawn_calls), "python3.11-per-call", "--", python,
                      "-c", PER_CALL]))
        port = free_port()
        server = subprocess.Popen([terrarium, "functions", "serve", manifest, "--listen",
                                   "127.0.0.1:%d" % port], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        try:
            if not server.stdout.readline().startswith(b"Ready"):
                raise RuntimeError("terrarium functions serve did not start")
            wrk_run("http://127.0.0.1:%d/ops/small" % port, os.path.join(work, "post.lua"), 1)
            http_runs.append(wrk_run("http://127.0.0.1:%d/ops/small" % port,
                                     os.path.join(work, "post.lua"), args.duration))
        finally:
            server.terminate()
            server.wait(timeout=60)
    shutil.rmtree(work, ignore_errors=True)

    rows = []
    for name, values in samples.items():
        rows.append({"row": name, "median_us": statistics.median(v[0] for v in values),
                     "p99_us": statistics.median(v[1] for v in values), "runs": len(values)})
    http = {"rps": statistics.median(r["rps"] for r in http_runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in http_runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in http_runs),
            "non_2xx": sum(r["non_2xx"] for r in http_runs),
            "socket_errors": [r["socket_errors"] for r in http_runs if r["socket_errors"]],
            "runs": len(http_runs)}
    by_name = {row["row"]: row for row in rows}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    result = {"machine": machine(), "date": date, "rows": rows, "http": http,
              "settings": {"repeat": args.repeat, "calls": args.calls, "pipe_calls": args.pipe_calls,
                           "spawn_calls": args.spawn_calls, "wrk_duration_s": args.duration}}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "functions.json"), "w") as f:
        json.dump(result, f, indent=2)

    def cell(name, key="median_us"):
        row = by_name.get(name)
        return "%.1f" % row[key] if row else "—"

    def ratio(name, reference):
        a, b = by_name.get(name), by_name.get(reference)
        return "%.1f×" % (b["median_us"] / a["median_us"]) if a and b else "—"

    lines = [
        "# Function runtime benchmark",
        "",
        "Machine: %s; %s. `bench/functions/run.py` (medians of %d runs; %d calls per in-process "
        "row, %d per pipe row, %d process spawns; wrk %d s, 32 connections)." % (
            result["machine"], date, args.repeat, args.calls, args.pipe_calls, args.spawn_calls,
            args.duration),
        "",
        "| row | median µs | p99 µs | target |",
        "| --- | ---: | ---: | --- |",
        "| C++ API, small op, fresh sandbox per call | %s | %s | ≤ 50 median, p99 ≤ 200 |" % (
            cell("cpp small fresh"), cell("cpp small fresh", "p99_us")),
        "| C++ API, small op, warm | %s | %s | ≤ 10 |" % (cell("cpp small warm"), cell("cpp small warm", "p99_us")),
        "| C++ API, import_function (json, re), fresh | %s | %s | |" % (
            cell("cpp import_function fresh"), cell("cpp import_function fresh", "p99_us")),
        "| C++ API, import_function (json, re), warm | %s | %s | |" % (
            cell("cpp import_function warm"), cell("cpp import_function warm", "p99_us")),
        "| stdio JSON-RPC round trip, small op, fresh | %s | %s | ≤ 100 |" % (
            cell("stdio small"), cell("stdio small", "p99_us")),
        "| stdio JSON-RPC round trip, import_function, fresh | %s | %s | |" % (
            cell("stdio import_function"), cell("stdio import_function", "p99_us")),
        "| native python3.11 worker over a pipe, small (unsandboxed, shared state) | %s | %s | peer |" % (
            cell("native-worker small"), cell("native-worker small", "p99_us")),
        "| native python3.11 worker over a pipe, import_function | %s | %s | peer |" % (
            cell("native-worker import_function"), cell("native-worker import_function", "p99_us")),
        "| a python3.11 process per call, small | %s | %s | peer |" % (
            cell("python3.11-per-call small"), cell("python3.11-per-call small", "p99_us")),
        "| Metatype (published): cold / warm Python call | 200,000 / 5,000 | | reference |",
        "",
        "HTTP (`terrarium functions serve`, POST /ops/small, fresh sandbox per call): "
        "**%.0f calls/s**, p50 %.2f ms, p99 %.2f ms, %d non-2xx (target ≥ 10,000 calls/s on 2 cores)." % (
            http["rps"], http["p50_ms"], http["p99_ms"], http["non_2xx"]),
        "",
        "Ratios: a fresh sandbox per call over stdio is %s faster than a python3.11 process per "
        "call; the C++ API's fresh call is %s faster than Metatype's warm call." % (
            ratio("stdio small", "python3.11-per-call small"),
            "%.0f×" % (5000 / by_name["cpp small fresh"]["median_us"]) if "cpp small fresh" in by_name else "—"),
        "",
    ]
    with open(os.path.join(args.out, "functions.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
