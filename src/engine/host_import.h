// The frame every host import runs in (WASI, bridge): the guest's native
// stack is checked first (host code must never be the one to overflow it),
// asynchronous stops are held while host code runs and raised after it.
// `body` must not throw, and returns a value without a destructor, so that
// nothing needing cleanup is alive when leave_host() unwinds the guest.
#pragma once

#include <type_traits>

#include "engine/trap.h"

namespace terrarium::engine {

template <typename Body>
auto run_host_import(const Body& body) {
  using Value = decltype(body());
  static_assert(std::is_trivially_destructible_v<Value>);
  if (native_stack_low()) raise_trap(TrapKind::kStackExhausted);
  enter_host();
  Value value = body();
  leave_host();
  return value;
}

}  // namespace terrarium::engine
