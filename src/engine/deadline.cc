#include "engine/deadline.h"

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "engine/guarded_call.h"
#include "engine/interrupt.h"

namespace terrarium::engine {
namespace {

int wall_signal() { return SIGRTMIN + 2; }
int cpu_signal() { return SIGRTMIN + 3; }

// Whether this thread's timers are armed. A timer signal already queued when
// a call ends is delivered at the next return to user space, while this is
// false, and is ignored.
__attribute__((tls_model("initial-exec"))) thread_local bool t_armed = false;

struct ThreadTimers {
  timer_t wall{};
  timer_t cpu{};
  bool created = false;
  ~ThreadTimers() {
    if (created) {
      timer_delete(wall);
      timer_delete(cpu);
    }
  }
};
thread_local ThreadTimers t_timers;

void on_timer(int signal, siginfo_t* info, void*) {
  (void)info;
  if (!t_armed) return;
  deliver_interrupt(signal == wall_signal() ? TrapKind::kDeadline : TrapKind::kCpuDeadline);
}

void install_handlers() {
  struct sigaction action {};
  action.sa_sigaction = on_timer;
  // No SA_RESTART: a blocking host call returns EINTR and can stop early.
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(wall_signal(), &action, nullptr);
  sigaction(cpu_signal(), &action, nullptr);
}

bool create_timers() {
  if (t_timers.created) return true;
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event._sigev_un._tid = tid;
  event.sigev_signo = wall_signal();
  if (timer_create(CLOCK_MONOTONIC, &event, &t_timers.wall) != 0) return false;
  event.sigev_signo = cpu_signal();
  if (timer_create(CLOCK_THREAD_CPUTIME_ID, &event, &t_timers.cpu) != 0) {
    timer_delete(t_timers.wall);
    return false;
  }
  t_timers.created = true;
  return true;
}

void set_timer(timer_t timer, std::chrono::nanoseconds after) {
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(after.count() / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(after.count() % 1000000000);
  timer_settime(timer, 0, &spec, nullptr);
}

int64_t now_ns(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

// The absolute time (on `clock`) at which `timer` fires; 0 if disarmed.
int64_t fires_at(timer_t timer, clockid_t clock) {
  itimerspec left{};
  timer_gettime(timer, &left);
  int64_t remaining =
      static_cast<int64_t>(left.it_value.tv_sec) * 1000000000 + left.it_value.tv_nsec;
  return remaining == 0 ? 0 : now_ns(clock) + remaining;
}

// Arms `timer` for the earlier of `after` (0: none) and the absolute `outer`
// (0: none); disarms it when neither is set.
void arm(timer_t timer, clockid_t clock, std::chrono::nanoseconds after, int64_t outer) {
  int64_t delay = after.count() > 0 ? after.count() : 0;
  if (outer != 0) {
    int64_t outer_delay = std::max<int64_t>(outer - now_ns(clock), 1);  // past: fire now
    delay = delay == 0 ? outer_delay : std::min(delay, outer_delay);
  }
  set_timer(timer, std::chrono::nanoseconds(delay));
}

}  // namespace

DeadlineScope::DeadlineScope(std::chrono::nanoseconds wall, std::chrono::nanoseconds cpu) {
  if (t_armed) {
    // Inside another scope: its deadlines still bind this call too.
    nested_ = true;
    outer_wall_ns_ = fires_at(t_timers.wall, CLOCK_MONOTONIC);
    outer_cpu_ns_ = fires_at(t_timers.cpu, CLOCK_THREAD_CPUTIME_ID);
    arm(t_timers.wall, CLOCK_MONOTONIC, wall, outer_wall_ns_);
    arm(t_timers.cpu, CLOCK_THREAD_CPUTIME_ID, cpu, outer_cpu_ns_);
    armed_ = true;
    return;
  }
  if (wall.count() <= 0 && cpu.count() <= 0) return;
  static std::once_flag once;
  std::call_once(once, install_handlers);
  prepare_thread();
  if (!create_timers()) {
    std::perror("terrarium: timer_create");
    std::abort();  // a deadline that cannot be enforced must not be ignored
  }
  t_armed = true;
  if (wall.count() > 0) set_timer(t_timers.wall, wall);
  if (cpu.count() > 0) set_timer(t_timers.cpu, cpu);
  armed_ = true;
}

DeadlineScope::~DeadlineScope() {
  if (!armed_) return;
  if (nested_) {
    // Back to the outer call's deadlines (time spent here counted).
    arm(t_timers.wall, CLOCK_MONOTONIC, std::chrono::nanoseconds(0), outer_wall_ns_);
    arm(t_timers.cpu, CLOCK_THREAD_CPUTIME_ID, std::chrono::nanoseconds(0), outer_cpu_ns_);
    return;
  }
  itimerspec zero{};
  timer_settime(t_timers.wall, 0, &zero, nullptr);
  timer_settime(t_timers.cpu, 0, &zero, nullptr);
  t_armed = false;
}

}  // namespace terrarium::engine
