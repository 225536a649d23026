// A terrarium::Server for tests: files written to a new folder, served on
// 127.0.0.1 (a free port) from a thread, stopped and removed at the end.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "http_client.h"
#include "terrarium/runtime.h"
#include "terrarium/server.h"

namespace terrarium::testing {

namespace fs = std::filesystem;

class Served {
 public:
  // Writes `files` (name -> contents) into a new folder and serves its
  // modules.toml with `adjust` applied to the options.
  Served(const std::map<std::string, std::string>& files,
         std::function<void(ServeOptions&)> adjust = {}) {
    char pattern[] = "/tmp/terrarium-serve-test-XXXXXX";
    dir = mkdtemp(pattern);
    for (const auto& [name, text] : files) write(name, text);
    ServeOptions options;
    options.config_path = (dir / "modules.toml").string();
    options.http.listen = "127.0.0.1:0";
    options.http.workers = 2;
    options.log_dir = (dir / "logs").string();
    options.log = [this](std::string_view line) {
      std::lock_guard lock(log_mutex);
      log_text += std::string(line) + "\n";
    };
    if (adjust) adjust(options);
    static auto runtime = *Runtime::create();
    auto created = Server::create(runtime, options);
    if (!created) {
      error = created.error().message() + "\n" + created.error().details();
      return;
    }
    server = std::move(*created);
    thread = std::thread([this] { server->run(); });
  }
  ~Served() {
    if (server) {
      server->stop();
      thread.join();
      server.reset();
    }
    fs::remove_all(dir);
  }
  void write(const std::string& name, const std::string& text) {
    fs::create_directories((dir / name).parent_path());
    std::ofstream(dir / name, std::ios::binary) << text;
  }
  uint16_t port() const { return server->port(); }
  std::string log() {
    std::lock_guard lock(log_mutex);
    return log_text;
  }
  // A streamed response can reach the client before the request's stderr
  // reaches the log (it is written when the guest returns): wait for it.
  bool log_has(const std::string& text,
               std::chrono::milliseconds patience = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + patience;
    while (log().find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }
  HttpReply get(const std::string& target,
                const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return fetch(port(), "GET", target, headers);
  }

  fs::path dir;
  std::string error;
  std::unique_ptr<Server> server;
  std::thread thread;
  std::mutex log_mutex;
  std::string log_text;
};

}  // namespace terrarium::testing
