// CGI as Wagi does it; every rule here cites wagi-facts.md by section.
#include "server/cgi.h"

#include <algorithm>
#include <cctype>

namespace terrarium::server {

namespace {

bool visible_ascii(std::string_view value) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u != '\t' && (u < 0x20 || u > 0x7E)) return false;
  }
  return true;
}

bool same_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::string_view trim(std::string_view text) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
  };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

bool valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t length = c < 0x80                   ? 1
                    : (c >= 0xC2 && c <= 0xDF) ? 2
                    : (c >= 0xE0 && c <= 0xEF) ? 3
                    : (c >= 0xF0 && c <= 0xF4) ? 4
                                               : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (size_t j = 1; j < length; ++j) {
      auto next = static_cast<unsigned char>(text[i + j]);
      if ((next & 0xC0) != 0x80) return false;
    }
    if (length == 3) {
      auto second = static_cast<unsigned char>(text[i + 1]);
      if ((c == 0xE0 && second < 0xA0) || (c == 0xED && second > 0x9F)) return false;
    } else if (length == 4) {
      auto second = static_cast<unsigned char>(text[i + 1]);
      if ((c == 0xF0 && second < 0x90) || (c == 0xF4 && second > 0x8F)) return false;
    }
    i += length;
  }
  return true;
}

// Splits "host:port" at the first ':' into the parts that are non-empty
// (§3: both the default host and the Host header are applied this way).
void apply_host(std::string_view value, std::string& host, std::string& port) {
  size_t colon = value.find(':');
  std::string_view left = value.substr(0, colon);
  std::string_view right = colon == std::string_view::npos ? "" : value.substr(colon + 1);
  if (!left.empty()) host = std::string(left);
  if (!right.empty()) port = std::string(right);
}

}  // namespace

// --- routes (§1.1) -----------------------------------------------------------

RoutePattern RoutePattern::parse(std::string_view route) {
  RoutePattern pattern;
  pattern.route = std::string(route);
  constexpr std::string_view kWildcard = "/...";
  if (route.size() >= kWildcard.size() &&
      route.substr(route.size() - kWildcard.size()) == kWildcard) {
    pattern.wildcard = true;
    pattern.prefix = std::string(route.substr(0, route.size() - kWildcard.size()));
  } else {
    pattern.prefix = pattern.route;
  }
  return pattern;
}

bool RoutePattern::matches(std::string_view raw_path) const {
  if (!wildcard) return raw_path == route;
  if (raw_path.substr(0, prefix.size()) != prefix) return false;
  return raw_path.size() == prefix.size() || raw_path[prefix.size()] == '/';
}

std::string RoutePattern::script_name() const {
  if (!wildcard) return route;
  if (prefix.empty() || prefix[0] != '/') return "/" + prefix;
  return prefix;
}

std::string_view RoutePattern::raw_path_info(std::string_view raw_path) const {
  if (!wildcard || raw_path.size() < prefix.size()) return {};
  return raw_path.substr(prefix.size());
}

// --- environment (§3) --------------------------------------------------------

std::pair<std::string, std::string> server_name_and_port(const http::Request& request,
                                                         std::string_view default_host) {
  std::string host = "localhost", port = "80";
  // An absolute-form target ("http://h:p/x") names the host first.
  std::string_view target = request.target;
  if (size_t scheme = target.find("://");
      scheme != std::string_view::npos && target.substr(0, 1) != "/") {
    std::string_view authority = target.substr(scheme + 3);
    authority = authority.substr(0, authority.find('/'));
    apply_host(authority, host, port);
  }
  apply_host(default_host, host, port);
  if (const std::string* header = request.header("Host")) apply_host(*header, host, port);
  return {host, port};
}

std::vector<std::string> cgi_environment(const CgiRequest& cgi) {
  const http::Request& request = cgi.request;
  std::vector<std::string> env;
  env.reserve(cgi.env.size() + 24 + request.headers.size());
  // Later entries override earlier ones with the same name: collect in
  // order, then keep each name's last value in its first position.
  auto set = [&env](std::string_view name, std::string_view value) {
    std::string entry;
    entry.reserve(name.size() + 1 + value.size());
    entry.append(name).append("=").append(value);
    env.push_back(std::move(entry));
  };
  for (const auto& entry : cgi.env) env.push_back(entry);

  auto [server_name, server_port] = server_name_and_port(request, cgi.default_host);
  std::string_view raw_info = cgi.route.raw_path_info(request.path);
  std::string path_info = http::percent_decode(raw_info);
  const std::string* content_type = request.header("Content-Type");
  set("AUTH_TYPE", "");
  set("CONTENT_LENGTH", std::to_string(request.body.size()));
  set("CONTENT_TYPE", content_type ? std::string_view(*content_type) : std::string_view());
  set("GATEWAY_INTERFACE", "CGI/1.1");
  set("SERVER_SOFTWARE", "WAGI/1");
  set("SERVER_PROTOCOL", request.version == 10 ? "HTTP/1.0" : "HTTP/1.1");
  set("REQUEST_METHOD", request.method);
  set("QUERY_STRING", request.query);
  set("REMOTE_ADDR", request.remote_address);
  set("REMOTE_HOST", request.remote_address);
  set("REMOTE_USER", "");
  set("SCRIPT_NAME", cgi.route.script_name());
  set("PATH_INFO", path_info);
  set("X_RAW_PATH_INFO", raw_info);
  set("PATH_TRANSLATED", path_info);
  set("X_MATCHED_ROUTE", cgi.route.route);
  set("SERVER_NAME", server_name);
  set("SERVER_PORT", server_port);
  std::string full_url = std::string(cgi.tls ? "https" : "http") + "://" + server_name + ":" +
                         server_port + request.path;
  if (request.has_query) full_url += "?" + request.query;
  set("X_FULL_URL", full_url);

  for (const auto& [name, value] : request.headers) {
    std::string key = "HTTP_";
    key.reserve(5 + name.size());
    for (char c : name) {
      key.push_back(c == '-' ? '_'
                             : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
    if (key == "HTTP_AUTHORIZATION" || key == "HTTP_CONNECTION") continue;
    set(key, visible_ascii(value) ? std::string_view(value) : std::string_view("CORRUPT VALUE"));
  }

  // Last value wins, first position kept.
  std::vector<std::string> merged;
  merged.reserve(env.size());
  std::vector<std::string_view> names;
  names.reserve(env.size());
  for (auto& entry : env) {
    std::string_view name(entry.data(), entry.find('='));
    size_t found = names.size();
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name) {
        found = i;
        break;
      }
    }
    if (found == names.size()) {
      merged.push_back(std::move(entry));
      names.emplace_back(merged.back().data(), name.size());
    } else {
      merged[found] = std::move(entry);
      names[found] = std::string_view(merged[found].data(), name.size());
    }
  }
  return merged;
}

std::vector<std::string> wsgi_environment(const CgiRequest& cgi) {
  static const std::vector<std::string> kNoEnv;
  std::vector<std::string> env =
      cgi_environment({cgi.request, cgi.route, cgi.default_host, kNoEnv, cgi.tls});
  const RoutePattern& route = cgi.route;
  std::string_view path = cgi.request.path;
  // Mounted at the wildcard's prefix; exact routes and "/..." at the root.
  std::string script_name = route.wildcard ? route.prefix : "";
  if (path.substr(0, script_name.size()) != script_name) script_name.clear();  // not under it
  std::string_view raw_info = path.substr(std::min(script_name.size(), path.size()));
  std::string path_info = http::percent_decode_bytes(raw_info);
  std::vector<std::string> out;
  out.reserve(env.size());
  for (std::string& entry : env) {
    std::string_view name(entry.data(), entry.find('='));
    if (name == "HTTP_CONTENT_TYPE" || name == "HTTP_CONTENT_LENGTH") continue;
    if (name.rfind("HTTP_", 0) == 0) continue;  // added below, as sent
    if (name == "SCRIPT_NAME")
      entry = "SCRIPT_NAME=" + script_name;
    else if (name == "PATH_INFO")
      entry = "PATH_INFO=" + path_info;
    else if (name == "PATH_TRANSLATED")
      entry = "PATH_TRANSLATED=" + path_info;
    else if (name == "X_RAW_PATH_INFO")
      entry = "X_RAW_PATH_INFO=" + std::string(raw_info);
    out.push_back(std::move(entry));
  }
  // Headers: the last of a repeated name wins, as for CGI.
  std::vector<std::string> headers;
  for (const auto& [name, value] : cgi.request.headers) {
    std::string key = "HTTP_";
    for (char c : name) {
      key.push_back(c == '-' ? '_'
                             : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    }
    // Unlike CGI (Wagi drops Authorization), WSGI apps read it, as under gunicorn.
    if (key == "HTTP_CONTENT_TYPE" || key == "HTTP_CONTENT_LENGTH") continue;
    std::string entry = key + "=" + value;
    bool replaced = false;
    for (std::string& existing : headers) {
      if (existing.compare(0, key.size() + 1, key + "=") == 0) {
        existing = entry;
        replaced = true;
      }
    }
    if (!replaced) headers.push_back(std::move(entry));
  }
  out.insert(out.end(), std::make_move_iterator(headers.begin()),
             std::make_move_iterator(headers.end()));
  return out;
}

std::string wsgi_request_payload(const std::vector<std::string>& environ, std::string_view body) {
  std::string names, values;
  size_t count = 0;
  for (const std::string& entry : environ) {
    size_t equals = entry.find('=');
    std::string_view name(entry.data(), equals), value(std::string_view(entry).substr(equals + 1));
    if (name.find('\0') != std::string_view::npos || value.find('\0') != std::string_view::npos) {
      continue;
    }
    names.append(name).push_back('\0');
    values.append(value).push_back('\0');
    ++count;
  }
  std::string payload = std::to_string(count) + " " + std::to_string(body.size());
  payload.push_back('\0');
  payload += names;
  payload += values;
  payload += body;
  return payload;
}

// --- argv (§4) ---------------------------------------------------------------

std::vector<std::string> wagi_argv(const http::Request& request,
                                   const std::optional<std::string>& argv_template) {
  std::vector<std::string> argv;
  if (!argv_template) {
    argv.push_back(request.path);
    if (!request.has_query) return argv;
    size_t start = 0;
    for (;;) {
      size_t amp = request.query.find('&', start);
      argv.push_back(request.query.substr(start, amp - start));
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
    return argv;
  }
  std::string text = *argv_template;
  auto replace_all = [&text](std::string_view from, const std::string& to) {
    size_t at = 0;
    while ((at = text.find(from, at)) != std::string::npos) {
      text.replace(at, from.size(), to);
      at += to.size();
    }
  };
  std::string args = request.query;
  for (char& c : args) {
    if (c == '&') c = ' ';
  }
  replace_all("${SCRIPT_NAME}", request.path);
  replace_all("${ARGS}", args);
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) argv.push_back(text.substr(start, i - start));
  }
  return argv;
}

// --- the response (§5) -------------------------------------------------------

CgiOutput parse_cgi_output(std::string_view output) {
  CgiOutput out;
  http::Response& response = out.response;
  // 1. The header block: CRs dropped, ended by the first LF after a LF.
  std::string header_block;
  std::string_view body;
  bool found_end = false;
  char previous = 0;
  for (size_t i = 0; i < output.size(); ++i) {
    char c = output[i];
    if (c == '\r') continue;
    if (c == '\n' && previous == '\n') {
      body = output.substr(i + 1);
      found_end = true;
      break;
    }
    header_block.push_back(c);
    previous = c;
  }
  auto insufficient = [&](std::string problem) {
    response = {500, {}, std::string(kInsufficientHeaders)};
    out.problem = std::move(problem);
    return out;
  };
  if (!found_end) {
    return insufficient(output.empty() ? "the script wrote nothing to stdout"
                                       : "no empty line ends the script's headers");
  }
  if (!valid_utf8(header_block)) {
    response = {500, {}, ""};
    out.problem = "the script's headers are not valid UTF-8";
    return out;
  }
  std::string_view block = trim(header_block);
  bool has_content_type = false, has_status = false, has_location = false;
  int status = 200;
  bool bad_status = false;
  std::string bad_status_text;
  size_t start = 0;
  while (!block.empty() && start <= block.size()) {
    size_t newline = block.find('\n', start);
    if (newline == std::string_view::npos) newline = block.size();
    std::string_view line = block.substr(start, newline - start);
    start = newline + 1;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      if (!trim(line).empty() && out.problem.empty()) {
        out.problem = "ignored a header line without ':': " + std::string(trim(line));
      }
      continue;
    }
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    auto control_characters = [&] {
      response = {500, {}, ""};
      out.problem = "header '" + std::string(name) + "' has a value with control characters";
      return out;
    };
    if (same_ignoring_case(name, "Content-Type")) {
      if (!http::is_field_value(value)) return control_characters();
      has_content_type = true;
      bool replaced = false;
      for (auto& [key, existing] : response.headers) {
        if (same_ignoring_case(key, "Content-Type")) {
          existing = std::string(value);
          replaced = true;
        }
      }
      if (!replaced) response.headers.emplace_back("Content-Type", std::string(value));
    } else if (same_ignoring_case(name, "Status")) {
      has_status = true;
      std::string_view code = value.substr(0, value.find(' '));
      int parsed = 0;
      bool digits = !code.empty() && code.size() <= 4;
      for (char c : code) {
        if (c < '0' || c > '9') digits = false;
      }
      if (digits) parsed = std::stoi(std::string(code));
      if (!digits || parsed < 100 || parsed > 999) {
        bad_status = true;
        bad_status_text = std::string(value);
      } else {
        bad_status = false;
        status = parsed;
      }
    } else if (same_ignoring_case(name, "Location")) {
      if (!http::is_field_value(value)) return control_characters();
      has_location = true;
      response.headers.emplace_back("Location", std::string(value));
    } else if (!http::is_token(name)) {
      if (out.problem.empty())
        out.problem = "dropped a header with an invalid name: " + std::string(name);
    } else if (!http::is_field_value(value)) {
      return control_characters();
    } else {
      response.headers.emplace_back(std::string(name), std::string(value));
    }
  }
  if (!has_content_type && !has_status && !has_location) {
    return insufficient("the script's headers name none of Content-Type, Status, Location");
  }
  if (bad_status) {
    response = {502, {}, ""};
    out.problem = "the script's Status '" + bad_status_text + "' is not a status code";
    return out;
  }
  // An explicit Status wins over Location's 302 (Spin's fix of Wagi's race).
  response.status = has_status ? status : has_location ? 302 : 200;
  response.body = std::string(body);
  return out;
}

}  // namespace terrarium::server
