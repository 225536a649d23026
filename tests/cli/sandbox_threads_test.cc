// The translated guest keeps its memory base in a per-thread place: r15
// (tools/split_wasm2c.py --rewrite basereg, the default, set by every export)
// or the GS base (--rewrite gs, set on every entry). Two sandboxes (two
// memories) run CPython on two threads at once — and one of them traps — and
// each sees only its own memory.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "terrarium/sandbox.h"

namespace {

struct GuestRun {
  std::string out;
  std::string error;
  int status = -1;
};

GuestRun run_python(const std::string& code, std::atomic<int>* ready) {
  GuestRun run;
  terrarium::SandboxConfig config;
  config.args = {"python", "-c", code};
  config.stdout_output.callback = [&run](std::string_view s) { run.out.append(s); };
  config.stderr_output.callback = [&run](std::string_view s) { run.out.append(s); };
  auto sandbox = terrarium::Sandbox::create(std::move(config));
  if (!sandbox) {
    run.error = sandbox.error().message();
    return run;
  }
  ready->fetch_add(1);
  while (ready->load() < 2) std::this_thread::yield();
  auto status = (*sandbox)->run_main();
  if (status) run.status = *status;
  else run.error = status.error().message();
  return run;
}

std::string worker(int id) {
  // Different heap contents at the same guest addresses in the two memories.
  return "import sys\n"
         "d = {}\n"
         "for i in range(200000):\n"
         "    d['k%d' % i] = i * " + std::to_string(id) + "\n"
         "s = sum(d.values())\n"
         "print('worker', " + std::to_string(id) + ", s, len(d))\n";
}

TEST(SandboxThreads, TwoGuestsWithDifferentMemoriesAtOnce) {
  std::atomic<int> ready{0};
  GuestRun a, b;
  std::thread ta([&] { a = run_python(worker(3), &ready); });
  std::thread tb([&] { b = run_python(worker(7), &ready); });
  ta.join();
  tb.join();
  ASSERT_EQ(a.error, "");
  ASSERT_EQ(b.error, "");
  EXPECT_EQ(a.status, 0);
  EXPECT_EQ(b.status, 0);
  long long n = 200000, sum = n * (n - 1) / 2;
  EXPECT_EQ(a.out, "worker 3 " + std::to_string(3 * sum) + " 200000\n");
  EXPECT_EQ(b.out, "worker 7 " + std::to_string(7 * sum) + " 200000\n");
}

TEST(SandboxThreads, ATrapOnOneThreadLeavesTheOtherRunning) {
  std::atomic<int> ready{0};
  GuestRun good, bad;
  std::thread tg([&] { good = run_python(worker(5), &ready); });
  std::thread tb([&] {
    bad = run_python("import sys\nsys.setrecursionlimit(10**7)\nx = []\n"
                     "for _ in range(10**6):\n    x = [x]\nrepr(x)\n", &ready);
  });
  tg.join();
  tb.join();
  EXPECT_EQ(good.error, "");
  long long n = 200000, sum = n * (n - 1) / 2;
  EXPECT_EQ(good.out, "worker 5 " + std::to_string(5 * sum) + " 200000\n");
  // Through r15 or %gs the faulting address is still base + offset, so the fault is
  // caught; the sandbox names it by the wrapped guest stack pointer.
  EXPECT_NE(bad.error.find("guest trapped: call stack exhausted"), std::string::npos)
      << bad.error;
}

}  // namespace
