// One route of `terrarium serve`: its snapshot, taken once at start, and the
// sandboxes its requests run in — one per worker thread, put back to the
// snapshot after every request (or a new clone per request), each with its
// own scratch /tmp.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "server/log.h"
#include "server/modules_config.h"
#include "terrarium/http.h"
#include "terrarium/metrics.h"
#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"
#include "terrarium/server.h"
#include "terrarium/snapshot.h"

namespace terrarium::server {

// What all routes of a server share.
struct RouteEnvironment {
  const ServeOptions* options = nullptr;
  std::string log_dir;       // the resolved --log-dir
  std::string scratch_root;  // where each sandbox's /tmp lives on the host
  Log* log = nullptr;
  http::Metrics::Counter* guest_errors = nullptr;       // {route, kind}
  http::Metrics::Counter* sandboxes_created = nullptr;  // {route}
  http::Metrics::Counter* sandbox_resets = nullptr;     // {route}
  std::atomic<uint64_t>* created_total = nullptr;
  std::atomic<uint64_t>* resets_total = nullptr;
};

class RouteRunner {
 public:
  // Starts the route's interpreter, prepares the script (or imports the WSGI
  // app) and takes the snapshot. Errors name the route; a Python error has
  // the traceback in details().
  static Result<std::unique_ptr<RouteRunner>> create(const Runtime& runtime,
                                                     const ModuleConfig& module,
                                                     const RouteEnvironment& environment,
                                                     size_t workers);
  ~RouteRunner();

  const ModuleConfig& module() const { return module_; }
  // Runs one request on worker `worker` and writes its response.
  void handle(const http::Request& request, size_t worker, http::ResponseWriter& writer);

 private:
  struct Slot {
    std::unique_ptr<Sandbox> sandbox;
    std::string scratch;  // host folder of the sandbox's /tmp
    // WSGI: the request in progress, for the streaming host function and
    // the app's own stdout/stderr (logged after each request).
    http::ResponseWriter* writer = nullptr;
    std::string out, err;
  };
  RouteRunner(const ModuleConfig& module, const RouteEnvironment& environment)
      : module_(module), environment_(environment) {}
  SandboxConfig sandbox_config(const std::string& scratch) const;
  Result<Sandbox*> sandbox_for(Slot& slot);
  void finish_with(Slot& slot);
  void handle_cgi(const http::Request& request, Slot& slot, http::ResponseWriter& writer);
  void handle_wsgi(const http::Request& request, Slot& slot, http::ResponseWriter& writer);
  // The bytes __terrarium_wsgi__ takes: the environ and the body.
  std::string wsgi_payload(const http::Request& request) const;
  static void define_wsgi_send(Sandbox& sandbox, Slot* slot);
  void guest_failed(const http::Request& request, const Error& error, int* status);
  void write_stderr(const http::Request& request, const std::string& text);

  ModuleConfig module_;
  RouteEnvironment environment_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::vector<std::string> base_env_;  // server env, then the module's
  std::vector<Slot> slots_;            // one per worker
  std::string template_scratch_;       // the empty /tmp of the snapshot
  int stderr_fd_ = -1;                 // LOG_DIR/<sha256 of the route>/module.stderr
  Limits limits_;
};

}  // namespace terrarium::server
