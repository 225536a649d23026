// See toml_text.h.
#include "sandbox/toml_text.h"

#include <string>

namespace terrarium {

bool tomlpp_whitespace_check_is_undefined(char32_t c) {
  if (c < 0xA1 || c > 0xFEFE || c == 0x3000) return false;
  const unsigned long long child = (static_cast<unsigned long long>(c) - 0xA0ull) / 0x3FAull;
  if ((1ull << child) & 0x7FFFFFFFFFFFF75Eull) return false;
  if (child == 0x05) return !(c == 0x1680 || c == 0x180E);
  if (child == 0x07) {
    return !((0x2000 <= c && c <= 0x200B) || (0x205F <= c && c <= 0x2060) || c == 0x202F);
  }
  return true;
}

namespace {

// The code point at text[at] (UTF-8) and its length; invalid bytes are
// toml++'s own error, read here as one byte.
char32_t decode(std::string_view text, size_t at, size_t* length) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char c = byte(at);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (n == 1 || at + n > text.size()) {
    *length = 1;
    return c;
  }
  char32_t code = c & (0xFF >> (n + 1));
  for (size_t k = 1; k < n; ++k) code = (code << 6) | (byte(at + k) & 0x3F);
  *length = n;
  return code;
}

enum class State { kPlain, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };

}  // namespace

std::optional<TomlTextProblem> find_toml_text_problem(std::string_view text) {
  State state = State::kPlain;
  uint32_t line = 1;
  size_t line_start = 0;
  auto problem = [&](size_t at, std::string message) {
    return TomlTextProblem{line, static_cast<uint32_t>(at - line_start + 1), std::move(message)};
  };
  auto starts = [&](size_t at, std::string_view what) {
    return text.substr(at, what.size()) == what;
  };
  // Brackets of values ('[' of arrays, '{' of inline tables), innermost
  // last; whether this line's key has had its '='; whether an array waits
  // for its next value (after '[' or ','), where toml++ 3.3.0 assumes no
  // '}' can come (TOML_ASSERT_ASSUME in parse_value: undefined behaviour).
  std::string open_values;
  bool after_equals = false;
  bool array_wants_value = false;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    // TOML allows no control character but tab and line breaks anywhere,
    // not even in strings and comments; toml++ 3.3.0 reads past some of
    // them into text this check would see differently.
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
        c == 0x7F) {
      return problem(i, "a control character (byte " +
                            std::to_string(static_cast<unsigned char>(c)) +
                            "), which TOML does not allow");
    }
    if (c == '\n') {
      if (open_values.empty()) after_equals = false;
      if (state == State::kComment || state == State::kBasic || state == State::kLiteral) {
        state = State::kPlain;  // an unclosed one-line string is toml++'s error
      }
      ++line;
      line_start = ++i;
      continue;
    }
    switch (state) {
      case State::kPlain:
        if (array_wants_value && c != ' ' && c != '\t' && c != '\r' && c != '#') {
          array_wants_value = false;
          if (c == '}') {
            return problem(i, "'}' where an array expects a value or ']'");
          }
        }
        if (c == '=' && open_values.empty()) {
          after_equals = true;
        } else if ((c == '[' || c == '{') && (after_equals || !open_values.empty())) {
          open_values.push_back(c);
          array_wants_value = c == '[';
        } else if ((c == ']' || c == '}') && !open_values.empty()) {
          open_values.pop_back();
        } else if (c == ',' && !open_values.empty() && open_values.back() == '[') {
          array_wants_value = true;
        }
        if (c == '#') {
          state = State::kComment;
        } else if (starts(i, "\"\"\"")) {
          state = State::kMultiBasic;
          i += 2;
        } else if (starts(i, "'''")) {
          state = State::kMultiLiteral;
          i += 2;
        } else if (c == '"') {
          state = State::kBasic;
        } else if (c == '\'') {
          state = State::kLiteral;
        } else if (static_cast<unsigned char>(c) >= 0x80) {
          return problem(i,
                         "a non-ASCII character outside a string (TOML's bare keys are "
                         "A-Z a-z 0-9 _ -: quote the key, as \"caf\xC3\xA9\" = 1)");
        }
        break;
      case State::kComment:
        break;
      case State::kBasic:
        if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
          ++i;  // the escaped character
        } else if (c == '"') {
          state = State::kPlain;
        }
        break;
      case State::kLiteral:
        if (c == '\'') state = State::kPlain;
        break;
      case State::kMultiBasic:
        if (c == '\\') {
          // A line-ending backslash: toml++ skips the whitespace and line
          // breaks after it, testing the first other character.
          size_t next = i + 1;
          while (next < text.size() && (text[next] == ' ' || text[next] == '\t')) ++next;
          if (next < text.size() && (text[next] == '\n' || text[next] == '\r')) {
            uint32_t lines = 0;
            size_t last_start = line_start;
            while (next < text.size() && (text[next] == ' ' || text[next] == '\t' ||
                                          text[next] == '\n' || text[next] == '\r')) {
              if (text[next] == '\n') {
                ++lines;
                last_start = next + 1;
              }
              ++next;
            }
            line += lines;
            line_start = last_start;
            if (next < text.size()) {
              size_t length = 0;
              char32_t code = decode(text, next, &length);
              if (tomlpp_whitespace_check_is_undefined(code)) {
                return problem(next,
                               "a non-ASCII character right after a line-ending backslash, "
                               "which this build's TOML reader (toml++ 3.3.0) cannot read: "
                               "write it as a \\u escape, or end the line without '\\'");
              }
            }
            i = next;
            continue;
          }
          ++i;  // an escape: skip the escaped character
        } else if (starts(i, "\"\"\"")) {
          i += 2;
          while (i + 1 < text.size() && text[i + 1] == '"') ++i;  // up to two quotes of content
          state = State::kPlain;
        }
        break;
      case State::kMultiLiteral:
        if (starts(i, "'''")) {
          i += 2;
          while (i + 1 < text.size() && text[i + 1] == '\'') ++i;
          state = State::kPlain;
        }
        break;
    }
    ++i;
  }
  return std::nullopt;
}

}  // namespace terrarium
