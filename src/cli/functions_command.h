// `terrarium functions stdio|serve`: the function runtime's front doors.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/confinement.h"

namespace terrarium {
struct FunctionsOptions;
}

namespace terrarium::cli {

class FunctionsCommand {
 public:
  void add_to(CLI::App& app);
  bool parsed() const { return command_ && command_->parsed(); }
  // The process's exit status.
  int run();

 private:
  int run_stdio();
  int run_serve();
  std::string shared_options(FunctionsOptions* options) const;

  CLI::App* command_ = nullptr;
  CLI::App* stdio_ = nullptr;
  CLI::App* serve_ = nullptr;
  std::string manifest_;
  std::string metatype_version_;
  std::vector<std::string> allowed_hosts_;
  size_t workers_ = 0;
  std::string timeout_ = "5s";
  std::string max_memory_ = "256M";
  std::string max_output_ = "1M";
  std::string hostcall_timeout_ = "30s";
  // serve
  std::string listen_ = "127.0.0.1:3000";
  std::string max_body_ = "16M";
  std::string max_header_bytes_ = "16K";
  size_t max_connections_ = 1024;
  size_t queue_ = 0;
  std::string metrics_path_ = "/metrics";
  bool no_confine_ = !kConfineByDefault;
  bool allow_init_ = false;
};

}  // namespace terrarium::cli
