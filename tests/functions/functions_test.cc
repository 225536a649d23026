// The function runtime over the C++ API: every wire case (each error kind,
// the three mat types, relative imports), hostcalls, limits, isolation.
#include "terrarium/functions.h"

#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

namespace {

using nlohmann::json;
using terrarium::ErrorKind;
using terrarium::FunctionError;
using terrarium::FunctionErrorKind;
using terrarium::Functions;
using terrarium::FunctionsOptions;
using terrarium::Isolation;
using terrarium::OpInfo;
using terrarium::Runtime;

std::shared_ptr<const Runtime> runtime() {
  static std::shared_ptr<const Runtime> shared = [] {
    auto created = Runtime::create();
    EXPECT_TRUE(created.ok());
    return *created;
  }();
  return shared;
}

OpInfo op(const std::string& name, const json& data) {
  OpInfo info;
  info.op_name = name;
  info.mat_title = name;
  info.mat_hash = "hash-" + name;
  info.mat_data_json = data.dump();
  return info;
}

OpInfo lambda_op(const std::string& name, const std::string& source) {
  return op(name, {{"ty", "lambda"}, {"source", source}});
}

OpInfo def_op(const std::string& name, const std::string& function, const std::string& source) {
  return op(name, {{"ty", "def"}, {"func_name", function}, {"source", source}});
}

OpInfo import_op(const std::string& name, const std::string& root, const std::string& function,
                 const json& sources) {
  return op(name, {{"ty", "import_function"},
                   {"root_src_path", root},
                   {"func_name", function},
                   {"sources", sources}});
}

std::unique_ptr<Functions> make(std::vector<OpInfo> ops, FunctionsOptions options = {}) {
  if (!options.output) options.output = [](std::string_view, std::string_view) {};
  auto functions = Functions::create(runtime(), std::move(ops), std::move(options));
  EXPECT_TRUE(functions.ok()) << (functions.ok() ? ""
                                                 : functions.error().to_string() + "\n" +
                                                       functions.error().details());
  return functions.ok() ? std::move(*functions) : nullptr;
}

FunctionError init_error(std::vector<OpInfo> ops, FunctionsOptions options = {},
                         std::string version = "0.5.0") {
  options.output = [](std::string_view, std::string_view) {};
  auto functions = Functions::create(runtime(), options);
  EXPECT_TRUE(functions.ok());
  auto ready = (*functions)->init(version, std::move(ops));
  EXPECT_FALSE(ready.ok()) << "init unexpectedly succeeded";
  return ready.ok() ? FunctionError{} : ready.error();
}

std::string ok_or_error(const terrarium::FunctionResult<std::string>& result) {
  if (result) return *result;
  return std::string("error ") + function_error_kind_name(result.error().kind) + ": " +
         result.error().message;
}

TEST(Functions, ThreeMatTypesAnswer) {
  auto functions = make({
      lambda_op("add", "lambda x: x['a'] + x['b']"),
      def_op("greet", "greet", "def greet(inp):\n    return {'hello': inp['name'].upper()}\n"),
      import_op("slug", "main.py", "slugify",
                {{"main.py",
                  "from .lib.text import clean\nfrom . import config\n"
                  "def slugify(inp):\n    return config.SEPARATOR.join(clean(inp).split())\n"},
                 {"config.py", "SEPARATOR = '-'\n"},
                 {"lib/__init__.py", ""},
                 {"lib/text.py",
                  "import re\ndef clean(s):\n    return re.sub(r'[^a-z ]', '', s.lower())\n"}}),
  });
  ASSERT_TRUE(functions);
  EXPECT_EQ(ok_or_error(functions->handle("add", R"({"a": 1, "b": 2})")), "3");
  EXPECT_EQ(ok_or_error(functions->handle("greet", R"({"name": "ada"})")), R"({"hello":"ADA"})");
  EXPECT_EQ(ok_or_error(functions->handle("slug", R"("Hello, World of Ops!")")),
            R"("hello-world-of-ops")");
  EXPECT_EQ(functions->op_names(), (std::vector<std::string>{"add", "greet", "slug"}));
  EXPECT_TRUE(functions->has_op("slug"));
  EXPECT_FALSE(functions->has_op("nope"));
}

TEST(Functions, ImportFunctionSeesOnlyItsFiles) {
  // Two ops with a file of the same name: each imports its own; no host file is visible.
  auto functions = make({
      import_op(
          "one", "main.py", "f",
          {{"main.py", "from .util import V\ndef f(x):\n    return V\n"}, {"util.py", "V = 1\n"}}),
      import_op("two", "pkg/main.py", "f",
                {{"pkg/main.py",
                  "from ..util import V\nimport os\n"
                  "def f(x):\n    return [V, os.path.exists('/etc/passwd'), "
                  "sorted(os.listdir('/'))]\n"},
                 {"util.py", "V = 2\n"}}),
  });
  ASSERT_TRUE(functions);
  EXPECT_EQ(ok_or_error(functions->handle("one", "null")), "1");
  auto two = functions->handle("two", "null");
  ASSERT_TRUE(two) << ok_or_error(two);
  json answer = json::parse(*two);
  EXPECT_EQ(answer[0], 2);
  EXPECT_EQ(answer[1], false);
  for (const auto& entry : answer[2]) EXPECT_NE(entry, "etc") << answer.dump();
}

TEST(Functions, DataFilesReadWithPkgutil) {
  auto functions = make({import_op(
      "words", "main.py", "f",
      {{"main.py",
        "import pkgutil, json\nWORDS = json.loads(pkgutil.get_data(__name__.rpartition('.')[0], "
        "'data/words.json'))\ndef f(x):\n    return WORDS[x]\n"},
       {"data/words.json", R"({"a": "apple"})"}})});
  ASSERT_TRUE(functions);
  EXPECT_EQ(ok_or_error(functions->handle("words", R"("a")")), R"("apple")");
}

TEST(Functions, InitErrorsNameTheOp) {
  FunctionsOptions pinned;
  pinned.metatype_version = "0.5.0";
  FunctionError version = init_error({lambda_op("a", "lambda x: x")}, pinned, "0.4.9");
  EXPECT_EQ(version.kind, FunctionErrorKind::kVersionMismatch);
  EXPECT_NE(version.message.find("0.4.9"), std::string::npos) << version.message;
  EXPECT_NE(version.message.find("0.5.0"), std::string::npos) << version.message;

  FunctionError unknown = init_error(
      {lambda_op("fine", "lambda x: x"), op("weird", {{"ty", "wasm"}, {"source", "x"}})});
  EXPECT_EQ(unknown.kind, FunctionErrorKind::kUnexpectedMat);
  EXPECT_EQ(unknown.op_name, "weird");
  EXPECT_NE(unknown.message.find("'wasm'"), std::string::npos) << unknown.message;

  FunctionError syntax = init_error(
      {import_op("broken", "main.py", "f", {{"main.py", "def f(x):\n    return (\n\n"}})});
  EXPECT_EQ(syntax.kind, FunctionErrorKind::kOther);
  EXPECT_EQ(syntax.op_name, "broken");
  EXPECT_EQ(syntax.type, "SyntaxError");
  EXPECT_NE(syntax.message.find("main.py"), std::string::npos) << syntax.message;
  EXPECT_NE(syntax.message.find("line 2"), std::string::npos) << syntax.message;

  FunctionError def_syntax = init_error({def_op("d", "f", "def f(x)\n    return x\n")});
  EXPECT_EQ(def_syntax.kind, FunctionErrorKind::kOther);
  EXPECT_NE(def_syntax.message.find("line 1"), std::string::npos) << def_syntax.message;

  FunctionError missing = init_error({def_op("m", "handler", "def other(x):\n    return x\n")});
  EXPECT_EQ(missing.kind, FunctionErrorKind::kOther);
  EXPECT_NE(missing.message.find("'handler'"), std::string::npos) << missing.message;

  FunctionError twice =
      init_error({lambda_op("dup", "lambda x: 1"), lambda_op("dup", "lambda x: 2")});
  EXPECT_EQ(twice.kind, FunctionErrorKind::kOther);
  EXPECT_NE(twice.message.find("twice"), std::string::npos) << twice.message;

  FunctionError escape = init_error(
      {import_op("esc", "../main.py", "f", {{"../main.py", "def f(x):\n    return 1\n"}})});
  EXPECT_EQ(escape.kind, FunctionErrorKind::kOther);
  EXPECT_NE(escape.message.find("outside"), std::string::npos) << escape.message;

  FunctionError raises = init_error(
      {import_op("boom", "main.py", "f",
                 {{"main.py", "raise RuntimeError('no config')\ndef f(x):\n    pass\n"}})});
  EXPECT_EQ(raises.kind, FunctionErrorKind::kOther);
  EXPECT_EQ(raises.type, "RuntimeError");
  EXPECT_NE(raises.traceback.find("no config"), std::string::npos) << raises.traceback;

  FunctionError not_json = init_error({[] {
    OpInfo info;
    info.op_name = "nj";
    info.mat_data_json = "{not json";
    return info;
  }()});
  EXPECT_EQ(not_json.kind, FunctionErrorKind::kOther);
  EXPECT_NE(not_json.message.find("not JSON"), std::string::npos) << not_json.message;

  FunctionError no_args = init_error({lambda_op("z", "lambda: 1")});
  EXPECT_EQ(no_args.kind, FunctionErrorKind::kOther);
  EXPECT_NE(no_args.message.find("takes no argument"), std::string::npos) << no_args.message;
}

TEST(Functions, HandleErrorKinds) {
  auto functions = make({
      def_op("fails", "f",
             "def f(inp):\n    helper(inp)\n\ndef helper(inp):\n"
             "    raise ValueError('bad input: %s' % inp)\n"),
      lambda_op("a_set", "lambda x: {1, 2}"),
      lambda_op("nan", "lambda x: float('nan')"),
      lambda_op("echo", "lambda x: x"),
  });
  ASSERT_TRUE(functions);
  auto missing = functions->handle("nope", "1");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, FunctionErrorKind::kNoHandler);
  EXPECT_NE(missing.error().message.find("echo"), std::string::npos) << missing.error().message;

  auto bad_json = functions->handle("echo", "{\"a\": ");
  ASSERT_FALSE(bad_json);
  EXPECT_EQ(bad_json.error().kind, FunctionErrorKind::kInJsonErr);
  EXPECT_NE(bad_json.error().message.find("Expecting value"), std::string::npos)
      << bad_json.error().message;

  auto raised = functions->handle("fails", "7");
  ASSERT_FALSE(raised);
  EXPECT_EQ(raised.error().kind, FunctionErrorKind::kHandlerErr);
  EXPECT_EQ(raised.error().message, "bad input: 7");
  EXPECT_EQ(raised.error().type, "ValueError");
  EXPECT_NE(raised.error().traceback.find("in helper"), std::string::npos)
      << raised.error().traceback;
  EXPECT_NE(raised.error().traceback.find("raise ValueError"), std::string::npos)
      << raised.error().traceback;  // the op's source line, although no file holds it
  EXPECT_EQ(raised.error().traceback.find("functions.py"), std::string::npos)
      << "the runtime's own frames are left out:\n"
      << raised.error().traceback;

  auto a_set = functions->handle("a_set", "null");
  ASSERT_FALSE(a_set);
  EXPECT_EQ(a_set.error().kind, FunctionErrorKind::kHandlerErr);
  EXPECT_EQ(a_set.error().type, "TypeError");
  EXPECT_NE(a_set.error().message.find("not JSON serializable"), std::string::npos);

  auto nan = functions->handle("nan", "null");
  ASSERT_FALSE(nan);
  EXPECT_EQ(nan.error().kind, FunctionErrorKind::kHandlerErr);
  EXPECT_EQ(nan.error().type, "ValueError");

  EXPECT_EQ(ok_or_error(functions->handle("echo", R"({"k": [1, 2.5, null, true, "é"]})")),
            R"({"k":[1,2.5,null,true,"\u00e9"]})");
  EXPECT_EQ(functions->stats().calls, 6u);
  EXPECT_EQ(functions->stats().errors, 5u);
}

TEST(Functions, LimitsEndInTypedErrorsAndTheNextCallWorks) {
  OpInfo loop = def_op("loop", "f", "def f(x):\n    while True:\n        pass\n");
  loop.limits.timeout = std::chrono::milliseconds(300);
  OpInfo memory = def_op("memory", "f",
                         "def f(x):\n    blocks = []\n    while True:\n"
                         "        blocks.append(bytearray(1 << 20))\n");
  memory.limits.max_memory = 64ull << 20;
  OpInfo output = def_op("output", "f", "def f(x):\n    while True:\n        print('x' * 1000)\n");
  output.limits.max_output = 64 << 10;
  OpInfo recursion = def_op("recursion", "f", "def f(x):\n    return f(x) + 1\n");
  auto functions = make({loop, memory, output, recursion, lambda_op("ok", "lambda x: x * 2")});
  ASSERT_TRUE(functions);

  auto timed_out = functions->handle("loop", "null");
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().kind, FunctionErrorKind::kHandlerErr);
  EXPECT_EQ(timed_out.error().cause, ErrorKind::kTimeout);
  EXPECT_EQ(timed_out.error().type, "terrarium.Timeout");
  EXPECT_NE(timed_out.error().message.find("300 ms"), std::string::npos)
      << timed_out.error().message;
  EXPECT_EQ(ok_or_error(functions->handle("ok", "21")), "42");

  auto exhausted = functions->handle("memory", "null");
  ASSERT_FALSE(exhausted);
  EXPECT_EQ(exhausted.error().kind, FunctionErrorKind::kHandlerErr);
  EXPECT_TRUE(exhausted.error().type == "MemoryError" ||
              exhausted.error().cause == ErrorKind::kLimit)
      << exhausted.error().type << ": " << exhausted.error().message;
  EXPECT_EQ(ok_or_error(functions->handle("ok", "1")), "2");

  auto flooded = functions->handle("output", "null");
  ASSERT_FALSE(flooded);
  EXPECT_EQ(flooded.error().cause, ErrorKind::kLimit);
  EXPECT_NE(flooded.error().message.find("output"), std::string::npos) << flooded.error().message;
  EXPECT_EQ(ok_or_error(functions->handle("ok", "2")), "4");

  auto deep = functions->handle("recursion", "null");
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error().kind, FunctionErrorKind::kHandlerErr);
  EXPECT_TRUE(deep.error().type == "RecursionError" || deep.error().cause == ErrorKind::kTrap)
      << deep.error().type << ": " << deep.error().message;
  EXPECT_EQ(ok_or_error(functions->handle("ok", "3")), "6");
}

TEST(Functions, NothingOneCallDoesReachesTheNext) {
  OpInfo warm = def_op("warm", "f",
                       "COUNT = 0\ndef f(x):\n    global COUNT\n    COUNT += 1\n"
                       "    return COUNT\n");
  warm.isolation = Isolation::kWarm;
  auto functions = make({
      def_op("counter", "f",
             "COUNT = 0\nCACHE = []\ndef f(x):\n    global COUNT\n    COUNT += 1\n"
             "    CACHE.append(x)\n    import json\n    json.dumps = None\n"
             "    return [COUNT, len(CACHE)]\n"),
      lambda_op("uses_json", "lambda x: __import__('json').dumps(x)"),
      warm,
  });
  ASSERT_TRUE(functions);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(ok_or_error(functions->handle("counter", std::to_string(i))), "[1,1]");
    EXPECT_EQ(ok_or_error(functions->handle("uses_json", "[1]")), R"("[1]")");
  }
  // A warm op keeps its state (one caller here, so one sandbox).
  EXPECT_EQ(ok_or_error(functions->handle("warm", "0")), "1");
  EXPECT_EQ(ok_or_error(functions->handle("warm", "0")), "2");
  EXPECT_EQ(ok_or_error(functions->handle("warm", "0")), "3");
}

TEST(Functions, HostcallsAndGql) {
  std::vector<std::string> seen;
  terrarium::Hostcall hostcall = [&](std::string_view name,
                                     std::string_view value) -> terrarium::Result<std::string> {
    seen.push_back(std::string(name) + " " + std::string(value));
    if (name == "gql") {
      json request = json::parse(value);
      return json(
                 {{"me", {{"id", 7}, {"query", request["query"]}, {"vars", request["variables"]}}}})
          .dump();
    }
    if (name == "fail") return terrarium::Error(ErrorKind::kHostError, "database is down");
    if (name == "garbage") return std::string("not json {");
    return std::string(value);
  };
  auto functions = make({
      def_op("with_gql", "f",
             "def f(inp, gql):\n    me = gql('query { me { id } }', {'x': inp})['me']\n"
             "    return [me['id'], me['query'], me['vars'], gql.hostcall('echo', [1, 'two'])]\n"),
      def_op(
          "fails", "f",
          "from terrarium.functions import hostcall, HostcallError\n"
          "def f(inp):\n    try:\n        hostcall('fail', inp)\n    except HostcallError as e:\n"
          "        return [e.op_name, e.message, str(e)]\n"),
      def_op("uncaught", "f",
             "from terrarium.functions import hostcall\ndef f(inp):\n    return hostcall('fail', "
             "1)\n"),
      def_op("garbage", "f",
             "from terrarium.functions import hostcall\ndef f(inp):\n    return "
             "hostcall('garbage')\n"),
  });
  ASSERT_TRUE(functions);
  auto answer = functions->handle("with_gql", "5", hostcall);
  ASSERT_TRUE(answer) << ok_or_error(answer);
  EXPECT_EQ(json::parse(*answer),
            json::parse(R"([7, "query { me { id } }", {"x": 5}, [1, "two"]])"));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(json::parse(seen[0].substr(4)),
            json::parse(R"({"query": "query { me { id } }", "variables": {"x": 5}})"));
  EXPECT_EQ(seen[1], R"(echo [1,"two"])");

  EXPECT_EQ(
      json::parse(ok_or_error(functions->handle("fails", "1", hostcall))),
      json::parse(R"(["fail", "database is down", "hostcall 'fail' failed: database is down"])"));
  auto uncaught = functions->handle("uncaught", "1", hostcall);
  ASSERT_FALSE(uncaught);
  EXPECT_EQ(uncaught.error().kind, FunctionErrorKind::kHandlerErr);
  EXPECT_EQ(uncaught.error().type, "terrarium.functions.HostcallError");
  EXPECT_NE(uncaught.error().message.find("'fail'"), std::string::npos) << uncaught.error().message;

  auto garbage = functions->handle("garbage", "1", hostcall);
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find("not JSON"), std::string::npos) << garbage.error().message;

  // No handler anywhere: the hostcall fails and says so.
  auto nobody = functions->handle("uncaught", "1");
  ASSERT_FALSE(nobody);
  EXPECT_NE(nobody.error().message.find("no hostcall handler"), std::string::npos)
      << nobody.error().message;
}

TEST(Functions, ConcurrentCallsOnManyThreads) {
  auto functions = make({def_op("square", "f",
                                "STATE = []\ndef f(x):\n    STATE.append(x)\n"
                                "    return [x * x, len(STATE)]\n")});
  ASSERT_TRUE(functions);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        int x = t * 100 + i;
        auto answer = functions->handle("square", std::to_string(x));
        if (!answer || *answer != "[" + std::to_string(x * x) + ",1]") ++wrong;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(Functions, ReinitReplacesTheOps) {
  auto functions = make({lambda_op("v", "lambda x: 1")});
  ASSERT_TRUE(functions);
  EXPECT_EQ(ok_or_error(functions->handle("v", "0")), "1");
  ASSERT_TRUE(
      functions->init("0.5.0", {lambda_op("v", "lambda x: 2"), lambda_op("w", "lambda x: 3")}));
  EXPECT_EQ(ok_or_error(functions->handle("v", "0")), "2");
  EXPECT_EQ(ok_or_error(functions->handle("w", "0")), "3");
  // A failed init keeps the ops that work.
  EXPECT_FALSE(functions->init("0.5.0", {op("bad", {{"ty", "nope"}})}));
  EXPECT_EQ(ok_or_error(functions->handle("w", "0")), "3");
}

TEST(Functions, OutputOfACallIsDeliveredWithItsOp) {
  std::vector<std::pair<std::string, std::string>> printed;
  std::mutex mutex;
  FunctionsOptions options;
  options.output = [&](std::string_view name, std::string_view text) {
    std::lock_guard lock(mutex);
    printed.emplace_back(std::string(name), std::string(text));
  };
  auto functions = make({def_op("talk", "f",
                                "import sys\ndef f(x):\n    print('hello', x)\n"
                                "    print('oops', file=sys.stderr)\n    return 0\n")},
                        options);
  ASSERT_TRUE(functions);
  ASSERT_EQ(ok_or_error(functions->handle("talk", "1")), "0");
  ASSERT_EQ(printed.size(), 1u);
  EXPECT_EQ(printed[0].first, "talk");
  EXPECT_NE(printed[0].second.find("hello 1\n"), std::string::npos) << printed[0].second;
  EXPECT_NE(printed[0].second.find("oops\n"), std::string::npos) << printed[0].second;
}

}  // namespace
