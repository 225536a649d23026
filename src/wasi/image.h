// A read-only file tree held in memory: the standard library image embedded in
// the binary, and small synthetic trees (the script given to `terrarium run`).
//
// On-disk/embedded format, built by tools/pack_image.cc (see docs there):
// a header, a node table (directories and files, parent-before-child), a name
// blob, then each file's contents compressed with zstd on its own, so opening
// one file decompresses only that file. Version 1, little-endian:
//   header (32 bytes): "TRRMIMG\n", u32 version, u32 node_count,
//                      u64 names_offset, u64 names_size
//   node (48 bytes, table at 32): u32 parent, u32 flags (1 dir, 2 zstd),
//                      u32 name_offset, u32 name_length, u64 size,
//                      u64 mtime_ns, u64 data_offset, u64 data_length
// Builders: src/wasi/image_pack.h (pack_image, collect_directory).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace terrarium::wasi {

class Image {
 public:
  using NodeIndex = uint32_t;
  static constexpr NodeIndex kRoot = 0;

  struct Node {
    std::string name;          // empty for the root
    bool is_directory = false;
    uint64_t size = 0;         // uncompressed file size; 0 for directories
    uint64_t mtime_ns = 0;     // modification time reported by filestat
    NodeIndex parent = kRoot;  // the root's parent is itself
    std::vector<NodeIndex> children;  // directories only, sorted by name
    // Where the file's bytes live: either compressed in the backing blob or
    // held directly (trees built in memory).
    uint64_t data_offset = 0;
    uint64_t data_length = 0;
    bool compressed = false;
    std::string inline_data;
  };

  // Parses a packed image. `blob` must outlive the Image (it is typically the
  // section embedded in the binary). Returns nullopt and sets `error` on a
  // malformed image.
  static std::optional<Image> parse(std::string_view blob, std::string* error);

  // A tree built in memory: each entry is a relative path ("a/b.py") and its
  // contents; intermediate directories are created.
  static Image from_files(const std::vector<std::pair<std::string, std::string>>& files);

  const Node& node(NodeIndex index) const { return nodes_[index]; }
  size_t node_count() const { return nodes_.size(); }

  // Resolves `path` (relative, '/'-separated; '.' and '..' allowed) starting at
  // directory `from`. '..' above the root stays at the root's parent, which is
  // an escape: nullopt is returned with `escaped` set. Missing: nullopt.
  std::optional<NodeIndex> resolve(NodeIndex from, std::string_view path, bool* escaped = nullptr) const;

  // Child of a directory by name, or nullopt.
  std::optional<NodeIndex> child(NodeIndex directory, std::string_view name) const;

  // The whole contents of a file (decompressed). Throws std::runtime_error on
  // a corrupt entry.
  std::string read(NodeIndex file) const;

 private:
  std::vector<Node> nodes_;
  std::string_view blob_;
};

// The standard-library image linked into this binary (empty Image when the
// binary was built without one).
const Image& embedded_stdlib_image();

}  // namespace terrarium::wasi
