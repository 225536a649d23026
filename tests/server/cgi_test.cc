// Wagi's CGI rules as pure functions: routes, meta-variables, argv, the
// parsing of a script's output (wagi-facts.md §1.1, §3, §4, §5).
#include "server/cgi.h"

#include <gtest/gtest.h>

#include <map>

#include "server/sha256.h"
#include "terrarium/http.h"

namespace {

using terrarium::http::Request;
using terrarium::server::cgi_environment;
using terrarium::server::parse_cgi_output;
using terrarium::server::RoutePattern;
using terrarium::server::wagi_argv;

std::map<std::string, std::string> as_map(const std::vector<std::string>& env) {
  std::map<std::string, std::string> map;
  for (const auto& entry : env) {
    size_t equals = entry.find('=');
    EXPECT_TRUE(map.emplace(entry.substr(0, equals), entry.substr(equals + 1)).second)
        << "duplicate " << entry;
  }
  return map;
}

Request make_request(std::string target,
                     std::vector<std::pair<std::string, std::string>> headers = {}) {
  Request request;
  request.method = "GET";
  request.set_target(std::move(target));
  request.headers = std::move(headers);
  request.remote_address = "127.0.0.1";
  return request;
}

TEST(Routes, ExactMatchesOnlyItself) {
  auto route = RoutePattern::parse("/foo");
  EXPECT_FALSE(route.wildcard);
  EXPECT_TRUE(route.matches("/foo"));
  EXPECT_FALSE(route.matches("/foo/"));
  EXPECT_FALSE(route.matches("/foobar"));
  EXPECT_FALSE(route.matches("/Foo"));
  EXPECT_EQ(route.script_name(), "/foo");
  EXPECT_EQ(route.raw_path_info("/foo"), "");
  EXPECT_FALSE(RoutePattern::parse("/foo/").matches("/foo"));
}

TEST(Routes, WildcardMatchesPrefixAndBelow) {
  auto route = RoutePattern::parse("/foo/...");
  EXPECT_TRUE(route.wildcard);
  EXPECT_TRUE(route.matches("/foo"));
  EXPECT_TRUE(route.matches("/foo/"));
  EXPECT_TRUE(route.matches("/foo/a/b"));
  EXPECT_FALSE(route.matches("/foobar"));
  EXPECT_FALSE(route.matches("/fo"));
  EXPECT_FALSE(route.matches("/foo%2Fbar"));  // the raw path decides
  EXPECT_EQ(route.script_name(), "/foo");
  EXPECT_EQ(route.raw_path_info("/foo/a%20b"), "/a%20b");
  auto all = RoutePattern::parse("/...");
  EXPECT_TRUE(all.matches("/"));
  EXPECT_TRUE(all.matches("/x/y"));
  EXPECT_EQ(all.script_name(), "/");
  EXPECT_EQ(all.raw_path_info("/x/y"), "/x/y");
}

TEST(Environment, EveryVariableWithWagisValues) {
  Request request = make_request("/cgi/env/a%20b/c?x=1&y=%20+z",
                                 {{"Host", "example.com:8080"},
                                  {"User-Agent", "curl/7.88"},
                                  {"X-Test-Header", "t"},
                                  {"X_Under", "u"},
                                  {"Content-Type", "application/x-www-form-urlencoded"},
                                  {"Authorization", "Bearer secret"},
                                  {"Connection", "keep-alive"}});
  request.method = "POST";
  request.body = "a=1&b=2";
  auto route = RoutePattern::parse("/cgi/env/...");
  std::vector<std::string> base = {"FROM_FLAG=1", "SERVER_SOFTWARE=overridden"};
  auto env = as_map(cgi_environment({request, route, "localhost:3000", base}));
  EXPECT_EQ(env["AUTH_TYPE"], "");
  EXPECT_EQ(env["CONTENT_LENGTH"], "7");
  EXPECT_EQ(env["CONTENT_TYPE"], "application/x-www-form-urlencoded");  // Wagi leaves it empty
  EXPECT_EQ(env["GATEWAY_INTERFACE"], "CGI/1.1");
  EXPECT_EQ(env["SERVER_SOFTWARE"], "WAGI/1");
  EXPECT_EQ(env["SERVER_PROTOCOL"], "HTTP/1.1");
  EXPECT_EQ(env["REQUEST_METHOD"], "POST");
  EXPECT_EQ(env["QUERY_STRING"], "x=1&y=%20+z");
  EXPECT_EQ(env["REMOTE_ADDR"], "127.0.0.1");
  EXPECT_EQ(env["REMOTE_HOST"], "127.0.0.1");
  EXPECT_EQ(env["REMOTE_USER"], "");
  EXPECT_EQ(env["SCRIPT_NAME"], "/cgi/env");
  EXPECT_EQ(env["PATH_INFO"], "/a b/c");
  EXPECT_EQ(env["PATH_TRANSLATED"], "/a b/c");
  EXPECT_EQ(env["X_RAW_PATH_INFO"], "/a%20b/c");
  EXPECT_EQ(env["X_MATCHED_ROUTE"], "/cgi/env/...");
  EXPECT_EQ(env["SERVER_NAME"], "example.com");
  EXPECT_EQ(env["SERVER_PORT"], "8080");
  EXPECT_EQ(env["X_FULL_URL"], "http://example.com:8080/cgi/env/a%20b/c?x=1&y=%20+z");
  EXPECT_EQ(env["HTTP_HOST"], "example.com:8080");
  EXPECT_EQ(env["HTTP_USER_AGENT"], "curl/7.88");
  EXPECT_EQ(env["HTTP_X_TEST_HEADER"], "t");
  EXPECT_EQ(env["HTTP_X_UNDER"], "u");
  EXPECT_EQ(env["HTTP_CONTENT_TYPE"], "application/x-www-form-urlencoded");
  EXPECT_EQ(env.count("HTTP_AUTHORIZATION"), 0u);
  EXPECT_EQ(env.count("HTTP_CONNECTION"), 0u);
  EXPECT_EQ(env["FROM_FLAG"], "1");
  // Nothing else.
  EXPECT_EQ(env.count("PATH"), 0u);
  EXPECT_EQ(env.count("HOME"), 0u);
  EXPECT_EQ(env.count("REQUEST_URI"), 0u);
  EXPECT_EQ(env.size(), 19u + 5u + 1u);  // CGI, headers, FROM_FLAG
}

TEST(Environment, HeadersOverrideFlagsAndLastRepeatWins) {
  Request request = make_request("/", {{"Accept", "a"}, {"Accept", "b"}, {"X-Bad", "caf\xc3\xa9"}});
  request.version = 10;
  auto route = RoutePattern::parse("/");
  std::vector<std::string> base = {"HTTP_ACCEPT=from-flag", "HTTP_OTHER=kept"};
  auto env = as_map(cgi_environment({request, route, "localhost:3000", base}));
  EXPECT_EQ(env["HTTP_ACCEPT"], "b");
  EXPECT_EQ(env["HTTP_OTHER"], "kept");
  EXPECT_EQ(env["HTTP_X_BAD"], "CORRUPT VALUE");
  EXPECT_EQ(env["SERVER_PROTOCOL"], "HTTP/1.0");
  EXPECT_EQ(env["PATH_INFO"], "");
  EXPECT_EQ(env["CONTENT_LENGTH"], "0");
  EXPECT_EQ(env["CONTENT_TYPE"], "");
  // No Host: the default host.
  EXPECT_EQ(env["SERVER_NAME"], "localhost");
  EXPECT_EQ(env["SERVER_PORT"], "3000");
  EXPECT_EQ(env["X_FULL_URL"], "http://localhost:3000/");
}

TEST(Environment, ServerNameAndPortRule) {
  using terrarium::server::server_name_and_port;
  auto pair = [](std::string host) {
    Request request = make_request("/", {{"Host", host}});
    return server_name_and_port(request, "localhost:3000");
  };
  EXPECT_EQ(pair("127.0.0.1:8080"), std::make_pair(std::string("127.0.0.1"), std::string("8080")));
  EXPECT_EQ(pair("example.com"), std::make_pair(std::string("example.com"), std::string("3000")));
  EXPECT_EQ(pair("[::1]:3000"), std::make_pair(std::string("["), std::string(":1]:3000")));
  Request none = make_request("/");
  EXPECT_EQ(server_name_and_port(none, "myhost"),
            std::make_pair(std::string("myhost"), std::string("80")));
  EXPECT_EQ(server_name_and_port(none, ":9000"),
            std::make_pair(std::string("localhost"), std::string("9000")));
}

TEST(Environment, WsgiSplitsAtTheMountPointAndKeepsRawBytes) {
  using terrarium::server::wsgi_environment;
  Request request = make_request(
      "/app/caf%C3%A9/x?q=1",
      {{"Content-Type", "text/plain"}, {"Authorization", "Basic eA=="}, {"X-Raw", "caf\xc3\xa9"}});
  std::vector<std::string> base = {"SECRET=not for the environ"};
  auto route = RoutePattern::parse("/app/...");
  auto env = as_map(wsgi_environment({request, route, "localhost:3000", base}));
  EXPECT_EQ(env["SCRIPT_NAME"], "/app");
  EXPECT_EQ(env["PATH_INFO"], "/caf\xc3\xa9/x");  // the bytes, decoded as latin-1 by the guest
  EXPECT_EQ(env["HTTP_X_RAW"], "caf\xc3\xa9");
  EXPECT_EQ(env["HTTP_AUTHORIZATION"], "Basic eA==");
  EXPECT_EQ(env["CONTENT_TYPE"], "text/plain");
  EXPECT_EQ(env.count("HTTP_CONTENT_TYPE"), 0u);
  EXPECT_EQ(env.count("SECRET"), 0u);
  auto exact =
      as_map(wsgi_environment({request, RoutePattern::parse("/app/caf%C3%A9/x"), "h", base}));
  EXPECT_EQ(exact["SCRIPT_NAME"], "");
  EXPECT_EQ(exact["PATH_INFO"], "/app/caf\xc3\xa9/x");
  auto root = as_map(wsgi_environment({request, RoutePattern::parse("/..."), "h", base}));
  EXPECT_EQ(root["SCRIPT_NAME"], "");
  EXPECT_EQ(root["PATH_INFO"], "/app/caf\xc3\xa9/x");
}

TEST(Environment, WsgiPayloadLeavesOutEntriesWithNul) {
  // %00 in the path decodes to a NUL in PATH_INFO, which the payload cannot
  // carry: the entry is left out, not cut at the NUL (found by
  // tests/fuzz/http_request_fuzzer; "/a%00b" reached the app as "/a").
  using terrarium::server::wsgi_environment;
  using terrarium::server::wsgi_request_payload;
  Request request = make_request("/app/a%00b");
  auto environ = wsgi_environment({request, RoutePattern::parse("/app/..."), "h", {}});
  std::string payload = wsgi_request_payload(environ, "body");
  EXPECT_EQ(payload.find(std::string("\0PATH_INFO\0", 11)), std::string::npos);
  EXPECT_EQ(payload.find(std::string("\0/a\0", 4)), std::string::npos);
  EXPECT_NE(payload.find(std::string("\0/a%00b\0", 8)), std::string::npos);  // X_RAW_PATH_INFO
  size_t kept = 0;
  for (const auto& entry : environ) kept += entry.find('\0') == std::string::npos;
  EXPECT_LT(kept, environ.size());
  EXPECT_EQ(payload.substr(0, payload.find('\0')), std::to_string(kept) + " 4");
}

TEST(Argv, WithoutTemplate) {
  EXPECT_EQ(wagi_argv(make_request("/env/foo?greet=matt&foo=bar"), std::nullopt),
            (std::vector<std::string>{"/env/foo", "greet=matt", "foo=bar"}));
  EXPECT_EQ(wagi_argv(make_request("/p?a=1&&b=%20+"), std::nullopt),
            (std::vector<std::string>{"/p", "a=1", "", "b=%20+"}));
  EXPECT_EQ(wagi_argv(make_request("/p?"), std::nullopt), (std::vector<std::string>{"/p", ""}));
  EXPECT_EQ(wagi_argv(make_request("/p"), std::nullopt), (std::vector<std::string>{"/p"}));
}

TEST(Argv, WithTemplate) {
  std::optional<std::string> python = "python /code/env.py ${ARGS}";
  EXPECT_EQ(wagi_argv(make_request("/?a=1&b=2"), python),
            (std::vector<std::string>{"python", "/code/env.py", "a=1", "b=2"}));
  EXPECT_EQ(wagi_argv(make_request("/"), python),
            (std::vector<std::string>{"python", "/code/env.py"}));
  std::optional<std::string> ruby = "ruby index.rb ${SCRIPT_NAME} ${ARGS}";
  EXPECT_EQ(
      wagi_argv(make_request("/example?param1=val1&param2=val2"), ruby),
      (std::vector<std::string>{"ruby", "index.rb", "/example", "param1=val1", "param2=val2"}));
  EXPECT_EQ(wagi_argv(make_request("/x?a%20b&&c"), python),
            (std::vector<std::string>{"python", "/code/env.py", "a%20b", "c"}));
}

TEST(Output, ContentTypeAndBody) {
  auto out = parse_cgi_output("Content-Type: text/plain\n\nhello\r\nworld");
  EXPECT_EQ(out.response.status, 200);
  EXPECT_EQ(out.response.body, "hello\r\nworld");  // CRs in the body are kept
  ASSERT_EQ(out.response.headers.size(), 1u);
  EXPECT_EQ(out.response.headers[0],
            std::make_pair(std::string("Content-Type"), std::string("text/plain")));
  EXPECT_EQ(out.problem, "");
}

TEST(Output, CrlfAndMixedLineEnds) {
  for (std::string text : {"Content-Type: a/b\r\n\r\nbody", "Content-Type: a/b\n\r\nbody",
                           "Content-Type: a/b\r\nX-A: 1\r\n\r\nbody"}) {
    auto out = parse_cgi_output(text);
    EXPECT_EQ(out.response.status, 200) << text;
    EXPECT_EQ(out.response.body, "body") << text;
  }
}

TEST(Output, StatusForms) {
  EXPECT_EQ(parse_cgi_output("Status: 404 Not Found\n\n").response.status, 404);
  EXPECT_EQ(parse_cgi_output("Status: 201\nContent-Type: x/y\n\n").response.status, 201);
  EXPECT_EQ(parse_cgi_output("status: 418 teapot\n\n").response.status, 418);
  for (std::string bad : {"abc", "99", "200OK", "", "1000"}) {
    auto out = parse_cgi_output("Status: " + bad + "\nContent-Type: text/plain\n\nx");
    EXPECT_EQ(out.response.status, 502) << bad;
    EXPECT_NE(out.problem, "") << bad;
  }
}

TEST(Output, LocationRedirectsUnlessStatusSays) {
  auto redirect = parse_cgi_output("Location: /elsewhere\n\n");
  EXPECT_EQ(redirect.response.status, 302);
  EXPECT_EQ(redirect.response.headers[0].second, "/elsewhere");
  EXPECT_EQ(parse_cgi_output("Location: /x\nStatus: 301\n\n").response.status, 301);
  EXPECT_EQ(parse_cgi_output("Status: 303 See Other\nLocation: /x\n\n").response.status, 303);
}

TEST(Output, MissingPreambleIs500WithWagisMessage) {
  for (std::string text :
       {"", "hello", "Content-Type: text/plain\nhello\n", "\n\nbody", "X-Only: 1\n\nbody"}) {
    auto out = parse_cgi_output(text);
    EXPECT_EQ(out.response.status, 500) << text;
    EXPECT_EQ(out.response.body, std::string(terrarium::server::kInsufficientHeaders)) << text;
  }
}

TEST(Output, RepeatedHeadersKeptAndBadOnesHandled) {
  auto out = parse_cgi_output(
      "Content-Type: text/html\nSet-Cookie: a=1\nSet-Cookie: b=2\nno colon here\nBad Name: "
      "x\n\nok");
  EXPECT_EQ(out.response.status, 200);
  int cookies = 0;
  for (const auto& [name, value] : out.response.headers) cookies += name == "Set-Cookie";
  EXPECT_EQ(cookies, 2);
  for (const auto& [name, value] : out.response.headers) EXPECT_NE(name, "Bad Name");
  auto control = parse_cgi_output("Content-Type: text/plain\nX-Evil: a\x01z\n\nbody");
  EXPECT_EQ(control.response.status, 500);
  EXPECT_NE(control.problem.find("X-Evil"), std::string::npos);
  // Content-Type and Location too (found by tests/fuzz/cgi_output_fuzzer):
  // else the server could not send them and answered its own internal 500.
  for (std::string text : {std::string("Content-Type: text/html\x01\n\nbody"),
                           std::string("Location: /else\x0b\0where\n\n", 24)}) {
    auto bad = parse_cgi_output(text);
    EXPECT_EQ(bad.response.status, 500) << text;
    EXPECT_NE(bad.problem.find("control characters"), std::string::npos) << text;
  }
  auto not_utf8 = parse_cgi_output("Content-Type: text/\xff\n\nbody");
  EXPECT_EQ(not_utf8.response.status, 500);
  EXPECT_EQ(not_utf8.response.body, "");
}

TEST(Output, BinaryBodyUntouched) {
  std::string body("\x00\x01\r\n\xff\xfe", 6);
  auto out = parse_cgi_output("Content-Type: application/octet-stream\r\n\r\n" + body);
  EXPECT_EQ(out.response.body, body);
}

TEST(Util, PercentDecode) {
  using terrarium::http::percent_decode;
  EXPECT_EQ(percent_decode("/a%20b"), "/a b");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("%2F"), "/");
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");
  EXPECT_EQ(percent_decode("caf%C3%A9"), "caf\xc3\xa9");
  EXPECT_EQ(percent_decode("%FF"), "\xEF\xBF\xBD");
}

TEST(Util, Sha256OfRoutesAsWagiNamesItsLogFolders) {
  using terrarium::server::sha256_hex;
  EXPECT_EQ(sha256_hex("/env"), "1a3ee8c5f071bd935c8a12206727587acfc08486e6a1a6297c3045816fe302e5");
  EXPECT_EQ(sha256_hex("/env/..."),
            "954bfbf23c23b0522e524ec0d1dfcb986458036c6a3adaa9c151fce372d8cc3d");
  EXPECT_EQ(sha256_hex("/"), "8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(Util, HeaderValidity) {
  using terrarium::http::is_field_value;
  using terrarium::http::is_token;
  EXPECT_TRUE(is_token("Set-Cookie"));
  EXPECT_FALSE(is_token("Bad Name"));
  EXPECT_FALSE(is_token(""));
  EXPECT_TRUE(is_field_value("a\tb"));
  EXPECT_FALSE(is_field_value("a\r\nInjected: 1"));
}

}  // namespace
