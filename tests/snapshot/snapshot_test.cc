// Snapshots and pools through the public API: isolation between clones,
// reset after traps and limits, reseeded randomness, save/load, threads.
#include "terrarium/snapshot.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "terrarium/runtime.h"

namespace {

using terrarium::ErrorKind;
using terrarium::Pool;
using terrarium::Sandbox;
using terrarium::SandboxConfig;
using terrarium::Snapshot;

constexpr const char* kApp = R"PY(
import json, random, terrarium
counter = 0
seen = []

@terrarium.export
def bump(value):
    global counter
    counter += 1
    seen.append(value)
    return {"counter": counter, "seen": seen}

@terrarium.export
def rand(_):
    return random.random()

@terrarium.export
def spin(_):
    while True:
        pass

@terrarium.export
def hog(megabytes):
    global hoard
    hoard = bytearray(megabytes << 20)
    return len(hoard)

@terrarium.export
def open_file(_):
    global handle
    handle = open("/usr/local/lib/python3.11/os.py")
    return True

@terrarium.export
def env(_):
    import os
    return [os.getcwd(), os.environ.get("MODE"), len(os.listdir("/usr/local/lib/python3.11")) > 100]
)PY";

std::shared_ptr<const Snapshot> make_snapshot(SandboxConfig config = {}) {
  config.env = {"MODE=snap"};
  auto sandbox = Sandbox::create(config);
  EXPECT_TRUE(sandbox.ok());
  auto ran = (*sandbox)->exec(kApp, "app.py");
  EXPECT_TRUE(ran.ok()) << (ran.ok() ? "" : ran.error().to_string());
  auto snapshot = Snapshot::capture(**sandbox);
  EXPECT_TRUE(snapshot.ok()) << (snapshot.ok() ? "" : snapshot.error().to_string());
  return *snapshot;
}

TEST(Snapshot, ClonesStartFromTheCapturedStateAndDoNotLeak) {
  auto snapshot = make_snapshot();
  auto a = snapshot->new_sandbox();
  ASSERT_TRUE(a.ok()) << a.error().to_string();
  auto b = snapshot->new_sandbox();
  ASSERT_TRUE(b.ok());
  auto first = (*a)->call_json("bump", "tenant-a");
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  EXPECT_EQ(*first, (nlohmann::json{{"counter", 1}, {"seen", {"tenant-a"}}}));
  EXPECT_EQ((*(*a)->call_json("bump", "again"))["counter"], 2);
  // The next sandbox from the same snapshot sees nothing of tenant A.
  auto other = (*b)->call_json("bump", "tenant-b");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, (nlohmann::json{{"counter", 1}, {"seen", {"tenant-b"}}}));
  // And a reset puts A back to the snapshot.
  ASSERT_TRUE((*a)->reset().ok());
  EXPECT_EQ((*(*a)->call_json("bump", "after reset"))["seen"], nlohmann::json({"after reset"}));
}

TEST(Snapshot, RandomIsReseededPerSandbox) {
  auto snapshot = make_snapshot();
  std::set<double> values;
  for (int i = 0; i < 5; ++i) {
    auto sandbox = snapshot->new_sandbox();
    ASSERT_TRUE(sandbox.ok());
    values.insert((*(*sandbox)->call_json("rand", nullptr)).get<double>());
    ASSERT_TRUE((*sandbox)->reset().ok());
    values.insert((*(*sandbox)->call_json("rand", nullptr)).get<double>());
  }
  EXPECT_EQ(values.size(), 10u);
}

TEST(Snapshot, WasiStateIsConsistentAfterRestore) {
  auto snapshot = make_snapshot();
  auto sandbox = snapshot->new_sandbox();
  ASSERT_TRUE(sandbox.ok());
  EXPECT_EQ(*(*sandbox)->call_json("env", nullptr), (nlohmann::json{"/", "snap", true}));
  ASSERT_TRUE((*sandbox)->call_json("open_file", nullptr).ok());
  // A snapshot cannot be taken with a guest file open...
  auto refused = Snapshot::capture(**sandbox);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message(),
            "the guest has 1 file(s) open; close them before taking a snapshot");
  // ...and a reset closes it.
  ASSERT_TRUE((*sandbox)->reset().ok());
  EXPECT_TRUE(Snapshot::capture(**sandbox).ok());
}

TEST(Snapshot, ResetRevivesAfterATimeoutAndAfterGrowth) {
  auto snapshot = make_snapshot();
  SandboxConfig config;
  config.limits.timeout = std::chrono::milliseconds(400);
  auto sandbox = snapshot->new_sandbox(config);
  ASSERT_TRUE(sandbox.ok());
  auto spun = (*sandbox)->call_json("spin", nullptr);
  ASSERT_FALSE(spun.ok());
  EXPECT_EQ(spun.error().kind(), ErrorKind::kTimeout);
  EXPECT_TRUE((*sandbox)->spent());
  ASSERT_TRUE((*sandbox)->reset().ok());
  EXPECT_FALSE((*sandbox)->spent());
  auto bumped = (*sandbox)->call_json("bump", 1);
  ASSERT_TRUE(bumped.ok()) << bumped.error().to_string();
  EXPECT_EQ((*bumped)["counter"], 1);
  auto hog = (*sandbox)->call_json("hog", 64);
  ASSERT_TRUE(hog.ok()) << hog.error().to_string();
  EXPECT_EQ(*hog, 64 << 20);
  ASSERT_TRUE((*sandbox)->reset().ok());
  auto small = (*sandbox)->call_json("hog", 1);
  ASSERT_TRUE(small.ok()) << small.error().to_string();
  EXPECT_EQ(*small, 1 << 20);
}

TEST(Snapshot, LimitsApplyToClones) {
  auto snapshot = make_snapshot();
  SandboxConfig small;
  small.limits.max_memory_bytes = snapshot->memory_bytes() + (8 << 20);
  auto sandbox = snapshot->new_sandbox(small);
  ASSERT_TRUE(sandbox.ok()) << sandbox.error().to_string();
  auto hog = (*sandbox)->call_json("hog", 64);
  ASSERT_FALSE(hog.ok());
  EXPECT_EQ(hog.error().python_type(), "MemoryError");
  SandboxConfig tiny;
  tiny.limits.max_memory_bytes = 1 << 20;
  auto refused = snapshot->new_sandbox(tiny);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind(), ErrorKind::kConfig);
  EXPECT_NE(refused.error().message().find("below the snapshot's"), std::string::npos);
}

TEST(Snapshot, SavedAndLoadedByLayout) {
  auto snapshot = make_snapshot();
  std::string path =
      std::filesystem::temp_directory_path() / ("terrarium-snap-" + std::to_string(getpid()));
  ASSERT_TRUE(snapshot->save(path).ok());
  SandboxConfig config;
  config.env = {"MODE=snap"};
  auto loaded = Snapshot::load(path, config);
  ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
  auto sandbox = (*loaded)->new_sandbox();
  ASSERT_TRUE(sandbox.ok()) << sandbox.error().to_string();
  EXPECT_EQ((*(*sandbox)->call_json("bump", "x"))["counter"], 1);
  EXPECT_EQ(*(*sandbox)->call_json("env", nullptr), (nlohmann::json{"/", "snap", true}));

  SandboxConfig different;
  different.env = {"MODE=other"};
  auto refused = Snapshot::load(path, different);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("taken with different env"), std::string::npos)
      << refused.error().message();
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "garbage";
  auto garbage = Snapshot::load(path, config);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message().find("not a Terrarium snapshot file"), std::string::npos);
  std::filesystem::remove(path);
  auto missing = Snapshot::load(path, config);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind(), ErrorKind::kNotFound);
}

TEST(Snapshot, CaptureNeedsAnInitializedSandbox) {
  auto sandbox = Sandbox::create({});
  ASSERT_TRUE(sandbox.ok());
  auto refused = Snapshot::capture(**sandbox);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("initialize() first"), std::string::npos);
  auto plain = Sandbox::create({});
  ASSERT_TRUE(plain.ok());
  auto reset = (*plain)->reset();
  ASSERT_FALSE(reset.ok());
  EXPECT_EQ(reset.error().message(), "reset() needs a sandbox made from a snapshot");
}

TEST(Pool, ManyThreadsNeverSeeEachOthersState) {
  auto snapshot = make_snapshot();
  Pool::Options options;
  options.max_idle = 4;
  options.prefill = 2;
  options.config.limits.timeout = std::chrono::milliseconds(200);
  auto pool = Pool::create(snapshot, options);
  ASSERT_TRUE(pool.ok()) << pool.error().to_string();
  EXPECT_EQ((*pool)->idle(), 2u);
  std::atomic<int> failures{0};
  auto worker = [&](int id) {
    for (int i = 0; i < 150; ++i) {
      auto lease = (*pool)->acquire();
      if (!lease.ok()) {
        failures++;
        continue;
      }
      auto result = (*lease)->call_json("bump", id * 1000 + i);
      // Every lease starts from the snapshot: counter 1, only our value.
      if (!result.ok() || (*result)["counter"] != 1 ||
          (*result)["seen"] != nlohmann::json::array({id * 1000 + i})) {
        failures++;
      }
      if (i % 50 == 0) {
        auto spun = (*lease)->call_json("spin", nullptr);  // trapped: reset revives it
        if (spun.ok() || spun.error().kind() != ErrorKind::kTimeout) failures++;
      }
    }
  };
  std::thread a(worker, 1), b(worker, 2);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE((*pool)->idle(), 4u);
  EXPECT_GE((*pool)->idle(), 1u);
}

TEST(Snapshot, GuestNeverChangesItsTable) {
  // reset() relies on this: the translated guest has no table.set / table.grow.
  size_t parts = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TERRARIUM_WASM2C_DIR)) {
    if (entry.path().extension() != ".c") continue;
    ++parts;
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text.find("funcref_table_set(&instance->w2c_T0"), std::string::npos) << entry.path();
    EXPECT_EQ(text.find("wasm_rt_grow_funcref_table(&instance->w2c_T0"), std::string::npos)
        << entry.path();
    EXPECT_EQ(text.find("funcref_table_fill(&instance->w2c_T0"), std::string::npos) << entry.path();
    EXPECT_EQ(text.find("funcref_table_copy(&instance->w2c_T0"), std::string::npos) << entry.path();
  }
  EXPECT_GE(parts, 2u);
}

}  // namespace

// A reset may skip searching the page tables when the thread took no page
// fault since the last one (see engine::MemorySnapshot::PrivatePages). Each
// round here writes a page of a snapshot buffer no earlier round wrote (a
// new private page: a fault), or one an earlier round wrote (no fault), and
// checks that every earlier write was undone.
constexpr const char* kPages = R"PY(
import terrarium
BUFFER = bytearray(256 * 4096)

@terrarium.export
def write_page(page):
    dirty = sum(BUFFER[i * 4096] for i in range(256))
    BUFFER[page * 4096] = 1
    return dirty
)PY";

TEST(Reset, EveryWrittenPageIsUndoneWithOrWithoutASearch) {
  auto runtime = *terrarium::Runtime::create();
  auto sandbox = std::move(*runtime->new_sandbox({}));
  ASSERT_TRUE(sandbox->exec(kPages));
  auto snapshot = *Snapshot::capture(*sandbox);
  auto resident = std::move(*snapshot->new_sandbox());
  for (int round = 0; round < 200; ++round) {
    int page = round < 100 ? round : round % 7;  // new pages, then known ones
    auto dirty = resident->call_json("write_page", page);
    ASSERT_TRUE(dirty) << dirty.error().to_string();
    ASSERT_EQ(*dirty, 0) << "round " << round;
    ASSERT_TRUE(resident->reset());
  }
}

TEST(Reset, AGuestRunOnAnotherThreadIsNoticed) {
  auto runtime = *terrarium::Runtime::create();
  auto sandbox = std::move(*runtime->new_sandbox({}));
  ASSERT_TRUE(sandbox->exec(kPages));
  auto snapshot = *Snapshot::capture(*sandbox);
  auto resident = std::move(*snapshot->new_sandbox());
  for (int round = 0; round < 40; ++round) {
    // The guest runs on a thread of its own; the reset happens here, on a
    // thread whose page faults say nothing about the guest's writes.
    terrarium::Result<nlohmann::json> dirty = nlohmann::json();
    std::thread([&] { dirty = resident->call_json("write_page", 100 + round); }).join();
    ASSERT_TRUE(dirty) << dirty.error().to_string();
    ASSERT_EQ(*dirty, 0) << "round " << round;
    ASSERT_TRUE(resident->reset());
  }
}
