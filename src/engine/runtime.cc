// Terrarium's implementation of wabt's wasm-rt.h runtime interface.
//
// Debian's wasm-rt-impl.c keeps the trap jmp_buf in a process global; here
// every piece of per-execution state is thread-local (see traps.cc), so many
// instances can run on many threads at once.
#include <sys/mman.h>
#include <wasm-rt.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "engine/guarded_call.h"
#include "engine/memory.h"
#include "engine/trap.h"

namespace terrarium::engine {
namespace {

// Live memory reservations, readable from the fault handler without locks:
// a fixed array of slots, each holding a base address or 0.
constexpr size_t kMaxMemories = 1 << 15;
std::atomic<uintptr_t> g_memory_slots[kMaxMemories];
std::atomic<size_t> g_live_memories{0};

void register_memory(void* base) {
  auto value = reinterpret_cast<uintptr_t>(base);
  for (auto& slot : g_memory_slots) {
    uintptr_t empty = 0;
    if (slot.compare_exchange_strong(empty, value)) {
      g_live_memories.fetch_add(1);
      return;
    }
  }
  std::fprintf(stderr, "terrarium: more than %zu live linear memories\n", kMaxMemories);
  std::abort();
}

void unregister_memory(void* base) {
  auto value = reinterpret_cast<uintptr_t>(base);
  for (auto& slot : g_memory_slots) {
    uintptr_t expected = value;
    if (slot.compare_exchange_strong(expected, 0)) {
      g_live_memories.fetch_sub(1);
      return;
    }
  }
}

std::mutex g_types_mutex;
// Each: the counts of params and results, then their wasm_rt_type_t codes;
// plain integers, since a count is no valid wasm_rt_type_t (UBSan's finding).
std::vector<std::vector<uint32_t>> g_types;
std::atomic<bool> g_initialized{false};

struct ExceptionState {
  uint32_t tag = 0;
  uint32_t size = 0;
  uint8_t data[256];
  WASM_RT_UNWIND_TARGET* unwind_target = nullptr;
};
thread_local ExceptionState t_exception;

}  // namespace

bool guest_memory_offset(const void* address, uint64_t* offset) {
  auto a = reinterpret_cast<uintptr_t>(address);
  if (g_live_memories.load(std::memory_order_relaxed) == 0) return false;
  for (auto& slot : g_memory_slots) {
    uintptr_t base = slot.load(std::memory_order_relaxed);
    if (base && a >= base && a - base < kMemoryReservation) {
      *offset = a - base;
      return true;
    }
  }
  return false;
}

bool address_in_guest_memory(const void* address) {
  uint64_t offset;
  return guest_memory_offset(address, &offset);
}

size_t live_memory_count() { return g_live_memories.load(); }

}  // namespace terrarium::engine

using namespace terrarium::engine;

namespace {

// wasm2c's trap codes, as Terrarium's kinds (anything unknown is treated as
// `unreachable`: the guest reached a state it declared impossible).
TrapKind trap_kind_of(wasm_rt_trap_t code) {
  switch (code) {
    case WASM_RT_TRAP_OOB: return TrapKind::kOutOfBounds;
    case WASM_RT_TRAP_INT_OVERFLOW: return TrapKind::kIntegerOverflow;
    case WASM_RT_TRAP_DIV_BY_ZERO: return TrapKind::kDivideByZero;
    case WASM_RT_TRAP_INVALID_CONVERSION: return TrapKind::kInvalidConversion;
    case WASM_RT_TRAP_UNREACHABLE: return TrapKind::kUnreachable;
    case WASM_RT_TRAP_CALL_INDIRECT: return TrapKind::kIndirectCallMismatch;
    case WASM_RT_TRAP_UNCAUGHT_EXCEPTION: return TrapKind::kUncaughtException;
    case WASM_RT_TRAP_EXHAUSTION: return TrapKind::kStackExhausted;
    default: return TrapKind::kUnreachable;
  }
}

template <typename Table>
void allocate_table(Table* table, uint32_t elements, uint32_t max_elements) {
  using Element = std::remove_pointer_t<decltype(table->data)>;
  table->data = static_cast<Element*>(std::calloc(elements ? elements : 1, sizeof(Element)));
  if (!table->data) raise_host_abort("out of host memory allocating a table");
  table->size = elements;
  table->max_size = max_elements;
}

template <typename Table>
void free_table(Table* table) {
  std::free(table->data);
  table->data = nullptr;
  table->size = 0;
}

template <typename Table, typename Element>
uint32_t grow_table(Table* table, uint32_t delta, Element init) {
  uint64_t old_size = table->size;
  uint64_t new_size = old_size + delta;
  if (new_size > table->max_size || new_size > (1u << 24)) return UINT32_MAX;
  if (delta == 0) return static_cast<uint32_t>(old_size);
  auto* data = static_cast<Element*>(std::realloc(table->data, new_size * sizeof(Element)));
  if (!data) return UINT32_MAX;
  for (uint64_t i = old_size; i < new_size; ++i) data[i] = init;
  table->data = data;
  table->size = static_cast<uint32_t>(new_size);
  return static_cast<uint32_t>(old_size);
}

}  // namespace

extern "C" {

void wasm_rt_init(void) {
  prepare_thread();
  g_initialized = true;
}

bool wasm_rt_is_initialized(void) { return g_initialized; }

void wasm_rt_free(void) {}

void wasm_rt_trap(wasm_rt_trap_t code) { raise_trap(trap_kind_of(code)); }

const char* wasm_rt_strerror(wasm_rt_trap_t trap) {
  return trap == WASM_RT_TRAP_NONE ? "No error" : trap_name(trap_kind_of(trap));
}

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
  std::vector<uint32_t> signature;
  signature.push_back(params);
  signature.push_back(results);
  va_list args;
  va_start(args, results);
  for (uint32_t i = 0; i < params + results; ++i) {
    signature.push_back(static_cast<uint32_t>(va_arg(args, int)));
  }
  va_end(args);
  std::lock_guard lock(g_types_mutex);
  for (size_t i = 0; i < g_types.size(); ++i) {
    if (g_types[i] == signature) return static_cast<uint32_t>(i + 1);
  }
  g_types.push_back(std::move(signature));
  return static_cast<uint32_t>(g_types.size());  // 0 stays "no type" (null funcref)
}

uint32_t wasm_rt_register_tag(uint32_t size) {
  static std::atomic<uint32_t> next_tag{1};
  (void)size;
  return next_tag++;
}

void wasm_rt_load_exception(uint32_t tag, uint32_t size, const void* values) {
  if (size > sizeof(t_exception.data)) wasm_rt_trap(WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
  t_exception.tag = tag;
  t_exception.size = size;
  if (size) std::memcpy(t_exception.data, values, size);
}

void wasm_rt_throw(void) {
  if (!t_exception.unwind_target) wasm_rt_trap(WASM_RT_TRAP_UNCAUGHT_EXCEPTION);
  WASM_RT_UNWIND_TARGET* target = t_exception.unwind_target;
  longjmp(*target, 1);
}

WASM_RT_UNWIND_TARGET* wasm_rt_get_unwind_target(void) { return t_exception.unwind_target; }
void wasm_rt_set_unwind_target(WASM_RT_UNWIND_TARGET* target) {
  t_exception.unwind_target = target;
}
uint32_t wasm_rt_exception_tag(void) { return t_exception.tag; }
uint32_t wasm_rt_exception_size(void) { return t_exception.size; }
void* wasm_rt_exception(void) { return t_exception.data; }

void wasm_rt_allocate_memory(wasm_rt_memory_t* memory, uint32_t initial_pages, uint32_t max_pages) {
  void* base = mmap(nullptr, kMemoryReservation, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  uint64_t bytes = uint64_t{initial_pages} * kWasmPageSize;
  if (base == MAP_FAILED || initial_pages > 65536 ||
      (bytes && mprotect(base, bytes, PROT_READ | PROT_WRITE) != 0)) {
    // Instantiation has no error channel in wasm2c's API; stop the guest.
    if (base != MAP_FAILED) munmap(base, kMemoryReservation);
    raise_host_abort("cannot reserve linear memory (address space exhausted?)");
  }
  register_memory(base);
  memory->data = static_cast<uint8_t*>(base);
  memory->pages = initial_pages;
  memory->max_pages = max_pages;
  memory->size = static_cast<uint32_t>(bytes);
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t* memory, uint32_t delta) {
  uint64_t old_pages = memory->pages;
  uint64_t new_pages = old_pages + delta;
  if (new_pages > memory->max_pages || new_pages > 65535) return UINT32_MAX;
  if (delta == 0) return static_cast<uint32_t>(old_pages);
  if (mprotect(memory->data + old_pages * kWasmPageSize, uint64_t{delta} * kWasmPageSize,
               PROT_READ | PROT_WRITE) != 0) {
    return UINT32_MAX;
  }
  memory->pages = static_cast<uint32_t>(new_pages);
  memory->size = static_cast<uint32_t>(new_pages * kWasmPageSize);
  return static_cast<uint32_t>(old_pages);
}

void wasm_rt_free_memory(wasm_rt_memory_t* memory) {
  if (!memory->data) return;
  unregister_memory(memory->data);
  munmap(memory->data, kMemoryReservation);
  memory->data = nullptr;
  memory->pages = memory->size = 0;
}

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t* table, uint32_t elements,
                                    uint32_t max_elements) {
  allocate_table(table, elements, max_elements);
}

void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t* table) { free_table(table); }

void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t* table, uint32_t elements,
                                      uint32_t max_elements) {
  allocate_table(table, elements, max_elements);
}

void wasm_rt_free_externref_table(wasm_rt_externref_table_t* table) { free_table(table); }

uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t* table, uint32_t delta,
                                    wasm_rt_funcref_t init) {
  return grow_table(table, delta, init);
}

uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t* table, uint32_t delta,
                                      wasm_rt_externref_t init) {
  return grow_table(table, delta, init);
}

}  // extern "C"
