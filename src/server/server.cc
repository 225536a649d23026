// terrarium::Server (include/terrarium/server.h): modules.toml's routes on
// the HTTP library, Wagi's routing, /healthz and /metrics, logs, reload.
#include "terrarium/server.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "server/log.h"
#include "terrarium/metrics.h"
#include "server/modules_config.h"
#include "server/route_runner.h"

namespace terrarium {

namespace fs = std::filesystem;
using server::Log;
using http::Metrics;
using server::ModulesConfig;
using server::RouteRunner;

namespace server {

// The routes of one modules.toml, as requests see them: swapped as a whole
// on reload.
class Routes final : public http::Handler {
 public:
  Routes(Server::Impl& server, std::vector<std::unique_ptr<RouteRunner>> runners)
      : server_(server), runners_(std::move(runners)) {}

  std::optional<http::Response> answer_inline(const http::Request& request) override;
  void handle(const http::Request& request, size_t worker, http::ResponseWriter& writer) override;
  void completed(const Completed& completed) override;

 private:
  // Wagi's rule: the first route in file order that matches.
  RouteRunner* match(const std::string& path) const {
    for (const auto& runner : runners_) {
      if (runner->module().pattern.matches(path)) return runner.get();
    }
    return nullptr;
  }

  Server::Impl& server_;
  std::vector<std::unique_ptr<RouteRunner>> runners_;
};

}  // namespace server

using server::Routes;

struct Server::Impl {
  std::shared_ptr<const Runtime> runtime;
  ServeOptions options;
  std::unique_ptr<Log> log;
  std::unique_ptr<server::AccessLog> access_log;
  std::unique_ptr<http::Server> http;
  std::string log_dir;
  std::string scratch_root;
  std::mutex reload_mutex;

  Metrics metrics;
  Metrics::Counter* requests = nullptr;
  Metrics::Histogram* latency = nullptr;
  Metrics::Counter* guest_errors = nullptr;
  Metrics::Counter* sandboxes_created = nullptr;
  Metrics::Counter* sandbox_resets = nullptr;
  std::atomic<uint64_t> requests_total{0}, created_total{0}, resets_total{0};

  bool remove_log_dir = false;  // a temporary one, while start-up has not succeeded

  ~Impl() {
    http.reset();  // workers joined, routes released, before their folders go
    std::error_code ignored;
    if (!scratch_root.empty()) fs::remove_all(scratch_root, ignored);
    if (remove_log_dir) fs::remove_all(log_dir, ignored);
  }

  Result<std::shared_ptr<Routes>> load_routes();  // reads the config again
  Result<std::shared_ptr<Routes>> build_routes(const server::ModulesConfig& config);
  // ServeOptions::before_threads; `config` null when it does not load.
  std::vector<HostPath> host_paths(const server::ModulesConfig* config) const;
};

namespace server {

std::optional<http::Response> Routes::answer_inline(const http::Request& request) {
  // /healthz first, before every user route (as Wagi).
  if (request.path == "/healthz") return http::Response{200, {}, "OK"};
  const std::string& metrics_path = server_.options.metrics_path;
  if (!metrics_path.empty() && request.path == metrics_path) {
    return http::Response{200,
                          {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}},
                          server_.metrics.render()};
  }
  if (!match(request.path)) return http::Response{404, {}, ""};
  return std::nullopt;
}

void Routes::handle(const http::Request& request, size_t worker, http::ResponseWriter& writer) {
  RouteRunner* runner = match(request.path);
  if (!runner) {
    writer.send({404, {}, ""});
    return;
  }
  runner->handle(request, worker, writer);
}

void Routes::completed(const Completed& completed) {
  std::string route;
  if (completed.request) {
    const std::string& path = completed.request->path;
    if (path == "/healthz")
      route = "/healthz";
    else if (!server_.options.metrics_path.empty() && path == server_.options.metrics_path)
      route = server_.options.metrics_path;
    else if (RouteRunner* runner = match(path))
      route = runner->module().route;
  }
  std::string label = route.empty() ? "(none)" : route;
  double seconds = std::chrono::duration<double>(completed.duration).count();
  server_.requests->add({{"route", label}, {"status", std::to_string(completed.status)}});
  server_.latency->observe({{"route", label}}, seconds);
  ++server_.requests_total;
  if (!completed.reason.empty()) {
    server_.log->warn("request not served normally",
                      {{"status", std::to_string(completed.status)},
                       {"reason", std::string(completed.reason)},
                       {"remote", completed.request ? completed.request->remote_address : ""}});
  }
  if (server_.access_log) {
    const http::Request* r = completed.request;
    const std::string* agent = r ? r->header("User-Agent") : nullptr;
    const std::string* referer = r ? r->header("Referer") : nullptr;
    server_.access_log->write(
        {r ? std::string_view(r->remote_address) : "", r ? std::string_view(r->method) : "-",
         r ? std::string_view(r->target) : "-", r ? r->version : 11, completed.status,
         completed.body_bytes, seconds, route, r ? r->id : 0, agent ? std::string_view(*agent) : "",
         referer ? std::string_view(*referer) : ""});
  }
}

}  // namespace server

std::vector<HostPath> Server::Impl::host_paths(const server::ModulesConfig* config_read) const {
  std::vector<HostPath> paths;
  std::error_code error;
  fs::path config = fs::absolute(options.config_path, error);
  paths.push_back({config.parent_path().string(), false});
  // A config that is a symlink: its target's folder is read too.
  fs::path target = fs::weakly_canonical(config, error);
  if (!error && target.parent_path() != config.parent_path()) {
    paths.push_back({target.parent_path().string(), false});
  }
  paths.push_back({log_dir, true});
  paths.push_back({scratch_root, true});
  if (!options.access_log.empty() && options.access_log != "-") {
    paths.push_back({fs::absolute(options.access_log, error).string(), true});
  }
  // A config that does not load fails the start a moment later, with its
  // error.
  if (!config_read) return paths;
  for (const server::ModuleConfig& module : config_read->modules) {
    for (const std::string& file : {module.module_path, module.script_host_path}) {
      if (!file.empty()) paths.push_back({file, false});
    }
    for (const Mount& volume : module.volumes)
      paths.push_back({volume.host_path, !volume.read_only});
    for (const std::string& folder : module.python_path) paths.push_back({folder, false});
  }
  return paths;
}

Result<std::shared_ptr<Routes>> Server::Impl::load_routes() {
  auto config = server::load_modules_config(options.config_path);
  if (!config) return config.error();
  return build_routes(*config);
}

Result<std::shared_ptr<Routes>> Server::Impl::build_routes(const server::ModulesConfig& config) {
  for (const std::string& note : config.notes) log->info(note);
  server::RouteEnvironment environment;
  environment.options = &options;
  environment.log_dir = log_dir;
  environment.scratch_root = scratch_root;
  environment.log = log.get();
  environment.guest_errors = guest_errors;
  environment.sandboxes_created = sandboxes_created;
  environment.sandbox_resets = sandbox_resets;
  environment.created_total = &created_total;
  environment.resets_total = &resets_total;
  std::vector<std::unique_ptr<RouteRunner>> runners;
  size_t workers = options.http.workers;
  for (const server::ModuleConfig& module : config.modules) {
    auto started = std::chrono::steady_clock::now();
    auto runner = RouteRunner::create(*runtime, module, environment, workers);
    if (!runner) {
      const Error& error = runner.error();
      return Error(error.kind(), options.config_path + ": " + error.message(), error.details());
    }
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    std::string kind = module.kind == server::ModuleConfig::Kind::kWsgi ? "wsgi" : "cgi";
    log->info("route ready", {{"route", module.route},
                              {"kind", kind},
                              {"script", module.kind == server::ModuleConfig::Kind::kWsgi
                                             ? module.wsgi
                                             : module.script_host_path},
                              {"startup_ms", std::to_string(static_cast<int>(ms))}});
    runners.push_back(std::move(*runner));
  }
  return std::make_shared<Routes>(*this, std::move(runners));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::create(std::shared_ptr<const Runtime> runtime,
                                               ServeOptions options) {
  if (!runtime) return Error(ErrorKind::kConfig, "Server::create needs a runtime");
  auto impl = std::make_unique<Impl>();
  impl->runtime = std::move(runtime);
  if (options.http.workers == 0)
    options.http.workers = std::max(1u, std::thread::hardware_concurrency());
  impl->options = std::move(options);
  const ServeOptions& opts = impl->options;
  impl->log = std::make_unique<Log>(opts.log_format, opts.log);
  for (const std::string& entry : opts.env) {
    if (entry.find('=') == std::string::npos || entry[0] == '=') {
      return Error(ErrorKind::kConfig, "environment entry '" + entry + "' is not NAME=VALUE");
    }
  }
  if (!opts.access_log.empty()) {
    auto access_log = server::AccessLog::open(opts.access_log, opts.log_format);
    if (!access_log) return access_log.error();
    impl->access_log = std::move(*access_log);
  }

  // Log folder: given, or a new temporary one (as Wagi, which names it).
  std::error_code error;
  if (opts.log_dir.empty()) {
    std::string pattern = (fs::temp_directory_path(error) / "terrarium-logs-XXXXXX").string();
    if (!mkdtemp(pattern.data())) {
      return Error(ErrorKind::kConfig,
                   "cannot create a temporary log folder: " + std::string(std::strerror(errno)));
    }
    impl->log_dir = pattern;
    impl->remove_log_dir = true;
    impl->log->info("No log_dir specified, using temporary directory " + impl->log_dir +
                    " for logs");
  } else {
    impl->log_dir = fs::absolute(opts.log_dir, error).string();
    fs::create_directories(impl->log_dir, error);
    if (error || !fs::is_directory(impl->log_dir)) {
      return Error(ErrorKind::kConfig, "--log-dir '" + opts.log_dir +
                                           "': cannot create the folder" +
                                           (error ? ": " + error.message() : ""));
    }
  }
  std::string scratch = (fs::temp_directory_path(error) / "terrarium-scratch-XXXXXX").string();
  if (!mkdtemp(scratch.data())) {
    return Error(ErrorKind::kConfig,
                 "cannot create the scratch folder: " + std::string(std::strerror(errno)));
  }
  impl->scratch_root = scratch;

  Impl* raw = impl.get();
  impl->requests = &impl->metrics.counter("terrarium_http_requests_total",
                                          "HTTP requests answered, by route and status.");
  impl->latency =
      &impl->metrics.histogram("terrarium_http_request_duration_seconds",
                               "Time from a request's headers to its last byte written, by route.",
                               {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  impl->guest_errors = &impl->metrics.counter("terrarium_guest_errors_total",
                                              "Requests whose guest failed, by route and kind "
                                              "(trap, timeout, limit, exit, bad_output, ...).");
  impl->sandboxes_created = &impl->metrics.counter("terrarium_sandboxes_created_total",
                                                   "Sandboxes made from a route's snapshot.");
  impl->sandbox_resets =
      &impl->metrics.counter("terrarium_sandbox_resets_total",
                             "Sandboxes put back to their route's snapshot after a request.");
  impl->metrics.gauge("terrarium_queue_depth", "Requests waiting for a worker.",
                      [raw] { return raw->http ? double(raw->http->stats().queue_depth) : 0.0; });
  impl->metrics.gauge("terrarium_busy_workers", "Workers running a request now.",
                      [raw] { return raw->http ? double(raw->http->stats().busy_workers) : 0.0; });
  impl->metrics.gauge("terrarium_connections_open", "Client connections open now.", [raw] {
    return raw->http ? double(raw->http->stats().connections_open) : 0.0;
  });
  impl->metrics.gauge(
      "terrarium_rejected_overload",
      "Requests answered 503 because every worker was busy and the queue full.",
      [raw] { return raw->http ? double(raw->http->stats().rejected_overload) : 0.0; });

  // Read once, for the wall and the routes; its error comes after the
  // address's.
  auto config = server::load_modules_config(impl->options.config_path);
  if (opts.before_threads) {
    auto walled = opts.before_threads(impl->host_paths(config ? &*config : nullptr));
    if (!walled) return walled.error();
  }
  // Bound first: a bad address fails before the routes' start-up work.
  auto http = http::Server::create(impl->options.http, nullptr);
  if (!http) return http.error();
  impl->http = std::move(*http);
  if (opts.before_guest_code) {
    auto walled = opts.before_guest_code();
    if (!walled) return walled.error();
  }
  if (!config) return config.error();
  auto routes = impl->build_routes(*config);
  if (!routes) return routes.error();
  impl->http->set_handler(*routes);
  impl->remove_log_dir = false;
  impl->log->info("Ready: serving on http://" + impl->http->address(),
                  {{"workers", std::to_string(impl->http->workers())}});
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::run() { impl_->http->run(); }

void Server::stop() {
  impl_->log->info("stopping: draining requests in flight");
  impl_->http->stop();
}

Result<void> Server::reload() {
  std::lock_guard lock(impl_->reload_mutex);
  impl_->log->info("reloading " + impl_->options.config_path);
  auto routes = impl_->load_routes();
  if (!routes) {
    impl_->log->error("reload failed; keeping the routes that run now",
                      {{"error", routes.error().message()}});
    return routes.error();
  }
  impl_->http->set_handler(*routes);
  impl_->log->info("reloaded " + impl_->options.config_path);
  return {};
}

uint16_t Server::port() const { return impl_->http->port(); }
std::string Server::address() const { return impl_->http->address(); }
const std::string& Server::log_dir() const { return impl_->log_dir; }

ServerCounters Server::counters() const {
  return {impl_->requests_total.load(), impl_->created_total.load(), impl_->resets_total.load()};
}

}  // namespace terrarium
