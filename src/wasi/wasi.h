// WASI preview1 (`wasi_snapshot_preview1`), implemented by the host.
//
// Capability-based: the guest sees only the directories it was given
// (host mounts, resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS),
// and read-only in-memory images such as the standard library). Args and
// environment contain only what the embedder passed. Sockets are absent.
//
// Every function takes the guest memory view and the raw wasm arguments and
// returns a WASI errno (0 = success). Nothing here traps or throws into the
// caller: import glue (wasi_imports.cc) turns the errno into the wasm result.
#pragma once

#include <cstdint>
#include <sys/uio.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "wasi/guest_memory.h"
#include "wasi/image.h"

namespace terrarium::wasi {

// WASI errno values (preview1), the ones used here.
enum Errno : uint16_t {
  kSuccess = 0, k2Big = 1, kAccess = 2, kAgain = 6, kBadF = 8, kBusy = 10,
  kExist = 20, kFault = 21, kFBig = 22, kIlSeq = 25, kIntr = 27, kInval = 28, kIo = 29,
  kIsDir = 31, kLoop = 32, kMFile = 33, kMLink = 34, kNameTooLong = 37,
  kNoEnt = 44, kNoMem = 48, kNoSpc = 51, kNoSys = 52, kNotDir = 54,
  kNotEmpty = 55, kNotSup = 58, kNotTty = 59, kOverflow = 61, kPerm = 63,
  kPipe = 64, kRoFs = 69, kSPipe = 70, kXDev = 75, kNotCapable = 76,
};

// A directory of the host made visible to the guest.
struct Mount {
  std::string host_path;   // existing host directory
  std::string guest_path;  // absolute guest path, e.g. "/data"
  bool read_only = false;
};

// A read-only in-memory tree made visible to the guest (the stdlib image).
struct ImageMount {
  std::shared_ptr<const Image> image;
  std::string guest_path;
};

// Where the guest's stdout/stderr go: a host descriptor, or a callback that
// receives each write (for embedders that capture output).
struct OutputSink {
  int host_fd = -1;                                  // used when callback empty
  std::function<void(std::string_view)> callback;    // receives bytes written
};

struct Limits {
  uint64_t max_output_bytes = UINT64_MAX;   // stdout + stderr together
  uint32_t max_open_files = 1024;           // guest fds open at once
  uint64_t max_written_bytes = UINT64_MAX;  // to files on writable mounts
};

struct WasiConfig {
  std::vector<std::string> args;  // argv, argv[0] included
  std::vector<std::string> env;   // "KEY=VALUE"
  std::vector<ImageMount> image_mounts;
  std::vector<Mount> mounts;
  int stdin_fd = -1;              // host fd read for guest fd 0; -1: stdin_data
  // When stdin_fd is -1: the bytes the guest reads on fd 0, then end of file
  // (none: an empty stdin). Shared, so that a reset sandbox need not copy it.
  std::shared_ptr<const std::string> stdin_data;
  OutputSink stdout_sink{1, {}};
  OutputSink stderr_sink{2, {}};
  Limits limits;
  // Asked when a blocking call (stdin read, poll_oneoff sleep) is interrupted
  // by a signal: true means "stop waiting" (a deadline fired), and the call
  // returns kIntr so the import glue can stop the guest.
  std::function<bool()> interrupted;
};

class Wasi {
 public:
  // Opens the mounts. Throws std::runtime_error naming the mount when a host
  // directory cannot be opened.
  explicit Wasi(WasiConfig config);
  ~Wasi();
  Wasi(const Wasi&) = delete;
  Wasi& operator=(const Wasi&) = delete;

  // Set when a limit in config.limits was hit by the last call that returned
  // an errno because of it (the glue turns this into a typed trap).
  const std::string& limit_exceeded() const { return limit_exceeded_; }

  // Gives the guest new args, environment and stdio streams (a snapshot's
  // clone running one request). Output counters and limits carry on.
  void set_invocation(std::vector<std::string> args, std::vector<std::string> env, int stdin_fd,
                      std::shared_ptr<const std::string> stdin_data, OutputSink stdout_sink,
                      OutputSink stderr_sink);

  // True once the guest read from stdin (its Python buffers may hold data).
  bool stdin_was_read() const { return stdin_was_read_; }

  // Guest descriptors open now, and right after construction (stdio and
  // preopens): a snapshot may only be taken when the two agree.
  size_t open_fds() const;
  size_t initial_fds() const { return initial_fds_; }

  using M = const GuestMemory&;
  uint16_t args_get(M, uint32_t argv, uint32_t argv_buf);
  uint16_t args_sizes_get(M, uint32_t argc_out, uint32_t argv_buf_size_out);
  uint16_t environ_get(M, uint32_t environ, uint32_t environ_buf);
  uint16_t environ_sizes_get(M, uint32_t count_out, uint32_t buf_size_out);
  uint16_t clock_res_get(M, uint32_t clock_id, uint32_t resolution_out);
  uint16_t clock_time_get(M, uint32_t clock_id, uint64_t precision, uint32_t time_out);
  uint16_t fd_advise(M, uint32_t fd, uint64_t offset, uint64_t length, uint32_t advice);
  uint16_t fd_allocate(M, uint32_t fd, uint64_t offset, uint64_t length);
  uint16_t fd_close(M, uint32_t fd);
  uint16_t fd_datasync(M, uint32_t fd);
  uint16_t fd_fdstat_get(M, uint32_t fd, uint32_t stat_out);
  uint16_t fd_fdstat_set_flags(M, uint32_t fd, uint32_t flags);
  uint16_t fd_fdstat_set_rights(M, uint32_t fd, uint64_t base, uint64_t inheriting);
  uint16_t fd_filestat_get(M, uint32_t fd, uint32_t filestat_out);
  uint16_t fd_filestat_set_size(M, uint32_t fd, uint64_t size);
  uint16_t fd_filestat_set_times(M, uint32_t fd, uint64_t atim, uint64_t mtim, uint32_t fst_flags);
  uint16_t fd_pread(M, uint32_t fd, uint32_t iovs, uint32_t iovs_len, uint64_t offset, uint32_t nread_out);
  uint16_t fd_prestat_get(M, uint32_t fd, uint32_t prestat_out);
  uint16_t fd_prestat_dir_name(M, uint32_t fd, uint32_t path, uint32_t path_len);
  uint16_t fd_pwrite(M, uint32_t fd, uint32_t iovs, uint32_t iovs_len, uint64_t offset, uint32_t nwritten_out);
  uint16_t fd_read(M, uint32_t fd, uint32_t iovs, uint32_t iovs_len, uint32_t nread_out);
  uint16_t fd_readdir(M, uint32_t fd, uint32_t buf, uint32_t buf_len, uint64_t cookie, uint32_t bufused_out);
  uint16_t fd_renumber(M, uint32_t fd, uint32_t to);
  uint16_t fd_seek(M, uint32_t fd, int64_t offset, uint32_t whence, uint32_t newoffset_out);
  uint16_t fd_sync(M, uint32_t fd);
  uint16_t fd_tell(M, uint32_t fd, uint32_t offset_out);
  uint16_t fd_write(M, uint32_t fd, uint32_t iovs, uint32_t iovs_len, uint32_t nwritten_out);
  uint16_t path_create_directory(M, uint32_t fd, uint32_t path, uint32_t path_len);
  uint16_t path_filestat_get(M, uint32_t fd, uint32_t lookup_flags, uint32_t path, uint32_t path_len, uint32_t filestat_out);
  uint16_t path_filestat_set_times(M, uint32_t fd, uint32_t lookup_flags, uint32_t path, uint32_t path_len, uint64_t atim, uint64_t mtim, uint32_t fst_flags);
  uint16_t path_link(M, uint32_t old_fd, uint32_t old_flags, uint32_t old_path, uint32_t old_path_len, uint32_t new_fd, uint32_t new_path, uint32_t new_path_len);
  uint16_t path_open(M, uint32_t dirfd, uint32_t dirflags, uint32_t path, uint32_t path_len, uint32_t oflags, uint64_t rights_base, uint64_t rights_inheriting, uint32_t fdflags, uint32_t fd_out);
  uint16_t path_readlink(M, uint32_t fd, uint32_t path, uint32_t path_len, uint32_t buf, uint32_t buf_len, uint32_t bufused_out);
  uint16_t path_remove_directory(M, uint32_t fd, uint32_t path, uint32_t path_len);
  uint16_t path_rename(M, uint32_t fd, uint32_t old_path, uint32_t old_path_len, uint32_t new_fd, uint32_t new_path, uint32_t new_path_len);
  uint16_t path_symlink(M, uint32_t old_path, uint32_t old_path_len, uint32_t fd, uint32_t new_path, uint32_t new_path_len);
  uint16_t path_unlink_file(M, uint32_t fd, uint32_t path, uint32_t path_len);
  uint16_t poll_oneoff(M, uint32_t in, uint32_t out, uint32_t nsubscriptions, uint32_t nevents_out);
  uint16_t proc_raise(M, uint32_t signal);
  uint16_t sched_yield(M);
  uint16_t random_get(M, uint32_t buf, uint32_t buf_len);
  uint16_t sock_accept(M, uint32_t fd, uint32_t flags, uint32_t fd_out);
  uint16_t sock_recv(M, uint32_t fd, uint32_t ri_data, uint32_t ri_data_len, uint32_t ri_flags, uint32_t ro_datalen_out, uint32_t ro_flags_out);
  uint16_t sock_send(M, uint32_t fd, uint32_t si_data, uint32_t si_data_len, uint32_t si_flags, uint32_t so_datalen_out);
  uint16_t sock_shutdown(M, uint32_t fd, uint32_t how);
  // proc_exit is handled by the import glue (it unwinds the guest).

 private:
  // The write limit, the EINTR loop and the byte count of fd_write and
  // fd_pwrite on host files; `write` performs the system call.
  template <typename Write>
  uint16_t write_host_file(M m, const std::vector<struct iovec>& vec, uint64_t total,
                           uint32_t nwritten_out, Write write);

  struct FdTable;
  std::unique_ptr<FdTable> fds_;
  WasiConfig config_;
  std::string limit_exceeded_;
  uint64_t output_bytes_ = 0;
  uint64_t written_bytes_ = 0;
  size_t initial_fds_ = 0;
  bool stdin_was_read_ = false;
};

}  // namespace terrarium::wasi
