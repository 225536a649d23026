#include "wasi/host_fs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "wasi/wasi.h"

namespace terrarium::wasi::host_fs {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

uint16_t errno_to_wasi(int e) {
  switch (e) {
    case 0:
      return kSuccess;
    case E2BIG:
      return k2Big;
    case EACCES:
      return kAccess;
    case EAGAIN:
      return kAgain;
    case EBADF:
      return kBadF;
    case EBUSY:
      return kBusy;
    case EDQUOT:
      return 19;  // __WASI_ERRNO_DQUOT
    case EEXIST:
      return kExist;
    case EFAULT:
      return kFault;
    case EFBIG:
      return kFBig;
    case EILSEQ:
      return kIlSeq;
    case EINTR:
      return 27;  // __WASI_ERRNO_INTR
    case EINVAL:
      return kInval;
    case EIO:
      return kIo;
    case EISDIR:
      return kIsDir;
    case ELOOP:
      return kLoop;
    case EMFILE:
      return kMFile;
    case ENFILE:
      return 41;  // __WASI_ERRNO_NFILE
    case EMLINK:
      return kMLink;
    case ENAMETOOLONG:
      return kNameTooLong;
    case ENOENT:
      return kNoEnt;
    case ENOMEM:
      return kNoMem;
    case ENOSPC:
      return kNoSpc;
    case ENOSYS:
      return kNoSys;
    case ENOTDIR:
      return kNotDir;
    case ENOTEMPTY:
      return kNotEmpty;
    case EOPNOTSUPP:
      return kNotSup;
    case ENOTTY:
      return kNotTty;
    case ENXIO:
      return 60;  // __WASI_ERRNO_NXIO
    case EOVERFLOW:
      return kOverflow;
    case EPERM:
      return kPerm;
    case EPIPE:
      return kPipe;
    case EROFS:
      return kRoFs;
    case ESPIPE:
      return kSPipe;
    case ETXTBSY:
      return 74;  // __WASI_ERRNO_TXTBSY
    case EXDEV:
      return kXDev;
    case ENODEV:
      return 43;  // __WASI_ERRNO_NODEV
    default:
      return kIo;
  }
}

uint16_t resolve_errno_to_wasi(int e) {
  return e == EXDEV ? uint16_t{kNotCapable} : errno_to_wasi(e);
}

int open_beneath(int dirfd, const std::string& path, uint64_t flags, uint64_t mode) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  while (true) {
    long fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    if (errno != EINTR && errno != EAGAIN) return -errno;
  }
}

uint16_t open_parent(int dirfd, std::string_view path, UniqueFd* parent, std::string* last,
                     bool* trailing_slash) {
  if (path.empty()) return kNoEnt;
  if (path.front() == '/') return kNotCapable;
  size_t end = path.size();
  while (end > 0 && path[end - 1] == '/') --end;
  if (trailing_slash) *trailing_slash = end != path.size();
  std::string_view trimmed = path.substr(0, end);
  size_t slash = trimmed.rfind('/');
  std::string_view name = slash == std::string_view::npos ? trimmed : trimmed.substr(slash + 1);
  std::string dir;
  if (name == "." || name == "..") {
    dir = std::string(trimmed);
    *last = ".";
  } else {
    dir = slash == std::string_view::npos ? "." : std::string(trimmed.substr(0, slash));
    if (dir.empty()) dir = ".";
    *last = std::string(name);
  }
  int fd = open_beneath(dirfd, dir, O_PATH | O_DIRECTORY);
  if (fd < 0) return resolve_errno_to_wasi(-fd);
  parent->reset(fd);
  return kSuccess;
}

uint8_t filetype_of_mode(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFBLK:
      return 1;
    case S_IFCHR:
      return 2;
    case S_IFDIR:
      return 3;
    case S_IFREG:
      return 4;
    case S_IFSOCK:
      return 6;
    case S_IFLNK:
      return 7;
    default:
      return 0;
  }
}

}  // namespace terrarium::wasi::host_fs
