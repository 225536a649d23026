// modules.toml: Wagi's schema (wagi-facts.md §1) and Terrarium's keys.
#define TOML_EXCEPTIONS 0
#include "server/modules_config.h"

#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "sandbox/toml_text.h"
#include "terrarium/units.h"

namespace terrarium::server {

namespace fs = std::filesystem;

namespace {

// Keys of [[module]] and what becomes of them.
const std::set<std::string> kWagiKeys = {"route",
                                         "module",
                                         "volumes",
                                         "argv",
                                         "entrypoint",
                                         "allowed_hosts",
                                         "http_max_concurrency",
                                         "bindle_server",
                                         "repository"};
const std::set<std::string> kTerrariumKeys = {"environment", "limits",      "pool",
                                              "wsgi",        "python_path", "warm_up"};

// A table's entries in the order the file lists them (toml++ keeps keys
// sorted): volumes become sys.path in this order.
std::vector<std::pair<const toml::key*, toml::node*>> in_file_order(toml::table& table) {
  std::vector<std::pair<const toml::key*, toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& x = a.first->source().begin;
    const auto& y = b.first->source().begin;
    return x.line != y.line ? x.line < y.line : x.column < y.column;
  });
  return entries;
}

class Loader {
 public:
  explicit Loader(std::string path) : path_(std::move(path)) {
    std::error_code ignored;
    base_ = fs::absolute(fs::path(path_), ignored).parent_path();
  }

  Result<ModulesConfig> load() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
      return Error(ErrorKind::kConfig,
                   path_ + ": cannot read the module config: " + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    // Before toml++: what its 3.3.0 cannot read safely (sandbox/toml_text.h).
    if (auto problem = find_toml_text_problem(text.str())) {
      return fail(toml::source_position{problem->line, problem->column}, problem->message);
    }
    toml::parse_result parsed = toml::parse(text.str(), path_);
    if (!parsed) {
      const toml::parse_error& error = parsed.error();
      return fail(error.source().begin,
                  std::string("invalid TOML: ") + std::string(error.description()));
    }
    toml::table root = std::move(parsed).table();
    config_.path = path_;
    for (auto&& [key, node] : root) {
      if (key.str() != "module") {
        note(key.source().begin, "ignoring top-level key '" + std::string(key.str()) +
                                     "' (only [[module]] tables are read)");
      }
    }
    toml::node* modules = root.get("module");
    if (!modules) {
      return fail({1, 1},
                  "no [[module]] table: the file must list at least one route, e.g.\n"
                  "  [[module]]\n  route = \"/\"\n  module = \"app.py\"");
    }
    toml::array* list = modules->as_array();
    if (!list || !list->is_array_of_tables()) {
      return fail(modules->source().begin,
                  "'module' must be an array of tables ([[module]]), not " + type_of(*modules));
    }
    if (list->empty()) return fail(modules->source().begin, "no [[module]] table");
    size_t index = 0;
    for (toml::node& element : *list) {
      ++index;
      auto module = load_module(*element.as_table(), index);
      if (!module) return module.error();
      config_.modules.push_back(std::move(*module));
    }
    return std::move(config_);
  }

 private:
  Error fail(const toml::source_position& where, const std::string& message) const {
    return Error(ErrorKind::kConfig, path_ + ":" + std::to_string(where.line) + ":" +
                                         std::to_string(where.column) + ": " + message);
  }
  void note(const toml::source_position& where, const std::string& message) {
    config_.notes.push_back(path_ + ":" + std::to_string(where.line) + ":" +
                            std::to_string(where.column) + ": " + message);
  }
  static std::string type_of(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::table:
        return "a table";
      case toml::node_type::array:
        return "an array";
      case toml::node_type::string:
        return "a string";
      case toml::node_type::integer:
        return "an integer";
      case toml::node_type::floating_point:
        return "a float";
      case toml::node_type::boolean:
        return "a boolean";
      default:
        return "a date/time";
    }
  }

  // A host path as written: absolute, or relative to the config's folder —
  // or to the working directory if it exists only there (Wagi's base).
  std::string resolve(const std::string& written, bool* found_in_cwd = nullptr) const {
    fs::path path(written);
    if (path.is_absolute()) return path.lexically_normal().string();
    fs::path beside = (base_ / path).lexically_normal();
    std::error_code ignored;
    if (!fs::exists(beside, ignored)) {
      fs::path from_cwd = fs::absolute(path, ignored).lexically_normal();
      if (fs::exists(from_cwd, ignored)) {
        if (found_in_cwd) *found_in_cwd = true;
        return from_cwd.string();
      }
    }
    return beside.string();
  }

  Result<ModuleConfig> load_module(toml::table& table, size_t index) {
    ModuleConfig module;
    module.index = index;
    module.line = static_cast<int>(table.source().begin.line);
    std::string label = "[[module]] #" + std::to_string(index);
    auto where = [&](const toml::node* node) {
      return node ? node->source().begin : table.source().begin;
    };
    auto string_key = [&](const char* key, bool required, std::string* out) -> Result<void> {
      toml::node* node = table.get(key);
      if (!node) {
        if (required) return fail(where(nullptr), label + ": missing required key '" + key + "'");
        return {};
      }
      auto value = node->value<std::string>();
      if (!node->is_string() || !value) {
        return fail(where(node), label + ": '" + key + "' must be a string, not " + type_of(*node));
      }
      *out = *value;
      return {};
    };

    // The route first: later messages name it.
    if (auto ok = string_key("route", true, &module.route); !ok) return ok.error();
    if (module.route.empty() || module.route[0] != '/') {
      return fail(where(table.get("route")),
                  label + ": route '" + module.route + "' must start with '/'");
    }
    label += " (route \"" + module.route + "\")";
    module.pattern = RoutePattern::parse(module.route);

    for (auto&& [key, node] : table) {
      std::string name(key.str());
      if (kWagiKeys.count(name) || kTerrariumKeys.count(name)) continue;
      note(key.source().begin, label + ": ignoring unknown key '" + name + "'");
    }
    for (const char* key :
         {"allowed_hosts", "http_max_concurrency", "bindle_server", "repository"}) {
      if (toml::node* node = table.get(key)) {
        note(where(node), label + ": '" + std::string(key) +
                              "' is accepted but has no effect (the guest has no network)");
      }
    }

    bool has_wsgi = table.get("wsgi") != nullptr;
    bool has_module = table.get("module") != nullptr;
    if (has_wsgi && has_module) {
      return fail(where(table.get("wsgi")), label +
                                                ": give either 'module' (a CGI script) or "
                                                "'wsgi' (a WSGI app), not both");
    }
    if (!has_wsgi && !has_module) {
      return fail(where(nullptr), label +
                                      ": missing required key 'module' (or 'wsgi' for a "
                                      "WSGI app)");
    }
    if (has_module) {
      if (auto ok = string_key("module", true, &module.module); !ok) return ok.error();
    } else {
      if (auto ok = string_key("wsgi", true, &module.wsgi); !ok) return ok.error();
      module.kind = ModuleConfig::Kind::kWsgi;
    }

    std::string argv;
    if (auto ok = string_key("argv", false, &argv); !ok) return ok.error();
    if (table.get("argv")) module.argv_template = argv;
    std::string entrypoint = "_start";
    if (auto ok = string_key("entrypoint", false, &entrypoint); !ok) return ok.error();
    if (entrypoint != "_start") {
      return fail(where(table.get("entrypoint")),
                  label + ": entrypoint '" + entrypoint +
                      "' is not supported: a Python module runs as a whole (_start)");
    }

    if (auto ok = load_volumes(table, label, &module); !ok) return ok.error();
    if (auto ok = load_environment(table, label, &module); !ok) return ok.error();
    if (auto ok = load_limits(table, label, &module); !ok) return ok.error();
    if (auto ok = load_pool(table, label, &module); !ok) return ok.error();
    if (auto ok = load_python_path(table, label, &module); !ok) return ok.error();

    if (module.kind == ModuleConfig::Kind::kWsgi) {
      if (auto ok = check_wsgi(table, label, &module); !ok) return ok.error();
    } else if (auto ok = resolve_module(table, label, &module); !ok) {
      return ok.error();
    }
    return module;
  }

  Result<void> load_volumes(toml::table& table, const std::string& label, ModuleConfig* module) {
    toml::node* node = table.get("volumes");
    if (!node) return {};
    toml::table* volumes = node->as_table();
    if (!volumes) {
      return fail(node->source().begin,
                  label + ": 'volumes' must be a table {\"/guest/path\" = \"host/path\"}, not " +
                      type_of(*node));
    }
    for (auto [key_pointer, value_pointer] : in_file_order(*volumes)) {
      const toml::key& key = *key_pointer;
      toml::node& value = *value_pointer;
      std::string guest(key.str());
      // Wagi's form, "/guest" = "host", or Terrarium's
      // "/guest" = { path = "host", read_only = true }.
      std::optional<std::string> host = value.value_exact<std::string>();
      bool read_only = false;
      if (toml::table* spec = value.as_table()) {
        host = spec->get("path") ? spec->get("path")->value_exact<std::string>() : std::nullopt;
        for (auto&& [setting, setting_value] : *spec) {
          if (setting.str() == "path") continue;
          if (setting.str() == "read_only" && setting_value.is_boolean()) {
            read_only = *setting_value.value_exact<bool>();
            continue;
          }
          return fail(setting.source().begin,
                      label + ": volume '" + guest + "': unknown setting '" +
                          std::string(setting.str()) + "' (known: path, read_only = true|false)");
        }
      }
      if (!host) {
        return fail(value.source().begin, label + ": volume '" + guest +
                                              "' must map to a host path (\"dir\" or "
                                              "{ path = \"dir\", read_only = true }), not " +
                                              type_of(value));
      }
      if (guest.empty() || guest[0] != '/') {
        return fail(key.source().begin, label + ": volume guest path '" + guest +
                                            "' must be absolute (e.g. /" + guest + ")");
      }
      bool in_cwd = false;
      std::string resolved = resolve(*host, &in_cwd);
      struct stat info {};
      if (stat(resolved.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
        return fail(
            value.source().begin,
            label + ": volume '" + guest + "': host directory '" + *host + "' " +
                (stat(resolved.c_str(), &info) != 0 ? "does not exist" : "is not a directory") +
                " (looked for " + resolved + ")");
      }
      if (in_cwd) {
        note(value.source().begin, label + ": volume '" + guest + "' found as " + resolved +
                                       " (relative to the working directory)");
      }
      std::string normal = fs::path(guest).lexically_normal().string();
      if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
      module->volumes.push_back({resolved, normal, read_only});
    }
    return {};
  }

  Result<void> load_environment(toml::table& table, const std::string& label,
                                ModuleConfig* module) {
    toml::node* node = table.get("environment");
    if (!node) return {};
    toml::table* env = node->as_table();
    if (!env) {
      return fail(
          node->source().begin,
          label + ": 'environment' must be a table {NAME = \"value\"}, not " + type_of(*node));
    }
    for (auto [key_pointer, value_pointer] : in_file_order(*env)) {
      const toml::key& key = *key_pointer;
      toml::node& value = *value_pointer;
      std::string name(key.str());
      if (name.empty() || name.find('=') != std::string::npos) {
        return fail(key.source().begin, label + ": environment name '" + name + "' is not valid");
      }
      std::string text;
      if (auto s = value.value_exact<std::string>())
        text = *s;
      else if (auto i = value.value_exact<int64_t>())
        text = std::to_string(*i);
      else if (auto b = value.value_exact<bool>())
        text = *b ? "true" : "false";
      else {
        return fail(value.source().begin,
                    label + ": environment." + name + " must be a string, not " + type_of(value));
      }
      module->environment.push_back(name + "=" + text);
    }
    return {};
  }

  Result<void> load_limits(toml::table& table, const std::string& label, ModuleConfig* module) {
    toml::node* node = table.get("limits");
    if (!node) return {};
    toml::table* limits = node->as_table();
    if (!limits) {
      return fail(node->source().begin,
                  label +
                      ": 'limits' must be a table {timeout = \"5s\", max_memory = \"256M\", "
                      "max_output = \"1M\"}, not " +
                      type_of(*node));
    }
    for (auto&& [key, value] : *limits) {
      std::string name(key.str());
      std::string text;
      if (auto s = value.value_exact<std::string>())
        text = *s;
      else if (auto i = value.value_exact<int64_t>())
        text = std::to_string(*i);
      else if (auto f = value.value_exact<double>())
        text = std::to_string(*f);
      else {
        return fail(
            value.source().begin,
            label + ": limits." + name + " must be a string or a number, not " + type_of(value));
      }
      if (name == "timeout") {
        auto duration = parse_duration(text);
        if (!duration) {
          return fail(value.source().begin,
                      label + ": limits.timeout '" + text + "': " + duration.error().message());
        }
        module->timeout = *duration;
      } else if (name == "max_memory" || name == "max_output" || name == "max_written") {
        auto size = parse_size(text);
        if (!size) {
          return fail(value.source().begin,
                      label + ": limits." + name + " '" + text + "': " + size.error().message());
        }
        (name == "max_memory"   ? module->max_memory
         : name == "max_output" ? module->max_output
                                : module->max_written) = *size;
      } else {
        return fail(key.source().begin,
                    label + ": unknown limit '" + name +
                        "' (known: timeout, max_memory, max_output, max_written)");
      }
    }
    return {};
  }

  Result<void> load_pool(toml::table& table, const std::string& label, ModuleConfig* module) {
    toml::node* node = table.get("pool");
    if (!node) return {};
    toml::table* pool = node->as_table();
    if (!pool) {
      return fail(node->source().begin, label +
                                            ": 'pool' must be a table {strategy = \"reset\" "
                                            "| \"clone\", prefill = true}, not " +
                                            type_of(*node));
    }
    for (auto&& [key, value] : *pool) {
      std::string name(key.str());
      if (name == "strategy") {
        auto strategy = value.value_exact<std::string>();
        if (!strategy || (*strategy != "reset" && *strategy != "clone")) {
          return fail(value.source().begin,
                      label +
                          ": pool.strategy must be \"reset\" (a resident sandbox put back to "
                          "the snapshot) or \"clone\" (a new copy-on-write clone per request)");
        }
        module->pool_strategy = *strategy;
      } else if (name == "prefill") {
        auto prefill = value.value_exact<bool>();
        if (!prefill)
          return fail(value.source().begin, label + ": pool.prefill must be true or false");
        module->pool_prefill = *prefill;
      } else {
        return fail(key.source().begin,
                    label + ": unknown pool setting '" + name + "' (known: strategy, prefill)");
      }
    }
    return {};
  }

  Result<void> load_python_path(toml::table& table, const std::string& label,
                                ModuleConfig* module) {
    toml::node* node = table.get("python_path");
    if (!node) return {};
    toml::array* paths = node->as_array();
    if (!paths) {
      return fail(
          node->source().begin,
          label + ": 'python_path' must be an array of host directories, not " + type_of(*node));
    }
    for (toml::node& element : *paths) {
      auto path = element.value_exact<std::string>();
      if (!path) {
        return fail(element.source().begin,
                    label + ": python_path entries must be strings, not " + type_of(element));
      }
      std::string resolved = resolve(*path);
      struct stat info {};
      if (stat(resolved.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
        return fail(element.source().begin, label + ": python_path '" + *path +
                                                "' is not a host directory (looked for " +
                                                resolved + ")");
      }
      module->python_path.push_back(resolved);
    }
    return {};
  }

  Result<void> check_wsgi(toml::table& table, const std::string& label, ModuleConfig* module) {
    const std::string& spec = module->wsgi;
    size_t colon = spec.find(':');
    auto bad = [&] {
      return fail(table.get("wsgi")->source().begin,
                  label + ": wsgi '" + spec +
                      "' must be \"module:attribute\" or "
                      "\"module:factory()\" (e.g. \"web:app\", \"myapp:create_app()\")");
    };
    if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) return bad();
    std::string name = spec.substr(0, colon);
    std::string attribute = spec.substr(colon + 1);
    for (char c : name) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return bad();
    }
    if (attribute.size() > 2 && attribute.substr(attribute.size() - 2) == "()") {
      attribute.resize(attribute.size() - 2);
    }
    for (char c : attribute) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return bad();
    }
    if (module->argv_template) {
      note(table.get("argv")->source().begin, label + ": 'argv' has no effect on a WSGI route");
    }
    if (toml::node* warm = table.get("warm_up")) {
      if (auto off = warm->value_exact<bool>(); off && !*off) {
        module->warm_up.clear();
      } else if (auto path = warm->value_exact<std::string>();
                 path && !path->empty() && (*path)[0] == '/') {
        module->warm_up = *path;
      } else {
        return fail(
            warm->source().begin,
            label + ": warm_up must be a path (\"/health\") or false, not " + type_of(*warm));
      }
    }
    return {};
  }

  // `module`: a .py script, or a CPython WASI build whose argv names one.
  Result<void> resolve_module(toml::table& table, const std::string& label, ModuleConfig* module) {
    toml::node* node = table.get("module");
    std::string written = module->module;
    if (written.rfind("file://", 0) == 0) written = written.substr(7);
    for (const char* scheme : {"oci:", "bindle:", "http://", "https://"}) {
      if (written.rfind(scheme, 0) == 0) {
        return fail(node->source().begin,
                    label + ": module '" + module->module + "': " + scheme +
                        " references are not supported; give a local .py script");
      }
    }
    bool in_cwd = false;
    module->module_path = resolve(written, &in_cwd);
    std::string filename = fs::path(written).filename().string();
    bool is_wasm = filename.size() > 5 && filename.substr(filename.size() - 5) == ".wasm";
    if (!is_wasm) {
      struct stat info {};
      if (stat(module->module_path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
        return fail(node->source().begin,
                    label + ": script '" + module->module + "' " +
                        (stat(module->module_path.c_str(), &info) != 0 ? "does not exist"
                                                                       : "is not a file") +
                        " (looked for " + module->module_path + ")");
      }
      if (in_cwd) {
        note(node->source().begin, label + ": script found as " + module->module_path +
                                       " (relative to the working directory)");
      }
      module->kind = ModuleConfig::Kind::kScript;
      module->script_host_path = module->module_path;
      // Inside a volume: run it from there, so its neighbours import.
      for (const Mount& volume : module->volumes) {
        auto relative = fs::path(module->script_host_path).lexically_relative(volume.host_path);
        if (!relative.empty() && *relative.begin() != "..") {
          module->script_guest_path =
              (fs::path(volume.guest_path) / relative).lexically_normal().string();
          break;
        }
      }
      if (module->script_guest_path.empty()) {
        module->script_guest_path =
            "/script/" + fs::path(module->script_host_path).filename().string();
      }
      return {};
    }
    // The drop-in case (wagi-facts.md §9): a WASI CPython whose argv is
    // "python [options] /guest/script.py ${ARGS}".
    if (filename.find("python") == std::string::npos) {
      return fail(node->source().begin,
                  label + ": module '" + module->module +
                      "' is a WebAssembly module; terrarium serve runs Python: a .py script, or "
                      "a CPython WASI build (python3.wasm) with argv naming the script");
    }
    module->kind = ModuleConfig::Kind::kInterpreter;
    if (!module->argv_template) {
      return fail(node->source().begin,
                  label + ": module '" + module->module +
                      "' is a Python interpreter, but no 'argv' names the script to run; add e.g. "
                      "argv = \"python /code/app.py ${ARGS}\"");
    }
    std::vector<std::string> words;
    {
      std::istringstream split(*module->argv_template);
      for (std::string word; split >> word;) words.push_back(word);
    }
    size_t i = 1;
    while (i < words.size() && words[i].size() > 1 && words[i][0] == '-') {
      const std::string& flag = words[i];
      if (flag == "-c" || flag == "-m") {
        return fail(table.get("argv")->source().begin, label + ": argv '" + *module->argv_template +
                                                           "': python " + flag +
                                                           " is not supported; name a script file");
      }
      i += (flag == "-X" || flag == "-W") ? 2 : 1;
    }
    if (i >= words.size() || words[i].find("${") != std::string::npos) {
      return fail(
          table.get("argv")->source().begin,
          label + ": argv '" + *module->argv_template +
              "' names no script after the interpreter (e.g. \"python /code/app.py ${ARGS}\")");
    }
    std::string script = words[i];
    module->argv_script_index = i;
    std::string guest = script;
    if (guest[0] != '/') guest = "/" + guest;  // WASI programs see paths from the root
    guest = fs::path(guest).lexically_normal().string();
    for (const Mount& volume : module->volumes) {
      auto relative = fs::path(guest).lexically_relative(volume.guest_path);
      if (!relative.empty() && *relative.begin() != "..") {
        module->script_guest_path = guest;
        module->script_host_path =
            (fs::path(volume.host_path) / relative).lexically_normal().string();
        break;
      }
    }
    if (module->script_host_path.empty()) {
      std::string mounts;
      for (const Mount& volume : module->volumes)
        mounts += (mounts.empty() ? "" : ", ") + volume.guest_path;
      return fail(table.get("argv")->source().begin,
                  label + ": the script '" + script + "' named by argv is not under any volume (" +
                      (mounts.empty() ? "no volumes" : "volumes: " + mounts) + ")");
    }
    struct stat info {};
    if (stat(module->script_host_path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
      return fail(table.get("argv")->source().begin,
                  label + ": the script '" + script +
                      "' named by argv does not exist (looked for " + module->script_host_path +
                      ")");
    }
    note(node->source().begin, label + ": '" + module->module +
                                   "' is a WASI Python; the route runs on Terrarium's built-in "
                                   "CPython 3.11 instead (the file is not loaded)");
    return {};
  }

  std::string path_;
  fs::path base_;
  ModulesConfig config_;
};

}  // namespace

Result<ModulesConfig> load_modules_config(const std::string& path) { return Loader(path).load(); }

}  // namespace terrarium::server
