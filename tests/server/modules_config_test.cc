// modules.toml: what loads, and what every broken file answers (file, line,
// column, module and key named).
#include "server/modules_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;
using terrarium::server::load_modules_config;
using terrarium::server::ModuleConfig;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/terrarium-config-test-XXXXXX";
    dir_ = mkdtemp(pattern);
    fs::create_directories(dir_ / "code");
    write("code/env.py", "print('Content-Type: text/plain\\n')\n");
    write("app.py", "print('Content-Type: text/plain\\n')\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    fs::create_directories((dir_ / name).parent_path());
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  // The error of loading `toml`, or "" if it loaded.
  std::string error_of(const std::string& toml) {
    auto config = load_modules_config(write("modules.toml", toml));
    return config ? "" : config.error().message();
  }
  fs::path dir_;
};

TEST_F(ConfigTest, WagisPythonSetupLoads) {
  fs::create_directories(dir_ / "opt/wasi-python/bin");
  write("opt/wasi-python/bin/python3.wasm", "\0asm");
  auto config = load_modules_config(write("modules.toml", R"(
[[module]]
route = "/"
module = "opt/wasi-python/bin/python3.wasm"
volumes = { "/opt" = "opt", "/code" = "code" }
argv = "python /code/env.py ${ARGS}"
)"));
  ASSERT_TRUE(config) << config.error().message();
  ASSERT_EQ(config->modules.size(), 1u);
  const ModuleConfig& module = config->modules[0];
  EXPECT_EQ(module.kind, ModuleConfig::Kind::kInterpreter);
  EXPECT_EQ(module.script_guest_path, "/code/env.py");
  EXPECT_EQ(module.script_host_path, (dir_ / "code/env.py").string());
  EXPECT_EQ(module.argv_script_index, 1u);
  ASSERT_EQ(module.volumes.size(), 2u);
  EXPECT_EQ(module.volumes[0].guest_path, "/opt");  // file order, not sorted
  EXPECT_EQ(module.volumes[1].guest_path, "/code");
  EXPECT_EQ(module.volumes[1].host_path, (dir_ / "code").string());
  EXPECT_FALSE(module.volumes[0].read_only);
  bool noted = false;
  for (const auto& note : config->notes) noted |= note.find("built-in") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(ConfigTest, ScriptsRoutesAndTerrariumKeys) {
  auto config = load_modules_config(write("modules.toml", R"(
default_host = "localhost:3000"

[[module]]
route = "/code/..."
module = "code/env.py"
volumes = { "/code" = { path = "code", read_only = true } }
environment = { GREETING = "hi", COUNT = 3 }
limits = { timeout = "2s", max_memory = "128M", max_output = 1024, max_written = "1M" }
pool = { strategy = "clone", prefill = false }
allowed_hosts = ["https://example.com"]
http_max_concurrency = 4
mystery = true

[[module]]
route = "/alone"
module = "app.py"
)"));
  ASSERT_TRUE(config) << config.error().message();
  ASSERT_EQ(config->modules.size(), 2u);
  const ModuleConfig& first = config->modules[0];
  EXPECT_EQ(first.kind, ModuleConfig::Kind::kScript);
  EXPECT_TRUE(first.pattern.wildcard);
  EXPECT_EQ(first.script_guest_path, "/code/env.py");  // inside its volume
  EXPECT_TRUE(first.volumes[0].read_only);
  EXPECT_EQ(first.environment, (std::vector<std::string>{"GREETING=hi", "COUNT=3"}));
  EXPECT_EQ(first.timeout->count(), 2000);
  EXPECT_EQ(*first.max_memory, 128u << 20);
  EXPECT_EQ(*first.max_output, 1024u);
  EXPECT_EQ(*first.max_written, 1u << 20);
  EXPECT_EQ(first.pool_strategy, "clone");
  EXPECT_FALSE(first.pool_prefill);
  EXPECT_EQ(config->modules[1].script_guest_path, "/script/app.py");  // alone
  std::string notes;
  for (const auto& note : config->notes) notes += note + "\n";
  EXPECT_NE(notes.find("default_host"), std::string::npos) << notes;
  EXPECT_NE(notes.find("mystery"), std::string::npos) << notes;
  EXPECT_NE(notes.find("allowed_hosts"), std::string::npos) << notes;
  EXPECT_NE(notes.find(":13:1:"), std::string::npos) << notes;  // where 'mystery' is
}

TEST_F(ConfigTest, BrokenFilesNameFileLineColumnAndKey) {
  std::string file = (dir_ / "modules.toml").string();
  struct Case {
    std::string toml;
    std::string expected;  // a part of the message
  };
  std::vector<Case> cases = {
      {"[[module]\nroute = \"/\"\n", file + ":1:"},
      {"[[module]]\nroute = \"/\"\nmodule = \n", file + ":3:"},
      {"title = \"x\"\n", "no [[module]] table"},
      {"module = \"app.py\"\n", "must be an array of tables"},
      {"[[module]]\nmodule = \"app.py\"\n", "[[module]] #1: missing required key 'route'"},
      {"[[module]]\nroute = 3\nmodule = \"app.py\"\n",
       file + ":2:9: [[module]] #1: 'route' must be a string, not an integer"},
      {"[[module]]\nroute = \"nope\"\nmodule = \"app.py\"\n", "route 'nope' must start with '/'"},
      {"[[module]]\nroute = \"/\"\n", "(route \"/\"): missing required key 'module'"},
      {"[[module]]\nroute = \"/\"\nmodule = \"missing.py\"\n",
       file +
           ":3:10: [[module]] #1 (route \"/\"): script 'missing.py' does not exist (looked for " +
           (dir_ / "missing.py").string() + ")"},
      {"[[module]]\nroute = \"/\"\nmodule = \"code\"\n", "script 'code' is not a file"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nvolumes = { \"/data\" = \"nodir\" }\n",
       file + ":4:23: [[module]] #1 (route \"/\"): volume '/data': host directory 'nodir' does not "
              "exist"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nvolumes = { \"data\" = \"code\" }\n",
       "volume guest path 'data' must be absolute"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nvolumes = [\"code\"]\n",
       "'volumes' must be a table"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nvolumes = { \"/c\" = { path = \"code\", rw "
       "= 1 } }\n",
       "unknown setting 'rw'"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nlimits = { timeout = \"soon\" }\n",
       file + ":4:22: [[module]] #1 (route \"/\"): limits.timeout 'soon': not a duration"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nlimits = { max_memory = \"lots\" }\n",
       "limits.max_memory 'lots': not a size"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nlimits = { cpu = 1 }\n",
       "unknown limit 'cpu'"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\npool = { strategy = \"fast\" }\n",
       "pool.strategy must be \"reset\""},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nenvironment = { A = [1] }\n",
       "environment.A must be a string, not an array"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nentrypoint = \"hello\"\n",
       "entrypoint 'hello' is not supported"},
      {"[[module]]\nroute = \"/\"\nmodule = \"oci:ghcr.io/x/y\"\n",
       "oci: references are not supported"},
      {"[[module]]\nroute = \"/\"\nmodule = \"hello.wasm\"\n",
       "is a WebAssembly module; terrarium serve runs Python"},
      {"[[module]]\nroute = \"/\"\nmodule = \"python3.wasm\"\n", "no 'argv' names the script"},
      {"[[module]]\nroute = \"/\"\nmodule = \"python3.wasm\"\nargv = \"python ${ARGS}\"\n",
       "names no script"},
      {"[[module]]\nroute = \"/\"\nmodule = \"python3.wasm\"\nargv = \"python "
       "/code/none.py\"\nvolumes = { \"/code\" = \"code\" }\n",
       "the script '/code/none.py' named by argv does not exist"},
      {"[[module]]\nroute = \"/\"\nmodule = \"python3.wasm\"\nargv = \"python "
       "/elsewhere/env.py\"\nvolumes = { \"/code\" = \"code\" }\n",
       "is not under any volume (volumes: /code)"},
      {"[[module]]\nroute = \"/\"\nmodule = \"python3.wasm\"\nargv = \"python -m http.server\"\n",
       "python -m is not supported"},
      {"[[module]]\nroute = \"/\"\nmodule = \"app.py\"\nwsgi = \"app:app\"\n", "not both"},
      {"[[module]]\nroute = \"/\"\nwsgi = \"app\"\n", "wsgi 'app' must be \"module:attribute\""},
      {"[[module]]\nroute = \"/\"\nwsgi = \"app:app\"\nwarm_up = 3\n", "warm_up must be a path"},
      {"[[module]]\nroute = \"/\"\nwsgi = \"app:app\"\nwarm_up = \"nope\"\n",
       "warm_up must be a path"},
      {"[[module]]\nroute = \"/\"\nwsgi = \"app:app\"\npython_path = [\"/no/such/dir\"]\n",
       "python_path '/no/such/dir' is not a host directory"},
  };
  for (const Case& c : cases) {
    std::string message = error_of(c.toml);
    EXPECT_NE(message.find(c.expected), std::string::npos)
        << "config:\n"
        << c.toml << "\nmessage: " << message << "\nexpected to contain: " << c.expected;
  }
}

TEST_F(ConfigTest, MissingFileIsNamed) {
  auto config = load_modules_config((dir_ / "nope.toml").string());
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().message().find("nope.toml: cannot read"), std::string::npos);
}

TEST_F(ConfigTest, RelativePathsFallBackToTheWorkingDirectory) {
  fs::create_directories(dir_ / "conf");
  std::string file = write("conf/modules.toml", "[[module]]\nroute = \"/\"\nmodule = \"app.py\"\n");
  auto here = fs::current_path();
  fs::current_path(dir_);
  auto config = load_modules_config(file);
  fs::current_path(here);
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config->modules[0].script_host_path, (dir_ / "app.py").string());
  std::string notes;
  for (const auto& note : config->notes) notes += note;
  EXPECT_NE(notes.find("relative to the working directory"), std::string::npos);
}

}  // namespace

// What Debian's toml++ 3.3.0 would read with undefined behaviour (see
// src/sandbox/toml_text.h) is refused first, naming the place; the same
// characters where TOML allows them still load.
TEST_F(ConfigTest, NonAsciiWhereTomlppMisbehavesIsAClearError) {
  std::string file = (dir_ / "modules.toml").string();
  std::string route = "[[module]]\nroute = \"/\"\nmodule = \"app.py\"\n";
  EXPECT_NE(error_of(route + "caf\xC3\xA9 = 1\n")
                .find(file + ":4:4: a non-ASCII character outside a string"),
            std::string::npos)
      << error_of(route + "caf\xC3\xA9 = 1\n");
  EXPECT_NE(error_of("[[module]]\xC2\xA7\nroute = \"/\"\n").find(file + ":1:11:"),
            std::string::npos);
  std::string after_backslash = route + "text = \"\"\"one \\\n   \xC3\xA9t\xC3\xA9\"\"\"\n";
  EXPECT_NE(error_of(after_backslash)
                .find(file + ":5:4: a non-ASCII character right after a line-ending backslash"),
            std::string::npos)
      << error_of(after_backslash);
  // Allowed: in strings (one-line, multi-line, literal, after an escape), quoted keys, comments.
  EXPECT_EQ(error_of(route + "# caf\xC3\xA9\n\"caf\xC3\xA9\" = \"\xC3\xA9t\xC3\xA9\"\n"
                             "a = 'l\xC3\xA9'\nb = \"\"\"x\n\xC3\xA9\"\"\"\nc = '''\xC3\xA9'''\n"
                             "d = \"\\\"\xC3\xA9\"\ne = \"\"\"\\\"\xC3\xA9\"\"\"\n"),
            "");
}

TEST_F(ConfigTest, ControlCharactersAreAClearError) {
  std::string file = (dir_ / "modules.toml").string();
  std::string with_nul =
      std::string("[[module]]\nroute = \"/") + '\0' + "\"\nmodule = \"app.py\"\n";
  EXPECT_NE(error_of(with_nul).find(file + ":2:11: a control character (byte 0)"),
            std::string::npos)
      << error_of(with_nul);
  EXPECT_NE(error_of("# a \x1b comment\n").find(file + ":1:5: a control character (byte 27)"),
            std::string::npos)
      << error_of("# a \x1b comment\n");
}
