// `terrarium functions stdio [ops.toml]` and `terrarium functions serve ops.toml`.
#include "cli/functions_command.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <optional>
#include <thread>

#include "cli/confinement.h"
#include "terrarium/functions.h"
#include "terrarium/http.h"
#include "terrarium/runtime.h"
#include "terrarium/units.h"

namespace terrarium::cli {

namespace {

int fail(const char* command, const std::string& message, int status = 2) {
  std::fprintf(stderr, "terrarium functions %s: %s\n", command, message.c_str());
  return status;
}

}  // namespace

void FunctionsCommand::add_to(CLI::App& app) {
  command_ = app.add_subcommand(
      "functions",
      "The function runtime: Metatype-style ops (init / handle / hostcall), every call in a\n"
      "fresh sandbox made from a snapshot taken after all ops were compiled.");
  command_->require_subcommand(1);
  stdio_ = command_->add_subcommand(
      "stdio",
      "JSON-RPC 2.0 on stdin/stdout, one message per line. Requests: init {metatype_version,\n"
      "expected_ops} and handle {op_name, in_json}; while a call runs, the runtime sends\n"
      "its own requests hostcall {op_name, json} and waits for their responses. With an\n"
      "ops.toml the ops are ready at start (init is then optional). Handlers' output goes\n"
      "to stderr. Exits when stdin ends (after the calls in flight).");
  serve_ = command_->add_subcommand(
      "serve",
      "Serve the ops of an ops.toml over HTTP: POST /ops/NAME with a JSON body answers the\n"
      "result as JSON; errors as {\"error\": {kind, message, type, traceback}} with 404\n"
      "(no-handler), 400 (in-json-err), 500 (handler-err), 504 (timeout), 413 (body too\n"
      "large). GET /healthz, GET /metrics (Prometheus). SIGTERM/SIGINT drain and exit 0.");
  stdio_->add_option("manifest", manifest_, "An ops.toml whose ops are loaded at start");
  serve_->add_option("manifest", manifest_, "The ops.toml to serve (optional with --allow-init)");
  for (CLI::App* sub : {stdio_, serve_}) {
    sub->add_option("--metatype-version", metatype_version_,
                    "Refuse an init whose metatype_version differs (default: accept any)");
    sub->add_option("--allow-host", allowed_hosts_,
                    "Host (or host:port) that ops.toml's url hostcalls may reach (repeatable;\n"
                    "adds to the manifest's allowed_hosts)")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    sub->add_option("--workers", workers_, "Threads that run calls (default: the number of cores)");
    sub->add_flag("--no-confine", no_confine_, kNoConfineHelp);
    sub->add_option("--timeout", timeout_,
                    "Default wall-clock limit per call (ops.toml may set its own)")
        ->capture_default_str();
    sub->add_option("--max-memory", max_memory_, "Default guest memory limit per call")
        ->capture_default_str();
    sub->add_option("--max-output", max_output_, "Default limit on what one call may print")
        ->capture_default_str();
  }
  stdio_
      ->add_option("--hostcall-timeout", hostcall_timeout_,
                   "How long a call waits for the client's answer to a hostcall")
      ->capture_default_str();
  serve_
      ->add_option("-l,--listen", listen_,
                   "Address to listen on, IP:PORT ([::1]:3000 for IPv6; port 0: any free)")
      ->capture_default_str();
  serve_->add_option("--max-body", max_body_, "Largest request body, e.g. 16M (413 beyond)")
      ->capture_default_str();
  serve_->add_option("--max-header-bytes", max_header_bytes_, "Largest request head (431 beyond)")
      ->capture_default_str();
  serve_->add_option("--max-connections", max_connections_, "Connections open at once (503 beyond)")
      ->capture_default_str();
  serve_->add_option("--queue", queue_,
                     "Calls that may wait for a worker (default: 64 per worker)");
  serve_->add_flag("--allow-init", allow_init_,
                   "Accept POST /init (Metatype's init parameters as JSON) to replace the ops:\n"
                   "whoever reaches the port may then upload code (it runs sandboxed)");
  serve_->add_option("--metrics-path", metrics_path_, "Path of the Prometheus metrics (\"\": off)")
      ->capture_default_str();
}

int FunctionsCommand::run() { return stdio_->parsed() ? run_stdio() : run_serve(); }

namespace {

struct Prepared {
  bool outbound = false;  // url hostcalls: the system-call wall lets connect() through
  std::shared_ptr<Runtime> runtime;
  std::unique_ptr<Functions> functions;
  std::optional<OpsManifest> manifest;
};

Result<Prepared> prepare(const char* command, const std::string& manifest_path,
                         const std::vector<std::string>& allowed_hosts, FunctionsOptions options,
                         bool confine,
                         const std::function<Result<void>(bool outbound)>& before_op_code) {
  Prepared prepared;
  std::string version = options.metatype_version;
  if (!manifest_path.empty()) {
    auto manifest = load_ops_manifest(manifest_path);
    if (!manifest) return manifest.error();
    manifest->allowed_hosts.insert(manifest->allowed_hosts.end(), allowed_hosts.begin(),
                                   allowed_hosts.end());
    prepared.manifest = std::move(*manifest);
  }
  if (confine) {
    // Landlock before any thread exists: the ops are in memory by now, so
    // the process needs no file of its own; url hostcalls need name
    // resolution and their ports.
    FilesystemWall wall;
    add_process_basics(&wall);
    if (prepared.manifest) {
      for (const HostcallTarget& target : prepared.manifest->hostcalls) {
        if (target.url.empty()) continue;
        prepared.outbound = true;
        if (uint16_t port = hostcall_url_port(target.url)) wall.connect_ports.push_back(port);
      }
    }
    // DNS falls back to TCP for long answers.
    if (prepared.outbound) wall.connect_ports.push_back(53);
    // --listen may name a host (localhost:8080), url hostcalls too.
    add_name_resolution(&wall);
    auto built = build_filesystem_wall(wall);
    if (!built) return built.error();
    if (!built->note.empty())
      std::fprintf(stderr, "terrarium functions %s: %s\n", command, built->note.c_str());
  }
  auto runtime = Runtime::create();
  if (!runtime) return runtime.error();
  prepared.runtime = *runtime;
  auto functions = Functions::create(prepared.runtime, std::move(options));
  if (!functions) return functions.error();
  prepared.functions = std::move(*functions);
  // The ops' module-level code is the first guest code to run: the
  // system-call wall goes up before it (and the listening socket before that).
  if (auto ready = before_op_code(prepared.outbound); !ready) return ready.error();
  if (prepared.manifest) {
    auto started = std::chrono::steady_clock::now();
    auto ready = prepared.functions->init(version, prepared.manifest->ops);
    if (!ready) {
      const FunctionError& error = ready.error();
      return Error(
          ErrorKind::kConfig,
          manifest_path + ": " + function_error_kind_name(error.kind) + ": " + error.message,
          error.traceback);
    }
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    std::fprintf(stderr,
                 "terrarium functions %s: %zu ops from %s compiled and snapshotted in %.0f ms\n",
                 command, prepared.manifest->ops.size(), manifest_path.c_str(), ms);
  }
  return prepared;
}

}  // namespace

// The flags both subcommands share, as FunctionsOptions; "" when all parse,
// else the message naming the flag.
std::string FunctionsCommand::shared_options(FunctionsOptions* options) const {
  options->metatype_version = metatype_version_;
  auto timeout = parse_duration(timeout_);
  if (!timeout || timeout->count() <= 0) {
    return "--timeout '" + timeout_ + "': must be a positive duration";
  }
  auto memory = parse_size(max_memory_);
  if (!memory) return "--max-memory '" + max_memory_ + "': " + memory.error().message();
  auto output = parse_size(max_output_);
  if (!output) return "--max-output '" + max_output_ + "': " + output.error().message();
  options->timeout = *timeout;
  options->max_memory = *memory;
  options->max_output = *output;
  return "";
}

int FunctionsCommand::run_stdio() {
  FunctionsOptions options;
  if (std::string problem = shared_options(&options); !problem.empty()) {
    return fail("stdio", problem);
  }
  auto hostcall_timeout = parse_duration(hostcall_timeout_);
  if (!hostcall_timeout || hostcall_timeout->count() <= 0)
    return fail("stdio",
                "--hostcall-timeout '" + hostcall_timeout_ + "': must be a positive duration");
  // stdout carries the protocol: what handlers print goes to stderr, as
  // "[op NAME] line" (FunctionsOptions::output's default).
  auto prepared = prepare("stdio", manifest_, allowed_hosts_, std::move(options), !no_confine_,
                          [this](bool outbound) -> Result<void> {
                            if (no_confine_) return {};
                            return build_system_call_wall({outbound});
                          });
  if (!prepared) {
    if (!prepared.error().details().empty()) std::fputs(prepared.error().details().c_str(), stderr);
    return fail("stdio", prepared.error().message(), 1);
  }
  JsonRpcOptions rpc;
  rpc.workers = workers_;
  rpc.hostcall_timeout = *hostcall_timeout;
  rpc.manifest = prepared->manifest ? &*prepared->manifest : nullptr;
  rpc.log = [](const std::string& line) {
    std::fprintf(stderr, "terrarium functions stdio: %s\n", line.c_str());
  };
  signal(SIGPIPE, SIG_IGN);  // a client gone is seen as a failed write
  auto served = serve_json_rpc(*prepared->functions, 0, 1, std::move(rpc));
  if (!served) return fail("stdio", served.error().message(), 1);
  return 0;
}

int FunctionsCommand::run_serve() {
  FunctionsOptions options;
  if (std::string problem = shared_options(&options); !problem.empty()) {
    return fail("serve", problem);
  }
  auto body = parse_size(max_body_);
  auto header = parse_size(max_header_bytes_);
  if (!body) return fail("serve", "--max-body '" + max_body_ + "': " + body.error().message());
  if (!header)
    return fail("serve",
                "--max-header-bytes '" + max_header_bytes_ + "': " + header.error().message());
  if (!metrics_path_.empty() && metrics_path_[0] != '/') {
    return fail("serve", "--metrics-path '" + metrics_path_ + "': must start with '/'");
  }
  if (manifest_.empty() && !allow_init_) {
    return fail("serve",
                "no ops.toml given (terrarium functions serve ops.toml), and no --allow-init "
                "to receive ops by POST /init");
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  http::Options http_options;
  http_options.listen = listen_;
  http_options.workers = workers_;
  http_options.max_body_bytes = *body;
  http_options.max_header_bytes = *header;
  http_options.max_connections = max_connections_;
  http_options.queue_capacity = queue_;
  http_options.rejection_body = functions_http_rejection;
  std::unique_ptr<http::Server> server;
  auto prepared = prepare("serve", manifest_, allowed_hosts_, std::move(options), !no_confine_,
                          [&](bool outbound) -> Result<void> {
                            // Bound before the ops run (a bad address fails first) and before
                            // the system-call wall, which has no bind; the handler comes later.
                            auto created = http::Server::create(http_options, nullptr);
                            if (!created) return created.error();
                            server = std::move(*created);
                            if (no_confine_) return {};
                            return build_system_call_wall({outbound});
                          });
  if (!prepared) {
    if (!prepared.error().details().empty()) std::fputs(prepared.error().details().c_str(), stderr);
    return fail("serve", prepared.error().message(), 1);
  }
  FunctionsHttpOptions handler_options;
  handler_options.metrics_path = metrics_path_;
  handler_options.manifest = prepared->manifest ? &*prepared->manifest : nullptr;
  if (allow_init_) handler_options.init_target = prepared->functions.get();
  handler_options.log = [](const std::string& line) {
    std::fprintf(stderr, "terrarium functions serve: %s\n", line.c_str());
  };
  server->set_handler(functions_http_handler(*prepared->functions, std::move(handler_options)));
  http::Server* raw = server.get();
  std::printf("Ready: serving %zu ops on http://%s (POST /ops/NAME%s)\n",
              prepared->functions->op_names().size(), raw->address().c_str(),
              allow_init_ ? ", POST /init" : "");
  std::fflush(stdout);
  std::atomic<bool> finished{false};
  std::thread watcher([raw, signals, &finished] {
    int signal = 0;
    while (sigwait(&signals, &signal) != 0) {
    }
    if (!finished) raw->stop();
  });
  raw->run();
  finished = true;
  pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  return 0;
}

}  // namespace terrarium::cli
