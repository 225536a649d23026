// The inside of a Sandbox, shared by sandbox.cc (creation, calls) and
// snapshot.cc (capture, clone, reset).
#pragma once

#include <pthread.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "bridge/bridge.h"
#include "engine/deadline.h"
#include "engine/guarded_call.h"
#include "engine/interrupt.h"
#include "engine/snapshot.h"
#include "python_wasm.h"
#include "terrarium/sandbox.h"
#include "terrarium/snapshot.h"
#include "wasi/wasi.h"
#include "wasi/wasi_imports.h"

namespace terrarium {

// wasm_rt_init + the module's one-time init (func types), once per process.
void initialize_module_once();
// The WASI configuration of a sandbox: its mounts (checked), streams, limits.
Result<wasi::WasiConfig> make_wasi_config(const SandboxConfig& config);

// Guest buffers up to this size are kept between calls (the scratch buffer);
// larger ones are allocated for one call.
constexpr uint32_t kScratchLimit = 1u << 20;

struct Sandbox::Impl {
  SandboxConfig config;
  wasi::WasiConfig wasi_config;  // kept to give a reset sandbox fresh WASI state
  std::unique_ptr<wasi::Wasi> wasi;
  // The state a sandbox made from a snapshot is reset to (shared, not copied).
  std::shared_ptr<const Snapshot::State> snapshot;
  Z_wasi_snapshot_preview1_instance_t wasi_import{};
  bridge::Bridge bridge;
  engine::InterruptTarget interrupts;  // Sandbox::interrupt, from any thread
  Z_terrarium_instance_t terrarium_import{};
  Z_python_instance_t instance{};
  bool instantiated = false;
  bool spent = false;
  bool ran_main = false;
  bool python_ready = false;
  uint32_t scratch = 0;  // guest pointer of the scratch buffer
  uint32_t scratch_capacity = 0;
  // What reset() needs to skip searching the page tables (see
  // engine::MemorySnapshot::PrivatePages): the private pages found last, the
  // thread that reset, its page faults then, and whether another thread has
  // run the guest since.
  engine::MemorySnapshot::PrivatePages private_pages;
  pthread_t reset_thread{};
  bool reset_thread_set = false;
  long faults_after_reset = -1;
  bool foreign_entry = true;

  Result<void> usable() const {
    if (spent)
      return Error(ErrorKind::kGuestError, "sandbox was already used up by a trap or exit");
    if (bridge.in_host_function()) {
      return Error(ErrorKind::kHostError,
                   "re-entrant call: a host function called into its own sandbox");
    }
    return {};
  }

  Error outcome_error(const engine::TrapOutcome& outcome) {
    if (outcome.kind == engine::TrapKind::kExit) {
      return Error(ErrorKind::kGuestError,
                   "the guest exited (status " + std::to_string(outcome.exit_status) + ")");
    }
    return trap_error(outcome);
  }

  // Copies `a` then `b` into guest memory; returns the guest pointer of `a`
  // (b follows it). `*owned`: the buffer must be freed after the call.
  Result<uint32_t> stage(std::string_view a, std::string_view b, bool* owned) {
    uint64_t total = uint64_t{a.size()} + b.size();
    if (total > UINT32_MAX - 16) return Error(ErrorKind::kLimit, "payload larger than 4 GiB");
    uint32_t size = static_cast<uint32_t>(total);
    uint32_t pointer = 0;
    *owned = size > kScratchLimit;
    if (*owned || size > scratch_capacity) {
      uint32_t request = *owned ? size : std::max<uint32_t>(size, 64 * 1024);
      if (!*owned && scratch) {
        uint32_t old = scratch;
        scratch = scratch_capacity = 0;
        auto release = [this, old] { Z_pythonZ_terrarium_free(&instance, old); };
        engine::TrapOutcome outcome = enter_guest(release);
        if (!outcome.ok()) return outcome_error(outcome);
      }
      auto allocate = [this, request, &pointer] {
        pointer = Z_pythonZ_terrarium_alloc(&instance, request);
      };
      engine::TrapOutcome outcome = enter_guest(allocate);
      if (!outcome.ok()) return outcome_error(outcome);
      if (pointer == 0) {
        return Error(ErrorKind::kLimit, "guest memory exhausted allocating " +
                                            std::to_string(request) + " bytes for a payload");
      }
      if (!*owned) {
        scratch = pointer;
        scratch_capacity = request;
      }
    } else {
      pointer = scratch;
    }
    wasm_rt_memory_t* memory = Z_pythonZ_memory(&instance);
    wasi::GuestMemory view(memory->data, memory->size);
    auto target = view.bytes(pointer, size);
    if (!target) return Error(ErrorKind::kGuestError, "guest allocator returned a bad pointer");
    if (!a.empty()) std::memcpy(target->data(), a.data(), a.size());
    if (!b.empty()) std::memcpy(target->data() + a.size(), b.data(), b.size());
    return pointer;
  }

  void release(uint32_t pointer) {
    auto body = [this, pointer] { Z_pythonZ_terrarium_free(&instance, pointer); };
    (void)enter_guest(body);
  }

  // The error of a finished export call whose status was not ok.
  Error guest_error(const std::string& what, int32_t status) {
    if (!bridge.has_result()) {
      std::string message = what + " returned status " + std::to_string(status) + " (" +
                            bridge::status_name(status) + ") without a result";
      if (!bridge.abi_violation().empty()) message += "; ABI violation: " + bridge.abi_violation();
      return Error(ErrorKind::kGuestError, message);
    }
    const std::string& result = bridge.result();
    if (bridge.result_kind() == bridge::kNotFound) return Error(ErrorKind::kNotFound, result);
    if (bridge.result_kind() == bridge::kError) {
      auto parsed = nlohmann::json::parse(result, nullptr, false);
      if (parsed.is_object()) {
        std::string type = parsed.value("type", "Exception");
        std::string message = parsed.value("message", "");
        Error error(ErrorKind::kGuestError,
                    what + " raised " + type + (message.empty() ? "" : ": " + message),
                    parsed.value("traceback", ""));
        error.set_python_type(type);
        return error;
      }
    }
    return Error(ErrorKind::kGuestError, what + " failed: " + result);
  }

  // Runs an export that reports through set_result. Returns the status.
  template <typename Body>
  Result<int32_t> run_export(Body& body, uint32_t owned_pointer) {
    bridge.begin_guest_call();
    engine::TrapOutcome outcome = enter_guest(body);
    bridge.end_guest_call();
    if (!outcome.ok()) return outcome_error(outcome);
    if (owned_pointer) release(owned_pointer);
    return 0;
  }

  Result<void> ensure_python() {
    if (python_ready) return {};
    if (ran_main)
      return Error(ErrorKind::kGuestError, "run_main() finalized this sandbox's interpreter");
    uint32_t status = 0;
    auto body = [this, &status] { status = Z_pythonZ_terrarium_initialize(&instance); };
    auto ran = run_export(body, 0);
    if (!ran) return ran.error();
    if (status != 0) {
      spent = true;
      return guest_error("initializing Python", static_cast<int32_t>(status));
    }
    python_ready = true;
    return {};
  }

  // Calls export `name`; on success the result is in bridge.result().
  Result<void> call_export(std::string_view name, std::string_view payload, uint32_t kind) {
    if (auto ok = usable(); !ok) return ok.error();
    if (auto ok = ensure_python(); !ok) return ok.error();
    bool owned = false;
    auto pointer = stage(name, payload, &owned);
    if (!pointer) return pointer.error();
    uint32_t base = *pointer;
    auto name_len = static_cast<uint32_t>(name.size());
    auto payload_len = static_cast<uint32_t>(payload.size());
    uint32_t status = 0;
    auto body = [this, base, name_len, payload_len, kind, &status] {
      status =
          Z_pythonZ_terrarium_call(&instance, base, name_len, base + name_len, payload_len, kind);
    };
    auto ran = run_export(body, owned ? base : 0);
    if (!ran) return ran.error();
    if (status != 0 || !bridge.has_result() ||
        (bridge.result_kind() != bridge::kJson && bridge.result_kind() != bridge::kBytes)) {
      return guest_error("export '" + std::string(name) + "'", static_cast<int32_t>(status));
    }
    return {};
  }

  ~Impl() {
    if (instantiated) Z_python_free(&instance);
  }

  // Every entry into the guest goes through here: it is where deadlines are
  // armed and where a trap marks the sandbox as spent.
  template <typename Body>
  engine::TrapOutcome enter_guest(Body& body) {
    if (!reset_thread_set || !pthread_equal(pthread_self(), reset_thread)) foreign_entry = true;
    engine::TrapOutcome outcome;
    {
      engine::DeadlineScope deadline(config.limits.timeout, config.limits.cpu_timeout);
      engine::InterruptScope interruptible(interrupts);
      // Generated code built with tools/split_wasm2c.py --rewrite gs
      // addresses linear memory through %gs: enter with this instance's base.
      // (With --rewrite basereg, the default, the exports set r15 themselves.)
      void* base = instantiated ? instance.w2c_memory.data : nullptr;
      outcome = engine::guarded(body, base);
    }
    if (!outcome.ok()) spent = true;
    return outcome;
  }

  Error trap_error(const engine::TrapOutcome& outcome) const {
    switch (outcome.kind) {
      case engine::TrapKind::kHostAbort:
        return Error(ErrorKind::kLimit, outcome.message);
      case engine::TrapKind::kInterrupted:
        return Error(ErrorKind::kInterrupted,
                     "the guest call was interrupted (Sandbox::interrupt)");
      case engine::TrapKind::kDeadline:
        return Error(ErrorKind::kTimeout, "wall-clock deadline of " +
                                              std::to_string(config.limits.timeout.count()) +
                                              " ms exceeded");
      case engine::TrapKind::kCpuDeadline:
        return Error(ErrorKind::kTimeout, "CPU-time deadline of " +
                                              std::to_string(config.limits.cpu_timeout.count()) +
                                              " ms exceeded");
      case engine::TrapKind::kOutOfBounds:
        // The guest's C stack sits at the bottom of linear memory
        // (--stack-first) and grows down: overflowing it wraps the stack
        // pointer to just below 4 GiB, and the next push faults. Name it.
        if (instance.w2c___stack_pointer >= 0xFF000000u) {
          return Error(
              ErrorKind::kTrap,
              "guest trapped: call stack exhausted (guest C stack overflow) in python.wasm");
        }
        [[fallthrough]];
      default:
        return Error(ErrorKind::kTrap, std::string("guest trapped: ") +
                                           engine::trap_name(outcome.kind) + " in python.wasm");
    }
  }
};

}  // namespace terrarium
