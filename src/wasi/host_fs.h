// Host-filesystem helpers for the WASI layer: path resolution confined to a
// mount with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), errno mapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace terrarium::wasi::host_fs {

// An owned host descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Host errno -> WASI errno of the same meaning (EXDEV -> kXDev).
uint16_t errno_to_wasi(int host_errno);
// For errors of path resolution through openat2: EXDEV (the path would leave
// the mount) -> kNotCapable, the rest as errno_to_wasi.
uint16_t resolve_errno_to_wasi(int host_errno);

// openat2(dirfd, path, {flags | O_CLOEXEC, mode, RESOLVE_BENEATH |
// RESOLVE_NO_MAGICLINKS}). Returns the fd, or -errno.
int open_beneath(int dirfd, const std::string& path, uint64_t flags, uint64_t mode = 0);

// Splits `path` for an operation on its last component: opens the parent
// directory beneath `dirfd` (O_PATH) and returns the last component. Trailing
// slashes are removed (reported in `trailing_slash`); a last component of "."
// or ".." opens the whole path as the directory and returns ".". Returns a
// WASI errno.
uint16_t open_parent(int dirfd, std::string_view path, UniqueFd* parent, std::string* last,
                     bool* trailing_slash = nullptr);

// WASI filetype of a host st_mode.
uint8_t filetype_of_mode(unsigned mode);

}  // namespace terrarium::wasi::host_fs
