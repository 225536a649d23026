// The function runtime through the C API (include/terrarium.h).
#include <gtest/gtest.h>

#include <string>

#include "terrarium.h"

namespace {

struct Calls {
  int count = 0;
};

int answer_hostcall(void* user_data, const char* op_name, const uint8_t* json, size_t json_len,
                    terrarium_host_result* result) {
  static_cast<Calls*>(user_data)->count++;
  std::string name(op_name);
  std::string value(reinterpret_cast<const char*>(json), json_len);
  if (name == "triple") {
    std::string answer = std::to_string(3 * std::stoi(value));
    terrarium_host_result_set(result, answer.data(), answer.size());
    return 0;
  }
  terrarium_host_result_error(result, ("unknown host op " + name).c_str());
  return 0;
}

std::string take(uint8_t* out, size_t length) {
  std::string text(reinterpret_cast<char*>(out), length);
  terrarium_free(out);
  return text;
}

TEST(FunctionsCApi, InitHandleHostcallAndErrorKinds) {
  terrarium_runtime* runtime = nullptr;
  ASSERT_EQ(terrarium_runtime_new(&runtime), TERRARIUM_OK);
  const char* ops = R"([
    {"op_name": "add", "mat_data_json": "{\"ty\": \"lambda\", \"source\": \"lambda x: x['a'] + x['b']\"}"},
    {"op_name": "host", "mat_data_json": {"ty": "def", "func_name": "f",
      "source": "from terrarium.functions import hostcall\ndef f(x):\n    return hostcall('triple', x)\n"}},
    {"op_name": "other", "mat_data_json": {"ty": "def", "func_name": "f",
      "source": "from terrarium.functions import hostcall\ndef f(x):\n    return hostcall('nope', x)\n"}}
  ])";
  Calls calls;
  terrarium_functions* functions = nullptr;
  ASSERT_EQ(terrarium_functions_new(runtime, "0.5.0", ops, answer_hostcall, &calls, &functions),
            TERRARIUM_OK)
      << terrarium_last_error();

  uint8_t* out = nullptr;
  size_t length = 0;
  std::string input = R"({"a": 2, "b": 5})";
  ASSERT_EQ(terrarium_functions_handle(functions, "add", input.data(), input.size(), &out, &length),
            TERRARIUM_OK);
  EXPECT_EQ(take(out, length), "7");
  ASSERT_EQ(terrarium_functions_handle(functions, "host", "14", 2, &out, &length), TERRARIUM_OK)
      << terrarium_last_error();
  EXPECT_EQ(take(out, length), "42");
  EXPECT_EQ(calls.count, 1);

  EXPECT_EQ(terrarium_functions_handle(functions, "missing", "1", 1, &out, &length),
            TERRARIUM_ERROR_NOT_FOUND);
  EXPECT_STREQ(terrarium_last_error_kind(), "no-handler");
  EXPECT_EQ(terrarium_functions_handle(functions, "add", "{", 1, &out, &length),
            TERRARIUM_ERROR_ARGUMENT);
  EXPECT_STREQ(terrarium_last_error_kind(), "in-json-err");
  EXPECT_EQ(terrarium_functions_handle(functions, "other", "1", 1, &out, &length),
            TERRARIUM_ERROR_GUEST);
  EXPECT_STREQ(terrarium_last_error_kind(), "handler-err");
  EXPECT_NE(std::string(terrarium_last_error()).find("unknown host op nope"), std::string::npos)
      << terrarium_last_error();
  EXPECT_NE(std::string(terrarium_last_error_details()).find("Traceback"), std::string::npos);

  terrarium_functions* bad = nullptr;
  EXPECT_EQ(terrarium_functions_new(runtime, "",
                                    R"([{"op_name": "x", "mat_data_json": "{\"ty\": \"go\"}"}])",
                                    nullptr, nullptr, &bad),
            TERRARIUM_ERROR_GUEST);
  EXPECT_STREQ(terrarium_last_error_kind(), "unexpected-mat");
  EXPECT_EQ(bad, nullptr);
  EXPECT_EQ(terrarium_functions_new(runtime, "", "{}", nullptr, nullptr, &bad),
            TERRARIUM_ERROR_ARGUMENT);
  EXPECT_NE(std::string(terrarium_last_error()).find("ops_json: "), std::string::npos);
  EXPECT_EQ(terrarium_functions_new(runtime, "", R"([{"op_name": "a"}, {"mat_data_json": "{}"}])",
                                    nullptr, nullptr, &bad),
            TERRARIUM_ERROR_ARGUMENT);
  EXPECT_NE(std::string(terrarium_last_error()).find("expected_ops[1] has no string op_name"),
            std::string::npos)
      << terrarium_last_error();
  EXPECT_EQ(terrarium_functions_handle(nullptr, "add", "1", 1, &out, &length),
            TERRARIUM_ERROR_ARGUMENT);

  terrarium_functions_free(functions);
  terrarium_runtime_free(runtime);
}

}  // namespace
