// The guest's entry points, linked into python.wasm beside libpython.
//
// python.wasm is a WASI *reactor*: the host calls `_initialize` (C
// constructors) once, then any export. `terrarium_main` is the command-style
// entry used by `terrarium run`: it runs CPython's main with the WASI args.
// The embedding entries (terrarium_initialize, terrarium_call, ...) are in
// bridge.c.
#include <Python.h>
#include <stdlib.h>
#include <wasi/api.h>

void terrarium_register_bridge(void);  // bridge.c: the builtin module _terrarium

__attribute__((export_name("terrarium_main"))) int terrarium_main(void) {
  __wasi_size_t argc = 0, buffer_size = 0;
  if (__wasi_args_sizes_get(&argc, &buffer_size) != 0) return 120;
  char** argv = calloc(argc + 1, sizeof(char*));
  char* buffer = malloc(buffer_size ? buffer_size : 1);
  if (!argv || !buffer) return 120;
  if (__wasi_args_get((uint8_t**)argv, (uint8_t*)buffer) != 0) return 120;
  terrarium_register_bridge();
  return Py_BytesMain((int)argc, argv);
}
