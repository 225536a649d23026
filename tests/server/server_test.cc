// `terrarium serve` end to end, in process: a real Server on 127.0.0.1 (a
// free port), real Python CGI scripts in the sandbox, a raw-socket client.
#include "terrarium/server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "http_client.h"
#include "served.h"
#include "terrarium/runtime.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using terrarium::testing::Connection;
using terrarium::testing::fetch;
using terrarium::testing::HttpReply;
using terrarium::testing::Served;

// Prints the request as JSON: env, argv, stdin.
constexpr const char* kEnvScript = R"PY(import json, os, sys
body = sys.stdin.buffer.read()
print("Content-Type: application/json")
print()
print(json.dumps({"env": dict(os.environ), "argv": sys.argv, "stdin": body.decode("latin-1"),
                  "name": __name__, "file": __file__}))
)PY";

json body_json(const HttpReply& reply) {
  auto parsed = json::parse(reply.body, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << reply.status << " " << reply.body;
  return parsed;
}

// --- the CGI environment, argv, stdin, routing ------------------------------

class CgiServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    served_ = new Served({
        {"modules.toml", R"(
[[module]]
route = "/env/..."
module = "code/env.py"
volumes = { "/code" = "code" }
environment = { FROM_MODULE = "m" }

[[module]]
route = "/tmpl"
module = "code/env.py"
volumes = { "/code" = "code" }
argv = "${SCRIPT_NAME} extra ${ARGS}"

[[module]]
route = "/a/..."
module = "code/first.py"
volumes = { "/code" = "code" }

[[module]]
route = "/a/b"
module = "code/second.py"
volumes = { "/code" = "code" }

[[module]]
route = "/healthz"
module = "code/second.py"
volumes = { "/code" = "code" }

[[module]]
route = "/out/..."
module = "code/out.py"
volumes = { "/code" = "code" }

[[module]]
route = "/alone"
module = "code/env.py"
)"},
        {"code/env.py", kEnvScript},
        {"code/first.py", "print('Content-Type: text/plain\\n\\nfirst')\n"},
        {"code/second.py", "print('Content-Type: text/plain\\n\\nsecond')\n"},
        {"code/out.py", R"PY(import os, sys
case = os.environ["PATH_INFO"]
w = sys.stdout.write
if case == "/lf":
    w("Content-Type: text/plain\n\nlf body\n")
elif case == "/crlf":
    w("Content-Type: text/plain\r\nX-Custom: yes\r\n\r\ncrlf\r\nbody")
elif case == "/status":
    w("Status: 404 Not Found\nContent-Type: text/plain\n\nmissing")
elif case == "/status-only":
    w("Status: 204\n\n")
elif case == "/bad-status":
    w("Status: abc\nContent-Type: text/plain\n\nx")
elif case == "/location":
    w("Location: /elsewhere\n\n")
elif case == "/location-status":
    w("Location: /moved\nStatus: 301 Moved Permanently\n\n")
elif case == "/none":
    w("just a body, no headers\n")
elif case == "/empty":
    pass
elif case == "/binary":
    sys.stdout.flush()
    sys.stdout.buffer.write(b"Content-Type: application/octet-stream\n\n" + bytes(range(256)))
elif case == "/cookies":
    w("Content-Type: text/plain\nSet-Cookie: a=1\nSet-Cookie: b=2\n\ncookies")
elif case == "/exit3":
    w("Content-Type: text/plain\n\npartial")
    sys.exit(3)
elif case == "/exit0":
    w("Content-Type: text/plain\n\nclean exit")
    sys.exit(0)
elif case == "/raise":
    print("Content-Type: text/plain\n")
    raise ValueError("script failed on purpose")
elif case == "/warn":
    import warnings
    warnings.warn("a deprecated way", DeprecationWarning)
    w("Content-Type: text/plain\n\nwarned")
elif case == "/stderr":
    print("a line for the log", file=sys.stderr)
    w("Content-Type: text/plain\n\nlogged")
)PY"},
    });
    ASSERT_EQ(served_->error, "");
  }
  static void TearDownTestSuite() {
    delete served_;
    served_ = nullptr;
  }
  static Served* served_;
};
Served* CgiServer::served_ = nullptr;

TEST_F(CgiServer, EveryCgiVariable) {
  HttpReply reply =
      fetch(served_->port(), "POST", "/env/x%20y/z?a=1&b=%20+c",
            {{"Content-Type", "text/plain"}, {"X-Test-Header", "t"}, {"Authorization", "Bearer s"}},
            "hello body");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.header("Content-Type"), "application/json");
  json result = body_json(reply);
  json env = result["env"];
  EXPECT_EQ(env["AUTH_TYPE"], "");
  EXPECT_EQ(env["CONTENT_LENGTH"], "10");
  EXPECT_EQ(env["CONTENT_TYPE"], "text/plain");
  EXPECT_EQ(env["GATEWAY_INTERFACE"], "CGI/1.1");
  EXPECT_EQ(env["SERVER_SOFTWARE"], "WAGI/1");
  EXPECT_EQ(env["SERVER_PROTOCOL"], "HTTP/1.1");
  EXPECT_EQ(env["REQUEST_METHOD"], "POST");
  EXPECT_EQ(env["QUERY_STRING"], "a=1&b=%20+c");
  EXPECT_EQ(env["REMOTE_ADDR"], "127.0.0.1");
  EXPECT_EQ(env["REMOTE_HOST"], "127.0.0.1");
  EXPECT_EQ(env["REMOTE_USER"], "");
  EXPECT_EQ(env["SCRIPT_NAME"], "/env");
  EXPECT_EQ(env["PATH_INFO"], "/x y/z");
  EXPECT_EQ(env["PATH_TRANSLATED"], "/x y/z");
  EXPECT_EQ(env["X_RAW_PATH_INFO"], "/x%20y/z");
  EXPECT_EQ(env["X_MATCHED_ROUTE"], "/env/...");
  EXPECT_EQ(env["SERVER_NAME"], "127.0.0.1");
  EXPECT_EQ(env["SERVER_PORT"], std::to_string(served_->port()));
  EXPECT_EQ(env["X_FULL_URL"],
            "http://127.0.0.1:" + std::to_string(served_->port()) + "/env/x%20y/z?a=1&b=%20+c");
  EXPECT_EQ(env["HTTP_X_TEST_HEADER"], "t");
  EXPECT_EQ(env["HTTP_CONTENT_TYPE"], "text/plain");
  EXPECT_FALSE(env.contains("HTTP_AUTHORIZATION"));
  EXPECT_FALSE(env.contains("HTTP_CONNECTION"));
  EXPECT_EQ(env["FROM_MODULE"], "m");
  // Nothing of the server's own environment.
  EXPECT_FALSE(env.contains("PATH"));
  EXPECT_FALSE(env.contains("HOME"));
  EXPECT_EQ(result["stdin"], "hello body");
  EXPECT_EQ(result["argv"], json({"/code/env.py", "a=1", "b=%20+c"}));
  EXPECT_EQ(result["name"], "__main__");
  EXPECT_EQ(result["file"], "/code/env.py");
}

TEST_F(CgiServer, NoHostHeaderUsesTheDefaultHost) {
  Connection connection(served_->port());
  connection.send("GET /env HTTP/1.0\r\n\r\n");
  HttpReply reply = connection.read_reply();
  ASSERT_EQ(reply.status, 200);
  json env = body_json(reply)["env"];
  EXPECT_EQ(env["SERVER_NAME"], "localhost");
  EXPECT_EQ(env["SERVER_PORT"], "3000");
  EXPECT_EQ(env["SERVER_PROTOCOL"], "HTTP/1.0");
  EXPECT_EQ(env["PATH_INFO"], "");
  EXPECT_EQ(env["CONTENT_LENGTH"], "0");
}

TEST_F(CgiServer, ArgvWithAndWithoutTemplate) {
  EXPECT_EQ(body_json(served_->get("/env?x&&y=2"))["argv"], json({"/code/env.py", "x", "", "y=2"}));
  EXPECT_EQ(body_json(served_->get("/env"))["argv"], json({"/code/env.py"}));
  // "${SCRIPT_NAME} extra ${ARGS}": word 0 is the script's place.
  EXPECT_EQ(body_json(served_->get("/tmpl?p=1&q=2"))["argv"],
            json({"/code/env.py", "extra", "p=1", "q=2"}));
}

TEST_F(CgiServer, ScriptOutsideVolumesRunsAlone) {
  json result = body_json(served_->get("/alone"));
  EXPECT_EQ(result["file"], "/script/env.py");
}

TEST_F(CgiServer, RoutingIsFirstMatchInFileOrder) {
  EXPECT_EQ(served_->get("/a/b").body, "first\n");  // /a/... is listed first
  EXPECT_EQ(served_->get("/a").body, "first\n");
  EXPECT_EQ(served_->get("/a/c/d").body, "first\n");
  HttpReply missing = served_->get("/ab");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body, "");
  EXPECT_EQ(served_->get("/nothing/here").status, 404);
  // The built-in /healthz beats the user's route of that name.
  HttpReply health = served_->get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "OK");
}

TEST_F(CgiServer, PreambleCases) {
  HttpReply lf = served_->get("/out/lf");
  EXPECT_EQ(lf.status, 200);
  EXPECT_EQ(lf.body, "lf body\n");
  EXPECT_EQ(lf.header("Content-Type"), "text/plain");
  HttpReply crlf = served_->get("/out/crlf");
  EXPECT_EQ(crlf.status, 200);
  EXPECT_EQ(crlf.body, "crlf\r\nbody");
  EXPECT_EQ(crlf.header("X-Custom"), "yes");
  HttpReply status = served_->get("/out/status");
  EXPECT_EQ(status.status, 404);
  EXPECT_EQ(status.body, "missing");
  EXPECT_EQ(served_->get("/out/status-only").status, 204);
  EXPECT_EQ(served_->get("/out/bad-status").status, 502);
  HttpReply location = served_->get("/out/location");
  EXPECT_EQ(location.status, 302);
  EXPECT_EQ(location.header("Location"), "/elsewhere");
  HttpReply moved = served_->get("/out/location-status");
  EXPECT_EQ(moved.status, 301);
  EXPECT_EQ(moved.header("Location"), "/moved");
  for (std::string path : {"/out/none", "/out/empty"}) {
    HttpReply reply = served_->get(path);
    EXPECT_EQ(reply.status, 500) << path;
    EXPECT_EQ(reply.body, "Exactly one of 'location' or 'content-type' must be specified") << path;
  }
  HttpReply binary = served_->get("/out/binary");
  EXPECT_EQ(binary.status, 200);
  std::string expected;
  for (int i = 0; i < 256; ++i) expected.push_back(static_cast<char>(i));
  EXPECT_EQ(binary.body, expected);
  HttpReply cookies = served_->get("/out/cookies");
  EXPECT_EQ(cookies.count("Set-Cookie"), 2u);
}

TEST_F(CgiServer, ExitStatusAndExceptions) {
  HttpReply exit3 = served_->get("/out/exit3");
  EXPECT_EQ(exit3.status, 500);
  EXPECT_EQ(exit3.body, "");
  HttpReply exit0 = served_->get("/out/exit0");
  EXPECT_EQ(exit0.status, 200);
  EXPECT_EQ(exit0.body, "clean exit");
  HttpReply raised = served_->get("/out/raise");
  EXPECT_EQ(raised.status, 500);
  EXPECT_EQ(raised.body, "");  // the traceback goes to the log, never the client
  std::string log = served_->log();
  EXPECT_NE(log.find("ValueError: script failed on purpose"), std::string::npos) << log;
  // The traceback and a warning show the script's own lines (primed at start).
  EXPECT_NE(log.find("raise ValueError(\\\"script failed on purpose\\\")"), std::string::npos) << log;
  HttpReply warned = served_->get("/out/warn");
  EXPECT_EQ(warned.body, "warned");
  log = served_->log();
  EXPECT_NE(log.find("DeprecationWarning: a deprecated way"), std::string::npos) << log;
  EXPECT_NE(log.find("warnings.warn(\\\"a deprecated way\\\", DeprecationWarning)"), std::string::npos) << log;
}

TEST_F(CgiServer, StderrGoesToWagisLogFileAndTheServerLog) {
  HttpReply reply = served_->get("/out/stderr");
  EXPECT_EQ(reply.body, "logged");
  // sha256("/out/...")
  std::string file;
  for (const auto& entry : fs::directory_iterator(served_->dir / "logs")) {
    std::ifstream in(entry.path() / "module.stderr");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("a line for the log") != std::string::npos) file = entry.path().filename();
  }
  EXPECT_EQ(
      file,
      "61a8084b810e5f2c267f625535dae2cd0b8787b1ea45d4e7751faff7214d76d5");  // sha256 of "/out/..."
  std::string log = served_->log();
  EXPECT_NE(log.find("a line for the log"), std::string::npos) << log;
  EXPECT_NE(log.find("route=/out/..."), std::string::npos) << log;
}

// --- isolation and limits -----------------------------------------------------

class IsolationAndLimits : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    served_ = new Served(
        {
            {"modules.toml", R"(
[[module]]
route = "/count"
module = "code/count.py"
volumes = { "/code" = "code" }

[[module]]
route = "/clone"
module = "code/count.py"
volumes = { "/code" = "code" }
pool = { strategy = "clone" }

[[module]]
route = "/hostile/..."
module = "code/hostile.py"
volumes = { "/code" = "code" }
limits = { timeout = "1s", max_memory = "96M", max_output = "64K" }

[[module]]
route = "/ok"
module = "code/ok.py"
volumes = { "/code" = "code" }
)"},
            {"code/count.py", R"PY(import os, sys, json
import helper
helper.calls.append(1)
COUNTER = globals().get("COUNTER", 0) + 1
os.environ["LEAK"] = "yes" if "LEAK" not in os.environ else "seen before"
tmp_before = sorted(os.listdir("/tmp"))
with open("/tmp/marker-%s" % os.environ["QUERY_STRING"], "w") as f:
    f.write("x")
sys.modules.setdefault("poison", type(sys)("poison"))
print("Content-Type: application/json\n")
print(json.dumps({"helper_calls": len(helper.calls), "counter": COUNTER, "tmp_before": tmp_before,
                  "leak": os.environ["LEAK"], "argv": sys.argv}))
)PY"},
            {"code/helper.py", "calls = []\n"},
            {"code/hostile.py", R"PY(import os, sys
case = os.environ["PATH_INFO"]
if case == "/loop":
    while True:
        pass
elif case == "/memory":
    blocks = []
    while True:
        blocks.append(bytearray(1 << 20))
elif case == "/output":
    print("Content-Type: text/plain\n")
    while True:
        print("x" * 1000)
elif case == "/recursion":
    def f(n):
        return f(n + 1)
    f(0)
elif case == "/sleep":
    import time
    time.sleep(0.3)
    print("Content-Type: text/plain\n\nslept")
)PY"},
            {"code/ok.py", "print('Content-Type: text/plain\\n\\nok')\n"},
        },
        [](terrarium::ServeOptions& options) { options.http.workers = 2; });
    ASSERT_EQ(served_->error, "");
  }
  static void TearDownTestSuite() {
    delete served_;
    served_ = nullptr;
  }
  static Served* served_;
};
Served* IsolationAndLimits::served_ = nullptr;

TEST_F(IsolationAndLimits, NothingOneRequestDoesReachesTheNext) {
  for (const std::string& route : {"/count", "/clone"}) {
    for (int i = 0; i < 6; ++i) {
      HttpReply reply = served_->get(route + "?" + std::to_string(i));
      ASSERT_EQ(reply.status, 200) << route << " " << reply.body;
      json result = body_json(reply);
      EXPECT_EQ(result["helper_calls"], 1) << route;
      EXPECT_EQ(result["counter"], 1) << route;
      EXPECT_EQ(result["tmp_before"], json::array()) << route;
      EXPECT_EQ(result["leak"], "yes") << route;
      EXPECT_EQ(result["argv"], json({"/code/count.py", std::to_string(i)})) << route;
    }
  }
}

TEST_F(IsolationAndLimits, HostileRequestsEndInTheirStatusAndOthersCarryOn) {
  struct Case {
    std::string path;
    int status;
  };
  for (const Case& c : {Case{"/hostile/loop", 504}, Case{"/hostile/memory", 500},
                        Case{"/hostile/output", 500}, Case{"/hostile/recursion", 500}}) {
    HttpReply reply = served_->get(c.path);
    EXPECT_EQ(reply.status, c.status) << c.path;
    EXPECT_EQ(served_->get("/ok").body, "ok\n") << "after " << c.path;
    EXPECT_EQ(served_->get("/hostile/sleep").body, "slept\n") << "after " << c.path;
  }
  std::string log = served_->log();
  EXPECT_NE(log.find("wall-clock deadline of 1000 ms exceeded"), std::string::npos) << log;
  EXPECT_NE(log.find("output limit of 65536 bytes exceeded"), std::string::npos) << log;
  EXPECT_NE(log.find("MemoryError"), std::string::npos) << log;
  EXPECT_NE(log.find("RecursionError"), std::string::npos) << log;
}

TEST_F(IsolationAndLimits, ConcurrentHostileAndNormalRequests) {
  std::atomic<int> ok{0}, timeouts{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      if (i == 0) {
        if (served_->get("/hostile/loop").status == 504) ++timeouts;
        return;
      }
      for (int j = 0; j < 10; ++j) {
        if (served_->get("/ok").body == "ok\n") ++ok;
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_EQ(timeouts, 1);
  EXPECT_EQ(ok, 30);
}

// --- the HTTP side --------------------------------------------------------------

std::map<std::string, std::string> http_files() {
  return {
      {"modules.toml", R"(
[[module]]
route = "/echo"
module = "code/echo.py"
volumes = { "/code" = "code" }

[[module]]
route = "/slow"
module = "code/slow.py"
volumes = { "/code" = "code" }
)"},
      {"code/echo.py", R"PY(import sys, os
body = sys.stdin.buffer.read()
sys.stdout.write("Content-Type: application/octet-stream\nX-Length: %d\n\n" % len(body))
sys.stdout.flush()
sys.stdout.buffer.write(body)
)PY"},
      {"code/slow.py", R"PY(import time, os
time.sleep(float(os.environ.get("QUERY_STRING") or "0.5"))
print("Content-Type: text/plain\n\nslow done")
)PY"},
  };
}

TEST(Http, KeepAliveHeadDateAndLength) {
  Served served(http_files());
  ASSERT_EQ(served.error, "");
  Connection connection(served.port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        connection.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
    HttpReply reply = connection.read_reply();
    ASSERT_EQ(reply.status, 200) << i;
    EXPECT_EQ(reply.body, "hello");
    EXPECT_EQ(reply.header("Content-Length"), "5");
    EXPECT_NE(reply.header("Date"), "");
  }
  ASSERT_TRUE(connection.send("HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n"));
  HttpReply head = connection.read_reply(/*head=*/true);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Length"), "0");
  // The connection still works after HEAD (no stray body bytes).
  ASSERT_TRUE(connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(connection.read_reply().body, "OK");
  // Pipelined requests are answered in order.
  ASSERT_TRUE(
      connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\n"
                      "Host: x\r\nContent-Length: 2\r\n\r\nhi"));
  EXPECT_EQ(connection.read_reply().body, "OK");
  EXPECT_EQ(connection.read_reply().body, "hi");
  ASSERT_TRUE(connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  HttpReply last = connection.read_reply();
  EXPECT_EQ(last.header("Connection"), "close");
  EXPECT_TRUE(connection.closed_by_server());
}

TEST(Http, ChunkedBodiesAndExpectContinue) {
  Served served(http_files());
  ASSERT_EQ(served.error, "");
  Connection connection(served.port());
  connection.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  HttpReply reply = connection.read_reply();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "hello world");
  EXPECT_EQ(reply.header("X-Length"), "11");
  Connection expecting(served.port());
  expecting.send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  HttpReply interim = expecting.read_reply();
  EXPECT_EQ(interim.status, 100);
  expecting.send("data");
  EXPECT_EQ(expecting.read_reply().body, "data");
}

TEST(Http, MalformedAndOversizedRequestsNeverReachAGuest) {
  Served served(http_files(), [](terrarium::ServeOptions& options) {
    options.http.max_header_bytes = 2048;
    options.http.max_body_bytes = 1000;
  });
  ASSERT_EQ(served.error, "");
  struct Case {
    std::string request;
    int status;
  };
  std::vector<Case> cases = {
      {"THIS IS NOT HTTP\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n", 400},
      {"GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
      {"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n", 431},
      {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413},
      {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
           std::string(2048, 'b') + "\r\n0\r\n\r\n",
       413},
      {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
  };
  for (const Case& c : cases) {
    Connection connection(served.port());
    connection.send(c.request);
    HttpReply reply = connection.read_reply();
    EXPECT_EQ(reply.status, c.status) << c.request.substr(0, 60);
    EXPECT_TRUE(connection.closed_by_server()) << c.request.substr(0, 60);
  }
  EXPECT_EQ(served.server->counters().sandbox_resets, 0u);  // no guest ran
  EXPECT_EQ(served.get("/healthz").body, "OK");
}

TEST(Http, SlowClientsGet408AndIdleOnesAreClosed) {
  Served served(http_files(), [](terrarium::ServeOptions& options) {
    options.http.header_timeout = std::chrono::milliseconds(300);
    options.http.body_timeout = std::chrono::milliseconds(300);
    options.http.idle_timeout = std::chrono::milliseconds(300);
  });
  ASSERT_EQ(served.error, "");
  Connection slow_headers(served.port());
  slow_headers.send("GET /echo HTTP/1.1\r\nHost: x\r\n");  // never finishes
  EXPECT_EQ(slow_headers.read_reply().status, 408);
  Connection slow_body(served.port());
  slow_body.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some");
  EXPECT_EQ(slow_body.read_reply().status, 408);
  Connection idle(served.port());
  EXPECT_TRUE(idle.closed_by_server(std::chrono::seconds(5)));
  EXPECT_EQ(served.get("/healthz").body, "OK");
}

TEST(Http, OverloadAnswers503AtOnce) {
  Served served(http_files(), [](terrarium::ServeOptions& options) {
    options.http.workers = 1;
    options.http.queue_capacity = 1;
  });
  ASSERT_EQ(served.error, "");
  // One request runs, one waits; the rest are refused immediately.
  std::vector<std::unique_ptr<Connection>> slow;
  for (int i = 0; i < 2; ++i) {
    slow.push_back(std::make_unique<Connection>(served.port()));
    slow.back()->send("GET /slow?1.0 HTTP/1.1\r\nHost: x\r\n\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the first is running
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto started = std::chrono::steady_clock::now();
  HttpReply refused = served.get("/slow?0");
  auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.header("Retry-After"), "1");
  EXPECT_LT(waited, std::chrono::milliseconds(500));
  EXPECT_EQ(served.get("/healthz").status, 200);  // answered without a worker
  for (auto& connection : slow) EXPECT_EQ(connection->read_reply().body, "slow done\n");
}

TEST(Http, TooManyConnectionsGet503) {
  Served served(http_files(),
                [](terrarium::ServeOptions& options) { options.http.max_connections = 2; });
  ASSERT_EQ(served.error, "");
  Connection a(served.port()), b(served.port());
  a.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  b.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(a.read_reply().status, 200);
  EXPECT_EQ(b.read_reply().status, 200);
  Connection c(served.port());
  EXPECT_EQ(c.read_reply().status, 503);
}

TEST(Http, StopDrainsRequestsInFlight) {
  auto served = std::make_unique<Served>(http_files());
  ASSERT_EQ(served->error, "");
  Connection in_flight(served->port());
  in_flight.send("GET /slow?0.5 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  Connection idle(served->port());
  served->server->stop();
  HttpReply reply = in_flight.read_reply();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "slow done\n");
  EXPECT_EQ(reply.header("Connection"), "close");
  EXPECT_TRUE(idle.closed_by_server(std::chrono::seconds(5)));
  served->thread.join();  // run() returned by itself
  served->server.reset();
  served.reset();
}

TEST(Http, ReloadSwitchesRoutesAndABrokenFileKeepsTheOld) {
  Served served(http_files());
  ASSERT_EQ(served.error, "");
  EXPECT_EQ(served.get("/new").status, 404);
  served.write("code/new.py", "print('Content-Type: text/plain\\n\\nnew route')\n");
  served.write("modules.toml", "[[module]]\nroute = \"/new\"\nmodule = \"code/new.py\"\n");
  ASSERT_TRUE(served.server->reload());
  EXPECT_EQ(served.get("/new").body, "new route\n");
  EXPECT_EQ(served.get("/echo").status, 404);
  served.write("modules.toml", "[[module]]\nroute = \"/broken\"\nmodule = \"missing.py\"\n");
  auto failed = served.server->reload();
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message().find("missing.py"), std::string::npos);
  EXPECT_EQ(served.get("/new").body, "new route\n");
  EXPECT_NE(served.log().find("reload failed; keeping the routes that run now"), std::string::npos);
}

TEST(Http, MetricsAndAccessLog) {
  std::string access_log;
  Served served(http_files(), [&](terrarium::ServeOptions& options) {
    access_log = options.log_dir + "-access.log";
    options.access_log = access_log;
  });
  ASSERT_EQ(served.error, "");
  fetch(served.port(), "POST", "/echo", {}, "x");
  served.get("/missing");
  // The sandbox is reset after the response went out: wait for its count.
  HttpReply metrics;
  for (int i = 0; i < 50; ++i) {
    metrics = served.get("/metrics");
    if (metrics.body.find("terrarium_sandbox_resets_total{route=\"/echo\"} 1") != std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(metrics.body.find("# TYPE terrarium_http_requests_total counter"), std::string::npos);
  EXPECT_NE(metrics.body.find("terrarium_http_requests_total{route=\"/echo\",status=\"200\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("terrarium_http_requests_total{route=\"(none)\",status=\"404\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find(
                "terrarium_http_request_duration_seconds_bucket{route=\"/echo\",le=\"+Inf\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("terrarium_sandbox_resets_total{route=\"/echo\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("terrarium_queue_depth 0"), std::string::npos);
  // A request is logged once its response is written: give the last a moment.
  std::string text;
  for (int i = 0; i < 50 && text.find("/metrics") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(access_log);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(text.find("\"POST /echo HTTP/1.1\" 200 1 "), std::string::npos) << text;
  EXPECT_NE(text.find("\"GET /missing HTTP/1.1\" 404 0 "), std::string::npos) << text;
  fs::remove(access_log);
}

TEST(Http, ListenAddressErrorsAreNamed) {
  static auto runtime = *terrarium::Runtime::create();
  terrarium::ServeOptions options;
  options.http.listen = "not-an-address";
  options.config_path = "/nonexistent/modules.toml";
  auto server = terrarium::Server::create(runtime, options);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message().find("listen address 'not-an-address': expected IP:PORT"),
            std::string::npos)
      << server.error().message();
  options.http.listen = "127.0.0.1:0";
  server = terrarium::Server::create(runtime, options);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message().find("/nonexistent/modules.toml: cannot read"),
            std::string::npos)
      << server.error().message();
}

}  // namespace
