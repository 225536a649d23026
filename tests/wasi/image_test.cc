// Unit tests of the in-memory image (src/wasi/image.cc) and the packer.
#include "wasi/image.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <random>

#include "wasi/image_pack.h"
#include "wasi_test_util.h"

namespace terrarium::wasi {
namespace {

using testing::read_host_file;
using testing::TempDir;
using testing::write_host_file;

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(ImageTest, FromFilesBuildsTree) {
  Image image = Image::from_files({{"b.py", "B"}, {"pkg/sub/c.py", "C"}, {"a.py", "A"}});
  const auto& root = image.node(Image::kRoot);
  EXPECT_TRUE(root.is_directory);
  ASSERT_EQ(root.children.size(), 3u);
  EXPECT_EQ(image.node(root.children[0]).name, "a.py");  // sorted
  EXPECT_EQ(image.node(root.children[2]).name, "pkg");
  auto c = image.resolve(Image::kRoot, "pkg/sub/c.py");
  ASSERT_TRUE(c);
  EXPECT_EQ(image.read(*c), "C");
  EXPECT_EQ(image.node(*c).size, 1u);
  auto sub = image.resolve(Image::kRoot, "pkg/sub");
  ASSERT_TRUE(sub);
  EXPECT_EQ(image.resolve(*sub, "../../a.py"), image.resolve(Image::kRoot, "a.py"));
  EXPECT_EQ(image.resolve(*sub, "./c.py/"), std::nullopt);  // a file is not a directory
  bool escaped = false;
  EXPECT_EQ(image.resolve(*sub, "../../../x", &escaped), std::nullopt);
  EXPECT_TRUE(escaped);
  EXPECT_EQ(image.resolve(Image::kRoot, "nope", &escaped), std::nullopt);
  EXPECT_FALSE(escaped);
  EXPECT_EQ(image.resolve(Image::kRoot, "", &escaped), Image::kRoot);
  EXPECT_EQ(image.child(Image::kRoot, "b.py"), image.resolve(Image::kRoot, "b.py"));
  EXPECT_EQ(image.child(*c, "x"), std::nullopt);
  EXPECT_THROW(image.read(Image::kRoot), std::runtime_error);
  EXPECT_THROW(Image::from_files({{"a", "1"}, {"a", "2"}}), std::invalid_argument);
  EXPECT_THROW(Image::from_files({{"a/../b", "1"}}), std::invalid_argument);
}

TEST(ImageTest, PackParseRoundTrip) {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "def f" + std::to_string(i) + "(): return 1\n";
  std::string noise = random_bytes(5000, 1);
  std::vector<PackEntry> entries = {
      {"lib", true, {}, 111},
      {"lib/text.py", false, text, 222},
      {"lib/noise.bin", false, noise, 333},
      {"lib/empty.py", false, "", 444},
      {"deep/er/x.py", false, "x", 555},
  };
  PackStats stats;
  std::string blob = pack_image(entries, 6, &stats);
  EXPECT_EQ(stats.files, 4u);
  EXPECT_EQ(stats.directories, 4u);  // root, lib, deep, deep/er
  EXPECT_EQ(stats.bytes_in, text.size() + noise.size() + 1);
  EXPECT_EQ(stats.bytes_out, blob.size());
  EXPECT_LT(blob.size(), text.size() / 4 + noise.size() + 1000);  // text compressed

  std::string error;
  auto image = Image::parse(blob, &error);
  ASSERT_TRUE(image) << error;
  auto text_node = image->resolve(Image::kRoot, "lib/text.py");
  ASSERT_TRUE(text_node);
  EXPECT_TRUE(image->node(*text_node).compressed);
  EXPECT_EQ(image->node(*text_node).mtime_ns, 222u);
  EXPECT_EQ(image->read(*text_node), text);
  auto noise_node = image->resolve(Image::kRoot, "lib/noise.bin");
  EXPECT_FALSE(image->node(*noise_node).compressed);  // stored raw
  EXPECT_EQ(image->read(*noise_node), noise);
  EXPECT_EQ(image->read(*image->resolve(Image::kRoot, "lib/empty.py")), "");
  EXPECT_EQ(image->read(*image->resolve(Image::kRoot, "deep/er/x.py")), "x");
  EXPECT_EQ(image->node(*image->resolve(Image::kRoot, "lib")).mtime_ns, 111u);
  const auto& lib = image->node(*image->resolve(Image::kRoot, "lib"));
  ASSERT_EQ(lib.children.size(), 3u);
  EXPECT_EQ(image->node(lib.children[0]).name, "empty.py");
  EXPECT_EQ(image->node(lib.children[2]).name, "text.py");

  EXPECT_THROW(pack_image({{"a/../b", false, "", 0}}), std::runtime_error);
  EXPECT_THROW(pack_image({{"a", false, "", 0}, {"a", false, "", 0}}), std::runtime_error);
  EXPECT_THROW(pack_image({{"a", false, "", 0}, {"a/b", false, "", 0}}), std::runtime_error);
}

// Offsets into a packed image (see the format in image.cc).
constexpr size_t kNodeTable = 32, kNodeSize = 48;

std::string small_image() {
  return pack_image({{"dir/file.txt", false, std::string(1000, 'a'), 1}});
}

template <typename T>
void poke(std::string* blob, size_t offset, T value) {
  std::memcpy(blob->data() + offset, &value, sizeof value);
}

std::string parse_error(const std::string& blob) {
  std::string error;
  auto image = Image::parse(blob, &error);
  EXPECT_FALSE(image);
  return error;
}

TEST(ImageTest, MalformedImagesAreRejected) {
  std::string good = small_image();
  std::string error;
  ASSERT_TRUE(Image::parse(good, &error)) << error;

  EXPECT_EQ(parse_error(""), "malformed image: shorter than its header");
  EXPECT_EQ(parse_error(good.substr(0, 20)), "malformed image: shorter than its header");
  std::string b = good;
  b[0] = 'X';
  EXPECT_EQ(parse_error(b), "malformed image: bad magic");
  b = good;
  poke<uint32_t>(&b, 8, 2);
  EXPECT_EQ(parse_error(b), "malformed image: unsupported version 2");
  b = good;
  poke<uint32_t>(&b, 12, 0);
  EXPECT_EQ(parse_error(b), "malformed image: no root node");
  b = good;
  poke<uint32_t>(&b, 12, 0x10000000);
  EXPECT_EQ(parse_error(b), "malformed image: node table (268435456 nodes) past the end");
  b = good;
  poke<uint64_t>(&b, 24, ~0ull);
  EXPECT_EQ(parse_error(b), "malformed image: name blob past the end");
  // Node 2 (the file) claiming a parent after itself.
  b = good;
  poke<uint32_t>(&b, kNodeTable + 2 * kNodeSize, 5);
  EXPECT_EQ(parse_error(b), "malformed image: node 2: parent 5 not before it");
  // Node 1 ("dir") turned into an (empty) file: node 2's parent is a file.
  b = good;
  poke<uint32_t>(&b, kNodeTable + 1 * kNodeSize + 4, 0);
  EXPECT_EQ(parse_error(b), "malformed image: node 2: parent is not a directory");
  // A name containing '/'.
  b = good;
  size_t names = 32 + 3 * kNodeSize;
  ASSERT_EQ(b.substr(names, 3), "dir");
  b[names + 1] = '/';
  EXPECT_EQ(parse_error(b), "malformed image: node 1: invalid name");
  b = good;
  b[names + 1] = '\0';
  EXPECT_EQ(parse_error(b), "malformed image: node 1: invalid name");
  b = good;
  poke<uint32_t>(&b, kNodeTable + 1 * kNodeSize + 12, 1000);  // name length
  EXPECT_EQ(parse_error(b), "malformed image: node 1: name out of range");
  // Contents out of range.
  b = good;
  poke<uint64_t>(&b, kNodeTable + 2 * kNodeSize + 32, b.size() - 2);
  EXPECT_EQ(parse_error(b), "malformed image: node 2: contents out of range");
  b = good;
  poke<uint64_t>(&b, kNodeTable + 2 * kNodeSize + 16, 999);  // size vs. zstd frame
  EXPECT_EQ(parse_error(b), "malformed image: node 2: compressed size mismatch");
  b = good;
  poke<uint32_t>(&b, kNodeTable + 2 * kNodeSize + 4, 7);
  EXPECT_EQ(parse_error(b), "malformed image: node 2: unknown flags");
  // Root that is not a directory.
  b = good;
  poke<uint32_t>(&b, kNodeTable + 4, 0);
  EXPECT_NE(parse_error(b).find("node 0: the root must be"), std::string::npos);
  // Duplicate names.
  std::string dup = pack_image({{"a", false, "1", 0}, {"b", false, "2", 0}});
  size_t dup_names = 32 + 3 * kNodeSize;
  dup[dup_names + 1] = 'a';
  EXPECT_EQ(parse_error(dup), "malformed image: duplicate name \"a\"");

  // A corrupt zstd body parses but cannot be read.
  b = good;
  uint64_t data_offset;
  std::memcpy(&data_offset, b.data() + kNodeTable + 2 * kNodeSize + 32, 8);
  uint64_t data_length;
  std::memcpy(&data_length, b.data() + kNodeTable + 2 * kNodeSize + 40, 8);
  for (uint64_t i = data_offset + data_length / 2; i < data_offset + data_length; ++i)
    b[i] = static_cast<char>(b[i] ^ 0x5A);
  auto image = Image::parse(b, &error);
  ASSERT_TRUE(image) << error;
  EXPECT_THROW(image->read(*image->resolve(Image::kRoot, "dir/file.txt")), std::runtime_error);

  // Truncating anywhere never crashes the parser.
  for (size_t cut = 0; cut < good.size(); cut += 7) {
    std::string e;
    auto img = Image::parse(std::string_view(good).substr(0, cut), &e);
    if (img) {
      for (size_t i = 0; i < img->node_count(); ++i) {
        if (!img->node(i).is_directory) {
          try {
            img->read(static_cast<Image::NodeIndex>(i));
          } catch (const std::runtime_error&) {
          }
        }
      }
    }
  }
}

TEST(ImageTest, PackerToolRoundTrip) {
  TempDir dir;
  std::filesystem::create_directories(dir / "tree/pkg/__pycache__");
  std::filesystem::create_directories(dir / "tree/empty");
  std::string big;
  for (int i = 0; i < 5000; ++i) big += "line " + std::to_string(i) + "\n";
  write_host_file(dir / "tree/mod.py", "print('hi')\n");
  write_host_file(dir / "tree/pkg/__init__.py", big);
  write_host_file(dir / "tree/pkg/__pycache__/x.pyc", "compiled");
  write_host_file(dir / "tree/pkg/skip.txt", "skip");
  std::string noise = random_bytes(3000, 7);
  write_host_file(dir / "tree/noise.bin", noise);
  std::filesystem::create_symlink("mod.py", dir / "tree/link.py");
  timespec times[2] = {{0, UTIME_OMIT}, {1600000000, 123456789}};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir / "tree/mod.py").c_str(), times, 0), 0);

  std::string command = std::string(TERRARIUM_PACK_IMAGE) + " " + (dir / "out.img") + " " +
                        (dir / "tree") + " --exclude __pycache__ --exclude 'pkg/*.txt' > " +
                        (dir / "stdout") + " 2> " + (dir / "stderr");
  ASSERT_EQ(std::system(command.c_str()), 0) << read_host_file(dir / "stderr");
  std::string summary = read_host_file(dir / "stdout");
  EXPECT_NE(summary.find("3 files"), std::string::npos) << summary;
  EXPECT_NE(summary.find(std::to_string(12 + big.size() + noise.size()) + " bytes in"),
            std::string::npos)
      << summary;
  EXPECT_NE(read_host_file(dir / "stderr").find("skipping symlink"), std::string::npos);

  std::string blob = read_host_file(dir / "out.img");
  std::string error;
  auto image = Image::parse(blob, &error);
  ASSERT_TRUE(image) << error;
  auto mod = image->resolve(Image::kRoot, "mod.py");
  ASSERT_TRUE(mod);
  EXPECT_EQ(image->read(*mod), "print('hi')\n");
  EXPECT_EQ(image->node(*mod).mtime_ns, 1600000000123456789ull);
  EXPECT_EQ(image->read(*image->resolve(Image::kRoot, "pkg/__init__.py")), big);
  EXPECT_EQ(image->read(*image->resolve(Image::kRoot, "noise.bin")), noise);
  EXPECT_TRUE(image->node(*image->resolve(Image::kRoot, "empty")).is_directory);
  EXPECT_FALSE(image->resolve(Image::kRoot, "link.py"));
  EXPECT_FALSE(image->resolve(Image::kRoot, "pkg/__pycache__"));
  EXPECT_FALSE(image->resolve(Image::kRoot, "pkg/skip.txt"));

  // Usage errors.
  EXPECT_NE(std::system((std::string(TERRARIUM_PACK_IMAGE) + " 2>/dev/null").c_str()), 0);
  EXPECT_NE(std::system((std::string(TERRARIUM_PACK_IMAGE) + " " + (dir / "x.img") + " " +
                         (dir / "missing") + " 2>/dev/null")
                            .c_str()),
            0);
}

}  // namespace
}  // namespace terrarium::wasi
