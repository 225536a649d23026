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
#include "sandbox/sandbox_impl.h"
#include "terrarium/runtime.h"
#include "wasi/image.h"
#include "wasi/wasi.h"
#include "wasi/wasi_imports.h"

namespace terrarium {
namespace {

constexpr const char* kStdlibGuestPath = "/usr/local/lib/python3.11";

}  // namespace

void initialize_module_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    wasm_rt_init();
    Z_python_init_module();
  });
}

namespace {

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

Result<void> check_env(const std::vector<std::string>& env) {
  for (const auto& entry : env) {
    if (entry.find('=') == std::string::npos || entry[0] == '=') {
      return Error(ErrorKind::kConfig, "environment entry '" + entry + "' is not KEY=VALUE");
    }
  }
  return {};
}

}  // namespace

Sandbox::Sandbox(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Sandbox::~Sandbox() = default;

// The WASI configuration of a sandbox: its mounts (checked), streams, limits.
Result<wasi::WasiConfig> make_wasi_config(const SandboxConfig& config) {
  wasi::WasiConfig wasi_config;
  wasi_config.args = config.args;
  if (wasi_config.args.empty()) wasi_config.args.push_back("python");
  wasi_config.env = config.env;
  if (auto ok = check_env(config.env); !ok) return ok.error();
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
  if (config.stdin_fd < 0 && !config.stdin_data.empty()) {
    wasi_config.stdin_data = std::make_shared<const std::string>(config.stdin_data);
  }
  wasi_config.interrupted = [] { return engine::interrupt_pending(); };
  wasi_config.stdout_sink = {config.stdout_output.host_fd, config.stdout_output.callback};
  wasi_config.stderr_sink = {config.stderr_output.host_fd, config.stderr_output.callback};
  const Limits& limits = config.limits;
  if (limits.max_output_bytes) wasi_config.limits.max_output_bytes = limits.max_output_bytes;
  if (limits.max_open_files) wasi_config.limits.max_open_files = limits.max_open_files;
  if (limits.max_written_bytes) wasi_config.limits.max_written_bytes = limits.max_written_bytes;
  // A read-only root holding just the directories that lead to the mounts:
  // a path outside every mount then does not exist (FileNotFoundError, as a
  // program expects) instead of being refused, and `os.listdir("/")` shows
  // the mount points. Listed last, so the stdlib stays the first preopen.
  std::vector<std::pair<std::string, std::string>> skeleton;
  bool root_mounted = false;
  auto add_skeleton = [&](const std::string& guest_path) {
    if (guest_path == "/")
      root_mounted = true;
    else
      skeleton.emplace_back(guest_path.substr(1) + "/", "");
  };
  for (const auto& mount : wasi_config.image_mounts) add_skeleton(mount.guest_path);
  for (const auto& mount : wasi_config.mounts) add_skeleton(mount.guest_path);
  if (!root_mounted) {
    wasi_config.image_mounts.push_back(
        {std::make_shared<const wasi::Image>(wasi::Image::from_files(skeleton)), "/"});
  }
  return wasi_config;
}

Result<std::unique_ptr<Sandbox>> Sandbox::create(SandboxConfig config) {
  initialize_module_once();
  auto wasi_config = make_wasi_config(config);
  if (!wasi_config) return wasi_config.error();
  auto impl = std::make_unique<Impl>();
  impl->wasi_config = *wasi_config;
  try {
    impl->wasi = std::make_unique<wasi::Wasi>(std::move(*wasi_config));
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
    engine::set_guest_memory_base(raw->wasi_import.memory->data);
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
  if (impl_->spent)
    return Error(ErrorKind::kGuestError, "sandbox was already used up by a trap or exit");
  if (impl_->python_ready) {
    return Error(ErrorKind::kGuestError, "run_main() on a sandbox initialized for embedding");
  }
  impl_->ran_main = true;
  int status = 0;
  Impl* raw = impl_.get();
  auto body = [raw, &status] {
    status = static_cast<int>(Z_pythonZ_terrarium_main(&raw->instance));
  };
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

bool Sandbox::interrupt() noexcept { return impl_->interrupts.interrupt(); }

Result<void> Sandbox::set_invocation(Invocation invocation) {
  Impl* impl = impl_.get();
  if (auto ok = impl->usable(); !ok) return ok.error();
  if (auto ok = check_env(invocation.env); !ok) return ok.error();
  std::string payload;
  if (impl->python_ready) {
    // What the guest's Python must be told, as bytes (docs/abi.md): whether
    // stdin was read, the args, the environment, NUL-separated.
    for (const auto& list : {&invocation.args, &invocation.env}) {
      for (const std::string& item : *list) {
        if (item.find('\0') != std::string::npos) {
          return Error(ErrorKind::kConfig, "argument or environment entry with a NUL byte: '" +
                                               item.substr(0, item.find('\0')) + "\\0...'");
        }
      }
    }
    payload = std::string(impl->wasi->stdin_was_read() ? "1 " : "0 ") +
              std::to_string(invocation.args.size()) + " " + std::to_string(invocation.env.size()) +
              '\0';
    for (const auto& list : {&invocation.args, &invocation.env}) {
      for (const std::string& item : *list) {
        payload += item;
        payload += '\0';
      }
    }
  } else if (impl->ran_main) {
    return Error(ErrorKind::kGuestError, "run_main() finalized this sandbox's interpreter");
  }
  std::shared_ptr<const std::string> stdin_data;
  if (invocation.stdin_fd < 0 && !invocation.stdin_data.empty()) {
    stdin_data = std::make_shared<const std::string>(std::move(invocation.stdin_data));
  }
  // A sandbox that has not started Python yet reads all of this at start.
  impl->config.args = invocation.args;
  impl->config.env = invocation.env;
  impl->wasi->set_invocation(
      std::move(invocation.args), std::move(invocation.env), invocation.stdin_fd,
      std::move(stdin_data),
      {invocation.stdout_output.host_fd, std::move(invocation.stdout_output.callback)},
      {invocation.stderr_output.host_fd, std::move(invocation.stderr_output.callback)});
  if (payload.empty()) return {};
  return impl->call_export("__terrarium_set_invocation__", payload, bridge::kBytes);
}

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
