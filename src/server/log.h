// The server's log (text or JSON lines) and its access log. Thread-safe.
#pragma once

#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "terrarium/error.h"
#include "terrarium/server.h"

namespace terrarium::server {

using Fields = std::vector<std::pair<std::string_view, std::string>>;

class Log {
 public:
  Log(LogFormat format, std::function<void(std::string_view)> sink);
  void info(std::string_view message, const Fields& fields = {}) { write("info", message, fields); }
  void warn(std::string_view message, const Fields& fields = {}) { write("warn", message, fields); }
  void error(std::string_view message, const Fields& fields = {}) {
    write("error", message, fields);
  }
  LogFormat format() const { return format_; }

  // One line: "2026-12-01T22:42:44.123Z info  message key=value ..." or a
  // JSON object with time, level, message and the fields.
  static std::string format_line(LogFormat format, std::string_view level, std::string_view message,
                                 const Fields& fields);

 private:
  void write(std::string_view level, std::string_view message, const Fields& fields);
  LogFormat format_;
  std::function<void(std::string_view)> sink_;
  std::mutex mutex_;
};

// The access log: a line per request, appended to a file or stdout.
class AccessLog {
 public:
  static Result<std::unique_ptr<AccessLog>> open(const std::string& where, LogFormat format);
  ~AccessLog();
  struct Entry {
    std::string_view remote_address;
    std::string_view method;
    std::string_view target;
    int version;
    int status;
    uint64_t body_bytes;
    double seconds;
    std::string_view route;  // "" when no route matched
    uint64_t request_id;
    std::string_view user_agent;
    std::string_view referer;
  };
  // Text: the Combined Log Format, then the duration, route and request id.
  void write(const Entry& entry);

 private:
  AccessLog(FILE* file, bool owned, LogFormat format)
      : file_(file), owned_(owned), format_(format) {}
  FILE* file_;
  bool owned_;
  LogFormat format_;
  std::mutex mutex_;
};

// JSON string escaping (for the JSON log formats).
std::string json_escape(std::string_view text);

}  // namespace terrarium::server
