// A sandbox: one isolated CPython interpreter inside a wasm instance.
#pragma once

#include <memory>

#include "terrarium/config.h"
#include "terrarium/error.h"

namespace terrarium {

class Sandbox {
 public:
  // Validates `config` (mount directories exist, guest paths are absolute)
  // and creates the instance. Errors name the offending setting.
  static Result<std::unique_ptr<Sandbox>> create(SandboxConfig config);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Runs CPython's main with config.args, like `python ARGS...`. Returns the
  // exit status (0, SystemExit's code, 1 for an uncaught exception), or an
  // Error when the guest trapped or hit a limit. A sandbox whose guest
  // trapped is spent: further calls return an error.
  Result<int> run_main();

  struct Impl;

 private:
  explicit Sandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace terrarium
