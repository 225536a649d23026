#include <gtest/gtest.h>

#include "cli/options.h"

namespace terrarium::cli {
namespace {

TEST(Options, MountSpecs) {
  auto mount = parse_mount("/tmp::/data:ro");
  ASSERT_TRUE(mount.ok());
  EXPECT_EQ(mount->host_path, "/tmp");
  EXPECT_EQ(mount->guest_path, "/data");
  EXPECT_TRUE(mount->read_only);
  auto writable = parse_mount("/tmp::/data");
  ASSERT_TRUE(writable.ok());
  EXPECT_FALSE(writable->read_only);
  auto same = parse_mount("/tmp");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->guest_path, "/tmp");
  EXPECT_FALSE(parse_mount("/tmp::").ok());
  EXPECT_FALSE(parse_mount("::/x").ok());
  auto missing = parse_mount("/no/such/dir::/x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(), "--dir '/no/such/dir::/x': host directory '/no/such/dir' does not exist");
  auto mode = parse_mount("/tmp::/x:wr");
  ASSERT_FALSE(mode.ok());
  EXPECT_NE(mode.error().message().find("unknown mode 'wr'"), std::string::npos);
}

TEST(Options, Sizes) {
  EXPECT_EQ(*parse_size("1024"), 1024u);
  EXPECT_EQ(*parse_size("64K"), 65536u);
  EXPECT_EQ(*parse_size("256M"), 256ull << 20);
  EXPECT_EQ(*parse_size("2G"), 2ull << 30);
  EXPECT_EQ(*parse_size("1.5MiB"), 3ull << 19);
  EXPECT_FALSE(parse_size("lots").ok());
  EXPECT_FALSE(parse_size("12Q").ok());
  EXPECT_FALSE(parse_size("-5M").ok());
}

TEST(Options, Durations) {
  EXPECT_EQ(parse_duration("2s")->count(), 2000);
  EXPECT_EQ(parse_duration("500ms")->count(), 500);
  EXPECT_EQ(parse_duration("1.5")->count(), 1500);
  EXPECT_EQ(parse_duration("1m")->count(), 60000);
  EXPECT_FALSE(parse_duration("soon").ok());
  EXPECT_FALSE(parse_duration("5y").ok());
}

TEST(Options, GuestPathOfAFileInsideAMount) {
  std::vector<Mount> mounts = {{"/srv/app", "/app", true}};
  EXPECT_EQ(guest_path_for("/srv/app/main.py", mounts), "/app/main.py");
  EXPECT_EQ(guest_path_for("/srv/app/sub/x.py", mounts), "/app/sub/x.py");
  EXPECT_EQ(guest_path_for("/srv/other/main.py", mounts), std::nullopt);
  EXPECT_EQ(guest_path_for("/srv/app/../other.py", mounts), std::nullopt);
}

}  // namespace
}  // namespace terrarium::cli
