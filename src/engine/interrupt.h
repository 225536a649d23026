// Asynchronous stops of a running guest (deadlines): a timer signal lands on
// the guest's thread and calls deliver_interrupt there. Inside generated code
// the guest unwinds at once; inside a host import the stop is recorded and
// raised when the import returns (leave_host), so host code always finishes.
#pragma once

#include "engine/trap.h"

namespace terrarium::engine {

// Must run on the guest's thread (from a signal handler is fine).
void deliver_interrupt(TrapKind kind);

}  // namespace terrarium::engine
