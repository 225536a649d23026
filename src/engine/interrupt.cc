#include "engine/interrupt.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

namespace terrarium::engine {
namespace {

// Beside the deadline timers' SIGRTMIN+2 and +3.
int interrupt_signal() { return SIGRTMIN + 4; }

__attribute__((tls_model("initial-exec"))) thread_local InterruptTarget* t_current = nullptr;

void install_handler() {
  struct sigaction action {};
  action.sa_handler = on_interrupt_signal;
  // No SA_RESTART: a blocking host call (stdin read, sleep) returns EINTR
  // and sees the pending stop.
  action.sa_flags = SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(interrupt_signal(), &action, nullptr);
}

pid_t this_thread() { return static_cast<pid_t>(syscall(SYS_gettid)); }

}  // namespace

// The signal may arrive late (the call ended, another began on this
// thread): only a request of the target running now is honoured.
void on_interrupt_signal(int) {
  InterruptTarget* target = t_current;
  if (target != nullptr && target->requested_.exchange(false)) {
    deliver_interrupt(TrapKind::kInterrupted);
  }
}

bool InterruptTarget::interrupt() noexcept {
  pid_t thread = thread_.load(std::memory_order_acquire);
  if (thread == 0) return false;
  requested_.store(true, std::memory_order_release);
  syscall(SYS_tgkill, getpid(), thread, interrupt_signal());
  return true;
}

InterruptScope::InterruptScope(InterruptTarget& target) : target_(target), previous_(t_current) {
  static std::once_flag once;
  std::call_once(once, install_handler);
  // A request from before this call is not for it.
  target_.requested_.store(false, std::memory_order_relaxed);
  t_current = &target_;
  target_.thread_.store(this_thread(), std::memory_order_release);
}

InterruptScope::~InterruptScope() {
  target_.thread_.store(0, std::memory_order_release);
  t_current = previous_;
  // The outer call was asked to stop while this one ran (its signal found
  // this target current and was ignored): record the stop for the outer
  // call, which is inside a host import and raises it when that returns.
  if (previous_ != nullptr && previous_->requested_.exchange(false)) {
    deliver_interrupt(TrapKind::kInterrupted);
  }
}

}  // namespace terrarium::engine
