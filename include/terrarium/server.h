// `terrarium serve`: a Wagi-compatible HTTP server. Each route of a
// modules.toml runs a Python CGI script (or a WSGI app) and every request
// gets a fresh sandbox: a copy of the route's snapshot, taken once at start
// after the interpreter started and the script was compiled.
//
//   auto server = terrarium::Server::create(runtime, options);   // loads, snapshots, binds
//   (*server)->run();                                            // until stop()
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "terrarium/error.h"
#include "terrarium/http.h"
#include "terrarium/runtime.h"

namespace terrarium {

enum class LogFormat { kText, kJson };

// A host file or folder (its whole tree) the server reads, or also writes,
// once it runs.
struct HostPath {
  std::string path;
  bool write = false;
};

struct ServeOptions {
  std::string config_path;  // modules.toml
  http::Options http;       // listen address, workers, request limits
  // SERVER_NAME/SERVER_PORT when a request has no Host header (Wagi's --hostname).
  std::string default_host = "localhost:3000";
  // The guests' environment before the CGI variables: --env-file entries
  // first, then -e (later entries win).
  std::vector<std::string> env;
  // Per-route stderr logs (LOG_DIR/<sha256 of the route>/module.stderr).
  // Empty: a new temporary directory, named in the log.
  std::string log_dir;
  // Defaults of every route (modules.toml's `limits` override them).
  std::chrono::milliseconds timeout{30'000};
  uint64_t max_memory = 256ull << 20;
  uint64_t max_output = 16ull << 20;   // stdout + stderr of one request
  uint64_t max_written = 64ull << 20;  // bytes one request may write to files
  std::string access_log;              // "" none, "-" stdout, else a file (appended)
  LogFormat log_format = LogFormat::kText;
  std::string metrics_path = "/metrics";  // "" to turn /metrics off
  // The server's own log lines (each without the newline). Default: stderr.
  std::function<void(std::string_view line)> log;
  // Called once by Server::create before the server starts any thread, with
  // every host path it reads or writes from then on: the config's folder
  // (a reload reads it again), each route's script, volumes and python_path,
  // the log and scratch folders, the access log. `terrarium serve` builds
  // its filesystem wall (Landlock) here. An error fails the start.
  std::function<Result<void>(const std::vector<HostPath>& paths)> before_threads;
  // Called once by Server::create after the listening socket is bound and
  // before the first guest code runs (a WSGI app's import and warm-up, a
  // script's snapshot): `terrarium serve` installs its system-call wall here.
  std::function<Result<void>()> before_guest_code;
};

// What /metrics and the tests read.
struct ServerCounters {
  uint64_t requests = 0;
  uint64_t sandboxes_created = 0;
  uint64_t sandbox_resets = 0;
};

class Server {
 public:
  // Reads the config (errors name file:line:column and key), snapshots every
  // route (an import or syntax error names the route and has the traceback
  // in details()), binds the listening socket.
  static Result<std::unique_ptr<Server>> create(std::shared_ptr<const Runtime> runtime,
                                                ServeOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until stop() (on the calling thread).
  void run();
  // Drains in-flight requests, then run() returns. Thread-safe.
  void stop();
  // Reads config_path again and switches to it; requests in flight finish
  // on the old routes. A broken file keeps the old routes (the error says why).
  Result<void> reload();

  uint16_t port() const;
  std::string address() const;  // "127.0.0.1:3000"
  const std::string& log_dir() const;
  ServerCounters counters() const;

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace terrarium
