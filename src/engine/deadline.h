// Deadlines for a guest call: a wall-clock and a CPU-time budget, enforced by
// per-thread POSIX timers whose signals land on the guest's own thread and
// stop it (see interrupt.h). Arm before entering the guest, disarm after.
#pragma once

#include <chrono>

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
};

}  // namespace terrarium::engine
