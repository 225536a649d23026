// How deep JSON text nests, checked before parsing input from a peer or a
// guest: nlohmann::json copies and prints recursively, so a value nested
// 100,000 deep would exhaust a thread's stack.
#pragma once

#include <algorithm>
#include <string_view>

namespace terrarium::functions_internal {

constexpr int kMaxJsonDepth = 256;

// How deep arrays and objects nest in `text` (strings skipped).
inline int json_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace terrarium::functions_internal
