// modules.toml (src/server/modules_config.cc): load_modules_config on
// arbitrary bytes, in a scratch folder that holds the scripts, volumes and
// interpreter a config may name. Invariants: no crash, no exception; an error
// is kConfig and starts "FILE:LINE:COLUMN:"; a loaded config obeys the rules
// the loader documents (routes start with '/', volumes are absolute guest
// paths over host directories, scripts exist, WSGI specs are module:attr, ...).
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <set>

#include "fuzz_common.h"
#include "toml_assert.h"  // also force-included before toml++ (CMakeLists.txt)
#include "server/modules_config.h"

namespace {

namespace fs = std::filesystem;
using terrarium::server::ModuleConfig;

struct Scratch {
  fs::path dir;
  std::string config;
  Scratch() {
    dir = fuzz::scratch_dir("modules");
    // What the seed corpus names (tests/server/modules_config_test.cc's layout).
    fuzz::write_file(dir / "app.py", "print('Content-Type: text/plain\\n')\n");
    fuzz::write_file(dir / "code/env.py", "print('Content-Type: text/plain\\n')\n");
    fuzz::write_file(dir / "opt/wasi-python/bin/python3.wasm", std::string("\0asm", 4));
    fuzz::write_file(dir / "myapp/web.py", "app = None\n");
    fs::create_directories(dir / "static");
    fs::create_directories(dir / "lib/python");
    config = (dir / "modules.toml").string();
  }
};

bool is_directory(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}
bool is_file(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}
bool python_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  }
  return true;
}

void check_module(const ModuleConfig& module, size_t position) {
  const std::string where = "module #" + std::to_string(position) + " route '" + module.route + "'";
  FUZZ_CHECK(module.index == position, where);
  FUZZ_CHECK(module.line >= 1, where);
  FUZZ_CHECK(!module.route.empty() && module.route[0] == '/', where);
  FUZZ_CHECK(module.pattern.route == module.route, where);
  bool wildcard = module.route.size() >= 4 &&
                  module.route.compare(module.route.size() - 4, 4, "/...") == 0;
  FUZZ_CHECK(module.pattern.wildcard == wildcard, where);
  FUZZ_CHECK(module.pattern.prefix ==
                 (wildcard ? module.route.substr(0, module.route.size() - 4) : module.route),
             where);
  // A route matches itself (an exact one) or its prefix (a wildcard).
  FUZZ_CHECK(module.pattern.matches(wildcard ? module.pattern.prefix : module.route), where);
  FUZZ_CHECK(!module.pattern.script_name().empty() && module.pattern.script_name()[0] == '/',
             where);

  for (const auto& volume : module.volumes) {
    FUZZ_CHECK(!volume.guest_path.empty() && volume.guest_path[0] == '/', where + " volume " + volume.guest_path);
    FUZZ_CHECK(volume.guest_path == "/" || volume.guest_path.back() != '/', where + " volume " + volume.guest_path);
    FUZZ_CHECK(fs::path(volume.host_path).is_absolute(), where + " volume host " + volume.host_path);
    FUZZ_CHECK(is_directory(volume.host_path), where + " volume host " + volume.host_path);
  }
  for (const auto& entry : module.environment) {
    size_t equals = entry.find('=');
    FUZZ_CHECK(equals != std::string::npos && equals > 0, where + " env " + entry);
  }
  for (const auto& path : module.python_path) {
    FUZZ_CHECK(is_directory(path), where + " python_path " + path);
  }
  FUZZ_CHECK(module.pool_strategy == "reset" || module.pool_strategy == "clone", where);
  if (module.timeout) FUZZ_CHECK(module.timeout->count() >= 0, where);

  switch (module.kind) {
    case ModuleConfig::Kind::kWsgi: {
      FUZZ_CHECK(module.module.empty(), where);
      size_t colon = module.wsgi.find(':');
      FUZZ_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < module.wsgi.size(), where + " wsgi " + module.wsgi);
      FUZZ_CHECK(python_name(module.wsgi.substr(0, colon)), where + " wsgi " + module.wsgi);
      FUZZ_CHECK(module.warm_up.empty() || module.warm_up[0] == '/', where + " warm_up " + module.warm_up);
      break;
    }
    case ModuleConfig::Kind::kScript:
      FUZZ_CHECK(module.wsgi.empty(), where);
      FUZZ_CHECK(module.script_host_path == module.module_path, where);
      FUZZ_CHECK(is_file(module.script_host_path), where + " script " + module.script_host_path);
      FUZZ_CHECK(!module.script_guest_path.empty() && module.script_guest_path[0] == '/',
                 where + " guest script " + module.script_guest_path);
      break;
    case ModuleConfig::Kind::kInterpreter: {
      FUZZ_CHECK(module.argv_template.has_value(), where);
      FUZZ_CHECK(module.argv_script_index >= 1, where);
      FUZZ_CHECK(is_file(module.script_host_path), where + " script " + module.script_host_path);
      FUZZ_CHECK(!module.script_guest_path.empty() && module.script_guest_path[0] == '/',
                 where + " guest script " + module.script_guest_path);
      // The script lies under one of the volumes.
      bool under = false;
      for (const auto& volume : module.volumes) {
        auto relative = fs::path(module.script_guest_path).lexically_relative(volume.guest_path);
        under = under || (!relative.empty() && *relative.begin() != "..");
      }
      FUZZ_CHECK(under, where + " guest script " + module.script_guest_path);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Scratch scratch;
  // toml++ 3.3.0's undefined behaviour on some non-ASCII code points (toml_assert.h).
  if (fuzz::has_tomlpp_undefined_whitespace(std::string_view(reinterpret_cast<const char*>(data), size)))
    return 0;
  fuzz::write_file(scratch.config, std::string_view(reinterpret_cast<const char*>(data), size));
  auto loaded = terrarium::server::load_modules_config(scratch.config);
  if (!loaded) {
    FUZZ_CHECK(loaded.error().kind() == terrarium::ErrorKind::kConfig, loaded.error().to_string());
    FUZZ_CHECK(fuzz::has_location_prefix(loaded.error().message(), scratch.config),
               loaded.error().message());
    return 0;
  }
  const auto& config = *loaded;
  FUZZ_CHECK(config.path == scratch.config, config.path);
  FUZZ_CHECK(!config.modules.empty(), "a loaded config has no module");
  int previous_line = 0;
  for (size_t i = 0; i < config.modules.size(); ++i) {
    check_module(config.modules[i], i + 1);
    FUZZ_CHECK(config.modules[i].line >= previous_line, "modules out of file order");
    previous_line = config.modules[i].line;
  }
  for (const auto& note : config.notes) {
    FUZZ_CHECK(fuzz::has_location_prefix(note, scratch.config), note);
  }
  return 0;
}
