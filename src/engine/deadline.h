// Deadlines for a guest call: a wall-clock and a CPU-time budget, enforced by
// per-thread POSIX timers whose signals land on the guest's own thread and
// stop it (see interrupt.h). Arm before entering the guest, disarm after.
#pragma once

#include <chrono>
#include <cstdint>

namespace terrarium::engine {

class DeadlineScope {
 public:
  // Zero durations mean "no deadline of that kind".
  DeadlineScope(std::chrono::nanoseconds wall, std::chrono::nanoseconds cpu);
  ~DeadlineScope();
  DeadlineScope(const DeadlineScope&) = delete;
  DeadlineScope& operator=(const DeadlineScope&) = delete;

 private:
  bool armed_ = false;
  // A scope inside another one (a guest call made while another guest call
  // on this thread waits in a host function): the outer deadlines, as
  // absolute times (ns of CLOCK_MONOTONIC / this thread's CPU clock; 0:
  // none), put back when this scope ends.
  bool nested_ = false;
  int64_t outer_wall_ns_ = 0;
  int64_t outer_cpu_ns_ = 0;
};

}  // namespace terrarium::engine
