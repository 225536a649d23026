// terrarium._native: the pybind11 core under the host-side `terrarium`
// package (python/terrarium/__init__.py holds the public API). Values cross
// as JSON text or bytes; the GIL is released while a guest runs and taken
// again for a Python host function.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"
#include "terrarium/snapshot.h"

namespace py = pybind11;

namespace {

std::shared_ptr<terrarium::Runtime> shared_runtime() {
  static std::once_flag once;
  static std::shared_ptr<terrarium::Runtime> runtime;
  static std::string failure;
  std::call_once(once, [] {
    auto created = terrarium::Runtime::create();
    if (created) {
      runtime = *created;
    } else {
      failure = created.error().to_string();
    }
  });
  if (!runtime) throw std::runtime_error("terrarium: the runtime did not start: " + failure);
  return runtime;
}

// A failure as a tuple the Python layer turns into its exception classes:
// (kind, message, details, python_type).
struct Failure : std::exception {
  explicit Failure(const terrarium::Error& error) : error(error) {}
  terrarium::Error error;
  const char* what() const noexcept override { return error.message().c_str(); }
};

template <typename T>
T take(terrarium::Result<T> result) {
  if (!result) throw Failure(result.error());
  return std::move(*result);
}
void take(terrarium::Result<void> result) {
  if (!result) throw Failure(result.error());
}

terrarium::SandboxConfig make_config(const py::dict& spec) {
  terrarium::SandboxConfig config;
  config.args = {"terrarium"};
  for (auto entry : spec["mounts"].cast<py::list>()) {
    auto mount = entry.cast<py::tuple>();
    config.mounts.push_back(
        {mount[0].cast<std::string>(), mount[1].cast<std::string>(), !mount[2].cast<bool>()});
  }
  for (auto entry : spec["env"].cast<py::list>()) config.env.push_back(entry.cast<std::string>());
  for (auto item : spec["files"].cast<py::dict>()) {
    config.files.push_back(
        {item.first.cast<std::string>(), std::string(item.second.cast<py::bytes>())});
  }
  py::dict limits = spec["limits"].cast<py::dict>();
  config.limits.timeout = std::chrono::milliseconds(limits["timeout_ms"].cast<int64_t>());
  config.limits.max_memory_bytes = limits["memory"].cast<uint64_t>();
  config.limits.max_output_bytes = limits["output"].cast<uint64_t>();
  return config;
}

class NativeSandbox {
 public:
  explicit NativeSandbox(std::unique_ptr<terrarium::Sandbox> sandbox)
      : sandbox_(std::move(sandbox)) {}

  static std::unique_ptr<NativeSandbox> create(const py::dict& spec) {
    terrarium::SandboxConfig config = make_config(spec);
    auto runtime = shared_runtime();
    std::unique_ptr<terrarium::Sandbox> sandbox;
    {
      py::gil_scoped_release released;
      sandbox = take(runtime->new_sandbox(std::move(config)));
    }
    return std::make_unique<NativeSandbox>(std::move(sandbox));
  }

  // `function(json_text) -> json_text`; an exception becomes the guest's
  // HostError with its message (the Python layer keeps the traceback).
  void define(const std::string& name, py::function function) {
    auto holder = std::make_shared<py::function>(std::move(function));
    take(sandbox_->define_json_text(name, [holder](const std::string& payload) -> std::string {
      py::gil_scoped_acquire acquired;
      try {
        return (*holder)(py::str(payload)).cast<std::string>();
      } catch (py::error_already_set& error) {
        std::string message = error.what();
        throw std::runtime_error(message);
      }
    }));
  }

  void exec(const std::string& code) {
    Busy busy(*this);
    py::gil_scoped_release released;
    take(sandbox_->exec(code, "<sandbox.exec>"));
  }

  std::string call(const std::string& name, const std::string& json_text) {
    Busy busy(*this);
    py::gil_scoped_release released;
    return take(sandbox_->call_json_text(name, json_text));
  }

  std::unique_ptr<class NativeSnapshot> snapshot();

  bool spent() const { return sandbox_->spent(); }
  terrarium::Sandbox& sandbox() { return *sandbox_; }

 private:
  // One caller at a time: a second thread, or a host function calling back
  // into its own sandbox, gets SandboxBusy instead of waiting.
  struct Busy {
    explicit Busy(NativeSandbox& owner) : owner_(owner) {
      if (owner_.busy_.exchange(true)) {
        throw Failure(terrarium::Error(terrarium::ErrorKind::kHostError,
                                       "busy: the sandbox is already running a call"));
      }
      if (owner_.sandbox_->spent()) {
        owner_.busy_ = false;
        throw Failure(terrarium::Error(terrarium::ErrorKind::kTrap,
                                       "the sandbox is spent (it trapped or hit a limit)"));
      }
    }
    ~Busy() { owner_.busy_ = false; }
    NativeSandbox& owner_;
  };
  std::unique_ptr<terrarium::Sandbox> sandbox_;
  std::atomic<bool> busy_{false};
  friend class NativeSnapshot;
};

class NativeSnapshot {
 public:
  explicit NativeSnapshot(std::shared_ptr<const terrarium::Snapshot> snapshot)
      : snapshot_(std::move(snapshot)) {}
  std::unique_ptr<NativeSandbox> sandbox() {
    py::gil_scoped_release released;
    return std::make_unique<NativeSandbox>(take(snapshot_->new_sandbox()));
  }
  void save(const std::string& path) { take(snapshot_->save(path)); }
  uint64_t memory_bytes() const { return snapshot_->memory_bytes(); }
  std::shared_ptr<const terrarium::Snapshot> snapshot_;
};

std::unique_ptr<NativeSnapshot> NativeSandbox::snapshot() {
  Busy busy(*this);
  py::gil_scoped_release released;
  return std::make_unique<NativeSnapshot>(take(terrarium::Snapshot::capture(*sandbox_)));
}

// A pool of sandboxes reset to the snapshot between uses.
class NativePool {
 public:
  NativePool(const NativeSnapshot& snapshot, size_t max_idle) {
    terrarium::Pool::Options options;
    options.max_idle = max_idle;
    options.config = snapshot.snapshot_->config();
    pool_ = take(terrarium::Pool::create(snapshot.snapshot_, std::move(options)));
  }
  // Runs one call on a pooled sandbox (reset afterwards).
  std::string call(const std::string& name, const std::string& json_text) {
    py::gil_scoped_release released;
    auto lease = take(pool_->acquire());
    return take(lease->call_json_text(name, json_text));
  }
  size_t idle() const { return pool_->idle(); }
  std::unique_ptr<class NativeLease> lease();

 private:
  std::unique_ptr<terrarium::Pool> pool_;
};

// One pooled sandbox held for several calls (`with pool.sandbox() as sb`);
// release() (or the end of the with block) resets it into the pool.
class NativeLease {
 public:
  explicit NativeLease(terrarium::Pool::Lease lease) : lease_(std::move(lease)) {}
  std::string call(const std::string& name, const std::string& json_text) {
    py::gil_scoped_release released;
    return take(held().call_json_text(name, json_text));
  }
  void exec(const std::string& code) {
    py::gil_scoped_release released;
    take(held().exec(code, "<sandbox.exec>"));
  }
  void release() {
    py::gil_scoped_release released;
    lease_.reset();
  }

 private:
  terrarium::Sandbox& held() {
    if (!lease_) {
      throw Failure(
          terrarium::Error(terrarium::ErrorKind::kConfig,
                           "the pooled sandbox was released (use it inside its with block)"));
    }
    return **lease_;
  }
  std::optional<terrarium::Pool::Lease> lease_;
};

std::unique_ptr<NativeLease> NativePool::lease() {
  py::gil_scoped_release released;
  return std::make_unique<NativeLease>(take(pool_->acquire()));
}

// `python -c CODE` in a fresh sandbox: (exit status, stdout, stderr) — the
// output is kept also when the guest fails.
py::tuple run(const py::dict& spec, const std::string& code, const py::bytes& stdin_bytes) {
  std::string stdin_data = stdin_bytes;
  terrarium::SandboxConfig config = make_config(spec);
  config.args = {"python", "-c", code};
  config.stdin_data = stdin_data;
  auto out = std::make_shared<std::string>(), err = std::make_shared<std::string>();
  config.stdout_output.callback = [out](std::string_view data) { out->append(data); };
  config.stderr_output.callback = [err](std::string_view data) { err->append(data); };
  terrarium::Result<int> status = 0;
  {
    py::gil_scoped_release released;
    auto sandbox = terrarium::Sandbox::create(std::move(config));
    status = sandbox ? (*sandbox)->run_main() : terrarium::Result<int>(sandbox.error());
  }
  py::object failure = py::none();
  if (!status) {
    const terrarium::Error& error = status.error();
    failure = py::make_tuple(terrarium::error_kind_name(error.kind()), error.message(),
                             error.details(), error.python_type());
  }
  return py::make_tuple(status ? *status : -1, py::bytes(*out), py::bytes(*err), failure);
}

}  // namespace

PYBIND11_MODULE(_native, module) {
  module.doc() = "Terrarium's native core (use the `terrarium` package)";
  static py::exception<Failure> failure_type(module, "NativeFailure");
  py::register_exception_translator([](std::exception_ptr pointer) {
    try {
      if (pointer) std::rethrow_exception(pointer);
    } catch (const Failure& failure) {
      const terrarium::Error& error = failure.error;
      py::tuple detail = py::make_tuple(terrarium::error_kind_name(error.kind()), error.message(),
                                        error.details(), error.python_type());
      // NativeFailure(detail): args[0] is the tuple the Python layer reads.
      PyErr_SetObject(failure_type.ptr(), py::make_tuple(detail).ptr());
    }
  });
  py::class_<NativeSandbox>(module, "Sandbox")
      .def(py::init(&NativeSandbox::create))
      .def("define", &NativeSandbox::define)
      .def("exec", &NativeSandbox::exec)
      .def("call", &NativeSandbox::call)
      .def("snapshot", &NativeSandbox::snapshot)
      .def_property_readonly("spent", &NativeSandbox::spent);
  py::class_<NativeSnapshot>(module, "Snapshot")
      .def("sandbox", &NativeSnapshot::sandbox)
      .def("save", &NativeSnapshot::save)
      .def_property_readonly("memory_bytes", &NativeSnapshot::memory_bytes);
  py::class_<NativePool>(module, "Pool")
      .def(py::init<const NativeSnapshot&, size_t>())
      .def("call", &NativePool::call)
      .def("lease", &NativePool::lease)
      .def_property_readonly("idle", &NativePool::idle);
  py::class_<NativeLease>(module, "Lease")
      .def("call", &NativeLease::call)
      .def("exec", &NativeLease::exec)
      .def("release", &NativeLease::release);
  module.def("run", &run);
}
