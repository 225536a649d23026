// The CGI response preamble (src/server/cgi.cc, parse_cgi_output): what a
// script's stdout becomes. Invariants: the status is a 3-digit code (Wagi,
// like hyper, takes 100..999); Content-Type appears at most once; the body is
// what follows the header block; a response whose parse reported no problem
// can be sent as is (every header a token name with a clean value); and
// printing that response back as CGI output parses to the same response.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
#include "server/cgi.h"
#include "terrarium/http.h"

namespace {

using terrarium::http::Response;

std::string describe(const Response& response) {
  std::string text = std::to_string(response.status) + " {";
  for (const auto& [name, value] : response.headers) text += "'" + name + "': '" + value + "', ";
  return text + "} body " + std::to_string(response.body.size()) + " bytes";
}

bool same_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view output(reinterpret_cast<const char*>(data), size);
  terrarium::server::CgiOutput parsed = terrarium::server::parse_cgi_output(output);
  const Response& response = parsed.response;
  FUZZ_CHECK(response.status >= 100 && response.status <= 999, describe(response));

  int content_types = 0;
  for (const auto& [name, value] : response.headers) {
    content_types += same_ignoring_case(name, "Content-Type");
    FUZZ_CHECK(!same_ignoring_case(name, "Status"), describe(response));
  }
  FUZZ_CHECK(content_types <= 1, describe(response));

  bool failed = response.status >= 500 && !parsed.problem.empty();
  if (!failed) {
    // The body is the tail of the output, after the blank line.
    FUZZ_CHECK(response.body.size() <= output.size() &&
                   output.substr(output.size() - response.body.size()) == response.body,
               describe(response));
  }
  if (parsed.problem.empty()) {
    // Well-formed output: the server must be able to send every header (an
    // invalid one would turn into the server's own 500, an internal error).
    for (const auto& [name, value] : response.headers) {
      FUZZ_CHECK(terrarium::http::is_token(name), "header name '" + name + "' in " + describe(response));
      FUZZ_CHECK(terrarium::http::is_field_value(value),
                 "header '" + name + "' value is not sendable in " + describe(response));
    }
    // Printed back as CGI output, it parses to the same response.
    std::string again = "Status: " + std::to_string(response.status) + "\n";
    for (const auto& [name, value] : response.headers) again += name + ": " + value + "\n";
    again += "\n";
    again += response.body;
    terrarium::server::CgiOutput reparsed = terrarium::server::parse_cgi_output(again);
    FUZZ_CHECK(reparsed.problem.empty(), reparsed.problem);
    FUZZ_CHECK(reparsed.response.status == response.status &&
                   reparsed.response.headers == response.headers &&
                   reparsed.response.body == response.body,
               describe(response) + " reparsed as " + describe(reparsed.response));
  }
  return 0;
}
