// WSGI routes of `terrarium serve` end to end: examples/flask-app as it runs
// under gunicorn, a plain WSGI callable (PEP 3333's corners, checked by
// wsgiref.validate inside the guest), Bottle, isolation and limits.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "http_client.h"
#include "served.h"

namespace {

using nlohmann::json;
using terrarium::testing::Connection;
using terrarium::testing::fetch;
using terrarium::testing::HttpReply;
using terrarium::testing::Served;

const std::string kDistPackages = "/usr/lib/python3/dist-packages";

std::string flask_config(const std::string& route) {
  return "[[module]]\nroute = \"" + route + "\"\nwsgi = \"app:app\"\n" +
         "volumes = { \"/srv/app\" = { path = \"" TERRARIUM_SOURCE_DIR
         "/examples/flask-app\", "
         "read_only = true } }\n"
         "python_path = [\"" +
         kDistPackages + "\"]\n";
}

class FlaskApp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // First match wins: the mounted copy before the catch-all.
    served_ = new Served({{"modules.toml", flask_config("/mounted/...") + flask_config("/...")}});
    ASSERT_EQ(served_->error, "");
  }
  static void TearDownTestSuite() {
    delete served_;
    served_ = nullptr;
  }
  static Served* served_;
};
Served* FlaskApp::served_ = nullptr;

TEST_F(FlaskApp, EveryKindOfRouteAnswersAsUnderGunicorn) {
  HttpReply hello = served_->get("/hello");
  EXPECT_EQ(hello.status, 200);
  EXPECT_EQ(hello.body, "Hello, World!");
  EXPECT_EQ(hello.header("Content-Type"), "text/html; charset=utf-8");
  HttpReply named = served_->get("/hello/Ada%20Lovelace");
  EXPECT_EQ(named.status, 200);
  EXPECT_NE(named.body.find("<h1>Hello, Ada Lovelace!</h1>"), std::string::npos) << named.body;
  HttpReply index = served_->get("/");
  EXPECT_NE(index.body.find("<li id=\"note-1\">first note</li>"), std::string::npos);
  EXPECT_NE(index.body.find("href=\"/hello/world\""), std::string::npos) << index.body;
  HttpReply notes = served_->get("/api/notes");
  EXPECT_EQ(json::parse(notes.body),
            json::parse(R"({"notes":[{"id":1,"text":"first note"}],"total":1})"));
  EXPECT_EQ(served_->get("/api/notes/1").status, 200);
  HttpReply missing = served_->get("/api/notes/42");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body)["error"], "no note 42");
  HttpReply created = fetch(served_->port(), "POST", "/api/notes",
                            {{"Content-Type", "application/json"}}, R"({"text": "second"})");
  EXPECT_EQ(created.status, 201);
  EXPECT_EQ(json::parse(created.body), json::parse(R"({"id":2,"text":"second"})"));
  HttpReply bad =
      fetch(served_->port(), "POST", "/api/notes", {{"Content-Type", "application/json"}}, "[1]");
  EXPECT_EQ(bad.status, 400);
  std::string big = json({{"items", std::vector<int>(300, 7)}}).dump();
  HttpReply echo =
      fetch(served_->port(), "POST", "/echo", {{"Content-Type", "application/json"}}, big);
  EXPECT_EQ(json::parse(echo.body), json::parse(big));
  HttpReply form = fetch(served_->port(), "POST", "/form",
                         {{"Content-Type", "application/x-www-form-urlencoded"}}, "name=Bob+Smith");
  EXPECT_EQ(form.status, 302);
  EXPECT_EQ(form.header("Location"), "/hello/Bob%20Smith");
  EXPECT_NE(form.header("Set-Cookie").find("name=\"Bob Smith\""), std::string::npos)
      << form.header("Set-Cookie");
  HttpReply empty_form = fetch(served_->port(), "POST", "/form",
                               {{"Content-Type", "application/x-www-form-urlencoded"}}, "name=");
  EXPECT_EQ(empty_form.status, 422);
  EXPECT_NE(empty_form.body.find("name is required"), std::string::npos);
  HttpReply who = served_->get("/whoami", {{"Cookie", "name=Eve"}});
  EXPECT_EQ(json::parse(who.body)["name"], "Eve");
  EXPECT_EQ(who.count("Set-Cookie"), 2u);
  HttpReply old = served_->get("/old");
  EXPECT_EQ(old.status, 301);
  EXPECT_EQ(old.header("Location"), "/");
  HttpReply head = fetch(served_->port(), "HEAD", "/hello");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("Content-Length"), "13");
}

TEST_F(FlaskApp, EveryRequestStartsFromTheSnapshot) {
  // The app counts requests in a module global; the POST above added a note.
  std::vector<std::thread> clients;
  std::atomic<int> ones{0};
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        HttpReply reply = served_->get("/count");
        if (reply.status == 200 && json::parse(reply.body)["requests"] == 1) ++ones;
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_EQ(ones, 40);
  fetch(served_->port(), "POST", "/api/notes", {{"Content-Type", "application/json"}},
        R"({"text": "x"})");
  EXPECT_EQ(json::parse(served_->get("/api/notes").body)["total"], 1);
}

TEST_F(FlaskApp, AnErrorIs500WithTheTracebackOnlyInTheLog) {
  HttpReply failed = served_->get("/fail");
  EXPECT_EQ(failed.status, 500);
  EXPECT_EQ(failed.body.find("Traceback"), std::string::npos);
  EXPECT_EQ(failed.body.find("on purpose"), std::string::npos);
  std::string log = served_->log();
  EXPECT_NE(log.find("RuntimeError: this handler fails on purpose"), std::string::npos) << log;
  EXPECT_EQ(served_->get("/hello").body, "Hello, World!");
}

TEST_F(FlaskApp, UrlForKnowsTheMountPoint) {
  HttpReply index = served_->get("/mounted/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("href=\"/mounted/hello/world\""), std::string::npos) << index.body;
  HttpReply form = fetch(served_->port(), "POST", "/mounted/form",
                         {{"Content-Type", "application/x-www-form-urlencoded"}}, "name=Al");
  EXPECT_EQ(form.header("Location"), "/mounted/hello/Al");
}

// --- a plain WSGI callable -------------------------------------------------------

constexpr const char* kPlainApp = R"PY(import json, sys

closed = []

class Body:
    def __init__(self, parts):
        self.parts = parts
    def __iter__(self):
        return iter(self.parts)
    def close(self):
        print("body closed", file=sys.stderr)

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ":
        chunks = []
        while True:
            chunk = environ["wsgi.input"].read(3)
            if not chunk:
                break
            chunks.append(chunk)
        info = {k: v for k, v in environ.items() if isinstance(v, str)}
        info.update({"version": list(environ["wsgi.version"]), "scheme": environ["wsgi.url_scheme"],
                     "multithread": environ["wsgi.multithread"],
                     "multiprocess": environ["wsgi.multiprocess"], "run_once": environ["wsgi.run_once"],
                     "body": b"".join(chunks).decode("latin-1"), "pieces": len(chunks)})
        environ["wsgi.errors"].write("a line for wsgi.errors\n")
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(info).encode()]
    if path == "/stream":
        def generate():
            for i in range(5):
                yield ("part %d\n" % i).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return generate()
    if path == "/write":
        write = start_response("201 Created", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return Body([b"clo", b"sed"])
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("replaced")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error page"]
    if path == "/late-error":
        def broken():
            yield b"first part "
            raise RuntimeError("after the headers")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return broken()
    if path == "/bad-status":
        start_response("OK", [])
        return [b""]
    if path == "/loop":
        while True:
            pass
    if path == "/memory":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"nothing at " + path.encode("latin-1")]

from wsgiref.validate import validator
validated = validator(app)
)PY";

class PlainWsgi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    served_ = new Served({{"modules.toml", R"(
[[module]]
route = "/plain/..."
wsgi = "plain:app"
volumes = { "/code" = "code" }
limits = { timeout = "1s", max_memory = "128M" }

[[module]]
route = "/validated/..."
wsgi = "plain:validated"
volumes = { "/code" = "code" }

[[module]]
route = "/exact"
wsgi = "plain:app"
volumes = { "/code" = "code" }
)"},
                          {"code/plain.py", kPlainApp}});
    ASSERT_EQ(served_->error, "");
  }
  static void TearDownTestSuite() {
    delete served_;
    served_ = nullptr;
  }
  static Served* served_;
};
Served* PlainWsgi::served_ = nullptr;

TEST_F(PlainWsgi, TheEnvironAsPep3333SaysAndTheBodyInPieces) {
  HttpReply reply =
      fetch(served_->port(), "POST", "/plain/environ?q=%20x",
            {{"Content-Type", "text/plain"}, {"X-Custom", "yes"}, {"Authorization", "Basic eA=="}},
            "0123456789");
  ASSERT_EQ(reply.status, 200) << reply.body << served_->log();
  json env = json::parse(reply.body);
  EXPECT_EQ(env["version"], json({1, 0}));
  EXPECT_EQ(env["scheme"], "http");
  EXPECT_EQ(env["multithread"], false);
  EXPECT_EQ(env["multiprocess"], true);
  EXPECT_EQ(env["run_once"], false);
  EXPECT_EQ(env["body"], "0123456789");
  EXPECT_EQ(env["pieces"], 4);
  EXPECT_EQ(env["CONTENT_LENGTH"], "10");
  EXPECT_EQ(env["CONTENT_TYPE"], "text/plain");
  EXPECT_FALSE(env.contains("HTTP_CONTENT_TYPE"));
  EXPECT_FALSE(env.contains("HTTP_CONTENT_LENGTH"));
  EXPECT_EQ(env["HTTP_X_CUSTOM"], "yes");
  EXPECT_EQ(env["HTTP_AUTHORIZATION"], "Basic eA==");
  EXPECT_EQ(env["SCRIPT_NAME"], "/plain");
  EXPECT_EQ(env["PATH_INFO"], "/environ");
  EXPECT_EQ(env["QUERY_STRING"], "q=%20x");
  EXPECT_EQ(env["REQUEST_METHOD"], "POST");
  EXPECT_EQ(env["SERVER_PROTOCOL"], "HTTP/1.1");
  EXPECT_EQ(env["REMOTE_ADDR"], "127.0.0.1");
  EXPECT_NE(served_->log().find("a line for wsgi.errors"), std::string::npos);
  // An exact route: the whole path is PATH_INFO.
  EXPECT_EQ(served_->get("/exact").body, "nothing at /exact");
  // Non-ASCII in the path: PEP 3333's latin-1 native string of the bytes.
  EXPECT_EQ(served_->get("/plain/caf%C3%A9").body, "nothing at /caf\xc3\xa9");
}

TEST_F(PlainWsgi, StreamedWrittenClosedAndReplacedResponses) {
  HttpReply stream = served_->get("/plain/stream");
  EXPECT_EQ(stream.status, 200);
  EXPECT_TRUE(stream.chunked);
  EXPECT_EQ(stream.body, "part 0\npart 1\npart 2\npart 3\npart 4\n");
  HttpReply written = served_->get("/plain/write");
  EXPECT_EQ(written.status, 201);
  EXPECT_EQ(written.body, "written and returned");
  HttpReply closing = served_->get("/plain/closing");
  EXPECT_EQ(closing.body, "closed");
  EXPECT_TRUE(served_->log_has("body closed")) << served_->log();
  HttpReply replaced = served_->get("/plain/exc-info");
  EXPECT_EQ(replaced.status, 503);
  EXPECT_EQ(replaced.body, "error page");
  EXPECT_EQ(served_->get("/plain/bad-status").status, 500);
  // An error after the headers went out: the connection is cut, so the
  // client cannot take the partial body for a whole one.
  Connection connection(served_->port());
  connection.send("GET /plain/late-error HTTP/1.1\r\nHost: x\r\n\r\n");
  HttpReply late = connection.read_reply();
  EXPECT_EQ(late.status, 200);
  EXPECT_TRUE(connection.closed_by_server());
  EXPECT_TRUE(served_->log_has("RuntimeError: after the headers")) << served_->log();
}

TEST_F(PlainWsgi, WsgirefsValidatorFindsNothingWrong) {
  for (std::string path : {"/validated/environ", "/validated/stream", "/validated/write",
                           "/validated/closing", "/validated/other"}) {
    HttpReply reply =
        fetch(served_->port(), path == "/validated/environ" ? "POST" : "GET", path,
              {{"Content-Type", "text/plain"}}, path == "/validated/environ" ? "abc" : "");
    EXPECT_NE(reply.status, 500) << path << "\n" << served_->log();
  }
  EXPECT_EQ(served_->log().find("AssertionError"), std::string::npos) << served_->log();
}

TEST_F(PlainWsgi, LimitsEndTheRequestAndTheServerCarriesOn) {
  EXPECT_EQ(served_->get("/plain/loop").status, 504);
  EXPECT_EQ(served_->get("/plain/memory").status, 500);
  EXPECT_EQ(served_->get("/plain/x").body, "nothing at /x");
}

TEST(Wsgi, BottleAppRuns) {
  Served served({{"modules.toml", R"(
[[module]]
route = "/..."
wsgi = "hello:app"
volumes = { "/code" = "code" }
python_path = ["/usr/lib/python3/dist-packages"]
)"},
                 {"code/hello.py", R"PY(import bottle
app = bottle.Bottle()

@app.route("/hello/<name>")
def hello(name):
    return bottle.template("<b>Hello {{name}}</b>!", name=name)

@app.post("/sum")
def total():
    return {"sum": sum(bottle.request.json["values"])}
)PY"}});
  ASSERT_EQ(served.error, "");
  EXPECT_EQ(served.get("/hello/bottle").body, "<b>Hello bottle</b>!");
  HttpReply sum = fetch(served.port(), "POST", "/sum", {{"Content-Type", "application/json"}},
                        R"({"values": [1, 2, 3]})");
  EXPECT_EQ(json::parse(sum.body)["sum"], 6);
}

TEST(Wsgi, AnImportErrorFailsTheStartWithTheRouteAndTraceback) {
  Served served(
      {{"modules.toml",
        "[[module]]\nroute = \"/\"\nwsgi = \"broken:app\"\nvolumes = { \"/code\" = \"code\" }\n"},
       {"code/broken.py", "import no_such_module\napp = None\n"}});
  EXPECT_NE(served.error.find("route '/': importing the WSGI app broken:app failed"),
            std::string::npos)
      << served.error;
  EXPECT_NE(served.error.find("ModuleNotFoundError: No module named 'no_such_module'"),
            std::string::npos)
      << served.error;
  EXPECT_NE(served.error.find("File \"/code/broken.py\", line 1"), std::string::npos)
      << served.error;
  Served not_callable(
      {{"modules.toml",
        "[[module]]\nroute = \"/\"\nwsgi = \"thing:app\"\nvolumes = { \"/code\" = \"code\" }\n"},
       {"code/thing.py", "app = 42\n"}});
  EXPECT_NE(not_callable.error.find("not a WSGI callable"), std::string::npos)
      << not_callable.error;
}

}  // namespace
