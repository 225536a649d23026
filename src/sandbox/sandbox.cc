// Sandbox: a CPython guest instance with its WASI state.
#include "terrarium/sandbox.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "engine/guarded_call.h"
#include "python_wasm.h"
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

Error trap_error(const engine::TrapOutcome& outcome) {
  switch (outcome.kind) {
    case engine::TrapKind::kHostAbort:
      return Error(ErrorKind::kLimit, outcome.message);
    case engine::TrapKind::kDeadline:
      return Error(ErrorKind::kTimeout, "deadline exceeded");
    default:
      return Error(ErrorKind::kTrap,
                   std::string("guest trapped: ") + engine::trap_name(outcome.kind) + " in python.wasm");
  }
}

}  // namespace

struct Sandbox::Impl {
  SandboxConfig config;
  std::unique_ptr<wasi::Wasi> wasi;
  Z_wasi_snapshot_preview1_instance_t wasi_import{};
  Z_python_instance_t instance{};
  bool instantiated = false;
  bool spent = false;

  ~Impl() {
    if (instantiated) Z_python_free(&instance);
  }

  // Every entry into the guest goes through here: it is where deadlines are
  // armed and where a trap marks the sandbox as spent.
  template <typename Body>
  engine::TrapOutcome enter_guest(Body& body) {
    // The generated code addresses linear memory through %gs (see
    // tools/split_wasm2c.py --rewrite gs): enter with this instance's base.
    void* base = instantiated ? Z_pythonZ_memory(&instance)->data : nullptr;
    engine::TrapOutcome outcome = engine::guarded(body, base);
    if (!outcome.ok()) spent = true;
    return outcome;
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

  Impl* raw = impl.get();
  auto instantiate = [raw] {
    Z_python_instantiate(&raw->instance, &raw->wasi_import);
    raw->instantiated = true;
    raw->wasi_import.memory = Z_pythonZ_memory(&raw->instance);
    engine::set_guest_memory_base(raw->wasi_import.memory->data);
  };
  engine::TrapOutcome outcome = impl->enter_guest(instantiate);
  if (!outcome.ok()) return trap_error(outcome);

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
  if (!outcome.ok()) return trap_error(outcome);
  return std::unique_ptr<Sandbox>(new Sandbox(std::move(impl)));
}

Result<int> Sandbox::run_main() {
  if (impl_->spent) return Error(ErrorKind::kGuestError, "sandbox was already used up by a trap or exit");
  int status = 0;
  Impl* raw = impl_.get();
  auto body = [raw, &status] { status = static_cast<int>(Z_pythonZ_terrarium_main(&raw->instance)); };
  engine::TrapOutcome outcome = impl_->enter_guest(body);
  impl_->spent = true;  // CPython's main finalizes the interpreter
  if (outcome.kind == engine::TrapKind::kExit) return outcome.exit_status;
  if (!outcome.ok()) return trap_error(outcome);
  return status;
}

}  // namespace terrarium
