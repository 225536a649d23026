// `terrarium functions stdio` (src/functions/json_rpc.cc): the input as the
// lines a peer sends, through serve_json_rpc with the real Functions
// (src/functions/functions.cc: init's parameter and op checks) over a
// runtime that cannot start an interpreter (no_guest_stub.cc).
// Invariants: no crash, no hang, no exception out; every line written back is
// a JSON-RPC 2.0 response (or a batch of them): "jsonrpc": "2.0", an id that
// is null, a string or a number, exactly one of result and error, and an
// error's code one of the protocol's with a string message; no more response
// lines than request lines (plus those refusing a line that was too long).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>

#include "fuzz_common.h"
#include "terrarium/functions.h"
#include "terrarium/runtime.h"

namespace {

using json = nlohmann::json;

const std::set<int> kCodes = {-32700, -32600, -32601, -32602, -32603, -32000};

void check_response(const json& response, const std::string& line) {
  FUZZ_CHECK(response.is_object(), line);
  FUZZ_CHECK(response.value("jsonrpc", json()) == "2.0", line);
  FUZZ_CHECK(!response.contains("method"), "the server asked the peer something: " + line);
  FUZZ_CHECK(response.contains("id"), line);
  const json& id = response["id"];
  FUZZ_CHECK(id.is_null() || id.is_string() || id.is_number(), line);
  FUZZ_CHECK(response.contains("result") != response.contains("error"), line);
  if (response.contains("error")) {
    const json& error = response["error"];
    FUZZ_CHECK(error.is_object() && error.contains("code") && error["code"].is_number_integer(), line);
    FUZZ_CHECK(kCodes.count(error["code"].get<int>()), line);
    FUZZ_CHECK(error.contains("message") && error["message"].is_string(), line);
  }
}

int memfd(const char* name) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::unique_ptr<terrarium::Functions> functions = [] {
    auto runtime = terrarium::Runtime::create();
    terrarium::FunctionsOptions options;
    options.metatype_version = "";  // any: init goes as far as it can
    auto created = terrarium::Functions::create(std::move(*runtime), std::move(options));
    if (!created) std::abort();
    return std::move(*created);
  }();

  int in = memfd("json-rpc-in"), out = memfd("json-rpc-out");
  for (size_t written = 0; written < size;) {
    ssize_t n = write(in, data + written, size - written);
    if (n <= 0) std::abort();
    written += static_cast<size_t>(n);
  }
  lseek(in, 0, SEEK_SET);

  terrarium::JsonRpcOptions options;
  options.workers = 1;
  options.hostcall_timeout = std::chrono::milliseconds(100);
  options.max_line_bytes = 2048;  // the over-long-line path within reach (default 64 MiB)
  options.max_queued = 64;
  auto served = terrarium::serve_json_rpc(*functions, in, out, options);
  FUZZ_CHECK(served.ok(), served.error().to_string());

  std::string output(static_cast<size_t>(lseek(out, 0, SEEK_END)), '\0');
  FUZZ_CHECK(pread(out, output.data(), output.size(), 0) == static_cast<ssize_t>(output.size()), "pread");
  close(in);
  close(out);

  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t input_lines = std::count(input.begin(), input.end(), '\n') + 1;
  size_t output_lines = 0, start = 0;
  FUZZ_CHECK(output.empty() || output.back() == '\n', "a response line is not ended");
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    std::string line = output.substr(start, end - start);
    start = end + 1;
    ++output_lines;
    json message = json::parse(line, nullptr, false);
    FUZZ_CHECK(!message.is_discarded(), "not JSON: " + line);
    if (message.is_array()) {
      FUZZ_CHECK(!message.empty(), "an empty batch response");
      for (const json& entry : message) check_response(entry, line);
    } else {
      check_response(message, line);
    }
  }
  // One more per 64 KiB read (the reader's chunk) for an over-long line.
  FUZZ_CHECK(output_lines <= input_lines + 1 + size / 65536,
             std::to_string(output_lines) + " responses to " + std::to_string(input_lines) + " lines");
  return 0;
}
