// Cold start: from "I need a fresh interpreter" to the result of a trivial
// exported function, and the memory idle sandboxes cost.
//
//   (a) snapshot -> new sandbox (copy-on-write map) -> call      median, p99
//       pooled sandbox: acquire (reset to the snapshot) -> call  median, p99
//       full start without snapshot (instantiate + init CPython) -> call
//       `python3.11 -c pass` as a subprocess
//       the same python.wasm under Node's WASI (`-c pass`), if node is here
//   (b) RSS of 1,000 live idle sandboxes from one snapshot
//   pages a call dirties (trivial, JSON handler), read from /proc/self/smaps
//
// Usage: coldstart_bench RESULTS.md [STDLIB_DIR PYTHON_WASM NODE_RUNNER]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "terrarium/runtime.h"
#include "terrarium/snapshot.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using terrarium::bench::percentile;
using terrarium::bench::rss_kb;

double micros_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

constexpr const char* kApp = R"PY(
import json, terrarium

@terrarium.export
def trivial(x):
    return x + 1

@terrarium.export
def handler(doc):
    items = sorted(doc["items"], key=lambda item: item["price"])
    total = sum(item["price"] * item["qty"] for item in items)
    return {"count": len(items), "total": round(total, 2), "cheapest": items[0]["name"]}
)PY";

const nlohmann::json& handler_input() {
  static nlohmann::json doc = [] {
    nlohmann::json items = nlohmann::json::array();
    for (int i = 0; i < 12; ++i) {
      items.push_back({{"name", "item" + std::to_string(i)},
                       {"price", 3.5 + (i * 7) % 11},
                       {"qty", i % 4 + 1}});
    }
    return nlohmann::json{{"items", items}};
  }();
  return doc;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "coldstart_bench: %s failed\n", what);
    std::exit(1);
  }
}

double spawn_and_wait(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  auto start = Clock::now();
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return micros_since(start);
}

struct Row {
  std::string what;
  std::vector<double> micros;
  std::string note;
};

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = argc > 1 ? argv[1] : "bench/results/coldstart.md";
  std::string stdlib_dir = argc > 2 ? argv[2] : "";
  std::string python_wasm = argc > 3 ? argv[3] : "";
  std::string node_runner = argc > 4 ? argv[4] : "";

  auto runtime = terrarium::Runtime::create();
  check(runtime.ok(), "Runtime::create");
  auto base = (*runtime)->new_sandbox({});
  check(base.ok(), "new_sandbox");
  check((*base)->exec(kApp, "app.py").ok(), "exec app");
  // Warm the handlers before capturing: CPython specializes code after a few
  // calls, and those writes then happen once, not in every clone.
  for (int i = 0; i < 20; ++i) {
    check((*base)->call_json("trivial", i).ok(), "warm-up");
    check((*base)->call_json("handler", handler_input()).ok(), "warm-up");
  }
  auto snapshot = terrarium::Snapshot::capture(**base);
  check(snapshot.ok(), "capture");

  std::vector<Row> rows;
  const int kRuns = 3000;

  // (a) fresh sandbox from the snapshot, then the first call.
  {
    Row row{"new sandbox from snapshot + first call", {}, "copy-on-write map of the snapshot"};
    for (int i = 0; i < kRuns + 100; ++i) {
      auto start = Clock::now();
      auto sandbox = (*snapshot)->new_sandbox();
      auto result = (*sandbox)->call_json("trivial", 41);
      double took = micros_since(start);
      check(result.ok() && *result == 42, "trivial call");
      if (i >= 100) row.micros.push_back(took);  // after warm-up
    }
    rows.push_back(row);
  }
  // Pooled: a used sandbox reset to the snapshot, with each reset strategy.
  for (auto strategy : {terrarium::Sandbox::ResetStrategy::kCopyDirtyPages,
                        terrarium::Sandbox::ResetStrategy::kDropAllPages}) {
    terrarium::Pool::Options options;
    options.max_idle = 4;
    options.prefill = 2;
    options.reset_strategy = strategy;
    auto pool = terrarium::Pool::create(*snapshot, options);
    check(pool.ok(), "pool");
    bool copy = strategy == terrarium::Sandbox::ResetStrategy::kCopyDirtyPages;
    Row row{copy ? "pooled sandbox, reset by copying back written pages + call"
                 : "pooled sandbox, reset by dropping all pages + call",
            {},
            copy ? "pagemap finds the private pages; the snapshot is copied into them; no faults "
                   "on the next call; the reset is timed too"
                 : "madvise(MADV_DONTNEED): every page faults in again; the reset is timed too"};
    for (int i = 0; i < kRuns + 100; ++i) {
      auto start = Clock::now();
      {
        auto lease = (*pool)->acquire();
        auto result = (*lease)->call_json("trivial", 41);
        check(result.ok() && *result == 42, "pooled call");
      }
      double took = micros_since(start);
      if (i >= 100) row.micros.push_back(took);
    }
    rows.push_back(row);
  }
  // Without a snapshot: instantiate, initialize CPython, run the app, call.
  {
    Row row{
        "new sandbox without snapshot + first call", {}, "instantiate + CPython init + app import"};
    for (int i = 0; i < 30; ++i) {
      auto start = Clock::now();
      auto sandbox = (*runtime)->new_sandbox({});
      check(sandbox.ok() && (*sandbox)->exec(kApp, "app.py").ok(), "full start");
      auto result = (*sandbox)->call_json("trivial", 41);
      row.micros.push_back(micros_since(start));
      check(result.ok(), "call after full start");
    }
    rows.push_back(row);
  }
  {
    Row row{"`python3.11 -c pass` subprocess", {}, "native CPython, Debian build"};
    for (int i = 0; i < 30; ++i)
      row.micros.push_back(spawn_and_wait({"/usr/bin/python3.11", "-c", "pass"}));
    rows.push_back(row);
  }
  if (!node_runner.empty() && access(node_runner.c_str(), R_OK) == 0) {
    Row row{"python.wasm under Node's WASI, `-c pass`",
            {},
            "node:wasi (V8 JIT), includes compiling the module"};
    for (int i = 0; i < 10; ++i) {
      double took = spawn_and_wait({"node", node_runner, python_wasm, stdlib_dir, "-c", "pass"});
      if (took > 0) row.micros.push_back(took);
    }
    if (!row.micros.empty()) rows.push_back(row);
  }

  // Pages one call dirties in a fresh clone (copy-on-write copies).
  // Pages mapped by a call: read (shared with the snapshot) and written
  // (private copies), from the RssShmem / RssAnon counters.
  struct Pages {
    long read = 0, written = 0;
  };
  auto measure_pages = [&](const char* name, const nlohmann::json& input) {
    auto sandbox = (*snapshot)->new_sandbox();
    long shmem = rss_kb("RssShmem:"), anon = rss_kb("RssAnon:");
    check((*sandbox)->call_json(name, input).ok(), name);
    return Pages{(rss_kb("RssShmem:") - shmem) / 4, (rss_kb("RssAnon:") - anon) / 4};
  };
  Pages trivial_pages = measure_pages("trivial", 1);
  Pages handler_pages = measure_pages("handler", handler_input());

  // (b) RSS of 1,000 idle sandboxes: made and waiting for their first call,
  // then after one call each.
  long rss_before = rss_kb(), anon_before = rss_kb("RssAnon:");
  std::vector<std::unique_ptr<terrarium::Sandbox>> idle;
  for (int i = 0; i < 1000; ++i) {
    auto sandbox = (*snapshot)->new_sandbox();
    check(sandbox.ok(), "idle sandbox");
    idle.push_back(std::move(*sandbox));
  }
  long rss_ready = rss_kb();
  for (int i = 0; i < 1000; ++i) check(idle[i]->call_json("trivial", i).ok(), "idle call");
  long rss_called = rss_kb(), anon_called = rss_kb("RssAnon:");
  idle.clear();
  std::ostringstream out;
  out << "# Cold start and idle memory\n\n" << terrarium::bench::machine_line() << "\n\n";
  out << "From \"I need a fresh interpreter\" to the result of a trivial exported function "
         "(`trivial(x): return x + 1`, JSON in and out). Snapshot of CPython after "
         "initialization and the app's import: "
      << (*snapshot)->memory_bytes() / (1 << 20)
      << " MiB of linear memory. Target: <= 100 µs median.\n\n";
  out << "| path | runs | median | p99 | note |\n| --- | --- | --- | --- | --- |\n";
  char line[512];
  for (const Row& row : rows) {
    std::snprintf(line, sizeof line, "| %s | %zu | %.1f µs | %.1f µs | %s |\n", row.what.c_str(),
                  row.micros.size(), percentile(row.micros, 50), percentile(row.micros, 99),
                  row.note.c_str());
    out << line;
  }
  out << "\nPages the first call maps in a fresh clone (4 KiB pages; read = shared with the "
         "snapshot, written = private copies incl. the host-side table copy): trivial call "
      << trivial_pages.read << " read + " << trivial_pages.written
      << " written; small JSON handler "
      << "(sort, generator, dict) " << handler_pages.read << " read + " << handler_pages.written
      << " written.\n\n";
  out << "RSS of 1,000 live idle sandboxes from the snapshot (target: <= 1 GiB): "
      << (rss_ready - rss_before) / 1024 << " MiB (" << (rss_ready - rss_before) / 1000
      << " KiB each) made and ready for their first call; " << (rss_called - rss_before) / 1024
      << " MiB (" << (rss_called - rss_before) / 1000
      << " KiB each) after one call each. RSS counts every snapshot page each sandbox mapped, "
         "though those are shared; the private memory (RssAnon) grew by "
      << (anon_called - anon_before) / 1024 << " MiB.\n";
  std::ofstream(out_path) << out.str();
  std::fputs(out.str().c_str(), stdout);
}
