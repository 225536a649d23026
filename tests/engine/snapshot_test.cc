// Memory snapshots: capture, copy-on-write instances, reset, save and load.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/guarded_call.h"
#include "engine/snapshot.h"
#include "traps_wasm.h"

using terrarium::engine::guarded;
using terrarium::engine::MemorySnapshot;

extern "C" struct Z_test_instance_t {
  int unused;
};

namespace {

struct Instance {
  Instance() {
    static bool once = [] {
      wasm_rt_init();
      Z_traps_init_module();
      return true;
    }();
    (void)once;
    auto body = [this] { Z_traps_instantiate(&instance, &imports); };
    EXPECT_TRUE(guarded(body).ok());
  }
  ~Instance() { Z_traps_free(&instance); }
  wasm_rt_memory_t* memory() { return Z_trapsZ_memory(&instance); }
  u32 load(u32 address) {
    u32 value = 0;
    auto body = [&] { value = Z_trapsZ_load(&instance, address); };
    EXPECT_TRUE(guarded(body).ok());
    return value;
  }
  void store(u32 address, u32 value) {
    auto body = [&] { Z_trapsZ_store(&instance, address, value); };
    EXPECT_TRUE(guarded(body).ok());
  }
  u32 grow(u32 pages) {
    u32 old = 0;
    auto body = [&] { old = Z_trapsZ_grow(&instance, pages); };
    EXPECT_TRUE(guarded(body).ok());
    return old;
  }
  bool load_traps(u32 address) {
    auto body = [&] { Z_trapsZ_load(&instance, address); };
    return guarded(body).kind == terrarium::engine::TrapKind::kOutOfBounds;
  }
  Z_test_instance_t imports{};
  Z_traps_instance_t instance{};
};

// An instance whose memory is replaced by a copy-on-write map of `snapshot`.
void adopt(Instance& instance, const MemorySnapshot& snapshot) {
  wasm_rt_memory_t* memory = instance.memory();
  uint32_t max_pages = memory->max_pages;
  wasm_rt_free_memory(memory);
  std::string error;
  ASSERT_TRUE(snapshot.map_new(memory, max_pages, &error)) << error;
}

TEST(Snapshot, CopiesAreIsolatedAndResettable) {
  Instance original;
  original.grow(1);  // 2 pages
  original.store(16, 1111);
  original.store(65536 + 8, 2222);
  std::string error;
  auto snapshot = MemorySnapshot::capture(*original.memory(), &error);
  ASSERT_TRUE(snapshot) << error;
  EXPECT_EQ(snapshot->pages(), 2u);

  Instance copy;
  adopt(copy, *snapshot);
  EXPECT_EQ(copy.load(16), 1111u);
  EXPECT_EQ(copy.load(65536 + 8), 2222u);
  EXPECT_EQ(copy.memory()->pages, 2u);
  copy.store(16, 9999);
  copy.grow(1);
  copy.store(2 * 65536 + 4, 7);
  // Neither the original nor another copy sees the write.
  EXPECT_EQ(original.load(16), 1111u);
  Instance other;
  adopt(other, *snapshot);
  EXPECT_EQ(other.load(16), 1111u);

  ASSERT_TRUE(snapshot->reset(copy.memory(), &error)) << error;
  EXPECT_EQ(copy.memory()->pages, 2u);
  EXPECT_EQ(copy.load(16), 1111u);
  EXPECT_TRUE(copy.load_traps(2 * 65536 + 4));  // the grown page is gone
  EXPECT_EQ(copy.grow(1), 2u);
  EXPECT_EQ(copy.load(2 * 65536 + 4), 0u);  // and comes back zeroed
}

TEST(Snapshot, EveryResetStrategyRestoresEveryWrittenPage) {
  Instance original;
  original.grow(3);
  for (u32 a = 0; a < 4 * 65536; a += 4096) original.store(a, a ^ 0x5a5a);
  std::string error;
  auto snapshot = MemorySnapshot::capture(*original.memory(), &error);
  ASSERT_TRUE(snapshot) << error;
  for (auto strategy : {MemorySnapshot::ResetStrategy::kCopyDirtyPages,
                        MemorySnapshot::ResetStrategy::kCopyDirtyPagesFromPagemap,
                        MemorySnapshot::ResetStrategy::kDropAllPages}) {
    Instance copy;
    adopt(copy, *snapshot);
    for (int round = 0; round < 3; ++round) {
      // Write every other page (some only read), then reset.
      for (u32 a = 0; a < 4 * 65536; a += 8192) copy.store(a + 4, round + 1);
      for (u32 a = 4096; a < 4 * 65536; a += 8192) EXPECT_EQ(copy.load(a), a ^ 0x5a5a);
      ASSERT_TRUE(snapshot->reset(copy.memory(), &error, strategy)) << error;
      for (u32 a = 0; a < 4 * 65536; a += 4096) {
        ASSERT_EQ(copy.load(a), a ^ 0x5a5a) << "page " << a / 4096 << " round " << round;
        ASSERT_EQ(copy.load(a + 4), 0u) << "page " << a / 4096 << " round " << round;
      }
    }
  }
}

TEST(Snapshot, SavedAndLoaded) {
  Instance original;
  original.store(100, 0xabcdef);
  std::string error;
  auto snapshot = MemorySnapshot::capture(*original.memory(), &error);
  ASSERT_TRUE(snapshot) << error;
  FILE* file = tmpfile();
  ASSERT_TRUE(snapshot->write_to(fileno(file), &error)) << error;
  lseek(fileno(file), 0, SEEK_SET);
  auto loaded = MemorySnapshot::read_from(fileno(file), snapshot->bytes(), &error);
  fclose(file);
  ASSERT_TRUE(loaded) << error;
  Instance copy;
  adopt(copy, *loaded);
  EXPECT_EQ(copy.load(100), 0xabcdefu);

  FILE* truncated = tmpfile();
  ASSERT_TRUE(snapshot->write_to(fileno(truncated), &error));
  ASSERT_EQ(ftruncate(fileno(truncated), 1000), 0);
  lseek(fileno(truncated), 0, SEEK_SET);
  EXPECT_FALSE(MemorySnapshot::read_from(fileno(truncated), snapshot->bytes(), &error));
  EXPECT_EQ(error, "snapshot file is truncated");
  fclose(truncated);
  EXPECT_FALSE(MemorySnapshot::read_from(0, 12345, &error));
  EXPECT_NE(error.find("not a valid page count"), std::string::npos);
}

TEST(Snapshot, ManyCopiesShareTheirPages) {
  Instance original;
  original.grow(3);
  for (u32 a = 0; a < 4 * 65536; a += 4096) original.store(a, a + 1);
  std::string error;
  auto snapshot = MemorySnapshot::capture(*original.memory(), &error);
  ASSERT_TRUE(snapshot);
  std::vector<std::unique_ptr<Instance>> copies;
  for (int i = 0; i < 200; ++i) {
    copies.push_back(std::make_unique<Instance>());
    adopt(*copies.back(), *snapshot);
  }
  for (auto& copy : copies) EXPECT_EQ(copy->load(3 * 65536), 3u * 65536 + 1);
}

}  // namespace
