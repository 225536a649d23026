// Snapshots of initialized sandboxes: capture, clone, reset, save and load.
#include "terrarium/snapshot.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "engine/snapshot.h"
#include "sandbox/sandbox_impl.h"

extern "C" const char terrarium_guest_hash[];

namespace terrarium {

struct Snapshot::State {
  std::shared_ptr<const engine::MemorySnapshot> memory;
  uint32_t stack_pointer = 0;
  uint32_t module_max_pages = 65536;  // the module's own maximum (before limits)
  std::vector<wasm_rt_funcref_t> table;
  uint32_t table_max = 0;
  const void* table_owner = nullptr;  // the instance the table's entries point at
  bridge::Bridge::FunctionMap functions;
  uint32_t scratch = 0;
  uint32_t scratch_capacity = 0;
  bool reseed_random = false;
  // Guest address of the global Mersenne Twister's `index` (followed by its
  // 624-word state), when capture found it where CPython 3.11 keeps it: a
  // reset then reseeds by writing fresh entropy there, without entering the
  // guest. 0: reseed through random.seed().
  uint32_t random_state_address = 0;
};

namespace {

constexpr char kMagic[8] = {'T', 'R', 'R', 'M', 'S', 'N', 'P', '1'};

// Registered in the guest at capture: tells whether `random` needs fresh
// entropy in each clone, and reseeds it.
constexpr const char* kHelpers = R"PY(
import sys as _terrarium_sys
import terrarium as _terrarium_sdk

@_terrarium_sdk.export("__terrarium_random_imported__")
def _terrarium_random_imported(_):
    return "random" in _terrarium_sys.modules

@_terrarium_sdk.export("__terrarium_reseed__")
def _terrarium_reseed(_):
    _terrarium_sys.modules["random"].seed()

@_terrarium_sdk.export("__terrarium_random_state__")
def _terrarium_random_state(_):
    # The global generator's object and what its state holds now, for the
    # host to find the state in memory (and check it found it).
    inst = _terrarium_sys.modules["random"]._inst
    version, internal, gauss_next = inst.getstate()
    if gauss_next is not None:
        return None
    return [id(inst), internal[624], internal[0], internal[1], internal[623]]

# Everything alive now is shared by every clone: move it out of the garbage
# collector's sight, so that a collection in a clone does not walk (and so
# copy) the whole heap.
import gc as _terrarium_gc
_terrarium_gc.collect()
_terrarium_gc.freeze()
)PY";

// The part of a config a snapshot fixes, as JSON (compared on load).
nlohmann::json layout_of(const SandboxConfig& config) {
  nlohmann::json mounts = nlohmann::json::array();
  for (const Mount& mount : config.mounts) {
    mounts.push_back({{"guest", mount.guest_path}, {"read_only", mount.read_only}});
  }
  nlohmann::json files = nlohmann::json::array();
  for (const VirtualFile& file : config.files) {
    files.push_back({{"guest", file.guest_path}, {"size", file.contents.size()}});
  }
  std::vector<std::string> args = config.args;
  if (args.empty()) args.push_back("python");
  return {{"args", args}, {"env", config.env}, {"mounts", mounts}, {"files", files}};
}

// Gives `impl` (fresh, WASI set up) the snapshot's instance state.
Result<void> restore_instance(Sandbox::Impl& impl, const Snapshot::State& state) {
  Z_python_instance_t& instance = impl.instance;
  instance.Z_terrarium_instance = &impl.terrarium_import;
  instance.Z_wasi_snapshot_preview1_instance = &impl.wasi_import;
  instance.w2c___stack_pointer = state.stack_pointer;

  uint32_t max_pages = state.module_max_pages;
  if (uint64_t limit = impl.config.limits.max_memory_bytes) {
    uint64_t limit_pages = limit / 65536;
    if (limit_pages < state.memory->pages()) {
      return Error(ErrorKind::kConfig, "memory limit of " + std::to_string(limit) +
                                           " bytes is below the snapshot's " +
                                           std::to_string(state.memory->bytes()) + " bytes");
    }
    max_pages = static_cast<uint32_t>(std::min<uint64_t>(max_pages, limit_pages));
  }
  std::string error;
  if (!state.memory->map_new(&instance.w2c_memory, max_pages, &error)) {
    return Error(ErrorKind::kInternal, "snapshot: " + error);
  }
  impl.instantiated = true;  // from here on ~Impl frees memory and table

  wasm_rt_allocate_funcref_table(&instance.w2c_T0, static_cast<uint32_t>(state.table.size()),
                                 state.table_max);
  for (size_t i = 0; i < state.table.size(); ++i) {
    wasm_rt_funcref_t entry = state.table[i];
    if (entry.module_instance == state.table_owner) entry.module_instance = &instance;
    instance.w2c_T0.data[i] = entry;
  }
  impl.wasi_import.memory = &instance.w2c_memory;
  impl.terrarium_import.memory = &instance.w2c_memory;
  impl.python_ready = true;
  impl.scratch = state.scratch;
  impl.scratch_capacity = state.scratch_capacity;
  return {};
}

// Page faults (minor and major) the calling thread has taken.
long thread_page_faults() {
  struct rusage usage {};
  if (getrusage(RUSAGE_THREAD, &usage) != 0) return -2;  // never equal: search
  return usage.ru_minflt + usage.ru_majflt;
}

// CPython 3.11's RandomObject: PyObject_HEAD (refcount, type: 8 bytes on
// wasm32), int index, uint32_t state[624]. Verified against getstate().
uint32_t find_random_state(Sandbox::Impl& impl, Sandbox& sandbox) {
  auto found = sandbox.call_json("__terrarium_random_state__", nullptr);
  if (!found || !found->is_array() || found->size() != 5) return 0;
  try {
    uint64_t object = (*found)[0].get<uint64_t>();
    wasm_rt_memory_t* memory = Z_pythonZ_memory(&impl.instance);
    if (object + 8 + 4 * 625 > memory->size) return 0;
    auto word = [&](uint64_t at) {
      uint32_t value;
      std::memcpy(&value, memory->data + at, 4);
      return value;
    };
    uint64_t index = object + 8, words = object + 12;
    if (word(index) != (*found)[1].get<uint32_t>() || word(words) != (*found)[2].get<uint32_t>() ||
        word(words + 4) != (*found)[3].get<uint32_t>() ||
        word(words + 4 * 623) != (*found)[4].get<uint32_t>()) {
      return 0;
    }
    return static_cast<uint32_t>(index);
  } catch (const std::exception&) {
    return 0;
  }
}

Result<void> reseed_if_needed(Sandbox::Impl& impl, const Snapshot::State& state) {
  if (!state.reseed_random) return {};
  if (uint32_t at = state.random_state_address) {
    // A fresh state from the kernel, as random.seed() would draw one; the
    // index says "used up", so the first draw regenerates the whole block.
    uint32_t words[624];
    size_t got = 0;
    while (got < sizeof words) {
      ssize_t n = getrandom(reinterpret_cast<char*>(words) + got, sizeof words - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Error(ErrorKind::kInternal, "getrandom failed reseeding the guest");
      got += static_cast<size_t>(n);
    }
    words[0] |= 0x80000000u;  // as init_by_array: the state is never all zero
    uint32_t index = 624;
    uint8_t* memory = impl.instance.w2c_memory.data;
    std::memcpy(memory + at, &index, 4);
    std::memcpy(memory + at + 4, words, sizeof words);
    return {};
  }
  return impl.call_export("__terrarium_reseed__", "null", bridge::kJson);
}

Result<std::unique_ptr<wasi::Wasi>> new_wasi(const wasi::WasiConfig& config) {
  try {
    return std::make_unique<wasi::Wasi>(config);
  } catch (const std::exception& e) {
    return Error(ErrorKind::kConfig, e.what());
  }
}

}  // namespace

Result<std::shared_ptr<const Snapshot>> Snapshot::capture(Sandbox& sandbox) {
  Sandbox::Impl& impl = *sandbox.impl_;
  if (auto ok = impl.usable(); !ok) return ok.error();
  if (!impl.python_ready) {
    return Error(ErrorKind::kConfig,
                 "capture needs a sandbox initialized for embedding (call initialize() first)");
  }
  if (impl.wasi->open_fds() != impl.wasi->initial_fds()) {
    return Error(ErrorKind::kConfig,
                 "the guest has " +
                     std::to_string(impl.wasi->open_fds() - impl.wasi->initial_fds()) +
                     " file(s) open; close them before taking a snapshot");
  }
  if (auto ok = sandbox.exec(kHelpers, "<terrarium snapshot>"); !ok) return ok.error();
  auto random_imported = sandbox.call_json("__terrarium_random_imported__", nullptr);
  if (!random_imported) return random_imported.error();

  auto state = std::make_shared<State>();
  std::string error;
  const Z_python_instance_t& instance = impl.instance;
  state->memory = engine::MemorySnapshot::capture(instance.w2c_memory, &error);
  if (!state->memory) return Error(ErrorKind::kInternal, "snapshot: " + error);
  state->stack_pointer = instance.w2c___stack_pointer;
  // The module's own maximum, not the sandbox's limit: clones apply theirs.
  state->module_max_pages = 65536;
  state->table.assign(instance.w2c_T0.data, instance.w2c_T0.data + instance.w2c_T0.size);
  state->table_max = instance.w2c_T0.max_size;
  state->table_owner = &instance;
  state->functions = impl.bridge.functions();
  state->scratch = impl.scratch;
  state->scratch_capacity = impl.scratch_capacity;
  state->reseed_random = random_imported->get<bool>();
  if (state->reseed_random) state->random_state_address = find_random_state(impl, sandbox);
  return std::make_shared<const Snapshot>(impl.config, std::move(state));
}

uint64_t Snapshot::memory_bytes() const { return state_->memory->bytes(); }

Result<std::unique_ptr<Sandbox>> Snapshot::new_sandbox(const SandboxConfig& config) const {
  initialize_module_once();
  SandboxConfig merged = config_;
  merged.stdin_fd = config.stdin_fd;
  merged.stdin_data = config.stdin_data;
  merged.stdout_output = config.stdout_output;
  merged.stderr_output = config.stderr_output;
  merged.limits = config.limits;
  if (&config != &config_ && !config.mounts.empty()) {
    if (config.mounts.size() != config_.mounts.size()) {
      return Error(ErrorKind::kConfig, "the snapshot has " + std::to_string(config_.mounts.size()) +
                                           " mounts; the config gives " +
                                           std::to_string(config.mounts.size()));
    }
    for (size_t i = 0; i < config.mounts.size(); ++i) {
      const Mount& want = config_.mounts[i];
      const Mount& got = config.mounts[i];
      if (want.guest_path != got.guest_path || want.read_only != got.read_only) {
        return Error(ErrorKind::kConfig, "mount " + std::to_string(i + 1) + " is '" +
                                             got.guest_path + "' but the snapshot has '" +
                                             want.guest_path + "'" +
                                             (want.read_only ? " (read-only)" : ""));
      }
      merged.mounts[i].host_path = got.host_path;
    }
  }
  auto wasi_config = make_wasi_config(merged);
  if (!wasi_config) return wasi_config.error();

  auto impl = std::make_unique<Sandbox::Impl>();
  impl->config = std::move(merged);
  impl->wasi_config = *wasi_config;
  auto wasi = new_wasi(impl->wasi_config);
  if (!wasi) return wasi.error();
  impl->wasi = std::move(*wasi);
  impl->wasi_import.wasi = impl->wasi.get();
  impl->terrarium_import.bridge = &impl->bridge;
  impl->bridge.set_functions(state_->functions);
  if (auto ok = restore_instance(*impl, *state_); !ok) return ok.error();
  impl->snapshot = state_;
  if (auto ok = reseed_if_needed(*impl, *state_); !ok) return ok.error();
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

Result<void> Sandbox::reset(ResetStrategy strategy) {
  Impl& impl = *impl_;
  if (!impl.snapshot) {
    return Error(ErrorKind::kConfig, "reset() needs a sandbox made from a snapshot");
  }
  if (impl.bridge.in_host_function()) {
    return Error(ErrorKind::kHostError, "reset() from inside a host function of this sandbox");
  }
  const Snapshot::State& state = *impl.snapshot;
  std::string error;
  auto memory_strategy = strategy == ResetStrategy::kDropAllPages
                             ? engine::MemorySnapshot::ResetStrategy::kDropAllPages
                             : engine::MemorySnapshot::ResetStrategy::kCopyDirtyPages;
  // The page tables need no search when no page can have become private
  // since the last reset: the guest ran only on this thread, which took no
  // page fault since (a write to a shared page is a fault).
  pthread_t self = pthread_self();
  bool same_thread = impl.reset_thread_set && pthread_equal(self, impl.reset_thread);
  impl.private_pages.trusted =
      same_thread && !impl.foreign_entry && thread_page_faults() == impl.faults_after_reset;
  if (!state.memory->reset(&impl.instance.w2c_memory, &error, memory_strategy,
                           &impl.private_pages)) {
    impl.spent = true;
    return Error(ErrorKind::kInternal, "reset: " + error);
  }
  // Counted before anything else runs here: faults from now on (the reseed
  // below included) make the next reset search again.
  impl.reset_thread = self;
  impl.reset_thread_set = true;
  impl.foreign_entry = false;
  impl.faults_after_reset = thread_page_faults();
  impl.instance.w2c___stack_pointer = state.stack_pointer;
  // The guest has no table.set/table.grow (tests/bridge checks python.wasm),
  // so its table is as the snapshot left it; only the size is re-checked.
  if (impl.instance.w2c_T0.size != state.table.size()) {
    impl.spent = true;
    return Error(ErrorKind::kInternal, "reset: the guest's table changed size");
  }
  auto wasi = new_wasi(impl.wasi_config);
  if (!wasi) return wasi.error();
  impl.wasi = std::move(*wasi);
  impl.wasi_import.wasi = impl.wasi.get();
  impl.config.args = impl.wasi_config.args;  // undoes set_invocation
  impl.config.env = impl.wasi_config.env;
  impl.bridge.reset_call_state();
  impl.scratch = state.scratch;
  impl.scratch_capacity = state.scratch_capacity;
  impl.spent = false;
  impl.python_ready = true;
  return reseed_if_needed(impl, state);
}

Result<void> Snapshot::save(const std::string& path) const {
  std::string temporary = path + ".tmp";
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error(ErrorKind::kConfig,
                 "cannot write snapshot '" + path + "': " + std::strerror(errno));
  }
  nlohmann::json header = {{"guest", std::string(terrarium_guest_hash)},
                           {"layout", layout_of(config_)},
                           {"stack_pointer", state_->stack_pointer},
                           {"memory_bytes", state_->memory->bytes()},
                           {"scratch", state_->scratch},
                           {"scratch_capacity", state_->scratch_capacity},
                           {"reseed_random", state_->reseed_random},
                           {"random_state_address", state_->random_state_address}};
  std::string text = header.dump();
  uint32_t length = static_cast<uint32_t>(text.size());
  std::string error;
  bool ok = write(fd, kMagic, sizeof kMagic) == sizeof kMagic &&
            write(fd, &length, sizeof length) == sizeof length &&
            write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            state_->memory->write_to(fd, &error);
  if (close(fd) != 0) ok = false;
  if (!ok || rename(temporary.c_str(), path.c_str()) != 0) {
    unlink(temporary.c_str());
    return Error(ErrorKind::kInternal,
                 "writing snapshot '" + path + "' failed" + (error.empty() ? "" : ": " + error));
  }
  return {};
}

Result<std::shared_ptr<const Snapshot>> Snapshot::load(const std::string& path,
                                                       const SandboxConfig& config) {
  initialize_module_once();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error(ErrorKind::kNotFound,
                 "cannot open snapshot '" + path + "': " + std::strerror(errno));
  }
  auto fail = [&](const std::string& what) -> Error {
    close(fd);
    return Error(ErrorKind::kConfig, "snapshot '" + path + "': " + what);
  };
  char magic[sizeof kMagic];
  uint32_t length = 0;
  if (read(fd, magic, sizeof magic) != sizeof magic ||
      std::memcmp(magic, kMagic, sizeof magic) != 0) {
    return fail("not a Terrarium snapshot file");
  }
  if (read(fd, &length, sizeof length) != sizeof length || length > (1u << 24)) {
    return fail("corrupt header");
  }
  std::string text(length, '\0');
  if (read(fd, text.data(), length) != static_cast<ssize_t>(length))
    return fail("truncated header");
  auto header = nlohmann::json::parse(text, nullptr, false);
  if (!header.is_object() || !header.contains("guest") || !header.contains("layout")) {
    return fail("corrupt header");
  }
  if (header["guest"] != std::string(terrarium_guest_hash)) {
    return fail("taken with a different guest build (guest hash " +
                header["guest"].get<std::string>().substr(0, 12) + ", this binary's " +
                std::string(terrarium_guest_hash).substr(0, 12) + ")");
  }
  nlohmann::json want = layout_of(config);
  for (const char* part : {"args", "env", "mounts", "files"}) {
    if (header["layout"][part] != want[part]) {
      return fail(std::string("taken with different ") + part + " (" +
                  header["layout"][part].dump() + ", the config gives " + want[part].dump() + ")");
    }
  }
  auto state = std::make_shared<State>();
  std::string error;
  try {
    state->stack_pointer = header.at("stack_pointer").get<uint32_t>();
    state->scratch = header.at("scratch").get<uint32_t>();
    state->scratch_capacity = header.at("scratch_capacity").get<uint32_t>();
    state->reseed_random = header.at("reseed_random").get<bool>();
    state->random_state_address = header.value("random_state_address", 0u);
    state->memory =
        engine::MemorySnapshot::read_from(fd, header.at("memory_bytes").get<uint64_t>(), &error);
  } catch (const std::exception& e) {
    return fail(std::string("corrupt header: ") + e.what());
  }
  close(fd);
  if (!state->memory) return Error(ErrorKind::kConfig, "snapshot '" + path + "': " + error);

  // The table (function pointers of this very process) comes from a fresh
  // instance: the guest never changes its table after instantiation.
  Z_python_instance_t fresh{};
  Z_terrarium_instance_t terrarium_import{};
  Z_wasi_snapshot_preview1_instance_t wasi_import{};
  auto instantiate = [&] { Z_python_instantiate(&fresh, &terrarium_import, &wasi_import); };
  if (!engine::guarded(instantiate).ok()) {
    return Error(ErrorKind::kInternal, "snapshot: instantiating the guest failed");
  }
  state->table.assign(fresh.w2c_T0.data, fresh.w2c_T0.data + fresh.w2c_T0.size);
  state->table_max = fresh.w2c_T0.max_size;
  state->table_owner = &fresh;
  Z_python_free(&fresh);
  return std::make_shared<const Snapshot>(config, std::move(state));
}

// --- Pool -------------------------------------------------------------------

Result<std::unique_ptr<Pool>> Pool::create(std::shared_ptr<const Snapshot> snapshot,
                                           Options options) {
  if (!snapshot) return Error(ErrorKind::kConfig, "Pool::create needs a snapshot");
  std::unique_ptr<Pool> pool(new Pool(std::move(snapshot), std::move(options)));
  for (size_t i = 0; i < pool->options_.prefill; ++i) {
    auto sandbox = pool->snapshot_->new_sandbox(pool->options_.config);
    if (!sandbox) return sandbox.error();
    pool->idle_.push_back(std::move(*sandbox));
  }
  return pool;
}

Result<Pool::Lease> Pool::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      std::unique_ptr<Sandbox> sandbox = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(sandbox));
    }
  }
  auto sandbox = snapshot_->new_sandbox(options_.config);
  if (!sandbox) return sandbox.error();
  return Lease(this, std::move(*sandbox));
}

size_t Pool::idle() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

void Pool::give_back(std::unique_ptr<Sandbox> sandbox) {
  {
    std::lock_guard lock(mutex_);
    if (idle_.size() >= options_.max_idle) return;  // destroyed outside the lock
  }
  // A reset restores everything the guest could have changed, even after a
  // trap; a sandbox that cannot be reset is dropped.
  if (!sandbox->reset(options_.reset_strategy).ok()) return;
  std::lock_guard lock(mutex_);
  if (idle_.size() < options_.max_idle) idle_.push_back(std::move(sandbox));
}

Pool::Lease::~Lease() {
  if (pool_ && sandbox_) pool_->give_back(std::move(sandbox_));
}

}  // namespace terrarium
