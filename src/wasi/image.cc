// Image: a read-only in-memory file tree, and the packed format behind it.
//
// Packed format (all integers little-endian), version 1:
//
//   Header, 32 bytes:
//     0   char[8] magic "TRRMIMG\n"
//     8   u32     version (1)
//     12  u32     node_count (>= 1; node 0 is the root directory)
//     16  u64     names_offset (from the start of the image)
//     24  u64     names_size
//   Node table at offset 32: node_count records of 48 bytes:
//     0   u32 parent       index of the parent directory, < this node's index
//                          (parent before child); the root's parent is 0
//     4   u32 flags        bit 0: directory; bit 1: contents zstd-compressed
//     8   u32 name_offset  into the name blob
//     12  u32 name_length  root: 0; others: 1..255 bytes, no '/', no NUL,
//                          not "." or ".."; unique among siblings
//     16  u64 size         uncompressed size (0 for directories)
//     24  u64 mtime_ns
//     32  u64 data_offset  from the start of the image
//     40  u64 data_length  stored bytes (== size when not compressed;
//                          0 for directories)
//   The name blob, then the file contents: each file is one zstd frame (with
//   its content size recorded) or its raw bytes when compression does not
//   shrink it.
#include "wasi/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>

#include "wasi/image_pack.h"

namespace terrarium::wasi {
namespace {

constexpr char kMagic[8] = {'T', 'R', 'R', 'M', 'I', 'M', 'G', '\n'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 32;
constexpr size_t kNodeSize = 48;
constexpr uint32_t kFlagDirectory = 1;
constexpr uint32_t kFlagCompressed = 2;
constexpr uint32_t kKnownFlags = kFlagDirectory | kFlagCompressed;

template <typename T>
T load_le(std::string_view blob, size_t offset) {
  T value;
  std::memcpy(&value, blob.data() + offset, sizeof(T));
  return value;
}

template <typename T>
void append_le(std::string* out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

template <typename T>
void store_le(std::string* out, size_t offset, T value) {
  std::memcpy(out->data() + offset, &value, sizeof(T));
}

bool range_ok(uint64_t offset, uint64_t length, uint64_t total) {
  return offset <= total && length <= total - offset;
}

bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 255 && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

void sort_children(std::vector<Image::Node>* nodes) {
  for (auto& node : *nodes) {
    std::sort(node.children.begin(), node.children.end(),
              [&](Image::NodeIndex a, Image::NodeIndex b) {
                return (*nodes)[a].name < (*nodes)[b].name;
              });
  }
}

}  // namespace

std::optional<Image> Image::parse(std::string_view blob, std::string* error) {
  auto fail = [&](std::string message) -> std::optional<Image> {
    if (error) *error = "malformed image: " + message;
    return std::nullopt;
  };
  if (blob.size() < kHeaderSize) return fail("shorter than its header");
  if (std::memcmp(blob.data(), kMagic, sizeof kMagic) != 0) return fail("bad magic");
  uint32_t version = load_le<uint32_t>(blob, 8);
  if (version != kVersion) return fail("unsupported version " + std::to_string(version));
  uint32_t node_count = load_le<uint32_t>(blob, 12);
  uint64_t names_offset = load_le<uint64_t>(blob, 16);
  uint64_t names_size = load_le<uint64_t>(blob, 24);
  if (node_count == 0) return fail("no root node");
  if (!range_ok(kHeaderSize, uint64_t{node_count} * kNodeSize, blob.size()))
    return fail("node table (" + std::to_string(node_count) + " nodes) past the end");
  if (!range_ok(names_offset, names_size, blob.size())) return fail("name blob past the end");
  std::string_view names = blob.substr(names_offset, names_size);

  Image image;
  image.blob_ = blob;
  image.nodes_.resize(node_count);
  for (uint32_t i = 0; i < node_count; ++i) {
    size_t at = kHeaderSize + size_t{i} * kNodeSize;
    std::string where = "node " + std::to_string(i) + ": ";
    uint32_t parent = load_le<uint32_t>(blob, at);
    uint32_t flags = load_le<uint32_t>(blob, at + 4);
    uint32_t name_offset = load_le<uint32_t>(blob, at + 8);
    uint32_t name_length = load_le<uint32_t>(blob, at + 12);
    Node& node = image.nodes_[i];
    node.size = load_le<uint64_t>(blob, at + 16);
    node.mtime_ns = load_le<uint64_t>(blob, at + 24);
    node.data_offset = load_le<uint64_t>(blob, at + 32);
    node.data_length = load_le<uint64_t>(blob, at + 40);
    node.is_directory = flags & kFlagDirectory;
    node.compressed = flags & kFlagCompressed;
    if (flags & ~kKnownFlags) return fail(where + "unknown flags");
    if (!range_ok(name_offset, name_length, names.size())) return fail(where + "name out of range");
    node.name = std::string(names.substr(name_offset, name_length));
    if (i == 0) {
      if (parent != 0 || !node.is_directory || !node.name.empty())
        return fail(where + "the root must be an unnamed directory that is its own parent");
    } else {
      if (parent >= i) return fail(where + "parent " + std::to_string(parent) + " not before it");
      if (!image.nodes_[parent].is_directory) return fail(where + "parent is not a directory");
      if (!valid_name(node.name)) return fail(where + "invalid name");
      image.nodes_[parent].children.push_back(i);
    }
    node.parent = parent;
    if (node.is_directory) {
      if (node.size != 0 || node.data_length != 0 || node.compressed)
        return fail(where + "directory with contents");
    } else {
      if (!range_ok(node.data_offset, node.data_length, blob.size()))
        return fail(where + "contents out of range");
      if (node.compressed) {
        unsigned long long content_size =
            ZSTD_getFrameContentSize(blob.data() + node.data_offset, node.data_length);
        if (content_size == ZSTD_CONTENTSIZE_ERROR || content_size == ZSTD_CONTENTSIZE_UNKNOWN)
          return fail(where + "contents are not a zstd frame with a size");
        if (content_size != node.size) return fail(where + "compressed size mismatch");
      } else if (node.data_length != node.size) {
        return fail(where + "stored length differs from size");
      }
    }
  }
  sort_children(&image.nodes_);
  for (const Node& node : image.nodes_) {
    for (size_t k = 1; k < node.children.size(); ++k) {
      if (image.nodes_[node.children[k]].name == image.nodes_[node.children[k - 1]].name)
        return fail("duplicate name \"" + image.nodes_[node.children[k]].name + "\"");
    }
  }
  return image;
}

Image Image::from_files(const std::vector<std::pair<std::string, std::string>>& files) {
  Image image;
  image.nodes_.resize(1);
  image.nodes_[0].is_directory = true;
  for (const auto& [path, contents] : files) {
    NodeIndex at = kRoot;
    size_t start = 0;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      bool last = slash == std::string::npos;
      std::string name = path.substr(start, last ? std::string::npos : slash - start);
      start = last ? path.size() + 1 : slash + 1;
      if (name.empty() || name == ".") continue;
      if (!valid_name(name)) throw std::invalid_argument("bad image path: " + path);
      auto existing = image.child(at, name);
      if (last) {
        if (existing) throw std::invalid_argument("duplicate image path: " + path);
        Node file;
        file.name = name;
        file.parent = at;
        file.size = contents.size();
        file.inline_data = contents;
        image.nodes_.push_back(std::move(file));
        image.nodes_[at].children.push_back(static_cast<NodeIndex>(image.nodes_.size() - 1));
      } else if (existing) {
        if (!image.nodes_[*existing].is_directory)
          throw std::invalid_argument("image path below a file: " + path);
        at = *existing;
      } else {
        Node dir;
        dir.name = name;
        dir.parent = at;
        dir.is_directory = true;
        image.nodes_.push_back(std::move(dir));
        NodeIndex index = static_cast<NodeIndex>(image.nodes_.size() - 1);
        image.nodes_[at].children.push_back(index);
        at = index;
      }
      sort_children(&image.nodes_);
    }
  }
  return image;
}

std::optional<Image::NodeIndex> Image::resolve(NodeIndex from, std::string_view path,
                                               bool* escaped) const {
  if (escaped) *escaped = false;
  if (from >= nodes_.size()) return std::nullopt;
  if (!path.empty() && path[0] == '/') {
    if (escaped) *escaped = true;
    return std::nullopt;
  }
  NodeIndex at = from;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view name = path.substr(start, slash - start);
    start = slash + 1;
    if (name.empty() || name == ".") {
      if (!nodes_[at].is_directory) return std::nullopt;
      continue;
    }
    if (name == "..") {
      if (!nodes_[at].is_directory) return std::nullopt;
      if (at == kRoot) {
        if (escaped) *escaped = true;
        return std::nullopt;
      }
      at = nodes_[at].parent;
      continue;
    }
    auto next = child(at, name);
    if (!next) return std::nullopt;
    at = *next;
  }
  if (!path.empty() && path.back() == '/' && !nodes_[at].is_directory) return std::nullopt;
  return at;
}

std::optional<Image::NodeIndex> Image::child(NodeIndex directory, std::string_view name) const {
  if (directory >= nodes_.size() || !nodes_[directory].is_directory) return std::nullopt;
  const auto& children = nodes_[directory].children;
  auto it = std::lower_bound(children.begin(), children.end(), name,
                             [&](NodeIndex a, std::string_view n) { return nodes_[a].name < n; });
  if (it == children.end() || nodes_[*it].name != name) return std::nullopt;
  return *it;
}

std::string Image::read(NodeIndex file) const {
  if (file >= nodes_.size() || nodes_[file].is_directory)
    throw std::runtime_error("image: not a file");
  const Node& node = nodes_[file];
  if (blob_.data() == nullptr) return node.inline_data;
  if (!range_ok(node.data_offset, node.data_length, blob_.size()))
    throw std::runtime_error("image: contents of \"" + node.name + "\" out of range");
  std::string_view stored = blob_.substr(node.data_offset, node.data_length);
  if (!node.compressed) return std::string(stored);
  std::string out(node.size, '\0');
  size_t n = ZSTD_decompress(out.data(), out.size(), stored.data(), stored.size());
  if (ZSTD_isError(n) || n != node.size)
    throw std::runtime_error("image: corrupt contents of \"" + node.name + "\"");
  return out;
}

// ---------------------------------------------------------------------------
// Packing.

std::string pack_image(const std::vector<PackEntry>& entries, int zstd_level, PackStats* stats) {
  struct Out {
    std::string name;
    uint32_t parent = 0;
    bool is_directory = true;
    const PackEntry* entry = nullptr;
    uint64_t mtime_ns = 0;
  };
  std::vector<Out> nodes(1);
  std::map<std::string, uint32_t> index_of{{"", 0}};
  for (const PackEntry& entry : entries) {
    std::string prefix;
    uint32_t parent = 0;
    size_t start = 0;
    while (true) {
      size_t slash = entry.path.find('/', start);
      bool last = slash == std::string::npos;
      std::string name = entry.path.substr(start, last ? std::string::npos : slash - start);
      if (!valid_name(name)) throw std::runtime_error("bad path in image: \"" + entry.path + "\"");
      std::string path = prefix.empty() ? name : prefix + "/" + name;
      auto it = index_of.find(path);
      if (last) {
        if (it != index_of.end()) {
          if (!entry.is_directory || !nodes[it->second].is_directory ||
              nodes[it->second].entry != nullptr)
            throw std::runtime_error("duplicate path in image: \"" + entry.path + "\"");
          nodes[it->second].entry = &entry;
          nodes[it->second].mtime_ns = entry.mtime_ns;
        } else {
          Out out{name, parent, entry.is_directory, &entry, entry.mtime_ns};
          nodes.push_back(out);
          index_of[path] = static_cast<uint32_t>(nodes.size() - 1);
        }
        break;
      }
      if (it == index_of.end()) {
        nodes.push_back(Out{name, parent, true, nullptr, 0});
        it = index_of.emplace(path, static_cast<uint32_t>(nodes.size() - 1)).first;
      } else if (!nodes[it->second].is_directory) {
        throw std::runtime_error("path below a file in image: \"" + entry.path + "\"");
      }
      parent = it->second;
      prefix = path;
      start = slash + 1;
    }
  }

  std::string names;
  for (const Out& node : nodes) names += node.name;
  uint64_t names_offset = kHeaderSize + nodes.size() * kNodeSize;

  std::string image;
  image.append(kMagic, sizeof kMagic);
  append_le<uint32_t>(&image, kVersion);
  append_le<uint32_t>(&image, static_cast<uint32_t>(nodes.size()));
  append_le<uint64_t>(&image, names_offset);
  append_le<uint64_t>(&image, names.size());
  image.resize(names_offset);
  image += names;

  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  if (!cctx) throw std::runtime_error("zstd: out of memory");
  std::string buffer;
  uint32_t name_offset = 0;
  PackStats local;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Out& node = nodes[i];
    uint32_t flags = node.is_directory ? kFlagDirectory : 0;
    uint64_t size = 0, data_offset = 0, data_length = 0;
    if (node.is_directory) {
      ++local.directories;
    } else {
      ++local.files;
      const std::string& contents = node.entry->contents;
      size = contents.size();
      local.bytes_in += size;
      data_offset = image.size();
      buffer.resize(ZSTD_compressBound(contents.size()));
      size_t n = contents.empty() ? 0
                                  : ZSTD_compressCCtx(cctx, buffer.data(), buffer.size(),
                                                      contents.data(), contents.size(), zstd_level);
      if (ZSTD_isError(n)) {
        ZSTD_freeCCtx(cctx);
        throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(n));
      }
      if (n > 0 && n < contents.size()) {
        flags |= kFlagCompressed;
        image.append(buffer.data(), n);
        data_length = n;
      } else {
        image += contents;
        data_length = contents.size();
      }
    }
    size_t at = kHeaderSize + i * kNodeSize;
    store_le<uint32_t>(&image, at, node.parent);
    store_le<uint32_t>(&image, at + 4, flags);
    store_le<uint32_t>(&image, at + 8, name_offset);
    store_le<uint32_t>(&image, at + 12, static_cast<uint32_t>(node.name.size()));
    store_le<uint64_t>(&image, at + 16, size);
    store_le<uint64_t>(&image, at + 24, node.mtime_ns);
    store_le<uint64_t>(&image, at + 32, data_offset);
    store_le<uint64_t>(&image, at + 40, data_length);
    name_offset += static_cast<uint32_t>(node.name.size());
  }
  ZSTD_freeCCtx(cctx);
  local.bytes_out = image.size();
  if (stats) *stats = local;
  return image;
}

namespace {

std::string read_whole_file(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
  std::string out;
  char buffer[1 << 16];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      close(fd);
      throw std::runtime_error("cannot read " + path + ": " + std::strerror(saved));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

bool excluded(const std::string& relative, const std::string& name,
              const std::vector<std::string>& globs) {
  for (const std::string& glob : globs) {
    if (fnmatch(glob.c_str(), relative.c_str(), 0) == 0) return true;
    if (fnmatch(glob.c_str(), name.c_str(), 0) == 0) return true;
  }
  return false;
}

void collect(const std::string& root, const std::string& relative,
             const std::vector<std::string>& globs,
             const std::function<void(std::string_view)>& warn, std::vector<PackEntry>* out) {
  std::string dir_path = relative.empty() ? root : root + "/" + relative;
  DIR* dir = opendir(dir_path.c_str());
  if (!dir)
    throw std::runtime_error("cannot open directory " + dir_path + ": " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string rel = relative.empty() ? name : relative + "/" + name;
    if (excluded(rel, name, globs)) continue;
    std::string full = root + "/" + rel;
    struct stat st;
    if (lstat(full.c_str(), &st) != 0)
      throw std::runtime_error("cannot stat " + full + ": " + std::strerror(errno));
    uint64_t mtime = uint64_t(st.st_mtim.tv_sec) * 1000000000u + uint64_t(st.st_mtim.tv_nsec);
    if (S_ISDIR(st.st_mode)) {
      out->push_back(PackEntry{rel, true, {}, mtime});
      collect(root, rel, globs, warn, out);
    } else if (S_ISREG(st.st_mode)) {
      out->push_back(PackEntry{rel, false, read_whole_file(full), mtime});
    } else if (warn) {
      warn((S_ISLNK(st.st_mode) ? "skipping symlink " : "skipping special file ") + full);
    }
  }
}

}  // namespace

std::vector<PackEntry> collect_directory(const std::string& directory,
                                         const std::vector<std::string>& exclude_globs,
                                         const std::function<void(std::string_view)>& warn) {
  std::vector<PackEntry> out;
  collect(directory, "", exclude_globs, warn, &out);
  return out;
}

}  // namespace terrarium::wasi
