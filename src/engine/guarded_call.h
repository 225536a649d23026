// Running guest code with a trap target on the current thread.
#pragma once

#include <string>

#include "engine/trap.h"

namespace terrarium::engine {

struct TrapOutcome {
  TrapKind kind = TrapKind::kNone;
  int exit_status = 0;   // for kExit
  std::string message;   // for kHostAbort (and a description for the others)

  bool ok() const { return kind == TrapKind::kNone; }
};

// Calls `body(context)` — which runs generated code — with this thread's trap
// target set, and returns how it ended. Traps, proc_exit, deadlines and host
// aborts all come back here as a TrapOutcome; the process is never brought
// down by the guest. `body` must not create C++ objects with destructors that
// a trap could skip (keep it to calls into generated code).
TrapOutcome guarded_call(void (*body)(void* context), void* context);

template <typename Function>
TrapOutcome guarded(Function& function) {
  return guarded_call([](void* f) { (*static_cast<Function*>(f))(); }, &function);
}

// Prepares the calling thread to run guests (alternate signal stack, stack
// bounds). guarded_call does it on first use; exposed for tests.
void prepare_thread();

// Bytes of native stack left below the caller on this thread.
size_t native_stack_remaining();

}  // namespace terrarium::engine
