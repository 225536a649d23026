/* Terrarium's C API: run untrusted Python in a sandbox, call it, let it call
 * you. For C and for FFI (opaque handles, status codes, callbacks with user
 * data). No C++ exception crosses this API.
 *
 * Errors: every fallible function returns a terrarium_status; the message
 * (and, for a Python exception, its traceback) of the last failure on the
 * calling thread is available from terrarium_last_error() and
 * terrarium_last_error_details() until the next failing call on that thread.
 *
 * Threads: a runtime may be shared by threads; a sandbox or plugin is used by
 * one thread at a time. */
#ifndef TERRARIUM_H
#define TERRARIUM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum terrarium_status {
  TERRARIUM_OK = 0,
  TERRARIUM_ERROR_CONFIG = 1,    /* bad configuration */
  TERRARIUM_ERROR_TRAP = 2,      /* the guest trapped; the sandbox is spent */
  TERRARIUM_ERROR_LIMIT = 3,     /* a limit was hit */
  TERRARIUM_ERROR_TIMEOUT = 4,   /* a deadline passed */
  TERRARIUM_ERROR_GUEST = 5,     /* Python raised (see terrarium_last_error_details) */
  TERRARIUM_ERROR_HOST = 6,      /* a host-side failure (e.g. re-entrant call) */
  TERRARIUM_ERROR_NOT_FOUND = 7, /* no such export / file / plugin */
  TERRARIUM_ERROR_INTERNAL = 8,  /* a bug in Terrarium */
  TERRARIUM_ERROR_ARGUMENT = 9,  /* a NULL handle or other bad argument */
  TERRARIUM_ERROR_INTERRUPTED = 10 /* terrarium_sandbox_interrupt stopped the call */
} terrarium_status;

/* Flags for terrarium_sandbox_define and terrarium_sandbox_call. */
#define TERRARIUM_BYTES 0 /* payloads are raw bytes */
#define TERRARIUM_JSON 1  /* payloads are UTF-8 JSON text */

typedef struct terrarium_runtime terrarium_runtime;
typedef struct terrarium_config terrarium_config;
typedef struct terrarium_sandbox terrarium_sandbox;
typedef struct terrarium_plugin terrarium_plugin;
typedef struct terrarium_host_result terrarium_host_result;
typedef struct terrarium_functions terrarium_functions;

const char* terrarium_last_error(void);
const char* terrarium_last_error_details(void);
const char* terrarium_status_name(terrarium_status status);
/* Frees a buffer returned by this API (results). */
void terrarium_free(void* buffer);

terrarium_status terrarium_runtime_new(terrarium_runtime** out);
void terrarium_runtime_free(terrarium_runtime* runtime);

/* Sandbox configuration; everything is optional. */
terrarium_config* terrarium_config_new(void);
void terrarium_config_free(terrarium_config* config);
terrarium_status terrarium_config_add_arg(terrarium_config* config, const char* arg);
terrarium_status terrarium_config_add_env(terrarium_config* config, const char* key_value);
terrarium_status terrarium_config_add_mount(terrarium_config* config, const char* host_path,
                                            const char* guest_path, int read_only);
terrarium_status terrarium_config_set_max_memory(terrarium_config* config, uint64_t bytes);

/* A sandbox with CPython initialized; `config` may be NULL. */
terrarium_status terrarium_sandbox_new(terrarium_runtime* runtime, const terrarium_config* config,
                                       terrarium_sandbox** out);
void terrarium_sandbox_free(terrarium_sandbox* sandbox);
/* Stops the call running in `sandbox` now, from any thread (also from a
 * signal handler): that call returns TERRARIUM_ERROR_INTERRUPTED and the
 * sandbox is spent. Returns 1 if a call was running, 0 if none was (then
 * nothing happens: the next call is not affected). */
int terrarium_sandbox_interrupt(terrarium_sandbox* sandbox);

/* A host function. `payload` is valid during the call only. Set the result
 * with terrarium_host_result_set and return 0, or fail with
 * terrarium_host_result_error and return non-zero (Python then raises
 * terrarium.HostError with the message). With TERRARIUM_JSON the payload is
 * JSON text and the result must be JSON text. Do not call into the same
 * sandbox from a host function. */
typedef int (*terrarium_host_fn)(void* user_data, const uint8_t* payload, size_t payload_len,
                                 terrarium_host_result* result);
void terrarium_host_result_set(terrarium_host_result* result, const void* data, size_t length);
void terrarium_host_result_error(terrarium_host_result* result, const char* message);

/* `user_data` must stay valid while the sandbox lives. */
terrarium_status terrarium_sandbox_define(terrarium_sandbox* sandbox, const char* name,
                                          terrarium_host_fn function, void* user_data, int flags);
terrarium_status terrarium_sandbox_exec(terrarium_sandbox* sandbox, const char* code,
                                        size_t code_len);
terrarium_status terrarium_sandbox_exec_file(terrarium_sandbox* sandbox, const char* path);
/* Calls an exported Python function. On success *out (NUL-terminated,
 * free with terrarium_free) and *out_len hold the result. */
terrarium_status terrarium_sandbox_call(terrarium_sandbox* sandbox, const char* name,
                                        const void* payload, size_t payload_len, int flags,
                                        uint8_t** out, size_t* out_len);

/* SE2 plugins: DIR/plugin.py with run_e(payload, ident). */
terrarium_status terrarium_plugin_load(terrarium_runtime* runtime, const char* directory,
                                       terrarium_plugin** out);
void terrarium_plugin_free(terrarium_plugin* plugin);
terrarium_status terrarium_plugin_run(terrarium_plugin* plugin, const void* payload,
                                      size_t payload_len, int64_t ident, uint8_t** out,
                                      size_t* out_len);

/* The function runtime (docs/functions.md): Metatype-style ops, every call in
 * a fresh sandbox. `ops_json` is a JSON array of mat-info records
 * ({"op_name", "mat_title", "mat_hash", "mat_data_json", "effect"}), as in
 * Metatype's init. `hostcall` (may be NULL) answers the ops'
 * hostcall(op_name, value): `json` is the value's JSON text; set the answer's
 * JSON text with terrarium_host_result_set, or fail it with
 * terrarium_host_result_error (the handler gets a HostcallError). It runs on
 * the thread that called terrarium_functions_handle.
 *
 * On failure, terrarium_last_error_kind() names the wire's error kind
 * ("no-handler", "in-json-err", "handler-err", "version-mismatch",
 * "unexpected-mat", "other"); terrarium_last_error() has the message,
 * terrarium_last_error_details() the traceback. A runtime is thread-safe. */
typedef int (*terrarium_hostcall_fn)(void* user_data, const char* op_name, const uint8_t* json,
                                     size_t json_len, terrarium_host_result* result);
terrarium_status terrarium_functions_new(terrarium_runtime* runtime, const char* metatype_version,
                                         const char* ops_json, terrarium_hostcall_fn hostcall,
                                         void* user_data, terrarium_functions** out);
/* The ops of an ops.toml; its [hostcalls] are answered first, the rest by `hostcall`. */
terrarium_status terrarium_functions_from_manifest(terrarium_runtime* runtime, const char* path,
                                                   terrarium_hostcall_fn hostcall, void* user_data,
                                                   terrarium_functions** out);
void terrarium_functions_free(terrarium_functions* functions);
/* Runs op `op_name` on `in_json`; *out (free with terrarium_free) holds the
 * result's JSON text. */
terrarium_status terrarium_functions_handle(terrarium_functions* functions, const char* op_name,
                                            const char* in_json, size_t in_json_len, uint8_t** out,
                                            size_t* out_len);
/* The wire's error kind of the last failing terrarium_functions_* call on
 * this thread ("" after other failures). */
const char* terrarium_last_error_kind(void);

#ifdef __cplusplus
}
#endif

#endif /* TERRARIUM_H */
