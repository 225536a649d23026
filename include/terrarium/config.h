// What a sandbox is made of: its arguments, environment, mounts, streams and
// limits. Everything a guest can see or use is named here; nothing else is
// visible to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace terrarium {

// A host directory made visible to the guest at `guest_path`.
struct Mount {
  std::string host_path;
  std::string guest_path;
  bool read_only = false;
};

// A read-only file provided from memory (e.g. the script `terrarium run`
// executes), visible at `guest_path`.
struct VirtualFile {
  std::string guest_path;  // absolute, e.g. "/script/main.py"
  std::string contents;
};

// Where guest output goes. By default: the host's own stdout/stderr.
struct Output {
  int host_fd = -1;                                // write here when no callback
  std::function<void(std::string_view)> callback;  // receives every write
};

struct Limits {
  uint64_t max_memory_bytes = 0;        // 0: the module's own maximum (4 GiB)
  std::chrono::milliseconds timeout{0}; // wall-clock deadline; 0: none
  std::chrono::milliseconds cpu_timeout{0};  // CPU-time deadline; 0: none
  uint64_t max_output_bytes = 0;        // stdout + stderr; 0: unlimited
  uint32_t max_open_files = 0;          // 0: 1024
  uint64_t max_written_bytes = 0;       // to writable mounts; 0: unlimited
};

struct SandboxConfig {
  std::vector<std::string> args;  // argv; args[0] is the program name
  std::vector<std::string> env;   // "KEY=VALUE"; nothing of the host's is passed
  std::vector<Mount> mounts;
  std::vector<VirtualFile> files;
  int stdin_fd = -1;              // host fd the guest reads as stdin; -1: stdin_data
  std::string stdin_data;         // when stdin_fd is -1: what stdin holds, then EOF
  Output stdout_output{1, {}};
  Output stderr_output{2, {}};
  Limits limits;
};

// What one run of a program gets from whoever starts it: its arguments,
// environment and standard streams — a request's, a job's. A sandbox made
// from a snapshot starts with the snapshot's args and env (CPython read them
// while starting); Sandbox::set_invocation gives it its own.
struct Invocation {
  std::vector<std::string> args;  // sys.argv exactly (args[0]: the script's name)
  std::vector<std::string> env;   // "KEY=VALUE": the whole environment
  int stdin_fd = -1;              // host fd the guest reads as stdin; -1: stdin_data
  std::string stdin_data;         // when stdin_fd is -1: what stdin holds, then EOF
  Output stdout_output{1, {}};
  Output stderr_output{2, {}};
};

}  // namespace terrarium
