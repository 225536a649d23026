// Sandbox::interrupt from another thread: a runaway loop, a sleeping guest,
// a guest inside a host function and a `python -c` run are each stopped on
// demand; an interrupt with no call running changes nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "terrarium/runtime.h"
#include "terrarium/sandbox.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::unique_ptr<terrarium::Sandbox> make_sandbox() {
  auto runtime = terrarium::Runtime::create();
  EXPECT_TRUE(runtime) << runtime.error().to_string();
  terrarium::SandboxConfig config;
  config.limits.timeout = 60s;  // far beyond the test: only interrupt() can stop it
  auto sandbox = (*runtime)->new_sandbox(std::move(config));
  EXPECT_TRUE(sandbox) << sandbox.error().to_string();
  return std::move(*sandbox);
}

// Calls interrupt() until it reports a running call (the guest may not have
// started yet), then returns.
void interrupt_when_running(terrarium::Sandbox& sandbox) {
  auto start = Clock::now();
  while (!sandbox.interrupt()) {
    ASSERT_LT(Clock::now() - start, 30s) << "the call never started";
    std::this_thread::sleep_for(1ms);
  }
}

TEST(SandboxInterrupt, StopsARunawayLoopFromAnotherThread) {
  auto sandbox = make_sandbox();
  auto start = Clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    interrupt_when_running(*sandbox);
  });
  auto result = sandbox->exec("while True:\n    pass\n");
  stopper.join();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind(), terrarium::ErrorKind::kInterrupted)
      << result.error().to_string();
  EXPECT_LT(Clock::now() - start, 20s);
  EXPECT_TRUE(sandbox->spent());
  auto again = sandbox->exec("x = 1");
  ASSERT_FALSE(again);  // spent, as after a timeout
}

TEST(SandboxInterrupt, StopsASleepingGuest) {
  auto sandbox = make_sandbox();
  auto start = Clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    interrupt_when_running(*sandbox);
  });
  auto result = sandbox->exec("import time\ntime.sleep(50)\n");
  stopper.join();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind(), terrarium::ErrorKind::kInterrupted);
  EXPECT_LT(Clock::now() - start, 20s);
}

TEST(SandboxInterrupt, AGuestInsideAHostFunctionStopsWhenTheFunctionReturns) {
  auto sandbox = make_sandbox();
  bool function_finished = false;
  ASSERT_TRUE(sandbox->define("slow", [&](const std::string&) {
    std::this_thread::sleep_for(300ms);
    function_finished = true;
    return std::string("ok");
  }));
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    interrupt_when_running(*sandbox);
  });
  auto result =
      sandbox->exec("import terrarium\nterrarium.host.slow(b'')\nwhile True:\n    pass\n");
  stopper.join();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind(), terrarium::ErrorKind::kInterrupted);
  EXPECT_TRUE(function_finished);  // host code always finishes
}

TEST(SandboxInterrupt, WithNoCallRunningNothingHappens) {
  auto sandbox = make_sandbox();
  EXPECT_FALSE(sandbox->interrupt());
  ASSERT_TRUE(sandbox->exec("import terrarium\n@terrarium.export\ndef one(_):\n    return 1\n"));
  EXPECT_FALSE(sandbox->interrupt());
  auto value = sandbox->call_json("one", nullptr);
  ASSERT_TRUE(value) << value.error().to_string();
  EXPECT_EQ(*value, 1);
  EXPECT_FALSE(sandbox->spent());
}

TEST(SandboxInterrupt, StopsRunMain) {
  terrarium::SandboxConfig config;
  config.args = {"python", "-c", "while True: pass"};
  config.limits.timeout = 60s;
  auto sandbox = terrarium::Sandbox::create(std::move(config));
  ASSERT_TRUE(sandbox) << sandbox.error().to_string();
  std::thread stopper([&] { interrupt_when_running(**sandbox); });
  auto status = (*sandbox)->run_main();
  stopper.join();
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().kind(), terrarium::ErrorKind::kInterrupted);
}

TEST(SandboxInterrupt, AnOuterCallIsStoppedWhileItsHostFunctionRunsAnotherSandbox) {
  auto outer = make_sandbox();
  auto inner = make_sandbox();
  ASSERT_TRUE(
      inner->exec("import terrarium, time\n@terrarium.export\ndef work(_):\n"
                  "    t = time.monotonic()\n    while time.monotonic() - t < 0.5:\n"
                  "        pass\n    return 7\n"));
  std::string inner_result;
  ASSERT_TRUE(outer->define_json_text("inner", [&](const std::string&) {
    auto value = inner->call_json_text("work", "null");
    inner_result = value ? *value : value.error().to_string();
    return inner_result;
  }));
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    interrupt_when_running(*outer);
  });
  auto result = outer->exec("import terrarium\nterrarium.host.inner()\nwhile True:\n    pass\n");
  stopper.join();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().kind(), terrarium::ErrorKind::kInterrupted);
  EXPECT_EQ(inner_result, "7");  // the inner sandbox's call was not the one stopped
  EXPECT_FALSE(inner->spent());
}

}  // namespace
