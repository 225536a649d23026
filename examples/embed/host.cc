// Embedding Terrarium in C++: two host functions (one JSON, one bytes), a
// Python plugin that uses them, a call, and an error with its traceback.
//
//   build/examples/embed-cpp [examples/embed/plugin.py]
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>

#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"

#ifndef EXAMPLE_PLUGIN
#define EXAMPLE_PLUGIN "examples/embed/plugin.py"
#endif

int main(int argc, char** argv) {
  const char* plugin = argc > 1 ? argv[1] : EXAMPLE_PLUGIN;
  auto runtime = terrarium::Runtime::create();
  if (!runtime) return std::fprintf(stderr, "%s\n", runtime.error().to_string().c_str()), 1;
  auto sandbox = (*runtime)->new_sandbox({});
  if (!sandbox) return std::fprintf(stderr, "%s\n", sandbox.error().to_string().c_str()), 1;
  terrarium::Sandbox& box = **sandbox;

  // JSON: ["apple", ...] -> {"apple": 0.5, ...}
  const std::map<std::string, double> price_list = {{"apple", 0.5}, {"bread", 2.25}, {"tea", 4.0}};
  (void)box.define_json("prices", [&price_list](const nlohmann::json& names) {
    nlohmann::json prices = nlohmann::json::object();
    for (const auto& name : names) {
      auto found = price_list.find(name.get<std::string>());
      if (found == price_list.end()) throw std::runtime_error("no price for " + name.dump());
      prices[name.get<std::string>()] = found->second;
    }
    return prices;
  });
  // Bytes: receipt -> 8-byte FNV-1a signature.
  (void)box.define("sign", [](const std::string& receipt) {
    uint64_t hash = 1469598103934665603ULL;
    for (unsigned char c : receipt) hash = (hash ^ c) * 1099511628211ULL;
    std::string signature(8, '\0');
    for (int i = 0; i < 8; ++i) signature[i] = static_cast<char>(hash >> (56 - 8 * i));
    return signature;
  });

  if (auto loaded = box.exec_file(plugin); !loaded) {
    std::fprintf(stderr, "%s\n%s", loaded.error().to_string().c_str(),
                 loaded.error().details().c_str());
    return 1;
  }
  nlohmann::json order = {{"customer", "ada"}, {"items", {{"apple", 4}, {"tea", 1}}}};
  auto quote = box.call_json("quote", order);
  if (!quote) return std::fprintf(stderr, "%s\n", quote.error().to_string().c_str()), 1;
  std::printf("quote: %s\n", quote->dump().c_str());

  auto failed = box.call_json("fail", nullptr);
  if (failed) return 1;
  std::printf("fail: %s (Python type %s)\n", failed.error().to_string().c_str(),
              failed.error().python_type().c_str());
  return 0;
}
