#include "server/log.h"

#include <sys/time.h>
#include <time.h>

#include <cerrno>
#include <cstring>

namespace terrarium::server {

namespace {

std::string timestamp() {
  struct timeval now;
  gettimeofday(&now, nullptr);
  struct tm utc;
  gmtime_r(&now.tv_sec, &utc);
  char buffer[40];
  size_t n = strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buffer + n, sizeof buffer - n, ".%03dZ", static_cast<int>(now.tv_usec / 1000));
  return buffer;
}

// A text field value: bare when it has no spaces, quotes or controls.
std::string text_value(const std::string& value) {
  bool plain = !value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) plain = false;
  }
  return plain ? value : "\"" + json_escape(value) + "\"";
}

}  // namespace

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  return out;
}

Log::Log(LogFormat format, std::function<void(std::string_view)> sink)
    : format_(format), sink_(std::move(sink)) {
  if (!sink_) {
    sink_ = [](std::string_view line) {
      std::string text(line);
      text += '\n';
      std::fwrite(text.data(), 1, text.size(), stderr);
    };
  }
}

std::string Log::format_line(LogFormat format, std::string_view level, std::string_view message,
                             const Fields& fields) {
  std::string line;
  if (format == LogFormat::kJson) {
    line = "{\"time\":\"" + timestamp() + "\",\"level\":\"" + std::string(level) +
           "\",\"message\":\"" + json_escape(message) + "\"";
    for (const auto& [key, value] : fields) {
      line += ",\"" + json_escape(key) + "\":\"" + json_escape(value) + "\"";
    }
    line += "}";
    return line;
  }
  line = timestamp() + " " + std::string(level);
  line.append(level.size() < 5 ? 5 - level.size() : 0, ' ');
  line += " ";
  line += message;
  for (const auto& [key, value] : fields) {
    line += " ";
    line += key;
    line += "=";
    line += text_value(value);
  }
  return line;
}

void Log::write(std::string_view level, std::string_view message, const Fields& fields) {
  std::string line = format_line(format_, level, message, fields);
  std::lock_guard lock(mutex_);
  sink_(line);
}

Result<std::unique_ptr<AccessLog>> AccessLog::open(const std::string& where, LogFormat format) {
  if (where == "-") return std::unique_ptr<AccessLog>(new AccessLog(stdout, false, format));
  FILE* file = std::fopen(where.c_str(), "ae");
  if (!file) {
    return Error(ErrorKind::kConfig, "--access-log '" + where +
                                         "': cannot open for appending: " + std::strerror(errno));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(file, true, format));
}

AccessLog::~AccessLog() {
  if (owned_)
    std::fclose(file_);
  else
    std::fflush(file_);
}

void AccessLog::write(const Entry& entry) {
  std::string line;
  std::string version = entry.version == 10 ? "HTTP/1.0" : "HTTP/1.1";
  if (format_ == LogFormat::kJson) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.6f", entry.seconds);
    line = "{\"time\":\"" + timestamp() + "\",\"remote\":\"" + json_escape(entry.remote_address) +
           "\",\"method\":\"" + json_escape(entry.method) + "\",\"target\":\"" +
           json_escape(entry.target) + "\",\"protocol\":\"" + version +
           "\",\"status\":" + std::to_string(entry.status) +
           ",\"bytes\":" + std::to_string(entry.body_bytes) + ",\"seconds\":" + seconds +
           ",\"route\":\"" + json_escape(entry.route) +
           "\",\"request_id\":" + std::to_string(entry.request_id) + ",\"user_agent\":\"" +
           json_escape(entry.user_agent) + "\",\"referer\":\"" + json_escape(entry.referer) +
           "\"}\n";
  } else {
    time_t now = time(nullptr);
    struct tm utc;
    gmtime_r(&now, &utc);
    char when[40];
    strftime(when, sizeof when, "[%d/%b/%Y:%H:%M:%S +0000]", &utc);
    char tail[96];
    std::snprintf(tail, sizeof tail, " %.6f", entry.seconds);
    auto quoted = [](std::string_view text) {
      return text.empty() ? std::string("\"-\"") : "\"" + json_escape(text) + "\"";
    };
    line = std::string(entry.remote_address.empty() ? "-" : entry.remote_address) + " - - " + when +
           " \"" + json_escape(entry.method) + " " + json_escape(entry.target) + " " + version +
           "\" " + std::to_string(entry.status) + " " + std::to_string(entry.body_bytes) + " " +
           quoted(entry.referer) + " " + quoted(entry.user_agent) + tail +
           " route=" + (entry.route.empty() ? std::string("-") : std::string(entry.route)) +
           " id=" + std::to_string(entry.request_id) + "\n";
  }
  std::lock_guard lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace terrarium::server
