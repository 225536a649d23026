// The `terrarium serve` subcommand: its flags and what it runs.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/confinement.h"

namespace terrarium::cli {

class ServeCommand {
 public:
  void add_to(CLI::App& app);
  bool parsed() const { return command_ && command_->parsed(); }
  // Serves until SIGTERM/SIGINT; the process's exit status.
  int run();

 private:
  CLI::App* command_ = nullptr;
  std::string config_, config_flag_;
  std::string listen_ = "127.0.0.1:3000";
  std::string default_host_ = "localhost:3000";
  std::vector<std::string> envs_, env_files_;
  std::string log_dir_;
  size_t workers_ = 0;
  std::string timeout_ = "30s";
  std::string max_memory_ = "256M";
  std::string max_output_ = "16M";
  std::string max_body_ = "16M";
  std::string max_header_bytes_ = "16K";
  size_t max_connections_ = 1024;
  size_t queue_ = 0;
  std::string access_log_;
  std::string log_format_ = "text";
  std::string metrics_path_ = "/metrics";
  bool no_confine_ = !kConfineByDefault;
  std::string module_cache_, wasmtime_cache_, tls_cert_, tls_key_, bindle_;
};

}  // namespace terrarium::cli
