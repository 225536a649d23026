// Timings for bench/functions/run.py, one JSON object per line on stdout:
//
//   functions_bench inproc N          the C++ API: small JSON op and an
//                                     import_function op (json + re), fresh
//                                     sandbox per call and warm
//   functions_bench pipe N -- CMD...  JSON-RPC `handle` round trips over a
//                                     child's stdin/stdout, one at a time
//   functions_bench spawn N -- CMD... a new process per call (CMD gets the
//                                     input as its last argument)
//
// Each line: {"row", "calls", "median_us", "p99_us", "mean_us"}.
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "terrarium/functions.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

const char* kSmallInput = R"({"a": 1, "b": 2})";
const char* kTextInput = R"({"text": "Order 66 shipped to 221B Baker Street on 2026-12-01"})";

void report(const std::string& row, std::vector<double> micros) {
  double sum = 0;
  for (double value : micros) sum += value;
  json line = {{"row", row},
               {"calls", micros.size()},
               {"median_us", terrarium::bench::percentile(micros, 50)},
               {"p99_us", terrarium::bench::percentile(micros, 99)},
               {"mean_us", micros.empty() ? 0 : sum / micros.size()}};
  std::printf("%s\n", line.dump().c_str());
  std::fflush(stdout);
}

terrarium::OpInfo op(const std::string& name, const json& data, terrarium::Isolation isolation) {
  terrarium::OpInfo info;
  info.op_name = name;
  info.mat_data_json = data.dump();
  info.isolation = isolation;
  return info;
}

json import_function_data() {
  return {{"ty", "import_function"},
          {"root_src_path", "main.py"},
          {"func_name", "handler"},
          {"sources",
           {{"main.py",
             "import json, re\nfrom .lib import patterns\n"
             "def handler(inp):\n    text = inp['text']\n"
             "    return {'numbers': [int(n) for n in patterns.NUMBER.findall(text)],\n"
             "            'words': len(text.split()), 'echo': json.loads(json.dumps(inp))}\n"},
            {"lib/patterns.py", "import re\nNUMBER = re.compile(r'\\d+')\n"}}}};
}

int inproc(int calls) {
  auto runtime = terrarium::Runtime::create();
  if (!runtime) return 1;
  json small = {{"ty", "lambda"}, {"source", "lambda x: x['a'] + x['b']"}};
  terrarium::FunctionsOptions options;
  options.output = [](std::string_view, std::string_view) {};
  auto functions = terrarium::Functions::create(
      *runtime,
      {op("small", small, terrarium::Isolation::kFresh),
       op("small_warm", small, terrarium::Isolation::kWarm),
       op("import", import_function_data(), terrarium::Isolation::kFresh),
       op("import_warm", import_function_data(), terrarium::Isolation::kWarm)},
      options);
  if (!functions) {
    std::fprintf(stderr, "%s\n", functions.error().to_string().c_str());
    return 1;
  }
  struct Row {
    const char* name;
    const char* op;
    const char* input;
  };
  for (Row row : {Row{"cpp small fresh", "small", kSmallInput},
                  Row{"cpp small warm", "small_warm", kSmallInput},
                  Row{"cpp import_function fresh", "import", kTextInput},
                  Row{"cpp import_function warm", "import_warm", kTextInput}}) {
    for (int i = 0; i < 200; ++i) (void)(*functions)->handle(row.op, row.input);  // warm-up
    std::vector<double> micros;
    micros.reserve(calls);
    for (int i = 0; i < calls; ++i) {
      auto start = Clock::now();
      auto result = (*functions)->handle(row.op, row.input);
      micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      if (!result) {
        std::fprintf(stderr, "%s: %s\n", row.name, result.error().message.c_str());
        return 1;
      }
    }
    report(row.name, std::move(micros));
  }
  return 0;
}

struct Child {
  pid_t pid = -1;
  int in = -1, out = -1;
};

Child start(std::vector<std::string> command) {
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) return {};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
  posix_spawn_file_actions_addclose(&actions, to_child[1]);
  posix_spawn_file_actions_addclose(&actions, from_child[0]);
  std::vector<char*> argv;
  for (std::string& word : command) argv.push_back(word.data());
  argv.push_back(nullptr);
  Child child;
  if (posix_spawnp(&child.pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) return {};
  posix_spawn_file_actions_destroy(&actions);
  close(to_child[0]);
  close(from_child[1]);
  child.in = to_child[1];
  child.out = from_child[0];
  return child;
}

// Reads one line (bounded wait); "" on EOF or timeout.
std::string read_line(int fd, std::string& buffer) {
  for (;;) {
    size_t newline = buffer.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer.substr(0, newline);
      buffer.erase(0, newline + 1);
      return line;
    }
    pollfd entry{fd, POLLIN, 0};
    if (poll(&entry, 1, 30'000) <= 0) return "";
    char chunk[65536];
    ssize_t got = read(fd, chunk, sizeof chunk);
    if (got <= 0) return "";
    buffer.append(chunk, static_cast<size_t>(got));
  }
}

bool write_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t wrote = write(fd, data.data() + sent, data.size() - sent);
    if (wrote <= 0) return false;
    sent += static_cast<size_t>(wrote);
  }
  return true;
}

int pipe_rows(int calls, std::vector<std::string> command, const std::string& label) {
  Child child = start(command);
  if (child.pid < 0) return 1;
  std::string buffer;
  struct Row {
    std::string name, op, input;
  };
  std::vector<Row> rows = {{label + " small", "small", kSmallInput},
                           {label + " import_function", "import", kTextInput}};
  int id = 0;
  for (const Row& row : rows) {
    std::vector<double> micros;
    for (int i = -200; i < calls; ++i) {
      std::string line = json({{"jsonrpc", "2.0"},
                               {"id", ++id},
                               {"method", "handle"},
                               {"params", {{"op_name", row.op}, {"in_json", row.input}}}})
                             .dump() +
                         "\n";
      auto start_time = Clock::now();
      if (!write_all(child.in, line)) return 1;
      std::string answer = read_line(child.out, buffer);
      double elapsed = std::chrono::duration<double, std::micro>(Clock::now() - start_time).count();
      if (answer.find("\"result\"") == std::string::npos) {
        std::fprintf(stderr, "%s: unexpected answer: %s\n", row.name.c_str(), answer.c_str());
        return 1;
      }
      if (i >= 0) micros.push_back(elapsed);
    }
    report(row.name, std::move(micros));
  }
  close(child.in);
  int status = 0;
  waitpid(child.pid, &status, 0);
  close(child.out);
  return 0;
}

int spawn_rows(int calls, std::vector<std::string> command, const std::string& label) {
  std::vector<double> micros;
  for (int i = 0; i < calls; ++i) {
    std::vector<std::string> words = command;
    words.push_back(kSmallInput);
    auto start_time = Clock::now();
    Child child = start(words);
    if (child.pid < 0) return 1;
    close(child.in);
    std::string buffer, answer = read_line(child.out, buffer);
    int status = 0;
    waitpid(child.pid, &status, 0);
    close(child.out);
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start_time).count());
    if (answer != "3") {
      std::fprintf(stderr, "%s: unexpected answer '%s'\n", label.c_str(), answer.c_str());
      return 1;
    }
  }
  report(label + " small", std::move(micros));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: functions_bench inproc N | pipe|spawn N LABEL -- CMD...\n");
    return 2;
  }
  std::string mode = argv[1];
  int calls = std::atoi(argv[2]);
  if (mode == "inproc") return inproc(calls);
  if (argc < 6 || std::strcmp(argv[4], "--") != 0) {
    std::fprintf(stderr, "usage: functions_bench %s N LABEL -- CMD...\n", mode.c_str());
    return 2;
  }
  std::vector<std::string> command(argv + 5, argv + argc);
  if (mode == "pipe") return pipe_rows(calls, command, argv[3]);
  if (mode == "spawn") return spawn_rows(calls, command, argv[3]);
  return 2;
}
