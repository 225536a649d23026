// Where a `terrarium serve` request's time goes, step by step, in process
// (no HTTP): a CGI route's snapshot, then per request set_invocation (argv,
// env, stdin), the script's run, and the reset to the snapshot; plus the
// number of pages the request dirtied. Medians and p99 of N requests.
//
// Usage: serve_steps_bench [RESULTS.md] [REQUESTS]
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "server/cgi.h"
#include "terrarium/runtime.h"
#include "terrarium/snapshot.h"

namespace {

using terrarium::bench::percentile;

// The thread's CPU time: what a step costs, whatever else the machine runs.
struct Clock {
  static double now() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
  }
};
double micros(double a, double b) { return b - a; }

struct Script {
  const char* name;
  const char* source;
};

const Script kScripts[] = {
    {"hello", "print('Content-Type: text/plain')\nprint()\nprint('Hello, world')\n"},
    {"env.py (Wagi blog)",
     "import os, sys\nprint('Content-Type: text/plain; charset=UTF-8')\nprint('Status: 200')\n"
     "print()\nprint('Hello from python on', sys.platform)\nprint(sys.argv)\n"
     "for k, v in sorted(os.environ.items()):\n    print(f'{k}: {v}')\n"},
    {"1 KiB JSON echo",
     "import json, sys\ndoc = json.load(sys.stdin)\nprint('Content-Type: application/json')\n"
     "print()\nprint(json.dumps(doc))\n"},
};

std::vector<std::string> request_env() {
  std::vector<std::string> env = {"AUTH_TYPE=",
                                  "CONTENT_LENGTH=0",
                                  "CONTENT_TYPE=",
                                  "GATEWAY_INTERFACE=CGI/1.1",
                                  "SERVER_SOFTWARE=WAGI/1",
                                  "SERVER_PROTOCOL=HTTP/1.1",
                                  "REQUEST_METHOD=GET",
                                  "QUERY_STRING=a=1",
                                  "REMOTE_ADDR=127.0.0.1",
                                  "REMOTE_HOST=127.0.0.1",
                                  "REMOTE_USER=",
                                  "SCRIPT_NAME=/",
                                  "PATH_INFO=",
                                  "X_RAW_PATH_INFO=",
                                  "PATH_TRANSLATED=",
                                  "X_MATCHED_ROUTE=/",
                                  "SERVER_NAME=localhost",
                                  "SERVER_PORT=3000",
                                  "X_FULL_URL=http://localhost:3000/?a=1",
                                  "HTTP_HOST=localhost:3000",
                                  "HTTP_USER_AGENT=wrk",
                                  "HTTP_ACCEPT=*/*"};
  return env;
}

std::string json_kib() {
  std::string doc = "{\"items\": [";
  for (int i = 0; doc.size() < 1000; ++i) {
    doc += (i ? ", " : "") + std::string("{\"id\": ") + std::to_string(i) + ", \"name\": \"item" +
           std::to_string(i) + "\"}";
  }
  return doc + "]}";
}

}  // namespace

int main(int argc, char** argv) {
  std::string results = argc > 1 ? argv[1] : "";
  int requests = argc > 2 ? std::atoi(argv[2]) : 5000;
  auto runtime = *terrarium::Runtime::create();
  std::string table =
      "| script | set_invocation | run | reset | total | pages dirtied |\n"
      "| --- | --- | --- | --- | --- | --- |\n";
  for (const Script& script : kScripts) {
    terrarium::SandboxConfig config;
    config.args = {"/script/app.py"};
    config.files = {{"/script/app.py", script.source}};
    config.stdout_output.callback = [](std::string_view) {};
    auto sandbox = runtime->new_sandbox(config);
    if (!sandbox) {
      std::fprintf(stderr, "%s\n", sandbox.error().message().c_str());
      return 1;
    }
    if (auto ok =
            (*sandbox)->exec("import terrarium._cgi\nterrarium._cgi.prepare('/script/app.py')\n");
        !ok) {
      std::fprintf(stderr, "%s\n%s\n", ok.error().message().c_str(), ok.error().details().c_str());
      return 1;
    }
    auto snapshot = *terrarium::Snapshot::capture(**sandbox);
    auto fresh = std::move(*snapshot->new_sandbox(config));
    std::vector<double> set, run, reset, total;
    std::string out;
    std::string body = std::string(script.name).find("JSON") != std::string::npos ? json_kib() : "";
    for (int i = 0; i < requests; ++i) {
      terrarium::Invocation invocation;
      invocation.args = {"/script/app.py", "a=1"};
      invocation.env = request_env();
      invocation.stdin_data = body;
      out.clear();
      invocation.stdout_output.callback = [&out](std::string_view data) { out.append(data); };
      auto t0 = Clock::now();
      if (auto ok = fresh->set_invocation(std::move(invocation)); !ok) {
        std::fprintf(stderr, "%s\n", ok.error().message().c_str());
        return 1;
      }
      auto t1 = Clock::now();
      auto status = fresh->call_json_text("__terrarium_cgi__", "null");
      auto t2 = Clock::now();
      if (!status || *status != "0") {
        std::fprintf(stderr, "run failed: %s\n",
                     status ? status->c_str() : status.error().message().c_str());
        return 1;
      }
      if (auto ok = fresh->reset(); !ok) return 1;
      auto t3 = Clock::now();
      set.push_back(micros(t0, t1));
      run.push_back(micros(t1, t2));
      reset.push_back(micros(t2, t3));
      total.push_back(micros(t0, t3));
    }
    // Pages one request dirties: private copies a fresh clone makes.
    auto clone = std::move(*snapshot->new_sandbox(config));
    long anon_before = terrarium::bench::rss_kb("RssAnon:");
    terrarium::Invocation invocation;
    invocation.args = {"/script/app.py"};
    invocation.env = request_env();
    invocation.stdin_data = body;
    invocation.stdout_output.callback = [](std::string_view) {};
    (void)clone->set_invocation(std::move(invocation));
    (void)clone->call_json_text("__terrarium_cgi__", "null");
    long dirty = (terrarium::bench::rss_kb("RssAnon:") - anon_before) / 4;
    char row[512];
    auto cell = [](std::vector<double>& v) {
      char text[64];
      std::snprintf(text, sizeof text, "%.1f µs (p99 %.1f)", percentile(v, 50), percentile(v, 99));
      return std::string(text);
    };
    std::snprintf(row, sizeof row, "| %s | %s | %s | %s | %s | %ld |\n", script.name,
                  cell(set).c_str(), cell(run).c_str(), cell(reset).c_str(), cell(total).c_str(),
                  dirty);
    table += row;
    std::fputs(row, stdout);
  }
  // A WSGI request: Flask's hello world, as examples/flask-app serves it.
  const char* flask = "/usr/lib/python3/dist-packages/flask/__init__.py";
  if (access(flask, R_OK) == 0) {
    terrarium::SandboxConfig config;
    config.mounts = {{TERRARIUM_SOURCE_DIR "/examples/flask-app", "/srv/app", true},
                     {"/usr/lib/python3/dist-packages", "/usr/lib/python3/dist-packages", true}};
    std::string err;
    config.stderr_output.callback = [&err](std::string_view data) { err.append(data); };
    auto sandbox = runtime->new_sandbox(config);
    if (!sandbox || !(*sandbox)->exec("import terrarium._wsgi\nterrarium._wsgi.prepare('app:app', "
                                      "['/srv/app', '/usr/lib/python3/dist-packages'])\n")) {
      std::fprintf(stderr, "the Flask app did not import: %s\n", err.c_str());
      return 1;
    }
    (void)(*sandbox)->define("__terrarium_wsgi_send__",
                             [](const std::string&) { return std::string(); });
    terrarium::http::Request request;
    request.method = "GET";
    request.target = request.path = "/hello";
    request.headers = {{"Host", "localhost:3000"}, {"User-Agent", "wrk"}};
    request.remote_address = "127.0.0.1";
    auto route = terrarium::server::RoutePattern::parse("/...");
    std::vector<std::string> no_env;
    std::string payload = terrarium::server::wsgi_request_payload(
        terrarium::server::wsgi_environment({request, route, "localhost:3000", no_env}), "");
    (void)(*sandbox)->call("__terrarium_wsgi__", payload);  // warm-up, as the server does
    auto snapshot = *terrarium::Snapshot::capture(**sandbox);
    auto fresh = std::move(*snapshot->new_sandbox(config));
    std::vector<double> build, run, reset, total;
    for (int i = 0; i < requests; ++i) {
      auto t0 = Clock::now();
      std::string body = terrarium::server::wsgi_request_payload(
          terrarium::server::wsgi_environment({request, route, "localhost:3000", no_env}), "");
      auto t1 = Clock::now();
      auto response = fresh->call("__terrarium_wsgi__", body);
      auto t2 = Clock::now();
      if (!response || response->find("Hello, World!") == std::string::npos) {
        std::fprintf(stderr, "the Flask request failed: %s\n%s\n",
                     response ? response->c_str() : response.error().message().c_str(),
                     err.c_str());
        return 1;
      }
      if (auto ok = fresh->reset(); !ok) return 1;
      auto t3 = Clock::now();
      build.push_back(micros(t0, t1));
      run.push_back(micros(t1, t2));
      reset.push_back(micros(t2, t3));
      total.push_back(micros(t0, t3));
    }
    auto clone = std::move(*snapshot->new_sandbox(config));
    long anon_before = terrarium::bench::rss_kb("RssAnon:");
    (void)clone->call("__terrarium_wsgi__", payload);
    long dirty = (terrarium::bench::rss_kb("RssAnon:") - anon_before) / 4;
    char row[512];
    auto cell = [](std::vector<double>& v) {
      char text[64];
      std::snprintf(text, sizeof text, "%.1f µs (p99 %.1f)", percentile(v, 50), percentile(v, 99));
      return std::string(text);
    };
    std::snprintf(row, sizeof row,
                  "| Flask hello (WSGI; environ built by the host) | %s | %s | %s | %s | %ld |\n",
                  cell(build).c_str(), cell(run).c_str(), cell(reset).c_str(), cell(total).c_str(),
                  dirty);
    table += row;
    std::fputs(row, stdout);
  }
  if (!results.empty()) {
    std::ofstream file(results);
    file << "# `terrarium serve`: a CGI request's steps, in process\n\n"
         << terrarium::bench::machine_line() << "\n\n"
         << "`build/bench/serve_steps_bench " << results << " " << requests << "`: " << requests
         << " requests per script on one resident sandbox: `set_invocation` (argv, 22 CGI\n"
            "variables, stdin), the script's run (`__terrarium_cgi__`), `reset()` to the\n"
            "snapshot (dirty pages found with PAGEMAP_SCAN, copied back from a read-only view of\n"
            "the snapshot). No HTTP. CPU time of the thread (so other load on the machine does not "
            "count), medians (p99).\n\n"
         << table;
  }
  return 0;
}
