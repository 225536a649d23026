// CGI as Wagi does it (../shared/wagi-facts.md): route patterns and matching,
// the meta-variables of a request, argv from the query, and the parsing of a
// script's output into a response. Pure functions: no sandbox, no sockets.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "terrarium/http.h"

namespace terrarium::server {

// A `route` of modules.toml: exact ("/env") or a wildcard ("/env/...", which
// matches "/env", "/env/" and "/env/x/y", not "/envy").
struct RoutePattern {
  std::string route;  // as written
  bool wildcard = false;
  std::string prefix;  // the route without "/..." (wildcards)

  static RoutePattern parse(std::string_view route);
  // On the raw (still percent-encoded) path, as Wagi matches.
  bool matches(std::string_view raw_path) const;
  // SCRIPT_NAME: the route (exact), or the prefix with a leading '/'.
  std::string script_name() const;
  // What follows the matched part of `raw_path` (undecoded); "" for exact routes.
  std::string_view raw_path_info(std::string_view raw_path) const;
};

// What the CGI variables of a request are made from.
struct CgiRequest {
  const http::Request& request;
  const RoutePattern& route;
  std::string_view default_host;        // --hostname, "localhost:3000"
  const std::vector<std::string>& env;  // the server's and the module's "KEY=VALUE"
  bool tls = false;
};

// The guest's whole environment for a request, "KEY=VALUE": `env` first,
// then the CGI/1.1 variables (overriding), then one HTTP_* per header
// (overriding; the last of a repeated header wins). As Wagi, except that
// CONTENT_TYPE carries the request's Content-Type.
std::vector<std::string> cgi_environment(const CgiRequest& cgi);

// The environ of a WSGI request (PEP 3333), as "KEY=VALUE" whose bytes the
// guest decodes as latin-1: the CGI variables above without `env` (that is
// the process's os.environ), where SCRIPT_NAME is the route's mount point
// ("" for exact routes and "/...", which get the whole path as PATH_INFO),
// PATH_INFO the raw percent-decoded bytes, every header as sent (including
// Authorization, as gunicorn passes it) but HTTP_CONTENT_TYPE and
// HTTP_CONTENT_LENGTH (CONTENT_TYPE/LENGTH carry them).
std::vector<std::string> wsgi_environment(const CgiRequest& cgi);

// What the guest's WSGI adapter (guest/python/terrarium/_wsgi.py) takes:
// b"N BODY_LENGTH\0", the N names and N values each ended by NUL, the body.
// Entries with a NUL byte (a path with %00 decodes to one) are left out.
std::string wsgi_request_payload(const std::vector<std::string>& environ, std::string_view body);

// SERVER_NAME and SERVER_PORT: Wagi's rule (defaults localhost:80, then the
// default host, then the Host header, each split at its first ':').
std::pair<std::string, std::string> server_name_and_port(const http::Request& request,
                                                         std::string_view default_host);

// Wagi's argv for a request: without a template, the request path then the
// query split at every '&' (nothing decoded, empty pieces kept); with one,
// ${SCRIPT_NAME} -> the path, ${ARGS} -> the query with '&' as spaces, then
// split on whitespace.
std::vector<std::string> wagi_argv(const http::Request& request,
                                   const std::optional<std::string>& argv_template);

// The response a script's stdout describes. Wagi's rules: the header block
// ends at the first empty line (CRs in it ignored), `Status` sets the code
// (a bad one: 502), `Location` alone makes it 302, other headers pass through
// (repeated ones, such as Set-Cookie, all kept, unlike Wagi); with none of
// Content-Type, Status or Location: 500 with Wagi's message. `problem` says
// what was wrong when the status is an error of the script's making.
struct CgiOutput {
  http::Response response;
  std::string problem;  // for the log; "" when the output was well-formed
};
CgiOutput parse_cgi_output(std::string_view output);

// The body Wagi sends when a script gives no Content-Type, Status or Location.
inline constexpr std::string_view kInsufficientHeaders =
    "Exactly one of 'location' or 'content-type' must be specified";

}  // namespace terrarium::server
