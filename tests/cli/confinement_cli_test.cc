// The second wall as the commands build it: `terrarium run`, `serve` and
// `functions` running for real, with a probe preloaded into the process
// (confinement_probe.cc) that, once the command has started up, makes the
// calls a hijacked host would make from inside it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Folder {
  Folder() {
    char pattern[] = "/tmp/terrarium-wall-cli-XXXXXX";
    path = mkdtemp(pattern);
  }
  ~Folder() { fs::remove_all(path); }
  std::string path;
};

// The binary started with the probe preloaded; stdout and stderr to files.
class Probed {
 public:
  Probed(const Folder& folder, std::vector<std::string> args) : folder_(folder) {
    fs::create_directory(folder.path + "/outside");
    std::ofstream(folder.path + "/outside/secret.txt") << "secret";
    std::vector<std::string> env;
    for (char** entry = environ; *entry; ++entry) {
      // The probe's calls are meant to be refused: not fatal here.
      if (std::strncmp(*entry, "LD_PRELOAD=", 11) != 0 &&
          std::strncmp(*entry, "TERRARIUM_FATAL_REFUSALS=", 25) != 0) {
        env.push_back(*entry);
      }
    }
    std::string preload = TERRARIUM_PROBE_LIBRARY;
#ifdef TERRARIUM_ASAN_RUNTIME
    preload = std::string(TERRARIUM_ASAN_RUNTIME) + ":" + preload;  // ASan's runtime first
#endif
    env.push_back("LD_PRELOAD=" + preload);
    env.push_back("TERRARIUM_PROBE_OUT=" + folder.path + "/probe.txt");
    env.push_back("TERRARIUM_PROBE_SECRET=" + folder.path + "/outside/secret.txt");
    env.push_back("TERRARIUM_PROBE_PLANT=" + folder.path + "/outside/planted.txt");
    std::vector<char*> envp;
    for (auto& entry : env) envp.push_back(entry.data());
    envp.push_back(nullptr);
    static std::string binary = TERRARIUM_BINARY;
    std::vector<char*> argv{binary.data()};
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (pipe(stdin_) != 0) {
      ADD_FAILURE() << "pipe: " << std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, stdin_[0], 0);
    posix_spawn_file_actions_addclose(&actions, stdin_[1]);
    posix_spawn_file_actions_addopen(&actions, 1, (folder.path + "/stdout.txt").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, (folder.path + "/stderr.txt").c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int spawned = posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    if (spawned != 0) ADD_FAILURE() << "posix_spawn " << binary << ": " << std::strerror(spawned);
    posix_spawn_file_actions_destroy(&actions);
    close(stdin_[0]);
  }
  ~Probed() {
    if (stdin_[1] >= 0) close(stdin_[1]);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Waits (bounded) until `text` is in the file.
  bool wait_for(const std::string& file, const std::string& text,
                std::chrono::milliseconds limit = 20s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (slurp(folder_.path + "/" + file).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // Once the system-call filter is in place (the commands build it last),
  // the probe runs inside the process; its outcomes.
  std::map<std::string, int> probe() {
    std::map<std::string, int> outcomes;
    bool filtered = false;
    for (int i = 0; i < 2000 && !filtered; ++i) {
      filtered = slurp("/proc/" + std::to_string(pid_) + "/status").find("Seccomp:\t2") !=
                 std::string::npos;
      if (!filtered) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(filtered) << "no seccomp filter on the process; stderr: " << stderr_text();
    run_probe(&outcomes);
    return outcomes;
  }

  void unconfined_probe(std::map<std::string, int>* outcomes) {
    std::this_thread::sleep_for(300ms);  // no filter to wait for: let start-up finish
    run_probe(outcomes);
  }

  // Signals the probe and reads its "name=errno" lines.
  void run_probe(std::map<std::string, int>* outcomes) {
    kill(pid_, SIGUSR2);
    EXPECT_TRUE(wait_for("probe.txt", "done\n")) << stderr_text();
    std::istringstream lines(slurp(folder_.path + "/probe.txt"));
    std::string line;
    while (std::getline(lines, line)) {
      size_t equals = line.find('=');
      if (equals != std::string::npos)
        (*outcomes)[line.substr(0, equals)] = std::stoi(line.substr(equals + 1));
    }
  }

  void send(const std::string& line) { (void)!write(stdin_[1], line.data(), line.size()); }
  void close_stdin() {
    close(stdin_[1]);
    stdin_[1] = -1;
  }
  void signal(int number) { kill(pid_, number); }
  int wait() {
    int status = 0;
    for (int i = 0; i < 3000; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  std::string proc_status() const { return slurp("/proc/" + std::to_string(pid_) + "/status"); }
  std::string stdout_text() const { return slurp(folder_.path + "/stdout.txt"); }
  std::string stderr_text() const { return slurp(folder_.path + "/stderr.txt"); }

 private:
  const Folder& folder_;
  pid_t pid_ = -1;
  int stdin_[2] = {-1, -1};
  bool reaped_ = false;
};

void expect_walled(std::map<std::string, int>& outcomes, const Probed& process,
                   const Folder& folder) {
  EXPECT_EQ(outcomes["execve"], EPERM);
  EXPECT_EQ(outcomes["socket"], EPERM);
  EXPECT_EQ(outcomes["read-outside"], EACCES);
  EXPECT_EQ(outcomes["create-outside"], EACCES);
  EXPECT_FALSE(fs::exists(folder.path + "/outside/planted.txt"));
}

// The calls the filter named on stderr: only the probe's, never one the
// command itself needed (that would be a call missing from the allowlist).
void expect_only_the_probe_refused(const Probed& process) {
  std::string err = process.stderr_text();
  std::set<std::string> refused;
  const std::string marker = "system-call filter refused ";
  for (size_t at = err.find(marker); at != std::string::npos; at = err.find(marker, at + 1)) {
    size_t begin = at + marker.size();
    refused.insert(err.substr(begin, err.find(' ', begin) - begin));
  }
#if defined(__SANITIZE_ADDRESS__)
  std::set<std::string> expected{"execve", "socket"};  // LeakSanitizer keeps ptrace
#else
  std::set<std::string> expected{"execve", "socket", "ptrace"};
#endif
  EXPECT_EQ(refused, expected) << err;
}

std::string http_get(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval limit{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "";
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
  close(fd);
  return response;
}

uint16_t ready_port(const Probed& process) {
  std::string out = process.stdout_text();
  size_t at = out.find("http://127.0.0.1:");
  if (at == std::string::npos) return 0;
  return static_cast<uint16_t>(std::stoi(out.substr(at + 17)));
}

const char* kWaitForStop =
    "import os, time\n"
    "while not os.path.exists('/work/stop'):\n"
    "    time.sleep(0.01)\n"
    "print(open('/work/data.txt').read(), 'after the probe')\n";

}  // namespace

TEST(SecondWall, RunIsConfinedToItsMounts) {
  Folder folder;
  fs::create_directory(folder.path + "/work");
  std::ofstream(folder.path + "/work/data.txt") << "mounted";
  Probed run(folder, {"run", "--dir", folder.path + "/work::/work", "-c", kWaitForStop});
  auto outcomes = run.probe();
  expect_walled(outcomes, run, folder);
  std::ofstream(folder.path + "/work/stop") << "";
  EXPECT_EQ(run.wait(), 0) << run.stderr_text();
  expect_only_the_probe_refused(run);
  EXPECT_EQ(run.stdout_text(), "mounted after the probe\n");
}

TEST(SecondWall, NoConfineTurnsItOff) {
  Folder folder;
  fs::create_directory(folder.path + "/work");
  std::ofstream(folder.path + "/work/data.txt") << "mounted";
  Probed run(folder,
             {"run", "--no-confine", "--dir", folder.path + "/work::/work", "-c", kWaitForStop});
  std::map<std::string, int> outcomes;
  run.unconfined_probe(&outcomes);
  EXPECT_EQ(outcomes["execve"], ENOENT);  // the kernel looked for the file
  EXPECT_EQ(outcomes["socket"], 0);
  EXPECT_EQ(outcomes["read-outside"], 0);
  EXPECT_NE(run.proc_status().find("Seccomp:\t0"), std::string::npos) << run.proc_status();
  std::ofstream(folder.path + "/work/stop") << "";
  EXPECT_EQ(run.wait(), 0) << run.stderr_text();
}

TEST(SecondWall, ServeIsConfinedAndKeepsServing) {
  Folder folder;
  fs::create_directory(folder.path + "/site");
  std::ofstream(folder.path + "/site/hello.py")
      << "print('Content-Type: text/plain')\nprint()\nprint('hello from the wall')\n";
  std::ofstream(folder.path + "/site/modules.toml")
      << "[[module]]\nroute = \"/hello\"\nmodule = \"hello.py\"\n"
         "[[module]]\nroute = \"/wsgi\"\nwsgi = \"plain:app\"\nvolumes = { \"/srv\" = \".\" }\n";
  std::ofstream(folder.path + "/site/plain.py")
      << "def app(environ, start_response):\n"
         "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
         "    return [b'wsgi behind the wall']\n";
  fs::create_directory(folder.path + "/logs");
  // Served through a symlink to a config in another folder (scripts resolve
  // beside the link, the config is read from its target): the wall holds both.
  fs::create_directory(folder.path + "/link");
  fs::create_symlink(folder.path + "/site/modules.toml", folder.path + "/link/modules.toml");
  for (const char* script : {"hello.py", "plain.py"}) {
    fs::copy_file(folder.path + "/site/" + script, folder.path + "/link/" + script);
  }
  Probed serve(folder, {"serve", folder.path + "/link/modules.toml", "--listen", "127.0.0.1:0",
                        "--log-dir", folder.path + "/logs", "--workers", "2"});
  ASSERT_TRUE(serve.wait_for("stdout.txt", "Ready")) << serve.stderr_text();
  auto outcomes = serve.probe();
  expect_walled(outcomes, serve, folder);
  uint16_t port = ready_port(serve);
  ASSERT_NE(port, 0) << serve.stdout_text();
  for (int i = 0; i < 3; ++i) {
    std::string response = http_get(port, "/hello");
    EXPECT_NE(response.find("200 OK"), std::string::npos) << response;
    EXPECT_NE(response.find("hello from the wall"), std::string::npos) << response;
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(http_get(port, "/wsgi").find("wsgi behind the wall"), std::string::npos);
  }
  // A reload reads the config's folder again, inside the wall.
  serve.signal(SIGHUP);
  EXPECT_TRUE(serve.wait_for("stderr.txt", "reloaded")) << serve.stderr_text();
  EXPECT_NE(http_get(port, "/hello").find("hello from the wall"), std::string::npos);
  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(), 0) << serve.stderr_text();
  expect_only_the_probe_refused(serve);
  // The route's log went to the log folder, which the wall leaves writable.
  bool logged = false;
  for (const auto& entry : fs::recursive_directory_iterator(folder.path + "/logs")) {
    logged = logged || entry.path().filename() == "module.stderr";
  }
  EXPECT_TRUE(logged);
}

TEST(SecondWall, FunctionsStdioIsConfined) {
  Folder folder;
  Probed functions(folder, {"functions", "stdio"});
  auto outcomes = functions.probe();
  expect_walled(outcomes, functions, folder);
  functions.close_stdin();
  EXPECT_EQ(functions.wait(), 0) << functions.stderr_text();
  expect_only_the_probe_refused(functions);
}

namespace {

// One loopback HTTP endpoint that answers every POST with "42".
class AnsweringEndpoint {
 public:
  AnsweringEndpoint() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    listen(fd_, 4);
    socklen_t size = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      timeval limit{10, 0};
      setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
      std::string request;
      char buffer[4096];
      for (;;) {
        size_t end = request.find("\r\n\r\n");
        if (end != std::string::npos) {
          size_t length_at = request.find("Content-Length: ");
          size_t length =
              length_at == std::string::npos ? 0 : std::stoul(request.substr(length_at + 16));
          if (request.size() >= end + 4 + length) break;
        }
        ssize_t n = read(client, buffer, sizeof(buffer));
        if (n <= 0) break;
        request.append(buffer, n);
      }
      requests_ = request;
      const char* answer =
          "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n42";
      (void)!write(client, answer, std::strlen(answer));
      close(client);
    });
  }
  ~AnsweringEndpoint() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  uint16_t port() const { return port_; }
  std::string requests_;

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST(SecondWall, FunctionsUrlHostcallsStillReachTheirEndpoint) {
  // url hostcalls keep socket/connect (to their ports, with Landlock's
  // network rules) and name resolution inside the wall.
  AnsweringEndpoint endpoint;
  Folder folder;
  std::string port = std::to_string(endpoint.port());
  std::ofstream(folder.path + "/ops.toml")
      << "allowed_hosts = [\"127.0.0.1:" + port +
             "\"]\n"
             "[[op]]\nname = \"via_http\"\n"
             "def = \"from terrarium.functions import hostcall\\ndef f(x):\\n    return "
             "hostcall('remote', x)\\n\"\n"
             "function = \"f\"\n"
             "[hostcalls]\nremote = { url = \"http://127.0.0.1:" +
             port + "/double\", timeout = \"5s\" }\n";
  Probed functions(folder, {"functions", "stdio", folder.path + "/ops.toml"});
  functions.send(
      R"({"jsonrpc": "2.0", "id": 1, "method": "handle", "params": {"op_name": "via_http", "in_json": "21"}})"
      "\n");
  EXPECT_TRUE(functions.wait_for("stdout.txt", "\"id\"")) << functions.stderr_text();
  EXPECT_NE(functions.proc_status().find("Seccomp:\t2"), std::string::npos)
      << functions.proc_status();
  functions.close_stdin();
  EXPECT_EQ(functions.wait(), 0) << functions.stderr_text();
  EXPECT_NE(functions.stdout_text().find("\"42\""), std::string::npos)
      << functions.stdout_text() << functions.stderr_text();
  EXPECT_NE(endpoint.requests_.find("POST /double"), std::string::npos) << endpoint.requests_;
  EXPECT_EQ(functions.stderr_text().find("refused"), std::string::npos) << functions.stderr_text();
}
