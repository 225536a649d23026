#include "cli/options.h"

#include <gtest/gtest.h>

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
  auto trailing = parse_mount("/tmp/::/data/:ro");
  ASSERT_TRUE(trailing.ok());
  EXPECT_EQ(trailing->host_path, "/tmp");
  EXPECT_EQ(trailing->guest_path, "/data");
  auto relative = parse_mount("/tmp::data");
  ASSERT_FALSE(relative.ok());
  EXPECT_NE(relative.error().message().find("the guest path 'data' is relative"),
            std::string::npos);
  EXPECT_FALSE(parse_mount("/tmp::/a/../b").ok());
  EXPECT_FALSE(parse_mount("/tmp::").ok());
  EXPECT_FALSE(parse_mount("::/x").ok());
  auto missing = parse_mount("/no/such/dir::/x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(),
            "--dir '/no/such/dir::/x': host directory '/no/such/dir' does not exist");
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

TEST(Options, HostFileBehindAGuestPath) {
  std::vector<Mount> mounts = {
      {"/srv/app", "/app", true}, {"/srv/data", "/app/data", false}, {"/srv/root", "/", true}};
  auto file = host_file_for("/app/main.py", mounts);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->host_path, "/srv/app/main.py");
  EXPECT_EQ(file->mount_index, 0u);
  // The inner mount hides that part of the outer one.
  file = host_file_for("/app/data/x.csv", mounts);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->host_path, "/srv/data/x.csv");
  EXPECT_EQ(file->mount_index, 1u);
  file = host_file_for("/etc/x.py", mounts);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->host_path, "/srv/root/etc/x.py");
  EXPECT_EQ(host_file_for("/application/x.py", {{"/srv/app", "/app", true}}), std::nullopt);
  EXPECT_EQ(host_file_for("relative.py", mounts), std::nullopt);
  EXPECT_EQ(host_file_for("/app/../etc/x.py", {{"/srv/app", "/app", true}}), std::nullopt);
}

}  // namespace
}  // namespace terrarium::cli
