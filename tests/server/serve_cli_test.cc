// `terrarium serve` as a user runs it: the binary, its flags, signals, and
// Wagi's typical Python setup (wagi-facts.md §9) as a drop-in.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using terrarium::testing::fetch;
using terrarium::testing::HttpReply;

// A `terrarium serve` child process; stdout and stderr captured.
class ServeProcess {
 public:
  ServeProcess(const fs::path& cwd, std::vector<std::string> args) {
    int out[2], err[2];
    EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
    EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
    std::vector<std::string> full = {TERRARIUM_BINARY, "serve"};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : full) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    EXPECT_EQ(posix_spawn(&pid_, full[0].c_str(), &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    out_ = out[0];
    err_ = err[0];
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(out_);
    close(err_);
  }

  // Waits for "Ready: serving on http://HOST:PORT"; returns the port (0: it exited or timed out).
  uint16_t wait_ready(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pump(100);
      size_t at = stdout_.find("Ready: serving on http://");
      if (at != std::string::npos && stdout_.find('\n', at) != std::string::npos) {
        std::string address = stdout_.substr(at + 25, stdout_.find('\n', at) - at - 25);
        return static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
      }
      if (exited()) return 0;
    }
    return 0;
  }
  // Exit status after the process ends by itself (-1: still running at the timeout).
  int wait_exit(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pump(50);
      if (exited()) {
        pump(0);
        return status_;
      }
    }
    return -1;
  }
  void signal(int number) { kill(pid_, number); }
  std::string out() {
    pump(0);
    return stdout_;
  }
  std::string err() {
    pump(0);
    return stderr_;
  }

 private:
  bool exited() {
    if (exited_) return true;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return exited_;
  }
  void pump(int timeout_ms) {
    pollfd fds[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    if (poll(fds, 2, timeout_ms) <= 0) return;
    char buffer[65536];
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents & (POLLIN | POLLHUP)) {
        ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
        if (n > 0) (i == 0 ? stdout_ : stderr_).append(buffer, static_cast<size_t>(n));
      }
    }
  }
  pid_t pid_ = -1;
  int out_ = -1, err_ = -1;
  bool exited_ = false;
  int status_ = -1;
  std::string stdout_, stderr_;
};

class ServeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/terrarium-serve-cli-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  fs::path dir_;
};

// The blog's env.py (wagi-facts.md §9), final version.
constexpr const char* kBlogEnvPy = R"PY(import os
import sys
import logging

print("Content-Type: text/plain; charset=UTF-8")
print("Status: 200")
print()

print("Hello from python on", sys.platform)
print()
print("### Arguments ###")
print(sys.argv)
print()
print("### Env Vars ###")
for k, v in sorted(os.environ.items()):
    print(f"{k}: {v}")
print()
print("### Files ###")
print(os.listdir('/code'))
logging.warn('Logging important warnings')
)PY";

TEST_F(ServeCli, WagisPythonSetupRunsUnchanged) {
  write("modules.toml", R"([[module]]
route = "/"
module = "opt/wasi-python/bin/python3.wasm"
volumes = { "/code" = "code", "/opt" = "opt" }
argv = "python /code/env.py ${ARGS}"
)");
  write("code/env.py", kBlogEnvPy);
  // A WASI CPython's layout; its files are not used (the built-in CPython runs).
  write("opt/wasi-python/bin/python3.wasm", std::string("\0asm\1\0\0\0", 8));
  write("opt/wasi-python/lib/python3.11/os.py",
        "raise ImportError('the mounted stdlib must not be used')\n");
  ServeProcess serve(dir_, {"-e", "PYTHONHOME=/opt/wasi-python/lib/python3.11", "-e",
                            "PYTHONPATH=/opt/wasi-python/lib/python3.11", "-c", "modules.toml",
                            "--listen", "127.0.0.1:0", "--log-dir", (dir_ / "logs").string()});
  uint16_t port = serve.wait_ready();
  ASSERT_NE(port, 0) << serve.err();
  HttpReply reply = fetch(port, "GET", "/?arg1=value1&arg2=value2",
                          {{"User-Agent", "curl/7.88.1"}, {"Accept", "*/*"}});
  ASSERT_EQ(reply.status, 200) << reply.body << serve.err();
  EXPECT_EQ(reply.header("Content-Type"), "text/plain; charset=UTF-8");
  const std::string& body = reply.body;
  EXPECT_EQ(body.rfind("Hello from python on wasi\n", 0), 0u) << body;
  EXPECT_NE(body.find("['/code/env.py', 'arg1=value1', 'arg2=value2']"), std::string::npos) << body;
  for (std::string line : {"AUTH_TYPE: \n",
                           "CONTENT_LENGTH: 0\n",
                           "CONTENT_TYPE: \n",
                           "GATEWAY_INTERFACE: CGI/1.1\n",
                           "HTTP_ACCEPT: */*\n",
                           "HTTP_USER_AGENT: curl/7.88.1\n",
                           "PATH_INFO: \n",
                           "PATH_TRANSLATED: \n",
                           "PYTHONHOME: /opt/wasi-python/lib/python3.11\n",
                           "PYTHONPATH: /opt/wasi-python/lib/python3.11\n",
                           "QUERY_STRING: arg1=value1&arg2=value2\n",
                           "REMOTE_ADDR: 127.0.0.1\n",
                           "REMOTE_HOST: 127.0.0.1\n",
                           "REMOTE_USER: \n",
                           "REQUEST_METHOD: GET\n",
                           "SCRIPT_NAME: /\n",
                           "SERVER_SOFTWARE: WAGI/1\n",
                           "SERVER_PROTOCOL: HTTP/1.1\n",
                           "X_MATCHED_ROUTE: /\n",
                           "X_RAW_PATH_INFO: \n",
                           "SERVER_NAME: 127.0.0.1\n"}) {
    EXPECT_NE(body.find(line), std::string::npos) << "missing " << line << " in\n" << body;
  }
  EXPECT_NE(body.find("### Files ###\n['env.py']"), std::string::npos) << body;
  // The warning lands in the route's log (Wagi's file) and the server's log.
  std::ifstream in(dir_ / "logs" /
                   "8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1" /
                   "module.stderr");
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("WARNING:root:Logging important warnings"), std::string::npos) << log;
  EXPECT_NE(serve.err().find("runs on Terrarium's built-in CPython 3.11"), std::string::npos)
      << serve.err();
  // curl localhost:3000/ with the blog's Host header.
  HttpReply plain = fetch(port, "GET", "/", {{"Host", "localhost:3000"}});
  EXPECT_NE(plain.body.find("HTTP_HOST: localhost:3000\n"), std::string::npos) << plain.body;
  EXPECT_NE(plain.body.find("SERVER_PORT: 3000\n"), std::string::npos);
  EXPECT_NE(plain.body.find("X_FULL_URL: http://localhost:3000/\n"), std::string::npos);
  EXPECT_NE(plain.body.find("['/code/env.py']"), std::string::npos);
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait_exit(), 0) << serve.err();
}

TEST_F(ServeCli, SigtermDrainsAndSighupReloads) {
  write("modules.toml", "[[module]]\nroute = \"/slow\"\nmodule = \"slow.py\"\n");
  write("slow.py", "import time\ntime.sleep(0.5)\nprint('Content-Type: text/plain\\n\\nv1')\n");
  ServeProcess serve(dir_, {"modules.toml", "-l", "127.0.0.1:0", "--log-format", "json"});
  uint16_t port = serve.wait_ready();
  ASSERT_NE(port, 0) << serve.err();
  EXPECT_EQ(fetch(port, "GET", "/slow").body, "v1\n");
  write("fast.py", "print('Content-Type: text/plain\\n\\nv2')\n");
  write("modules.toml",
        "[[module]]\nroute = \"/slow\"\nmodule = \"slow.py\"\n"
        "[[module]]\nroute = \"/fast\"\nmodule = \"fast.py\"\n");
  serve.signal(SIGHUP);
  HttpReply fast;
  for (int i = 0; i < 100 && fast.status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    fast = fetch(port, "GET", "/fast");
  }
  EXPECT_EQ(fast.body, "v2\n") << serve.err();
  // A broken file: the old routes stay, the log says why.
  write("modules.toml", "[[module]]\nroute = \"/x\"\n");
  serve.signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(fetch(port, "GET", "/fast").body, "v2\n");
  EXPECT_NE(serve.err().find("reload failed"), std::string::npos) << serve.err();
  EXPECT_NE(serve.err().find("\"level\":\"error\""), std::string::npos);  // --log-format json
  // SIGTERM while a request runs: it completes, then exit 0.
  HttpReply in_flight;
  std::thread client([&] { in_flight = fetch(port, "GET", "/slow"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  serve.signal(SIGTERM);
  client.join();
  EXPECT_EQ(in_flight.status, 200);
  EXPECT_EQ(in_flight.body, "v1\n");
  EXPECT_EQ(serve.wait_exit(), 0) << serve.err();
}

TEST_F(ServeCli, BadConfigsAndFlagsFailAtStart) {
  write("ok.py", "print('Content-Type: text/plain\\n\\nok')\n");
  struct Case {
    std::string toml;
    std::vector<std::string> flags;
    std::string expected;
    int status;
  };
  std::vector<Case> cases = {
      {"[[module]]\nroute = \"/\"\nmodule = \"gone.py\"\n",
       {},
       "modules.toml:3:10: [[module]] #1 (route \"/\"): script 'gone.py' does not exist",
       1},
      {"[[module]]\nroute = \"/\"\nmodule = \"syntax.py\"\n", {}, "syntax.py", 1},
      {"[[module]]\nroute = \"/\"\nmodule = \"ok.py\"\n",
       {"--timeout", "soon"},
       "--timeout 'soon': not a duration",
       2},
      {"[[module]]\nroute = \"/\"\nmodule = \"ok.py\"\n",
       {"-e", "NOEQUALS", "-c", "modules.toml"},
       "-e 'NOEQUALS': expected NAME=VALUE",
       2},
      {"[[module]]\nroute = \"/\"\nmodule = \"ok.py\"\n",
       {"--listen", "localhost"},
       "expected IP:PORT",
       1},
      {"[[module]]\nroute = \"/\"\nmodule = \"ok.py\"\n",
       {"--tls-cert", "c.pem"},
       "TLS is not supported",
       2},
      {"[[module]]\nroute = \"/\"\nmodule = \"ok.py\"\n",
       {"--log-format", "xml"},
       "--log-format",
       2},
  };
  write("syntax.py", "print('unclosed'\n");
  for (const Case& c : cases) {
    write("modules.toml", c.toml);
    std::vector<std::string> args = c.flags;
    bool has_config = false;
    for (auto& flag : args) has_config |= flag == "modules.toml";
    if (!has_config) args.insert(args.begin(), "modules.toml");
    args.push_back("-l");
    args.push_back("127.0.0.1:0");
    if (c.flags.size() >= 2 && c.flags[0] == "--listen") args.resize(args.size() - 2);
    ServeProcess serve(dir_, args);
    int status = serve.wait_exit();
    EXPECT_EQ(status, c.status) << c.expected << "\n" << serve.err();
    EXPECT_NE(serve.err().find(c.expected), std::string::npos) << serve.err();
  }
}

TEST_F(ServeCli, HelpExplainsTheFlags) {
  ServeProcess serve(dir_, {"--help"});
  EXPECT_EQ(serve.wait_exit(), 0);
  std::string help = serve.out();
  for (std::string flag :
       {"--listen", "--hostname", "--default-host", "--env", "--env-file", "--log-dir", "--workers",
        "--timeout", "--max-memory", "--max-body", "--access-log", "--log-format", "SIGHUP"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
