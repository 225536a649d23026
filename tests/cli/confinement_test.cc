// The second wall (src/cli/confinement.h), built in a forked child that then
// tries what a hijacked host would: every attempt is reported back over a
// pipe and checked here.
#include "cli/confinement.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
using terrarium::cli::FilesystemWall;
using terrarium::cli::SystemCallWall;

namespace {

struct Folder {
  Folder() {
    char pattern[] = "/tmp/terrarium-wall-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~Folder() { fs::remove_all(path); }
  std::string path;
};

// "name=errno" lines from the child (0: the call succeeded).
using Outcomes = std::map<std::string, int>;

struct ChildRun {
  Outcomes outcomes;
  std::string stderr_text;
  int status = -1;
};

// Forks; the child builds the walls and runs `attempts`, each of which
// returns 0 or an errno. Results come back through a pipe, stderr through
// another.
ChildRun in_child(const FilesystemWall* filesystem, const SystemCallWall* calls,
                  const std::vector<std::pair<std::string, std::function<int()>>>& attempts) {
  int results[2], errors[2];
  EXPECT_EQ(pipe(results), 0);
  EXPECT_EQ(pipe(errors), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(results[0]);
    close(errors[0]);
    dup2(errors[1], 2);
    unsetenv("TERRARIUM_FATAL_REFUSALS");  // these attempts are meant to be refused
    auto report = [&](const std::string& line) {
      std::string text = line + "\n";
      (void)!write(results[1], text.data(), text.size());
    };
    if (filesystem) {
      auto built = terrarium::cli::build_filesystem_wall(*filesystem);
      if (!built) {
        report("wall-error " + built.error().message());
        _exit(3);
      }
      report("landlock-abi=" + std::to_string(built->abi));
    }
    if (calls) {
      auto built = terrarium::cli::build_system_call_wall(*calls);
      if (!built) {
        report("wall-error " + built.error().message());
        _exit(3);
      }
    }
    for (const auto& [name, attempt] : attempts) report(name + "=" + std::to_string(attempt()));
    _exit(0);
  }
  close(results[1]);
  close(errors[1]);
  ChildRun run;
  std::string text, line;
  char buffer[4096];
  ssize_t n;
  while ((n = read(results[0], buffer, sizeof(buffer))) > 0) text.append(buffer, n);
  while ((n = read(errors[0], buffer, sizeof(buffer))) > 0) run.stderr_text.append(buffer, n);
  close(results[0]);
  close(errors[0]);
  waitpid(pid, &run.status, 0);
  std::istringstream lines(text);
  while (std::getline(lines, line)) {
    size_t equals = line.rfind('=');
    if (line.rfind("wall-error", 0) == 0 || equals == std::string::npos) {
      ADD_FAILURE() << "child: " << line;
      continue;
    }
    run.outcomes[line.substr(0, equals)] = std::stoi(line.substr(equals + 1));
  }
  return run;
}

int result_of(int rc) { return rc < 0 ? errno : 0; }

// execve of /bin/true: returns only if refused, with its errno.
int run_true() {
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  execve("/bin/true", argv, environ);
  return errno;
}

int open_file(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

// socket(), closed at once: 0 or its errno.
int open_socket(int family, int type, int protocol) {
  int fd = socket(family, type, protocol);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  int saved = errno;
  close(fd);
  return rc < 0 ? saved : 0;
}

// A loopback listener on a free port (closed with the object).
struct Listener {
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd, 8);
    socklen_t size = sizeof(address);
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    port = ntohs(address.sin_port);
  }
  ~Listener() { close(fd); }
  int fd = -1;
  uint16_t port = 0;
};

bool landlock_available() { return syscall(444 /* landlock_create_ruleset */, nullptr, 0, 1) > 0; }

}  // namespace

TEST(FilesystemWall, OnlyTheAllowedTreesAreReachable) {
  if (!landlock_available()) GTEST_SKIP() << "the kernel offers no Landlock";
  Folder writable, read_only, outside;
  std::ofstream(read_only.path + "/data.txt") << "data";
  std::ofstream(outside.path + "/secret.txt") << "secret";
  fs::create_directory(writable.path + "/sub");
  FilesystemWall wall;
  wall.paths.push_back({writable.path, true});
  wall.paths.push_back({read_only.path, false});
  wall.paths.push_back({"/nonexistent/terrarium/path", false});  // skipped, not an error
  auto run = in_child(
      &wall, nullptr,
      {{"read-allowed", [&] { return open_file(read_only.path + "/data.txt", O_RDONLY); }},
       {"write-read-only", [&] { return open_file(read_only.path + "/data.txt", O_WRONLY); }},
       {"create-in-read-only",
        [&] { return open_file(read_only.path + "/new", O_CREAT | O_WRONLY); }},
       {"create-in-writable",
        [&] { return open_file(writable.path + "/new", O_CREAT | O_WRONLY); }},
       {"rename-in-writable",
        [&] {
          return result_of(
              rename((writable.path + "/new").c_str(), (writable.path + "/sub/moved").c_str()));
        }},
       {"read-outside", [&] { return open_file(outside.path + "/secret.txt", O_RDONLY); }},
       {"create-outside", [&] { return open_file(outside.path + "/planted", O_CREAT | O_WRONLY); }},
       {"unlink-outside",
        [&] { return result_of(unlink((outside.path + "/secret.txt").c_str())); }},
       {"read-etc-passwd", [&] { return open_file("/etc/passwd", O_RDONLY); }},
       {"symlink-out-of-writable",
        [&] {
          // A link inside the allowed tree does not carry the
          // wall's rights to its target.
          if (symlink((outside.path + "/secret.txt").c_str(), (writable.path + "/link").c_str()) !=
              0)
            return errno;
          return open_file(writable.path + "/link", O_RDONLY);
        }},
       {"thread-read-outside", [&] {
          int outcome = -1;
          std::thread([&] { outcome = open_file(outside.path + "/secret.txt", O_RDONLY); }).join();
          return outcome;
        }}});
  EXPECT_EQ(run.status, 0) << run.stderr_text;
  EXPECT_GE(run.outcomes["landlock-abi"], 1);
  EXPECT_EQ(run.outcomes["read-allowed"], 0);
  EXPECT_EQ(run.outcomes["write-read-only"], EACCES);
  EXPECT_EQ(run.outcomes["create-in-read-only"], EACCES);
  EXPECT_EQ(run.outcomes["create-in-writable"], 0);
  EXPECT_EQ(run.outcomes["rename-in-writable"], 0);
  EXPECT_EQ(run.outcomes["read-outside"], EACCES);
  EXPECT_EQ(run.outcomes["create-outside"], EACCES);
  EXPECT_EQ(run.outcomes["unlink-outside"], EACCES);
  EXPECT_EQ(run.outcomes["read-etc-passwd"], EACCES);
  EXPECT_EQ(run.outcomes["symlink-out-of-writable"], EACCES);
  EXPECT_EQ(run.outcomes["thread-read-outside"], EACCES);
  // Nothing outside changed.
  EXPECT_TRUE(fs::exists(outside.path + "/secret.txt"));
  EXPECT_FALSE(fs::exists(outside.path + "/planted"));
  EXPECT_TRUE(fs::exists(writable.path + "/sub/moved"));
}

TEST(FilesystemWall, RefusesOnceThreadsRun) {
  if (!landlock_available()) GTEST_SKIP() << "the kernel offers no Landlock";
  int results[2];
  ASSERT_EQ(pipe(results), 0);
  pid_t pid = fork();
  if (pid == 0) {
    bool stop = false;
    std::thread sleeper([&] {
      while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) usleep(1000);
    });
    auto built = terrarium::cli::build_filesystem_wall({});
    std::string text = built ? "built" : built.error().message();
    (void)!write(results[1], text.data(), text.size());
    __atomic_store_n(&stop, true, __ATOMIC_SEQ_CST);
    sleeper.join();
    _exit(0);
  }
  close(results[1]);
  char buffer[512] = {};
  ssize_t n = read(results[0], buffer, sizeof(buffer) - 1);
  close(results[0]);
  waitpid(pid, nullptr, 0);
  ASSERT_GT(n, 0);
  EXPECT_NE(std::string(buffer).find("before the process starts threads (2 running)"),
            std::string::npos)
      << buffer;
}

TEST(FilesystemWall, ConnectOnlyToTheAllowedPorts) {
  if (!landlock_available()) GTEST_SKIP() << "the kernel offers no Landlock";
  Listener allowed, other;
  FilesystemWall wall;
  wall.connect_ports = {allowed.port};
  auto run = in_child(&wall, nullptr,
                      {{"allowed", [&] { return connect_to(allowed.port); }},
                       {"other", [&] { return connect_to(other.port); }}});
  EXPECT_EQ(run.outcomes["allowed"], 0);
  if (run.outcomes["landlock-abi"] >= 4) {
    EXPECT_EQ(run.outcomes["other"], EACCES);
  }
}

TEST(SystemCallWall, HijackedHostCallsFailAndAreNamed) {
  Listener listener;
  SystemCallWall calls;
  auto run = in_child(
      nullptr, &calls,
      {{"execve", run_true},
       {"fork",
        [] {
          pid_t child = fork();
          if (child == 0) _exit(0);
          if (child > 0) waitpid(child, nullptr, 0);
          return child < 0 ? errno : 0;
        }},
       {"ptrace",
        // PEEKUSER on the parent, which no one traces: ESRCH when allowed,
        // EPERM when refused, and no side effect either way (TRACEME would
        // stop this child at its next signal when a sanitizer build allows it).
        [] {
          errno = 0;
          ptrace(PTRACE_PEEKUSER, getppid(), nullptr, nullptr);
          return errno;
        }},
       {"socket", [] { return open_socket(AF_INET, SOCK_STREAM, 0); }},
       {"connect", [&] { return connect_to(listener.port); }},
       {"mmap-exec",
        [] {
          void* code =
              mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          return code == MAP_FAILED ? errno : 0;
        }},
       {"mprotect-exec",
        [] {
          void* page =
              mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          if (page == MAP_FAILED) return errno;
          return result_of(mprotect(page, 4096, PROT_READ | PROT_EXEC));
        }},
       {"tiocsti",
        [] {
          char c = 'x';
          return result_of(ioctl(0, TIOCSTI, &c));
        }},
       {"kill-parent", [] { return result_of(kill(getppid(), 0)); }},
       // F_SETOWN + O_ASYNC would aim a signal at another process.
       {"fcntl-setown", [] { return result_of(fcntl(0, F_SETOWN, getppid())); }},
       {"fcntl-getfl", [] { return result_of(fcntl(0, F_GETFL)); }},
       // What the host does need still works.
       {"kill-self", [] { return result_of(kill(getpid(), 0)); }},
       {"thread",
        [] {
          int value = 0;
          std::thread([&] { value = 1; }).join();
          return value == 1 ? 0 : -1;
        }},
       {"mmap-data",
        [] {
          void* page =
              mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          if (page == MAP_FAILED) return errno;
          return result_of(munmap(page, 1 << 20));
        }},
       {"memfd",
        [] {
          int fd = memfd_create("snapshot", MFD_CLOEXEC);
          if (fd >= 0) close(fd);
          return fd < 0 ? errno : 0;
        }},
       {"file", [] { return open_file("/proc/self/status", O_RDONLY); }}});
  EXPECT_EQ(run.status, 0) << run.stderr_text;
  EXPECT_EQ(run.outcomes["execve"], EPERM);
#if !defined(__SANITIZE_ADDRESS__)  // sanitizer builds keep clone and ptrace for LeakSanitizer
  EXPECT_EQ(run.outcomes["fork"], EPERM);
  EXPECT_EQ(run.outcomes["ptrace"], EPERM);
#endif
  EXPECT_EQ(run.outcomes["socket"], EPERM);
  EXPECT_EQ(run.outcomes["connect"], EPERM);
  EXPECT_EQ(run.outcomes["mmap-exec"], EPERM);
  EXPECT_EQ(run.outcomes["mprotect-exec"], EPERM);
  EXPECT_EQ(run.outcomes["tiocsti"], EPERM);
  EXPECT_EQ(run.outcomes["kill-parent"], EPERM);
  EXPECT_EQ(run.outcomes["fcntl-setown"], EPERM);
  EXPECT_EQ(run.outcomes["fcntl-getfl"], 0);
  EXPECT_EQ(run.outcomes["kill-self"], 0);
  EXPECT_EQ(run.outcomes["thread"], 0);
  EXPECT_EQ(run.outcomes["mmap-data"], 0);
  EXPECT_EQ(run.outcomes["memfd"], 0);
  EXPECT_EQ(run.outcomes["file"], 0);
  // Each refused call is named once on stderr.
  EXPECT_NE(run.stderr_text.find("system-call filter refused execve"), std::string::npos)
      << run.stderr_text;
  EXPECT_NE(run.stderr_text.find("refused socket"), std::string::npos) << run.stderr_text;
}

TEST(SystemCallWall, OutboundConnectionsWhenAllowed) {
  Listener listener;
  SystemCallWall calls;
  calls.allow_outbound_connections = true;
  auto run = in_child(
      nullptr, &calls,
      {{"connect", [&] { return connect_to(listener.port); }},
       {"execve", run_true},
       {"unix-socket", [] { return open_socket(AF_UNIX, SOCK_STREAM, 0); }},
       {"raw-socket", [] { return open_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); }},
       {"udp-socket", [] { return open_socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0); }}});
  EXPECT_EQ(run.outcomes["connect"], 0);
  EXPECT_EQ(run.outcomes["execve"], EPERM);
  EXPECT_EQ(run.outcomes["unix-socket"], EPERM);  // /run/docker.sock is no HTTP endpoint
  EXPECT_EQ(run.outcomes["raw-socket"], EPERM);
  EXPECT_EQ(run.outcomes["udp-socket"], 0);  // DNS
}

TEST(SystemCallWall, RefusalsAreFatalWhenTheTestSuiteAsks) {
  // make test sets TERRARIUM_FATAL_REFUSALS=1: a call the host needs but the
  // filter lacks then fails the test that makes it.
  int errors[2];
  ASSERT_EQ(pipe(errors), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(errors[0]);
    dup2(errors[1], 2);
    setenv("TERRARIUM_FATAL_REFUSALS", "1", 1);
    if (!terrarium::cli::build_system_call_wall({})) _exit(3);
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    execve("/bin/true", argv, environ);
    _exit(0);  // not reached: the refusal ends the process
  }
  close(errors[1]);
  std::string text;
  char buffer[1024];
  ssize_t n;
  while ((n = read(errors[0], buffer, sizeof(buffer))) > 0) text.append(buffer, n);
  close(errors[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 159) << text;
  EXPECT_NE(text.find("refused execve"), std::string::npos) << text;
}
