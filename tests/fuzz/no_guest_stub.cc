// The json_rpc target compiles src/functions/functions.cc, which starts
// sandboxes, without libterrarium (whose translated guest is far too big to
// instrument). These definitions stand in for the runtime there.
//
// Only Runtime::create (once, to set up the target) and Runtime::new_sandbox
// are ever called: new_sandbox fails, as a runtime that cannot start an
// interpreter would, so a well-formed `init` ends in "the interpreter did not
// start" and `handle` finds no op. Everything else needs a Sandbox, of which
// none can exist here: reaching it is a bug of this stub, and traps.
#include <cstdio>
#include <cstdlib>

#include "terrarium/runtime.h"
#include "terrarium/snapshot.h"

namespace terrarium {

namespace {
[[noreturn]] void unreachable(const char* what) {
  std::fprintf(stderr, "no_guest_stub: %s called, but no sandbox can exist in the fuzz build\n", what);
  std::abort();
}
}  // namespace

Result<std::shared_ptr<Runtime>> Runtime::create() { return std::shared_ptr<Runtime>(new Runtime()); }

Result<std::unique_ptr<Sandbox>> Runtime::new_sandbox(SandboxConfig) const {
  return Error(ErrorKind::kInternal, "the fuzz build has no guest");
}

// Only for ~Sandbox's unique_ptr<Impl>: this build never makes one.
struct Sandbox::Impl {};

Sandbox::~Sandbox() { unreachable("Sandbox::~Sandbox"); }
Result<void> Sandbox::define(std::string, HostFunction) { unreachable("Sandbox::define"); }
Result<void> Sandbox::exec(std::string_view, std::string_view) { unreachable("Sandbox::exec"); }
Result<std::string> Sandbox::call(std::string_view, std::string_view) { unreachable("Sandbox::call"); }
Result<nlohmann::json> Sandbox::call_json(std::string_view, const nlohmann::json&) {
  unreachable("Sandbox::call_json");
}
bool Sandbox::spent() const { unreachable("Sandbox::spent"); }

Result<std::shared_ptr<const Snapshot>> Snapshot::capture(Sandbox&) { unreachable("Snapshot::capture"); }
Result<std::unique_ptr<Sandbox>> Snapshot::new_sandbox(const SandboxConfig&) const {
  unreachable("Snapshot::new_sandbox");
}

Result<std::unique_ptr<Pool>> Pool::create(std::shared_ptr<const Snapshot>, Options) {
  unreachable("Pool::create");
}
Result<Pool::Lease> Pool::acquire() { unreachable("Pool::acquire"); }
Pool::Lease::~Lease() {
  if (sandbox_) unreachable("Pool::Lease::~Lease");
}

}  // namespace terrarium
