// The runtime: what all sandboxes of a process share — the translated guest
// module (initialized once) and the embedded standard library. Thread-safe:
// any thread may create sandboxes from one Runtime at the same time.
#pragma once

#include <memory>

#include "terrarium/config.h"
#include "terrarium/error.h"
#include "terrarium/sandbox.h"

namespace terrarium {

class Runtime {
 public:
  static Result<std::shared_ptr<Runtime>> create();

  // A sandbox ready for embedding: CPython initialized, `terrarium` imported.
  // Errors: kConfig (bad config), kGuestError / kTrap (the guest did not
  // start), kLimit (e.g. a memory limit too small to start Python).
  Result<std::unique_ptr<Sandbox>> new_sandbox(SandboxConfig config) const;

 private:
  Runtime() = default;
};

}  // namespace terrarium
