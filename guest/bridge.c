// The guest half of Terrarium's bridge (docs/abi.md): the builtin module
// `_terrarium` (host calls from Python) and the reactor exports the host uses
// to initialize CPython, run code and call exported Python functions.
//
// Host calls are wasm imports of module "terrarium". Everything the host
// hands back arrives through them; the guest never trusts the host with its
// own pointers beyond the call that passes them.
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#define TERRARIUM_IMPORT(name) __attribute__((import_module("terrarium"), import_name(#name)))
#define TERRARIUM_EXPORT(name) __attribute__((export_name(#name)))

// Payload kinds (docs/abi.md).
enum { KIND_JSON = 0, KIND_BYTES = 1, KIND_ERROR = 2, KIND_NOT_FOUND = 3 };
// Statuses returned by the imports and exports.
enum {
  STATUS_OK = 0,
  STATUS_HOST_ERROR = 1,
  STATUS_NOT_FOUND = 2,
  STATUS_GUEST_ERROR = 3,
};

// Calls host function `name` with `payload`; on return info[0] is the length
// of the result the host keeps (info[1] its kind) until host_result.
TERRARIUM_IMPORT(host_call)
int32_t terrarium_import_host_call(const char* name, uint32_t name_len, const void* payload,
                                   uint32_t payload_len, uint32_t kind, uint32_t* info);
// Copies the pending result of the last host_call into buffer.
TERRARIUM_IMPORT(host_result) int32_t terrarium_import_host_result(void* buffer, uint32_t length);
// Hands the result of the current terrarium_exec / terrarium_call to the host.
TERRARIUM_IMPORT(set_result)
int32_t terrarium_import_set_result(const void* data, uint32_t length, uint32_t kind);

static PyObject* g_host_error;  // terrarium.HostError
static PyObject* g_dispatch;    // terrarium._dispatch(name, data, kind) -> (kind, data)
static PyObject* g_exec;        // terrarium._exec(code, filename) -> (kind, data)
static int g_initialized;

// ---- the `_terrarium` module ------------------------------------------------

// host_call(name: str, payload: str | bytes, kind: int) -> str (JSON) | bytes
static PyObject* bridge_host_call(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  (void)self;
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "host_call(name, payload, kind) takes 3 arguments");
    return NULL;
  }
  Py_ssize_t name_len = 0, payload_len = 0;
  const char* name = PyUnicode_AsUTF8AndSize(args[0], &name_len);
  if (!name) return NULL;
  const char* payload;
  if (PyBytes_Check(args[1])) {
    payload = PyBytes_AS_STRING(args[1]);
    payload_len = PyBytes_GET_SIZE(args[1]);
  } else {
    payload = PyUnicode_AsUTF8AndSize(args[1], &payload_len);
    if (!payload) return NULL;
  }
  unsigned long kind = PyLong_AsUnsignedLong(args[2]);
  if (kind == (unsigned long)-1 && PyErr_Occurred()) return NULL;
  uint32_t info[2] = {0, 0};
  int32_t status = terrarium_import_host_call(name, (uint32_t)name_len, payload,
                                              (uint32_t)payload_len, (uint32_t)kind, info);
  if (status < 0) {
    PyErr_Format(PyExc_SystemError, "terrarium: host_call ABI error %d", (int)status);
    return NULL;
  }
  uint32_t length = info[0];
  if (status == STATUS_OK && info[1] == KIND_BYTES) {
    PyObject* bytes = PyBytes_FromStringAndSize(NULL, length);
    if (!bytes) return NULL;
    int32_t copied = terrarium_import_host_result(PyBytes_AS_STRING(bytes), length);
    if (copied != 0) {
      Py_DECREF(bytes);
      PyErr_Format(PyExc_SystemError, "terrarium: host_result ABI error %d", (int)copied);
      return NULL;
    }
    return bytes;
  }
  char small[1024];
  char* buffer = length <= sizeof small ? small : malloc(length ? length : 1);
  if (!buffer) return PyErr_NoMemory();
  int32_t copied = terrarium_import_host_result(buffer, length);
  PyObject* result = NULL;
  if (copied != 0) {
    PyErr_Format(PyExc_SystemError, "terrarium: host_result ABI error %d", (int)copied);
  } else if (status == STATUS_OK) {
    result = PyUnicode_DecodeUTF8(buffer, length, "strict");
  } else {
    PyObject* message = PyUnicode_DecodeUTF8(buffer, length, "replace");
    if (message) {
      PyErr_SetObject(g_host_error, message);
      Py_DECREF(message);
    }
  }
  if (buffer != small) free(buffer);
  return result;
}

// The raw imports with integer "pointers", for tests of hostile ABI use: each
// returns the import's status unchanged.
static PyObject* bridge_raw_host_call(PyObject* self, PyObject* args) {
  (void)self;
  unsigned int name, name_len, payload, payload_len, kind, info;
  if (!PyArg_ParseTuple(args, "IIIIII", &name, &name_len, &payload, &payload_len, &kind, &info))
    return NULL;
  return PyLong_FromLong(terrarium_import_host_call(
      (const char*)(uintptr_t)name, name_len, (const void*)(uintptr_t)payload, payload_len, kind,
      (uint32_t*)(uintptr_t)info));
}

static PyObject* bridge_raw_host_result(PyObject* self, PyObject* args) {
  (void)self;
  unsigned int buffer, length;
  if (!PyArg_ParseTuple(args, "II", &buffer, &length)) return NULL;
  return PyLong_FromLong(terrarium_import_host_result((void*)(uintptr_t)buffer, length));
}

static PyObject* bridge_raw_set_result(PyObject* self, PyObject* args) {
  (void)self;
  unsigned int data, length, kind;
  if (!PyArg_ParseTuple(args, "III", &data, &length, &kind)) return NULL;
  return PyLong_FromLong(terrarium_import_set_result((const void*)(uintptr_t)data, length, kind));
}

static PyMethodDef bridge_methods[] = {
    {"host_call", (PyCFunction)(void (*)(void))bridge_host_call, METH_FASTCALL,
     "host_call(name, payload, kind) -> str | bytes: call a host function"},
    {"raw_host_call", bridge_raw_host_call, METH_VARARGS,
     "raw_host_call(name_ptr, name_len, payload_ptr, payload_len, kind, info_ptr) -> status"},
    {"raw_host_result", bridge_raw_host_result, METH_VARARGS,
     "raw_host_result(buffer_ptr, length) -> status"},
    {"raw_set_result", bridge_raw_set_result, METH_VARARGS,
     "raw_set_result(data_ptr, length, kind) -> status"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bridge_module = {
    PyModuleDef_HEAD_INIT, "_terrarium", "Terrarium's host bridge (use `import terrarium`).", -1,
    bridge_methods, NULL, NULL, NULL, NULL,
};

static PyObject* PyInit__terrarium(void) {
  PyObject* module = PyModule_Create(&bridge_module);
  if (!module) return NULL;
  if (!g_host_error) {
    g_host_error = PyErr_NewExceptionWithDoc(
        "terrarium.HostError", "A host function failed or does not exist.", NULL, NULL);
    if (!g_host_error) goto fail;
  }
  Py_INCREF(g_host_error);
  if (PyModule_AddObject(module, "HostError", g_host_error) < 0) {
    Py_DECREF(g_host_error);
    goto fail;
  }
  if (PyModule_AddIntConstant(module, "KIND_JSON", KIND_JSON) < 0 ||
      PyModule_AddIntConstant(module, "KIND_BYTES", KIND_BYTES) < 0 ||
      PyModule_AddIntConstant(module, "KIND_ERROR", KIND_ERROR) < 0 ||
      PyModule_AddIntConstant(module, "KIND_NOT_FOUND", KIND_NOT_FOUND) < 0)
    goto fail;
  return module;
fail:
  Py_DECREF(module);
  return NULL;
}

// Called by main.c (and terrarium_initialize) before CPython initializes.
void terrarium_register_bridge(void) {
  static int registered;
  if (!registered) {
    PyImport_AppendInittab("_terrarium", PyInit__terrarium);
    registered = 1;
  }
}

// ---- reactor exports ----------------------------------------------------------

static int32_t report_error(const char* type, const char* message) {
  // A JSON error payload built without Python (it may not be usable).
  char buffer[1024];
  int length = snprintf(buffer, sizeof buffer,
                        "{\"type\":\"%s\",\"message\":\"%s\",\"traceback\":\"\"}", type, message);
  if (length < 0) length = 0;
  if ((size_t)length >= sizeof buffer) length = sizeof buffer - 1;
  terrarium_import_set_result(buffer, (uint32_t)length, KIND_ERROR);
  return STATUS_GUEST_ERROR;
}

// Hands a (kind, data) tuple from the SDK to the host.
static int32_t hand_back(PyObject* outcome) {
  if (!outcome) {
    PyErr_Clear();
    return report_error("SystemError", "the terrarium SDK dispatcher failed");
  }
  long kind = -1;
  const char* data = NULL;
  Py_ssize_t length = 0;
  if (PyTuple_Check(outcome) && PyTuple_GET_SIZE(outcome) == 2) {
    kind = PyLong_AsLong(PyTuple_GET_ITEM(outcome, 0));
    PyObject* payload = PyTuple_GET_ITEM(outcome, 1);
    if (PyBytes_Check(payload)) {
      data = PyBytes_AS_STRING(payload);
      length = PyBytes_GET_SIZE(payload);
    } else if (PyUnicode_Check(payload)) {
      data = PyUnicode_AsUTF8AndSize(payload, &length);
    }
  }
  if (!data || kind < 0) {
    PyErr_Clear();
    Py_DECREF(outcome);
    return report_error("SystemError", "the terrarium SDK dispatcher returned a bad value");
  }
  terrarium_import_set_result(data, (uint32_t)length, (uint32_t)kind);
  Py_DECREF(outcome);
  return kind == KIND_ERROR ? STATUS_GUEST_ERROR : kind == KIND_NOT_FOUND ? STATUS_NOT_FOUND : 0;
}

TERRARIUM_EXPORT(terrarium_initialize) int32_t terrarium_initialize(void) {
  if (g_initialized) return g_initialized == 1 ? STATUS_OK : STATUS_GUEST_ERROR;
  g_initialized = -1;
  terrarium_register_bridge();

  PyConfig config;
  PyConfig_InitIsolatedConfig(&config);
  config.buffered_stdio = 0;  // output reaches the host when it is written
  config.install_signal_handlers = 0;
  __wasi_size_t argc = 0, buffer_size = 0;
  char** argv = NULL;
  char* buffer = NULL;
  if (__wasi_args_sizes_get(&argc, &buffer_size) == 0 && argc > 0) {
    argv = calloc(argc + 1, sizeof(char*));
    buffer = malloc(buffer_size ? buffer_size : 1);
    if (argv && buffer && __wasi_args_get((uint8_t**)argv, (uint8_t*)buffer) == 0) {
      PyConfig_SetBytesArgv(&config, (Py_ssize_t)argc, argv);
    }
  }
  PyStatus status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  free(argv);
  free(buffer);
  if (PyStatus_Exception(status)) {
    return report_error("RuntimeError", status.err_msg ? status.err_msg : "CPython failed to start");
  }
  PyObject* sdk = PyImport_ImportModule("terrarium");
  if (sdk) {
    g_dispatch = PyObject_GetAttrString(sdk, "_dispatch");
    g_exec = PyObject_GetAttrString(sdk, "_exec");
    Py_DECREF(sdk);
  }
  if (!g_dispatch || !g_exec) {
    PyErr_Print();
    return report_error("ImportError", "cannot import the terrarium SDK");
  }
  g_initialized = 1;
  return STATUS_OK;
}

TERRARIUM_EXPORT(terrarium_alloc) void* terrarium_alloc(uint32_t size) {
  return malloc(size ? size : 1);
}

TERRARIUM_EXPORT(terrarium_free) void terrarium_free(void* pointer) { free(pointer); }

// Runs `code` in __main__ (filename: for tracebacks). Result: kind JSON "null"
// or an error.
TERRARIUM_EXPORT(terrarium_exec)
int32_t terrarium_exec(const char* code, uint32_t code_len, const char* filename,
                       uint32_t filename_len) {
  if (g_initialized != 1) return report_error("RuntimeError", "terrarium_initialize has not run");
  PyObject* code_obj = PyUnicode_DecodeUTF8(code, code_len, "surrogateescape");
  PyObject* name_obj = PyUnicode_DecodeUTF8(filename, filename_len, "surrogateescape");
  PyObject* outcome = NULL;
  if (code_obj && name_obj) outcome = PyObject_CallFunctionObjArgs(g_exec, code_obj, name_obj, NULL);
  Py_XDECREF(code_obj);
  Py_XDECREF(name_obj);
  return hand_back(outcome);
}

// Calls the exported function `name` with `payload` (kind JSON: UTF-8 JSON
// text; kind BYTES: raw bytes).
TERRARIUM_EXPORT(terrarium_call)
int32_t terrarium_call(const char* name, uint32_t name_len, const char* payload,
                       uint32_t payload_len, uint32_t kind) {
  if (g_initialized != 1) return report_error("RuntimeError", "terrarium_initialize has not run");
  PyObject* name_obj = PyUnicode_DecodeUTF8(name, name_len, "surrogateescape");
  PyObject* data = kind == KIND_BYTES ? PyBytes_FromStringAndSize(payload, payload_len)
                                      : PyUnicode_DecodeUTF8(payload, payload_len, "strict");
  PyObject* outcome = NULL;
  if (name_obj && data) {
    PyObject* args[3] = {name_obj, data, NULL};
    args[2] = PyLong_FromUnsignedLong(kind);
    if (args[2]) {
      outcome = PyObject_Vectorcall(g_dispatch, args, 3, NULL);
      Py_DECREF(args[2]);
    }
  }
  Py_XDECREF(name_obj);
  Py_XDECREF(data);
  if (!outcome && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
    PyErr_Clear();
    return report_error("UnicodeDecodeError", "the JSON payload is not valid UTF-8");
  }
  return hand_back(outcome);
}
