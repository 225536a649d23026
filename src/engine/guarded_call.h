// Running guest code with a trap target on the current thread.
#pragma once

#include <string>

#include "engine/trap.h"

namespace terrarium::engine {

struct TrapOutcome {
  TrapKind kind = TrapKind::kNone;
  int exit_status = 0;  // for kExit
  std::string message;  // for kHostAbort (and a description for the others)

  bool ok() const { return kind == TrapKind::kNone; }
};

// Calls `body(context)` — which runs generated code — with this thread's trap
// target set, and returns how it ended. Traps, proc_exit, deadlines and host
// aborts all come back here as a TrapOutcome; the process is never brought
// down by the guest. `body` must not create C++ objects with destructors that
// a trap could skip (keep it to calls into generated code).
//
// `memory_base` is the base of the linear memory of the instance being
// entered (wasm_rt_memory_t::data), or nullptr if the body runs no code that
// touches memory. Generated code rewritten with `split_wasm2c.py --rewrite gs`
// addresses memory through the x86-64 %gs segment, so the GS base of this
// thread is set to `memory_base` for the duration of the call and restored
// afterwards (also on a trap), which keeps nested calls into other instances
// right. Host code keeps using mem->data. Code rewritten with
// `--rewrite basereg` (the guest's default) keeps the base in r15 instead,
// which its exports set and restore themselves; the GS base is then unused.
TrapOutcome guarded_call(void (*body)(void* context), void* context, void* memory_base = nullptr);

template <typename Function>
TrapOutcome guarded(Function& function, void* memory_base = nullptr) {
  return guarded_call([](void* f) { (*static_cast<Function*>(f))(); }, &function, memory_base);
}

// Switches this thread's guest memory base (the GS base) inside a guarded
// call, e.g. right after instantiation allocated the memory. guarded_call
// restores the previous base when it returns.
void set_guest_memory_base(void* memory_base);

// The GS base this thread runs generated code with (for tests).
void* guest_memory_base();

// True if GS is switched with the wrgsbase instruction (FSGSBASE enabled by
// the kernel: AT_HWCAP2 bit 1); false if it takes arch_prctl(ARCH_SET_GS).
bool fast_segment_switch();

// Prepares the calling thread to run guests (alternate signal stack, stack
// bounds). guarded_call does it on first use; exposed for tests.
void prepare_thread();

// Bytes of native stack left below the caller on this thread.
size_t native_stack_remaining();

}  // namespace terrarium::engine
