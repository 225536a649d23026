// Building packed images (the format parsed by Image::parse, documented in
// image.cc). Used by tools/pack_image.cc and by tests.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace terrarium::wasi {

struct PackEntry {
  std::string path;  // relative, '/'-separated, no '.' or '..' components
  bool is_directory = false;
  std::string contents;  // files only
  uint64_t mtime_ns = 0;
};

struct PackStats {
  uint64_t files = 0;
  uint64_t directories = 0;
  uint64_t bytes_in = 0;   // file contents, uncompressed
  uint64_t bytes_out = 0;  // size of the packed image
};

// Packs `entries` (intermediate directories are created as needed; their
// mtime is 0 unless listed). Throws std::runtime_error on a bad path.
std::string pack_image(const std::vector<PackEntry>& entries, int zstd_level = 6,
                       PackStats* stats = nullptr);

// Every regular file and directory under `directory`, relative to it. Paths
// (relative) or base names matching one of `exclude_globs` (fnmatch) are left
// out, with everything below them. Symlinks and special files are skipped and
// reported through `warn`. Throws std::runtime_error on an unreadable tree.
std::vector<PackEntry> collect_directory(const std::string& directory,
                                         const std::vector<std::string>& exclude_globs,
                                         const std::function<void(std::string_view)>& warn);

}  // namespace terrarium::wasi
