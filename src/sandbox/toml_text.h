// A check of TOML text before toml++ reads it (modules.toml, ops.toml).
// Debian's toml++ 3.3.0 reaches __builtin_unreachable (undefined behaviour)
// when it asks whether some non-ASCII characters are whitespace: U+00A1..
// U+0499 ("é", "ü", "§") and other ranges, after a key or a table name, or
// after a line-ending backslash in a multi-line string (marzer/tomlplusplus
// #190 / #295, fixed upstream by #305). Outside strings and comments TOML
// allows no non-ASCII character at all, so refusing them there loses
// nothing; after a line-ending backslash the few affected characters are
// refused with the way around it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace terrarium {

struct TomlTextProblem {
  uint32_t line = 0, column = 0;  // 1-based; column in bytes
  std::string message;
};

// The first problem of `text`, if any; toml++ reports everything else.
std::optional<TomlTextProblem> find_toml_text_problem(std::string_view text);

// Whether toml++ 3.3.0's whitespace test is undefined for `c` (its
// generated table, mirrored).
bool tomlpp_whitespace_check_is_undefined(char32_t c);

}  // namespace terrarium
