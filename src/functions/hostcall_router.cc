// The manifest's hostcall targets: another op of the manifest, or an HTTP
// endpoint on the operator's allow-list (a POST of the JSON value).
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

#include "terrarium/functions.h"

namespace terrarium {

namespace {

constexpr int kMaxNesting = 8;
constexpr size_t kMaxAnswerBytes = 16u << 20;
thread_local int nesting = 0;

struct Url {
  std::string host, port = "80", path = "/", authority;
};

Url split_url(const std::string& url) {
  Url parts;
  std::string rest = url.substr(7);  // after http://
  size_t slash = rest.find('/');
  parts.authority = rest.substr(0, slash);
  if (slash != std::string::npos) parts.path = rest.substr(slash);
  std::string host = parts.authority;
  if (!host.empty() && host[0] == '[') {
    size_t close = host.find(']');
    parts.host = host.substr(1, close - 1);
    if (close + 1 < host.size() && host[close + 1] == ':') parts.port = host.substr(close + 2);
  } else if (size_t colon = host.rfind(':'); colon != std::string::npos) {
    parts.host = host.substr(0, colon);
    parts.port = host.substr(colon + 1);
  } else {
    parts.host = host;
  }
  return parts;
}

// Waits until `fd` is ready for `events` or the deadline passes.
bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd entry{fd, events, 0};
    int ready = poll(&entry, 1, static_cast<int>(left.count()));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

// POST `body` to `url` (HTTP/1.0, so the answer ends when the server closes).
Result<std::string> post_json(const HostcallTarget& target, std::string_view body) {
  Url url = split_url(target.url);
  auto deadline = std::chrono::steady_clock::now() + target.timeout;
  std::string what = "POST " + target.url;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int status = getaddrinfo(url.host.c_str(), url.port.c_str(), &hints, &found); status != 0) {
    return Error(ErrorKind::kHostError,
                 what + ": cannot resolve " + url.host + ": " + gai_strerror(status));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);
  int fd = -1;
  std::string last_error = "no address";
  for (addrinfo* address = found; address; address = address->ai_next) {
    fd = socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (connect(fd, address->ai_addr, address->ai_addrlen) == 0 ||
        (errno == EINPROGRESS && wait_for(fd, POLLOUT, deadline))) {
      int error = 0;
      socklen_t length = sizeof error;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error == 0) break;
      last_error = std::strerror(error);
    } else {
      last_error = errno == EINPROGRESS ? "timed out" : std::strerror(errno);
    }
    close(fd);
    fd = -1;
  }
  if (fd < 0) return Error(ErrorKind::kHostError, what + ": cannot connect: " + last_error);
  std::unique_ptr<int, void (*)(int*)> closer(&fd, [](int* socket) { close(*socket); });
  std::string request =
      "POST " + url.path + " HTTP/1.0\r\nHost: " + url.authority +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n";
  request.append(body);
  size_t sent = 0;
  while (sent < request.size()) {
    if (!wait_for(fd, POLLOUT, deadline)) {
      return Error(ErrorKind::kHostError, what + ": timed out sending the request");
    }
    ssize_t wrote = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (wrote < 0 && errno != EAGAIN && errno != EINTR) {
      return Error(ErrorKind::kHostError, what + ": " + std::strerror(errno));
    }
    if (wrote > 0) sent += static_cast<size_t>(wrote);
  }
  std::string answer;
  char buffer[16384];
  for (;;) {
    if (!wait_for(fd, POLLIN, deadline)) {
      return Error(ErrorKind::kHostError, what + ": no complete answer within " +
                                              std::to_string(target.timeout.count()) + " ms");
    }
    ssize_t got = recv(fd, buffer, sizeof buffer, 0);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Error(ErrorKind::kHostError, what + ": " + std::strerror(errno));
    }
    answer.append(buffer, static_cast<size_t>(got));
    if (answer.size() > kMaxAnswerBytes) {
      return Error(ErrorKind::kHostError, what + ": the answer exceeds 16 MiB");
    }
    // A server that keeps the connection open: done once Content-Length is in.
    if (size_t end = answer.find("\r\n\r\n"); end != std::string::npos) {
      std::string head = answer.substr(0, end);
      for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t at = head.find("\r\ncontent-length:");
      if (at != std::string::npos &&
          answer.size() - end - 4 >= std::strtoull(head.c_str() + at + 17, nullptr, 10)) {
        break;
      }
    }
  }
  size_t head_end = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || answer.size() < 12) {
    return Error(ErrorKind::kHostError, what + ": the answer is not HTTP");
  }
  int status = std::atoi(answer.c_str() + 9);
  std::string content = answer.substr(head_end + 4);
  if (status < 200 || status > 299) {
    return Error(ErrorKind::kHostError,
                 what + " answered " + std::to_string(status) + ": " + content.substr(0, 200));
  }
  return content;
}

struct Router {
  std::map<std::string, HostcallTarget, std::less<>> targets;
  std::vector<std::string> allowed_hosts;
  const Functions* functions = nullptr;
  Hostcall fallback;

  bool allowed(const std::string& url) const {
    Url parts = split_url(url);
    return std::any_of(allowed_hosts.begin(), allowed_hosts.end(), [&](const std::string& host) {
      return host == parts.authority || host == parts.host || host == parts.host + ":" + parts.port;
    });
  }

  Result<std::string> operator()(std::string_view name, std::string_view json) const {
    auto found = targets.find(name);
    if (found == targets.end()) {
      if (fallback) return fallback(name, json);
      std::string known;
      for (const auto& [known_name, ignored] : targets)
        known += (known.empty() ? "" : ", ") + known_name;
      return Error(ErrorKind::kNotFound,
                   "no hostcall named '" + std::string(name) +
                       "' (the manifest's hostcalls: " + (known.empty() ? "none" : known) + ")");
    }
    const HostcallTarget& target = found->second;
    if (!target.url.empty()) {
      if (!allowed(target.url)) {
        return Error(ErrorKind::kHostError, "hostcall '" + target.name + "': " + target.url +
                                                " is not on the allowed hosts (allowed_hosts)");
      }
      return post_json(target, json);
    }
    if (nesting >= kMaxNesting) {
      return Error(ErrorKind::kHostError, "hostcall '" + target.name + "': ops call each other " +
                                              "more than " + std::to_string(kMaxNesting) + " deep");
    }
    struct Depth {
      Depth() { ++nesting; }
      ~Depth() { --nesting; }
    } depth;
    Hostcall self = [this](std::string_view inner, std::string_view value) {
      return (*this)(inner, value);
    };
    FunctionResult<std::string> answer = functions->handle(target.op, json, self);
    if (!answer) {
      return Error(ErrorKind::kHostError, "op '" + target.op + "' (" +
                                              function_error_kind_name(answer.error().kind) +
                                              "): " + answer.error().message);
    }
    return std::move(*answer);
  }
};

}  // namespace

Hostcall manifest_hostcall(const OpsManifest& manifest, const Functions& functions,
                           Hostcall fallback) {
  auto router = std::make_shared<Router>();
  for (const HostcallTarget& target : manifest.hostcalls)
    router->targets.emplace(target.name, target);
  router->allowed_hosts = manifest.allowed_hosts;
  router->functions = &functions;
  router->fallback = std::move(fallback);
  return [router](std::string_view name, std::string_view json) { return (*router)(name, json); };
}

uint16_t hostcall_url_port(const std::string& url) {
  if (url.rfind("http://", 0) != 0) return 0;  // load_ops_manifest allows no other
  std::string port = split_url(url).port;
  if (!port.empty() && port.size() <= 5 &&
      port.find_first_not_of("0123456789") == std::string::npos) {
    int number = std::stoi(port);
    return number > 0 && number < 65536 ? static_cast<uint16_t>(number) : 0;
  }
  servent* service = getservbyname(port.c_str(), "tcp");
  return service ? ntohs(static_cast<uint16_t>(service->s_port)) : 0;
}

}  // namespace terrarium
