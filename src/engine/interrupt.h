// Asynchronous stops of a running guest. A signal lands on the guest's thread
// and calls deliver_interrupt there: inside generated code the guest unwinds
// at once; inside a host import the stop is recorded and raised when the
// import returns (leave_host), so host code always finishes. Two sources:
// deadline timers (deadline.h) and InterruptTarget::interrupt, which another
// thread calls to stop a guest call on demand.
#pragma once

#include <sys/types.h>

#include <atomic>

#include "engine/trap.h"

namespace terrarium::engine {

// Must run on the guest's thread (from a signal handler is fine).
void deliver_interrupt(TrapKind kind);

// The handler of the interrupt signal (installed by the first InterruptScope).
void on_interrupt_signal(int signal);

// What a guest call can be stopped through from another thread: one per
// sandbox. interrupt() stops the call running now (it ends with
// TrapKind::kInterrupted); with no call running it does nothing, so a late
// interrupt never hits the next, unrelated call.
class InterruptTarget {
 public:
  // Any thread, and async-signal-safe (a SIGINT handler may call it).
  // Returns whether a call was running and was signalled.
  bool interrupt() noexcept;

 private:
  friend class InterruptScope;
  friend void on_interrupt_signal(int);
  std::atomic<pid_t> thread_{0};  // the thread running a call of this target; 0: none
  std::atomic<bool> requested_{false};
};

// While alive, the calling thread runs a guest call of `target`.
class InterruptScope {
 public:
  explicit InterruptScope(InterruptTarget& target);
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  InterruptTarget& target_;
  // A call of another sandbox made from a host function of this thread's
  // outer call: the outer target, made current again when this scope ends.
  InterruptTarget* previous_;
};

}  // namespace terrarium::engine
