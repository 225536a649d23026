// A sandbox: one isolated CPython interpreter inside a wasm instance.
//
// Two ways to use one:
//  - like `python`: Sandbox::create(config) then run_main();
//  - embedded: Runtime::new_sandbox(config) (or create() then any of the calls
//    below, which initialize the interpreter on first use), then define host
//    functions, exec code and call the functions it exported with
//    `@terrarium.export`.
//
// A Sandbox is used by one thread at a time. Host functions run on the thread
// that called into the guest; while one runs, calls into the same sandbox
// (re-entry) return an error.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "terrarium/config.h"
#include "terrarium/error.h"

namespace terrarium {

// A host function on bytes: receives the guest's payload (raw bytes, or the
// JSON text when Python passed a non-bytes value) and returns bytes, which
// Python receives as `bytes`. Throw to fail: Python gets terrarium.HostError
// with e.what() as its message.
using HostFunction = std::function<std::string(const std::string& payload)>;
// A host function on JSON values: Python passes a JSON-serializable value and
// receives the returned value decoded. Throw to fail, as above.
using JsonHostFunction = std::function<nlohmann::json(const nlohmann::json& value)>;

class Sandbox {
 public:
  // Validates `config` (mount directories exist, guest paths are absolute)
  // and creates the instance. Errors name the offending setting.
  static Result<std::unique_ptr<Sandbox>> create(SandboxConfig config);
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  // Runs CPython's main with config.args, like `python ARGS...`. Returns the
  // exit status (0, SystemExit's code, 1 for an uncaught exception), or an
  // Error when the guest trapped or hit a limit. A sandbox whose guest
  // trapped is spent: further calls return an error. Not available once the
  // sandbox was initialized for embedding (and vice versa).
  Result<int> run_main();

  // Initializes CPython for embedding (isolated config, args = config.args)
  // and imports the `terrarium` SDK. Done by the calls below when needed.
  Result<void> initialize();

  // Host functions Python calls as `terrarium.host.NAME(...)` (or
  // `terrarium.call_host("NAME", ...)`). Defining a name again replaces it.
  Result<void> define(std::string name, HostFunction function);
  Result<void> define_json(std::string name, JsonHostFunction function);
  // A JSON host function on JSON text (no parsing on the host side: for
  // pass-through or your own parser): receives the guest's UTF-8 JSON text
  // and must return JSON text. The fastest JSON path.
  Result<void> define_json_text(std::string name, HostFunction function);

  // Runs Python source in the `__main__` module. A Python exception is a
  // kGuestError whose details() hold the traceback.
  Result<void> exec(std::string_view code, std::string_view filename = "<exec>");
  // Reads a host file and runs it like exec (filename: the host path).
  Result<void> exec_file(const std::string& path);

  // Calls the function Python exported as `name` with raw bytes (Python
  // receives `bytes`). The result: the bytes Python returned, or the JSON
  // text of any other value. Errors: kNotFound (no such export), kGuestError
  // (the function raised: message "Type: message", details the traceback,
  // python_type() the type), kTrap / kLimit / kTimeout.
  Result<std::string> call(std::string_view name, std::string_view payload);
  // The same with JSON: Python receives the decoded value; its return value
  // must be JSON-serializable (bytes are a kGuestError).
  Result<nlohmann::json> call_json(std::string_view name, const nlohmann::json& value);
  // JSON as text both ways (for FFI): `json_text` must be UTF-8 JSON.
  Result<std::string> call_json_text(std::string_view name, std::string_view json_text);

  // Gives the guest a new argv, environment and standard streams, as if its
  // program had been started with them: WASI's args_get/environ_get answer
  // with them, and sys.argv, os.environ (with the C library's environ) and
  // sys.stdin/stdout/stderr reflect them before this returns (stdin is read
  // from its start). A reset() returns to the snapshot's. Errors: kConfig (an
  // env entry not KEY=VALUE), and those of a call.
  Result<void> set_invocation(Invocation invocation);

  // True when a trap, exit, limit or interrupt has used the sandbox up.
  bool spent() const;

  // Stops the guest call running now, from any thread (and async-signal-safe:
  // a SIGINT handler may call it): the call returns kInterrupted and the
  // sandbox is spent, as after a timeout (a pooled one is reset as usual).
  // A guest inside a host function stops when that function returns. With
  // no call running, does nothing and returns false: a late interrupt never
  // stops the next call.
  bool interrupt() noexcept;

  // Puts a sandbox made from a Snapshot back to the snapshot's state: memory,
  // globals, WASI descriptors and counters, a reseeded `random`. Works after
  // a trap or limit too (the sandbox is usable again). kConfig if the
  // sandbox was not made from a snapshot.
  enum class ResetStrategy {
    kCopyDirtyPages,  // copy the snapshot back into the pages written (default, fastest)
    kDropAllPages,    // drop every page; each faults back in from the snapshot on use
  };
  Result<void> reset(ResetStrategy strategy = ResetStrategy::kCopyDirtyPages);

  struct Impl;

 private:
  friend class Snapshot;
  explicit Sandbox(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace terrarium
