// Bridge latency: host -> Python echo -> host, Python -> host -> Python, and
// the same echo with a native python3.11 subprocess over a pipe (one process,
// line-delimited JSON) as a reference. Prints a Markdown table.
//
//   build/bench/bridge_bench [CALLS]      (default 100000)
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

// A 100-byte JSON value.
const std::string kValue =
    R"({"id":12345,"name":"terrarium","tags":["wasm","python","bridge"],"ok":true,"score":0.75,"x":"abcdefg"})";

double median(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

double percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return samples[static_cast<size_t>(p * (samples.size() - 1))];
}

// `per_sample`: calls per sample (batches timed in the guest).
void row(const char* what, const std::vector<double>& us, size_t per_sample = 1) {
  std::printf("| %s | %zu | %.2f | %.2f | %.2f |\n", what, us.size() * per_sample, median(us),
              percentile(us, 0.1), percentile(us, 0.99));
}

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "bridge_bench: %s\n", message.c_str());
  std::exit(1);
}

// The reference: python3.11 echoing line-delimited JSON over pipes.
std::vector<double> native_pipe(int calls) {
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) die("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
  posix_spawn_file_actions_addclose(&actions, to_child[1]);
  posix_spawn_file_actions_addclose(&actions, from_child[0]);
  const char* code =
      "import sys, json\n"
      "r, w = sys.stdin.buffer, sys.stdout.buffer\n"
      "for line in r:\n"
      "    w.write(json.dumps(json.loads(line), separators=(',', ':')).encode() + b'\\n')\n"
      "    w.flush()\n";
  std::vector<char*> argv = {const_cast<char*>("python3.11"), const_cast<char*>("-c"),
                             const_cast<char*>(code), nullptr};
  pid_t pid;
  if (posix_spawnp(&pid, "python3.11", &actions, nullptr, argv.data(), environ) != 0) {
    die("cannot start python3.11");
  }
  posix_spawn_file_actions_destroy(&actions);
  close(to_child[0]);
  close(from_child[1]);
  std::string line = kValue + "\n";
  std::vector<double> samples;
  samples.reserve(calls);
  std::string reply;
  char buffer[4096];
  for (int i = 0; i < calls + calls / 10; ++i) {
    auto start = Clock::now();
    if (write(to_child[1], line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      die("write");
    reply.clear();
    while (reply.empty() || reply.back() != '\n') {
      ssize_t n = read(from_child[0], buffer, sizeof buffer);
      if (n <= 0) die("read");
      reply.append(buffer, n);
    }
    double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    if (i >= calls / 10) samples.push_back(us);  // first 10%: warm-up
  }
  if (reply != line) die("native echo mismatch: " + reply);
  close(to_child[1]);
  close(from_child[0]);
  waitpid(pid, nullptr, 0);
  return samples;
}

}  // namespace

int main(int argc, char** argv) {
  int calls = argc > 1 ? std::atoi(argv[1]) : 100000;
  if (calls < 100) calls = 100;
  auto runtime = terrarium::Runtime::create();
  if (!runtime) die(runtime.error().to_string());
  auto sandbox = (*runtime)->new_sandbox({});
  if (!sandbox) die(sandbox.error().to_string());
  terrarium::Sandbox& box = **sandbox;
  (void)box.define_json("echo", [](const nlohmann::json& v) { return v; });
  (void)box.define("echo_bytes", [](const std::string& v) { return v; });
  (void)box.define_json_text("echo_text", [](const std::string& v) { return v; });
  auto loaded = box.exec(R"PY(
import terrarium, time

@terrarium.export
def echo(value):
    return value

@terrarium.export
def echo_bytes(value):
    return value

@terrarium.export
def host_loop(args):
    # Python -> host -> Python: per-batch average time of terrarium.host.NAME(value).
    batches, batch, name, value = args["batches"], args["batch"], args["name"], args["value"]
    if name == "echo_bytes":
        value = value.encode()
    call = getattr(terrarium.host, name)
    clock = time.perf_counter_ns
    for _ in range(batch * 10):   # warm-up
        call(value)
    out = []
    for _ in range(batches):
        start = clock()
        for _ in range(batch):
            result = call(value)
        out.append((clock() - start) / batch / 1000.0)
    assert result == value
    return out
)PY");
  if (!loaded) die(loaded.error().to_string() + "\n" + loaded.error().details());

  auto host_to_python = [&](const char* name, bool json_text) {
    std::vector<double> samples;
    samples.reserve(calls);
    for (int i = 0; i < calls + calls / 10; ++i) {
      auto start = Clock::now();
      auto result = json_text ? box.call_json_text(name, kValue) : box.call(name, kValue);
      double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      if (!result) die(result.error().to_string());
      if (*result != kValue) die("echo mismatch: " + *result);
      if (i >= calls / 10) samples.push_back(us);
    }
    return samples;
  };
  auto host_to_python_parsed = [&] {
    nlohmann::json value = nlohmann::json::parse(kValue);
    std::vector<double> samples;
    samples.reserve(calls);
    for (int i = 0; i < calls + calls / 10; ++i) {
      auto start = Clock::now();
      auto result = box.call_json("echo", value);
      double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count();
      if (!result || *result != value) die("call_json echo failed");
      if (i >= calls / 10) samples.push_back(us);
    }
    return samples;
  };
  auto python_to_host = [&](const char* name) {
    int batch = 100;
    nlohmann::json args = {
        {"batches", std::max(1, calls / batch)},
        {"batch", batch},
        {"name", name},
        {"value", name == std::string("echo_bytes") ? nlohmann::json(kValue)
                                                    : nlohmann::json::parse(kValue)}};
    auto result = box.call_json("host_loop", args);
    if (!result) die(result.error().to_string() + "\n" + result.error().details());
    return result->get<std::vector<double>>();
  };

  std::printf("| path (100-byte JSON value) | calls | median µs | p10 µs | p99 µs |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: |\n");
  row("host → Python echo → host, `call_json_text` (JSON text in/out)",
      host_to_python("echo", true));
  row("host → Python echo → host, `call_json` (nlohmann::json in/out)", host_to_python_parsed());
  row("host → Python echo → host, `call` (raw bytes)", host_to_python("echo_bytes", false));
  row("Python → host echo → Python, JSON, host `define_json_text`¹", python_to_host("echo_text"),
      100);
  row("Python → host echo → Python, JSON, host `define_json` (nlohmann parse + dump)¹",
      python_to_host("echo"), 100);
  row("Python → host echo → Python, bytes¹", python_to_host("echo_bytes"), 100);
  row("reference: native python3.11 subprocess, JSON line echo over a pipe", native_pipe(calls));
  std::printf(
      "\n¹ timed inside the guest: median of per-call averages over batches of 100 calls.\n");
  return 0;
}
