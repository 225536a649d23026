// An HTTP request as the server library takes it in (src/server/http_server.cc:
// Boost.Beast's parser with the server's limits, then the Request it hands a
// handler) and what the front ends make of it: Request::header, percent
// decoding (http_util.cc), route matching, the CGI and WSGI environments and
// the WSGI payload, Wagi's argv and SERVER_NAME/PORT (cgi.cc).
// Invariants: no crash; header names are tokens; percent_decode yields UTF-8
// and percent_decode_bytes never grows; the environments have one entry per
// name, every CGI variable, sanitized header values, SCRIPT_NAME + PATH_INFO
// that rebuild the path; the WSGI payload reads back to the environ.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>

#include "fuzz_common.h"
#include "server/cgi.h"
#include "terrarium/http.h"

namespace {

namespace bhttp = boost::beast::http;
using terrarium::http::Request;
using terrarium::server::RoutePattern;

// As terrarium::http::Options' defaults (a smaller body limit: fuzz inputs are small anyway).
constexpr uint32_t kMaxHeaderBytes = 16 * 1024;
constexpr uint64_t kMaxBodyBytes = 1 << 20;

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
      if ((static_cast<unsigned char>(text[i + j]) & 0xC0) != 0x80) return false;
    }
    auto second = static_cast<unsigned char>(text[i + 1 < text.size() ? i + 1 : i]);
    if (length == 3 && ((c == 0xE0 && second < 0xA0) || (c == 0xED && second > 0x9F))) return false;
    if (length == 4 && ((c == 0xF0 && second < 0x90) || (c == 0xF4 && second > 0x8F))) return false;
    i += length;
  }
  return true;
}

bool visible_ascii(std::string_view value) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (u != '\t' && (u < 0x20 || u > 0x7E)) return false;
  }
  return true;
}

// Parses the whole input as one request, as a Session does; nullopt when the
// server would answer by itself (400, 413, 431, 505) or wait for more bytes.
std::optional<Request> parse_request(std::string_view bytes) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(kMaxBodyBytes);
  parser.eager(true);
  boost::system::error_code ec;
  size_t offset = 0;
  while (!parser.is_done() && offset < bytes.size()) {
    size_t used = parser.put(boost::asio::buffer(bytes.data() + offset, bytes.size() - offset), ec);
    offset += used;
    if (ec == bhttp::error::need_more) {
      if (used == 0) break;
      ec = {};
      continue;
    }
    if (ec) return std::nullopt;
    if (used == 0) break;
  }
  if (!parser.is_done()) {
    if (!parser.got_some()) return std::nullopt;  // nothing received: the server just closes
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return std::nullopt;
  }
  auto& message = parser.get();
  if (message.version() != 10 && message.version() != 11) return std::nullopt;  // 505
  // Session::dispatch (http_server.cc) builds the handler's Request so:
  Request request;
  request.id = 1;
  request.method = std::string(message.method_string());
  request.set_target(std::string(message.target()));
  request.version = static_cast<int>(message.version());
  for (const auto& field : message) {
    request.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  request.body = std::move(message.body());
  request.remote_address = "127.0.0.1";
  request.remote_port = 40000;
  request.local_port = 3000;
  return request;
}

std::map<std::string, std::string> as_map(const std::vector<std::string>& env, const char* what) {
  std::map<std::string, std::string> map;
  for (const auto& entry : env) {
    size_t equals = entry.find('=');
    FUZZ_CHECK(equals != std::string::npos && equals > 0, std::string(what) + " entry " + entry);
    bool fresh = map.emplace(entry.substr(0, equals), entry.substr(equals + 1)).second;
    FUZZ_CHECK(fresh, std::string(what) + " repeats " + entry.substr(0, equals));
  }
  return map;
}

void check_decoding(std::string_view text) {
  std::string bytes = terrarium::http::percent_decode_bytes(text);
  FUZZ_CHECK(bytes.size() <= text.size(), std::string(text));
  if (text.find('%') == std::string_view::npos) FUZZ_CHECK(bytes == text, std::string(text));
  std::string decoded = terrarium::http::percent_decode(text);
  FUZZ_CHECK(valid_utf8(decoded), "percent_decode gave invalid UTF-8 for " + std::string(text));
  if (valid_utf8(bytes)) FUZZ_CHECK(decoded == bytes, std::string(text));
}

void check_route(const Request& request, const RoutePattern& route) {
  const std::string& path = request.path;
  bool matches = route.matches(path);
  if (matches && route.wildcard) {
    std::string_view info = route.raw_path_info(path);
    FUZZ_CHECK(route.prefix + std::string(info) == path, route.route + " on " + path);
    FUZZ_CHECK(info.empty() || info[0] == '/', route.route + " on " + path);
  }
  if (!route.wildcard) FUZZ_CHECK(route.raw_path_info(path).empty(), route.route);

  static const std::vector<std::string> kServerEnv = {"TERRARIUM=1", "PATH_INFO=overridden"};
  terrarium::server::CgiRequest cgi{request, route, "localhost:3000", kServerEnv, false};
  auto env = as_map(terrarium::server::cgi_environment(cgi), "CGI env");
  for (const char* name :
       {"AUTH_TYPE",       "CONTENT_LENGTH", "CONTENT_TYPE", "GATEWAY_INTERFACE", "SERVER_SOFTWARE",
        "SERVER_PROTOCOL", "REQUEST_METHOD", "QUERY_STRING", "REMOTE_ADDR",       "REMOTE_HOST",
        "REMOTE_USER",     "SCRIPT_NAME",    "PATH_INFO",    "X_RAW_PATH_INFO",   "PATH_TRANSLATED",
        "X_MATCHED_ROUTE", "SERVER_NAME",    "SERVER_PORT",  "X_FULL_URL",        "TERRARIUM"}) {
    FUZZ_CHECK(env.count(name), std::string("CGI env lacks ") + name);
  }
  FUZZ_CHECK(env["CONTENT_LENGTH"] == std::to_string(request.body.size()), env["CONTENT_LENGTH"]);
  FUZZ_CHECK(env["REQUEST_METHOD"] == request.method, env["REQUEST_METHOD"]);
  FUZZ_CHECK(env["QUERY_STRING"] == request.query, env["QUERY_STRING"]);
  FUZZ_CHECK(!env["SERVER_NAME"].empty() && !env["SERVER_PORT"].empty(), "SERVER_NAME/PORT empty");
  FUZZ_CHECK(valid_utf8(env["PATH_INFO"]), "PATH_INFO not UTF-8");
  FUZZ_CHECK(!env.count("HTTP_AUTHORIZATION") && !env.count("HTTP_CONNECTION"),
             "CGI env leaks a header");
  for (const auto& [name, value] : env) {
    if (fuzz::starts_with(name, "HTTP_")) {
      FUZZ_CHECK(visible_ascii(value), name + " carries control or non-ASCII bytes");
    }
  }
  auto [server_name, server_port] =
      terrarium::server::server_name_and_port(request, "localhost:3000");
  FUZZ_CHECK(server_name == env["SERVER_NAME"] && server_port == env["SERVER_PORT"], server_name);

  std::vector<std::string> wsgi = terrarium::server::wsgi_environment(cgi);
  auto environ = as_map(wsgi, "WSGI environ");
  FUZZ_CHECK(!environ.count("TERRARIUM"), "WSGI environ carries the server's env");
  FUZZ_CHECK(!environ.count("HTTP_CONTENT_TYPE") && !environ.count("HTTP_CONTENT_LENGTH"),
             "WSGI content headers");
  FUZZ_CHECK(environ["SCRIPT_NAME"] + environ["X_RAW_PATH_INFO"] == path,
             environ["SCRIPT_NAME"] + " + " + environ["X_RAW_PATH_INFO"] + " != " + path);
  FUZZ_CHECK(environ["SCRIPT_NAME"].empty() || environ["SCRIPT_NAME"][0] == '/' ||
                 !fuzz::starts_with(path, "/"),
             environ["SCRIPT_NAME"]);
  FUZZ_CHECK(
      environ["PATH_INFO"] == terrarium::http::percent_decode_bytes(environ["X_RAW_PATH_INFO"]),
      environ["PATH_INFO"]);

  // The payload the guest's WSGI adapter reads: "N LEN\0", N names, N values, the body.
  std::string payload = terrarium::server::wsgi_request_payload(wsgi, request.body);
  size_t header_end = payload.find('\0');
  FUZZ_CHECK(header_end != std::string::npos, "payload without a count");
  size_t count = 0, length = 0;
  FUZZ_CHECK(std::sscanf(payload.substr(0, header_end).c_str(), "%zu %zu", &count, &length) == 2,
             "payload count");
  FUZZ_CHECK(length == request.body.size(), "payload body length");
  size_t at = header_end + 1;
  std::vector<std::string> fields;
  for (size_t i = 0; i < 2 * count; ++i) {
    size_t end = payload.find('\0', at);
    FUZZ_CHECK(end != std::string::npos, "payload field " + std::to_string(i) + " unterminated");
    fields.push_back(payload.substr(at, end - at));
    at = end + 1;
  }
  FUZZ_CHECK(payload.size() - at == length && payload.compare(at, length, request.body) == 0,
             "payload body");
  std::vector<std::string> expected;
  for (const auto& entry : wsgi) {
    if (entry.find('\0') == std::string::npos) expected.push_back(entry);
  }
  FUZZ_CHECK(expected.size() == count, "payload count " + std::to_string(count));
  for (size_t i = 0; i < count; ++i) {
    FUZZ_CHECK(fields[i] + "=" + fields[count + i] == expected[i], "payload entry " + expected[i]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The helpers on the raw bytes too: a path is not the only thing decoded.
  check_decoding(bytes);
  std::optional<Request> parsed = parse_request(bytes);
  if (!parsed) return 0;
  const Request& request = *parsed;

  check_decoding(request.path);
  check_decoding(request.query);
  FUZZ_CHECK(request.target == request.path + (request.has_query ? "?" + request.query : ""),
             request.target);
  for (const auto& [name, value] : request.headers) {
    FUZZ_CHECK(terrarium::http::is_token(name), "a parsed header name is not a token: " + name);
    FUZZ_CHECK(terrarium::http::is_field_value(value),
               "a parsed header value is not clean: " + name);
    // header() answers the last value of a name, whatever its case.
    const std::string* found = request.header(name);
    FUZZ_CHECK(found != nullptr, name);
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    FUZZ_CHECK(request.header(lower) == found, name);
  }

  // Wagi's argv without a template: the path, then the query split at '&'.
  auto argv = terrarium::server::wagi_argv(request, std::nullopt);
  size_t ampersands = std::count(request.query.begin(), request.query.end(), '&');
  FUZZ_CHECK(!argv.empty() && argv[0] == request.path, "argv[0]");
  FUZZ_CHECK(argv.size() == 1 + (request.has_query ? ampersands + 1 : 0), "argv size");
  auto templated = terrarium::server::wagi_argv(
      request, std::string("python /code/app.py ${SCRIPT_NAME} ${ARGS}"));
  FUZZ_CHECK(templated.size() >= 2 && templated[0] == "python" && templated[1] == "/code/app.py",
             "templated argv");
  for (const auto& word : templated) {
    FUZZ_CHECK(!word.empty(), "empty templated argv word");
    for (char c : word)
      FUZZ_CHECK(!std::isspace(static_cast<unsigned char>(c)), "whitespace in argv word");
  }

  std::vector<std::string> routes = {"/",        "/...",       "/env",
                                     "/env/...", request.path, request.path + "/..."};
  if (size_t slash = request.path.rfind('/'); slash != std::string::npos && slash > 0) {
    routes.push_back(request.path.substr(0, slash) + "/...");
  }
  for (const auto& route : routes) check_route(request, RoutePattern::parse(route));
  return 0;
}
