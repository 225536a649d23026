// The wasi_snapshot_preview1 imports of a wasm2c-translated guest, bound to a
// terrarium::wasi::Wasi. wasm2c declares each import as
//   u32 Z_wasi_snapshot_preview1Z_<name>(struct Z_wasi_snapshot_preview1_instance_t*, ...);
// and wasi_imports.cc defines them all (extern "C"). The embedder fills one
// instance struct per guest instance and passes it to the module's
// instantiate function.
#pragma once

#include <wasm-rt.h>

namespace terrarium::wasi {
class Wasi;
}

struct Z_wasi_snapshot_preview1_instance_t {
  terrarium::wasi::Wasi* wasi;
  wasm_rt_memory_t* memory;
};
