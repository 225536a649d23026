// Landlock and seccomp-bpf for the terrarium process (see confinement.h and
// docs/security.md, "The second wall").
#include "cli/confinement.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <ucontext.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace terrarium::cli {

namespace {

// --- Landlock (uapi/linux/landlock.h; Debian 12's headers predate the
// network and scope rules, so the constants are spelled out) ---

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

struct RulesetAttributes {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;  // ABI 4
  uint64_t scoped;              // ABI 6
};

struct PathBeneathAttributes {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

struct NetPortAttributes {
  uint64_t allowed_access;
  uint64_t port;
};

constexpr uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;
constexpr int kRuleNetPort = 2;

constexpr uint64_t kFsExecute = 1ull << 0;
constexpr uint64_t kFsWriteFile = 1ull << 1;
constexpr uint64_t kFsReadFile = 1ull << 2;
constexpr uint64_t kFsReadDir = 1ull << 3;
constexpr uint64_t kFsRemoveDir = 1ull << 4;
constexpr uint64_t kFsRemoveFile = 1ull << 5;
constexpr uint64_t kFsMakeChar = 1ull << 6;
constexpr uint64_t kFsMakeDir = 1ull << 7;
constexpr uint64_t kFsMakeReg = 1ull << 8;
constexpr uint64_t kFsMakeSock = 1ull << 9;
constexpr uint64_t kFsMakeFifo = 1ull << 10;
constexpr uint64_t kFsMakeBlock = 1ull << 11;
constexpr uint64_t kFsMakeSym = 1ull << 12;
constexpr uint64_t kFsRefer = 1ull << 13;     // ABI 2
constexpr uint64_t kFsTruncate = 1ull << 14;  // ABI 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;  // ABI 5

constexpr uint64_t kNetConnectTcp = 1ull << 1;  // ABI 4

constexpr uint64_t kScopeAbstractUnixSocket = 1ull << 0;  // ABI 6
constexpr uint64_t kScopeSignal = 1ull << 1;

uint64_t handled_fs_rights(int abi) {
  uint64_t rights = kFsExecute | kFsWriteFile | kFsReadFile | kFsReadDir | kFsRemoveDir |
                    kFsRemoveFile | kFsMakeChar | kFsMakeDir | kFsMakeReg | kFsMakeSock |
                    kFsMakeFifo | kFsMakeBlock | kFsMakeSym;
  if (abi >= 2) rights |= kFsRefer;
  if (abi >= 3) rights |= kFsTruncate;
  if (abi >= 5) rights |= kFsIoctlDev;
  return rights;
}

// The rights of one rule: only file rights on a file (the kernel refuses
// directory rights there), and only what the ABI knows.
uint64_t rule_rights(const PathAccess& access, bool is_directory, int abi) {
  if (access.remove_empty_folders_only) return is_directory ? kFsRemoveDir : 0;
  uint64_t rights = kFsReadFile;
  if (is_directory) rights |= kFsReadDir;
  if (access.execute) rights |= kFsExecute;
  if (access.write) {
    rights |= kFsWriteFile | kFsTruncate;
    if (is_directory) {
      rights |= kFsRemoveDir | kFsRemoveFile | kFsMakeDir | kFsMakeReg | kFsMakeSym | kFsRefer;
    }
  }
  // /dev/null and the terminal: ioctl on character devices opened later.
  if (!is_directory && access.write) rights |= kFsIoctlDev;
  return rights & handled_fs_rights(abi);
}

int landlock_abi() {
  long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

int thread_count() {
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return -1;
  int count = 0;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(tasks);
  return count;
}

Error wall_error(const std::string& what) {
  return Error(ErrorKind::kInternal, "the filesystem wall (Landlock): " + what);
}

}  // namespace

void add_process_basics(FilesystemWall* wall) {
  for (const char* path : {"/etc/localtime", "/usr/share/zoneinfo", "/sys/devices/system/cpu",
                           "/proc/self", "/dev/urandom", "/dev/random"}) {
    wall->paths.push_back({path, false, false});
  }
  wall->paths.push_back({"/dev/null", true, false});
}

void add_name_resolution(FilesystemWall* wall) {
  for (const char* path : {"/etc/hosts", "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/gai.conf",
                           "/etc/host.conf", "/etc/services", "/etc/ld.so.cache"}) {
    wall->paths.push_back({path, false, false});
  }
  // getaddrinfo loads libnss_*.so (dlopen) the first time it runs.
  for (const char* path : {"/lib", "/usr/lib", "/lib64"}) {
    wall->paths.push_back({path, false, true});
  }
}

Result<FilesystemWallStatus> build_filesystem_wall(const FilesystemWall& wall) {
  FilesystemWallStatus status;
  status.abi = landlock_abi();
  if (status.abi == 0) {
    status.note = "the kernel offers no Landlock (" + std::string(std::strerror(errno)) +
                  "): the filesystem wall is not built; the system-call wall still is";
    return status;
  }
  if (int threads = thread_count(); threads != 1) {
    return wall_error("must be built before the process starts threads (" +
                      std::to_string(threads) + " running)");
  }
  RulesetAttributes attributes{};
  attributes.handled_access_fs = handled_fs_rights(status.abi);
  size_t size = sizeof(uint64_t);
  if (status.abi >= 4) {
    // connect only: the servers bind their listening sockets after this
    // (to ports the operator chose, 0 among them); seccomp refuses bind later.
    attributes.handled_access_net = kNetConnectTcp;
    size = 2 * sizeof(uint64_t);
    status.network = true;
  }
  if (status.abi >= 6) {
    // Signals and abstract unix sockets stay within the process.
    attributes.scoped = kScopeAbstractUnixSocket | kScopeSignal;
    size = sizeof(attributes);
  }
  int ruleset = static_cast<int>(syscall(SYS_landlock_create_ruleset, &attributes, size, 0));
  if (ruleset < 0) return wall_error(std::string("creating the ruleset: ") + std::strerror(errno));
  std::unique_ptr<int, void (*)(int*)> closer(&ruleset, [](int* fd) { close(*fd); });
  for (const PathAccess& access : wall.paths) {
    int fd = open(access.path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) continue;  // absent: nothing to allow
    struct stat info {};
    bool is_directory = fstat(fd, &info) == 0 && S_ISDIR(info.st_mode);
    PathBeneathAttributes rule{rule_rights(access, is_directory, status.abi), fd};
    if (rule.allowed_access == 0) {
      close(fd);
      continue;
    }
    long added = syscall(SYS_landlock_add_rule, ruleset, kRulePathBeneath, &rule, 0);
    int saved = errno;
    close(fd);
    if (added != 0) {
      return wall_error("allowing '" + access.path + "': " + std::strerror(saved));
    }
  }
  if (status.network) {
    for (uint16_t port : wall.connect_ports) {
      NetPortAttributes rule{kNetConnectTcp, port};
      if (syscall(SYS_landlock_add_rule, ruleset, kRuleNetPort, &rule, 0) != 0) {
        return wall_error("allowing TCP port " + std::to_string(port) + ": " +
                          std::strerror(errno));
      }
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return wall_error(std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno));
  }
  if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) {
    return wall_error(std::string("restricting the process: ") + std::strerror(errno));
  }
  return status;
}

// --- seccomp ----------------------------------------------------------------

namespace {

// Names of the system calls, resolved before the filter exists: the SIGSYS
// handler may only do async-signal-safe work.
constexpr int kNamedCalls = 512;
std::array<std::array<char, 32>, kNamedCalls> g_call_names{};
std::array<std::atomic<bool>, kNamedCalls> g_call_reported{};
// make test sets TERRARIUM_FATAL_REFUSALS=1, so that a call the host needs
// but the filter lacks fails the test that makes it instead of only
// printing a line nobody reads.
bool g_refusal_is_fatal = false;

void write_text(const char* text) {
  ssize_t ignored = write(2, text, std::strlen(text));
  (void)ignored;
}

// A refused call returns -EPERM to its caller (as SCMP_ACT_ERRNO would),
// after one line on stderr the first time.
void on_refused_call(int, siginfo_t* info, void* context) {
  int saved = errno;
  int call = info->si_syscall;
  bool first = call < 0 || call >= kNamedCalls || !g_call_reported[call].exchange(true);
  if (first) {
    write_text("terrarium: the host's system-call filter refused ");
    if (call >= 0 && call < kNamedCalls && g_call_names[call][0]) {
      write_text(g_call_names[call].data());
    } else {
      write_text("a system call");
    }
    write_text(" (EPERM; docs/security.md, \"The second wall\")\n");
  }
  if (g_refusal_is_fatal) {
    write_text("terrarium: TERRARIUM_FATAL_REFUSALS is set: exiting with status 159\n");
    _exit(159);
  }
#if defined(__x86_64__)
  auto* user = static_cast<ucontext_t*>(context);
  user->uc_mcontext.gregs[REG_RAX] = -EPERM;
#else
  (void)context;
#endif
  errno = saved;
}

struct FilterDeleter {
  void operator()(void* filter) const { seccomp_release(static_cast<scmp_filter_ctx>(filter)); }
};

Error filter_error(const std::string& what, int code) {
  return Error(ErrorKind::kInternal, "the system-call wall (seccomp): " + what + ": " +
                                         std::strerror(code < 0 ? -code : code));
}

// Every call the host makes once it runs: guests' WASI calls (files inside
// mounts, clocks, random), the engine (memory growth, snapshot resets,
// deadline timers and signals, %gs for guest memory), threads, the HTTP
// server's event loop on sockets it already has. docs/security.md explains
// each group.
constexpr const char* kAllowed[] = {
    // files and descriptors
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "lseek",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "open",
    "openat",
    "openat2",
    "fstat",
    "stat",
    "lstat",
    "newfstatat",
    "statx",
    "fstatfs",
    "statfs",
    "getdents",
    "getdents64",
    "readlink",
    "readlinkat",
    "access",
    "faccessat",
    "faccessat2",
    "mkdir",
    "mkdirat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "utimensat",
    "ftruncate",
    "fsync",
    "fdatasync",
    "fadvise64",
    "fallocate",
    "flock",
    "getcwd",
    "sendfile",
    "umask",
    // memory (mmap and mprotect: below, without PROT_EXEC)
    "munmap",
    "mremap",
    "madvise",
    "msync",
    "brk",
    "memfd_create",
    // signals, timers, clocks
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigtimedwait",
    "rt_sigpending",
    "rt_sigsuspend",
    "sigaltstack",
    "restart_syscall",
    "timer_create",
    "timer_settime",
    "timer_gettime",
    "timer_getoverrun",
    "timer_delete",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "time",
    "getitimer",
    "setitimer",
    "getrusage",
    "times",
    // threads and identity
    "futex",
    "futex_waitv",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "set_tid_address",
    "sched_yield",
    "sched_getaffinity",
    "sched_getparam",
    "sched_getscheduler",
    "gettid",
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "exit",
    "exit_group",
    "arch_prctl",
    "getrandom",
    "uname",
    "sysinfo",
    // event loop and the sockets the process already has
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "accept",
    "accept4",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "getpeername",
};

}  // namespace

Result<void> build_system_call_wall(const SystemCallWall& wall) {
  const char* fatal = std::getenv("TERRARIUM_FATAL_REFUSALS");
  g_refusal_is_fatal = fatal && std::strcmp(fatal, "1") == 0;
  for (int call = 0; call < kNamedCalls; ++call) {
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, call);
    if (name) {
      std::strncpy(g_call_names[call].data(), name, g_call_names[call].size() - 1);
      free(name);
    }
  }
#if defined(__x86_64__)
  struct sigaction action {};
  action.sa_sigaction = on_refused_call;
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGSYS, &action, nullptr) != 0) return filter_error("SIGSYS handler", errno);
  const uint32_t refuse = SCMP_ACT_TRAP;
#else
  const uint32_t refuse = SCMP_ACT_ERRNO(EPERM);
#endif
  std::unique_ptr<void, FilterDeleter> filter(seccomp_init(refuse));
  if (!filter) return filter_error("seccomp_init", ENOMEM);
  scmp_filter_ctx context = filter.get();
  if (int rc = seccomp_attr_set(context, SCMP_FLTATR_CTL_TSYNC, 1); rc != 0) {
    return filter_error("TSYNC", rc);
  }
  auto allow = [&](const char* name, std::initializer_list<scmp_arg_cmp> conditions = {}) -> int {
    int number = seccomp_syscall_resolve_name(name);
    if (number == __NR_SCMP_ERROR) return 0;  // not on this architecture
    return seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number,
                                  static_cast<unsigned>(conditions.size()),
                                  conditions.size() ? conditions.begin() : nullptr);
  };
  for (const char* name : kAllowed) {
    if (int rc = allow(name); rc != 0) return filter_error(std::string("allowing ") + name, rc);
  }
  const scmp_datum_t self = static_cast<scmp_datum_t>(getpid());
  const bool outbound = wall.allow_outbound_connections;
  int rc = 0;
  // No new executable memory: nothing the host runs is generated at run time
  // (getaddrinfo's NSS modules are the exception, when hostcalls may connect).
  if (outbound) {
    rc |= allow("mmap");
    rc |= allow("mprotect");
  } else {
    rc |= allow("mmap", {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
    rc |= allow("mprotect", {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  }
  // Threads, never processes; clone3's flags sit in memory the filter cannot
  // read, so it is refused with ENOSYS and glibc falls back to clone.
  rc |= allow("clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
  rc |=
      seccomp_rule_add(context, SCMP_ACT_ERRNO(ENOSYS), seccomp_syscall_resolve_name("clone3"), 0);
  // Signals to this process only (deadlines, interrupts, raise, abort).
  rc |= allow("kill", {SCMP_A0(SCMP_CMP_EQ, self)});
  rc |= allow("tgkill", {SCMP_A0(SCMP_CMP_EQ, self)});
  // Limits of this process only (getrlimit is prlimit64(0, ...)).
  rc |= allow("prlimit64", {SCMP_A0(SCMP_CMP_EQ, 0)});
  for (scmp_datum_t option :
       std::initializer_list<scmp_datum_t>{PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE}) {
    rc |= allow("prctl", {SCMP_A0(SCMP_CMP_EQ, option)});
  }
  // Terminal and socket queries, and PAGEMAP_SCAN on /proc/self/pagemap
  // (how a snapshot reset finds the pages a request dirtied); never TIOCSTI
  // (typing into the terminal).
  const scmp_datum_t pagemap_scan = _IOC(_IOC_READ | _IOC_WRITE, 'f', 16, 96);
  for (scmp_datum_t request : std::initializer_list<scmp_datum_t>{
           TCGETS, TIOCGWINSZ, TIOCGPGRP, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, pagemap_scan}) {
    rc |= allow("ioctl", {SCMP_A1(SCMP_CMP_EQ, request)});
  }
  // fcntl without F_SETOWN / F_SETSIG / F_SETLEASE / F_NOTIFY, which would
  // let an O_ASYNC descriptor send a chosen signal to another process.
  for (scmp_datum_t command : std::initializer_list<scmp_datum_t>{
           F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW,
           F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_ADD_SEALS, F_GET_SEALS, F_GETPIPE_SZ,
           F_SETPIPE_SZ}) {
    rc |= allow("fcntl", {SCMP_A1(SCMP_CMP_EQ, command)});
  }
  // url hostcalls: IPv4/IPv6 stream (HTTP, DNS over TCP) and datagram (DNS)
  // sockets only, never unix, netlink or raw ones (a unix socket is not
  // covered by Landlock's port rules: /run/docker.sock would be).
  if (outbound) {
    for (scmp_datum_t family : std::initializer_list<scmp_datum_t>{AF_INET, AF_INET6}) {
      for (scmp_datum_t type : std::initializer_list<scmp_datum_t>{SOCK_STREAM, SOCK_DGRAM}) {
        rc |=
            allow("socket", {SCMP_A0(SCMP_CMP_EQ, family), SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, type)});
      }
    }
    rc |= allow("connect");
  }
  if (rc != 0) return filter_error("adding the conditional rules", rc);
#if defined(__SANITIZE_ADDRESS__)
  // LeakSanitizer stops the world at exit with a ptrace'd helper process:
  // only in sanitizer builds (make test-sanitize), never in a release.
  rc |= allow("ptrace");
  rc |= allow("clone");
  rc |= allow("wait4");
  rc |= allow("prctl");
  if (rc != 0) return filter_error("adding the sanitizer's rules", rc);
#endif
  if (int loaded = seccomp_load(context); loaded != 0) return filter_error("seccomp_load", loaded);
  return {};
}

}  // namespace terrarium::cli
