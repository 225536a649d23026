// The standard-library image linked into the binary (guest/embedded_stdlib.S).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "wasi/image.h"

extern "C" const char terrarium_stdlib_image_start[];
extern "C" const char terrarium_stdlib_image_end[];

namespace terrarium::wasi {

const Image& embedded_stdlib_image() {
  static const Image image = [] {
    std::string error;
    std::string_view blob(terrarium_stdlib_image_start,
                          terrarium_stdlib_image_end - terrarium_stdlib_image_start);
    auto parsed = Image::parse(blob, &error);
    if (!parsed) {
      // The image is part of this binary: a bad one is a build error.
      std::fprintf(stderr, "terrarium: internal error: embedded stdlib image: %s\n", error.c_str());
      std::abort();
    }
    return std::move(*parsed);
  }();
  return image;
}

}  // namespace terrarium::wasi
