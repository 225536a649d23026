// extern "C" glue between wasm2c-generated code and terrarium::wasi::Wasi.
//
// Each import: check the native stack, enter_host(), run the WASI function on
// a bounds-checked view of the guest memory in a nested scope (exceptions
// become EIO), leave_host(), then stop the guest if a limit was hit. Nothing
// with a destructor is alive when a raise_* function unwinds.
#include "wasi/wasi_imports.h"

#include <cstdint>

#include "engine/host_import.h"
#include "wasi/guest_memory.h"
#include "wasi/wasi.h"

using terrarium::wasi::GuestMemory;
using terrarium::wasi::Wasi;
using Instance = Z_wasi_snapshot_preview1_instance_t;
using u32 = uint32_t;
using u64 = uint64_t;

namespace {

template <typename Call>
u32 host_call(Instance* instance, const Call& call) {
  u32 result = terrarium::engine::run_host_import([&]() noexcept -> u32 {
    GuestMemory view(instance->memory->data, instance->memory->size);
    try {
      return call(*instance->wasi, view);
    } catch (...) {
      return terrarium::wasi::kIo;
    }
  });
  if (!instance->wasi->limit_exceeded().empty())
    terrarium::engine::raise_host_abort(instance->wasi->limit_exceeded());
  return result;
}

}  // namespace

// One line per import: NAME(params) -> Wasi::NAME(memory, args).
#define TERRARIUM_WASI_IMPORT(name, params, args)                                                \
  extern "C" u32 Z_wasi_snapshot_preview1Z_##name params {                                       \
    return host_call(                                                                            \
        instance, [&](Wasi& wasi, const GuestMemory& memory) -> u32 { return wasi.name args; }); \
  }

// clang-format off
TERRARIUM_WASI_IMPORT(args_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(args_sizes_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(environ_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(environ_sizes_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(clock_res_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(clock_time_get, (Instance* instance, u32 a, u64 b, u32 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(fd_advise, (Instance* instance, u32 a, u64 b, u64 c, u32 d), (memory, a, b, c, d))
TERRARIUM_WASI_IMPORT(fd_allocate, (Instance* instance, u32 a, u64 b, u64 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(fd_close, (Instance* instance, u32 a), (memory, a))
TERRARIUM_WASI_IMPORT(fd_datasync, (Instance* instance, u32 a), (memory, a))
TERRARIUM_WASI_IMPORT(fd_fdstat_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(fd_fdstat_set_flags, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(fd_fdstat_set_rights, (Instance* instance, u32 a, u64 b, u64 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(fd_filestat_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(fd_filestat_set_size, (Instance* instance, u32 a, u64 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(fd_filestat_set_times, (Instance* instance, u32 a, u64 b, u64 c, u32 d), (memory, a, b, c, d))
TERRARIUM_WASI_IMPORT(fd_pread, (Instance* instance, u32 a, u32 b, u32 c, u64 d, u32 e), (memory, a, b, c, d, e))
TERRARIUM_WASI_IMPORT(fd_prestat_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(fd_prestat_dir_name, (Instance* instance, u32 a, u32 b, u32 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(fd_pwrite, (Instance* instance, u32 a, u32 b, u32 c, u64 d, u32 e), (memory, a, b, c, d, e))
TERRARIUM_WASI_IMPORT(fd_read, (Instance* instance, u32 a, u32 b, u32 c, u32 d), (memory, a, b, c, d))
TERRARIUM_WASI_IMPORT(fd_readdir, (Instance* instance, u32 a, u32 b, u32 c, u64 d, u32 e), (memory, a, b, c, d, e))
TERRARIUM_WASI_IMPORT(fd_renumber, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(fd_seek, (Instance* instance, u32 a, u64 b, u32 c, u32 d), (memory, a, static_cast<int64_t>(b), c, d))
TERRARIUM_WASI_IMPORT(fd_sync, (Instance* instance, u32 a), (memory, a))
TERRARIUM_WASI_IMPORT(fd_tell, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(fd_write, (Instance* instance, u32 a, u32 b, u32 c, u32 d), (memory, a, b, c, d))
TERRARIUM_WASI_IMPORT(path_create_directory, (Instance* instance, u32 a, u32 b, u32 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(path_filestat_get, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e), (memory, a, b, c, d, e))
TERRARIUM_WASI_IMPORT(path_filestat_set_times, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u64 e, u64 f, u32 g), (memory, a, b, c, d, e, f, g))
TERRARIUM_WASI_IMPORT(path_link, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e, u32 f, u32 g), (memory, a, b, c, d, e, f, g))
TERRARIUM_WASI_IMPORT(path_open, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e, u64 f, u64 g, u32 h, u32 i), (memory, a, b, c, d, e, f, g, h, i))
TERRARIUM_WASI_IMPORT(path_readlink, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e, u32 f), (memory, a, b, c, d, e, f))
TERRARIUM_WASI_IMPORT(path_remove_directory, (Instance* instance, u32 a, u32 b, u32 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(path_rename, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e, u32 f), (memory, a, b, c, d, e, f))
TERRARIUM_WASI_IMPORT(path_symlink, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e), (memory, a, b, c, d, e))
TERRARIUM_WASI_IMPORT(path_unlink_file, (Instance* instance, u32 a, u32 b, u32 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(poll_oneoff, (Instance* instance, u32 a, u32 b, u32 c, u32 d), (memory, a, b, c, d))
TERRARIUM_WASI_IMPORT(proc_raise, (Instance* instance, u32 a), (memory, a))
TERRARIUM_WASI_IMPORT(sched_yield, (Instance* instance), (memory))
TERRARIUM_WASI_IMPORT(random_get, (Instance* instance, u32 a, u32 b), (memory, a, b))
TERRARIUM_WASI_IMPORT(sock_accept, (Instance* instance, u32 a, u32 b, u32 c), (memory, a, b, c))
TERRARIUM_WASI_IMPORT(sock_recv, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e, u32 f), (memory, a, b, c, d, e, f))
TERRARIUM_WASI_IMPORT(sock_send, (Instance* instance, u32 a, u32 b, u32 c, u32 d, u32 e), (memory, a, b, c, d, e))
TERRARIUM_WASI_IMPORT(sock_shutdown, (Instance* instance, u32 a, u32 b), (memory, a, b))
// clang-format on

extern "C" void Z_wasi_snapshot_preview1Z_proc_exit(Instance*, u32 code) {
  terrarium::engine::raise_exit(static_cast<int>(code));
}
