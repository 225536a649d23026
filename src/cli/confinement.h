// The second wall: what the terrarium process itself may still do once it
// has started, should a bug in the host ever hand a guest control of it.
// Two independent layers (docs/security.md):
//   - Landlock: the filesystem the process may reach (its mounts, config,
//     logs) and the TCP ports it may connect to;
//   - seccomp-bpf: the system calls it may make (no execve, ptrace, fork,
//     mount, outbound connect...).
// Both are one-way: nothing undoes them for the life of the process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "terrarium/error.h"

namespace terrarium::cli {

// --- Landlock ---------------------------------------------------------------

struct PathAccess {
  std::string path;      // a file or a folder (its whole tree)
  bool write = false;    // create, write, remove, rename inside it
  bool execute = false;  // map files of it as executable (shared libraries)
  // Only remove empty folders in it (the temporary folder, where the
  // process's own scratch and log folders are removed at exit).
  bool remove_empty_folders_only = false;
};

struct FilesystemWall {
  std::vector<PathAccess> paths;
  // TCP ports connect() may reach; empty: none (with a kernel whose Landlock
  // has no network rules, seccomp still forbids connect unless allowed).
  std::vector<uint16_t> connect_ports;
};

// What Landlock could enforce here.
struct FilesystemWallStatus {
  int abi = 0;           // 0: the kernel has no Landlock (nothing enforced)
  bool network = false;  // TCP connect rules enforced (ABI >= 4)
  std::string note;      // for the log when abi == 0
};

// Restricts the calling thread and every thread it creates afterwards, so
// call it before the process starts its threads (it fails, naming the
// count, if other threads exist). Paths that do not exist are skipped.
Result<FilesystemWallStatus> build_filesystem_wall(const FilesystemWall& wall);

// The host paths every command needs besides its own: the timezone file,
// the CPU list some libraries read, /dev/null and friends.
void add_process_basics(FilesystemWall* wall);

// What getaddrinfo reads (hosts, resolv.conf, nsswitch, the NSS modules).
void add_name_resolution(FilesystemWall* wall);

// --- seccomp ----------------------------------------------------------------

struct SystemCallWall {
  // socket() (IPv4/IPv6, stream or datagram) and connect(), for hostcalls
  // to allowed HTTP endpoints; off,
  // both fail with EPERM.
  bool allow_outbound_connections = false;
};

// Installs the filter on every thread of the process (TSYNC). A forbidden
// call fails with EPERM, and the first time each one is made a line naming
// it goes to stderr ("terrarium: the host's system-call filter refused
// execve"), so that a legitimate need shows up instead of a mystery.
Result<void> build_system_call_wall(const SystemCallWall& wall);

// --- both -------------------------------------------------------------------

// The instrumented CLI that trains the guest's profile (guest/CMakeLists.txt)
// writes its .gcda files into the build tree at exit: it starts unconfined.
#ifdef TERRARIUM_PROFILE_TRAINING
inline constexpr bool kConfineByDefault = false;
#else
inline constexpr bool kConfineByDefault = true;
#endif

// --no-confine, shared by run, serve and functions.
inline constexpr const char* kNoConfineHelp =
    "Do not build the second wall around the terrarium process itself (Landlock:\n"
    "only the mounts, config and logs; seccomp: no execve, ptrace, fork, outbound\n"
    "connect...). On by default; see docs/security.md";

}  // namespace terrarium::cli
