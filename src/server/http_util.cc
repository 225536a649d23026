// Small HTTP helpers shared by the server and the front ends: reason
// phrases, the Date header, percent-decoding, header validity.
#include <time.h>

#include <cstring>

#include "terrarium/http.h"

namespace terrarium::http {

namespace {

bool same_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends `bytes` as UTF-8, replacing each invalid sequence with U+FFFD (as
// Rust's from_utf8_lossy, which Wagi uses, does).
void append_utf8_lossy(std::string& out, std::string_view bytes) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  size_t i = 0;
  while (i < bytes.size()) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    }
    if (length == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    // A maximal valid prefix of a sequence is replaced by one U+FFFD.
    size_t j = 1;
    for (; j < length && i + j < bytes.size(); ++j) {
      auto next = static_cast<unsigned char>(bytes[i + j]);
      unsigned char lo = j == 1 ? low : 0x80, hi = j == 1 ? high : 0xBF;
      if (next < lo || next > hi) break;
    }
    if (j == length) {
      out.append(bytes.substr(i, length));
    } else {
      out += kReplacement;
    }
    i += j;
  }
}

}  // namespace

void Request::set_target(std::string raw_target) {
  target = std::move(raw_target);
  size_t question = target.find('?');
  path = target.substr(0, question);
  has_query = question != std::string::npos;
  query = has_query ? target.substr(question + 1) : std::string();
}

const std::string* Request::header(std::string_view name) const {
  const std::string* found = nullptr;
  for (const auto& [key, value] : headers) {
    if (same_ignoring_case(key, name)) found = &value;
  }
  return found;
}

bool ResponseWriter::send(const Response& response) {
  Headers headers = response.headers;
  headers.emplace_back("Content-Length", std::to_string(response.body.size()));
  if (!start(response.status, headers)) return false;
  bool ok = response.body.empty() || write(response.body);
  finish();
  return ok;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 418:
      return "I'm a teapot";
    case 422:
      return "Unprocessable Entity";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

std::string http_date() {
  thread_local time_t cached_second = 0;
  thread_local char cached[32];
  time_t now = time(nullptr);
  if (now != cached_second) {
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    cached_second = now;
  }
  return cached;
}

std::string percent_decode(std::string_view text) {
  std::string bytes = percent_decode_bytes(text);
  bool ascii = true;
  for (char c : bytes) {
    if (static_cast<unsigned char>(c) >= 0x80) ascii = false;
  }
  if (ascii) return bytes;
  std::string out;
  out.reserve(bytes.size());
  append_utf8_lossy(out, bytes);
  return out;
}

std::string percent_decode_bytes(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int high = hex_value(text[i + 1]);
      int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        c = static_cast<char>(high * 16 + low);
        i += 2;
      }
    }
    bytes.push_back(c);
  }
  return bytes;
}

bool is_token(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) continue;
    if (c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c)) continue;
    return false;
  }
  return true;
}

bool is_field_value(std::string_view value) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7F) return false;
  }
  return true;
}

}  // namespace terrarium::http
