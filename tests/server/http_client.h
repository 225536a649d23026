// A small blocking HTTP/1.1 client for the server tests: raw bytes out (so
// tests can send malformed requests), a parsed response back. Loopback only,
// every read bounded by a timeout.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace terrarium::testing {

struct HttpReply {
  int status = 0;       // 0: no response (connection closed or timed out)
  std::string version;  // "HTTP/1.1"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool chunked = false;

  // The last value of a header (case-insensitive), "" if absent.
  std::string header(const std::string& name) const {
    std::string found;
    for (const auto& [key, value] : headers) {
      if (key.size() != name.size()) continue;
      bool same = true;
      for (size_t i = 0; i < key.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(key[i])) !=
            std::tolower(static_cast<unsigned char>(name[i])))
          same = false;
      }
      if (same) found = value;
    }
    return found;
  }
  size_t count(const std::string& name) const {
    size_t n = 0;
    for (const auto& [key, value] : headers) {
      if (strcasecmp(key.c_str(), name.c_str()) == 0) ++n;
    }
    return n;
  }
};

class Connection {
 public:
  explicit Connection(uint16_t port, const char* host = "127.0.0.1") {
    bool v6 = std::string(host).find(':') != std::string::npos;
    fd_ = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (v6) {
      sockaddr_in6 address{};
      address.sin6_family = AF_INET6;
      address.sin6_port = htons(port);
      inet_pton(AF_INET6, host, &address.sin6_addr);
      connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    } else {
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(port);
      inet_pton(AF_INET, host, &address.sin_addr);
      connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    }
  }
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool send(const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads one response; `head`: the request was HEAD (no body follows).
  HttpReply read_reply(bool head = false,
                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    HttpReply reply;
    deadline_ = std::chrono::steady_clock::now() + timeout;
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return reply;
    }
    std::string head_text = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    size_t line_end = head_text.find("\r\n");
    std::string status_line = head_text.substr(0, line_end);
    reply.version = status_line.substr(0, status_line.find(' '));
    reply.status = std::atoi(status_line.c_str() + status_line.find(' ') + 1);
    size_t start = line_end == std::string::npos ? head_text.size() : line_end + 2;
    while (start < head_text.size()) {
      size_t next = head_text.find("\r\n", start);
      if (next == std::string::npos) next = head_text.size();
      std::string line = head_text.substr(start, next - start);
      size_t colon = line.find(':');
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      reply.headers.emplace_back(line.substr(0, colon), value);
      start = next + 2;
    }
    if (head || reply.status == 204 || reply.status == 304 || reply.status / 100 == 1) return reply;
    std::string length = reply.header("Content-Length");
    if (!length.empty()) {
      size_t n = std::stoul(length);
      while (buffer_.size() < n) {
        if (!fill()) break;
      }
      reply.body = buffer_.substr(0, n);
      buffer_.erase(0, std::min(n, buffer_.size()));
    } else if (reply.header("Transfer-Encoding") == "chunked") {
      reply.chunked = true;
      for (;;) {
        size_t size_end;
        while ((size_end = buffer_.find("\r\n")) == std::string::npos) {
          if (!fill()) return reply;
        }
        size_t size = std::stoul(buffer_.substr(0, size_end), nullptr, 16);
        buffer_.erase(0, size_end + 2);
        while (buffer_.size() < size + 2) {
          if (!fill()) return reply;
        }
        reply.body += buffer_.substr(0, size);
        buffer_.erase(0, size + 2);
        if (size == 0) break;
      }
    } else {
      while (fill()) {
      }
      reply.body = std::move(buffer_);
      buffer_.clear();
    }
    return reply;
  }

  // True when the server closed the connection (read returns 0) in time.
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    deadline_ = std::chrono::steady_clock::now() + timeout;
    while (fill()) {
    }
    return eof_;
  }

 private:
  bool fill() {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[65536];
    ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      // Closed: an orderly end, or a reset (a connection still in the listen
      // queue when the server stops).
      eof_ = n == 0 || errno == ECONNRESET;
      return false;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
  std::chrono::steady_clock::time_point deadline_;
};

// One request on a new connection.
inline HttpReply fetch(uint16_t port, const std::string& method, const std::string& target,
                       const std::vector<std::pair<std::string, std::string>>& headers = {},
                       const std::string& body = "") {
  Connection connection(port);
  std::string request = method + " " + target +
                        " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  connection.send(request);
  return connection.read_reply(method == "HEAD");
}

}  // namespace terrarium::testing
