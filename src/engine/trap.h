// Traps: how a running guest is stopped and how the host learns why.
//
// Generated code and host imports stop the guest by calling one of the
// functions below; they unwind (siglongjmp) to the innermost GuardedCall on
// this thread. Each thread has its own unwind target, so many instances can
// run on many threads at once.
//
// Rule for host code (WASI, bridge): never trap while a C++ object with a
// destructor is alive on the stack between the guard and the trap. Import glue
// does its C++ work in a nested scope, and traps after leaving it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace terrarium::engine {

enum class TrapKind : int {
  kNone = 0,
  kOutOfBounds,  // linear memory or table access out of range
  kIntegerOverflow,
  kDivideByZero,
  kInvalidConversion,
  kUnreachable,
  kIndirectCallMismatch,  // call_indirect to a null entry or of the wrong type
  kUncaughtException,
  kStackExhausted,  // the native stack (deep recursion in the guest)
  kExit,            // proc_exit: a normal end with an exit status
  kDeadline,        // the wall-clock deadline passed
  kCpuDeadline,     // the CPU-time deadline passed
  kHostAbort,       // a host function stopped the guest (limit hit, ...)
  kInterrupted,     // another thread asked for a stop (InterruptTarget::interrupt)
};

// A short human name: "out-of-bounds memory access", "stack exhausted", ...
const char* trap_name(TrapKind kind);

// Stop the guest running on this thread. Must be called only while a
// GuardedCall is active on this thread (terminates the process otherwise:
// that is a host bug, never a guest's doing).
[[noreturn]] void raise_trap(TrapKind kind);
// proc_exit: stop the guest with an exit status.
[[noreturn]] void raise_exit(int status);
// Stop the guest because a host-side rule was broken; `message` is copied
// (so it may point into a std::string that outlives the unwind, such as a
// member) and reported by the GuardedCall (e.g. "output limit of 1048576
// bytes exceeded").
[[noreturn]] void raise_host_abort(std::string_view message);

// Host imports bracket their work with these. While inside, an asynchronous
// stop (deadline timer) is only recorded; leave_host() then raises it. Call
// leave_host() after every C++ object of the import has been destroyed.
void enter_host();
void leave_host();

// True when an asynchronous stop is waiting for the current host import to
// return (blocking host calls use it to stop waiting early).
bool interrupt_pending();

// True if the guest's native stack has fewer than `bytes` left. Host imports
// check this on entry so that host code never runs out of stack itself.
bool native_stack_low(size_t bytes = 128 * 1024);

}  // namespace terrarium::engine
