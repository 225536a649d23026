// `terrarium serve [-c] modules.toml`: Wagi's flags, plus Terrarium's.
#include "cli/serve_command.h"

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli/confinement.h"
#include "terrarium/runtime.h"
#include "terrarium/server.h"
#include "terrarium/units.h"

namespace terrarium::cli {

namespace {

int fail(const std::string& message, int status = 2) {
  std::fprintf(stderr, "terrarium serve: %s\n", message.c_str());
  return status;
}

// Wagi's -e value rules: split at the first '='; a value in matching quotes
// loses them.
Result<std::string> parse_env_entry(const std::string& entry, const std::string& where) {
  size_t equals = entry.find('=');
  if (equals == std::string::npos) {
    return Error(ErrorKind::kConfig, where + " '" + entry + "': expected NAME=VALUE");
  }
  if (equals == 0) return Error(ErrorKind::kConfig, where + " '" + entry + "': the name is empty");
  std::string name = entry.substr(0, equals);
  std::string value = entry.substr(equals + 1);
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    value = value.substr(1, value.size() - 2);
  }
  return name + "=" + value;
}

// NAME=VALUE lines; blank lines and '#' comments skipped, "export " allowed.
Result<std::vector<std::string>> read_env_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error(ErrorKind::kConfig, "--env-file '" + path + "': cannot read it");
  std::vector<std::string> entries;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    line = line.substr(start);
    if (line.rfind("export ", 0) == 0) line = line.substr(7);
    auto entry = parse_env_entry(line, "--env-file " + path + ":" + std::to_string(number) + ":");
    if (!entry) return entry.error();
    entries.push_back(*entry);
  }
  return entries;
}

}  // namespace

void ServeCommand::add_to(CLI::App& app) {
  command_ = app.add_subcommand(
      "serve",
      "Serve the routes of a Wagi modules.toml over HTTP: each request runs its route's\n"
      "Python CGI script (or WSGI app) in a fresh sandbox, a copy of a snapshot taken at\n"
      "start. Built in: /healthz (200 OK) and /metrics (Prometheus). SIGTERM drains and\n"
      "exits 0; SIGHUP reloads modules.toml (a broken file keeps the running routes).");
  command_->add_option("config", config_, "The module config (modules.toml)");
  command_->add_option("-c,--config", config_flag_, "The module config (Wagi's spelling)");
  command_
      ->add_option("-l,--listen", listen_,
                   "Address to listen on, IP:PORT ([::1]:3000 for IPv6; port 0: any free)")
      ->capture_default_str();
  command_
      ->add_option("--hostname,--default-host", default_host_,
                   "Host (and port) for SERVER_NAME/SERVER_PORT when a request has no Host")
      ->capture_default_str();
  command_
      ->add_option("-e,--env", envs_,
                   "Environment variable NAME=VALUE for every guest (repeatable; several\n"
                   "after one -e also work). Beats --env-file; the CGI variables beat both.")
      ->expected(1, 1 << 20)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command_->add_option("--env-file", env_files_, "File of NAME=VALUE lines (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command_->add_option(
      "--log-dir", log_dir_,
      "Folder for the routes' stderr logs (LOG_DIR/<sha256 of route>/module.stderr);\n"
      "default: a new temporary folder, named in the log");
  command_->add_option("--workers", workers_,
                       "Threads that run guests (default: the number of cores)");
  command_
      ->add_option("--timeout", timeout_,
                   "Wall-clock limit per request, e.g. 30s, 500ms (504 when hit)")
      ->capture_default_str();
  command_->add_option("--max-memory", max_memory_, "Guest memory limit per request, e.g. 256M")
      ->capture_default_str();
  command_
      ->add_option("--max-output", max_output_,
                   "Limit on a request's stdout+stderr, e.g. 16M (500 when hit)")
      ->capture_default_str();
  command_
      ->add_option("--max-body", max_body_, "Largest request body accepted, e.g. 16M (413 beyond)")
      ->capture_default_str();
  command_
      ->add_option("--max-header-bytes", max_header_bytes_,
                   "Largest request line + headers, e.g. 16K (431 beyond)")
      ->capture_default_str();
  command_
      ->add_option("--max-connections", max_connections_,
                   "Client connections open at once (503 beyond)")
      ->capture_default_str();
  command_->add_option("--queue", queue_,
                       "Requests that may wait for a worker (default: 64 per worker; 503 beyond)");
  command_->add_option("--access-log", access_log_,
                       "Access log: a file (appended), or - for stdout");
  command_->add_option("--log-format", log_format_, "Log format: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  command_
      ->add_option("--metrics-path", metrics_path_, "Path of the Prometheus metrics (\"\": off)")
      ->capture_default_str();
  // Wagi flags that have no meaning here: accepted, with a word in the log.
  command_->add_flag("--no-confine", no_confine_, kNoConfineHelp);
  command_->add_option("--module-cache", module_cache_,
                       "(Wagi) accepted and ignored: nothing is downloaded");
  command_->add_option("--cache", wasmtime_cache_, "(Wagi) accepted and ignored: no Wasmtime here");
  command_->add_option("--tls-cert", tls_cert_, "(Wagi) not supported: terminate TLS in a proxy");
  command_->add_option("--tls-key", tls_key_, "(Wagi) not supported: terminate TLS in a proxy");
  command_->add_option("-b,--bindle", bindle_, "(Wagi) not supported: use a modules.toml");
}

int ServeCommand::run() {
  if (!tls_cert_.empty() || !tls_key_.empty()) {
    return fail(
        "--tls-cert/--tls-key: TLS is not supported; put a proxy in front "
        "(deploy/nginx.conf) and serve plain HTTP on loopback");
  }
  if (!bindle_.empty()) return fail("--bindle: bindles are not supported; give a modules.toml");
  // A config after "-e A=1 B=2" was read as one more -e value: take it back.
  if (config_.empty() && config_flag_.empty() && !envs_.empty() &&
      envs_.back().find('=') == std::string::npos) {
    config_ = envs_.back();
    envs_.pop_back();
  }
  if (!config_.empty() && !config_flag_.empty() && config_ != config_flag_) {
    return fail("two module configs given ('" + config_ + "' and -c '" + config_flag_ + "')");
  }
  if (config_.empty()) config_ = config_flag_;
  if (config_.empty()) return fail("no module config given: terrarium serve modules.toml");

  ServeOptions options;
  options.config_path = config_;
  options.http.listen = listen_;
  options.default_host = default_host_;
  for (const std::string& file : env_files_) {
    auto entries = read_env_file(file);
    if (!entries) return fail(entries.error().message());
    options.env.insert(options.env.end(), entries->begin(), entries->end());
  }
  for (const std::string& entry : envs_) {
    auto parsed = parse_env_entry(entry, "-e");
    if (!parsed) return fail(parsed.error().message());
    options.env.push_back(*parsed);
  }
  options.log_dir = log_dir_;
  options.http.workers = workers_;
  auto size = [](const std::string& flag, const std::string& text, uint64_t* out) -> bool {
    auto value = parse_size(text);
    if (!value) {
      fail(flag + " '" + text + "': " + value.error().message());
      return false;
    }
    *out = *value;
    return true;
  };
  auto timeout = parse_duration(timeout_);
  if (!timeout) return fail("--timeout '" + timeout_ + "': " + timeout.error().message());
  if (timeout->count() == 0) return fail("--timeout '" + timeout_ + "': must be more than 0");
  options.timeout = *timeout;
  uint64_t header_bytes = 0;
  if (!size("--max-memory", max_memory_, &options.max_memory) ||
      !size("--max-output", max_output_, &options.max_output) ||
      !size("--max-body", max_body_, &options.http.max_body_bytes) ||
      !size("--max-header-bytes", max_header_bytes_, &header_bytes)) {
    return 2;
  }
  options.http.max_header_bytes = header_bytes;
  options.http.max_connections = max_connections_;
  options.http.queue_capacity = queue_;
  options.access_log = access_log_;
  options.log_format = log_format_ == "json" ? LogFormat::kJson : LogFormat::kText;
  options.metrics_path = metrics_path_;
  if (!options.metrics_path.empty() && options.metrics_path[0] != '/') {
    return fail("--metrics-path '" + metrics_path_ + "': must start with '/'");
  }

  // The signals are taken by one thread (sigwait): blocked here, before any
  // other thread exists, so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (!no_confine_) {
    // Landlock before the server's threads start (it holds for them).
    options.before_threads = [](const std::vector<HostPath>& paths) -> Result<void> {
      FilesystemWall wall;
      add_process_basics(&wall);
      for (const HostPath& path : paths) wall.paths.push_back({path.path, path.write});
      add_name_resolution(&wall);  // --listen may name a host (localhost:3000)
      std::error_code error;
      PathAccess temporary{std::filesystem::temp_directory_path(error).string()};
      temporary.remove_empty_folders_only = true;  // the scratch folder, at exit
      wall.paths.push_back(temporary);
      auto built = build_filesystem_wall(wall);
      if (!built) return built.error();
      if (!built->note.empty()) std::fprintf(stderr, "terrarium serve: %s\n", built->note.c_str());
      return {};
    };
    // seccomp once the socket is bound, before any route's guest code runs.
    options.before_guest_code = [] { return build_system_call_wall({}); };
  }
  auto runtime = Runtime::create();
  if (!runtime) return fail(runtime.error().message(), 1);
  if (!module_cache_.empty())
    std::fprintf(stderr, "terrarium serve: --module-cache ignored (nothing is downloaded)\n");
  auto server = Server::create(*runtime, std::move(options));
  if (!server) {
    if (!server.error().details().empty()) std::fputs(server.error().details().c_str(), stderr);
    return fail(server.error().message(), 1);
  }
  Server* raw = server->get();
  std::printf("Ready: serving on http://%s\n", raw->address().c_str());
  std::fflush(stdout);
  std::atomic<bool> finished{false};
  std::thread watcher([raw, signals, &finished] {
    for (;;) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0) continue;
      if (finished) return;
      if (signal == SIGHUP) {
        (void)raw->reload();  // the log says how it went
        continue;
      }
      raw->stop();
      return;
    }
  });
  raw->run();
  finished = true;
  pthread_kill(watcher.native_handle(), SIGTERM);  // wakes it if it still waits
  watcher.join();
  return 0;
}

}  // namespace terrarium::cli
