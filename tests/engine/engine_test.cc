// Runtime tests: linear memory, every trap kind, and many instances running
// on several threads at once.
#include <gtest/gtest.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "engine/guarded_call.h"
#include "engine/interrupt.h"
#include "engine/memory.h"
#include "traps_wasm.h"

using terrarium::engine::guarded;
using terrarium::engine::TrapKind;
using terrarium::engine::TrapOutcome;

extern "C" {
struct Z_test_instance_t {
  int unused;
};
void Z_testZ_host_exit(struct Z_test_instance_t*, u32 status) {
  terrarium::engine::raise_exit(static_cast<int>(status));
}
void Z_testZ_host_abort(struct Z_test_instance_t*) {
  terrarium::engine::raise_host_abort("host says no");
}
// What the guest's host_callback import runs (set by a test).
thread_local std::function<void(u32)> t_host_callback;
void Z_testZ_host_callback(struct Z_test_instance_t*, u32 value) {
  if (t_host_callback) t_host_callback(value);
}
}

#if defined(__x86_64__)
// Sets every callee-saved register to a known value, calls fn(context), and
// returns 1 if they all still hold it. Generated code may keep state in a
// callee-saved register (the memory base, with split_wasm2c.py --rewrite
// basereg); the host around it must get its own values back.
extern "C" int terrarium_test_callee_saved_intact(void (*fn)(void*), void* context);
asm(R"(
  .text
  .globl terrarium_test_callee_saved_intact
  .type terrarium_test_callee_saved_intact, @function
terrarium_test_callee_saved_intact:
  push %rbx
  push %rbp
  push %r12
  push %r13
  push %r14
  push %r15
  sub $8, %rsp
  mov %rdi, %rax
  mov %rsi, %rdi
  movabs $0x1111111111111111, %rbx
  movabs $0x2222222222222222, %rbp
  movabs $0x3333333333333333, %r12
  movabs $0x4444444444444444, %r13
  movabs $0x5555555555555555, %r14
  movabs $0x6666666666666666, %r15
  call *%rax
  xor %eax, %eax
  movabs $0x1111111111111111, %rcx
  cmp %rcx, %rbx
  jne 1f
  movabs $0x2222222222222222, %rcx
  cmp %rcx, %rbp
  jne 1f
  movabs $0x3333333333333333, %rcx
  cmp %rcx, %r12
  jne 1f
  movabs $0x4444444444444444, %rcx
  cmp %rcx, %r13
  jne 1f
  movabs $0x5555555555555555, %rcx
  cmp %rcx, %r14
  jne 1f
  movabs $0x6666666666666666, %rcx
  cmp %rcx, %r15
  jne 1f
  mov $1, %eax
1:
  add $8, %rsp
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %rbp
  pop %rbx
  ret
  .size terrarium_test_callee_saved_intact, .-terrarium_test_callee_saved_intact
)");
#endif

namespace {

class Instance {
 public:
  Instance() {
    static bool initialized = [] {
      wasm_rt_init();
      Z_traps_init_module();
      return true;
    }();
    (void)initialized;
    auto instantiate = [this] { Z_traps_instantiate(&instance_, &imports_); };
    EXPECT_TRUE(guarded(instantiate).ok());
  }
  ~Instance() { Z_traps_free(&instance_); }
  Z_traps_instance_t* get() { return &instance_; }
  void* base() { return Z_trapsZ_memory(&instance_)->data; }

 private:
  Z_test_instance_t imports_{};
  Z_traps_instance_t instance_{};
};

// Enters `instance` (its memory base becomes this thread's GS base).
template <typename F>
TrapOutcome run(Instance& instance, F&& f) {
  auto body = [&] { f(); };
  return guarded(body, instance.base());
}

TEST(Engine, CallsAndReturns) {
  Instance instance;
  u32 result = 0;
  EXPECT_TRUE(run(instance, [&] { result = Z_trapsZ_add(instance.get(), 2, 40); }).ok());
  EXPECT_EQ(result, 42u);
}

TEST(Engine, MemoryGrowsToItsMaximumAndNoFurther) {
  Instance instance;
  u32 size = 0, grown = 0, refused = 0;
  ASSERT_TRUE(run(instance, [&] {
                grown = Z_trapsZ_grow(instance.get(), 3);
                refused = Z_trapsZ_grow(instance.get(), 1);
                size = Z_trapsZ_size(instance.get());
              }).ok());
  EXPECT_EQ(grown, 1u);
  EXPECT_EQ(refused, UINT32_MAX);
  EXPECT_EQ(size, 4u);
  // The last word of the grown memory is usable, the next byte is not.
  u32 value = 0;
  ASSERT_TRUE(run(instance, [&] {
                Z_trapsZ_store(instance.get(), 4 * 65536 - 4, 0xdeadbeef);
                value = Z_trapsZ_load(instance.get(), 4 * 65536 - 4);
              }).ok());
  EXPECT_EQ(value, 0xdeadbeefu);
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_load(instance.get(), 4 * 65536 - 2); }).kind,
            TrapKind::kOutOfBounds);
}

TEST(Engine, GrowLimitLoweredByHost) {
  Instance instance;
  Z_trapsZ_memory(instance.get())->max_pages = 2;
  u32 first = 0, second = 0;
  ASSERT_TRUE(run(instance, [&] {
                first = Z_trapsZ_grow(instance.get(), 1);
                second = Z_trapsZ_grow(instance.get(), 1);
              }).ok());
  EXPECT_EQ(first, 1u);
  EXPECT_EQ(second, UINT32_MAX);
}

TEST(Engine, OutOfBoundsLoadsTrap) {
  Instance instance;
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_load(instance.get(), 65536); }).kind, TrapKind::kOutOfBounds);
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_load(instance.get(), 0xfffffffc); }).kind, TrapKind::kOutOfBounds);
  // Largest address + largest offset still lands in the reservation.
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_load_offset(instance.get(), 0xffffffff); }).kind,
            TrapKind::kOutOfBounds);
  // The instance is still usable after a trap.
  u32 result = 0;
  EXPECT_TRUE(run(instance, [&] { result = Z_trapsZ_add(instance.get(), 1, 1); }).ok());
  EXPECT_EQ(result, 2u);
}

TEST(Engine, EachTrapKind) {
  Instance instance;
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_unreachable(instance.get()); }).kind, TrapKind::kUnreachable);
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_div(instance.get(), 1, 0); }).kind, TrapKind::kDivideByZero);
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_div(instance.get(), 0x80000000u, static_cast<u32>(-1)); }).kind,
            TrapKind::kIntegerOverflow);
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_trunc(instance.get(), std::nanf("")); }).kind,
            TrapKind::kInvalidConversion);
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_trunc(instance.get(), 1e20f); }).kind, TrapKind::kIntegerOverflow);
  u32 sum = 0;
  EXPECT_TRUE(run(instance, [&] { sum = Z_trapsZ_call_binary(instance.get(), 0); }).ok());
  EXPECT_EQ(sum, 42u);
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_call_binary(instance.get(), 1); }).kind,
            TrapKind::kIndirectCallMismatch);  // wrong type
  EXPECT_TRUE(run(instance, [&] { sum = Z_trapsZ_call_binary(instance.get(), 2); }).ok());
  EXPECT_EQ(sum, static_cast<u32>(-2));  // another type index, the same signature
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_call_binary(instance.get(), 3); }).kind,
            TrapKind::kIndirectCallMismatch);  // null entry
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_call_binary(instance.get(), 4); }).kind,
            TrapKind::kIndirectCallMismatch);  // just past the table
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_call_binary(instance.get(), 100); }).kind,
            TrapKind::kIndirectCallMismatch);  // far past the table
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_call_binary(instance.get(), 0xFFFFFFFFu); }).kind,
            TrapKind::kIndirectCallMismatch);
}

TEST(Engine, DeepRecursionIsATrapNotACrash) {
  Instance instance;
  TrapOutcome outcome = run(instance, [&] { Z_trapsZ_recurse(instance.get(), 0); });
  EXPECT_EQ(outcome.kind, TrapKind::kStackExhausted);
  // And again: the alternate stack and handler survive a first overflow.
  EXPECT_EQ(run(instance, [&] { Z_trapsZ_recurse(instance.get(), 0); }).kind, TrapKind::kStackExhausted);
}

TEST(Engine, ExitAndHostAbortCarryTheirData) {
  Instance instance;
  TrapOutcome exited = run(instance, [&] { Z_trapsZ_exit(instance.get(), 7); });
  EXPECT_EQ(exited.kind, TrapKind::kExit);
  EXPECT_EQ(exited.exit_status, 7);
  TrapOutcome aborted = run(instance, [&] { Z_trapsZ_abort(instance.get()); });
  EXPECT_EQ(aborted.kind, TrapKind::kHostAbort);
  EXPECT_EQ(aborted.message, "host says no");
}

TEST(Engine, InterruptStopsASpinningGuest) {
  Instance instance;
  // SIGALRM-like delivery: a signal handler on this thread calls
  // deliver_interrupt while the guest spins.
  struct sigaction action {};
  action.sa_handler = [](int) { terrarium::engine::deliver_interrupt(TrapKind::kDeadline); };
  action.sa_flags = SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  struct sigaction previous {};
  sigaction(SIGUSR2, &action, &previous);
  pthread_t self = pthread_self();
  std::thread killer([self] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    pthread_kill(self, SIGUSR2);
  });
  TrapOutcome outcome = run(instance, [&] { Z_trapsZ_spin(instance.get(), 0); });
  killer.join();
  sigaction(SIGUSR2, &previous, nullptr);
  EXPECT_EQ(outcome.kind, TrapKind::kDeadline);
}

TEST(Engine, ManyInstancesOnSeveralThreadsAtOnce) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &failures] {
      Instance instance;
      for (int round = 0; round < kRounds; ++round) {
        u32 value = 0;
        u32 address = static_cast<u32>(4 * (t * 100 + round % 100));
        bool ok = run(instance, [&] {
                    Z_trapsZ_store(instance.get(), address, t * 1000 + round);
                    value = Z_trapsZ_load(instance.get(), address);
                  }).ok();
        if (!ok || value != static_cast<u32>(t * 1000 + round)) failures++;
        // Interleave traps of different kinds on different threads.
        TrapKind expected = (round + t) % 2 ? TrapKind::kOutOfBounds : TrapKind::kDivideByZero;
        TrapOutcome outcome = run(instance, [&] {
          if (expected == TrapKind::kOutOfBounds) Z_trapsZ_load(instance.get(), 1u << 30);
          else Z_trapsZ_div(instance.get(), 1, 0);
        });
        if (outcome.kind != expected) failures++;
        if (round % 50 == 0 &&
            run(instance, [&] { Z_trapsZ_recurse(instance.get(), 0); }).kind != TrapKind::kStackExhausted) {
          failures++;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// Memory is addressed through %gs in the rewritten module: two threads running
// two instances at once, hammering the same address, each must see only its
// own memory.
TEST(Engine, SameAddressInTwoMemoriesOnTwoThreadsAtOnce) {
  std::atomic<int> failures{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([t, &failures, &ready] {
      Instance instance;
      ready++;
      while (ready.load() < 2) std::this_thread::yield();
      for (int round = 0; round < 100000; ++round) {
        u32 value = 0;
        u32 expected = static_cast<u32>(t * 1000000 + round);
        bool ok = run(instance, [&] {
                    Z_trapsZ_store(instance.get(), 64, expected);
                    value = Z_trapsZ_load(instance.get(), 64);
                  }).ok();
        if (!ok || value != expected) failures++;
      }
      // The host sees what the guest wrote, through mem->data.
      u32 last;
      std::memcpy(&last, static_cast<char*>(instance.base()) + 64, 4);
      if (last != static_cast<u32>(t * 1000000 + 99999)) failures++;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Engine, NestedCallsIntoAnotherInstanceKeepTheirBase) {
  Instance outer, inner;
  u32 before = 0, after = 0, in_inner = 0;
  void* base_before = terrarium::engine::guest_memory_base();
  TrapOutcome outcome = run(outer, [&] {
    Z_trapsZ_store(outer.get(), 8, 111);
    before = Z_trapsZ_load(outer.get(), 8);
    // A host function entering another instance, which traps.
    TrapOutcome nested = run(inner, [&] {
      Z_trapsZ_store(inner.get(), 8, 222);
      in_inner = Z_trapsZ_load(inner.get(), 8);
      Z_trapsZ_load(inner.get(), 1u << 30);
    });
    if (nested.kind != TrapKind::kOutOfBounds) Z_trapsZ_unreachable(outer.get());
    after = Z_trapsZ_load(outer.get(), 8);
  });
  EXPECT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(before, 111u);
  EXPECT_EQ(in_inner, 222u);
  EXPECT_EQ(after, 111u);
  EXPECT_EQ(terrarium::engine::guest_memory_base(), base_before);
}

TEST(Engine, GuestCallsHostWhichEntersAnotherInstance) {
  Instance outer, inner;
  u32 result = 0, in_inner = 0;
  TrapKind inner_trap = TrapKind::kNone;
  t_host_callback = [&](u32 value) {
    // The host, called from outer's code, runs inner (which traps once).
    TrapOutcome nested = run(inner, [&] {
      Z_trapsZ_store(inner.get(), 8, value * 2);
      in_inner = Z_trapsZ_load(inner.get(), 8);
    });
    EXPECT_TRUE(nested.ok()) << nested.message;
    inner_trap = run(inner, [&] { Z_trapsZ_load(inner.get(), 1u << 30); }).kind;
  };
  TrapOutcome outcome =
      run(outer, [&] { result = Z_trapsZ_store_callback_load(outer.get(), 111); });
  t_host_callback = nullptr;
  EXPECT_TRUE(outcome.ok()) << outcome.message;
  EXPECT_EQ(result, 111u);  // outer read its own memory after the detour
  EXPECT_EQ(in_inner, 222u);
  EXPECT_EQ(inner_trap, TrapKind::kOutOfBounds);
}

#if defined(__x86_64__)
TEST(Engine, HostCalleeSavedRegistersSurviveGuestCallsAndTraps) {
  struct Context {
    Instance instance;
    u32 sum = 0, callback_result = 0;
    TrapKind trap = TrapKind::kNone;
  } context;
  auto body = [](void* pointer) {
    auto& c = *static_cast<Context*>(pointer);
    run(c.instance, [&] { c.sum = Z_trapsZ_add(c.instance.get(), 2, 40); });
    c.trap = run(c.instance, [&] { Z_trapsZ_load(c.instance.get(), 0xfffffffc); }).kind;
    t_host_callback = [&](u32) { run(c.instance, [&] { Z_trapsZ_add(c.instance.get(), 1, 1); }); };
    run(c.instance, [&] { c.callback_result = Z_trapsZ_store_callback_load(c.instance.get(), 7); });
    t_host_callback = nullptr;
  };
  EXPECT_EQ(terrarium_test_callee_saved_intact(body, &context), 1);
  EXPECT_EQ(context.sum, 42u);
  EXPECT_EQ(context.trap, TrapKind::kOutOfBounds);
  EXPECT_EQ(context.callback_result, 7u);
}
#endif

TEST(Engine, SegmentBaseIsRestoredAfterATrap) {
  Instance instance;
  void* base_before = terrarium::engine::guest_memory_base();
  void* inside = nullptr;
  TrapOutcome outcome = run(instance, [&] {
    inside = terrarium::engine::guest_memory_base();
    Z_trapsZ_load(instance.get(), 0xfffffffc);
  });
  EXPECT_EQ(outcome.kind, TrapKind::kOutOfBounds);
  EXPECT_EQ(inside, instance.base());
  EXPECT_EQ(terrarium::engine::guest_memory_base(), base_before);
}

TEST(Engine, MemoriesAreReleased) {
  size_t before = terrarium::engine::live_memory_count();
  {
    Instance a, b, c;
    EXPECT_EQ(terrarium::engine::live_memory_count(), before + 3);
  }
  EXPECT_EQ(terrarium::engine::live_memory_count(), before);
}

}  // namespace

// Function types are interned by their counts and codes: call_indirect's type
// check compares the ids. Nine parameters (more than there are type codes)
// once made the table hold a count as a wasm_rt_type_t (UBSan's finding).
TEST(Engine, FunctionTypesAreInternedByShape) {
  uint32_t many = wasm_rt_register_func_type(9, 1, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
                                             WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
                                             WASM_RT_I32, WASM_RT_I64, WASM_RT_F64);
  EXPECT_NE(many, 0u);
  EXPECT_EQ(wasm_rt_register_func_type(9, 1, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
                                       WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
                                       WASM_RT_I64, WASM_RT_F64),
            many);
  uint32_t other = wasm_rt_register_func_type(9, 1, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
                                              WASM_RT_I32, WASM_RT_I32, WASM_RT_I32, WASM_RT_I32,
                                              WASM_RT_I32, WASM_RT_I32, WASM_RT_F64);
  EXPECT_NE(other, many);
  EXPECT_NE(wasm_rt_register_func_type(1, 0, WASM_RT_I64),
            wasm_rt_register_func_type(0, 1, WASM_RT_I64));
}
