// terrarium._native: the pybind11 core under the host-side `terrarium`
// package (python/terrarium/__init__.py holds the public API). Values cross
// as JSON text or bytes; the GIL is released while a guest runs and taken
// again for a Python host function.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <signal.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

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

// Ctrl-C: Python's SIGINT handler only sets a flag that the main thread
// reads between bytecodes, which never come while a guest runs. So the first
// guest call on the main thread installs a handler in front of Python's: it
// interrupts the main thread's guest call, then runs Python's handler, and
// the caller raises KeyboardInterrupt when the call returns.
std::atomic<terrarium::Sandbox*> g_main_thread_call{nullptr};
std::thread::id g_main_thread;
struct sigaction g_python_sigint {};

void on_sigint(int signal, siginfo_t* info, void* context) {
  // Python's handler first: the interrupt below may unwind the guest (and
  // this handler) as soon as its signal is sent to this very thread.
  if (g_python_sigint.sa_flags & SA_SIGINFO) {
    g_python_sigint.sa_sigaction(signal, info, context);
  } else if (g_python_sigint.sa_handler != SIG_DFL && g_python_sigint.sa_handler != SIG_IGN) {
    g_python_sigint.sa_handler(signal);
  }
  if (terrarium::Sandbox* sandbox = g_main_thread_call.load()) sandbox->interrupt();
}

void install_sigint_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    sigaction(SIGINT, nullptr, &current);
    // Only in front of a handler (Python's): with SIG_DFL or SIG_IGN Ctrl-C
    // keeps doing what the program asked for.
    bool has_handler = (current.sa_flags & SA_SIGINFO) ||
                       (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN);
    if (!has_handler) return;
    g_python_sigint = current;
    struct sigaction ours {};
    ours.sa_sigaction = on_sigint;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    sigaction(SIGINT, &ours, nullptr);
  });
}

// The guest call running on this thread (innermost), and whether a host
// function of it was stopped by KeyboardInterrupt.
thread_local terrarium::Sandbox* t_running = nullptr;
thread_local bool t_keyboard_interrupt = false;

// While a guest call runs without the GIL: the sandbox is reachable for
// interrupt() (from `slot`), for its host functions, and, on the main
// thread, for Ctrl-C.
class GuestCall {
 public:
  GuestCall(terrarium::Sandbox& sandbox, std::atomic<terrarium::Sandbox*>* slot = nullptr)
      : slot_(slot),
        main_(std::this_thread::get_id() == g_main_thread),
        previous_(t_running),
        previous_main_(nullptr) {
    if (main_) {
      install_sigint_once();
      previous_main_ = g_main_thread_call.exchange(&sandbox);
    }
    if (slot_) slot_->store(&sandbox);
    if (previous_ == nullptr) t_keyboard_interrupt = false;  // an outermost call starts clean
    t_running = &sandbox;
  }
  ~GuestCall() {
    t_running = previous_;
    if (slot_) slot_->store(nullptr);
    if (main_) g_main_thread_call.store(previous_main_);
  }
  GuestCall(const GuestCall&) = delete;
  GuestCall& operator=(const GuestCall&) = delete;

 private:
  std::atomic<terrarium::Sandbox*>* slot_;
  bool main_;
  terrarium::Sandbox* previous_;
  terrarium::Sandbox* previous_main_;
  py::gil_scoped_release released_;
};

// An interrupted call caused by Ctrl-C (Python's handler runs now and
// raises) or by KeyboardInterrupt in a host function becomes
// KeyboardInterrupt in the caller.
void raise_keyboard_interrupt_if_caused(const terrarium::Error& error) {
  if (error.kind() != terrarium::ErrorKind::kInterrupted) return;
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  if (t_keyboard_interrupt) {
    t_keyboard_interrupt = false;
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
}
template <typename T>
T checked(terrarium::Result<T> result) {
  if (!result) raise_keyboard_interrupt_if_caused(result.error());
  return take(std::move(result));
}
void checked(terrarium::Result<void> result) {
  if (!result) raise_keyboard_interrupt_if_caused(result.error());
  take(std::move(result));
}

// A Python host function failed: its message for the guest's HostError. A
// KeyboardInterrupt (Ctrl-C while it ran) also stops the guest call, which
// then raises KeyboardInterrupt in the caller.
std::runtime_error host_function_failure(py::error_already_set& error) {
  if (error.matches(PyExc_KeyboardInterrupt) && t_running != nullptr) {
    t_keyboard_interrupt = true;
    t_running->interrupt();
  }
  // The exception's own text ("Type: message" from the Python layer), never
  // pybind11's what(), which appends the host's traceback (host paths are
  // not the guest's business; host_traceback() keeps it for the caller).
  std::string message = py::str(error.value());
  if (message.empty()) message = py::str(error.type().attr("__name__"));
  return std::runtime_error(message);
}

// A Python callable kept by a sandbox (host functions are copied into every
// sandbox made from a snapshot): dropped with the GIL held, wherever the
// last copy goes.
std::shared_ptr<py::function> keep(py::function function) {
  return std::shared_ptr<py::function>(new py::function(std::move(function)), [](py::function* f) {
    if (!Py_IsInitialized()) return;  // the interpreter is gone: nothing to release
    py::gil_scoped_acquire acquired;
    delete f;
  });
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
    auto holder = keep(std::move(function));
    take(sandbox_->define_json_text(name, [holder](const std::string& payload) -> std::string {
      py::gil_scoped_acquire acquired;
      try {
        return (*holder)(py::str(payload)).cast<std::string>();
      } catch (py::error_already_set& error) {
        throw host_function_failure(error);
      }
    }));
  }

  // `function(frame: bytes) -> bytes`: a host function on ARGUMENTS frames
  // (docs/abi.md), which the Python layer decodes and encodes.
  void define_frame(const std::string& name, py::function function) {
    auto holder = keep(std::move(function));
    take(sandbox_->define(name, [holder](const std::string& payload) -> std::string {
      py::gil_scoped_acquire acquired;
      try {
        return std::string((*holder)(py::bytes(payload)).cast<py::bytes>());
      } catch (py::error_already_set& error) {
        throw host_function_failure(error);
      }
    }));
  }

  void exec(const std::string& code) {
    Busy busy(*this);
    terrarium::Result<void> result;
    {
      GuestCall running(*sandbox_);
      result = sandbox_->exec(code, "<sandbox.exec>");
    }
    checked(std::move(result));
  }

  std::string call(const std::string& name, const std::string& json_text) {
    Busy busy(*this);
    terrarium::Result<std::string> result = std::string();
    {
      GuestCall running(*sandbox_);
      result = sandbox_->call_json_text(name, json_text);
    }
    return checked(std::move(result));
  }

  // `python -c CODE` in a fresh sandbox made from `spec`: (exit status,
  // stdout, stderr, failure) — the output is kept also when the guest fails.
  // With a callback, that stream goes to it (bytes, as written) instead.
  py::tuple run(const py::dict& spec, const std::string& code, const py::bytes& stdin_bytes,
                py::object on_stdout, py::object on_stderr);

  // From any thread: stops this sandbox's call (or run) running now.
  bool interrupt() {
    bool stopped = sandbox_->interrupt();
    std::lock_guard<std::mutex> lock(running_mutex_);
    if (terrarium::Sandbox* running = running_main_.load())
      stopped = running->interrupt() || stopped;
    return stopped;
  }

  std::unique_ptr<class NativeSnapshot> snapshot();

  bool spent() const { return sandbox_->spent(); }
  terrarium::Sandbox& sandbox() { return *sandbox_; }

 private:
  // One caller at a time: a second thread, or a host function calling back
  // into its own sandbox, gets SandboxBusy instead of waiting.
  struct Busy {
    explicit Busy(NativeSandbox& owner, bool allow_spent = false) : owner_(owner) {
      if (owner_.busy_.exchange(true)) {
        throw Failure(terrarium::Error(terrarium::ErrorKind::kHostError,
                                       "busy: the sandbox is already running a call"));
      }
      if (!allow_spent && owner_.sandbox_->spent()) {
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
  // The sandbox of a run() in progress, for interrupt(), which uses it with
  // the mutex held: run() takes the mutex once after clearing the pointer,
  // so no interrupt() still uses the sandbox when it is destroyed.
  std::atomic<terrarium::Sandbox*> running_main_{nullptr};
  std::mutex running_mutex_;
  friend class NativeSnapshot;
  friend class NativeLease;
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
  // A saved snapshot, given a config of its layout and its host functions
  // (not saved in the file): `define(native_sandbox)` defines them on one
  // sandbox, which is captured again so every sandbox made has them.
  static std::unique_ptr<NativeSnapshot> load(const std::string& path, const py::dict& spec,
                                              py::function define);
  uint64_t memory_bytes() const { return snapshot_->memory_bytes(); }
  std::shared_ptr<const terrarium::Snapshot> snapshot_;
};

std::unique_ptr<NativeSnapshot> NativeSnapshot::load(const std::string& path, const py::dict& spec,
                                                     py::function define) {
  terrarium::SandboxConfig config = make_config(spec);
  std::shared_ptr<const terrarium::Snapshot> loaded;
  std::unique_ptr<terrarium::Sandbox> sandbox;
  {
    py::gil_scoped_release released;
    loaded = take(terrarium::Snapshot::load(path, config));
    sandbox = take(loaded->new_sandbox());
  }
  auto native = std::make_unique<NativeSandbox>(std::move(sandbox));
  define(py::cast(native.get(), py::return_value_policy::reference));
  return native->snapshot();
}

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
    std::optional<terrarium::Pool::Lease> lease;
    {
      py::gil_scoped_release released;
      auto acquired = pool_->acquire();
      if (!acquired) throw Failure(acquired.error());  // Failure needs no GIL until translated
      lease.emplace(std::move(*acquired));
    }
    terrarium::Result<std::string> result = std::string();
    {
      GuestCall running(**lease);  // releases the GIL for the call
      result = (*lease)->call_json_text(name, json_text);
    }
    {
      py::gil_scoped_release released;
      lease.reset();  // reset into the pool
    }
    return checked(std::move(result));
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
    terrarium::Sandbox& sandbox = held();
    terrarium::Result<std::string> result = std::string();
    {
      GuestCall running(sandbox);
      result = sandbox.call_json_text(name, json_text);
    }
    return checked(std::move(result));
  }
  void exec(const std::string& code) {
    terrarium::Sandbox& sandbox = held();
    terrarium::Result<void> result;
    {
      GuestCall running(sandbox);
      result = sandbox.exec(code, "<sandbox.exec>");
    }
    checked(std::move(result));
  }
  bool interrupt() { return lease_ && (**lease_).interrupt(); }
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

// The output of run(): captured, or passed to a Python callback as written.
// A callback that raises gets no more output; its exception is raised when
// the run ends.
struct RunOutput {
  py::object callback;
  std::string captured;
  std::optional<py::error_already_set> failure;

  void write(std::string_view data) {
    if (callback.is_none()) {
      captured.append(data);
      return;
    }
    py::gil_scoped_acquire acquired;
    if (failure) return;
    try {
      callback(py::bytes(data.data(), data.size()));
    } catch (py::error_already_set& error) {
      failure.emplace(std::move(error));
    }
  }
};

py::tuple NativeSandbox::run(const py::dict& spec, const std::string& code,
                             const py::bytes& stdin_bytes, py::object on_stdout,
                             py::object on_stderr) {
  Busy busy(*this, /*allow_spent=*/true);
  std::string stdin_data = stdin_bytes;
  terrarium::SandboxConfig config = make_config(spec);
  config.args = {"python", "-c", code};
  config.stdin_data = stdin_data;
  auto out = std::make_shared<RunOutput>(), err = std::make_shared<RunOutput>();
  out->callback = std::move(on_stdout);
  err->callback = std::move(on_stderr);
  config.stdout_output.callback = [out](std::string_view data) { out->write(data); };
  config.stderr_output.callback = [err](std::string_view data) { err->write(data); };
  terrarium::Result<int> status = 0;
  std::unique_ptr<terrarium::Sandbox> sandbox;
  {
    py::gil_scoped_release released;
    auto created = terrarium::Sandbox::create(std::move(config));
    if (created) {
      sandbox = std::move(*created);
    } else {
      status = created.error();
    }
  }
  if (sandbox) {
    {
      GuestCall running(*sandbox, &running_main_);
      status = sandbox->run_main();
    }
    py::gil_scoped_release released;
    { std::lock_guard<std::mutex> barrier(running_mutex_); }
    sandbox.reset();
  }
  if (out->failure) throw std::move(*out->failure);
  if (err->failure) throw std::move(*err->failure);
  py::object failure = py::none();
  if (!status) {
    const terrarium::Error& error = status.error();
    raise_keyboard_interrupt_if_caused(error);
    failure = py::make_tuple(terrarium::error_kind_name(error.kind()), error.message(),
                             error.details(), error.python_type());
  }
  py::object stdout_value =
      out->callback.is_none() ? py::object(py::bytes(out->captured)) : py::none();
  py::object stderr_value =
      err->callback.is_none() ? py::object(py::bytes(err->captured)) : py::none();
  return py::make_tuple(status ? *status : -1, stdout_value, stderr_value, failure);
}

}  // namespace

PYBIND11_MODULE(_native, module) {
  module.doc() = "Terrarium's native core (use the `terrarium` package)";
  // The thread Python runs signal handlers on (Ctrl-C goes to its calls).
  g_main_thread = std::this_thread::get_id();
  {
    py::object threading = py::module_::import("threading");
    if (!threading.attr("current_thread")().is(threading.attr("main_thread")())) {
      g_main_thread = std::thread::id();  // imported on another thread: no Ctrl-C support
    }
  }
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
      .def("define_frame", &NativeSandbox::define_frame)
      .def("exec", &NativeSandbox::exec)
      .def("call", &NativeSandbox::call)
      .def("run", &NativeSandbox::run)
      .def("interrupt", &NativeSandbox::interrupt)
      .def("snapshot", &NativeSandbox::snapshot)
      .def_property_readonly("spent", &NativeSandbox::spent);
  py::class_<NativeSnapshot>(module, "Snapshot")
      .def("sandbox", &NativeSnapshot::sandbox)
      .def("save", &NativeSnapshot::save)
      .def_static("load", &NativeSnapshot::load)
      .def_property_readonly("memory_bytes", &NativeSnapshot::memory_bytes);
  py::class_<NativePool>(module, "Pool")
      .def(py::init<const NativeSnapshot&, size_t>())
      .def("call", &NativePool::call)
      .def("lease", &NativePool::lease)
      .def_property_readonly("idle", &NativePool::idle);
  py::class_<NativeLease>(module, "Lease")
      .def("call", &NativeLease::call)
      .def("exec", &NativeLease::exec)
      .def("interrupt", &NativeLease::interrupt)
      .def("release", &NativeLease::release);
}
