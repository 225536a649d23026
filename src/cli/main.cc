// The `terrarium` command.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/confinement.h"
#include "cli/functions_command.h"
#include "cli/options.h"
#include "cli/serve_command.h"
#include "terrarium/plugin.h"
#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"

namespace {

constexpr int kExitUsage = 2;
constexpr int kExitTimeout = 124;
constexpr int kExitTrap = 125;

int fail(const std::string& message, int status = kExitUsage) {
  std::fprintf(stderr, "terrarium: %s\n", message.c_str());
  return status;
}

struct RunOptions {
  std::vector<std::string> dirs;
  std::vector<std::string> envs;
  std::string code;
  std::string module;
  std::string max_memory, timeout, cpu_timeout, max_output, max_written;
  uint32_t max_files = 0;
  bool unbuffered = false;
  bool no_confine = !terrarium::cli::kConfineByDefault;
  std::vector<std::string> rest;  // script and its args (or args after -c/-m)
};

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t written = ::write(fd, text.data(), text.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    text.remove_prefix(static_cast<size_t>(written));
  }
}

// When `script` ran alone as /script/NAME and failed to import a module that
// lies beside it on the host, the command that mounts its folder.
std::string neighbour_hint(const std::string& script, const std::string& stderr_tail) {
  static const std::string kMarker = "ModuleNotFoundError: No module named '";
  size_t at = stderr_tail.rfind(kMarker);
  if (at == std::string::npos) return "";
  size_t start = at + kMarker.size();
  size_t end = stderr_tail.find('\'', start);
  if (end == std::string::npos) return "";
  std::string module = stderr_tail.substr(start, end - start);
  std::string top = module.substr(0, module.find('.'));
  if (top.empty()) return "";
  std::filesystem::path folder = std::filesystem::path(script).parent_path();
  std::error_code error;
  bool beside = std::filesystem::is_regular_file(folder / (top + ".py"), error) ||
                std::filesystem::is_directory(folder / top, error);
  if (!beside) return "";
  std::string host_folder = folder.empty() ? "." : folder.string();
  std::string name = std::filesystem::path(script).filename().string();
  return "'" + top + "' lies beside " + name +
         " on the host, but the script ran alone (as /script/" + name +
         "); mount its folder to import its neighbours: terrarium run --dir " + host_folder +
         "::/app:ro /app/" + name;
}

int run(RunOptions& options) {
  terrarium::SandboxConfig config;
  std::string lone_script;  // set when the script is given to the guest alone
  config.args.push_back("python");
  if (options.unbuffered) config.args.push_back("-u");
  for (const auto& spec : options.dirs) {
    auto mount = terrarium::cli::parse_mount(spec);
    if (!mount) return fail(mount.error().message());
    config.mounts.push_back(*mount);
  }
  for (const auto& entry : options.envs) {
    if (entry.find('=') == std::string::npos || entry[0] == '=') {
      return fail("--env '" + entry + "': expected KEY=VALUE");
    }
    config.env.push_back(entry);
  }
  auto set_size = [&](const std::string& flag, const std::string& text, uint64_t* out) -> bool {
    if (text.empty()) return true;
    auto value = terrarium::cli::parse_size(text);
    if (!value) {
      fail(flag + " '" + text + "': " + value.error().message());
      return false;
    }
    *out = *value;
    return true;
  };
  auto set_duration = [&](const std::string& flag, const std::string& text,
                          std::chrono::milliseconds* out) -> bool {
    if (text.empty()) return true;
    auto value = terrarium::cli::parse_duration(text);
    if (!value) {
      fail(flag + " '" + text + "': " + value.error().message());
      return false;
    }
    *out = *value;
    return true;
  };
  terrarium::Limits& limits = config.limits;
  if (!set_size("--max-memory", options.max_memory, &limits.max_memory_bytes) ||
      !set_size("--max-output", options.max_output, &limits.max_output_bytes) ||
      !set_size("--max-written", options.max_written, &limits.max_written_bytes) ||
      !set_duration("--timeout", options.timeout, &limits.timeout) ||
      !set_duration("--cpu-timeout", options.cpu_timeout, &limits.cpu_timeout)) {
    return kExitUsage;
  }
  limits.max_open_files = options.max_files;

  if (!options.code.empty() && !options.module.empty()) return fail("-c and -m exclude each other");
  if (!options.code.empty()) {
    config.args.push_back("-c");
    config.args.push_back(options.code);
    config.args.insert(config.args.end(), options.rest.begin(), options.rest.end());
  } else if (!options.module.empty()) {
    config.args.push_back("-m");
    config.args.push_back(options.module);
    config.args.insert(config.args.end(), options.rest.begin(), options.rest.end());
  } else if (!options.rest.empty()) {
    const std::string& script = options.rest[0];
    auto guest_path = terrarium::cli::guest_path_for(script, config.mounts);
    std::error_code error;
    bool host_file = std::filesystem::is_regular_file(script, error);
    if (guest_path) {
      if (access(script.c_str(), R_OK) != 0) {
        return fail("can't open file '" + script + "': " + std::strerror(errno));
      }
    } else if (!host_file) {
      // Not a host file: a guest path, as wasmtime's and Wagi's configs
      // write it, if a mount's guest path holds it.
      auto behind = terrarium::cli::host_file_for(script, config.mounts);
      if (!behind) {
        std::string message = "can't open file '" + script + "': " + std::strerror(ENOENT);
        if (config.mounts.empty()) {
          message += " (nor is it a guest path: no --dir is mounted)";
        } else {
          message += " (nor is it under a mount's guest path; mounts checked:";
          for (const auto& mount : config.mounts) {
            message += " " + mount.guest_path + " <- " + mount.host_path + ",";
          }
          message.back() = ')';
        }
        return fail(message);
      }
      const terrarium::Mount& mount = config.mounts[behind->mount_index];
      if (!std::filesystem::is_regular_file(behind->host_path, error)) {
        return fail("can't open file '" + script + "': the guest path lies in the mount " +
                    mount.guest_path + " <- " + mount.host_path + ", but '" + behind->host_path +
                    "' is not a file on the host");
      }
      guest_path = std::filesystem::path(script).lexically_normal().string();
    } else {
      // Not inside a mount: give the guest this one file, read-only.
      std::ifstream in(script, std::ios::binary);
      if (!in) {
        return fail("can't open file '" + script + "': " + std::strerror(errno));
      }
      std::ostringstream contents;
      contents << in.rdbuf();
      std::string name = std::filesystem::path(script).filename().string();
      guest_path = "/script/" + name;
      config.files.push_back({*guest_path, contents.str()});
      lone_script = script;
    }
    config.args.push_back(*guest_path);
    config.args.insert(config.args.end(), options.rest.begin() + 1, options.rest.end());
  }
  // A script that ran alone cannot import its neighbours: the tail of stderr
  // tells whether it tried, so that the way out can be named.
  std::string stderr_tail;
  if (!lone_script.empty()) {
    config.stderr_output.host_fd = -1;
    config.stderr_output.callback = [&stderr_tail](std::string_view text) {
      write_all(2, text);
      stderr_tail.append(text);
      if (stderr_tail.size() > 8192) stderr_tail.erase(0, stderr_tail.size() - 4096);
    };
  }
  config.stdin_fd = 0;

  // The second wall: the filesystem one before the sandbox exists (it holds
  // for threads started from here on), the system-call one once start-up is
  // done.
  if (!options.no_confine) {
    terrarium::cli::FilesystemWall wall;
    terrarium::cli::add_process_basics(&wall);
    for (const terrarium::Mount& mount : config.mounts) {
      wall.paths.push_back({mount.host_path, !mount.read_only});
    }
    auto built = terrarium::cli::build_filesystem_wall(wall);
    if (!built) return fail(built.error().message(), 1);
    if (!built->note.empty()) std::fprintf(stderr, "terrarium run: %s\n", built->note.c_str());
  }
  auto sandbox = terrarium::Sandbox::create(std::move(config));
  if (!sandbox) return fail(sandbox.error().message());
  if (!options.no_confine) {
    auto walled = terrarium::cli::build_system_call_wall({});
    if (!walled) return fail(walled.error().message(), 1);
  }
  auto status = (*sandbox)->run_main();
  if (!lone_script.empty() && !(status && *status == 0)) {
    std::string hint = neighbour_hint(lone_script, stderr_tail);
    if (!hint.empty()) {
      std::fflush(stdout);
      std::fprintf(stderr, "terrarium: %s\n", hint.c_str());
    }
  }
  if (!status) {
    const terrarium::Error& error = status.error();
    std::fflush(stdout);
    switch (error.kind()) {
      case terrarium::ErrorKind::kTimeout:
        return fail(error.message(), kExitTimeout);
      case terrarium::ErrorKind::kLimit:
        return fail("limit exceeded: " + error.message(), kExitTrap);
      default:
        return fail(error.message(), kExitTrap);
    }
  }
  return *status;
}

struct PluginOptions {
  std::string directory;
  std::string payload;
  int64_t ident = 0;
  std::vector<std::string> envs;
  std::string max_memory, timeout;
  std::string result_file;
};

// `terrarium plugin run DIR --payload TEXT`: an SE2 plugin's run_e, its
// result on stdout (or in --result-file); what the plugin prints goes to
// stderr, so that a script can consume the result.
int plugin_run(const PluginOptions& options) {
  terrarium::PluginOptions plugin_options;
  plugin_options.config.stdout_output = {2, {}};
  for (const auto& entry : options.envs) {
    if (entry.find('=') == std::string::npos || entry[0] == '=') {
      return fail("--env '" + entry + "': expected KEY=VALUE");
    }
    plugin_options.config.env.push_back(entry);
  }
  if (!options.max_memory.empty()) {
    auto value = terrarium::cli::parse_size(options.max_memory);
    if (!value)
      return fail("--max-memory '" + options.max_memory + "': " + value.error().message());
    plugin_options.config.limits.max_memory_bytes = *value;
  }
  if (!options.timeout.empty()) {
    auto value = terrarium::cli::parse_duration(options.timeout);
    if (!value) return fail("--timeout '" + options.timeout + "': " + value.error().message());
    plugin_options.config.limits.timeout = *value;
  }
  auto runtime = terrarium::Runtime::create();
  if (!runtime) return fail(runtime.error().message(), 1);
  auto plugin = terrarium::Plugin::load(**runtime, options.directory, std::move(plugin_options));
  if (!plugin) {
    if (!plugin.error().details().empty()) std::fputs(plugin.error().details().c_str(), stderr);
    return fail(plugin.error().message(), 1);
  }
  auto result = (*plugin)->run(options.payload, options.ident);
  std::fflush(stdout);
  if (!result) {
    if (!result.error().details().empty()) std::fputs(result.error().details().c_str(), stderr);
    return fail(result.error().message(), 1);
  }
  if (!options.result_file.empty()) {
    std::ofstream out(options.result_file, std::ios::binary | std::ios::trunc);
    out.write(result->data(), static_cast<std::streamsize>(result->size()));
    out.close();
    if (!out) {
      return fail("--result-file '" + options.result_file + "': " + std::strerror(errno), 1);
    }
    return 0;
  }
  std::fwrite(result->data(), 1, result->size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Terrarium runs untrusted Python (CPython 3.11 compiled to WebAssembly) in a sandbox.\n"
      "The guest sees only what is mounted; the standard library is built in."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "terrarium 0.1.0 (CPython 3.11.2, wasm32-wasi)");

  RunOptions options;
  CLI::App* run_command = app.add_subcommand(
      "run",
      "Run Python in a fresh sandbox, like `python`: a script, -c CODE, -m MODULE, or the\n"
      "interactive prompt when stdin is a terminal. The script's exit status is passed\n"
      "through. Exit status 2: bad usage; 124: timeout; 125: the guest trapped or hit a limit.");
  run_command
      ->add_option(
          "--dir", options.dirs,
          "Mount a host directory: HOST::GUEST[:ro] (e.g. --dir ./app::/app:ro), GUEST from\n"
          "the root. Repeatable. Nothing else of the host filesystem is visible.\n"
          "A script is named by its host path or by its guest path (/app/main.py);\n"
          "a script outside every mount runs alone, as /script/NAME.")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run_command
      ->add_option("--env", options.envs,
                   "Set an environment variable KEY=VALUE in the guest (repeatable).\n"
                   "The host's environment is never passed.")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  run_command->add_option("-c", options.code, "Program passed in as a string");
  run_command->add_option("-m", options.module, "Run a library module as a script");
  run_command->add_flag("-u", options.unbuffered, "Unbuffered stdout and stderr");
  run_command->add_option("--max-memory", options.max_memory,
                          "Linear-memory limit, e.g. 256M (default: 4G, the wasm32 maximum)");
  run_command->add_option("--timeout", options.timeout,
                          "Wall-clock deadline, e.g. 2s, 500ms, 1m (default: none)");
  run_command->add_option("--cpu-timeout", options.cpu_timeout,
                          "CPU-time deadline, e.g. 2s (default: none)");
  run_command->add_option("--max-output", options.max_output,
                          "Limit on bytes written to stdout+stderr, e.g. 10M (default: none)");
  run_command->add_option("--max-files", options.max_files,
                          "Limit on files the guest has open at once (default: 1024)");
  run_command->add_option("--max-written", options.max_written,
                          "Limit on bytes written to writable mounts (default: none)");
  run_command->add_flag("--no-confine", options.no_confine, terrarium::cli::kNoConfineHelp);
  PluginOptions plugin_options;
  CLI::App* plugin_command =
      app.add_subcommand("plugin", "SE2 plugins (a directory with plugin.py)");
  plugin_command->require_subcommand(1);
  CLI::App* plugin_run_command = plugin_command->add_subcommand(
      "run",
      "Load DIR/plugin.py (DIR mounted read-only at /plugin) and call run_e(payload, ident).\n"
      "Prints what it passed to sdk.return_result on stdout (or writes it, as is, to\n"
      "--result-file); the plugin's own print output and errors go to stderr; exit status 1\n"
      "on an error.");
  plugin_run_command->add_option("dir", plugin_options.directory, "Plugin directory")->required();
  plugin_run_command->add_option("--payload", plugin_options.payload, "The payload (text)");
  plugin_run_command->add_option("--ident", plugin_options.ident, "The request ident (default 0)");
  plugin_run_command->add_option("--env", plugin_options.envs, "Guest environment KEY=VALUE")
      ->expected(1);
  plugin_run_command->add_option("--max-memory", plugin_options.max_memory, "Linear-memory limit");
  plugin_run_command->add_option("--timeout", plugin_options.timeout, "Wall-clock deadline");
  plugin_run_command->add_option(
      "--result-file", plugin_options.result_file,
      "Write the result to this file (exactly its bytes) instead of stdout");

  terrarium::cli::ServeCommand serve_command;
  serve_command.add_to(app);
  terrarium::cli::FunctionsCommand functions_command;
  functions_command.add_to(app);

  std::vector<std::string> script_placeholder;
  run_command->add_option("script", script_placeholder,
                          "Script to run, then its arguments (everything after the script,\n"
                          "or after -c CODE / -m MODULE, is passed to Python as sys.argv)");

  // As with `python`, everything after the script (or after -c CODE or
  // -m MODULE) belongs to the script: split it off before CLI11 sees it.
  std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<std::string> head = args;
  if (!args.empty() && args[0] == "run") {
    size_t split = args.size();
    for (size_t i = 1; i < args.size(); ++i) {
      const std::string& arg = args[i];
      if (arg == "--") {
        options.rest.assign(args.begin() + i + 1, args.end());
        split = i;
        break;
      }
      if (arg == "-c" || arg == "-m") {
        split = std::min(i + 2, args.size());
        options.rest.assign(args.begin() + split, args.end());
        break;
      }
      if (arg.size() > 1 && arg[0] == '-') {
        // Options that take a value swallow the next argument; unknown ones
        // are left for CLI11 to report.
        CLI::Option* option = nullptr;
        if (arg.find('=') == std::string::npos) {
          try {
            option = run_command->get_option(arg);
          } catch (const CLI::OptionNotFound&) {
          }
        }
        if (option && option->get_expected_min() > 0) ++i;
        continue;
      }
      split = i;
      options.rest.assign(args.begin() + i, args.end());
      break;
    }
    head.assign(args.begin(), args.begin() + std::min(split, args.size()));
  }
  std::reverse(head.begin(), head.end());  // CLI11 takes a reversed vector

  try {
    app.parse(head);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here with 0; every real parse error is usage.
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  if (run_command->parsed()) return run(options);
  if (plugin_run_command->parsed()) return plugin_run(plugin_options);
  if (serve_command.parsed()) return serve_command.run();
  if (functions_command.parsed()) return functions_command.run();
  return 0;
}
