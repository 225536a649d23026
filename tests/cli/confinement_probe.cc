// Preloaded (LD_PRELOAD) into the terrarium binary by confinement_cli_test:
// on SIGUSR2 it does from inside the host process what a hijacked host
// would, and writes each outcome ("name=errno", 0 for success) to the file
// named by TERRARIUM_PROBE_OUT, opened before the process confines itself.
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace {

int g_out = -1;
const char* g_secret = nullptr;  // a file outside every mount
const char* g_plant = nullptr;   // a file to create outside every mount

void put(const char* text) { (void)!write(g_out, text, strlen(text)); }

void report(const char* name, int outcome) {
  char number[16];
  int length = 0;
  unsigned value = static_cast<unsigned>(outcome);
  do {
    number[length++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value && length < 15);
  put(name);
  put("=");
  while (length) (void)!write(g_out, &number[--length], 1);
  put("\n");
}

void probe(int) {
  int saved = errno;
  char* argv[] = {const_cast<char*>("/nonexistent-terrarium-probe"), nullptr};
  execve(argv[0], argv, argv + 1);
  report("execve", errno);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  report("socket", fd < 0 ? errno : 0);
  if (fd >= 0) close(fd);
  fd = open(g_secret, O_RDONLY | O_CLOEXEC);
  report("read-outside", fd < 0 ? errno : 0);
  if (fd >= 0) close(fd);
  fd = open(g_plant, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  report("create-outside", fd < 0 ? errno : 0);
  if (fd >= 0) close(fd);
  long traced = ptrace(PTRACE_PEEKUSER, 1, nullptr, nullptr);
  report("ptrace", traced < 0 ? errno : 0);
  put("done\n");
  errno = saved;
}

__attribute__((constructor)) void install() {
  const char* out = getenv("TERRARIUM_PROBE_OUT");
  g_secret = getenv("TERRARIUM_PROBE_SECRET");
  g_plant = getenv("TERRARIUM_PROBE_PLANT");
  if (!out || !g_secret || !g_plant) return;
  g_out = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  struct sigaction action {};
  action.sa_handler = probe;
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &action, nullptr);
}

}  // namespace
