// terrarium-pack-image OUTPUT DIR [--exclude GLOB]...
//
// Packs every regular file and directory under DIR into a read-only image
// (the standard library served to guests; see src/wasi/image.h). Symlinks and
// special files are skipped with a warning. --exclude GLOB (fnmatch) drops a
// path relative to DIR, or any entry whose base name matches, with everything
// below it.
//
// Image format (little-endian), version 1:
//   header (32 bytes):  char[8] "TRRMIMG\n", u32 version = 1, u32 node_count,
//                       u64 names_offset, u64 names_size
//   node table at 32:   node_count records of 48 bytes:
//                       u32 parent, u32 flags (1 = directory, 2 = zstd),
//                       u32 name_offset, u32 name_length, u64 size,
//                       u64 mtime_ns, u64 data_offset, u64 data_length
//                       (node 0 = root directory; parent before child)
//   name blob, then file contents: one zstd frame per file (content size in
//   its header), or raw bytes when compression does not shrink the file.
// Image::parse (src/wasi/image.cc) validates all of it.
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "wasi/image_pack.h"

int main(int argc, char** argv) {
  std::vector<std::string> positional, excludes;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--exclude" && i + 1 < argc) {
      excludes.push_back(argv[++i]);
    } else if (arg.rfind("--exclude=", 0) == 0) {
      excludes.push_back(arg.substr(10));
    } else if (arg == "-h" || arg == "--help") {
      std::cout << "usage: terrarium-pack-image OUTPUT DIR [--exclude GLOB]...\n";
      return 0;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    std::cerr << "usage: terrarium-pack-image OUTPUT DIR [--exclude GLOB]...\n";
    return 2;
  }
  const std::string& output = positional[0];
  const std::string& directory = positional[1];
  try {
    auto entries = terrarium::wasi::collect_directory(
        directory, excludes,
        [](std::string_view warning) { std::cerr << "warning: " << warning << "\n"; });
    terrarium::wasi::PackStats stats;
    std::string image = terrarium::wasi::pack_image(entries, 6, &stats);
    std::string temp = output + ".tmp";
    {
      std::ofstream out(temp, std::ios::binary | std::ios::trunc);
      out.write(image.data(), static_cast<std::streamsize>(image.size()));
      out.close();
      if (!out) throw std::runtime_error("cannot write " + temp);
    }
    if (std::rename(temp.c_str(), output.c_str()) != 0)
      throw std::runtime_error("cannot rename " + temp + " to " + output + ": " +
                               std::strerror(errno));
    std::cout << output << ": " << stats.files << " files, " << stats.directories
              << " directories, " << stats.bytes_in << " bytes in, " << stats.bytes_out
              << " bytes out\n";
  } catch (const std::exception& e) {
    std::cerr << "terrarium-pack-image: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
