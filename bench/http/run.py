#!/usr/bin/python3
"""HTTP benchmark of `terrarium serve` against its peers, on loopback, with wrk.

CGI rows (bench/http/code): hello world, the Wagi blog's env.py (wagi-facts.md
section 9, served by its own modules.toml: python3.wasm + argv), a 1 KiB JSON
POST echo. Flask rows: examples/flask-app's /hello and /api/notes (JSON).

Servers, one at a time, each measured in the same run:
  terrarium     `terrarium serve`: a fresh sandbox per request (workers = cores)
  native-cgi    Python's http.server CGI handler: a fresh python3.11 per request
  node-wasi     the same python.wasm instantiated per request under Node's WASI
                (Wagi's model with a JIT engine; bench/http/node_cgi_server.mjs)
  gunicorn-2/4  gunicorn + Flask, 2 (or 4) sync workers, unsandboxed, the
                same app file (examples/flask-app/app.py)

Each cell is the median of --repeat wrk runs (32 connections, --duration s
each); the rows are interleaved per repeat so that drift hits every server
alike. Also: one long terrarium run (--long s, CGI hello) that must end with
no error, and the RSS of the Flask server after warm-up, 10k and 100k
requests. Writes bench/results/http.md and http.json.

    /usr/bin/python3 bench/http/run.py [--build build] [--quick]
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# bench/run.py's helpers (first on the path: this file is a run.py too).
sys.path.insert(0, os.path.dirname(HERE))
from run import cpu_model  # noqa: E402
FLASK_APP = os.path.join(ROOT, "examples", "flask-app")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, process, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited with %s before answering %s" % (process.returncode, url))
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                reply.read()
                return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("no answer from %s within %d s" % (url, seconds))


class Server:
    """A peer server process on a free loopback port."""

    def __init__(self, name, command, port, ready_path, cwd=None, env=None):
        self.name, self.port = name, port
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            wait_http("http://127.0.0.1:%d%s" % (port, ready_path), self.process)
        except Exception:
            self.stop()
            self.log.seek(0)
            sys.stderr.write(self.log.read().decode(errors="replace")[-3000:])
            raise

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def rss_kib(self):
        """RSS of the server and its children (gunicorn's workers)."""
        total, pending = 0, [self.process.pid]
        while pending:
            pid = pending.pop()
            try:
                with open("/proc/%d/status" % pid) as f:
                    total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
                for task in os.listdir("/proc/%d/task" % pid):
                    with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                        pending.extend(int(c) for c in f.read().split())
            except (OSError, AttributeError):
                pass
        return total

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wrk(url, seconds, connections=32, body_file=None):
    command = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "--latency", "--timeout", "10s"]
    env = dict(os.environ)
    if body_file:
        command += ["-s", os.path.join(HERE, "post.lua")]
        env["BENCH_BODY_FILE"] = body_file
    out = subprocess.run(command + [url], capture_output=True, text=True, env=env, check=True).stdout

    def latency(percent):
        match = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % percent, out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency(50), "p99_ms": latency(99), "requests": requests,
        "socket_errors": {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"),
                                                    errors.groups())} if errors else {},
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def check(url, expect, body_file=None):
    """The endpoint answers what the row claims (before it is measured)."""
    data = open(body_file, "rb").read() if body_file else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=30) as reply:
        text = reply.read().decode()
    if expect not in text:
        raise RuntimeError("%s answered %r, expected it to contain %r" % (url, text[:300], expect))


def machine():
    return "%s, %d cores, %s" % (cpu_model(), os.cpu_count(), platform.release())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per cell (default 3)")
    parser.add_argument("--long", type=int, default=60, help="seconds of the long run (default 60)")
    parser.add_argument("--rss-requests", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 repeat, short long run (a smoke test)")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results", "http"))
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)  # the servers run from a work folder
    if args.quick:
        args.duration, args.repeat, args.long, args.rss_requests = 2, 1, 5, 5_000
    terrarium = os.path.join(args.build, "terrarium")
    wasm = os.path.join(args.build, "guest", "python.wasm")
    stdlib = os.path.join(args.build, "guest", "stdlib")
    for path in (terrarium, wasm, stdlib):
        if not os.path.exists(path):
            sys.exit("bench/http: %s missing (build first)" % path)
    for tool in ("wrk", "gunicorn", "node"):
        if not shutil.which(tool):
            sys.exit("bench/http: %s not found (make deps installs wrk and gunicorn)" % tool)

    # In the build tree: /tmp may be mounted noexec, and the native CGI
    # handler executes its scripts.
    work = tempfile.mkdtemp(prefix="http-bench-", dir=args.build)
    try:
        return run(args, work, terrarium, wasm, stdlib)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work, terrarium, wasm, stdlib):
    # The Wagi layout of section 9, with the build's python.wasm as its
    # python3.wasm (terrarium serve runs its built-in CPython; Node runs it).
    code = os.path.join(work, "code")
    shutil.copytree(os.path.join(HERE, "code"), code)
    os.makedirs(os.path.join(work, "opt", "wasi-python", "bin"))
    shutil.copy(wasm, os.path.join(work, "opt", "wasi-python", "bin", "python3.wasm"))
    with open(os.path.join(work, "modules.toml"), "w") as f:
        f.write('[[module]]\nroute = "/hello"\nmodule = "code/hello.py"\n\n'
                '[[module]]\nroute = "/echo"\nmodule = "code/echo.py"\n\n'
                '[[module]]\nroute = "/"\nmodule = "opt/wasi-python/bin/python3.wasm"\n'
                'volumes = { "/code" = "code", "/opt" = "opt" }\nargv = "python /code/env.py ${ARGS}"\n')
    body_file = os.path.join(work, "body.json")
    with open(body_file, "w") as f:
        items, i = [], 0
        while len(json.dumps({"items": items})) < 1024 - 40:
            items.append({"id": i, "name": "item-%d" % i, "ok": i % 2 == 0})
            i += 1
        f.write(json.dumps({"items": items, "pad": "x" * (1024 - len(json.dumps({"items": items, "pad": ""})))}))
    assert os.path.getsize(body_file) == 1024, os.path.getsize(body_file)
    # http.server's CGI handler runs executables from cgi-bin/: the same
    # scripts with a python3.11 shebang (env.py lists the copy's folder).
    cgi_root = os.path.join(work, "native")
    os.makedirs(os.path.join(cgi_root, "cgi-bin"))
    for name in ("hello.py", "env.py", "echo.py"):
        with open(os.path.join(code, name)) as f:
            text = f.read().replace("'/code'", repr(os.path.join(cgi_root, "cgi-bin")))
        path = os.path.join(cgi_root, "cgi-bin", name)
        with open(path, "w") as f:
            f.write("#!/usr/bin/python3.11\n" + text)
        os.chmod(path, 0o755)

    env_query = "?arg1=value1&arg2=value2"
    # (row, server, path, expected text, POST body?)
    cgi_rows = [("CGI hello world", "/hello", "Hello, world!", None),
                ("CGI env.py (section 9)", "/" + env_query, "Hello from python on", None),
                ("CGI 1 KiB JSON POST echo", "/echo", '"items"', body_file)]
    native_paths = {"/hello": "/cgi-bin/hello.py", "/" + env_query: "/cgi-bin/env.py" + env_query,
                    "/echo": "/cgi-bin/echo.py"}
    gunicorn_paths = {"/hello": "/hello", "/echo": "/echo"}

    def start(name):
        port = free_port()
        if name == "terrarium":
            return Server(name, [terrarium, "serve", "modules.toml", "--listen", "127.0.0.1:%d" % port,
                                 "--log-dir", os.path.join(work, "logs")], port, "/healthz", cwd=work)
        if name == "terrarium-flask":
            return Server(name, [terrarium, "serve", os.path.join(FLASK_APP, "modules.toml"), "--listen",
                                 "127.0.0.1:%d" % port, "--log-dir", os.path.join(work, "flask-logs")],
                          port, "/healthz")
        if name == "native-cgi":
            # Without fork+exec (which needs an exec-mounted folder): each request
            # runs `python3.11 -u SCRIPT` in a new process all the same.
            serve = ("import http.server as s; s.CGIHTTPRequestHandler.have_fork = False; "
                     "s.test(HandlerClass=s.CGIHTTPRequestHandler, ServerClass=s.ThreadingHTTPServer, "
                     "port=%d, bind='127.0.0.1')" % port)
            return Server(name, ["/usr/bin/python3.11", "-c", serve], port, "/cgi-bin/hello.py", cwd=cgi_root)
        if name == "node-wasi":
            routes = ["--route", "/hello=/code/hello.py", "--route", "/=/code/env.py",
                      "--route", "/echo=/code/echo.py"]
            return Server(name, ["node", "--no-warnings", os.path.join(HERE, "node_cgi_server.mjs"),
                                 "--port", str(port), "--wasm", wasm, "--stdlib", stdlib, "--code", code,
                                 "--workers", str(os.cpu_count())] + routes, port, "/hello")
        workers = name.split("-")[1]
        return Server(name, ["gunicorn", "--chdir", FLASK_APP, "-w", workers, "-k", "sync",
                             "-b", "127.0.0.1:%d" % port, "--log-level", "warning", "app:app"], port, "/hello")

    # What each server answers: (row, path, expected, body).
    plans = {
        "terrarium": [(row, path, expect, body) for row, path, expect, body in cgi_rows],
        "native-cgi": [(row, native_paths[path], expect, body) for row, path, expect, body in cgi_rows],
        "node-wasi": [(row, path, expect, body) for row, path, expect, body in cgi_rows],
        "terrarium-flask": [("Flask hello world", "/hello", "Hello, World!", None),
                            ("Flask JSON endpoint", "/api/notes", '"total"', None)],
    }
    for workers in ("2", "4"):
        plans["gunicorn-" + workers] = [("Flask hello world", "/hello", "Hello, World!", None),
                                        ("Flask JSON endpoint", "/api/notes", '"total"', None)]
    plans["gunicorn-2"] += [("CGI 1 KiB JSON POST echo", "/echo", '"items"', body_file)]

    results = {}  # (row, server) -> list of wrk results
    failures = []
    for repeat in range(args.repeat):
        for name, plan in plans.items():
            server = start(name)
            try:
                for row, path, expect, body in plan:
                    try:
                        check(server.url(path), expect, body)
                        result = wrk(server.url(path), args.duration, body_file=body)
                    except Exception as error:
                        # A peer that falls over is a result too: said, and its
                        # remaining rows skipped for this repeat.
                        failures.append("%s, %s: %s (server %s)" % (row, name, error, "exited with %s" % (
                            server.process.poll(),) if server.process.poll() is not None else "alive"))
                        print("[bench/http] FAILED " + failures[-1], flush=True)
                        break
                    results.setdefault((row, name), []).append(result)
                    print("[bench/http] %d/%d %-26s %-16s %8.0f req/s  p50 %6.2f ms  p99 %7.2f ms" % (
                        repeat + 1, args.repeat, row, name, result["rps"], result["p50_ms"], result["p99_ms"]),
                        flush=True)
            finally:
                server.stop()

    # The long run: no request may be lost or fail.
    server = start("terrarium")
    try:
        long_run = wrk(server.url("/hello"), args.long)
    finally:
        server.stop()
    print("[bench/http] long run: %d requests, %.0f req/s, socket errors %s, non-2xx %d" % (
        long_run["requests"], long_run["rps"], long_run["socket_errors"], long_run["non_2xx"]), flush=True)

    # Memory of the Flask server: after warm-up, after 10k and after N requests.
    rss = {}
    for name in ("terrarium-flask", "gunicorn-2"):
        server = start(name)
        try:
            check(server.url("/hello"), "Hello, World!")
            rss[name] = [("after warm-up", 0, server.rss_kib())]
            done = 0
            for target in (10_000, args.rss_requests):
                while done < target:
                    done += wrk(server.url("/hello"), 2)["requests"]
                rss[name].append(("after %d requests" % target, done, server.rss_kib()))
        finally:
            server.stop()
        print("[bench/http] RSS %s: %s" % (name, rss[name]), flush=True)

    write_results(args, results, long_run, rss, failures)
    return 0


def median_cell(runs):
    return {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")} | {
        "errors": sum(sum(r["socket_errors"].values()) + r["non_2xx"] for r in runs)}


def write_results(args, results, long_run, rss, failures):
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cells = {key: median_cell(runs) for key, runs in results.items()}
    rows = []
    for (row, name) in results:
        if row not in rows:
            rows.append(row)
    lines = ["# HTTP: `terrarium serve` and its peers", "",
             "Machine: %s. Date: %s. wrk, 2 threads, 32 connections, loopback; each cell the median of %d "
             "runs of %d s, servers interleaved per run (bench/http/run.py). A fresh sandbox per request for "
             "terrarium; a fresh python3.11 process per request for native-cgi; a fresh python.wasm instance per "
             "request for node-wasi; gunicorn + Flask share one interpreter per worker across requests." % (
                 machine(), when, args.repeat, args.duration), "",
             "Errors: socket errors plus non-2xx answers, summed over the runs. The server and wrk share the "
             "machine's cores.", ""]
    for row in rows:
        lines += ["## " + row, "", "| server | req/s | p50 ms | p99 ms | errors | req/s vs gunicorn-2 |",
                  "|---|---:|---:|---:|---:|---:|"]
        # CGI hello world is compared with gunicorn + Flask's hello world.
        reference = cells.get(("Flask hello world" if row.startswith("CGI hello") else row, "gunicorn-2"))
        for (r, name), cell in cells.items():
            if r != row:
                continue
            ratio = "%.2fx" % (cell["rps"] / reference["rps"]) if reference else "-"
            lines.append("| %s | %.0f | %.2f | %.2f | %d | %s |" % (name, cell["rps"], cell["p50_ms"],
                                                                    cell["p99_ms"], cell["errors"], ratio))
        lines.append("")
    env_t = cells.get(("CGI env.py (section 9)", "terrarium"))
    env_n = cells.get(("CGI env.py (section 9)", "native-cgi"))
    if env_t and env_n:
        lines += ["The section 9 env.py: terrarium %.0fx the req/s of a fresh python3.11 per request." % (
            env_t["rps"] / env_n["rps"]), ""]
    lines += ["## Long run (terrarium, CGI hello world, %d s)" % args.long, "",
              "%d requests, %.0f req/s, p99 %.2f ms; socket errors %s; non-2xx answers %d." % (
                  long_run["requests"], long_run["rps"], long_run["p99_ms"], long_run["socket_errors"],
                  long_run["non_2xx"]), "",
              "## Memory (RSS of the server and its workers, Flask hello world)", "",
              "| server | " + " | ".join(label for label, _, _ in next(iter(rss.values()))) + " |",
              "|---|" + "---:|" * len(next(iter(rss.values())))]
    for name, points in rss.items():
        lines.append("| %s | %s |" % (name, " | ".join("%.1f MiB" % (kib / 1024) for _, _, kib in points)))
    for name, points in rss.items():
        if len(points) >= 3 and points[1][2]:
            lines.append("")
            lines.append("%s: RSS from %d to %d requests changed by %+.1f %%." % (
                name, points[1][1], points[2][1], 100.0 * (points[2][2] - points[1][2]) / points[1][2]))
    if failures:
        lines += ["", "## Peers that failed", ""] + ["- " + failure for failure in failures]
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(args.output + ".json", "w") as f:
        json.dump({"machine": machine(), "date": when, "duration_s": args.duration, "repeat": args.repeat,
                   "cells": [{"row": r, "server": n, "runs": runs} for (r, n), runs in results.items()],
                   "long_run": long_run, "rss_kib": rss}, f, indent=1)
    print("[bench/http] wrote %s.md and .json" % args.output)


if __name__ == "__main__":
    sys.exit(main())
