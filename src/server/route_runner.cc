#include "server/route_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "server/cgi.h"
#include "server/sha256.h"

namespace terrarium::server {

namespace fs = std::filesystem;

namespace {

constexpr const char* kScratchGuestPath = "/tmp";

// A Python string literal of `text` (JSON's escaping is valid Python).
std::string python_string(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool folder_is_empty(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (!dir) return true;
  bool empty = true;
  while (struct dirent* entry = readdir(dir)) {
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(dir);
  return empty;
}

// Empties a scratch folder without following links the guest made.
void empty_folder(const std::string& path) {
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator(path, ignored)) {
    fs::remove_all(entry.path(), ignored);
  }
}

std::string error_kind_label(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTrap:
      return "trap";
    case ErrorKind::kLimit:
      return "limit";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kGuestError:
      return "guest_error";
    case ErrorKind::kHostError:
      return "host_error";
    case ErrorKind::kNotFound:
      return "not_found";
    case ErrorKind::kConfig:
      return "config";
    case ErrorKind::kInternal:
      return "internal";
    case ErrorKind::kInterrupted:
      return "interrupted";
  }
  return "other";
}

}  // namespace

RouteRunner::~RouteRunner() {
  std::error_code ignored;
  for (Slot& slot : slots_) {
    slot.sandbox.reset();
    if (!slot.scratch.empty()) fs::remove_all(slot.scratch, ignored);
  }
  if (!template_scratch_.empty()) fs::remove_all(template_scratch_, ignored);
  if (stderr_fd_ >= 0) close(stderr_fd_);
}

SandboxConfig RouteRunner::sandbox_config(const std::string& scratch) const {
  SandboxConfig config;
  config.env = base_env_;
  config.mounts = module_.volumes;
  for (const std::string& path : module_.python_path) config.mounts.push_back({path, path, true});
  config.mounts.push_back({scratch, kScratchGuestPath, false});
  config.limits = limits_;
  return config;
}

Result<std::unique_ptr<RouteRunner>> RouteRunner::create(const Runtime& runtime,
                                                         const ModuleConfig& module,
                                                         const RouteEnvironment& environment,
                                                         size_t workers) {
  std::unique_ptr<RouteRunner> runner(new RouteRunner(module, environment));
  const ServeOptions& options = *environment.options;
  std::string label = "route '" + module.route + "'";

  Limits& limits = runner->limits_;
  limits.timeout = module.timeout.value_or(options.timeout);
  limits.max_memory_bytes = module.max_memory.value_or(options.max_memory);
  limits.max_output_bytes = module.max_output.value_or(options.max_output);
  limits.max_written_bytes = module.max_written.value_or(options.max_written);

  runner->base_env_ = options.env;
  runner->base_env_.insert(runner->base_env_.end(), module.environment.begin(),
                           module.environment.end());

  // Wagi's per-route stderr log, created at start as Wagi does.
  std::string log_folder = environment.log_dir + "/" + sha256_hex(module.route);
  std::error_code error;
  fs::create_directories(log_folder, error);
  std::string log_file = log_folder + "/module.stderr";
  runner->stderr_fd_ = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (runner->stderr_fd_ < 0) {
    return Error(ErrorKind::kConfig,
                 label + ": cannot open its log " + log_file + ": " + std::strerror(errno));
  }

  // Scratch folders: the snapshot's (stays empty) and one per worker.
  auto make_folder = [&](const std::string& name) -> Result<std::string> {
    std::string path = environment.scratch_root + "/" + name;
    fs::create_directories(path, error);
    if (error) {
      return Error(ErrorKind::kConfig,
                   label + ": cannot create scratch folder " + path + ": " + error.message());
    }
    return path;
  };
  // Unique per runner: a reload makes new runners beside the old ones.
  static std::atomic<uint64_t> generation{0};
  std::string route_id = std::to_string(++generation) + "-" + std::to_string(module.index);
  auto template_folder = make_folder(route_id + "-snapshot");
  if (!template_folder) return template_folder.error();
  runner->template_scratch_ = *template_folder;
  runner->slots_.resize(workers);
  for (size_t i = 0; i < workers; ++i) {
    auto folder = make_folder(route_id + "-worker" + std::to_string(i));
    if (!folder) return folder.error();
    runner->slots_[i].scratch = *folder;
  }

  // The interpreter of the snapshot: the request's args and env come later.
  SandboxConfig config = runner->sandbox_config(runner->template_scratch_);
  std::string startup_output;
  auto capture = [&startup_output](std::string_view data) {
    if (startup_output.size() < 64 * 1024) startup_output.append(data);
  };
  config.stdout_output.callback = capture;
  config.stderr_output.callback = capture;
  // Starting may import a large app: more time than one request gets.
  config.limits.timeout = std::max(limits.timeout, std::chrono::milliseconds(60'000));
  std::string bootstrap;
  if (module.kind == ModuleConfig::Kind::kWsgi) {
    // sys.path: the volumes in file order, then python_path.
    std::string paths = "[";
    for (const Mount& volume : module.volumes) paths += python_string(volume.guest_path) + ", ";
    for (const std::string& path : module.python_path) paths += python_string(path) + ", ";
    paths += "]";
    config.args = {"wsgi:" + module.wsgi};
    bootstrap = "import terrarium._wsgi\nterrarium._wsgi.prepare(" + python_string(module.wsgi) +
                ", " + paths + ")\n";
  } else {
    config.args = {module.script_guest_path};
    if (module.script_guest_path.rfind("/script/", 0) == 0) {
      // A script outside every volume: given to the guest alone.
      std::ifstream in(module.script_host_path, std::ios::binary);
      std::ostringstream contents;
      contents << in.rdbuf();
      if (!in) {
        return Error(ErrorKind::kConfig, label + ": cannot read script " + module.script_host_path);
      }
      config.files.push_back({module.script_guest_path, contents.str()});
    }
    bootstrap = "import terrarium._cgi\nterrarium._cgi.prepare(" +
                python_string(module.script_guest_path) + ")\n";
  }
  auto sandbox = runtime.new_sandbox(config);
  if (!sandbox) {
    return Error(sandbox.error().kind(),
                 label + ": the interpreter did not start: " + sandbox.error().message(),
                 startup_output);
  }
  if (auto ok = (*sandbox)->exec(bootstrap, "<terrarium serve>"); !ok) {
    std::string details = ok.error().details();
    if (!startup_output.empty()) details += (details.empty() ? "" : "\n") + startup_output;
    std::string what = module.kind == ModuleConfig::Kind::kWsgi
                           ? "importing the WSGI app " + module.wsgi
                           : "preparing " + module.script_guest_path;
    return Error(ok.error().kind(), label + ": " + what + " failed: " + ok.error().message(),
                 details);
  }
  if (module.kind == ModuleConfig::Kind::kWsgi) define_wsgi_send(**sandbox, nullptr);
  if (module.kind == ModuleConfig::Kind::kWsgi && !module.warm_up.empty()) {
    // One request through the app before the snapshot: what the framework
    // sets up on first use is then paid once (ModuleConfig::warm_up).
    http::Request warm;
    warm.method = "GET";
    // Under the route's mount point, so that PATH_INFO is the warm-up path.
    warm.target = warm.path =
        (module.pattern.wildcard ? module.pattern.prefix : "") + module.warm_up;
    warm.headers = {{"Host", options.default_host}, {"User-Agent", "terrarium-warm-up"}};
    warm.remote_address = "127.0.0.1";
    auto warmed = (*sandbox)->call("__terrarium_wsgi__", runner->wsgi_payload(warm));
    if (!warmed) {
      environment.log->warn(
          "warming the app with GET " + module.warm_up + " failed (the route still starts)",
          {{"route", module.route}, {"error", warmed.error().message()}});
      if ((*sandbox)->spent()) {
        return Error(ErrorKind::kGuestError,
                     label + ": the app's warm-up request left the sandbox unusable: " +
                         warmed.error().message());
      }
    }
  }
  auto snapshot = Snapshot::capture(**sandbox);
  if (!snapshot) {
    return Error(snapshot.error().kind(), label + ": snapshot: " + snapshot.error().message());
  }
  runner->snapshot_ = std::move(*snapshot);

  if (module.pool_prefill && module.pool_strategy == "reset") {
    for (Slot& slot : runner->slots_) {
      auto made = runner->sandbox_for(slot);
      if (!made) {
        return Error(made.error().kind(), label + ": " + made.error().message());
      }
    }
  }
  return runner;
}

Result<Sandbox*> RouteRunner::sandbox_for(Slot& slot) {
  if (slot.sandbox) return slot.sandbox.get();
  SandboxConfig config = sandbox_config(slot.scratch);
  if (module_.kind == ModuleConfig::Kind::kWsgi) {
    Slot* target = &slot;
    config.stdout_output.callback = [target](std::string_view data) { target->out.append(data); };
    config.stderr_output.callback = [target](std::string_view data) { target->err.append(data); };
  }
  auto sandbox = snapshot_->new_sandbox(config);
  if (!sandbox) return sandbox.error();
  if (module_.kind == ModuleConfig::Kind::kWsgi) define_wsgi_send(**sandbox, &slot);
  environment_.sandboxes_created->add({{"route", module_.route}});
  ++*environment_.created_total;
  slot.sandbox = std::move(*sandbox);
  return slot.sandbox.get();
}

// After a request: the sandbox back to the snapshot, the scratch emptied.
void RouteRunner::finish_with(Slot& slot) {
  if (!folder_is_empty(slot.scratch)) empty_folder(slot.scratch);
  if (!slot.sandbox) return;
  if (module_.pool_strategy == "clone") {
    slot.sandbox.reset();
    return;
  }
  if (auto ok = slot.sandbox->reset(); !ok) {
    environment_.log->error("sandbox reset failed; the next request gets a new one",
                            {{"route", module_.route}, {"error", ok.error().message()}});
    slot.sandbox.reset();
    return;
  }
  environment_.sandbox_resets->add({{"route", module_.route}});
  ++*environment_.resets_total;
}

void RouteRunner::write_stderr(const http::Request& request, const std::string& text) {
  if (text.empty()) return;
  // One write per request: O_APPEND keeps concurrent requests' lines whole.
  ssize_t ignored = write(stderr_fd_, text.data(), text.size());
  (void)ignored;
  std::string_view trimmed = text;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.remove_suffix(1);
  environment_.log->warn("guest stderr", {{"route", module_.route},
                                          {"request", std::to_string(request.id)},
                                          {"stderr", std::string(trimmed)}});
}

void RouteRunner::guest_failed(const http::Request& request, const Error& error, int* status) {
  *status = error.kind() == ErrorKind::kTimeout ? 504 : 500;
  environment_.guest_errors->add(
      {{"route", module_.route}, {"kind", error_kind_label(error.kind())}});
  environment_.log->error("request failed", {{"route", module_.route},
                                             {"request", std::to_string(request.id)},
                                             {"status", std::to_string(*status)},
                                             {"error", error.to_string()}});
}

void RouteRunner::handle(const http::Request& request, size_t worker,
                         http::ResponseWriter& writer) {
  Slot& slot = slots_[worker % slots_.size()];
  if (module_.kind == ModuleConfig::Kind::kWsgi) {
    handle_wsgi(request, slot, writer);
  } else {
    handle_cgi(request, slot, writer);
  }
  finish_with(slot);
}

namespace {

// "200 OK" -> 200; 0 if it is not a status line.
int status_code(std::string_view status) {
  if (status.size() < 3) return 0;
  int code = 0;
  for (size_t i = 0; i < 3; ++i) {
    if (status[i] < '0' || status[i] > '9') return 0;
    code = code * 10 + (status[i] - '0');
  }
  return code >= 100 ? code : 0;
}

// The head the guest's _wsgi module encodes: b"H 0|1\0status\0name\0value\0..."
// followed by the body. Returns false if it is malformed.
bool parse_wsgi_head(std::string_view data, int* status, http::Headers* headers, bool* streamed,
                     std::string_view* body) {
  size_t nul = data.find('\0');
  if (nul == std::string_view::npos) return false;
  std::string_view counts = data.substr(0, nul);
  size_t space = counts.find(' ');
  if (space == std::string_view::npos || space == 0) return false;
  size_t count = 0;
  for (char c : counts.substr(0, space)) {
    if (c < '0' || c > '9') return false;
    count = count * 10 + static_cast<size_t>(c - '0');
    if (count > 100000) return false;
  }
  *streamed = counts.substr(space + 1) == "1";
  size_t at = nul + 1;
  auto next = [&](std::string_view* field) {
    size_t end = data.find('\0', at);
    if (end == std::string_view::npos) return false;
    *field = data.substr(at, end - at);
    at = end + 1;
    return true;
  };
  std::string_view status_line;
  if (!next(&status_line)) return false;
  *status = status_code(status_line);
  if (*status == 0) return false;
  for (size_t i = 0; i < count; ++i) {
    std::string_view name, value;
    if (!next(&name) || !next(&value)) return false;
    headers->emplace_back(std::string(name), std::string(value));
  }
  *body = data.substr(at);
  return true;
}

}  // namespace

void RouteRunner::define_wsgi_send(Sandbox& sandbox, Slot* slot) {
  // Streamed responses: b"H" + head, then b"B" + each chunk. Without a slot
  // (the warm-up) the response is dropped.
  (void)sandbox.define("__terrarium_wsgi_send__", [slot](const std::string& data) -> std::string {
    if (!slot || !slot->writer || data.empty()) return {};
    http::ResponseWriter& writer = *slot->writer;
    if (data[0] == 'H') {
      int status = 0;
      http::Headers headers;
      bool streamed = false;
      std::string_view body;
      if (!parse_wsgi_head(std::string_view(data).substr(1), &status, &headers, &streamed, &body) ||
          !writer.start(status, headers)) {
        throw std::runtime_error("the response headers could not be sent");
      }
    } else if (data[0] == 'B') {
      if (!writer.write(std::string_view(data).substr(1))) {
        throw std::runtime_error("the client closed the connection");
      }
    }
    return {};
  });
}

std::string RouteRunner::wsgi_payload(const http::Request& request) const {
  return wsgi_request_payload(
      wsgi_environment({request, module_.pattern, environment_.options->default_host, base_env_}),
      request.body);
}

void RouteRunner::handle_wsgi(const http::Request& request, Slot& slot,
                              http::ResponseWriter& writer) {
  auto sandbox = sandbox_for(slot);
  if (!sandbox) {
    int status;
    guest_failed(request, sandbox.error(), &status);
    writer.send({status, {}, ""});
    return;
  }
  slot.writer = &writer;
  slot.out.clear();
  slot.err.clear();
  auto result = (*sandbox)->call("__terrarium_wsgi__", wsgi_payload(request));
  slot.writer = nullptr;
  // print() in an app lands in the route's log too, as gunicorn shows it.
  if (!slot.out.empty()) slot.err.insert(0, slot.out);
  if (!result) {
    // The traceback is for the log only, never the client.
    std::string traceback = result.error().details();
    write_stderr(request, slot.err + traceback);
    int status;
    guest_failed(request, result.error(), &status);
    if (writer.started()) {
      writer.abort();
    } else {
      writer.send({status, {}, ""});
    }
    return;
  }
  write_stderr(request, slot.err);
  int status = 0;
  http::Headers headers;
  bool streamed = false;
  std::string_view body;
  if (!parse_wsgi_head(*result, &status, &headers, &streamed, &body)) {
    guest_failed(request,
                 Error(ErrorKind::kGuestError, "the WSGI adapter returned a malformed response"),
                 &status);
    if (writer.started()) {
      writer.abort();
    } else {
      writer.send({500, {}, ""});
    }
    return;
  }
  if (streamed) {
    writer.finish();
    return;
  }
  // Whole: Content-Length is the body's, unless the app gave one (HEAD).
  bool has_length = false;
  for (auto it = headers.begin(); it != headers.end();) {
    if (strcasecmp(it->first.c_str(), "Content-Length") == 0) {
      if (request.method == "HEAD" || it->second == std::to_string(body.size())) {
        has_length = true;
        ++it;
        continue;
      }
      environment_.log->warn("the app's Content-Length differs from its body; sending the body's",
                             {{"route", module_.route}, {"request", std::to_string(request.id)}});
      it = headers.erase(it);
      continue;
    }
    ++it;
  }
  if (!has_length) headers.emplace_back("Content-Length", std::to_string(body.size()));
  if (writer.start(status, headers) && !body.empty()) writer.write(body);
  writer.finish();
}

void RouteRunner::handle_cgi(const http::Request& request, Slot& slot,
                             http::ResponseWriter& writer) {
  const ServeOptions& options = *environment_.options;
  Invocation invocation;
  invocation.env = cgi_environment({request, module_.pattern, options.default_host, base_env_});
  std::vector<std::string> words = wagi_argv(request, module_.argv_template);
  if (module_.kind == ModuleConfig::Kind::kInterpreter) {
    // "python [options] /code/env.py a=1": sys.argv starts at the script.
    size_t start = std::min(module_.argv_script_index, words.size());
    invocation.args.assign(words.begin() + static_cast<std::ptrdiff_t>(start), words.end());
  } else {
    // argv[0] (the request path) is the script's place in sys.argv.
    invocation.args.push_back(module_.script_guest_path);
    if (words.size() > 1)
      invocation.args.insert(invocation.args.end(), words.begin() + 1, words.end());
  }
  invocation.stdin_data = request.body;
  std::string out, err;
  invocation.stdout_output.callback = [&out](std::string_view data) { out.append(data); };
  invocation.stderr_output.callback = [&err](std::string_view data) { err.append(data); };

  auto sandbox = sandbox_for(slot);
  if (!sandbox) {
    int status;
    guest_failed(request, sandbox.error(), &status);
    writer.send({status, {}, ""});
    return;
  }
  Result<std::string> exit_status = std::string();
  if (auto ok = (*sandbox)->set_invocation(std::move(invocation)); !ok) {
    exit_status = ok.error();
  } else {
    exit_status = (*sandbox)->call_json_text("__terrarium_cgi__", "null");
  }
  write_stderr(request, err);
  if (!exit_status) {
    int status;
    guest_failed(request, exit_status.error(), &status);
    writer.send({status, {}, ""});
    return;
  }
  if (*exit_status != "0") {
    environment_.guest_errors->add({{"route", module_.route}, {"kind", "exit"}});
    environment_.log->error("script exited with status " + *exit_status,
                            {{"route", module_.route}, {"request", std::to_string(request.id)}});
    writer.send({500, {}, ""});
    return;
  }
  CgiOutput parsed = parse_cgi_output(out);
  if (!parsed.problem.empty()) {
    if (parsed.response.status >= 500) {
      environment_.guest_errors->add({{"route", module_.route}, {"kind", "bad_output"}});
    }
    environment_.log->warn(parsed.problem, {{"route", module_.route},
                                            {"request", std::to_string(request.id)},
                                            {"status", std::to_string(parsed.response.status)}});
  }
  writer.send(parsed.response);
}

}  // namespace terrarium::server
