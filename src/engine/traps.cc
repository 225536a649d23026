// Trap delivery: thread-local unwind targets, the fault handler that turns
// guard-page hits into traps, and the host-call bracket used for deadlines.
#include <asm/prctl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "engine/guarded_call.h"
#include "engine/interrupt.h"
#include "engine/memory.h"
#include "engine/trap.h"

namespace terrarium::engine {
namespace {

struct TrapTarget {
  sigjmp_buf jump;
  TrapKind kind = TrapKind::kNone;
  int exit_status = 0;
  char message[512] = {0};
  TrapTarget* previous = nullptr;
};

// Per-thread state. initial-exec TLS: the fault handler must read it without
// calling into the dynamic linker.
struct ThreadState {
  TrapTarget* target = nullptr;
  int host_depth = 0;             // > 0 while a host import runs
  std::atomic<int> pending{0};    // a TrapKind raised asynchronously
  uintptr_t stack_low = 0;        // lowest usable stack address
  uintptr_t stack_guard_low = 0;  // bottom of the region we treat as "overflow"
  void* alternate_stack = nullptr;
  size_t alternate_stack_size = 0;
  uintptr_t gs_base = 0;  // this thread's GS base (guest memory base)
  bool prepared = false;
};

__attribute__((tls_model("initial-exec"))) thread_local ThreadState t_state;

// Frees the alternate signal stack when a thread that ran guests exits.
struct ThreadCleanup {
  ~ThreadCleanup() {
    if (t_state.alternate_stack) {
      stack_t disable{};
      disable.ss_flags = SS_DISABLE;
      sigaltstack(&disable, nullptr);
      munmap(t_state.alternate_stack, t_state.alternate_stack_size);
      t_state.alternate_stack = nullptr;
    }
  }
};
thread_local ThreadCleanup t_cleanup;

// --- The GS segment base: the guest memory base of generated code rewritten
// with `split_wasm2c.py --rewrite gs`. Linux keeps it per thread (saved and
// restored on context switches); glibc uses FS for TLS, never GS.
#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

bool detect_fsgsbase() {
#if defined(__x86_64__)
  return (getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE) != 0;
#else
  return false;
#endif
}
const bool g_fsgsbase = detect_fsgsbase();

uintptr_t read_gs_base() {
#if defined(__x86_64__)
  uintptr_t base = 0;
  if (g_fsgsbase) {
    asm volatile("rdgsbase %0" : "=r"(base));
  } else {
    syscall(SYS_arch_prctl, ARCH_GET_GS, &base);
  }
  return base;
#else
  return 0;
#endif
}

void write_gs_base(uintptr_t base) {
  ThreadState& state = t_state;
  if (state.gs_base == base) return;
#if defined(__x86_64__)
  if (g_fsgsbase) {
    asm volatile("wrgsbase %0" ::"r"(base) : "memory");
  } else if (syscall(SYS_arch_prctl, ARCH_SET_GS, base) != 0) {
    std::fprintf(stderr, "terrarium: internal error: arch_prctl(ARCH_SET_GS) failed\n");
    std::abort();
  }
#endif
  state.gs_base = base;
}

struct sigaction g_previous_segv, g_previous_bus, g_previous_fpe;
std::once_flag g_handlers_once;

[[noreturn]] void unwind(TrapKind kind) {
  TrapTarget* target = t_state.target;
  if (!target) {
    // A trap with nobody to catch it is a host bug: say so and stop.
    std::fprintf(stderr, "terrarium: internal error: trap (%s) outside a guarded call\n",
                 trap_name(kind));
    std::abort();
  }
  target->kind = kind;
  t_state.host_depth = 0;
  siglongjmp(target->jump, 1);
}

void chain_to_previous(int signal, siginfo_t* info, void* context) {
  const struct sigaction* previous = signal == SIGSEGV  ? &g_previous_segv
                                     : signal == SIGBUS ? &g_previous_bus
                                                        : &g_previous_fpe;
  if (previous->sa_flags & SA_SIGINFO) {
    if (previous->sa_sigaction) {
      previous->sa_sigaction(signal, info, context);
      return;
    }
  } else if (previous->sa_handler != SIG_DFL && previous->sa_handler != SIG_IGN) {
    previous->sa_handler(signal);
    return;
  }
  // Default action: reinstall it and return, so the faulting instruction
  // runs again and the process dies with the right signal (and a core).
  struct sigaction restore {};
  restore.sa_handler = SIG_DFL;
  sigemptyset(&restore.sa_mask);
  sigaction(signal, &restore, nullptr);
}

void fault_handler(int signal, siginfo_t* info, void* context) {
  ThreadState& state = t_state;
  if (state.target && state.host_depth == 0) {
    auto address = reinterpret_cast<uintptr_t>(info->si_addr);
    if (signal == SIGFPE) {
      // Generated code checks division itself; an FPE here still is the guest's.
      unwind(TrapKind::kIntegerOverflow);
    }
    if (address_in_guest_memory(info->si_addr)) unwind(TrapKind::kOutOfBounds);
    if (state.stack_low && address >= state.stack_guard_low && address < state.stack_low + 65536) {
      unwind(TrapKind::kStackExhausted);
    }
  }
  chain_to_previous(signal, info, context);
}

void install_handlers() {
  struct sigaction action {};
  action.sa_sigaction = fault_handler;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &g_previous_segv);
  sigaction(SIGBUS, &action, &g_previous_bus);
  sigaction(SIGFPE, &action, &g_previous_fpe);
}

}  // namespace

void prepare_thread() {
  std::call_once(g_handlers_once, install_handlers);
  ThreadState& state = t_state;
  if (state.prepared) return;
  (void)&t_cleanup;  // instantiate the per-thread cleanup

  // A stack for the fault handler: a fault from stack overflow cannot run
  // the handler on the exhausted stack.
  size_t size = 64 * 1024;
  void* stack = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (stack != MAP_FAILED) {
    stack_t alternate{};
    alternate.ss_sp = stack;
    alternate.ss_size = size;
    if (sigaltstack(&alternate, nullptr) == 0) {
      state.alternate_stack = stack;
      state.alternate_stack_size = size;
    } else {
      munmap(stack, size);
    }
  }

  pthread_attr_t attributes;
  if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
    void* low = nullptr;
    size_t stack_size = 0;
    size_t guard = 0;
    pthread_attr_getstack(&attributes, &low, &stack_size);
    pthread_attr_getguardsize(&attributes, &guard);
    pthread_attr_destroy(&attributes);
    state.stack_low = reinterpret_cast<uintptr_t>(low);
    // Treat faults up to 1 MiB below the usable stack as overflow: a large
    // frame can skip past the guard page (the generated code is compiled
    // with -fstack-clash-protection so frames probe their pages in order).
    uintptr_t margin = (1u << 20) + guard;
    state.stack_guard_low = state.stack_low > margin ? state.stack_low - margin : 0;
  }
  state.gs_base = read_gs_base();
  state.prepared = true;
}

size_t native_stack_remaining() {
  prepare_thread();
  auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  return here > t_state.stack_low ? here - t_state.stack_low : 0;
}

bool native_stack_low(size_t bytes) {
  auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  uintptr_t low = t_state.stack_low;
  return low != 0 && (here < low || here - low < bytes);
}

void set_guest_memory_base(void* memory_base) {
  write_gs_base(reinterpret_cast<uintptr_t>(memory_base));
}

void* guest_memory_base() {
  prepare_thread();
  return reinterpret_cast<void*>(t_state.gs_base);
}

bool fast_segment_switch() { return g_fsgsbase; }

TrapOutcome guarded_call(void (*body)(void*), void* context, void* memory_base) {
  prepare_thread();
  ThreadState& state = t_state;
  TrapTarget target;
  target.previous = state.target;
  int saved_host_depth = state.host_depth;
  // volatile: read again after siglongjmp.
  volatile uintptr_t saved_gs_base = state.gs_base;
  TrapOutcome outcome;
  if (sigsetjmp(target.jump, 1) == 0) {
    state.target = &target;
    state.host_depth = 0;
    if (memory_base) write_gs_base(reinterpret_cast<uintptr_t>(memory_base));
    body(context);
    write_gs_base(saved_gs_base);
    state.target = target.previous;
    state.host_depth = saved_host_depth;
    return outcome;
  }
  write_gs_base(saved_gs_base);
  state.target = target.previous;
  state.host_depth = saved_host_depth;
  state.pending.store(0, std::memory_order_relaxed);
  outcome.kind = target.kind;
  outcome.exit_status = target.exit_status;
  outcome.message = target.kind == TrapKind::kHostAbort ? target.message : trap_name(target.kind);
  return outcome;
}

void raise_trap(TrapKind kind) { unwind(kind); }

void raise_exit(int status) {
  if (t_state.target) t_state.target->exit_status = status;
  unwind(TrapKind::kExit);
}

void raise_host_abort(std::string_view message) {
  if (TrapTarget* target = t_state.target) {
    size_t n = std::min(message.size(), sizeof(target->message) - 1);
    std::memcpy(target->message, message.data(), n);
    target->message[n] = '\0';
  }
  unwind(TrapKind::kHostAbort);
}

void enter_host() { ++t_state.host_depth; }

void leave_host() {
  ThreadState& state = t_state;
  if (state.host_depth > 0) --state.host_depth;
  if (state.host_depth == 0) {
    int pending = state.pending.exchange(0, std::memory_order_acq_rel);
    if (pending != 0) unwind(static_cast<TrapKind>(pending));
  }
}

bool interrupt_pending() { return t_state.pending.load(std::memory_order_acquire) != 0; }

// Called from the interrupt signal handler on the target thread.
void deliver_interrupt(TrapKind kind) {
  ThreadState& state = t_state;
  if (!state.target) return;  // not running a guest: nothing to stop
  if (state.host_depth > 0) {
    state.pending.store(static_cast<int>(kind), std::memory_order_release);
    return;
  }
  unwind(kind);
}

const char* trap_name(TrapKind kind) {
  switch (kind) {
    case TrapKind::kNone:
      return "no trap";
    case TrapKind::kOutOfBounds:
      return "out-of-bounds memory access";
    case TrapKind::kIntegerOverflow:
      return "integer overflow";
    case TrapKind::kDivideByZero:
      return "integer divide by zero";
    case TrapKind::kInvalidConversion:
      return "invalid conversion to integer";
    case TrapKind::kUnreachable:
      return "unreachable executed";
    case TrapKind::kIndirectCallMismatch:
      return "indirect call to a null or mismatched function";
    case TrapKind::kUncaughtException:
      return "uncaught wasm exception";
    case TrapKind::kStackExhausted:
      return "call stack exhausted";
    case TrapKind::kExit:
      return "exit";
    case TrapKind::kDeadline:
      return "wall-clock deadline exceeded";
    case TrapKind::kCpuDeadline:
      return "CPU-time deadline exceeded";
    case TrapKind::kHostAbort:
      return "stopped by the host";
    case TrapKind::kInterrupted:
      return "interrupted";
  }
  return "unknown trap";
}

}  // namespace terrarium::engine
