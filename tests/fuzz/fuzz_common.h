// Helpers shared by the fuzz targets: invariant checks that abort with a
// message (libFuzzer then saves the input), and a scratch directory.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

// An invariant of the code under test: on violation print what broke and
// abort, which libFuzzer reports as a crash with the input saved.
#define FUZZ_CHECK(condition, what)                                                      \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "\nFUZZ_CHECK failed at %s:%d: %s\n  %s\n", __FILE__, __LINE__, \
                   #condition, std::string(what).c_str());                               \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace fuzz {

// The scratch directories of this process, removed when it exits normally
// (kept after a crash, to look at).
inline std::vector<std::filesystem::path>& scratch_dirs() {
  static std::vector<std::filesystem::path> dirs;
  return dirs;
}

// A fresh directory under $TMPDIR (or /tmp), made once per process; the
// fuzz targets only ever write inside it.
inline std::filesystem::path scratch_dir(const char* name) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/terrarium-fuzz-" + name + "-XXXXXX";
  if (!mkdtemp(pattern.data())) {
    std::perror("mkdtemp");
    std::abort();
  }
  if (scratch_dirs().empty()) {
    std::atexit([] {
      for (const auto& dir : scratch_dirs()) {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
      }
    });
  }
  scratch_dirs().emplace_back(pattern);
  return std::filesystem::path(pattern);
}

inline void write_file(const std::filesystem::path& path, std::string_view data) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::abort();
  }
}

inline bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// "FILE:LINE:COLUMN: ..." — how the config loaders' errors must start.
inline bool has_location_prefix(std::string_view message, std::string_view file) {
  if (!starts_with(message, file) || message.size() <= file.size() || message[file.size()] != ':')
    return false;
  size_t i = file.size() + 1;
  for (int part = 0; part < 2; ++part) {
    size_t digits = 0;
    while (i < message.size() && message[i] >= '0' && message[i] <= '9') ++i, ++digits;
    if (digits == 0 || i >= message.size() || message[i] != ':') return false;
    ++i;
  }
  return true;
}

}  // namespace fuzz
