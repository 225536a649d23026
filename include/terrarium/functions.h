// The function runtime: Metatype-style ops (`init` / `handle` / `hostcall`,
// the wit-wire of Metatype's Python runtime), every call in a fresh sandbox.
//
//   auto functions = terrarium::Functions::create(runtime, options);
//   (*functions)->init("0.5.0", {{.op_name = "add",
//                                 .mat_data_json = R"({"ty": "lambda",
//                                                      "source": "lambda x: x['a'] + x['b']"})"}});
//   auto sum = (*functions)->handle("add", R"({"a": 1, "b": 2})");   // "3"
//
// init compiles every op in one interpreter (module-level code of the
// uploaded files runs there, once) and snapshots it; each handle runs in a
// copy of that snapshot, so nothing one call does is visible to the next
// (unless its op asks for Isolation::kWarm). The wire is documented in
// docs/functions.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "terrarium/config.h"
#include "terrarium/error.h"
#include "terrarium/http.h"
#include "terrarium/runtime.h"

namespace terrarium {

// The error kinds of the wire, exactly as Metatype names them.
enum class FunctionErrorKind {
  kNoHandler,        // handle: no op of that name
  kInJsonErr,        // handle: the input is not JSON
  kHandlerErr,       // handle: the handler raised, returned something not JSON, or hit a limit
  kVersionMismatch,  // init: metatype_version is not the one this runtime serves
  kUnexpectedMat,    // init: an op's mat_data has an unknown "ty"
  kOther,            // init: a syntax error, a missing function, a duplicate op, ...
};
// "no-handler", "in-json-err", "handler-err", "version-mismatch", "unexpected-mat", "other".
const char* function_error_kind_name(FunctionErrorKind kind);

struct FunctionError {
  FunctionErrorKind kind = FunctionErrorKind::kOther;
  std::string message;
  std::string
      type;  // the Python exception's type ("ValueError"), or a limit's
             // ("terrarium.Timeout", "terrarium.LimitExceeded", "terrarium.Trap"); may be ""
  std::string traceback;  // Python's formatted traceback; may be ""
  std::string op_name;    // the op concerned ("" if none)
  // Why the call failed below Python: kGuestError for Python-level failures,
  // kTimeout / kLimit / kTrap when the sandbox hit a limit or trapped.
  ErrorKind cause = ErrorKind::kGuestError;
};

// A value or a FunctionError (the Result<T> of this front end).
template <typename T>
class [[nodiscard]] FunctionResult {
 public:
  FunctionResult(T value) : state_(std::move(value)) {}
  FunctionResult(FunctionError error) : state_(std::move(error)) {}
  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const FunctionError& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, FunctionError> state_;
};

enum class Isolation {
  kFresh,  // every call in a fresh copy of the snapshot (the default)
  kWarm,   // calls reuse a sandbox (one per concurrent caller): faster, not isolated
};

// Per-op limits; a zero field takes FunctionsOptions::limits' value.
struct OpLimits {
  std::chrono::milliseconds timeout{0};
  uint64_t max_memory = 0;
  uint64_t max_output = 0;
};

// One op, as Metatype's wire sends it (mat-info), plus Terrarium's settings.
struct OpInfo {
  std::string op_name;
  std::string mat_title;
  std::string mat_hash;
  // {"ty": "lambda", "source": "lambda x: ..."}
  // {"ty": "def", "func_name": "f", "source": "def f(x): ..."}
  // {"ty": "import_function", "root_src_path": "main.py", "func_name": "f",
  //  "sources": {"main.py": "...", "lib/util.py": "..."}}
  std::string mat_data_json;
  std::string effect;  // kept as given (Metatype's effect), not interpreted
  OpLimits limits;
  Isolation isolation = Isolation::kFresh;
};

// Answers a handler's hostcall(op_name, value): `json` is the value's JSON
// text; return the answer's JSON text, or an Error whose message the
// handler's HostcallError carries. Called on the thread running the handler;
// the handler waits for it.
using Hostcall =
    std::function<Result<std::string>(std::string_view op_name, std::string_view json)>;

struct FunctionsOptions {
  // init's metatype_version must equal this; "" accepts any version.
  std::string metatype_version;
  // Default limits of every op.
  std::chrono::milliseconds timeout{5'000};
  uint64_t max_memory = 256ull << 20;
  uint64_t max_output = 1ull << 20;  // what a call may print (stdout + stderr)
  // Sandboxes kept ready per distinct set of limits (fresh ops), and per op (warm ops).
  size_t max_idle = 16;
  // Answers hostcalls of calls that bring no Hostcall of their own. Empty:
  // every such hostcall fails with "no hostcall handler".
  Hostcall hostcall;
  // What handlers print (stdout and stderr), once per call. Default: stderr,
  // each line as "[op NAME] line".
  std::function<void(std::string_view op_name, std::string_view text)> output;
};

struct FunctionsStats {
  uint64_t calls = 0;
  uint64_t errors = 0;
};

class Functions {
 public:
  // A runtime without ops: call init (or use the overload below).
  static Result<std::unique_ptr<Functions>> create(std::shared_ptr<const Runtime> runtime,
                                                   FunctionsOptions options = {});
  // create + init(options.metatype_version, ops); an init error becomes a
  // kGuestError (kConfig for version-mismatch) naming the op.
  static Result<std::unique_ptr<Functions>> create(std::shared_ptr<const Runtime> runtime,
                                                   std::vector<OpInfo> ops,
                                                   FunctionsOptions options = {});
  ~Functions();
  Functions(const Functions&) = delete;
  Functions& operator=(const Functions&) = delete;

  // Metatype's init: compiles every op (one bad op fails the whole init and
  // is named in the error), then takes the snapshot calls run from. A second
  // init replaces the ops; calls in flight finish on the old ones.
  FunctionResult<bool> init(std::string_view metatype_version, std::vector<OpInfo> ops);

  // Metatype's handle: runs op `op_name` on the JSON text `in_json` and
  // returns the result's JSON text. `hostcall` answers this call's
  // hostcalls (else FunctionsOptions::hostcall). Thread-safe: calls on
  // different threads run in parallel.
  FunctionResult<std::string> handle(std::string_view op_name, std::string_view in_json,
                                     const Hostcall& hostcall = nullptr) const;

  bool initialized() const;
  std::vector<std::string> op_names() const;  // in init order
  bool has_op(std::string_view op_name) const;
  FunctionsStats stats() const;

  struct Impl;

 private:
  explicit Functions(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct OpsManifest;

// Metatype's init parameters, {"metatype_version": "...", "expected_ops":
// [mat-info, ...]}, as they arrive over a wire (JSON-RPC, HTTP). Lenient as
// the wire allows: mat_data_json and effect may be JSON values instead of
// their text. Errors (kConfig) say which field is wrong.
struct InitRequest {
  std::string metatype_version;
  std::vector<OpInfo> ops;
};
Result<InitRequest> parse_init_request(std::string_view json_text);
// expected_ops alone: a JSON array of mat-info records (the C API's ops_json).
Result<std::vector<OpInfo>> parse_mat_infos(std::string_view json_array);

// `terrarium functions stdio`: JSON-RPC 2.0 on two file descriptors, one
// message per line (docs/functions.md). Requests `init` {metatype_version,
// expected_ops} and `handle` {op_name, in_json}; while a handle runs, its
// hostcalls are sent to the peer as requests `hostcall` {op_name, json}
// whose responses carry the answer. Requests run concurrently on `workers`
// threads; a request read after an init runs once that init is done.
struct JsonRpcOptions {
  size_t workers = 0;                                  // 0: the number of cores
  std::chrono::milliseconds hostcall_timeout{30'000};  // waiting for the peer's answer
  size_t max_line_bytes = 64u << 20;                   // longer lines are refused
  size_t max_queued = 4096;                            // beyond: an "overloaded" error
  // Hostcall targets answered here (another op, an HTTP endpoint); names it
  // does not know go to the peer.
  const OpsManifest* manifest = nullptr;
  std::function<void(const std::string& line)> log;  // diagnostics (default: none)
};
// Serves until `in_fd` reaches EOF; calls in flight finish first.
Result<void> serve_json_rpc(Functions& functions, int in_fd, int out_fd,
                            JsonRpcOptions options = {});

// `terrarium functions serve`: the HTTP side, a Handler for the server
// library (terrarium/http.h). POST /ops/NAME with a JSON body -> 200 and the
// result's JSON; errors as {"error": {"kind", "message", "type",
// "traceback"}} with 404 (no-handler), 400 (in-json-err), 500 (handler-err,
// trap, limit), 504 (timeout); POST /init when allowed (init_target); GET
// /healthz; GET /metrics (Prometheus text:
// calls by op and outcome, latency by op). An empty body is JSON null.
struct FunctionsHttpOptions {
  std::string metrics_path = "/metrics";  // "" turns it off
  // POST /init with Metatype's init parameters replaces the ops (answers
  // {"ok": true} or the init error as JSON, 400/409). Off by default: it
  // lets any client that reaches the port upload code.
  Functions* init_target = nullptr;
  const OpsManifest* manifest = nullptr;  // its hostcall targets, if any (must outlive the handler)
  Hostcall hostcall;                      // hostcalls the manifest does not answer
  std::function<void(const std::string& line)> log;  // failed calls, one line each
};
std::shared_ptr<http::Handler> functions_http_handler(const Functions& functions,
                                                      FunctionsHttpOptions options = {});
// For http::Options::rejection_body: the server's own refusals (413, 503,
// 400, ...) in the same JSON shape.
std::pair<std::string, std::string> functions_http_rejection(int status, std::string_view reason);

// ops.toml, the manifest for people (docs/functions.md):
//
//   [[op]]
//   name = "add"
//   lambda = "lambda x: x['a'] + x['b']"
//
//   [[op]]
//   name = "slugify"
//   file = "ops/text.py"        # relative to the manifest
//   function = "slugify"
//   deps = ["ops/lib", "ops/*.json"]
//   limits = { timeout = "2s", max_memory = "64M" }
//
//   [hostcalls]                  # targets of hostcall(name, value)
//   double = { op = "twice" }                                # another op of the manifest
//   lookup = { url = "http://127.0.0.1:8080/lookup" }        # POST of the JSON
struct HostcallTarget {
  std::string name;
  std::string op;   // another op of the manifest, or
  std::string url;  // an http:// endpoint (POST, JSON body)
  std::chrono::milliseconds timeout{5'000};
};

struct OpsManifest {
  std::string path;
  std::vector<OpInfo> ops;
  std::vector<HostcallTarget> hostcalls;
  // Hosts (host or host:port) that `url` targets may name: the operator's
  // allow-list (`allowed_hosts` in the manifest, plus --allow-host).
  std::vector<std::string> allowed_hosts;
};

// Reads an ops.toml: every error names the file, line and key.
Result<OpsManifest> load_ops_manifest(const std::string& path);

// The TCP port a `url` target connects to, read as manifest_hostcall reads
// the URL (80 when it names none; a service name as /etc/services has it);
// 0 when the port is no number or service this system knows.
uint16_t hostcall_url_port(const std::string& url);

// A Hostcall that routes by name to the manifest's targets: an op of
// `functions` (nested up to 8 deep) or an allowed HTTP endpoint. Unknown
// names fail with the list of known ones; `fallback` (if any) answers them.
Hostcall manifest_hostcall(const OpsManifest& manifest, const Functions& functions,
                           Hostcall fallback = nullptr);

}  // namespace terrarium
