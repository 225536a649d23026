// The function runtime: ops compiled once in one interpreter, snapshotted,
// every call in a copy of the snapshot (guest side: terrarium/functions.py).
#include "terrarium/functions.h"

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <tuple>

#include "functions/json_depth.h"
#include "terrarium/snapshot.h"

namespace terrarium {

namespace {

constexpr const char* kInitExport = "__terrarium_functions_init__";
constexpr const char* kHandleExport = "__terrarium_functions_handle__";
constexpr const char* kHostcallFunction = "__terrarium_hostcall__";
// Module-level code of every uploaded file runs during init: its own budget.
constexpr std::chrono::milliseconds kInitTimeout{60'000};

// The call running on this thread: where its hostcalls and output go.
struct CallContext {
  const Hostcall* hostcall = nullptr;
  std::string_view op_name;
  std::string output;
};
thread_local CallContext* current_call = nullptr;

FunctionError make_error(FunctionErrorKind kind, std::string message, std::string op_name = {}) {
  FunctionError error;
  error.kind = kind;
  error.message = std::move(message);
  error.op_name = std::move(op_name);
  return error;
}

// A string field of a guest's reply; anything else (a guest can send
// anything) reads as `fallback`.
std::string field(const nlohmann::json& object, const char* key, const char* fallback = "") {
  auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : fallback;
}

// Sets this thread's call for a scope, and puts the previous one back.
class CallScope {
 public:
  explicit CallScope(CallContext* context) : saved_(current_call) { current_call = context; }
  ~CallScope() { current_call = saved_; }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;

 private:
  CallContext* saved_;
};

FunctionErrorKind kind_from_name(const std::string& name) {
  if (name == "no-handler") return FunctionErrorKind::kNoHandler;
  if (name == "in-json-err") return FunctionErrorKind::kInJsonErr;
  if (name == "handler-err") return FunctionErrorKind::kHandlerErr;
  if (name == "version-mismatch") return FunctionErrorKind::kVersionMismatch;
  if (name == "unexpected-mat") return FunctionErrorKind::kUnexpectedMat;
  return FunctionErrorKind::kOther;
}

std::string json_quoted(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? "none" : text;
}

// A failure below Python (deadline, limit, trap) as the wire reports it.
FunctionError sandbox_failure(const Error& error, std::string_view op_name) {
  FunctionError failure;
  failure.kind = FunctionErrorKind::kHandlerErr;
  failure.op_name = std::string(op_name);
  failure.cause = error.kind();
  std::string what = "op '" + std::string(op_name) + "' ";
  switch (error.kind()) {
    case ErrorKind::kTimeout:
      failure.type = "terrarium.Timeout";
      failure.message = what + "timed out: " + error.message();
      break;
    case ErrorKind::kLimit:
      failure.type = "terrarium.LimitExceeded";
      failure.message = what + "hit a limit: " + error.message();
      break;
    case ErrorKind::kTrap:
      failure.type = "terrarium.Trap";
      failure.message = what + "stopped: " + error.message();
      break;
    case ErrorKind::kGuestError:
      failure.type = error.python_type();
      failure.message = error.message();
      failure.traceback = error.details();
      break;
    default:
      failure.type = "terrarium.Error";
      failure.message = what + "failed: " + error.to_string();
      break;
  }
  return failure;
}

// Sandboxes of one warm op: reused without a reset, one per concurrent caller.
class WarmSandboxes {
 public:
  WarmSandboxes(std::shared_ptr<const Snapshot> snapshot, SandboxConfig config, size_t max_idle)
      : snapshot_(std::move(snapshot)), config_(std::move(config)), max_idle_(max_idle) {}

  Result<std::unique_ptr<Sandbox>> take() {
    {
      std::lock_guard lock(mutex_);
      if (!idle_.empty()) {
        auto sandbox = std::move(idle_.back());
        idle_.pop_back();
        return sandbox;
      }
    }
    return snapshot_->new_sandbox(config_);
  }
  void give_back(std::unique_ptr<Sandbox> sandbox) {
    if (sandbox->spent()) return;
    std::lock_guard lock(mutex_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(sandbox));
  }

 private:
  std::shared_ptr<const Snapshot> snapshot_;
  SandboxConfig config_;
  size_t max_idle_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Sandbox>> idle_;
};

}  // namespace

const char* function_error_kind_name(FunctionErrorKind kind) {
  switch (kind) {
    case FunctionErrorKind::kNoHandler:
      return "no-handler";
    case FunctionErrorKind::kInJsonErr:
      return "in-json-err";
    case FunctionErrorKind::kHandlerErr:
      return "handler-err";
    case FunctionErrorKind::kVersionMismatch:
      return "version-mismatch";
    case FunctionErrorKind::kUnexpectedMat:
      return "unexpected-mat";
    case FunctionErrorKind::kOther:
      return "other";
  }
  return "other";
}

// What one init produced; immutable, shared by the calls that use it.
struct FunctionsState {
  struct Op {
    OpInfo info;
    Pool* pool = nullptr;                 // fresh ops
    std::unique_ptr<WarmSandboxes> warm;  // warm ops
  };
  std::shared_ptr<const Snapshot> snapshot;
  std::vector<std::string> names;
  std::map<std::string, Op, std::less<>> ops;
  std::vector<std::unique_ptr<Pool>> pools;
};

struct Functions::Impl {
  std::shared_ptr<const Runtime> runtime;
  FunctionsOptions options;
  mutable std::mutex mutex;
  std::shared_ptr<const FunctionsState> state;
  mutable std::atomic<uint64_t> calls{0}, errors{0};

  std::shared_ptr<const FunctionsState> current() const {
    std::lock_guard lock(mutex);
    return state;
  }

  void emit_output(std::string_view op_name, std::string_view text) const {
    if (text.empty()) return;
    if (options.output) {
      options.output(op_name, text);
      return;
    }
    std::string lines;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      lines += "[op " + std::string(op_name.empty() ? "(init)" : op_name) + "] ";
      lines.append(text.substr(start, end - start));
      lines += '\n';
      start = end + 1;
    }
    std::fwrite(lines.data(), 1, lines.size(), stderr);
  }

  SandboxConfig sandbox_config(const OpLimits& limits) const {
    SandboxConfig config;
    config.args = {"terrarium-functions"};
    const Impl* self = this;
    auto sink = [self](std::string_view data) {
      if (current_call) {
        current_call->output.append(data);
      } else {
        self->emit_output("", data);
      }
    };
    config.stdout_output.callback = sink;
    config.stderr_output.callback = sink;
    config.limits.timeout = limits.timeout.count() ? limits.timeout : options.timeout;
    config.limits.max_memory_bytes = limits.max_memory ? limits.max_memory : options.max_memory;
    config.limits.max_output_bytes = limits.max_output ? limits.max_output : options.max_output;
    return config;
  }

  Result<std::string> answer_hostcall(const std::string& payload) const {
    size_t separator = payload.find('\0');
    if (separator == std::string::npos) {
      return Error(ErrorKind::kHostError, "malformed hostcall request");
    }
    std::string_view op_name(payload.data(), separator);
    std::string_view json(payload.data() + separator + 1, payload.size() - separator - 1);
    const Hostcall* hostcall = current_call && current_call->hostcall && *current_call->hostcall
                                   ? current_call->hostcall
                                   : &options.hostcall;
    if (!*hostcall) {
      return Error(ErrorKind::kHostError,
                   "no hostcall handler: the runtime answers no hostcall (asked for '" +
                       std::string(op_name) + "')");
    }
    // The nested call (another op answering) must not see this call's context.
    CallScope outside(nullptr);
    return (*hostcall)(op_name, json);
  }
};

Functions::Functions(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Functions::~Functions() = default;

Result<std::unique_ptr<Functions>> Functions::create(std::shared_ptr<const Runtime> runtime,
                                                     FunctionsOptions options) {
  if (!runtime) return Error(ErrorKind::kConfig, "Functions::create: no runtime");
  if (options.timeout.count() <= 0) {
    return Error(ErrorKind::kConfig, "functions: the default timeout must be positive");
  }
  if (options.max_idle == 0) options.max_idle = 1;
  auto impl = std::make_unique<Impl>();
  impl->runtime = std::move(runtime);
  impl->options = std::move(options);
  return std::unique_ptr<Functions>(new Functions(std::move(impl)));
}

Result<std::unique_ptr<Functions>> Functions::create(std::shared_ptr<const Runtime> runtime,
                                                     std::vector<OpInfo> ops,
                                                     FunctionsOptions options) {
  std::string version = options.metatype_version;
  auto functions = create(std::move(runtime), std::move(options));
  if (!functions) return functions.error();
  auto ready = (*functions)->init(version, std::move(ops));
  if (!ready) {
    const FunctionError& error = ready.error();
    ErrorKind kind = error.kind == FunctionErrorKind::kVersionMismatch ? ErrorKind::kConfig
                                                                       : ErrorKind::kGuestError;
    Error wrapped(
        kind,
        std::string("init failed (") + function_error_kind_name(error.kind) + "): " + error.message,
        error.traceback);
    wrapped.set_python_type(error.type);
    return wrapped;
  }
  return functions;
}

FunctionResult<bool> Functions::init(std::string_view metatype_version, std::vector<OpInfo> ops) {
  const FunctionsOptions& options = impl_->options;
  if (!options.metatype_version.empty() && metatype_version != options.metatype_version) {
    return make_error(FunctionErrorKind::kVersionMismatch,
                      "metatype_version " + json_quoted(metatype_version) +
                          " is not the version this runtime serves (" +
                          json_quoted(options.metatype_version) + ")");
  }
  // Checks the host can make before starting an interpreter.
  nlohmann::json request = {{"ops", nlohmann::json::array()}};
  std::set<std::string> seen;
  for (const OpInfo& op : ops) {
    if (op.op_name.empty()) {
      return make_error(FunctionErrorKind::kOther, "an op has an empty op_name");
    }
    if (!seen.insert(op.op_name).second) {
      return make_error(FunctionErrorKind::kOther,
                        "op '" + op.op_name + "' is listed twice (op names must be unique)",
                        op.op_name);
    }
    nlohmann::json data;
    if (functions_internal::json_depth(op.mat_data_json) > functions_internal::kMaxJsonDepth) {
      return make_error(FunctionErrorKind::kOther,
                        "op '" + op.op_name + "': mat_data_json nests deeper than " +
                            std::to_string(functions_internal::kMaxJsonDepth) + " levels",
                        op.op_name);
    }
    try {
      data = nlohmann::json::parse(op.mat_data_json);
    } catch (const nlohmann::json::exception& error) {
      return make_error(FunctionErrorKind::kOther,
                        "op '" + op.op_name + "': mat_data_json is not JSON: " + error.what(),
                        op.op_name);
    }
    if (!data.is_object()) {
      return make_error(FunctionErrorKind::kUnexpectedMat,
                        "op '" + op.op_name + "': mat_data_json is " +
                            std::string(data.type_name()) + ", not an object with \"ty\"",
                        op.op_name);
    }
    request["ops"].push_back({{"name", op.op_name}, {"data", std::move(data)}});
  }

  SandboxConfig config = impl_->sandbox_config({});
  config.limits.timeout = std::max(kInitTimeout, options.timeout);
  // Every op's memory limit must hold the snapshot: init gets the largest.
  for (const OpInfo& op : ops) {
    config.limits.max_memory_bytes = std::max(config.limits.max_memory_bytes, op.limits.max_memory);
  }
  config.limits.max_output_bytes = 16ull << 20;
  auto sandbox = impl_->runtime->new_sandbox(config);
  if (!sandbox) {
    return make_error(FunctionErrorKind::kOther,
                      "the interpreter did not start: " + sandbox.error().message());
  }
  const Impl* impl = impl_.get();
  (void)(*sandbox)->define(kHostcallFunction, [impl](const std::string& payload) -> std::string {
    Result<std::string> answer = impl->answer_hostcall(payload);
    if (!answer) throw std::runtime_error(answer.error().message());
    return std::move(*answer);
  });
  if (auto ok = (*sandbox)->exec("import terrarium.functions\n", "<terrarium functions>"); !ok) {
    return make_error(FunctionErrorKind::kOther,
                      "the function runtime did not start: " + ok.error().message());
  }
  auto compiled = (*sandbox)->call_json(kInitExport, request);
  if (!compiled) {
    FunctionError error = sandbox_failure(compiled.error(), "");
    error.kind = FunctionErrorKind::kOther;
    error.message = "init: " + compiled.error().message();
    return error;
  }
  if (compiled->is_object()) {
    FunctionError error;
    error.kind = kind_from_name(field(*compiled, "kind", "other"));
    if (error.kind != FunctionErrorKind::kUnexpectedMat) error.kind = FunctionErrorKind::kOther;
    error.op_name = field(*compiled, "op");
    error.message = field(*compiled, "message");
    error.type = field(*compiled, "type");
    error.traceback = field(*compiled, "traceback");
    return error;
  }
  if (!compiled->is_null()) {
    return make_error(FunctionErrorKind::kOther, "init: the guest answered " +
                                                     std::string(compiled->type_name()) +
                                                     ", not null or an error");
  }
  auto snapshot = Snapshot::capture(**sandbox);
  if (!snapshot) {
    return make_error(FunctionErrorKind::kOther, "snapshot: " + snapshot.error().message());
  }

  auto state = std::make_shared<FunctionsState>();
  state->snapshot = std::move(*snapshot);
  std::map<std::tuple<int64_t, uint64_t, uint64_t>, Pool*> pools;
  for (OpInfo& op : ops) {
    FunctionsState::Op entry;
    SandboxConfig op_config = impl_->sandbox_config(op.limits);
    const Limits& limits = op_config.limits;
    if (op.isolation == Isolation::kWarm) {
      entry.warm =
          std::make_unique<WarmSandboxes>(state->snapshot, op_config, impl_->options.max_idle);
      auto first = entry.warm->take();
      if (!first) {
        return make_error(FunctionErrorKind::kOther,
                          "op '" + op.op_name + "': " + first.error().message(), op.op_name);
      }
      entry.warm->give_back(std::move(*first));
    } else {
      auto key = std::make_tuple(static_cast<int64_t>(limits.timeout.count()),
                                 limits.max_memory_bytes, limits.max_output_bytes);
      auto found = pools.find(key);
      if (found == pools.end()) {
        Pool::Options pool_options;
        pool_options.max_idle = impl_->options.max_idle;
        pool_options.prefill = 1;  // a limit too small for the snapshot fails here
        pool_options.config = op_config;
        auto pool = Pool::create(state->snapshot, std::move(pool_options));
        if (!pool) {
          return make_error(FunctionErrorKind::kOther,
                            "op '" + op.op_name + "': " + pool.error().message(), op.op_name);
        }
        state->pools.push_back(std::move(*pool));
        found = pools.emplace(key, state->pools.back().get()).first;
      }
      entry.pool = found->second;
    }
    state->names.push_back(op.op_name);
    std::string name = op.op_name;
    entry.info = std::move(op);
    state->ops.emplace(std::move(name), std::move(entry));
  }
  std::lock_guard lock(impl_->mutex);
  impl_->state = std::move(state);
  return true;
}

FunctionResult<std::string> Functions::handle(std::string_view op_name, std::string_view in_json,
                                              const Hostcall& hostcall) const {
  ++impl_->calls;
  auto state = impl_->current();
  if (!state) {
    ++impl_->errors;
    return make_error(FunctionErrorKind::kNoHandler,
                      "no op named '" + std::string(op_name) + "': init has not been called",
                      std::string(op_name));
  }
  auto found = state->ops.find(op_name);
  if (found == state->ops.end()) {
    ++impl_->errors;
    return make_error(
        FunctionErrorKind::kNoHandler,
        "no op named '" + std::string(op_name) + "' (ops: " + joined(state->names) + ")",
        std::string(op_name));
  }
  const FunctionsState::Op& op = found->second;
  std::string payload;
  payload.reserve(op_name.size() + 1 + in_json.size());
  payload.append(op_name).push_back('\0');
  payload.append(in_json);

  CallContext context;
  context.hostcall = hostcall ? &hostcall : nullptr;
  context.op_name = op.info.op_name;
  std::optional<CallScope> scope;
  scope.emplace(&context);
  Result<std::string> answer = std::string();
  if (op.warm) {
    auto sandbox = op.warm->take();
    if (!sandbox) {
      answer = sandbox.error();
    } else {
      answer = (*sandbox)->call(kHandleExport, payload);
      op.warm->give_back(std::move(*sandbox));
    }
  } else {
    auto lease = op.pool->acquire();
    if (!lease) {
      answer = lease.error();
    } else {
      answer = (*lease)->call(kHandleExport, payload);
    }
  }
  scope.reset();
  impl_->emit_output(op.info.op_name, context.output);

  if (!answer) {
    ++impl_->errors;
    return sandbox_failure(answer.error(), op.info.op_name);
  }
  std::string& text = *answer;
  if (!text.empty() && text[0] == 'R') return text.substr(1);
  ++impl_->errors;
  nlohmann::json detail;
  if (!text.empty() && functions_internal::json_depth(text) <= functions_internal::kMaxJsonDepth) {
    detail = nlohmann::json::parse(text.begin() + 1, text.end(), nullptr, false);
  }
  if (text.empty() || text[0] != 'E' || !detail.is_object()) {
    return make_error(FunctionErrorKind::kHandlerErr,
                      "op '" + op.info.op_name + "': the guest answered malformed bytes",
                      op.info.op_name);
  }
  FunctionError error;
  error.kind = kind_from_name(field(detail, "kind", "handler-err"));
  if (error.kind != FunctionErrorKind::kInJsonErr) error.kind = FunctionErrorKind::kHandlerErr;
  error.op_name = op.info.op_name;
  error.message = field(detail, "message");
  error.type = field(detail, "type");
  error.traceback = field(detail, "traceback");
  return error;
}

namespace {

const char* const kInitShape =
    "init takes {\"metatype_version\": string, \"expected_ops\": [{\"op_name\": string, "
    "\"mat_data_json\": string, \"mat_title\", \"mat_hash\", \"effect\"}, ...]}";

// A string field, or (as the wire allows) any other JSON value as its text.
std::optional<std::string> text_of(const nlohmann::json& object, const char* key) {
  auto found = object.find(key);
  if (found == object.end() || found->is_null()) return std::nullopt;
  if (found->is_string()) return found->get<std::string>();
  return found->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<nlohmann::json> parse_wire_json(std::string_view json_text) {
  if (functions_internal::json_depth(json_text) > functions_internal::kMaxJsonDepth) {
    return Error(ErrorKind::kConfig, "init: the parameters nest deeper than " +
                                         std::to_string(functions_internal::kMaxJsonDepth) +
                                         " levels");
  }
  return nlohmann::json::parse(json_text, nullptr, false);
}

Result<std::vector<OpInfo>> mat_infos(const nlohmann::json& ops) {
  if (!ops.is_array()) {
    return Error(ErrorKind::kConfig, std::string("init: no expected_ops array; ") + kInitShape);
  }
  std::vector<OpInfo> infos;
  size_t index = 0;
  for (const nlohmann::json& entry : ops) {
    auto name = entry.is_object() ? entry.find("op_name") : entry.end();
    if (!entry.is_object() || name == entry.end() || !name->is_string()) {
      return Error(ErrorKind::kConfig, "init: expected_ops[" + std::to_string(index) +
                                           "] has no string op_name; " + kInitShape);
    }
    OpInfo op;
    op.op_name = name->get<std::string>();
    op.mat_title = text_of(entry, "mat_title").value_or("");
    op.mat_hash = text_of(entry, "mat_hash").value_or("");
    op.mat_data_json = text_of(entry, "mat_data_json").value_or("null");
    op.effect = text_of(entry, "effect").value_or("");
    infos.push_back(std::move(op));
    ++index;
  }
  return infos;
}

}  // namespace

Result<InitRequest> parse_init_request(std::string_view json_text) {
  auto params = parse_wire_json(json_text);
  if (!params) return params.error();
  if (!params->is_object()) {
    return Error(ErrorKind::kConfig, std::string("init: not a JSON object; ") + kInitShape);
  }
  auto ops = params->find("expected_ops");
  auto infos = mat_infos(ops == params->end() ? nlohmann::json() : *ops);
  if (!infos) return infos.error();
  return InitRequest{text_of(*params, "metatype_version").value_or(""), std::move(*infos)};
}

Result<std::vector<OpInfo>> parse_mat_infos(std::string_view json_array) {
  auto ops = parse_wire_json(json_array);
  if (!ops) return ops.error();
  return mat_infos(*ops);
}

bool Functions::initialized() const { return impl_->current() != nullptr; }

std::vector<std::string> Functions::op_names() const {
  auto state = impl_->current();
  return state ? state->names : std::vector<std::string>{};
}

bool Functions::has_op(std::string_view op_name) const {
  auto state = impl_->current();
  return state && state->ops.find(op_name) != state->ops.end();
}

FunctionsStats Functions::stats() const {
  FunctionsStats stats;
  stats.calls = impl_->calls.load();
  stats.errors = impl_->errors.load();
  return stats;
}

}  // namespace terrarium
