// The attack suite: hostile Python programs, each with the outcome it must
// have. All of them run in this one process, on 2 threads at once; every one
// must end contained (a typed error or a normal Python exception), and the
// host must be alive and able to run a clean sandbox afterwards.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "terrarium/sandbox.h"

namespace {

namespace fs = std::filesystem;
using terrarium::ErrorKind;

// What an attack must end in.
struct Expect {
  std::optional<ErrorKind> error;  // a typed error from the host...
  std::string error_has;           // ...whose message contains this
  int exit_status = 0;             // else: the guest's exit status
  std::string out_is;              // exact stdout (checked when error is unset)
  std::string err_has;             // substring of stderr
};

enum Setup : unsigned {
  kPlain = 0,
  kMounts = 1,        // /data (rw, per-attack dir), /ro (read-only), secret dir outside
  kTightMemory = 2,   // 64 MiB linear memory
  kTightOutput = 4,   // 1 MiB of output
  kTightFiles = 8,    // 32 open files
  kTightWrites = 16,  // 1 MiB written to mounts
  kCpuDeadline = 32,  // 300 ms of CPU instead of the wall-clock deadline
  kSlow = 64,         // legitimately slow before it fails: 20 s deadline
};

struct Attack {
  const char* name;
  unsigned setup;
  const char* code;
  Expect expect;
};

Expect error(ErrorKind kind, std::string has) { return Expect{kind, std::move(has), 0, "", ""}; }
Expect exits(int status, std::string err_has) {
  return Expect{std::nullopt, "", status, "", std::move(err_has)};
}
Expect prints(std::string out) { return Expect{std::nullopt, "", 0, std::move(out), ""}; }

constexpr const char* kProbe = R"PY(
def probe(action):
    try:
        action()
        print('ALLOWED')
    except BaseException as e:
        print(type(e).__name__)
)PY";

const std::vector<Attack>& attacks() {
  static const std::vector<Attack> list = {
      // --- runaway computation ------------------------------------------------
      {"infinite loop", kPlain, "while True: pass",
       error(ErrorKind::kTimeout, "wall-clock deadline of 1000 ms")},
      {"loop catching everything", kPlain,
       "while True:\n  try:\n    while True: pass\n  except BaseException: pass",
       error(ErrorKind::kTimeout, "wall-clock deadline")},
      {"huge sum in a C builtin", kPlain, "sum(range(10**12))",
       error(ErrorKind::kTimeout, "wall-clock deadline")},
      {"catastrophic regex", kPlain, "import re; re.match(r'(a+)+$', 'a' * 64 + 'b')",
       error(ErrorKind::kTimeout, "wall-clock deadline")},
      {"bigint power", kPlain, "x = 3 ** (10 ** 9)",
       error(ErrorKind::kTimeout, "wall-clock deadline")},
      {"sleep forever", kPlain, "import time; time.sleep(10**6)",
       error(ErrorKind::kTimeout, "wall-clock deadline")},
      {"busy loop on CPU deadline", kCpuDeadline, "while True: pass",
       error(ErrorKind::kTimeout, "CPU-time deadline of 300 ms")},
      {"sorting forever", kPlain,
       "import itertools\nfor p in itertools.permutations(range(50)): sorted(p)",
       error(ErrorKind::kTimeout, "wall-clock deadline")},
      // --- memory bombs ---------------------------------------------------------
      {"one huge bytes", kTightMemory, "b'x' * 2**30", exits(1, "MemoryError")},
      {"growing list", kTightMemory, "l = []\nwhile True: l.append('x' * 10**6)",
       exits(1, "MemoryError")},
      {"huge bytearray", kTightMemory, "bytearray(2**31 - 1)", exits(1, "MemoryError")},
      {"huge list", kTightMemory, "[0] * 10**9", exits(1, "MemoryError")},
      {"dict bomb", kTightMemory, "d = {i: str(i) for i in range(10**9)}", exits(1, "MemoryError")},
      {"memory error swallowed in a loop", kTightMemory,
       "l = []\nwhile True:\n  try: l.append(bytearray(10**6))\n  except MemoryError: pass",
       error(ErrorKind::kTimeout, "wall-clock deadline")},
      {"string doubling", kTightMemory, "s = 'x'\nwhile True: s = s + s", exits(1, "MemoryError")},
      {"memory released after MemoryError", kTightMemory,
       "try:\n  l = [bytearray(10**6) for _ in range(10**4)]\nexcept MemoryError:\n  l = "
       "None\nprint(len(bytearray(10**7)))",
       prints("10000000\n")},
      // --- recursion --------------------------------------------------------------
      {"python recursion", kPlain, "def f(): return f()\nf()", exits(1, "RecursionError")},
      {"deeply nested json", kPlain, "import json; json.loads('[' * 100000 + ']' * 100000)",
       exits(1, "RecursionError")},
      {"deeply nested repr", kPlain, "x = []\nfor _ in range(100000): x = [x]\nrepr(x)",
       exits(1, "RecursionError")},
      {"deeply nested pickle", kPlain,
       "import pickle\nx = []\nfor _ in range(100000): x = [x]\npickle.dumps(x)",
       exits(1, "RecursionError")},
      // CPython's WASI build caps its parser stack lower than native (where
      // the tokenizer's "too many nested parentheses" comes first).
      {"nested parentheses in eval", kPlain, "eval('(' * 100000 + ')' * 100000)",
       exits(1, "MemoryError")},
      {"C recursion past the stack", kSlow,
       "import sys\nsys.setrecursionlimit(10**7)\nx = []\nfor _ in range(10**6): x = [x]\nrepr(x)",
       error(ErrorKind::kTrap, "call stack exhausted")},
      {"json recursion past the stack", kSlow,
       "import sys, json\nsys.setrecursionlimit(10**7)\njson.loads('[' * 10**6 + ']' * 10**6)",
       error(ErrorKind::kTrap, "call stack exhausted")},
      // Python frames live on CPython's own data stack in linear memory; when
      // it cannot grow, CPython 3.11 reports a SystemError (its own quirk).
      {"recursion limit raised for python frames", kTightMemory | kSlow,
       "import sys\nsys.setrecursionlimit(10**8)\ndef f(n): return f(n + 1)\nf(0)",
       exits(1, "SystemError: error return without exception set")},
      // --- output floods ----------------------------------------------------------
      {"print flood", kTightOutput, "while True: print('x' * 1000)",
       error(ErrorKind::kLimit, "output limit of 1048576 bytes exceeded")},
      {"stderr flood", kTightOutput, "import sys\nwhile True: sys.stderr.write('y' * 4096)",
       error(ErrorKind::kLimit, "output limit of 1048576 bytes exceeded")},
      {"raw fd flood", kTightOutput, "import os\nos.write(1, b'z' * 10**7)",
       error(ErrorKind::kLimit, "output limit of 1048576 bytes exceeded")},
      // --- descriptor exhaustion ---------------------------------------------------
      {"open files without closing", kTightFiles,
       "fs = [open('/usr/local/lib/python3.11/os.py') for _ in range(1000)]",
       error(ErrorKind::kLimit, "open file limit of 32 exceeded")},
      {"os.open on a mount", kTightFiles | kMounts,
       "import os\nopen('/data/f', 'w').close()\nfds = [os.open('/data/f', os.O_RDONLY) for _ in "
       "range(1000)]",
       error(ErrorKind::kLimit, "open file limit of 32 exceeded")},
      {"directory handles", kTightFiles | kMounts,
       "import os\nits = [os.scandir('/data') for _ in range(1000)]",
       error(ErrorKind::kLimit, "open file limit of 32 exceeded")},
      // --- filling a writable mount ---------------------------------------------------
      {"one big file", kTightWrites | kMounts, "open('/data/big', 'wb').write(b'x' * (10 << 20))",
       error(ErrorKind::kLimit, "write limit of 1048576 bytes exceeded")},
      {"many small files", kTightWrites | kMounts,
       "for i in range(10**5): open(f'/data/f{i}', 'wb').write(b'x' * 1000)",
       error(ErrorKind::kLimit, "write limit of 1048576 bytes exceeded")},
      {"truncate to a huge size", kTightWrites | kMounts,
       "f = open('/data/t', 'wb')\nf.truncate(10**12)",
       error(ErrorKind::kLimit, "write limit of 1048576 bytes exceeded")},
      // --- filesystem escapes ---------------------------------------------------------
      // Outside every mount there is only a read-only skeleton of directories
      // leading to the mounts: the host's files simply do not exist.
      {"read /etc/passwd", kMounts, "probe(lambda: open('/etc/passwd').read())",
       prints("FileNotFoundError\n")},
      {"dot-dot out of a mount", kMounts,
       "probe(lambda: open('/data/../../../../etc/passwd').read())", prints("PermissionError\n")},
      {"dot-dot to the secret next door", kMounts,
       "probe(lambda: open('/data/../secret/key').read())", prints("PermissionError\n")},
      {"planted absolute symlink", kMounts, "probe(lambda: open('/data/abs-link').read())",
       prints("PermissionError\n")},
      {"planted climbing symlink", kMounts, "probe(lambda: open('/data/climb-link').read())",
       prints("PermissionError\n")},
      {"planted /proc/self/root link", kMounts,
       "probe(lambda: open('/data/proc-link/etc/passwd').read())", prints("PermissionError\n")},
      {"guest-made absolute symlink", kMounts,
       "import os\nprobe(lambda: os.symlink('/etc/passwd', '/data/l'))\nprobe(lambda: "
       "open('/data/l').read())",
       prints("PermissionError\nFileNotFoundError\n")},
      {"guest-made climbing symlink", kMounts,
       "import os\nprobe(lambda: os.symlink('../../../../etc/passwd', '/data/l2'))\nprobe(lambda: "
       "open('/data/l2').read())",
       prints("PermissionError\nFileNotFoundError\n")},
      {"symlink inside the mount is fine", kMounts,
       "import os\nopen('/data/real', 'w').write('ok')\nos.symlink('real', "
       "'/data/alias')\nprint(open('/data/alias').read())",
       prints("ok\n")},
      {"symlink loop", kMounts, "probe(lambda: open('/data/loop-a').read())", prints("OSError\n")},
      {"hard link to a host file", kMounts,
       "import os\nprobe(lambda: os.link('/etc/passwd', '/data/x'))", prints("OSError\n")},
      {"rename out of the mount", kMounts,
       "import os\nopen('/data/f', 'w').close()\nprobe(lambda: os.rename('/data/f', "
       "'/tmp/f'))\nprobe(lambda: os.rename('/data/f', '/data/../f'))",
       prints("OSError\nPermissionError\n")},
      {"chdir then climb", kMounts,
       "import os\nos.chdir('/data')\nprobe(lambda: open('../../etc/passwd').read())",
       prints("PermissionError\n")},
      {"list the root", kMounts, "import os\nprobe(lambda: print(sorted(os.listdir('/'))))",
       prints("['data', 'ro', 'usr']\nALLOWED\n")},
      {"proc environ", kMounts, "probe(lambda: open('/proc/self/environ').read())",
       prints("FileNotFoundError\n")},
      {"stdlib image is read-only", kPlain,
       "probe(lambda: open('/usr/local/lib/python3.11/os.py', 'a').write('x'))\nimport "
       "os\nprobe(lambda: os.remove('/usr/local/lib/python3.11/os.py'))",
       prints("OSError\nOSError\n")},
      {"stdlib image has no way up", kPlain,
       "probe(lambda: open('/usr/local/lib/python3.11/../../../../etc/passwd').read())",
       prints("PermissionError\n")},
      {"write to read-only mount", kMounts, "probe(lambda: open('/ro/new', 'w'))",
       prints("OSError\n")},
      {"delete in read-only mount", kMounts, "import os\nprobe(lambda: os.remove('/ro/file'))",
       prints("OSError\n")},
      {"utime in read-only mount", kMounts,
       "import os\nprobe(lambda: os.utime('/ro/file', (0, 0)))", prints("OSError\n")},
      {"mkdir in read-only mount", kMounts, "import os\nprobe(lambda: os.mkdir('/ro/d'))",
       prints("OSError\n")},
      {"directory opened as a file for writing", kMounts, "probe(lambda: open('/data', 'w'))",
       prints("IsADirectoryError\n")},
      {"fd never opened", kPlain,
       "import os\nprobe(lambda: os.read(999, 10))\nprobe(lambda: os.write(12345, b'x'))",
       prints("OSError\nOSError\n")},
      {"write to a preopened directory fd", kPlain, "import os\nprobe(lambda: os.write(3, b'x'))",
       prints("OSError\n")},
      {"close the stdlib preopen", kPlain,
       "import os\nos.close(3)\nprobe(lambda: open('/usr/local/lib/python3.11/os.py').read())",
       prints("OSError\n")},
      // --- the host's environment and processes ---------------------------------------------
      {"host environment is invisible", kPlain, "import os\nprint(dict(os.environ))",
       prints("{'ONLY': 'this'}\n")},
      {"argv is only what was given", kPlain, "import sys\nprint(sys.argv)", prints("['-c']\n")},
      {"no sockets", kPlain,
       "import socket\nprobe(lambda: socket.socket().connect(('127.0.0.1', 22)))",
       prints("OSError\n")},
      {"no subprocess", kPlain, "import subprocess\nprobe(lambda: subprocess.run(['ls']))",
       prints("OSError\n")},
      {"no ctypes", kPlain, "import ctypes",
       exits(1, "ModuleNotFoundError: No module named '_ctypes'")},
      {"no threads", kPlain,
       "import threading\nprobe(lambda: threading.Thread(target=print).start())",
       prints("RuntimeError\n")},
      {"no fork", kPlain, "import os\nprobe(lambda: os.fork())", prints("AttributeError\n")},
      {"no kill", kPlain, "import os\nprobe(lambda: os.kill(1, 9))", prints("AttributeError\n")},
  };
  return list;
}

struct Outcome {
  std::optional<terrarium::Error> error;
  int exit_status = 0;
  std::string out, err;
};

std::string make_dir(const std::string& base, const std::string& name) {
  std::string path = base + "/" + name;
  fs::create_directories(path);
  return path;
}

Outcome run_attack(const Attack& attack, const std::string& root) {
  terrarium::SandboxConfig config;
  config.args = {"python", "-c", std::string(kProbe) + attack.code};
  config.env = {"ONLY=this"};
  Outcome outcome;
  std::mutex mutex;
  config.stdout_output = {-1, [&](std::string_view s) {
                            std::lock_guard lock(mutex);
                            outcome.out.append(s);
                          }};
  config.stderr_output = {-1, [&](std::string_view s) {
                            std::lock_guard lock(mutex);
                            outcome.err.append(s);
                          }};
  // Attacks that must be stopped by the deadline get 1 s; the others end on
  // their own (or on another limit) and get room for a loaded machine.
  bool expects_timeout = attack.expect.error == ErrorKind::kTimeout;
  config.limits.timeout = std::chrono::milliseconds(expects_timeout ? 1000 : 10000);
  if (attack.setup & kCpuDeadline) {
    config.limits.timeout = std::chrono::milliseconds(5000);
    config.limits.cpu_timeout = std::chrono::milliseconds(300);
  }
  if (attack.setup & kSlow) config.limits.timeout = std::chrono::milliseconds(20000);
  if (attack.setup & kTightMemory) config.limits.max_memory_bytes = 64 << 20;
  if (attack.setup & kTightOutput) config.limits.max_output_bytes = 1 << 20;
  if (attack.setup & kTightFiles) config.limits.max_open_files = 32;
  if (attack.setup & kTightWrites) config.limits.max_written_bytes = 1 << 20;
  if (attack.setup & kMounts) {
    std::string data = make_dir(root, "data");
    std::string ro = make_dir(root, "ro");
    std::string secret = make_dir(root, "secret");
    std::ofstream(secret + "/key") << "SECRET";
    std::ofstream(ro + "/file") << "read only";
    fs::create_symlink("/etc/passwd", data + "/abs-link");
    fs::create_symlink("../../../../../../../etc/passwd", data + "/climb-link");
    fs::create_symlink("/proc/self/root", data + "/proc-link");
    fs::create_symlink("loop-b", data + "/loop-a");
    fs::create_symlink("loop-a", data + "/loop-b");
    config.mounts = {{data, "/data", false}, {ro, "/ro", true}};
  }
  auto sandbox = terrarium::Sandbox::create(config);
  if (!sandbox) {
    outcome.error = sandbox.error();
    return outcome;
  }
  auto status = (*sandbox)->run_main();
  if (!status)
    outcome.error = status.error();
  else
    outcome.exit_status = *status;
  return outcome;
}

std::string check(const Attack& attack, const Outcome& got) {
  const Expect& want = attack.expect;
  std::string who = std::string("[") + attack.name + "] ";
  auto context = [&] {
    return "\n  stdout: " + got.out.substr(0, 400) + "\n  stderr: " + got.err.substr(0, 600);
  };
  if (want.error) {
    if (!got.error) {
      return who + "expected " + terrarium::error_kind_name(*want.error) + ", got exit " +
             std::to_string(got.exit_status) + context();
    }
    if (got.error->kind() != *want.error ||
        got.error->message().find(want.error_has) == std::string::npos) {
      return who + "expected " + terrarium::error_kind_name(*want.error) + " with '" +
             want.error_has + "', got " + got.error->to_string() + context();
    }
    return "";
  }
  if (got.error) return who + "expected a normal end, got " + got.error->to_string() + context();
  if (got.exit_status != want.exit_status) {
    return who + "expected exit " + std::to_string(want.exit_status) + ", got " +
           std::to_string(got.exit_status) + context();
  }
  if (!want.out_is.empty() && got.out != want.out_is) {
    return who + "expected stdout '" + want.out_is + "'" + context();
  }
  if (!want.err_has.empty() && got.err.find(want.err_has) == std::string::npos) {
    return who + "expected stderr to contain '" + want.err_has + "'" + context();
  }
  return "";
}

TEST(AttackSuite, HasAtLeastSixtyPrograms) { EXPECT_GE(attacks().size(), 60u); }

TEST(AttackSuite, AllContainedOnTwoThreadsAtOnce) {
  char pattern[] = "/tmp/terrarium-attacks-XXXXXX";
  std::string root = mkdtemp(pattern);
  std::atomic<size_t> next{0};
  std::mutex mutex;
  std::vector<std::string> failures;
  auto worker = [&] {
    for (size_t i; (i = next++) < attacks().size();) {
      std::string dir = root + "/" + std::to_string(i);
      fs::create_directories(dir);
      Outcome outcome = run_attack(attacks()[i], dir);
      std::string problem = check(attacks()[i], outcome);
      if (!problem.empty()) {
        std::lock_guard lock(mutex);
        failures.push_back(problem);
      }
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  fs::remove_all(root);
  for (const auto& failure : failures) ADD_FAILURE() << failure;
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << attacks().size()
                                << " attacks misbehaved";

  // The host is alive and a clean sandbox still works.
  terrarium::SandboxConfig config;
  std::string out;
  config.args = {"python", "-c", "print(6 * 7)"};
  config.stdout_output = {-1, [&](std::string_view s) { out.append(s); }};
  auto sandbox = terrarium::Sandbox::create(config);
  ASSERT_TRUE(sandbox.ok());
  auto status = (*sandbox)->run_main();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(out, "42\n");
}

}  // namespace
