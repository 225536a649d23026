// The SE2 plugin runner: a sandbox with the plugin directory mounted at
// /plugin (read-only), three host functions behind the guest's `sdk` module,
// and a bootstrap export that calls run_e.
#include "terrarium/plugin.h"

#include <sys/stat.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>

namespace terrarium {
namespace {

constexpr const char* kBootstrap = R"PY(
import sys as _se2_sys
_se2_sys.path.insert(0, "/plugin")
import terrarium as _se2_terrarium
import plugin as _se2_plugin

if not callable(getattr(_se2_plugin, "run_e", None)):
    raise LookupError("plugin.py defines no run_e(payload, ident)")


@_se2_terrarium.export("__se2_run_e")
def _se2_run_e(request):
    ident, _, payload = request.partition(b"\n")
    _se2_plugin.run_e(payload.decode("utf-8", "surrogateescape"), int(ident))
)PY";

}  // namespace

struct Plugin::State {
  int64_t ident = 0;
  std::optional<std::string> result;
  std::optional<std::pair<int64_t, std::string>> error;  // code, message
};

Plugin::~Plugin() = default;

const std::string& Plugin::name() const { return name_; }
Sandbox& Plugin::sandbox() { return *sandbox_; }

Result<std::unique_ptr<Plugin>> Plugin::load(const Runtime& runtime, const std::string& directory,
                                             PluginOptions options) {
  std::filesystem::path path(directory);
  std::string name = std::filesystem::absolute(path).lexically_normal().filename().string();
  if (name.empty())
    name = std::filesystem::absolute(path).lexically_normal().parent_path().filename().string();
  struct stat info {};
  if (stat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return Error(ErrorKind::kNotFound, "plugin '" + name + "': no directory '" + directory + "'");
  }
  if (stat((path / "plugin.py").c_str(), &info) != 0) {
    return Error(ErrorKind::kNotFound,
                 "plugin '" + name + "': '" + directory + "' contains no plugin.py");
  }
  SandboxConfig config = std::move(options.config);
  if (config.args.empty()) config.args = {"plugin"};
  config.mounts.push_back({directory, "/plugin", true});
  auto sandbox = runtime.new_sandbox(std::move(config));
  if (!sandbox) {
    return Error(sandbox.error().kind(), "plugin '" + name + "': " + sandbox.error().message());
  }

  std::unique_ptr<Plugin> plugin(new Plugin());
  plugin->name_ = name;
  plugin->state_ = std::make_unique<State>();
  plugin->sandbox_ = std::move(*sandbox);
  State* state = plugin->state_.get();
  Sandbox& box = *plugin->sandbox_;

  auto log = options.log;
  if (!log) {
    log = [name](std::string_view line) {
      std::fprintf(stderr, "[plugin %s] %.*s\n", name.c_str(), static_cast<int>(line.size()),
                   line.data());
    };
  }
  // sdk.return_result: raw bytes "IDENT\nRESULT".
  (void)box.define("se2.return_result", [state](const std::string& payload) -> std::string {
    size_t newline = payload.find('\n');
    int64_t ident = 0;
    if (newline == std::string::npos ||
        std::from_chars(payload.data(), payload.data() + newline, ident).ec != std::errc()) {
      throw std::invalid_argument("return_result: malformed request");
    }
    if (ident == state->ident && !state->result && !state->error) {
      state->result = payload.substr(newline + 1);
    }
    return {};
  });
  (void)box.define_json("se2.return_error", [state](const nlohmann::json& value) -> nlohmann::json {
    int64_t ident = value.at("ident").get<int64_t>();
    if (ident == state->ident && !state->result && !state->error) {
      state->error.emplace(value.at("code").get<int64_t>(), value.at("message").get<std::string>());
    }
    return nullptr;
  });
  (void)box.define_json("se2.log", [log](const nlohmann::json& value) -> nlohmann::json {
    log(value.is_string() ? value.get<std::string>() : value.dump());
    return nullptr;
  });

  auto loaded = box.exec(kBootstrap, "<se2 plugin loader>");
  if (!loaded) {
    const Error& error = loaded.error();
    ErrorKind kind = error.python_type() == "LookupError" ? ErrorKind::kNotFound : error.kind();
    std::string message = error.message();
    const std::string prefix = "exec of '<se2 plugin loader>' raised ";
    if (message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
    Error wrapped(kind, "plugin '" + name + "' failed to load: " + message, error.details());
    wrapped.set_python_type(error.python_type());
    return wrapped;
  }
  return plugin;
}

Result<std::string> Plugin::run(std::string_view payload, int64_t ident) {
  state_->ident = ident;
  state_->result.reset();
  state_->error.reset();
  std::string request = std::to_string(ident) + "\n";
  request.append(payload);
  auto called = sandbox_->call("__se2_run_e", request);
  if (!called) {
    const Error& error = called.error();
    std::string message = error.message();
    const std::string prefix = "export '__se2_run_e' ";
    if (message.rfind(prefix, 0) == 0) message = "run_e " + message.substr(prefix.size());
    Error wrapped(error.kind(), "plugin '" + name_ + "': " + message, error.details());
    wrapped.set_python_type(error.python_type());
    return wrapped;
  }
  if (state_->result) return std::move(*state_->result);
  if (state_->error) {
    return Error(ErrorKind::kGuestError, "plugin '" + name_ + "' returned error " +
                                             std::to_string(state_->error->first) + ": " +
                                             state_->error->second);
  }
  return Error(ErrorKind::kGuestError,
               "plugin '" + name_ +
                   "' returned neither a result nor an error (run_e must call "
                   "sdk.return_result or sdk.return_error)");
}

}  // namespace terrarium
