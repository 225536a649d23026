// End-to-end tests of `terrarium run`: real Python in the sandbox, checked by
// its stdout, stderr and exit status.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "terrarium_process.h"

namespace {

namespace fs = std::filesystem;
using terrarium::testing::read_all;
using terrarium::testing::RunResult;
using terrarium::testing::TempDir;
using terrarium::testing::terrarium;

TEST(Cli, DoneWhenLineFromTheIssue) {
  RunResult r =
      terrarium({"run", "-c", "import sys, json, re, hashlib, decimal; print(sys.platform)"});
  EXPECT_EQ(r.out, "wasi\n");
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.status, 0);
}

TEST(Cli, StdlibWorks) {
  RunResult r = terrarium({"run", "-c", R"PY(
import json, re, hashlib, decimal, datetime, collections, itertools, math, zlib, bz2, lzma
print(json.dumps({"a": [1, 2.5, None]}, sort_keys=True))
print(re.sub(r"(\w+)@(\w+)", r"\2 at \1", "me@home"))
print(hashlib.sha256(b"abc").hexdigest()[:16])
print(decimal.Decimal(1) / decimal.Decimal(7))
print(math.factorial(30))
print(len(zlib.compress(b"a" * 1000)) < 100, bz2.decompress(bz2.compress(b"x")) == b"x", lzma.decompress(lzma.compress(b"y")) == b"y")
)PY"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"a\": [1, 2.5, null]}\n"
            "home at me\n"
            "ba7816bf8f01cfea\n"
            "0.1428571428571428571428571429\n"
            "265252859812191058636308480000000\n"
            "True True True\n");
}

TEST(Cli, ExitStatusIsPassedThrough) {
  EXPECT_EQ(terrarium({"run", "-c", "import sys; sys.exit(3)"}).status, 3);
  EXPECT_EQ(terrarium({"run", "-c", "raise SystemExit(0)"}).status, 0);
  RunResult r = terrarium({"run", "-c", "1/0"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("ZeroDivisionError: division by zero"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Traceback"), std::string::npos);
}

TEST(Cli, ScriptWithArguments) {
  TempDir dir;
  std::string script = dir.write("hello.py", "import sys\nprint(sys.argv[1:], __name__)\n");
  RunResult r = terrarium({"run", script, "a", "--dir", "b c"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "['a', '--dir', 'b c'] __main__\n");
}

TEST(Cli, ScriptOutsideMountsSeesOnlyItself) {
  TempDir dir;
  dir.write("secret.txt", "s3cret");
  std::string script = dir.write("peek.py", R"PY(
import os, sys
print(sys.argv[0])
try:
    open(os.path.join(os.path.dirname(sys.argv[0]), "secret.txt")).read()
    print("leaked")
except OSError as e:
    print(type(e).__name__)
)PY");
  RunResult r = terrarium({"run", script});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "/script/peek.py\nFileNotFoundError\n");
}

TEST(Cli, ScriptInsideAMountImportsItsNeighbours) {
  TempDir dir;
  dir.write("helper.py", "VALUE = 42\n");
  dir.write("main.py", "import helper\nprint(helper.VALUE)\n");
  RunResult r = terrarium({"run", "--dir", dir.path() + "::/app:ro", dir.path() + "/main.py"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "42\n");
}

TEST(Cli, ModuleAndStdin) {
  RunResult r = terrarium({"run", "-m", "json.tool", "--sort-keys"}, "{\"b\": 1, \"a\": [2]}");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "{\n    \"a\": [\n        2\n    ],\n    \"b\": 1\n}\n");
  RunResult echo = terrarium({"run", "-c", "print(input()[::-1])"}, "stressed\n");
  EXPECT_EQ(echo.out, "desserts\n");
}

TEST(Cli, InteractivePromptOnATerminal) {
  // `script` gives the CLI a pseudo-terminal as stdin, as a person would have.
  if (access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "util-linux script(1) not installed";
  std::string command = std::string(TERRARIUM_BINARY) + " run";
  int in[2], result[2];
  ASSERT_EQ(pipe(in), 0);
  ASSERT_EQ(pipe(result), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(result[1], 1);
    dup2(result[1], 2);
    close(in[1]);
    close(result[0]);
    execl("/usr/bin/script", "script", "-qc", command.c_str(), "/dev/null", nullptr);
    _exit(127);
  }
  close(in[0]);
  close(result[1]);
  std::string input = "print(6*7)\nimport sys; sys.platform\nexit()\n";
  ASSERT_EQ(write(in[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
  close(in[1]);
  std::string output = read_all(result[0]);
  close(result[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_NE(output.find(">>> 42"), std::string::npos) << output;
  EXPECT_NE(output.find(">>> 'wasi'"), std::string::npos) << output;
  EXPECT_NE(output.find("on wasi"), std::string::npos) << output;
}

TEST(Cli, EnvironmentHasOnlyWhatIsPassed) {
  RunResult r = terrarium({"run", "--env", "GREETING=hi", "-c",
                           "import os; print(sorted(k for k in os.environ if k in ('GREETING', "
                           "'HOME', 'PATH')), os.environ['GREETING'])"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "['GREETING'] hi\n");
}

TEST(Cli, ReadWriteMount) {
  TempDir dir;
  dir.write("in.txt", "input data");
  RunResult r = terrarium({"run", "--dir", dir.path() + "::/work", "-c", R"PY(
import os
data = open('/work/in.txt').read()
with open('/work/out.txt', 'w') as f:
    f.write(data.upper())
os.mkdir('/work/sub')
print(sorted(os.listdir('/work')))
)PY"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "['in.txt', 'out.txt', 'sub']\n");
  std::ifstream out(dir.path() + "/out.txt");
  std::string written((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, "INPUT DATA");
}

TEST(Cli, ReadOnlyMountRefusesWritesWithPythonsException) {
  TempDir dir;
  dir.write("data.txt", "hello");
  RunResult r = terrarium({"run", "--dir", dir.path() + "::/data:ro", "-c", R"PY(
print(open('/data/data.txt').read())
open('/data/new.txt', 'w')
)PY"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_NE(r.err.find("OSError: [Errno 69] Read-only file system: '/data/new.txt'"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(dir.path() + "/new.txt"));
  for (const char* attack :
       {"import os; os.remove('/data/data.txt')", "import os; os.mkdir('/data/d')",
        "import os; os.rename('/data/data.txt', '/data/x')",
        "open('/data/data.txt', 'a').write('x')"}) {
    RunResult w = terrarium({"run", "--dir", dir.path() + "::/data:ro", "-c", attack});
    EXPECT_EQ(w.status, 1) << attack;
    EXPECT_NE(w.err.find("Read-only file system"), std::string::npos) << attack << "\n" << w.err;
  }
  std::ifstream in(dir.path() + "/data.txt");
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "hello");
}

TEST(Cli, CannotReadHostFilesOutsideMounts) {
  TempDir dir;
  fs::create_symlink("/etc/passwd", dir.path() + "/abs-link");
  fs::create_symlink("../../../../../../etc/passwd", dir.path() + "/rel-link");
  fs::create_symlink("/proc/self/root", dir.path() + "/proc-link");
  RunResult r = terrarium({"run", "--dir", dir.path() + "::/data", "-c", R"PY(
attempts = ['/etc/passwd', '/data/../etc/passwd', '/data/../../../etc/passwd',
            '/data/abs-link', '/data/rel-link', '/data/proc-link/etc/passwd',
            '/proc/self/environ', '../etc/passwd', '/usr/local/lib/python3.11/../../../../etc/passwd']
for path in attempts:
    try:
        open(path).read()
        print(path, 'LEAKED')
    except OSError as e:
        print(path, type(e).__name__)
)PY"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.find("LEAKED"), std::string::npos) << r.out;
  // Each attempt ends in a normal Python exception.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 9) << r.out;
}

TEST(Cli, MissingScriptAndBadFlags) {
  RunResult missing = terrarium({"run", "/nonexistent/script.py"});
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find("can't open file '/nonexistent/script.py': No such file or directory"),
            std::string::npos)
      << missing.err;
  RunResult bad_flag = terrarium({"run", "--no-such-flag", "-c", "pass"});
  EXPECT_EQ(bad_flag.status, 2);
  EXPECT_NE(bad_flag.err.find("--no-such-flag"), std::string::npos) << bad_flag.err;
  RunResult bad_dir = terrarium({"run", "--dir", "/nonexistent::/x", "-c", "pass"});
  EXPECT_EQ(bad_dir.status, 2);
  EXPECT_NE(bad_dir.err.find("'/nonexistent' does not exist"), std::string::npos) << bad_dir.err;
  RunResult bad_mode = terrarium({"run", "--dir", "/tmp::/x:rx", "-c", "pass"});
  EXPECT_EQ(bad_mode.status, 2);
  EXPECT_NE(bad_mode.err.find("unknown mode 'rx'"), std::string::npos) << bad_mode.err;
  RunResult bad_env = terrarium({"run", "--env", "NOEQUALS", "-c", "pass"});
  EXPECT_EQ(bad_env.status, 2);
  EXPECT_NE(bad_env.err.find("expected KEY=VALUE"), std::string::npos) << bad_env.err;
  RunResult no_command = terrarium({});
  EXPECT_EQ(no_command.status, 2);
}

TEST(Cli, AScriptNamedByItsGuestPathRunsFromItsMount) {
  TempDir dir;
  fs::create_directories(dir.path() + "/app/lib");
  dir.write("app/main.py", "import sys, helper\nprint(sys.argv, helper.NAME)\n");
  dir.write("app/helper.py", "NAME = 'helper'\n");
  dir.write("app/lib/tool.py", "print('tool', __file__)\n");
  // As wasmtime's and Wagi's configs write it: the guest path.
  RunResult r = terrarium({"run", "--dir", "./app::/app:ro", "/app/main.py", "x"}, "", dir.path());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "['/app/main.py', 'x'] helper\n");
  // A trailing slash on the mount and a nested guest path.
  r = terrarium({"run", "--dir", dir.path() + "/app/::/srv/app/", "/srv/app/lib/tool.py"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "tool /srv/app/lib/tool.py\n");
  // The host path still works, and runs under its guest path.
  r = terrarium({"run", "--dir", "app::/app:ro", "app/main.py"}, "", dir.path());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "['/app/main.py'] helper\n");
  // Under a mount's guest path, but no such file behind it.
  r = terrarium({"run", "--dir", "./app::/app:ro", "/app/nope.py"}, "", dir.path());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("can't open file '/app/nope.py': the guest path lies in the mount /app <- " +
                       dir.path() + "/app, but '" + dir.path() + "/app/nope.py' is not a file"),
            std::string::npos)
      << r.err;
  // Neither a host file nor under any mount: the mounts checked are named.
  r = terrarium({"run", "--dir", "./app::/app:ro", "--dir", "./app/lib::/lib", "/srv/main.py"}, "",
                dir.path());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(
      r.err.find("can't open file '/srv/main.py': No such file or directory (nor is it under a "
                 "mount's guest path; mounts checked: /app <- " +
                 dir.path() + "/app, /lib <- " + dir.path() + "/app/lib)"),
      std::string::npos)
      << r.err;
  r = terrarium({"run", "/srv/main.py"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("(nor is it a guest path: no --dir is mounted)"), std::string::npos)
      << r.err;
}

TEST(Cli, AScriptThatRanAloneAndMissesItsNeighbourGetsTheFlagThatMountsIt) {
  TempDir dir;
  fs::create_directories(dir.path() + "/project/pkg");
  dir.write("project/main.py", "import helper\n");
  dir.write("project/helper.py", "print('helper')\n");
  dir.write("project/uses_pkg.py", "from pkg.sub import x\n");
  dir.write("project/pkg/__init__.py", "");
  dir.write("project/missing.py", "import no_such_module_anywhere\n");
  std::string project = dir.path() + "/project";
  RunResult r = terrarium({"run", "main.py"}, "", project);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("ModuleNotFoundError: No module named 'helper'"), std::string::npos)
      << r.err;
  EXPECT_NE(
      r.err.find("terrarium: 'helper' lies beside main.py on the host, but the script ran alone "
                 "(as /script/main.py); mount its folder to import its neighbours: "
                 "terrarium run --dir .::/app:ro /app/main.py\n"),
      std::string::npos)
      << r.err;
  // The hint's command works.
  r = terrarium({"run", "--dir", ".::/app:ro", "/app/main.py"}, "", project);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "helper\n");
  // A package beside it, the script named from another folder.
  r = terrarium({"run", "project/uses_pkg.py"}, "", dir.path());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("terrarium: 'pkg' lies beside uses_pkg.py on the host"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("--dir project::/app:ro /app/uses_pkg.py"), std::string::npos) << r.err;
  // A module that exists nowhere: no hint, Python's error alone.
  r = terrarium({"run", "missing.py"}, "", project);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("No module named 'no_such_module_anywhere'"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terrarium:"), std::string::npos) << r.err;
}

TEST(Cli, ARelativeGuestPathIsRefused) {
  RunResult r = terrarium({"run", "--dir", "/tmp::relative", "-c", "pass"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.err,
            "terrarium: --dir '/tmp::relative': the guest path 'relative' is relative; write it "
            "from the root, e.g. --dir '/tmp::/relative'\n");
  r = terrarium({"run", "--dir", "/tmp::data:ro", "-c", "pass"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("e.g. --dir '/tmp::/data:ro'"), std::string::npos) << r.err;
  r = terrarium({"run", "--dir", "/tmp::/a/../etc", "-c", "pass"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("may not contain '..'"), std::string::npos) << r.err;
}

TEST(Cli, PluginResultOnStdoutItsPrintsOnStderrOrAResultFile) {
  TempDir dir;
  fs::create_directories(dir.path() + "/plugin");
  dir.write("plugin/plugin.py",
            "import sdk\n"
            "def run_e(payload, ident):\n"
            "    print('working on', payload)\n"
            "    sdk.return_result(payload.upper(), ident)\n");
  RunResult r = terrarium({"plugin", "run", dir.path() + "/plugin", "--payload", "abc"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "ABC\n");
  EXPECT_NE(r.err.find("working on abc\n"), std::string::npos) << r.err;
  std::string result_file = dir.path() + "/result.txt";
  r = terrarium(
      {"plugin", "run", dir.path() + "/plugin", "--payload", "x\ny", "--result-file", result_file});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  std::ifstream in(result_file, std::ios::binary);
  std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(written, "X\nY");
  r = terrarium({"plugin", "run", dir.path() + "/plugin", "--payload", "x", "--result-file",
                 dir.path() + "/no/such/dir/result.txt"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--result-file '" + dir.path() + "/no/such/dir/result.txt'"),
            std::string::npos)
      << r.err;
}

TEST(Cli, LimitFlagsWorkAndBadValuesAreNamed) {
  RunResult timeout = terrarium({"run", "--timeout", "300ms", "-c", "while True: pass"});
  EXPECT_EQ(timeout.status, 124);
  EXPECT_EQ(timeout.err, "terrarium: wall-clock deadline of 300 ms exceeded\n");
  RunResult cpu = terrarium({"run", "--cpu-timeout", "0.2s", "-c", "while True: pass"});
  EXPECT_EQ(cpu.status, 124);
  EXPECT_EQ(cpu.err, "terrarium: CPU-time deadline of 200 ms exceeded\n");
  RunResult output = terrarium({"run", "--max-output", "1K", "-c", "print('x' * 5000)"});
  EXPECT_EQ(output.status, 125);
  EXPECT_EQ(output.out.size(), 1024u);
  EXPECT_EQ(output.err, "terrarium: limit exceeded: output limit of 1024 bytes exceeded\n");
  RunResult memory = terrarium({"run", "--max-memory", "32M", "-c", "b'x' * (64 << 20)"});
  EXPECT_EQ(memory.status, 1);
  EXPECT_NE(memory.err.find("MemoryError"), std::string::npos) << memory.err;
  RunResult files =
      terrarium({"run", "--max-files", "8", "-c",
                 "fs = [open('/usr/local/lib/python3.11/os.py') for _ in range(20)]"});
  EXPECT_EQ(files.status, 125);
  EXPECT_EQ(files.err, "terrarium: limit exceeded: open file limit of 8 exceeded\n");
  RunResult bad_size = terrarium({"run", "--max-memory", "lots", "-c", "pass"});
  EXPECT_EQ(bad_size.status, 2);
  EXPECT_EQ(bad_size.err,
            "terrarium: --max-memory 'lots': not a size (expected e.g. 512K, 256M, 2G)\n");
  RunResult bad_time = terrarium({"run", "--timeout", "5y", "-c", "pass"});
  EXPECT_EQ(bad_time.status, 2);
  EXPECT_EQ(bad_time.err, "terrarium: --timeout '5y': unknown duration unit 'y'\n");
  RunResult too_small = terrarium({"run", "--max-memory", "1M", "-c", "pass"});
  EXPECT_EQ(too_small.status, 2);
  EXPECT_NE(too_small.err.find("below the guest's initial"), std::string::npos) << too_small.err;
}

TEST(Cli, HelpIsComplete) {
  RunResult r = terrarium({"run", "--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* flag :
       {"--dir", "--env", "-c", "-m", "--max-memory", "--timeout", "--max-output"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

TEST(Cli, GuestTrapIsOneClearLineAndADistinctStatus) {
  // C-level recursion deeper than the guest's stack: CPython's own check is
  // lifted, so the wasm stack overflows and the guest traps.
  RunResult r = terrarium({"run", "-c", R"PY(
import sys
sys.setrecursionlimit(10**7)
x = []
for _ in range(10**6):
    x = [x]
repr(x)
)PY"});
  EXPECT_EQ(r.status, 125) << r.out << r.err;
  EXPECT_NE(r.err.find("terrarium: guest trapped: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" in python.wasm"), std::string::npos) << r.err;
}

}  // namespace
