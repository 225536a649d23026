// Snapshots: an initialized sandbox captured once, then cloned in
// microseconds; and pools that hand out ready sandboxes from one.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "terrarium/config.h"
#include "terrarium/error.h"
#include "terrarium/sandbox.h"

namespace terrarium {

// The state of an initialized, idle sandbox — linear memory, wasm globals and
// table, host functions — captured once. Immutable; share it between threads.
//
// What a snapshot fixes, because CPython computed it while starting: args,
// environment, the mount layout and everything the code run before capture
// did (imported modules, globals) — and CPython's string-hash secret, which
// cannot change once dicts exist. What each sandbox made from it gets afresh:
// its own memory (copy-on-write), WASI state (descriptors, output counters),
// streams and limits, and — if `random` was imported — a reseeded `random`.
// Because the hash secret is shared by the clones of one snapshot, take
// snapshots per process (the default when capturing at start-up) rather than
// shipping one file to many hosts if hash-flooding between tenants matters.
class Snapshot {
 public:
  // `sandbox` must be initialized for embedding (initialize(), exec or call
  // done), not spent, and have no guest files open beyond stdio and mounts.
  static Result<std::shared_ptr<const Snapshot>> capture(Sandbox& sandbox);

  // A new sandbox from this snapshot. Args, env, mounts and files are the
  // snapshot's; streams (stdin/stdout/stderr) and limits come from `config`,
  // and so may the mounts' host directories (same guest paths, same order).
  Result<std::unique_ptr<Sandbox>> new_sandbox(const SandboxConfig& config) const;
  Result<std::unique_ptr<Sandbox>> new_sandbox() const { return new_sandbox(config_); }

  // Writes the snapshot to a file. load() accepts it only in a process whose
  // guest is the same build (the file records a hash of python.wasm and the
  // stdlib image), with a config of the same layout (args, env, mount guest
  // paths); host functions are not saved: define them on the new sandboxes.
  Result<void> save(const std::string& path) const;
  static Result<std::shared_ptr<const Snapshot>> load(const std::string& path,
                                                      const SandboxConfig& config);

  // Size of the captured linear memory.
  uint64_t memory_bytes() const;
  const SandboxConfig& config() const { return config_; }

  struct State;
  Snapshot(SandboxConfig config, std::shared_ptr<const State> state)
      : config_(std::move(config)), state_(std::move(state)) {}

 private:
  SandboxConfig config_;
  std::shared_ptr<const State> state_;
};

// A thread-safe pool of ready sandboxes made from one snapshot. acquire()
// hands one out (made on demand when none is idle); when the Lease ends the
// sandbox is reset to the snapshot and kept (or discarded if it trapped, hit
// a limit, or the pool already holds `max_idle`).
class Pool {
 public:
  struct Options {
    size_t max_idle = 16;  // sandboxes kept ready
    size_t prefill = 0;    // made up front by create()
    SandboxConfig config;  // streams and limits of the pool's sandboxes
    Sandbox::ResetStrategy reset_strategy = Sandbox::ResetStrategy::kCopyDirtyPages;
  };

  class Lease {
   public:
    Lease(Lease&& other) noexcept : pool_(other.pool_), sandbox_(std::move(other.sandbox_)) {
      other.pool_ = nullptr;
    }
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Sandbox& operator*() { return *sandbox_; }
    Sandbox* operator->() { return sandbox_.get(); }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<Sandbox> sandbox)
        : pool_(pool), sandbox_(std::move(sandbox)) {}
    Pool* pool_;
    std::unique_ptr<Sandbox> sandbox_;
  };

  static Result<std::unique_ptr<Pool>> create(std::shared_ptr<const Snapshot> snapshot,
                                              Options options);
  Result<Lease> acquire();
  size_t idle() const;

 private:
  Pool(std::shared_ptr<const Snapshot> snapshot, Options options)
      : snapshot_(std::move(snapshot)), options_(std::move(options)) {}
  void give_back(std::unique_ptr<Sandbox> sandbox);

  std::shared_ptr<const Snapshot> snapshot_;
  Options options_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Sandbox>> idle_;
};

}  // namespace terrarium
