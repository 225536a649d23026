// SE2 plugin compatibility: a directory with plugin.py defining
// run_e(payload, ident), which reports through the guest module `sdk`
// (sdk.return_result(result, ident), sdk.return_error(code, message, ident),
// sdk.log(...)).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "terrarium/config.h"
#include "terrarium/error.h"
#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"

namespace terrarium {

struct PluginOptions {
  // The sandbox's configuration (limits, env, output). The plugin directory
  // is added as a read-only mount at /plugin, first on sys.path.
  SandboxConfig config;
  // Receives each sdk.log(...) line. Default: "[plugin NAME] line" on stderr.
  std::function<void(std::string_view line)> log;
};

class Plugin {
 public:
  // Loads DIR/plugin.py into a fresh sandbox (import errors are reported
  // here, naming the plugin). Errors: kNotFound (no directory, no plugin.py,
  // no run_e), kGuestError (the import raised), kConfig.
  static Result<std::unique_ptr<Plugin>> load(const Runtime& runtime, const std::string& directory,
                                              PluginOptions options = {});
  ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // Calls run_e(payload, ident) (payload as a str, decoded from UTF-8) and
  // returns what the plugin passed to sdk.return_result. Errors (all naming
  // the plugin): kGuestError when it called sdk.return_error (message
  // "returned error CODE: MESSAGE"), raised (details: the traceback), or
  // returned neither; kTrap / kLimit / kTimeout from the sandbox.
  Result<std::string> run(std::string_view payload, int64_t ident = 0);

  // The plugin's name: its directory's name.
  const std::string& name() const;
  Sandbox& sandbox();

  struct State;

 private:
  Plugin() = default;
  std::string name_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Sandbox> sandbox_;
};

}  // namespace terrarium
