// modules.toml as Wagi reads it (wagi-facts.md §1), plus Terrarium's keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/cgi.h"
#include "terrarium/config.h"
#include "terrarium/error.h"

namespace terrarium::server {

struct ModuleConfig {
  enum class Kind {
    kScript,       // module = "app.py": a CGI script
    kInterpreter,  // module = ".../python3.wasm" (a WASI CPython): argv names the script
    kWsgi,         // wsgi = "package.module:app": a WSGI application
  };
  Kind kind = Kind::kScript;
  size_t index = 0;  // 1-based position among the [[module]] tables
  int line = 0;      // where the table starts in the file
  std::string route;
  RoutePattern pattern;
  std::string module;       // as written ("" for WSGI routes)
  std::string module_path;  // resolved host path of `module`
  // CGI: the script the guest runs (host file) and its path in the guest.
  std::string script_host_path;
  std::string script_guest_path;
  std::optional<std::string> argv_template;
  size_t argv_script_index = 0;  // interpreter modules: the argv word that names the script
  std::vector<Mount> volumes;    // in file order; writable unless read_only (as Wagi's)
  // WSGI: "module:attribute" or "module:factory()", and host directories
  // mounted read-only at the same path and put on sys.path after the volumes.
  std::string wsgi;
  std::vector<std::string> python_path;
  // WSGI: the path of the request sent through the app before the snapshot
  // ("" for none). By default one no app is likely to route, so that the
  // framework warms up (URL map, request machinery, error page) but no view
  // of the app runs and leaves its effects in every request's starting state.
  std::string warm_up = "/__terrarium_warm_up__";
  std::vector<std::string> environment;  // "KEY=VALUE", the module's own
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<uint64_t> max_memory;
  std::optional<uint64_t> max_output;
  std::optional<uint64_t> max_written;
  // How each request gets its fresh sandbox: "reset" a resident one to the
  // snapshot (default), or "clone" a new copy-on-write one.
  std::string pool_strategy = "reset";
  bool pool_prefill = true;  // make each worker's sandbox at start
};

struct ModulesConfig {
  std::string path;  // the file, as given
  std::vector<ModuleConfig> modules;
  // Things worth a line in the log, once: keys accepted but without effect
  // here, unknown keys, paths found relative to the working directory.
  std::vector<std::string> notes;
};

// Reads and checks the file: TOML syntax, required keys and their types,
// that every script and volume exists. Errors (kConfig) start with
// "FILE:LINE:COLUMN:" and name the module and key. Relative paths are
// resolved against the file's directory (or, if nothing is there, the working
// directory, as Wagi does).
Result<ModulesConfig> load_modules_config(const std::string& path);

}  // namespace terrarium::server
