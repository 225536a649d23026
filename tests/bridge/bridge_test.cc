// The bridge end to end: host -> Python -> host calls through the real guest.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "terrarium/plugin.h"
#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"

namespace {

using nlohmann::json;
using terrarium::ErrorKind;

std::shared_ptr<terrarium::Runtime> runtime() {
  static std::shared_ptr<terrarium::Runtime> shared = *terrarium::Runtime::create();
  return shared;
}

std::unique_ptr<terrarium::Sandbox> new_sandbox() {
  auto sandbox = runtime()->new_sandbox({});
  EXPECT_TRUE(sandbox.ok()) << sandbox.error().to_string();
  return std::move(*sandbox);
}

#define ASSERT_OK(expr)                                                               \
  do {                                                                                \
    auto&& result_ = (expr);                                                          \
    ASSERT_TRUE(result_.ok()) << #expr << ": " << result_.error().to_string() << "\n" \
                              << result_.error().details();                           \
  } while (0)

constexpr const char* kEcho = R"PY(
import terrarium

@terrarium.export
def echo(value):
    return value

@terrarium.export("kind")
def _kind(value):
    return type(value).__name__
)PY";

TEST(Bridge, JsonRoundTripOfEveryValueKind) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->exec(kEcho));
  std::vector<json> values = {
      nullptr,
      true,
      false,
      0,
      -1,
      42,
      9007199254740993LL,
      -9223372036854775807LL - 1,
      18446744073709551615ULL,
      3.5,
      -0.25,
      1e300,
      "",
      "text",
      json::array(),
      json::array({1, "two", nullptr, json::array({3.0})}),
      json::object(),
      json::object({{"a", 1}, {"nested", json::object({{"b", json::array({true, false})}})}})};
  for (const json& value : values) {
    auto result = sandbox->call_json("echo", value);
    ASSERT_TRUE(result.ok()) << value.dump() << ": " << result.error().to_string();
    EXPECT_EQ(*result, value) << value.dump();
  }
  EXPECT_EQ(*sandbox->call_json("kind", json::object()), "dict");
  EXPECT_EQ(*sandbox->call_json("kind", json::array()), "list");
  EXPECT_EQ(*sandbox->call_json("kind", 1.5), "float");
  EXPECT_EQ(*sandbox->call_json("kind", 7), "int");
  EXPECT_EQ(*sandbox->call_json("kind", nullptr), "NoneType");
}

TEST(Bridge, UnicodeAndBinaryPayloads) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->exec(kEcho));
  json text = "héllo wörld — 日本語 🐍 \u0000 nul";
  EXPECT_EQ(*sandbox->call_json("echo", text), text);
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  auto result = sandbox->call("echo", binary);
  ASSERT_OK(result);
  EXPECT_EQ(*result, binary);
  EXPECT_EQ(*sandbox->call("kind", binary), "\"bytes\"");
  // Invalid UTF-8 as JSON text is refused, the sandbox lives on.
  auto bad = sandbox->call_json_text("echo", "\"\xff\xfe\"");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind(), ErrorKind::kGuestError);
  EXPECT_EQ(*sandbox->call_json("echo", 1), 1);
}

TEST(Bridge, PayloadSizes) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->exec(kEcho));
  ASSERT_OK(sandbox->define("host_echo", [](const std::string& payload) { return payload; }));
  ASSERT_OK(sandbox->exec(R"PY(
@terrarium.export
def via_host(data):
    return terrarium.host.host_echo(data)
)PY"));
  for (size_t size : {size_t{0}, size_t{1} << 20, size_t{64} << 20}) {
    std::string payload(size, '\0');
    for (size_t i = 0; i < size; i += 4093) payload[i] = static_cast<char>(i * 7);
    auto result = sandbox->call("echo", payload);
    ASSERT_OK(result);
    EXPECT_EQ(result->size(), size);
    EXPECT_TRUE(*result == payload) << size;
    auto through = sandbox->call("via_host", payload);
    ASSERT_OK(through);
    EXPECT_TRUE(*through == payload) << size;
  }
}

TEST(Bridge, PythonCallsHostFunctions) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->define_json(
      "add", [](const json& args) { return args[0].get<int>() + args[1].get<int>(); }));
  ASSERT_OK(sandbox->define("upper", [](const std::string& text) {
    std::string out = text;
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
  }));
  ASSERT_OK(sandbox->exec(R"PY(
import terrarium
assert terrarium.host.add(2, 3) == 5
assert terrarium.host.upper(b"abc") == b"ABC"
assert terrarium.call_host("add", 10, 20) == 30
@terrarium.export
def compute(n):
    return {"sum": terrarium.host.add(n, n), "up": terrarium.host.upper(b"x").decode()}
)PY"));
  EXPECT_EQ(*sandbox->call_json("compute", 21), json({{"sum", 42}, {"up", "X"}}));
}

TEST(Bridge, HostFunctionThrowingBecomesHostError) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->define("boom", [](const std::string&) -> std::string {
    throw std::runtime_error("database is down");
  }));
  ASSERT_OK(sandbox->define_json("boom_json", [](const json&) -> json { throw 42; }));
  ASSERT_OK(sandbox->exec(R"PY(
import terrarium
try:
    terrarium.host.boom(b"x")
    raise AssertionError("no error")
except terrarium.HostError as e:
    assert str(e) == "database is down", str(e)
try:
    terrarium.host.boom_json(1)
    raise AssertionError("no error")
except terrarium.HostError as e:
    assert "boom_json" in str(e), str(e)
try:
    terrarium.host.boom_json(b"raw")
    raise AssertionError("no error")
except terrarium.HostError as e:
    assert "takes JSON" in str(e), str(e)
)PY"));
}

TEST(Bridge, PythonExceptionReachesTheHost) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->exec(R"PY(
import terrarium
def helper(x):
    raise ValueError("bad value %r" % (x,))
@terrarium.export
def fails(x):
    return helper(x)
)PY",
                          "/app/handlers.py"));
  auto result = sandbox->call_json("fails", 7);
  ASSERT_FALSE(result.ok());
  const auto& error = result.error();
  EXPECT_EQ(error.kind(), ErrorKind::kGuestError);
  EXPECT_EQ(error.python_type(), "ValueError");
  EXPECT_NE(error.message().find("ValueError: bad value 7"), std::string::npos) << error.message();
  EXPECT_NE(error.message().find("'fails'"), std::string::npos) << error.message();
  EXPECT_NE(error.details().find("Traceback (most recent call last)"), std::string::npos);
  EXPECT_NE(error.details().find("/app/handlers.py"), std::string::npos) << error.details();
  EXPECT_NE(error.details().find("in helper"), std::string::npos) << error.details();
  EXPECT_EQ(error.details().find("_dispatch"), std::string::npos) << error.details();
  // The sandbox still works.
  ASSERT_OK(sandbox->exec("x = 1"));
  // exec errors too.
  auto syntax = sandbox->exec("def (:", "broken.py");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.error().python_type(), "SyntaxError");
  auto exit = sandbox->exec("raise SystemExit(3)");
  ASSERT_FALSE(exit.ok());
  EXPECT_EQ(exit.error().python_type(), "SystemExit");
  ASSERT_OK(sandbox->exec("x = 2"));
}

TEST(Bridge, UndefinedHostFunctionIsAClearHostError) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->exec(R"PY(
import terrarium
try:
    terrarium.host.not_defined_anywhere(1)
    raise AssertionError("no error")
except terrarium.HostError as e:
    assert "no host function named 'not_defined_anywhere'" in str(e), str(e)
)PY"));
}

TEST(Bridge, UndefinedExportIsNotFound) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->exec(kEcho));
  auto result = sandbox->call_json("missing_export", 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(result.error().message().find("'missing_export'"), std::string::npos)
      << result.error().message();
  EXPECT_NE(result.error().message().find("echo"), std::string::npos);
  EXPECT_EQ(*sandbox->call_json("echo", 5), 5);
}

TEST(Bridge, HostileGuestAbiUseGetsErrorStatuses) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->define("echo", [](const std::string& p) { return p; }));
  // Statuses: -1 bad pointer, -2 bad argument, -3 no result, -4 too small.
  ASSERT_OK(sandbox->exec(R"PY(
import _terrarium as t
HUGE = 0xFFFFFFFF
checks = [
    ("name out of range", t.raw_host_call(HUGE - 2, 4, 0, 0, 0, 1024), -1),
    ("negative name length", t.raw_host_call(1024, -1, 0, 0, 0, 1024), -1),
    ("huge payload length", t.raw_host_call(1024, 4, 0, HUGE, 0, 1024), -1),
    ("payload past the end", t.raw_host_call(1024, 4, HUGE - 100, 200, 0, 1024), -1),
    ("info out of range", t.raw_host_call(1024, 4, 0, 0, 0, HUGE - 3), -1),
    ("bad kind", t.raw_host_call(1024, 4, 0, 0, 7, 1024), -2),
    ("result without call", t.raw_host_result(1024, 10), -3),
    ("set_result out of range", t.raw_set_result(HUGE, 10, 0), -1),
    ("set_result negative length", t.raw_set_result(1024, -5, 0), -1),
    ("set_result bad kind", t.raw_set_result(1024, 1, 99), -2),
]
# An empty name: not found; its message is pending and longer than 0 bytes.
checks.append(("empty name: not found", t.raw_host_call(1024, 0, 0, 0, 1, 1024), 2))
checks.append(("result into a too small buffer", t.raw_host_result(1024, 0), -4))
checks.append(("result out of range", t.raw_host_result(HUGE - 1, HUGE), -1))
bad = [(what, got, want) for what, got, want in checks if got != want]
assert not bad, bad
# Overwriting the pending result buffer in place must be safe too.
assert t.host_call("echo", b"still alive", 1) == b"still alive"
)PY"));
  EXPECT_FALSE(sandbox->spent());
  // A guest that reports an out-of-range result only: the host refuses it.
  ASSERT_OK(sandbox->exec(R"PY(
import terrarium, _terrarium
@terrarium.export
def liar(_):
    _terrarium.raw_set_result(0xFFFFFF00, 0x1000, 0)
    raise RuntimeError("after a bad set_result")
)PY"));
  auto lied = sandbox->call_json("liar", 0);
  ASSERT_FALSE(lied.ok());
  EXPECT_EQ(lied.error().kind(), ErrorKind::kGuestError);
  EXPECT_NE(lied.error().message().find("after a bad set_result"), std::string::npos);
  ASSERT_OK(sandbox->exec("assert terrarium.host.echo(b'ok') == b'ok'"));
}

TEST(Bridge, ReentryIsRefused) {
  auto sandbox = new_sandbox();
  terrarium::Sandbox* raw = sandbox.get();
  ASSERT_OK(sandbox->define("reenter", [raw](const std::string&) -> std::string {
    auto inner = raw->call("anything", "");
    if (inner.ok()) return "entered";
    throw std::runtime_error(inner.error().message());
  }));
  ASSERT_OK(sandbox->exec(R"PY(
import terrarium
try:
    terrarium.host.reenter(b"")
    raise AssertionError("re-entry allowed")
except terrarium.HostError as e:
    assert "re-entrant" in str(e), str(e)
)PY"));
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

TEST(Bridge, HundredThousandCallsDoNotLeak) {
  auto sandbox = new_sandbox();
  ASSERT_OK(sandbox->define_json("twice", [](const json& v) { return v.get<int>() * 2; }));
  ASSERT_OK(sandbox->exec(R"PY(
import terrarium
@terrarium.export
def step(n):
    return {"n": terrarium.host.twice(n), "s": "x" * 50}
)PY"));
  long after_10k = 0;
  for (int i = 1; i <= 100000; ++i) {
    auto result = sandbox->call_json_text("step", std::to_string(i));
    ASSERT_TRUE(result.ok()) << result.error().to_string();
    if (i == 10000) after_10k = rss_kib();
  }
  long after_100k = rss_kib();
  EXPECT_EQ(*sandbox->call_json("step", 3), json({{"n", 6}, {"s", std::string(50, 'x')}}));
#if !defined(__SANITIZE_ADDRESS__)  // ASan holds freed memory in quarantine; LSan checks leaks
  EXPECT_LT(after_100k - after_10k, 2048)
      << "RSS grew from " << after_10k << " KiB to " << after_100k << " KiB";
#else
  (void)after_10k;
  (void)after_100k;
#endif
}

TEST(Bridge, OutputOfPrintReachesTheCallback) {
  std::string out;
  terrarium::SandboxConfig config;
  config.stdout_output = {-1, [&out](std::string_view text) { out.append(text); }};
  auto sandbox = runtime()->new_sandbox(std::move(config));
  ASSERT_OK(sandbox);
  ASSERT_OK((*sandbox)->exec("print('hello from the guest')"));
  EXPECT_EQ(out, "hello from the guest\n");
}

TEST(Bridge, RunMainAndEmbeddingExcludeEachOther) {
  auto sandbox = new_sandbox();
  auto status = sandbox->run_main();
  ASSERT_FALSE(status.ok());
}

TEST(Se2Plugin, ExampleReversesLetterWords) {
  std::vector<std::string> log;
  terrarium::PluginOptions options;
  options.log = [&log](std::string_view line) { log.emplace_back(line); };
  auto plugin = terrarium::Plugin::load(*runtime(), TERRARIUM_SOURCE_DIR "/examples/se2-plugin",
                                        std::move(options));
  ASSERT_OK(plugin);
  EXPECT_EQ((*plugin)->name(), "se2-plugin");
  auto result = (*plugin)->run("Hello, wasm world 42 abc", 7);
  ASSERT_OK(result);
  EXPECT_EQ(*result, "Hello, msaw dlrow 42 cba");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "reversed 3 of 5 words");
  EXPECT_EQ(*(*plugin)->run("", 8), "");
}

class Se2PluginErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("terrarium-plugin-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_ / "badplugin");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& code) {
    std::ofstream(dir_ / "badplugin" / "plugin.py") << code;
    return (dir_ / "badplugin").string();
  }
  std::filesystem::path dir_;
};

TEST_F(Se2PluginErrors, NeitherReturnNorError) {
  auto plugin =
      terrarium::Plugin::load(*runtime(), write("def run_e(payload, ident):\n    pass\n"));
  ASSERT_OK(plugin);
  auto result = (*plugin)->run("x", 1);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("plugin 'badplugin' returned neither"), std::string::npos)
      << result.error().message();
}

TEST_F(Se2PluginErrors, Raises) {
  auto plugin = terrarium::Plugin::load(
      *runtime(), write("def run_e(payload, ident):\n    raise KeyError('nope')\n"));
  ASSERT_OK(plugin);
  auto result = (*plugin)->run("x", 1);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("plugin 'badplugin'"), std::string::npos);
  EXPECT_NE(result.error().message().find("KeyError"), std::string::npos)
      << result.error().message();
  EXPECT_NE(result.error().details().find("plugin.py"), std::string::npos)
      << result.error().details();
}

TEST_F(Se2PluginErrors, ReturnsError) {
  auto plugin = terrarium::Plugin::load(
      *runtime(),
      write(
          "import sdk\ndef run_e(payload, ident):\n    sdk.return_error(3, 'bad input', ident)\n"));
  ASSERT_OK(plugin);
  auto result = (*plugin)->run("x", 1);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message(), "plugin 'badplugin' returned error 3: bad input");
}

TEST_F(Se2PluginErrors, NoRunE) {
  auto plugin = terrarium::Plugin::load(*runtime(), write("x = 1\n"));
  ASSERT_FALSE(plugin.ok());
  EXPECT_EQ(plugin.error().kind(), ErrorKind::kNotFound);
  EXPECT_NE(plugin.error().message().find("plugin 'badplugin' failed to load"), std::string::npos)
      << plugin.error().message();
  EXPECT_NE(plugin.error().message().find("run_e"), std::string::npos);
}

TEST_F(Se2PluginErrors, ReadOnlyMount) {
  auto plugin = terrarium::Plugin::load(*runtime(), write(R"PY(
import sdk
def run_e(payload, ident):
    try:
        open("/plugin/new.txt", "w")
    except OSError as e:
        sdk.return_result("refused: %d" % e.errno, ident)
)PY"));
  ASSERT_OK(plugin);
  auto result = (*plugin)->run("", 1);
  ASSERT_OK(result);
  EXPECT_EQ(*result, "refused: 69");
}

}  // namespace
