// Linear memories: each one reserves its whole addressable range once
// (4 GiB of pages plus a 4 GiB guard, so every 32-bit address + 32-bit offset
// lands in the reservation), so its base never moves for the instance's life;
// growing is mprotect. Accesses past the accessible size fault on PROT_NONE
// pages and become out-of-bounds traps.
#pragma once

#include <cstddef>
#include <cstdint>

namespace terrarium::engine {

constexpr uint64_t kWasmPageSize = 65536;
constexpr uint64_t kMemoryReservation = 8ull << 30;

// True if `address` lies inside some live memory's reservation (used by the
// fault handler to tell a guest's out-of-bounds access from a host bug).
bool address_in_guest_memory(const void* address);
// The same, also giving the address's offset from its memory's base.
bool guest_memory_offset(const void* address, uint64_t* offset);

// Number of live memories (for tests and leak checks).
size_t live_memory_count();

}  // namespace terrarium::engine
