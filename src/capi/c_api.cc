// The C API (include/terrarium.h) over the C++ API. Every entry point catches
// everything: no C++ exception crosses it.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "terrarium.h"
#include "terrarium/functions.h"
#include "terrarium/plugin.h"
#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"

struct terrarium_runtime {
  std::shared_ptr<terrarium::Runtime> runtime;
};
struct terrarium_config {
  terrarium::SandboxConfig config;
};
struct terrarium_sandbox {
  std::unique_ptr<terrarium::Sandbox> sandbox;
};
struct terrarium_plugin {
  std::unique_ptr<terrarium::Plugin> plugin;
};
struct terrarium_functions {
  std::unique_ptr<terrarium::Functions> functions;
  std::unique_ptr<terrarium::OpsManifest> manifest;
  terrarium::Hostcall hostcall;
};
struct terrarium_host_result {
  std::string data;
  std::string error;
  bool failed = false;
};

namespace {

thread_local std::string t_error;
thread_local std::string t_details;
thread_local std::string t_kind;

terrarium_status status_of(terrarium::ErrorKind kind) {
  using terrarium::ErrorKind;
  switch (kind) {
    case ErrorKind::kConfig:
      return TERRARIUM_ERROR_CONFIG;
    case ErrorKind::kTrap:
      return TERRARIUM_ERROR_TRAP;
    case ErrorKind::kLimit:
      return TERRARIUM_ERROR_LIMIT;
    case ErrorKind::kTimeout:
      return TERRARIUM_ERROR_TIMEOUT;
    case ErrorKind::kGuestError:
      return TERRARIUM_ERROR_GUEST;
    case ErrorKind::kHostError:
      return TERRARIUM_ERROR_HOST;
    case ErrorKind::kNotFound:
      return TERRARIUM_ERROR_NOT_FOUND;
    case ErrorKind::kInternal:
      return TERRARIUM_ERROR_INTERNAL;
    case ErrorKind::kInterrupted:
      return TERRARIUM_ERROR_INTERRUPTED;
  }
  return TERRARIUM_ERROR_INTERNAL;
}

terrarium_status fail(terrarium_status status, std::string message, std::string details = {},
                      std::string kind = {}) {
  try {
    t_error = std::move(message);
    t_details = std::move(details);
    t_kind = std::move(kind);
  } catch (...) {
  }
  return status;
}

terrarium_status fail(const terrarium::Error& error) {
  return fail(status_of(error.kind()), error.message(), error.details());
}

// Runs `body` (returning a terrarium_status), turning any exception into an
// error status.
template <typename Body>
terrarium_status guard(Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(TERRARIUM_ERROR_LIMIT, "out of host memory");
  } catch (const std::exception& e) {
    return fail(TERRARIUM_ERROR_INTERNAL, e.what());
  } catch (...) {
    return fail(TERRARIUM_ERROR_INTERNAL, "unknown exception");
  }
}

terrarium_status copy_out(const std::string& data, uint8_t** out, size_t* out_len) {
  auto* buffer = static_cast<uint8_t*>(std::malloc(data.size() + 1));
  if (!buffer) return fail(TERRARIUM_ERROR_LIMIT, "out of host memory");
  if (!data.empty()) std::memcpy(buffer, data.data(), data.size());
  buffer[data.size()] = 0;
  *out = buffer;
  if (out_len) *out_len = data.size();
  return TERRARIUM_OK;
}

terrarium_status null_argument(const char* what) {
  return fail(TERRARIUM_ERROR_ARGUMENT, std::string(what) + " is NULL");
}

}  // namespace

extern "C" {

const char* terrarium_last_error(void) { return t_error.c_str(); }
const char* terrarium_last_error_details(void) { return t_details.c_str(); }

const char* terrarium_status_name(terrarium_status status) {
  switch (status) {
    case TERRARIUM_OK:
      return "ok";
    case TERRARIUM_ERROR_CONFIG:
      return "config error";
    case TERRARIUM_ERROR_TRAP:
      return "trap";
    case TERRARIUM_ERROR_LIMIT:
      return "limit exceeded";
    case TERRARIUM_ERROR_TIMEOUT:
      return "timeout";
    case TERRARIUM_ERROR_GUEST:
      return "guest error";
    case TERRARIUM_ERROR_HOST:
      return "host error";
    case TERRARIUM_ERROR_NOT_FOUND:
      return "not found";
    case TERRARIUM_ERROR_INTERNAL:
      return "internal error";
    case TERRARIUM_ERROR_ARGUMENT:
      return "bad argument";
    case TERRARIUM_ERROR_INTERRUPTED:
      return "interrupted";
  }
  return "unknown status";
}

void terrarium_free(void* buffer) { std::free(buffer); }

terrarium_status terrarium_runtime_new(terrarium_runtime** out) {
  return guard([&] {
    if (!out) return null_argument("out");
    *out = nullptr;
    auto runtime = terrarium::Runtime::create();
    if (!runtime) return fail(runtime.error());
    *out = new terrarium_runtime{std::move(*runtime)};
    return TERRARIUM_OK;
  });
}

void terrarium_runtime_free(terrarium_runtime* runtime) { delete runtime; }

terrarium_config* terrarium_config_new(void) {
  try {
    return new terrarium_config();
  } catch (...) {
    return nullptr;
  }
}

void terrarium_config_free(terrarium_config* config) { delete config; }

terrarium_status terrarium_config_add_arg(terrarium_config* config, const char* arg) {
  return guard([&] {
    if (!config || !arg) return null_argument("config or arg");
    config->config.args.emplace_back(arg);
    return TERRARIUM_OK;
  });
}

terrarium_status terrarium_config_add_env(terrarium_config* config, const char* key_value) {
  return guard([&] {
    if (!config || !key_value) return null_argument("config or key_value");
    config->config.env.emplace_back(key_value);
    return TERRARIUM_OK;
  });
}

terrarium_status terrarium_config_add_mount(terrarium_config* config, const char* host_path,
                                            const char* guest_path, int read_only) {
  return guard([&] {
    if (!config || !host_path || !guest_path) return null_argument("config or path");
    config->config.mounts.push_back({host_path, guest_path, read_only != 0});
    return TERRARIUM_OK;
  });
}

terrarium_status terrarium_config_set_max_memory(terrarium_config* config, uint64_t bytes) {
  if (!config) return null_argument("config");
  config->config.limits.max_memory_bytes = bytes;
  return TERRARIUM_OK;
}

terrarium_status terrarium_sandbox_new(terrarium_runtime* runtime, const terrarium_config* config,
                                       terrarium_sandbox** out) {
  return guard([&] {
    if (!runtime || !out) return null_argument("runtime or out");
    *out = nullptr;
    auto sandbox =
        runtime->runtime->new_sandbox(config ? config->config : terrarium::SandboxConfig{});
    if (!sandbox) return fail(sandbox.error());
    *out = new terrarium_sandbox{std::move(*sandbox)};
    return TERRARIUM_OK;
  });
}

void terrarium_sandbox_free(terrarium_sandbox* sandbox) { delete sandbox; }

int terrarium_sandbox_interrupt(terrarium_sandbox* sandbox) {
  return sandbox && sandbox->sandbox->interrupt() ? 1 : 0;
}

void terrarium_host_result_set(terrarium_host_result* result, const void* data, size_t length) {
  if (!result) return;
  try {
    result->data.assign(static_cast<const char*>(data), data ? length : 0);
  } catch (...) {
    result->failed = true;
    result->error = "out of host memory";
  }
}

void terrarium_host_result_error(terrarium_host_result* result, const char* message) {
  if (!result) return;
  result->failed = true;
  try {
    result->error = message ? message : "host function failed";
  } catch (...) {
  }
}

terrarium_status terrarium_sandbox_define(terrarium_sandbox* sandbox, const char* name,
                                          terrarium_host_fn function, void* user_data, int flags) {
  return guard([&] {
    if (!sandbox || !name || !function) return null_argument("sandbox, name or function");
    std::string function_name = name;
    auto adapter = [function, user_data, function_name](const std::string& payload) -> std::string {
      terrarium_host_result result;
      int status = function(user_data, reinterpret_cast<const uint8_t*>(payload.data()),
                            payload.size(), &result);
      if (status != 0 || result.failed) {
        throw std::runtime_error(
            result.error.empty() ? "host function '" + function_name + "' failed" : result.error);
      }
      return std::move(result.data);
    };
    terrarium::Result<void> defined = (flags & TERRARIUM_JSON)
                                          ? sandbox->sandbox->define_json_text(name, adapter)
                                          : sandbox->sandbox->define(name, adapter);
    if (!defined) return fail(defined.error());
    return TERRARIUM_OK;
  });
}

terrarium_status terrarium_sandbox_exec(terrarium_sandbox* sandbox, const char* code,
                                        size_t code_len) {
  return guard([&] {
    if (!sandbox || (!code && code_len)) return null_argument("sandbox or code");
    auto done = sandbox->sandbox->exec(std::string_view(code ? code : "", code_len));
    return done ? TERRARIUM_OK : fail(done.error());
  });
}

terrarium_status terrarium_sandbox_exec_file(terrarium_sandbox* sandbox, const char* path) {
  return guard([&] {
    if (!sandbox || !path) return null_argument("sandbox or path");
    auto done = sandbox->sandbox->exec_file(path);
    return done ? TERRARIUM_OK : fail(done.error());
  });
}

terrarium_status terrarium_sandbox_call(terrarium_sandbox* sandbox, const char* name,
                                        const void* payload, size_t payload_len, int flags,
                                        uint8_t** out, size_t* out_len) {
  return guard([&] {
    if (!sandbox || !name || !out || (!payload && payload_len)) {
      return null_argument("sandbox, name, payload or out");
    }
    *out = nullptr;
    if (out_len) *out_len = 0;
    std::string_view data(payload ? static_cast<const char*>(payload) : "", payload_len);
    auto result = (flags & TERRARIUM_JSON) ? sandbox->sandbox->call_json_text(name, data)
                                           : sandbox->sandbox->call(name, data);
    if (!result) return fail(result.error());
    return copy_out(*result, out, out_len);
  });
}

terrarium_status terrarium_plugin_load(terrarium_runtime* runtime, const char* directory,
                                       terrarium_plugin** out) {
  return guard([&] {
    if (!runtime || !directory || !out) return null_argument("runtime, directory or out");
    *out = nullptr;
    auto plugin = terrarium::Plugin::load(*runtime->runtime, directory);
    if (!plugin) return fail(plugin.error());
    *out = new terrarium_plugin{std::move(*plugin)};
    return TERRARIUM_OK;
  });
}

void terrarium_plugin_free(terrarium_plugin* plugin) { delete plugin; }

terrarium_status terrarium_plugin_run(terrarium_plugin* plugin, const void* payload,
                                      size_t payload_len, int64_t ident, uint8_t** out,
                                      size_t* out_len) {
  return guard([&] {
    if (!plugin || !out || (!payload && payload_len))
      return null_argument("plugin, payload or out");
    *out = nullptr;
    if (out_len) *out_len = 0;
    auto result = plugin->plugin->run(
        std::string_view(payload ? static_cast<const char*>(payload) : "", payload_len), ident);
    if (!result) return fail(result.error());
    return copy_out(*result, out, out_len);
  });
}

const char* terrarium_last_error_kind(void) { return t_kind.c_str(); }

}  // extern "C"

namespace {

terrarium::Hostcall c_hostcall(terrarium_hostcall_fn function, void* user_data) {
  if (!function) return nullptr;
  return [function, user_data](std::string_view op_name,
                               std::string_view json) -> terrarium::Result<std::string> {
    terrarium_host_result result;
    std::string name(op_name);
    int status = function(user_data, name.c_str(), reinterpret_cast<const uint8_t*>(json.data()),
                          json.size(), &result);
    if (result.failed || status != 0) {
      return terrarium::Error(
          terrarium::ErrorKind::kHostError,
          result.failed ? result.error
                        : "hostcall '" + name + "' returned status " + std::to_string(status));
    }
    return std::move(result.data);
  };
}

terrarium_status fail_function(const terrarium::FunctionError& error) {
  using terrarium::FunctionErrorKind;
  terrarium_status status = TERRARIUM_ERROR_GUEST;
  if (error.kind == FunctionErrorKind::kNoHandler) status = TERRARIUM_ERROR_NOT_FOUND;
  if (error.kind == FunctionErrorKind::kInJsonErr) status = TERRARIUM_ERROR_ARGUMENT;
  if (error.kind == FunctionErrorKind::kVersionMismatch) status = TERRARIUM_ERROR_CONFIG;
  if (error.kind == FunctionErrorKind::kHandlerErr &&
      error.cause != terrarium::ErrorKind::kGuestError)
    status = status_of(error.cause);
  return fail(status, error.message, error.traceback,
              terrarium::function_error_kind_name(error.kind));
}

terrarium_status finish_functions(terrarium_runtime* runtime, const std::string& version,
                                  std::vector<terrarium::OpInfo> ops,
                                  std::unique_ptr<terrarium::OpsManifest> manifest,
                                  terrarium::Hostcall hostcall, terrarium_functions** out) {
  terrarium::FunctionsOptions options;
  auto created = terrarium::Functions::create(runtime->runtime, options);
  if (!created) return fail(created.error());
  auto handle = std::make_unique<terrarium_functions>();
  handle->functions = std::move(*created);
  handle->manifest = std::move(manifest);
  handle->hostcall =
      handle->manifest
          ? terrarium::manifest_hostcall(*handle->manifest, *handle->functions, std::move(hostcall))
          : std::move(hostcall);
  auto ready = handle->functions->init(version, std::move(ops));
  if (!ready) return fail_function(ready.error());
  *out = handle.release();
  return TERRARIUM_OK;
}

}  // namespace

extern "C" {

terrarium_status terrarium_functions_new(terrarium_runtime* runtime, const char* metatype_version,
                                         const char* ops_json, terrarium_hostcall_fn hostcall,
                                         void* user_data, terrarium_functions** out) {
  return guard([&] {
    if (!runtime || !ops_json || !out) return null_argument("runtime, ops_json or out");
    *out = nullptr;
    auto ops = terrarium::parse_mat_infos(ops_json);
    if (!ops) return fail(TERRARIUM_ERROR_ARGUMENT, "ops_json: " + ops.error().message());
    return finish_functions(runtime, metatype_version ? metatype_version : "", std::move(*ops),
                            nullptr, c_hostcall(hostcall, user_data), out);
  });
}

terrarium_status terrarium_functions_from_manifest(terrarium_runtime* runtime, const char* path,
                                                   terrarium_hostcall_fn hostcall, void* user_data,
                                                   terrarium_functions** out) {
  return guard([&] {
    if (!runtime || !path || !out) return null_argument("runtime, path or out");
    *out = nullptr;
    auto manifest = terrarium::load_ops_manifest(path);
    if (!manifest) return fail(manifest.error());
    auto owned = std::make_unique<terrarium::OpsManifest>(std::move(*manifest));
    std::vector<terrarium::OpInfo> ops = owned->ops;
    return finish_functions(runtime, "", std::move(ops), std::move(owned),
                            c_hostcall(hostcall, user_data), out);
  });
}

void terrarium_functions_free(terrarium_functions* functions) { delete functions; }

terrarium_status terrarium_functions_handle(terrarium_functions* functions, const char* op_name,
                                            const char* in_json, size_t in_json_len, uint8_t** out,
                                            size_t* out_len) {
  return guard([&] {
    if (!functions || !op_name || !out || (!in_json && in_json_len))
      return null_argument("functions, op_name, in_json or out");
    *out = nullptr;
    if (out_len) *out_len = 0;
    auto result = functions->functions->handle(
        op_name, std::string_view(in_json ? in_json : "", in_json_len), functions->hostcall);
    if (!result) return fail_function(result.error());
    return copy_out(*result, out, out_len);
  });
}

}  // extern "C"
