// ops.toml (src/functions/ops_manifest.cc): load_ops_manifest on arbitrary
// bytes, in a scratch folder with op files, deps, a non-UTF-8 file and
// symlinks that lead out of it, beside a folder outside it that holds a
// sentinel. Invariants: no crash, no exception; an error is kConfig and
// starts "FILE:LINE:COLUMN:"; a loaded manifest has unique non-empty op
// names, mat_data_json an object of a known "ty", every source file keyed by
// a relative path inside the manifest's folder and valid UTF-8, nothing of the
// folder outside (the sentinel never appears), and hostcall targets that are
// exactly one of an op of the manifest or an http:// URL.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>

#include "fuzz_common.h"
#include "toml_assert.h"  // also force-included before toml++ (CMakeLists.txt)
#include "terrarium/functions.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr std::string_view kSentinel = "SENTINEL_OUTSIDE_THE_MANIFEST_FOLDER";

struct Scratch {
  fs::path base;  // the manifest's folder (canonical)
  std::string manifest;
  Scratch() {
    fs::path dir = fs::canonical(fuzz::scratch_dir("ops"));
    base = dir / "app";
    fuzz::write_file(dir / "outside/secret.py", "def leak(x):\n    return '" + std::string(kSentinel) + "'\n");
    fuzz::write_file(base / "ops/text.py", "def slugify(x):\n    return x.lower().replace(' ', '-')\n");
    fuzz::write_file(base / "ops/lib/util.py", "def helper():\n    return 1\n");
    fuzz::write_file(base / "ops/lib/.hidden.py", "hidden = True\n");
    fuzz::write_file(base / "ops/lib/__pycache__/util.cpython-311.pyc", "\x00\x01");
    fuzz::write_file(base / "ops/data.json", "{\"a\": 1}\n");
    fuzz::write_file(base / "ops/binary.bin", "\xff\xfe\x00\x01");
    fs::create_symlink(dir / "outside/secret.py", base / "ops/escape.py");
    fs::create_symlink("../../outside", base / "ops/lib/outside_dir");
    fs::create_symlink(dir / "outside", base / "outside_dir");
    manifest = (base / "ops.toml").string();
  }
};

bool valid_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

void check_source_key(const Scratch& scratch, const std::string& key, const std::string& what) {
  fs::path relative(key);
  FUZZ_CHECK(!key.empty() && relative.is_relative(), what + ": source key '" + key + "'");
  for (const auto& part : relative) FUZZ_CHECK(part != "..", what + ": source key '" + key + "'");
  std::error_code error;
  fs::path resolved = fs::weakly_canonical(scratch.base / relative, error);
  auto [end, ignored] = std::mismatch(scratch.base.begin(), scratch.base.end(), resolved.begin(), resolved.end());
  FUZZ_CHECK(!error && end == scratch.base.end(), what + ": '" + key + "' resolves outside: " + resolved.string());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Scratch scratch;
  // toml++ 3.3.0's undefined behaviour on some non-ASCII code points (toml_assert.h).
  if (fuzz::has_tomlpp_undefined_whitespace(std::string_view(reinterpret_cast<const char*>(data), size)))
    return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::write_file(scratch.manifest, text);
  auto loaded = terrarium::load_ops_manifest(scratch.manifest);
  if (!loaded) {
    FUZZ_CHECK(loaded.error().kind() == terrarium::ErrorKind::kConfig, loaded.error().to_string());
    FUZZ_CHECK(fuzz::has_location_prefix(loaded.error().message(), scratch.manifest), loaded.error().message());
    return 0;
  }
  const terrarium::OpsManifest& manifest = *loaded;
  FUZZ_CHECK(manifest.path == scratch.manifest, manifest.path);
  FUZZ_CHECK(!manifest.ops.empty(), "a loaded manifest has no op");
  std::set<std::string> names;
  bool sentinel_written = text.find(kSentinel) != std::string_view::npos;
  for (const terrarium::OpInfo& op : manifest.ops) {
    std::string what = "op '" + op.op_name + "'";
    FUZZ_CHECK(!op.op_name.empty(), "an op without a name");
    FUZZ_CHECK(names.insert(op.op_name).second, what + " twice");
    FUZZ_CHECK(!op.mat_title.empty(), what);
    FUZZ_CHECK(op.limits.timeout.count() >= 0, what);
    json mat = json::parse(op.mat_data_json, nullptr, false);
    FUZZ_CHECK(mat.is_object() && mat.contains("ty") && mat["ty"].is_string(), what + ": " + op.mat_data_json);
    std::string ty = mat["ty"];
    FUZZ_CHECK(ty == "lambda" || ty == "def" || ty == "import_function", what + ": ty " + ty);
    FUZZ_CHECK(mat.contains("source") == (ty != "import_function"), what);
    if (ty == "import_function") {
      FUZZ_CHECK(mat["sources"].is_object() && !mat["sources"].empty(), what);
      FUZZ_CHECK(mat["root_src_path"].is_string() && mat["sources"].contains(mat["root_src_path"].get<std::string>()),
                 what + ": root_src_path not among the sources");
      FUZZ_CHECK(mat["func_name"].is_string(), what);
      for (const auto& [key, source] : mat["sources"].items()) {
        check_source_key(scratch, key, what);
        FUZZ_CHECK(source.is_string() && valid_utf8(source.get<std::string>()), what + ": " + key);
        FUZZ_CHECK(sentinel_written || source.get<std::string>().find(kSentinel) == std::string::npos,
                   what + ": '" + key + "' carries the file outside the manifest's folder");
      }
    }
    if (ty == "def") FUZZ_CHECK(mat["func_name"].is_string(), what);
  }
  for (const terrarium::HostcallTarget& target : manifest.hostcalls) {
    std::string what = "hostcall '" + target.name + "'";
    FUZZ_CHECK(target.op.empty() != target.url.empty(), what);
    if (!target.op.empty()) FUZZ_CHECK(names.count(target.op), what + ": op " + target.op);
    if (!target.url.empty()) {
      FUZZ_CHECK(fuzz::starts_with(target.url, "http://") && target.url.size() > 7 && target.url[7] != '/',
                 what + ": url " + target.url);
    }
    FUZZ_CHECK(target.timeout.count() > 0, what);
  }
  return 0;
}
