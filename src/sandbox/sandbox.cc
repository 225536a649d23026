// Sandbox: a CPython guest instance with its WASI state.
#include "terrarium/sandbox.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "bridge/bridge.h"
#include "engine/deadline.h"
#include "engine/guarded_call.h"
#include "python_wasm.h"
#include "terrarium/runtime.h"
#include "wasi/image.h"
#include "wasi/wasi.h"
#include "wasi/wasi_imports.h"

namespace terrarium {
namespace {

constexpr const char* kStdlibGuestPath = "/usr/local/lib/python3.11";

void initialize_module_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    wasm_rt_init();
    Z_python_init_module();
  });
}

std::shared_ptr<const wasi::Image> stdlib_image() {
  // The image lives for the whole process; share it without copying.
  static std::shared_ptr<const wasi::Image> image(&wasi::embedded_stdlib_image(),
                                                  [](const wasi::Image*) {});
  return image;
}

// Normalizes an absolute guest path ("/a//b/./c/" -> "/a/b/c"); refuses '..'.
std::optional<std::string> normalize_guest_path(const std::string& path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (part == "..") return std::nullopt;
    if (!part.empty() && part != ".") out += "/" + part;
    i = j + 1;
  }
  return out.empty() ? "/" : out;
}

}  // namespace

// Guest buffers up to this size are kept between calls (the scratch buffer);
// larger ones are allocated for one call.
constexpr uint32_t kScratchLimit = 1u << 20;

struct Sandbox::Impl {
  SandboxConfig config;
  std::unique_ptr<wasi::Wasi> wasi;
  Z_wasi_snapshot_preview1_instance_t wasi_import{};
  bridge::Bridge bridge;
  Z_terrarium_instance_t terrarium_import{};
  Z_python_instance_t instance{};
  bool instantiated = false;
  bool spent = false;
  bool ran_main = false;
  bool python_ready = false;
  uint32_t scratch = 0;  // guest pointer of the scratch buffer
  uint32_t scratch_capacity = 0;

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
    engine::TrapOutcome outcome;
    {
      engine::DeadlineScope deadline(config.limits.timeout, config.limits.cpu_timeout);
      outcome = engine::guarded(body);
    }
    if (!outcome.ok()) spent = true;
    return outcome;
  }

  Error trap_error(const engine::TrapOutcome& outcome) const {
    switch (outcome.kind) {
      case engine::TrapKind::kHostAbort:
        return Error(ErrorKind::kLimit, outcome.message);
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
          return Error(ErrorKind::kTrap,
                       "guest trapped: call stack exhausted (guest C stack overflow) in python.wasm");
        }
        [[fallthrough]];
      default:
        return Error(ErrorKind::kTrap, std::string("guest trapped: ") +
                                           engine::trap_name(outcome.kind) + " in python.wasm");
    }
  }
};

Sandbox::Sandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sandbox::~Sandbox() = default;

Result<std::unique_ptr<Sandbox>> Sandbox::create(SandboxConfig config) {
  initialize_module_once();
  wasi::WasiConfig wasi_config;
  wasi_config.args = config.args;
  if (wasi_config.args.empty()) wasi_config.args.push_back("python");
  wasi_config.env = config.env;
  for (const auto& entry : config.env) {
    if (entry.find('=') == std::string::npos || entry[0] == '=') {
      return Error(ErrorKind::kConfig, "environment entry '" + entry + "' is not KEY=VALUE");
    }
  }
  wasi_config.image_mounts.push_back({stdlib_image(), kStdlibGuestPath});

  // Virtual files: one in-memory tree per directory.
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> virtual_dirs;
  for (const auto& file : config.files) {
    auto path = normalize_guest_path(file.guest_path);
    if (!path || *path == "/") {
      return Error(ErrorKind::kConfig, "virtual file path '" + file.guest_path +
                                           "' must be an absolute path without '..'");
    }
    size_t slash = path->rfind('/');
    std::string dir = slash == 0 ? "/" : path->substr(0, slash);
    virtual_dirs[dir].emplace_back(path->substr(slash + 1), file.contents);
  }
  for (auto& [dir, files] : virtual_dirs) {
    wasi_config.image_mounts.push_back(
        {std::make_shared<const wasi::Image>(wasi::Image::from_files(files)), dir});
  }

  for (const auto& mount : config.mounts) {
    auto guest = normalize_guest_path(mount.guest_path);
    if (!guest) {
      return Error(ErrorKind::kConfig, "mount '" + mount.host_path + "::" + mount.guest_path +
                                           "': the guest path must be absolute, without '..'");
    }
    struct stat info {};
    if (stat(mount.host_path.c_str(), &info) != 0) {
      return Error(ErrorKind::kConfig,
                   "mount '" + mount.host_path + "': host directory does not exist");
    }
    if (!S_ISDIR(info.st_mode)) {
      return Error(ErrorKind::kConfig, "mount '" + mount.host_path + "': not a directory");
    }
    wasi_config.mounts.push_back({mount.host_path, *guest, mount.read_only});
  }
  wasi_config.stdin_fd = config.stdin_fd;
  wasi_config.interrupted = [] { return engine::interrupt_pending(); };
  wasi_config.stdout_sink = {config.stdout_output.host_fd, config.stdout_output.callback};
  wasi_config.stderr_sink = {config.stderr_output.host_fd, config.stderr_output.callback};
  const Limits& limits = config.limits;
  if (limits.max_output_bytes) wasi_config.limits.max_output_bytes = limits.max_output_bytes;
  if (limits.max_open_files) wasi_config.limits.max_open_files = limits.max_open_files;
  if (limits.max_written_bytes) wasi_config.limits.max_written_bytes = limits.max_written_bytes;

  auto impl = std::make_unique<Impl>();
  try {
    impl->wasi = std::make_unique<wasi::Wasi>(std::move(wasi_config));
  } catch (const std::exception& e) {
    return Error(ErrorKind::kConfig, e.what());
  }
  impl->config = std::move(config);
  impl->wasi_import.wasi = impl->wasi.get();
  impl->terrarium_import.bridge = &impl->bridge;

  Impl* raw = impl.get();
  auto instantiate = [raw] {
    Z_python_instantiate(&raw->instance, &raw->terrarium_import, &raw->wasi_import);
    raw->instantiated = true;
    raw->wasi_import.memory = Z_pythonZ_memory(&raw->instance);
    raw->terrarium_import.memory = Z_pythonZ_memory(&raw->instance);
  };
  engine::TrapOutcome outcome = impl->enter_guest(instantiate);
  if (!outcome.ok()) return impl->trap_error(outcome);

  if (uint64_t max_bytes = impl->config.limits.max_memory_bytes) {
    wasm_rt_memory_t* memory = Z_pythonZ_memory(&impl->instance);
    uint64_t max_pages = max_bytes / 65536;
    if (max_pages < memory->pages) {
      return Error(ErrorKind::kConfig, "memory limit of " + std::to_string(max_bytes) +
                                           " bytes is below the guest's initial " +
                                           std::to_string(uint64_t{memory->pages} * 65536) +
                                           " bytes");
    }
    memory->max_pages = static_cast<uint32_t>(std::min<uint64_t>(memory->max_pages, max_pages));
  }

  // C constructors of the guest (WASI reactor initialization).
  auto initialize = [raw] { Z_pythonZ__initialize(&raw->instance); };
  outcome = impl->enter_guest(initialize);
  if (!outcome.ok()) return impl->trap_error(outcome);
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

Result<int> Sandbox::run_main() {
  if (impl_->spent) return Error(ErrorKind::kGuestError, "sandbox was already used up by a trap or exit");
  if (impl_->python_ready) {
    return Error(ErrorKind::kGuestError, "run_main() on a sandbox initialized for embedding");
  }
  impl_->ran_main = true;
  int status = 0;
  Impl* raw = impl_.get();
  auto body = [raw, &status] { status = static_cast<int>(Z_pythonZ_terrarium_main(&raw->instance)); };
  engine::TrapOutcome outcome = impl_->enter_guest(body);
  impl_->spent = true;  // CPython's main finalizes the interpreter
  if (outcome.kind == engine::TrapKind::kExit) return outcome.exit_status;
  if (!outcome.ok()) return impl_->trap_error(outcome);
  return status;
}

Result<void> Sandbox::initialize() {
  if (auto ok = impl_->usable(); !ok) return ok.error();
  return impl_->ensure_python();
}

bool Sandbox::spent() const { return impl_->spent; }

Result<void> Sandbox::define(std::string name, HostFunction function) {
  if (impl_->bridge.in_host_function()) {
    return Error(ErrorKind::kHostError, "define() inside a host function of the same sandbox");
  }
  if (!function) return Error(ErrorKind::kConfig, "define('" + name + "'): empty function");
  impl_->bridge.define(std::move(name),
                       {[function = std::move(function)](std::string_view payload) {
                          return function(std::string(payload));
                        },
                        false});
  return {};
}

Result<void> Sandbox::define_json(std::string name, JsonHostFunction function) {
  if (impl_->bridge.in_host_function()) {
    return Error(ErrorKind::kHostError, "define_json() inside a host function of the same sandbox");
  }
  if (!function) return Error(ErrorKind::kConfig, "define_json('" + name + "'): empty function");
  impl_->bridge.define(std::move(name),
                       {[function = std::move(function)](std::string_view payload) {
                          return function(nlohmann::json::parse(payload))
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
                        },
                        true});
  return {};
}

Result<void> Sandbox::define_json_text(std::string name, HostFunction function) {
  if (impl_->bridge.in_host_function()) {
    return Error(ErrorKind::kHostError,
                 "define_json_text() inside a host function of the same sandbox");
  }
  if (!function)
    return Error(ErrorKind::kConfig, "define_json_text('" + name + "'): empty function");
  impl_->bridge.define(std::move(name),
                       {[function = std::move(function)](std::string_view payload) {
                          return function(std::string(payload));
                        },
                        true});
  return {};
}

Result<void> Sandbox::exec(std::string_view code, std::string_view filename) {
  Impl* impl = impl_.get();
  if (auto ok = impl->usable(); !ok) return ok.error();
  if (auto ok = impl->ensure_python(); !ok) return ok.error();
  bool owned = false;
  auto pointer = impl->stage(code, filename, &owned);
  if (!pointer) return pointer.error();
  uint32_t base = *pointer;
  auto code_len = static_cast<uint32_t>(code.size());
  auto name_len = static_cast<uint32_t>(filename.size());
  uint32_t status = 0;
  auto body = [impl, base, code_len, name_len, &status] {
    status = Z_pythonZ_terrarium_exec(&impl->instance, base, code_len, base + code_len, name_len);
  };
  auto ran = impl->run_export(body, owned ? base : 0);
  if (!ran) return ran.error();
  if (status != 0 || !impl->bridge.has_result() || impl->bridge.result_kind() != bridge::kJson) {
    return impl->guest_error("exec of '" + std::string(filename) + "'",
                             static_cast<int32_t>(status));
  }
  return {};
}

Result<void> Sandbox::exec_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Error(ErrorKind::kNotFound, "cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream contents;
  contents << in.rdbuf();
  return exec(contents.str(), path);
}

Result<std::string> Sandbox::call(std::string_view name, std::string_view payload) {
  if (auto ok = impl_->call_export(name, payload, bridge::kBytes); !ok) return ok.error();
  return std::move(impl_->bridge.result());
}

Result<std::string> Sandbox::call_json_text(std::string_view name, std::string_view json_text) {
  if (auto ok = impl_->call_export(name, json_text, bridge::kJson); !ok) return ok.error();
  if (impl_->bridge.result_kind() != bridge::kJson) {
    return Error(ErrorKind::kGuestError,
                 "export '" + std::string(name) + "' returned bytes where JSON was expected");
  }
  return std::move(impl_->bridge.result());
}

Result<nlohmann::json> Sandbox::call_json(std::string_view name, const nlohmann::json& value) {
  std::string text;
  try {
    text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  } catch (const std::exception& e) {
    return Error(ErrorKind::kConfig,
                 std::string("call_json: cannot serialize the argument: ") + e.what());
  }
  auto result = call_json_text(name, text);
  if (!result) return result.error();
  auto parsed = nlohmann::json::parse(*result, nullptr, false);
  if (parsed.is_discarded()) {
    return Error(ErrorKind::kGuestError,
                 "export '" + std::string(name) + "' returned invalid JSON");
  }
  return parsed;
}

Result<std::shared_ptr<Runtime>> Runtime::create() {
  initialize_module_once();
  return std::shared_ptr<Runtime>(new Runtime());
}

Result<std::unique_ptr<Sandbox>> Runtime::new_sandbox(SandboxConfig config) const {
  auto sandbox = Sandbox::create(std::move(config));
  if (!sandbox) return sandbox.error();
  if (auto ok = (*sandbox)->initialize(); !ok) return ok.error();
  return sandbox;
}

}  // namespace terrarium
