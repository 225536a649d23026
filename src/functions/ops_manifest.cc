// ops.toml: the function runtime's manifest (docs/functions.md). Every op
// becomes a wire record (OpInfo) exactly as Metatype would send it, so the
// manifest and the wire share one code path from here on.
#define TOML_EXCEPTIONS 0
#include <glob.h>
#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "sandbox/toml_text.h"
#include "terrarium/functions.h"
#include "terrarium/units.h"

namespace terrarium {

namespace fs = std::filesystem;

namespace {

// What one op may carry: beyond it, the manifest is almost surely wrong
// (a deps glob that swept a data folder in).
constexpr uint64_t kMaxSourceBytes = 16ull << 20;
constexpr size_t kMaxSourceFiles = 2000;

const std::set<std::string> kOpKeys = {"name", "lambda", "def",       "file",   "function",
                                       "deps", "limits", "isolation", "effect", "title"};
const std::set<std::string> kLimitKeys = {"timeout", "max_memory", "max_output"};

bool valid_utf8(const std::string& text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t length = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xE  ? 3
                    : (c >> 3) == 0x1E ? 4
                                       : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    }
    if (length == 2 && c < 0xC2) return false;  // overlong
    i += length;
  }
  return true;
}

class ManifestLoader {
 public:
  explicit ManifestLoader(std::string path) : path_(std::move(path)) {
    std::error_code ignored;
    base_ = fs::weakly_canonical(fs::absolute(fs::path(path_), ignored).parent_path(), ignored);
  }

  Result<OpsManifest> load() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) {
      return Error(ErrorKind::kConfig,
                   path_ + ": cannot read the ops manifest: " + std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    // Before toml++: what its 3.3.0 cannot read safely (sandbox/toml_text.h).
    if (auto problem = find_toml_text_problem(text.str())) {
      return fail(toml::source_position{problem->line, problem->column}, problem->message);
    }
    toml::parse_result parsed = toml::parse(text.str(), path_);
    if (!parsed) {
      return fail(parsed.error().source().begin,
                  "invalid TOML: " + std::string(parsed.error().description()));
    }
    toml::table root = std::move(parsed).table();
    manifest_.path = path_;
    for (auto&& [key, node] : root) {
      std::string name(key.str());
      if (name != "op" && name != "hostcalls" && name != "allowed_hosts" && name != "limits") {
        return fail(key.source().begin,
                    "unknown key '" + name +
                        "' (the manifest has [[op]] tables, [hostcalls], allowed_hosts, limits)");
      }
    }
    if (toml::node* limits = root.get("limits")) {
      auto parsed_limits = read_limits(*limits, "limits");
      if (!parsed_limits) return parsed_limits.error();
      defaults_ = *parsed_limits;
    }
    if (toml::node* hosts = root.get("allowed_hosts")) {
      toml::array* list = hosts->as_array();
      if (!list) return fail(hosts->source().begin, "'allowed_hosts' must be an array of strings");
      for (toml::node& host : *list) {
        if (!host.is_string()) {
          return fail(host.source().begin,
                      "'allowed_hosts' entries must be strings (\"host:port\")");
        }
        manifest_.allowed_hosts.push_back(*host.value<std::string>());
      }
    }
    toml::node* ops = root.get("op");
    if (!ops) {
      return fail({1, 1},
                  "no [[op]] table: the manifest must list at least one op, e.g.\n"
                  "  [[op]]\n  name = \"add\"\n  lambda = \"lambda x: x['a'] + x['b']\"");
    }
    toml::array* list = ops->as_array();
    if (!list || !list->is_array_of_tables()) {
      return fail(ops->source().begin, "'op' must be an array of tables ([[op]])");
    }
    std::map<std::string, toml::source_position> names;
    for (toml::node& element : *list) {
      auto op = load_op(*element.as_table());
      if (!op) return op.error();
      auto [previous, fresh] = names.emplace(op->op_name, element.source().begin);
      if (!fresh) {
        return fail(element.source().begin, "op '" + op->op_name +
                                                "' is defined twice (first at line " +
                                                std::to_string(previous->second.line) + ")");
      }
      manifest_.ops.push_back(std::move(*op));
    }
    if (toml::node* hostcalls = root.get("hostcalls")) {
      auto ok = load_hostcalls(*hostcalls, names);
      if (!ok) return ok.error();
    }
    return std::move(manifest_);
  }

 private:
  Error fail(const toml::source_position& where, const std::string& message) const {
    return Error(ErrorKind::kConfig, path_ + ":" + std::to_string(where.line) + ":" +
                                         std::to_string(where.column) + ": " + message);
  }

  Result<std::string> string_key(toml::table& table, const char* key, const std::string& what) {
    toml::node* node = table.get(key);
    if (!node) return Error(ErrorKind::kNotFound, "");
    if (!node->is_string()) {
      return fail(node->source().begin, what + ": '" + key + "' must be a string");
    }
    return *node->value<std::string>();
  }

  Result<OpLimits> read_limits(toml::node& node, const std::string& what) {
    OpLimits limits;
    toml::table* table = node.as_table();
    if (!table) {
      return fail(node.source().begin,
                  what + " must be a table, e.g. { timeout = \"2s\", max_memory = \"64M\" }");
    }
    for (auto&& [key, value] : *table) {
      std::string name(key.str());
      if (!kLimitKeys.count(name)) {
        return fail(key.source().begin,
                    what + ": unknown limit '" + name + "' (timeout, max_memory, max_output)");
      }
      std::string text;
      if (value.is_string()) {
        text = *value.value<std::string>();
      } else if (value.is_integer()) {
        text = std::to_string(*value.value<int64_t>()) + (name == "timeout" ? "s" : "");
      } else {
        return fail(value.source().begin,
                    what + "." + name + " must be a string (\"5s\", \"64M\")");
      }
      if (name == "timeout") {
        auto duration = parse_duration(text);
        if (!duration || duration->count() <= 0) {
          return fail(value.source().begin, what + ".timeout: " +
                                                (duration ? std::string("must be more than 0")
                                                          : duration.error().message()));
        }
        limits.timeout = *duration;
      } else {
        auto size = parse_size(text);
        if (!size || *size == 0) {
          return fail(value.source().begin,
                      what + "." + name + ": " +
                          (size ? std::string("must be more than 0") : size.error().message()));
        }
        (name == "max_memory" ? limits.max_memory : limits.max_output) = *size;
      }
    }
    return limits;
  }

  // `relative` (from the manifest's folder) as a path inside it, or an error.
  Result<fs::path> inside(const std::string& relative, const toml::source_position& where,
                          const std::string& what) {
    fs::path path(relative);
    if (path.is_absolute()) {
      return fail(where, what + ": '" + relative + "' must be relative to the manifest's folder");
    }
    std::error_code error;
    fs::path resolved = fs::weakly_canonical(base_ / path, error);
    auto [end, ignored] =
        std::mismatch(base_.begin(), base_.end(), resolved.begin(), resolved.end());
    if (error || end != base_.end()) {
      return fail(where, what + ": '" + relative + "' lies outside the manifest's folder " +
                             base_.string());
    }
    return resolved;
  }

  Result<void> add_source(nlohmann::json& sources, const fs::path& file,
                          const toml::source_position& where, const std::string& what) {
    std::string key = file.lexically_relative(base_).generic_string();
    if (sources.contains(key)) return {};
    if (sources.size() >= kMaxSourceFiles) {
      return fail(where, what + ": more than " + std::to_string(kMaxSourceFiles) + " files");
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) return fail(where, what + ": cannot read " + file.string());
    if (!valid_utf8(text.str())) {
      return fail(where, what + ": " + key +
                             " is not UTF-8 text (an op carries source and text files only)");
    }
    source_bytes_ += text.str().size();
    if (source_bytes_ > kMaxSourceBytes) {
      return fail(where, what + ": the op's files exceed " + std::to_string(kMaxSourceBytes >> 20) +
                             " MiB");
    }
    sources[key] = text.str();
    return {};
  }

  Result<void> add_dependency(nlohmann::json& sources, const std::string& pattern,
                              const toml::source_position& where, const std::string& what) {
    if (fs::path(pattern).is_absolute()) {
      return fail(where, what + ": deps entry '" + pattern + "' must be relative to the manifest");
    }
    std::string full = (base_ / pattern).string();
    glob_t matches{};
    int status = glob(full.c_str(), GLOB_NOSORT, nullptr, &matches);
    std::vector<std::string> found;
    if (status == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) found.emplace_back(matches.gl_pathv[i]);
    }
    globfree(&matches);
    if (found.empty()) {
      return fail(where, what + ": deps entry '" + pattern + "' matches no file");
    }
    std::sort(found.begin(), found.end());
    for (const std::string& match : found) {
      auto checked = inside(fs::path(match).lexically_relative(base_).string(), where, what);
      if (!checked) return checked.error();
      std::error_code error;
      if (fs::is_directory(*checked, error)) {
        std::vector<fs::path> files;
        for (auto it = fs::recursive_directory_iterator(*checked, error);
             !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
          std::string leaf = it->path().filename().string();
          if (leaf == "__pycache__" || (!leaf.empty() && leaf[0] == '.')) {
            if (it->is_directory()) it.disable_recursion_pending();
            continue;
          }
          if (it->is_regular_file()) files.push_back(it->path());
        }
        std::sort(files.begin(), files.end());
        for (const fs::path& file : files) {
          auto inner = inside(file.lexically_relative(base_).string(), where, what);
          if (!inner) return inner.error();  // a symlink out of the folder
          auto ok = add_source(sources, *inner, where, what);
          if (!ok) return ok;
        }
      } else {
        auto ok = add_source(sources, *checked, where, what);
        if (!ok) return ok;
      }
    }
    return {};
  }

  Result<OpInfo> load_op(toml::table& table) {
    toml::source_position where = table.source().begin;
    auto name = string_key(table, "name", "[[op]] at line " + std::to_string(where.line));
    if (!name) {
      if (name.error().kind() == ErrorKind::kNotFound) return fail(where, "[[op]] has no 'name'");
      return name.error();
    }
    if (name->empty()) return fail(where, "[[op]] 'name' is empty");
    std::string what = "op '" + *name + "'";
    for (auto&& [key, node] : table) {
      if (!kOpKeys.count(std::string(key.str()))) {
        return fail(key.source().begin,
                    what + ": unknown key '" + std::string(key.str()) +
                        "' (name, lambda, def, file, function, deps, limits, isolation, effect)");
      }
    }
    OpInfo op;
    op.op_name = *name;
    op.mat_title = *name;
    op.limits = defaults_;
    int kinds =
        int(table.contains("lambda")) + int(table.contains("def")) + int(table.contains("file"));
    if (kinds != 1) {
      return fail(where, what + ": give exactly one of 'lambda', 'def' or 'file' (" +
                             std::to_string(kinds) + " given)");
    }
    auto function = string_key(table, "function", what);
    if (!function && function.error().kind() != ErrorKind::kNotFound) return function.error();
    nlohmann::json data;
    if (table.contains("lambda")) {
      auto source = string_key(table, "lambda", what);
      if (!source) return source.error();
      data = {{"ty", "lambda"}, {"source", *source}};
    } else if (table.contains("def")) {
      auto source = string_key(table, "def", what);
      if (!source) return source.error();
      if (!function) return fail(where, what + ": 'def' needs 'function' (the name it defines)");
      data = {{"ty", "def"}, {"func_name", *function}, {"source", *source}};
    } else {
      auto file = string_key(table, "file", what);
      if (!file) return file.error();
      if (!function) return fail(where, what + ": 'file' needs 'function' (the handler's name)");
      toml::source_position at = table.get("file")->source().begin;
      auto resolved = inside(*file, at, what + ": file");
      if (!resolved) return resolved.error();
      std::error_code error;
      if (!fs::is_regular_file(*resolved, error)) {
        return fail(at, what + ": file '" + *file + "' does not exist (looked for " +
                            resolved->string() + ")");
      }
      nlohmann::json sources = nlohmann::json::object();
      source_bytes_ = 0;
      auto ok = add_source(sources, *resolved, at, what);
      if (!ok) return ok.error();
      if (toml::node* deps = table.get("deps")) {
        toml::array* list = deps->as_array();
        if (!list) {
          return fail(deps->source().begin, what + ": 'deps' must be an array of paths or globs");
        }
        for (toml::node& entry : *list) {
          if (!entry.is_string()) {
            return fail(entry.source().begin, what + ": 'deps' entries must be strings");
          }
          auto added =
              add_dependency(sources, *entry.value<std::string>(), entry.source().begin, what);
          if (!added) return added.error();
        }
      }
      data = {{"ty", "import_function"},
              {"root_src_path", resolved->lexically_relative(base_).generic_string()},
              {"func_name", *function},
              {"sources", std::move(sources)}};
    }
    if (table.contains("deps") && !table.contains("file")) {
      return fail(table.get("deps")->source().begin, what + ": 'deps' goes with 'file' only");
    }
    op.mat_data_json = data.dump();
    if (toml::node* limits = table.get("limits")) {
      auto parsed = read_limits(*limits, what + ": limits");
      if (!parsed) return parsed.error();
      if (parsed->timeout.count()) op.limits.timeout = parsed->timeout;
      if (parsed->max_memory) op.limits.max_memory = parsed->max_memory;
      if (parsed->max_output) op.limits.max_output = parsed->max_output;
    }
    if (toml::node* isolation = table.get("isolation")) {
      std::optional<std::string> value = isolation->value<std::string>();
      if (!value || (*value != "fresh" && *value != "warm")) {
        return fail(isolation->source().begin,
                    what + ": isolation must be \"fresh\" (a fresh sandbox per call) or \"warm\"");
      }
      op.isolation = *value == "warm" ? Isolation::kWarm : Isolation::kFresh;
    }
    if (auto effect = string_key(table, "effect", what); effect) {
      op.effect = *effect;
    } else if (effect.error().kind() != ErrorKind::kNotFound) {
      return effect.error();
    }
    if (auto title = string_key(table, "title", what); title) {
      op.mat_title = *title;
    } else if (title.error().kind() != ErrorKind::kNotFound) {
      return title.error();
    }
    return op;
  }

  Result<void> load_hostcalls(toml::node& node,
                              const std::map<std::string, toml::source_position>& ops) {
    toml::table* table = node.as_table();
    if (!table) return fail(node.source().begin, "'hostcalls' must be a table ([hostcalls])");
    for (auto&& [key, value] : *table) {
      std::string name(key.str());
      std::string what = "hostcalls." + name;
      toml::table* target = value.as_table();
      if (!target) {
        return fail(value.source().begin,
                    what + " must be a table: { op = \"NAME\" } or { url = \"http://...\" }");
      }
      HostcallTarget entry;
      entry.name = name;
      for (auto&& [field, field_value] : *target) {
        std::string field_name(field.str());
        if (field_name == "op" || field_name == "url") {
          if (!field_value.is_string()) {
            return fail(field_value.source().begin, what + "." + field_name + " must be a string");
          }
          (field_name == "op" ? entry.op : entry.url) = *field_value.value<std::string>();
        } else if (field_name == "timeout") {
          std::optional<std::string> text = field_value.value<std::string>();
          auto duration =
              text ? parse_duration(*text)
                   : Result<std::chrono::milliseconds>(Error(ErrorKind::kConfig, "not a string"));
          if (!duration || duration->count() <= 0) {
            return fail(field_value.source().begin,
                        what + ".timeout must be a positive duration (\"5s\")");
          }
          entry.timeout = *duration;
        } else {
          return fail(field.source().begin,
                      what + ": unknown key '" + field_name + "' (op, url, timeout)");
        }
      }
      if (entry.op.empty() == entry.url.empty()) {
        return fail(value.source().begin, what + ": give exactly one of 'op' or 'url'");
      }
      if (!entry.op.empty() && !ops.count(entry.op)) {
        return fail(value.source().begin,
                    what + ": no op named '" + entry.op + "' in the manifest");
      }
      if (!entry.url.empty()) {
        if (entry.url.rfind("http://", 0) != 0) {
          return fail(value.source().begin,
                      what + ": url must start with http:// (got '" + entry.url + "')");
        }
        std::string authority = entry.url.substr(7, entry.url.find('/', 7) - 7);
        if (authority.empty()) return fail(value.source().begin, what + ": url has no host");
      }
      manifest_.hostcalls.push_back(std::move(entry));
    }
    return {};
  }

  std::string path_;
  fs::path base_;
  OpsManifest manifest_;
  OpLimits defaults_;
  uint64_t source_bytes_ = 0;
};

}  // namespace

Result<OpsManifest> load_ops_manifest(const std::string& path) {
  return ManifestLoader(path).load();
}

}  // namespace terrarium
