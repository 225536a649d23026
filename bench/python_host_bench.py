#!/usr/bin/python3
"""The host-side Python binding against what Python programs use today.

Rows (medians of --repeat runs, each the median of N calls):
  call            host Python -> guest export -> host, ~100 B of JSON
  host function   host -> guest -> a Python host function -> guest -> host
  fresh sandbox   Snapshot.sandbox() + call (a fresh interpreter per call)
  pool            Pool.call (a pooled sandbox reset after each call)
  two threads     throughput of two threads on two sandboxes / one thread's
  python3 -I -c   a fresh native interpreter per call (subprocess)
  native worker   a persistent python3 over a pipe (unsandboxed, shared state)

    PYTHONPATH=build/python /usr/bin/python3 bench/python_host_bench.py
Writes bench/results/python-host.md.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "python"))
import terrarium  # noqa: E402
from run import cpu_model  # noqa: E402  (bench/run.py, beside this file)

PAYLOAD = {"id": 7, "name": "row-7", "tags": ["a", "b", "c"], "score": 0.5, "ok": True, "pad": "x" * 20}
GUEST = ("import terrarium\n@terrarium.export\ndef echo(x):\n    return x\n"
         "@terrarium.export\ndef via_host(x):\n    return terrarium.host.add(x, 1)\n"
         "@terrarium.export\ndef spin(n):\n    t = 0\n    for i in range(n):\n        t += i\n    return t\n")
WORKER = ("import sys, json\nfor line in sys.stdin:\n    sys.stdout.write(json.dumps(json.loads(line)) + '\\n')\n"
          "    sys.stdout.flush()\n")


def median_us(function, calls):
    for _ in range(min(500, calls)):
        function()
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        function()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def machine():
    return "%d cores, %s, Linux %s" % (os.cpu_count(), cpu_model(), platform.release())


def one_round(calls):
    sandbox = terrarium.Sandbox()

    @sandbox.host_function
    def add(a, b):
        return a + b

    sandbox.exec(GUEST)
    rows = {"call": median_us(lambda: sandbox.call("echo", PAYLOAD), calls),
            "host function": median_us(lambda: sandbox.call("via_host", 1), calls)}
    snapshot = sandbox.snapshot()
    rows["fresh sandbox (a new copy-on-write clone per call)"] = median_us(lambda: snapshot.sandbox().call("echo", PAYLOAD), calls // 4)
    pool = terrarium.Pool(snapshot, max_idle=4)
    rows["pool (a fresh state by reset per call)"] = median_us(lambda: pool.call("echo", PAYLOAD), calls // 4)

    # Throughput: guest work of ~5 ms per call, one thread vs two.
    boxes = [snapshot.sandbox(), snapshot.sandbox()]

    def work(box, n):
        for _ in range(n):
            box.call("spin", 200_000)

    start = time.perf_counter()
    work(boxes[0], 20)
    one = 20 / (time.perf_counter() - start)
    threads = [threading.Thread(target=work, args=(box, 20)) for box in boxes]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    two = 40 / (time.perf_counter() - start)
    rows["two threads"] = two / one

    rows["python3 -I -c"] = median_us(
        lambda: subprocess.run(["/usr/bin/python3", "-I", "-c", "import json,sys; print(json.dumps(json.loads(sys.argv[1])))",
                                json.dumps(PAYLOAD)], capture_output=True, check=True), 20)
    worker = subprocess.Popen(["/usr/bin/python3", "-I", "-c", WORKER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, bufsize=1)
    line = json.dumps(PAYLOAD) + "\n"

    def round_trip():
        worker.stdin.write(line)
        worker.stdin.flush()
        return worker.stdout.readline()

    rows["native worker"] = median_us(round_trip, calls // 4)
    worker.stdin.close()
    worker.wait(timeout=30)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "python-host.md"))
    args = parser.parse_args()
    rounds = [one_round(args.calls) for _ in range(args.repeat)]
    rows = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    targets = {"call": "≤ 10 µs", "host function": "≤ 10 µs",
               "fresh sandbox (a new copy-on-write clone per call)": "≤ 100 µs",
               "pool (a fresh state by reset per call)": "≤ 100 µs", "two threads": "≥ 1.8×"}
    lines = ["# Python host binding benchmark", "",
             "Machine: %s; %s. `bench/python_host_bench.py`, medians of %d runs of %d calls "
             "(a quarter for fresh / pool / worker, 20 for subprocesses)." % (machine(), date, args.repeat, args.calls),
             "", "| row | median | target |", "| --- | ---: | --- |"]
    for name, value in rows.items():
        cell = "%.2f×" % value if name == "two threads" else "%.1f µs" % value
        lines.append("| %s | %s | %s |" % (name, cell, targets.get(name, "peer" if name in ("python3 -I -c", "native worker") else "")))
    lines += ["", "References (published, not measured here): wasmtime-py ~30 µs per host call.", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
