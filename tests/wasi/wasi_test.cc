// Unit tests of the WASI preview1 layer (src/wasi/wasi.cc) against a fake
// guest memory and temporary host directories.
#include "wasi/wasi.h"

#include <fcntl.h>
#include <pty.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "wasi_test_util.h"

namespace terrarium::wasi {
namespace {

using testing::read_host_file;
using testing::TempDir;
using testing::write_host_file;

constexpr uint64_t kRead = 1ull << 1, kSeek = 1ull << 2, kTell = 1ull << 5, kWrite = 1ull << 6;
constexpr uint64_t kReaddir = 1ull << 14;
constexpr uint64_t kAllRights = ~0ull;
// What wasi-libc asks for with O_RDONLY: everything but the writing rights.
constexpr uint64_t kReadOnlyRights =
    kAllRights & ~(kWrite | (1ull << 0) | (1ull << 8) | (1ull << 22));
constexpr uint32_t kCreat = 1, kDirectory = 2, kExcl = 4, kTrunc = 8;
constexpr uint32_t kAppend = 1;
constexpr uint32_t kFollow = 1;
constexpr uint32_t kImageFd = 3, kDataFd = 4, kRoFd = 5;
constexpr uint32_t kBadPtr = 0xFFFFFFF0u;

struct Dirent {
  uint64_t next;
  uint64_t ino;
  uint8_t type;
  std::string name;
};

class WasiTest : public ::testing::Test {
 protected:
  static constexpr size_t kMemSize = 1 << 20;

  void SetUp() override {
    std::filesystem::create_directories(tmp / "mnt");
    std::filesystem::create_directories(tmp / "ro/sub");
    std::filesystem::create_directories(tmp / "outside");
    write_host_file(tmp / "outside/secret", "secret");
    write_host_file(tmp / "ro/hello.txt", "hello, ro");
    image = std::make_shared<Image>(Image::from_files({
        {"os.py", "import sys\n"},
        {"pkg/__init__.py", ""},
        {"pkg/mod.py", "x = 1\n"},
    }));
  }

  WasiConfig default_config() {
    WasiConfig config;
    config.args = {"python", "-c", "print(1)"};
    config.env = {"HOME=/", "LANG=C.UTF-8"};
    config.image_mounts.push_back(ImageMount{image, "/lib"});
    config.mounts.push_back(Mount{tmp / "mnt", "/data", false});
    config.mounts.push_back(Mount{tmp / "ro", "/ro", true});
    config.stdout_sink.callback = [this](std::string_view s) { out += s; };
    config.stderr_sink.callback = [this](std::string_view s) { err += s; };
    return config;
  }
  void make(WasiConfig config) { wasi = std::make_unique<Wasi>(std::move(config)); }
  void make() { make(default_config()); }

  // Copies bytes into guest memory (bump allocation) and returns the address.
  uint32_t put(std::string_view s) {
    uint32_t at = next_;
    std::memcpy(mem.data() + at, s.data(), s.size());
    next_ += static_cast<uint32_t>((s.size() + 15) & ~size_t{15});
    if (s.empty()) next_ += 16;
    return at;
  }
  uint32_t alloc(uint32_t n) {
    uint32_t at = next_;
    next_ += (n + 15) & ~15u;
    return at;
  }
  template <typename T>
  T load(uint32_t at) const {
    T v;
    std::memcpy(&v, mem.data() + at, sizeof v);
    return v;
  }
  template <typename T>
  void store(uint32_t at, T v) {
    std::memcpy(mem.data() + at, &v, sizeof v);
  }
  std::string bytes(uint32_t at, size_t n) const {
    return std::string(reinterpret_cast<const char*>(mem.data() + at), n);
  }

  uint16_t open(uint32_t dirfd, std::string_view path, uint32_t oflags, uint64_t rights,
                uint32_t* fd, uint32_t fdflags = 0, uint32_t lookup = kFollow) {
    uint32_t p = put(path);
    uint32_t fd_out = alloc(4);
    store<uint32_t>(fd_out, 0xDEADBEEF);
    uint16_t r = wasi->path_open(m, dirfd, lookup, p, static_cast<uint32_t>(path.size()), oflags,
                                 rights, kAllRights, fdflags, fd_out);
    *fd = load<uint32_t>(fd_out);
    return r;
  }
  uint16_t open(uint32_t dirfd, std::string_view path, uint32_t oflags, uint64_t rights) {
    uint32_t fd;
    return open(dirfd, path, oflags, rights, &fd);
  }
  uint32_t must_open(uint32_t dirfd, std::string_view path, uint32_t oflags = 0,
                     uint64_t rights = kAllRights, uint32_t fdflags = 0) {
    uint32_t fd = 0;
    EXPECT_EQ(open(dirfd, path, oflags, rights, &fd, fdflags), kSuccess) << path;
    return fd;
  }

  // fd_write of `parts` as separate iovecs.
  uint16_t write_parts(uint32_t fd, const std::vector<std::string>& parts, uint32_t* n = nullptr) {
    uint32_t iovs = alloc(static_cast<uint32_t>(parts.size() * 8));
    for (size_t i = 0; i < parts.size(); ++i) {
      store<uint32_t>(iovs + i * 8, put(parts[i]));
      store<uint32_t>(iovs + i * 8 + 4, static_cast<uint32_t>(parts[i].size()));
    }
    uint32_t n_out = alloc(4);
    uint16_t r = wasi->fd_write(m, fd, iovs, static_cast<uint32_t>(parts.size()), n_out);
    if (n) *n = load<uint32_t>(n_out);
    return r;
  }
  uint16_t write(uint32_t fd, std::string_view s) { return write_parts(fd, {std::string(s)}); }

  uint16_t read(uint32_t fd, uint32_t max, std::string* data) {
    uint32_t buf = alloc(max);
    uint32_t iovs = alloc(8);
    store<uint32_t>(iovs, buf);
    store<uint32_t>(iovs + 4, max);
    uint32_t n_out = alloc(4);
    uint16_t r = wasi->fd_read(m, fd, iovs, 1, n_out);
    if (r == kSuccess) *data = bytes(buf, load<uint32_t>(n_out));
    return r;
  }
  std::string read_all(uint32_t fd) {
    std::string all, chunk;
    while (read(fd, 7, &chunk) == kSuccess && !chunk.empty()) all += chunk;
    return all;
  }

  using M = const GuestMemory&;
  uint16_t path_op(uint16_t (Wasi::*op)(M, uint32_t, uint32_t, uint32_t), uint32_t fd,
                   std::string_view path) {
    return (wasi.get()->*op)(m, fd, put(path), static_cast<uint32_t>(path.size()));
  }

  uint16_t filestat(uint32_t dirfd, std::string_view path, uint32_t lookup, uint32_t out) {
    return wasi->path_filestat_get(m, dirfd, lookup, put(path), static_cast<uint32_t>(path.size()),
                                   out);
  }

  // Reads a whole directory with fd_readdir in buffers of `buf_len` bytes,
  // restarting like wasi-libc when the buffer was filled.
  std::vector<Dirent> readdir_all(uint32_t fd, uint32_t buf_len, int* calls = nullptr) {
    std::vector<Dirent> all;
    uint64_t cookie = 0;
    uint32_t buf = alloc(buf_len);
    uint32_t used_out = alloc(4);
    for (int guard = 0; guard < 1000; ++guard) {
      EXPECT_EQ(wasi->fd_readdir(m, fd, buf, buf_len, cookie, used_out), kSuccess);
      if (calls) ++*calls;
      uint32_t used = load<uint32_t>(used_out);
      auto entries = parse_dirents(buf, used);
      for (auto& e : entries) {
        cookie = e.next;
        all.push_back(std::move(e));
      }
      if (used < buf_len) break;
      EXPECT_FALSE(entries.empty()) << "buffer too small for one entry";
      if (entries.empty()) break;
    }
    return all;
  }
  std::vector<Dirent> parse_dirents(uint32_t buf, uint32_t used) {
    std::vector<Dirent> out;
    uint32_t at = 0;
    while (at + 24 <= used) {
      Dirent d;
      d.next = load<uint64_t>(buf + at);
      d.ino = load<uint64_t>(buf + at + 8);
      uint32_t namlen = load<uint32_t>(buf + at + 16);
      d.type = mem[buf + at + 20];
      if (at + 24 + namlen > used) break;
      d.name = bytes(buf + at + 24, namlen);
      out.push_back(d);
      at += 24 + namlen;
    }
    return out;
  }
  static std::set<std::string> names(const std::vector<Dirent>& entries) {
    std::set<std::string> out;
    for (const auto& e : entries) out.insert(e.name);
    return out;
  }

  // A clock subscription at `at` (48 bytes).
  void clock_sub(uint32_t at, uint64_t userdata, uint32_t clock, uint64_t timeout, uint16_t flags) {
    std::memset(mem.data() + at, 0, 48);
    store<uint64_t>(at, userdata);
    mem[at + 8] = 0;
    store<uint32_t>(at + 16, clock);
    store<uint64_t>(at + 24, timeout);
    store<uint16_t>(at + 40, flags);
  }
  void fd_sub(uint32_t at, uint64_t userdata, uint8_t tag, uint32_t fd) {
    std::memset(mem.data() + at, 0, 48);
    store<uint64_t>(at, userdata);
    mem[at + 8] = tag;
    store<uint32_t>(at + 16, fd);
  }
  uint64_t now_mono() {
    uint32_t t = alloc(8);
    EXPECT_EQ(wasi->clock_time_get(m, 1, 0, t), kSuccess);
    return load<uint64_t>(t);
  }

  TempDir tmp;
  std::shared_ptr<Image> image;
  std::vector<uint8_t> mem = std::vector<uint8_t>(kMemSize);
  GuestMemory m{mem.data(), mem.size()};
  std::unique_ptr<Wasi> wasi;
  std::string out, err;
  uint32_t next_ = 0x1000;
};

// --- args, environ, clocks, random, misc -----------------------------------

TEST_F(WasiTest, ArgsAndEnvironArePackedExactly) {
  make();
  uint32_t count = alloc(4), size = alloc(4);
  ASSERT_EQ(wasi->args_sizes_get(m, count, size), kSuccess);
  EXPECT_EQ(load<uint32_t>(count), 3u);
  EXPECT_EQ(load<uint32_t>(size), 7u + 3 + 9);
  uint32_t argv = alloc(12), buf = alloc(19);
  ASSERT_EQ(wasi->args_get(m, argv, buf), kSuccess);
  EXPECT_EQ(bytes(buf, 19), std::string("python\0-c\0print(1)\0", 19));
  EXPECT_EQ(load<uint32_t>(argv), buf);
  EXPECT_EQ(load<uint32_t>(argv + 4), buf + 7);
  EXPECT_EQ(load<uint32_t>(argv + 8), buf + 10);

  ASSERT_EQ(wasi->environ_sizes_get(m, count, size), kSuccess);
  EXPECT_EQ(load<uint32_t>(count), 2u);
  EXPECT_EQ(load<uint32_t>(size), 7u + 13);
  uint32_t env = alloc(8), env_buf = alloc(20);
  ASSERT_EQ(wasi->environ_get(m, env, env_buf), kSuccess);
  EXPECT_EQ(bytes(env_buf, 20), std::string("HOME=/\0LANG=C.UTF-8\0", 20));
  EXPECT_EQ(load<uint32_t>(env + 4), env_buf + 7);

  EXPECT_EQ(wasi->args_sizes_get(m, kBadPtr, size), kFault);
  EXPECT_EQ(wasi->args_get(m, argv, kMemSize - 5), kFault);
  EXPECT_EQ(wasi->environ_get(m, kBadPtr, env_buf), kFault);
  EXPECT_EQ(wasi->environ_sizes_get(m, count, kMemSize - 2), kFault);
}

TEST_F(WasiTest, EmptyArgsAndEnviron) {
  WasiConfig config;
  make(std::move(config));
  uint32_t count = alloc(4), size = alloc(4);
  store<uint32_t>(count, 99);
  ASSERT_EQ(wasi->environ_sizes_get(m, count, size), kSuccess);
  EXPECT_EQ(load<uint32_t>(count), 0u);
  EXPECT_EQ(load<uint32_t>(size), 0u);
  EXPECT_EQ(wasi->environ_get(m, kMemSize, kMemSize), kSuccess);
}

TEST_F(WasiTest, Clocks) {
  make();
  uint32_t t = alloc(8);
  for (uint32_t id = 0; id < 4; ++id) {
    store<uint64_t>(t, 0);
    ASSERT_EQ(wasi->clock_res_get(m, id, t), kSuccess) << id;
    EXPECT_GT(load<uint64_t>(t), 0u);
    EXPECT_LE(load<uint64_t>(t), 1000000u);
    ASSERT_EQ(wasi->clock_time_get(m, id, 1, t), kSuccess) << id;
    EXPECT_GT(load<uint64_t>(t), 0u);
  }
  ASSERT_EQ(wasi->clock_time_get(m, 0, 1, t), kSuccess);
  uint64_t wall = load<uint64_t>(t);
  uint64_t host = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  EXPECT_LT(host - wall, 1000000000u);
  uint64_t a = now_mono(), b = now_mono();
  EXPECT_LE(a, b);
  EXPECT_EQ(wasi->clock_res_get(m, 4, t), kInval);
  EXPECT_EQ(wasi->clock_time_get(m, 77, 0, t), kInval);
  EXPECT_EQ(wasi->clock_time_get(m, 1, 0, kMemSize - 4), kFault);
  EXPECT_EQ(wasi->clock_res_get(m, 1, kBadPtr), kFault);
}

TEST_F(WasiTest, RandomGet) {
  make();
  uint32_t a = alloc(64), b = alloc(64);
  ASSERT_EQ(wasi->random_get(m, a, 64), kSuccess);
  ASSERT_EQ(wasi->random_get(m, b, 64), kSuccess);
  EXPECT_NE(bytes(a, 64), bytes(b, 64));
  EXPECT_NE(bytes(a, 64), std::string(64, '\0'));
  EXPECT_EQ(wasi->random_get(m, a, 0), kSuccess);
  EXPECT_EQ(wasi->random_get(m, kMemSize - 10, 11), kFault);
  EXPECT_EQ(wasi->random_get(m, 16, 0xFFFFFFFFu), kFault);
}

TEST_F(WasiTest, UnsupportedCalls) {
  make();
  EXPECT_EQ(wasi->proc_raise(m, 9), kNotSup);
  EXPECT_EQ(wasi->sched_yield(m), kSuccess);
  EXPECT_EQ(wasi->sock_accept(m, 3, 0, 0x100), kNotSup);
  EXPECT_EQ(wasi->sock_recv(m, 3, 0, 0, 0, 0, 0), kNotSup);
  EXPECT_EQ(wasi->sock_send(m, 3, 0, 0, 0, 0), kNotSup);
  EXPECT_EQ(wasi->sock_shutdown(m, 3, 0), kNotSup);
}

// --- preopens and the fd table ----------------------------------------------

TEST_F(WasiTest, PreopensAreNumberedImagesFirst) {
  make();
  uint32_t pre = alloc(8), name = alloc(16);
  const char* expected[] = {"/lib", "/data", "/ro"};
  for (uint32_t fd = 3; fd <= 5; ++fd) {
    ASSERT_EQ(wasi->fd_prestat_get(m, fd, pre), kSuccess);
    EXPECT_EQ(mem[pre], 0);
    uint32_t len = load<uint32_t>(pre + 4);
    EXPECT_EQ(len, std::strlen(expected[fd - 3]));
    ASSERT_EQ(wasi->fd_prestat_dir_name(m, fd, name, len), kSuccess);
    EXPECT_EQ(bytes(name, len), expected[fd - 3]);
  }
  EXPECT_EQ(wasi->fd_prestat_get(m, 6, pre), kBadF);
  EXPECT_EQ(wasi->fd_prestat_get(m, 0, pre), kBadF);
  EXPECT_EQ(wasi->fd_prestat_get(m, 3, kBadPtr), kFault);
  EXPECT_EQ(wasi->fd_prestat_dir_name(m, 4, name, 2), kNameTooLong);
  EXPECT_EQ(wasi->fd_prestat_dir_name(m, 4, kMemSize - 2, 5), kFault);
  EXPECT_EQ(wasi->fd_prestat_dir_name(m, 1, name, 16), kBadF);
}

TEST_F(WasiTest, ConstructorRejectsMissingMount) {
  WasiConfig config;
  config.mounts.push_back(Mount{tmp / "nope", "/x", false});
  try {
    Wasi w(std::move(config));
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot mount " + (tmp / "nope") + " at /x: No such file or directory");
  }
}

TEST_F(WasiTest, NewFdsTakeLowestFreeNumberAndCloseWorks) {
  make();
  write_host_file(tmp / "mnt/a", "A");
  uint32_t a = must_open(kDataFd, "a");
  uint32_t b = must_open(kDataFd, "a");
  EXPECT_EQ(a, 6u);
  EXPECT_EQ(b, 7u);
  ASSERT_EQ(wasi->fd_close(m, a), kSuccess);
  EXPECT_EQ(wasi->fd_close(m, a), kBadF);
  EXPECT_EQ(must_open(kDataFd, "a"), 6u);
  // A preopen may be closed; its number is reused.
  ASSERT_EQ(wasi->fd_close(m, kImageFd), kSuccess);
  uint32_t pre = alloc(8);
  EXPECT_EQ(wasi->fd_prestat_get(m, kImageFd, pre), kBadF);
  EXPECT_EQ(must_open(kDataFd, "a"), kImageFd);
  EXPECT_EQ(wasi->fd_close(m, 1000), kBadF);
}

TEST_F(WasiTest, NeverOpenedFdsAreBadF) {
  make();
  uint32_t buf = alloc(64), iov = alloc(8);
  store<uint32_t>(iov, buf);
  store<uint32_t>(iov + 4, 4);
  for (uint32_t fd : {6u, 99u, 0xFFFFFFFFu}) {
    EXPECT_EQ(wasi->fd_read(m, fd, iov, 1, buf), kBadF);
    EXPECT_EQ(wasi->fd_write(m, fd, iov, 1, buf), kBadF);
    EXPECT_EQ(wasi->fd_pread(m, fd, iov, 1, 0, buf), kBadF);
    EXPECT_EQ(wasi->fd_pwrite(m, fd, iov, 1, 0, buf), kBadF);
    EXPECT_EQ(wasi->fd_seek(m, fd, 0, 0, buf), kBadF);
    EXPECT_EQ(wasi->fd_tell(m, fd, buf), kBadF);
    EXPECT_EQ(wasi->fd_fdstat_get(m, fd, buf), kBadF);
    EXPECT_EQ(wasi->fd_fdstat_set_flags(m, fd, 0), kBadF);
    EXPECT_EQ(wasi->fd_fdstat_set_rights(m, fd, 0, 0), kBadF);
    EXPECT_EQ(wasi->fd_filestat_get(m, fd, buf), kBadF);
    EXPECT_EQ(wasi->fd_filestat_set_size(m, fd, 0), kBadF);
    EXPECT_EQ(wasi->fd_filestat_set_times(m, fd, 0, 0, 2), kBadF);
    EXPECT_EQ(wasi->fd_advise(m, fd, 0, 0, 0), kBadF);
    EXPECT_EQ(wasi->fd_allocate(m, fd, 0, 1), kBadF);
    EXPECT_EQ(wasi->fd_sync(m, fd), kBadF);
    EXPECT_EQ(wasi->fd_datasync(m, fd), kBadF);
    EXPECT_EQ(wasi->fd_readdir(m, fd, buf, 64, 0, buf), kBadF);
    EXPECT_EQ(wasi->fd_renumber(m, fd, 1), kBadF);
    EXPECT_EQ(wasi->fd_renumber(m, 1, fd), kBadF);
    EXPECT_EQ(wasi->fd_close(m, fd), kBadF);
    EXPECT_EQ(wasi->path_open(m, fd, 0, put("x"), 1, 0, kAllRights, kAllRights, 0, buf), kBadF);
    EXPECT_EQ(path_op(&Wasi::path_create_directory, fd, "x"), kBadF);
    EXPECT_EQ(path_op(&Wasi::path_unlink_file, fd, "x"), kBadF);
    EXPECT_EQ(path_op(&Wasi::path_remove_directory, fd, "x"), kBadF);
    EXPECT_EQ(filestat(fd, "x", 0, buf), kBadF);
  }
  // A file is not a directory for path operations.
  write_host_file(tmp / "mnt/f", "");
  uint32_t f = must_open(kDataFd, "f");
  EXPECT_EQ(path_op(&Wasi::path_create_directory, f, "x"), kNotDir);
  EXPECT_EQ(wasi->fd_readdir(m, f, buf, 64, 0, buf + 60), kNotDir);
}

TEST_F(WasiTest, Renumber) {
  make();
  write_host_file(tmp / "mnt/a", "AAA");
  write_host_file(tmp / "mnt/b", "BBB");
  uint32_t a = must_open(kDataFd, "a"), b = must_open(kDataFd, "b");
  ASSERT_EQ(wasi->fd_renumber(m, a, b), kSuccess);
  std::string data;
  ASSERT_EQ(read(b, 10, &data), kSuccess);
  EXPECT_EQ(data, "AAA");
  EXPECT_EQ(read(a, 10, &data), kBadF);
  EXPECT_EQ(wasi->fd_renumber(m, b, 40), kBadF);
  EXPECT_EQ(wasi->fd_renumber(m, b, b), kSuccess);
  // Stdio can be replaced by a file (like dup2).
  ASSERT_EQ(wasi->fd_renumber(m, b, 0), kSuccess);
  ASSERT_EQ(wasi->fd_seek(m, 0, 0, 0, alloc(8)), kSuccess);
  ASSERT_EQ(read(0, 10, &data), kSuccess);
  EXPECT_EQ(data, "AAA");
}

// --- stdio --------------------------------------------------------------------

TEST_F(WasiTest, StdoutAndStderrGoToCallbacks) {
  make();
  uint32_t n = 0;
  ASSERT_EQ(write_parts(1, {"hello", ", ", "world\n"}, &n), kSuccess);
  EXPECT_EQ(n, 13u);
  ASSERT_EQ(write_parts(2, {"oops\n"}, &n), kSuccess);
  EXPECT_EQ(out, "hello, world\n");
  EXPECT_EQ(err, "oops\n");
  ASSERT_EQ(write_parts(1, {}, &n), kSuccess);
  EXPECT_EQ(n, 0u);
  std::string data;
  EXPECT_EQ(read(1, 4, &data), kNotCapable);
  EXPECT_EQ(write(0, "x"), kNotCapable);
}

TEST_F(WasiTest, StdoutToHostFdAndStdinFromHostFd) {
  int out_pipe[2], in_pipe[2];
  ASSERT_EQ(pipe(out_pipe), 0);
  ASSERT_EQ(pipe(in_pipe), 0);
  ASSERT_EQ(::write(in_pipe[1], "line\n", 5), 5);
  close(in_pipe[1]);
  WasiConfig config = default_config();
  config.stdout_sink = OutputSink{out_pipe[1], {}};
  config.stdin_fd = in_pipe[0];
  make(std::move(config));
  ASSERT_EQ(write_parts(1, {"to ", "pipe"}), kSuccess);
  char buf[16] = {};
  ASSERT_EQ(::read(out_pipe[0], buf, sizeof buf), 7);
  EXPECT_EQ(std::string(buf, 7), "to pipe");
  std::string data;
  ASSERT_EQ(read(0, 100, &data), kSuccess);
  EXPECT_EQ(data, "line\n");
  ASSERT_EQ(read(0, 100, &data), kSuccess);
  EXPECT_EQ(data, "");
  EXPECT_EQ(wasi->fd_seek(m, 0, 0, 0, alloc(8)), kSPipe);
  EXPECT_EQ(wasi->fd_tell(m, 1, alloc(8)), kSPipe);
  uint32_t st = alloc(24);
  ASSERT_EQ(wasi->fd_fdstat_get(m, 1, st), kSuccess);
  EXPECT_EQ(mem[st], 0);  // a pipe: unknown, not a tty
  close(out_pipe[0]);
  close(out_pipe[1]);
  close(in_pipe[0]);
}

TEST_F(WasiTest, EmptyStdinIsEof) {
  make();
  std::string data = "junk";
  ASSERT_EQ(read(0, 10, &data), kSuccess);
  EXPECT_EQ(data, "");
}

TEST_F(WasiTest, StdioFdstatTtyAndRegularFile) {
  int master, slave;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  write_host_file(tmp / "stdin.txt", "data");
  int file = ::open((tmp / "stdin.txt").c_str(), O_RDONLY);
  WasiConfig config = default_config();
  config.stdin_fd = file;
  config.stderr_sink = OutputSink{slave, {}};
  make(std::move(config));
  uint32_t st = alloc(24);
  // stderr on a tty: character device without SEEK/TELL (wasi-libc's isatty).
  ASSERT_EQ(wasi->fd_fdstat_get(m, 2, st), kSuccess);
  EXPECT_EQ(mem[st], 2);
  uint64_t rights = load<uint64_t>(st + 8);
  EXPECT_EQ(rights & (kSeek | kTell), 0u);
  EXPECT_NE(rights & kWrite, 0u);
  // stdin from a regular file.
  ASSERT_EQ(wasi->fd_fdstat_get(m, 0, st), kSuccess);
  EXPECT_EQ(mem[st], 4);
  EXPECT_NE(load<uint64_t>(st + 8) & kRead, 0u);
  // stdout to a callback: not a tty.
  ASSERT_EQ(wasi->fd_fdstat_get(m, 1, st), kSuccess);
  EXPECT_EQ(mem[st], 0);
  uint32_t fs = alloc(64);
  ASSERT_EQ(wasi->fd_filestat_get(m, 0, fs), kSuccess);
  EXPECT_EQ(mem[fs + 16], 4);
  EXPECT_EQ(load<uint64_t>(fs + 32), 4u);
  EXPECT_EQ(wasi->fd_fdstat_get(m, 0, kBadPtr), kFault);
  close(master);
  close(slave);
  close(file);
}

// --- host files -----------------------------------------------------------------

TEST_F(WasiTest, CreateWriteReadSeekTellPreadPwrite) {
  make();
  uint32_t fd = must_open(kDataFd, "new.txt", kCreat | kExcl, kAllRights);
  uint32_t n;
  ASSERT_EQ(write_parts(fd, {"0123", "456789"}, &n), kSuccess);
  EXPECT_EQ(n, 10u);
  EXPECT_EQ(read_host_file(tmp / "mnt/new.txt"), "0123456789");
  uint32_t off = alloc(8);
  ASSERT_EQ(wasi->fd_tell(m, fd, off), kSuccess);
  EXPECT_EQ(load<uint64_t>(off), 10u);
  ASSERT_EQ(wasi->fd_seek(m, fd, -4, 1, off), kSuccess);
  EXPECT_EQ(load<uint64_t>(off), 6u);
  std::string data;
  ASSERT_EQ(read(fd, 100, &data), kSuccess);
  EXPECT_EQ(data, "6789");
  ASSERT_EQ(wasi->fd_seek(m, fd, -3, 2, off), kSuccess);
  EXPECT_EQ(load<uint64_t>(off), 7u);
  ASSERT_EQ(wasi->fd_seek(m, fd, 2, 0, off), kSuccess);
  EXPECT_EQ(load<uint64_t>(off), 2u);
  EXPECT_EQ(wasi->fd_seek(m, fd, -100, 1, off), kInval);
  EXPECT_EQ(wasi->fd_seek(m, fd, 0, 3, off), kInval);
  EXPECT_EQ(wasi->fd_seek(m, fd, 0, 0, kBadPtr), kFault);

  // pwrite/pread do not move the offset.
  uint32_t iov = alloc(8), nout = alloc(4);
  store<uint32_t>(iov, put("AB"));
  store<uint32_t>(iov + 4, 2);
  ASSERT_EQ(wasi->fd_pwrite(m, fd, iov, 1, 4, nout), kSuccess);
  EXPECT_EQ(load<uint32_t>(nout), 2u);
  uint32_t buf = alloc(16);
  store<uint32_t>(iov, buf);
  store<uint32_t>(iov + 4, 5);
  ASSERT_EQ(wasi->fd_pread(m, fd, iov, 1, 3, nout), kSuccess);
  EXPECT_EQ(load<uint32_t>(nout), 5u);
  EXPECT_EQ(bytes(buf, 5), "3AB67");
  ASSERT_EQ(wasi->fd_pread(m, fd, iov, 1, 100, nout), kSuccess);
  EXPECT_EQ(load<uint32_t>(nout), 0u);
  ASSERT_EQ(wasi->fd_tell(m, fd, off), kSuccess);
  EXPECT_EQ(load<uint64_t>(off), 2u);
  EXPECT_EQ(read_host_file(tmp / "mnt/new.txt"), "0123AB6789");
  EXPECT_EQ(wasi->fd_pread(m, 0, iov, 1, 0, nout), kSPipe);
  EXPECT_EQ(wasi->fd_pwrite(m, 1, iov, 1, 0, nout), kSPipe);

  // O_EXCL on an existing file; O_TRUNC.
  uint32_t other;
  EXPECT_EQ(open(kDataFd, "new.txt", kCreat | kExcl, kAllRights, &other), kExist);
  uint32_t t = must_open(kDataFd, "new.txt", kTrunc, kRead | kWrite);
  EXPECT_EQ(read_host_file(tmp / "mnt/new.txt"), "");
  EXPECT_EQ(wasi->fd_close(m, t), kSuccess);
  EXPECT_EQ(open(kDataFd, "missing", 0, kRead, &other), kNoEnt);
  EXPECT_EQ(wasi->fd_close(m, fd), kSuccess);
}

TEST_F(WasiTest, AppendFlagAndFdstat) {
  make();
  write_host_file(tmp / "mnt/log", "start;");
  uint32_t fd = must_open(kDataFd, "log", 0, kRead | kWrite | kSeek | kTell | (1ull << 3), kAppend);
  ASSERT_EQ(write(fd, "one;"), kSuccess);
  uint32_t st = alloc(24);
  ASSERT_EQ(wasi->fd_fdstat_get(m, fd, st), kSuccess);
  EXPECT_EQ(mem[st], 4);
  EXPECT_EQ(load<uint16_t>(st + 2), kAppend);
  EXPECT_EQ(load<uint64_t>(st + 8), kRead | kWrite | kSeek | kTell | (1ull << 3));
  ASSERT_EQ(wasi->fd_fdstat_set_flags(m, fd, 0), kSuccess);
  ASSERT_EQ(wasi->fd_seek(m, fd, 0, 0, alloc(8)), kSuccess);
  ASSERT_EQ(write(fd, "X"), kSuccess);
  EXPECT_EQ(read_host_file(tmp / "mnt/log"), "Xtart;one;");
  ASSERT_EQ(wasi->fd_fdstat_set_flags(m, fd, kAppend), kSuccess);
  ASSERT_EQ(write(fd, "two"), kSuccess);
  EXPECT_EQ(read_host_file(tmp / "mnt/log"), "Xtart;one;two");
  EXPECT_EQ(wasi->fd_fdstat_set_flags(m, fd, 16), kNotSup);  // SYNC
  EXPECT_EQ(wasi->fd_fdstat_set_flags(m, fd, 1 << 7), kInval);
  EXPECT_EQ(wasi->fd_fdstat_set_flags(m, 1, 4), kNotSup);  // NONBLOCK on stdio
}

TEST_F(WasiTest, SetRightsOnlyDropsAndIsEnforced) {
  make();
  write_host_file(tmp / "mnt/f", "data");
  uint32_t fd = must_open(kDataFd, "f", 0, kRead | kWrite | kSeek);
  ASSERT_EQ(wasi->fd_fdstat_set_rights(m, fd, kRead | kSeek, 0), kSuccess);
  EXPECT_EQ(write(fd, "x"), kNotCapable);
  EXPECT_EQ(wasi->fd_fdstat_set_rights(m, fd, kRead | kWrite, 0), kNotCapable);
  std::string data;
  ASSERT_EQ(read(fd, 10, &data), kSuccess);
  EXPECT_EQ(data, "data");
  ASSERT_EQ(wasi->fd_fdstat_set_rights(m, fd, 0, 0), kSuccess);
  EXPECT_EQ(read(fd, 10, &data), kNotCapable);
  EXPECT_EQ(wasi->fd_seek(m, fd, 0, 0, alloc(8)), kNotCapable);
  uint32_t st = alloc(24);
  ASSERT_EQ(wasi->fd_fdstat_get(m, fd, st), kSuccess);
  EXPECT_EQ(load<uint64_t>(st + 8), 0u);
  // Rights requested beyond what the file needs are not granted.
  uint32_t ro = must_open(kDataFd, "f", 0, kRead);
  EXPECT_EQ(write(ro, "x"), kNotCapable);
}

TEST_F(WasiTest, FilestatSetSizeTimesAllocateSyncAdvise) {
  make();
  uint32_t fd = must_open(kDataFd, "f", kCreat, kAllRights);
  ASSERT_EQ(write(fd, "hello"), kSuccess);
  uint32_t fs = alloc(64);
  ASSERT_EQ(wasi->fd_filestat_get(m, fd, fs), kSuccess);
  struct stat st;
  ASSERT_EQ(stat((tmp / "mnt/f").c_str(), &st), 0);
  EXPECT_EQ(load<uint64_t>(fs), uint64_t(st.st_dev));
  EXPECT_EQ(load<uint64_t>(fs + 8), uint64_t(st.st_ino));
  EXPECT_EQ(mem[fs + 16], 4);
  EXPECT_EQ(load<uint64_t>(fs + 24), 1u);
  EXPECT_EQ(load<uint64_t>(fs + 32), 5u);
  EXPECT_EQ(wasi->fd_filestat_get(m, fd, kMemSize - 63), kFault);

  ASSERT_EQ(wasi->fd_filestat_set_size(m, fd, 2), kSuccess);
  EXPECT_EQ(read_host_file(tmp / "mnt/f"), "he");
  ASSERT_EQ(wasi->fd_filestat_set_size(m, fd, 4), kSuccess);
  EXPECT_EQ(read_host_file(tmp / "mnt/f"), std::string("he\0\0", 4));

  const uint64_t t1 = 1234567890123456789ull, t2 = 1000000000ull * 1600000000ull + 5;
  ASSERT_EQ(wasi->fd_filestat_set_times(m, fd, t1, t2, 1 | 4), kSuccess);
  ASSERT_EQ(wasi->fd_filestat_get(m, fd, fs), kSuccess);
  EXPECT_EQ(load<uint64_t>(fs + 40), t1);
  EXPECT_EQ(load<uint64_t>(fs + 48), t2);
  EXPECT_EQ(wasi->fd_filestat_set_times(m, fd, 0, 0, 1 | 2), kInval);
  ASSERT_EQ(wasi->fd_filestat_set_times(m, fd, 0, 0, 8), kSuccess);  // MTIM_NOW
  ASSERT_EQ(wasi->fd_filestat_get(m, fd, fs), kSuccess);
  EXPECT_GT(load<uint64_t>(fs + 48), t2);
  EXPECT_EQ(load<uint64_t>(fs + 40), t1);

  ASSERT_EQ(wasi->fd_allocate(m, fd, 0, 100), kSuccess);
  ASSERT_EQ(stat((tmp / "mnt/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 100);
  ASSERT_EQ(wasi->fd_sync(m, fd), kSuccess);
  ASSERT_EQ(wasi->fd_datasync(m, fd), kSuccess);
  ASSERT_EQ(wasi->fd_sync(m, kDataFd), kSuccess);
  ASSERT_EQ(wasi->fd_advise(m, fd, 0, 100, 2), kSuccess);
  EXPECT_EQ(wasi->fd_advise(m, fd, 0, 100, 6), kInval);
  // Directories.
  EXPECT_EQ(wasi->fd_filestat_set_size(m, kDataFd, 0), kIsDir);
  ASSERT_EQ(wasi->fd_filestat_set_times(m, kDataFd, t1, t1, 1 | 4), kSuccess);
  ASSERT_EQ(stat((tmp / "mnt").c_str(), &st), 0);
  EXPECT_EQ(uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec), t1);
  ASSERT_EQ(wasi->fd_filestat_get(m, kDataFd, fs), kSuccess);
  EXPECT_EQ(mem[fs + 16], 3);
}

// --- directories ---------------------------------------------------------------

TEST_F(WasiTest, DirectoriesCreateOpenListRemove) {
  make();
  ASSERT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "d"), kSuccess);
  EXPECT_TRUE(std::filesystem::is_directory(tmp / "mnt/d"));
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "d"), kExist);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "."), kExist);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "nope/x"), kNoEnt);
  write_host_file(tmp / "mnt/d/one", "1");
  ASSERT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "d/sub/"), kSuccess);

  uint32_t dir = must_open(kDataFd, "d", kDirectory, kReadOnlyRights);
  auto entries = readdir_all(dir, 4096);
  EXPECT_EQ(names(entries), (std::set<std::string>{".", "..", "one", "sub"}));
  struct stat st;
  ASSERT_EQ(stat((tmp / "mnt/d/one").c_str(), &st), 0);
  for (const auto& e : entries) {
    if (e.name == "one") {
      EXPECT_EQ(e.ino, uint64_t(st.st_ino));
      EXPECT_EQ(e.type, 4);
    }
    if (e.name == "sub") {
      EXPECT_EQ(e.type, 3);
    }
  }
  // Opening a directory with write rights, reading a directory fd.
  uint32_t fd;
  EXPECT_EQ(open(kDataFd, "d", 0, kRead | kWrite, &fd), kIsDir);
  EXPECT_EQ(open(kDataFd, "d", kDirectory, kRead | kWrite, &fd), kIsDir);
  std::string data;
  EXPECT_EQ(read(dir, 10, &data), kIsDir);
  EXPECT_EQ(write(dir, "x"), kBadF);
  // A plain read-only open of a directory works (as on Linux).
  uint32_t plain = must_open(kDataFd, "d", 0, kRead);
  uint32_t st_out = alloc(24);
  ASSERT_EQ(wasi->fd_fdstat_get(m, plain, st_out), kSuccess);
  EXPECT_EQ(mem[st_out], 3);
  // O_DIRECTORY on a file.
  EXPECT_EQ(open(kDataFd, "d/one", kDirectory, kRead, &fd), kNotDir);
  // Paths relative to an opened subdirectory.
  uint32_t one = must_open(dir, "one", 0, kRead);
  ASSERT_EQ(read(one, 10, &data), kSuccess);
  EXPECT_EQ(data, "1");

  EXPECT_EQ(path_op(&Wasi::path_remove_directory, kDataFd, "d"), kNotEmpty);
  EXPECT_EQ(path_op(&Wasi::path_remove_directory, kDataFd, "d/one"), kNotDir);
  EXPECT_EQ(path_op(&Wasi::path_remove_directory, kDataFd, "d/."), kInval);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kDataFd, "d"), kIsDir);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kDataFd, "d/one/"), kNotDir);
  ASSERT_EQ(path_op(&Wasi::path_unlink_file, kDataFd, "d/one"), kSuccess);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kDataFd, "d/one"), kNoEnt);
  ASSERT_EQ(path_op(&Wasi::path_remove_directory, kDataFd, "d/sub/"), kSuccess);
  ASSERT_EQ(path_op(&Wasi::path_remove_directory, kDataFd, "d"), kSuccess);
  EXPECT_FALSE(std::filesystem::exists(tmp / "mnt/d"));
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, ""), kNoEnt);
}

TEST_F(WasiTest, ReaddirSmallBuffersAndCookies) {
  make();
  std::set<std::string> expected = {".", ".."};
  for (int i = 0; i < 12; ++i) {
    std::string name = "file-with-a-longish-name-" + std::to_string(i);
    write_host_file(tmp / ("mnt/" + name), "x");
    expected.insert(name);
  }
  uint32_t dir = must_open(kDataFd, ".", kDirectory, kReadOnlyRights);
  int calls = 0;
  auto all = readdir_all(dir, 4096, &calls);
  EXPECT_EQ(names(all), expected);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(all.size(), 14u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].next, i + 1);

  // Buffers that hold one or two entries: entries are cut and re-read.
  for (uint32_t size : {60u, 64u, 100u, 130u}) {
    calls = 0;
    auto small = readdir_all(dir, size, &calls);
    EXPECT_EQ(names(small), expected) << size;
    EXPECT_EQ(small.size(), 14u) << size;
    EXPECT_GT(calls, 3) << size;
  }
  // A buffer shorter than a header is filled entirely.
  uint32_t buf = alloc(64), used = alloc(4);
  ASSERT_EQ(wasi->fd_readdir(m, dir, buf, 10, 0, used), kSuccess);
  EXPECT_EQ(load<uint32_t>(used), 10u);
  EXPECT_EQ(load<uint64_t>(buf), 1u);  // d_next of the first entry
  // Resuming at a cookie returns the listing from that index.
  ASSERT_EQ(wasi->fd_readdir(m, dir, buf, 64, 13, used), kSuccess);
  auto last = parse_dirents(buf, load<uint32_t>(used));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].name, all[13].name);
  EXPECT_EQ(last[0].next, 14u);
  ASSERT_EQ(wasi->fd_readdir(m, dir, buf, 64, 14, used), kSuccess);
  EXPECT_EQ(load<uint32_t>(used), 0u);
  ASSERT_EQ(wasi->fd_readdir(m, dir, buf, 64, 1000, used), kSuccess);
  EXPECT_EQ(load<uint32_t>(used), 0u);
  EXPECT_EQ(wasi->fd_readdir(m, dir, kMemSize - 10, 64, 0, used), kFault);
  EXPECT_EQ(wasi->fd_readdir(m, dir, buf, 64, 0, kBadPtr), kFault);
}

// --- links, rename, stat ----------------------------------------------------------

TEST_F(WasiTest, SymlinkReadlinkLinkRenameStat) {
  make();
  write_host_file(tmp / "mnt/target", "T");
  ASSERT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "sub"), kSuccess);
  auto symlink = [&](std::string_view target, std::string_view path) {
    return wasi->path_symlink(m, put(target), static_cast<uint32_t>(target.size()), kDataFd,
                              put(path), static_cast<uint32_t>(path.size()));
  };
  ASSERT_EQ(symlink("target", "link"), kSuccess);
  ASSERT_EQ(symlink("../target", "sub/up"), kSuccess);  // stays inside
  EXPECT_EQ(symlink("target", "link"), kExist);
  uint32_t buf = alloc(64), used = alloc(4);
  ASSERT_EQ(wasi->path_readlink(m, kDataFd, put("link"), 4, buf, 64, used), kSuccess);
  EXPECT_EQ(bytes(buf, load<uint32_t>(used)), "target");
  ASSERT_EQ(wasi->path_readlink(m, kDataFd, put("link"), 4, buf, 3, used), kSuccess);
  EXPECT_EQ(load<uint32_t>(used), 3u);
  EXPECT_EQ(bytes(buf, 3), "tar");
  EXPECT_EQ(wasi->path_readlink(m, kDataFd, put("target"), 6, buf, 64, used), kInval);
  EXPECT_EQ(wasi->path_readlink(m, kDataFd, put("link"), 4, kMemSize - 2, 64, used), kFault);

  uint32_t fs = alloc(64);
  ASSERT_EQ(filestat(kDataFd, "link", 0, fs), kSuccess);
  EXPECT_EQ(mem[fs + 16], 7);
  ASSERT_EQ(filestat(kDataFd, "link", kFollow, fs), kSuccess);
  EXPECT_EQ(mem[fs + 16], 4);
  EXPECT_EQ(load<uint64_t>(fs + 32), 1u);
  ASSERT_EQ(filestat(kDataFd, "sub/up", kFollow, fs), kSuccess);
  EXPECT_EQ(load<uint64_t>(fs + 32), 1u);
  ASSERT_EQ(filestat(kDataFd, "sub/..", 0, fs), kSuccess);
  EXPECT_EQ(mem[fs + 16], 3);
  EXPECT_EQ(filestat(kDataFd, "missing", 0, fs), kNoEnt);
  EXPECT_EQ(filestat(kDataFd, "target/", 0, fs), kNotDir);
  EXPECT_EQ(filestat(kDataFd, "target", 0, kBadPtr), kFault);

  // Opening a symlink without SYMLINK_FOLLOW.
  uint32_t fd;
  EXPECT_EQ(open(kDataFd, "link", 0, kRead, &fd, 0, 0), kLoop);
  ASSERT_EQ(open(kDataFd, "link", 0, kRead, &fd, 0, kFollow), kSuccess);

  // Times by path (no follow changes the link itself; follow the target).
  const uint64_t t = 1500000000ull * 1000000000ull + 42;
  ASSERT_EQ(wasi->path_filestat_set_times(m, kDataFd, kFollow, put("link"), 4, t, t, 1 | 4),
            kSuccess);
  ASSERT_EQ(filestat(kDataFd, "target", 0, fs), kSuccess);
  EXPECT_EQ(load<uint64_t>(fs + 48), t);
  ASSERT_EQ(wasi->path_filestat_set_times(m, kDataFd, 0, put("link"), 4, t + 1, t + 1, 1 | 4),
            kSuccess);
  ASSERT_EQ(filestat(kDataFd, "link", 0, fs), kSuccess);
  EXPECT_EQ(load<uint64_t>(fs + 48), t + 1);
  ASSERT_EQ(filestat(kDataFd, "target", 0, fs), kSuccess);
  EXPECT_EQ(load<uint64_t>(fs + 48), t);
  EXPECT_EQ(wasi->path_filestat_set_times(m, kDataFd, 0, put("nope"), 4, 0, 0, 2), kNoEnt);

  // Hard links, with and without following a symlink.
  auto link = [&](uint32_t flags, std::string_view from, std::string_view to) {
    return wasi->path_link(m, kDataFd, flags, put(from), static_cast<uint32_t>(from.size()),
                           kDataFd, put(to), static_cast<uint32_t>(to.size()));
  };
  ASSERT_EQ(link(0, "target", "hard"), kSuccess);
  EXPECT_EQ(read_host_file(tmp / "mnt/hard"), "T");
  ASSERT_EQ(link(kFollow, "link", "hard2"), kSuccess);
  EXPECT_FALSE(std::filesystem::is_symlink(tmp / "mnt/hard2"));
  EXPECT_EQ(read_host_file(tmp / "mnt/hard2"), "T");
  ASSERT_EQ(link(0, "link", "hard3"), kSuccess);
  EXPECT_TRUE(std::filesystem::is_symlink(tmp / "mnt/hard3"));
  EXPECT_EQ(link(0, "target", "hard"), kExist);
  EXPECT_EQ(link(0, "missing", "x"), kNoEnt);

  // Rename.
  auto rename = [&](std::string_view from, std::string_view to) {
    return wasi->path_rename(m, kDataFd, put(from), static_cast<uint32_t>(from.size()), kDataFd,
                             put(to), static_cast<uint32_t>(to.size()));
  };
  ASSERT_EQ(rename("hard", "sub/moved"), kSuccess);
  EXPECT_EQ(read_host_file(tmp / "mnt/sub/moved"), "T");
  EXPECT_FALSE(std::filesystem::exists(tmp / "mnt/hard"));
  EXPECT_EQ(rename("hard", "x"), kNoEnt);
  EXPECT_EQ(rename("target/", "x"), kNotDir);
  ASSERT_EQ(rename("sub/", "sub2"), kSuccess);
  EXPECT_TRUE(std::filesystem::is_directory(tmp / "mnt/sub2"));
  EXPECT_EQ(rename("sub2", "target"), kNotDir);
}

// --- escapes ---------------------------------------------------------------------

TEST_F(WasiTest, PathsCannotLeaveTheMount) {
  make();
  std::filesystem::create_directories(tmp / "mnt/a");
  write_host_file(tmp / "mnt/a/inside", "in");
  std::filesystem::create_symlink("/etc/passwd", tmp / "mnt/abs");
  std::filesystem::create_symlink("../outside/secret", tmp / "mnt/up");
  std::filesystem::create_symlink("../../outside", tmp / "mnt/a/up2");
  std::filesystem::create_symlink("loop2", tmp / "mnt/loop1");
  std::filesystem::create_symlink("loop1", tmp / "mnt/loop2");
  std::filesystem::create_symlink("/proc/self/root", tmp / "mnt/proc_root");
  std::filesystem::create_symlink("/proc/self/cwd", tmp / "mnt/proc_cwd");
  std::filesystem::create_symlink("a/inside", tmp / "mnt/ok");

  uint32_t fd;
  EXPECT_EQ(open(kDataFd, "../outside/secret", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "a/../../outside/secret", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "/etc/passwd", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "abs", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "up", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "a/up2/secret", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "loop1", 0, kRead, &fd), kLoop);
  EXPECT_EQ(open(kDataFd, "proc_root/etc/passwd", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "proc_cwd", kDirectory, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "..", kDirectory, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kDataFd, "abs", kCreat, kRead | kWrite, &fd), kNotCapable);
  EXPECT_FALSE(std::filesystem::exists(tmp / "mnt/a/escape"));
  // Opened subdirectories are confined as well.
  uint32_t a = must_open(kDataFd, "a", kDirectory, kReadOnlyRights);
  EXPECT_EQ(open(a, "../../outside/secret", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(a, "..", kDirectory, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(a, "up2/secret", 0, kRead, &fd), kNotCapable);
  ASSERT_EQ(open(kDataFd, "ok", 0, kRead, &fd), kSuccess);
  std::string data;
  ASSERT_EQ(read(fd, 10, &data), kSuccess);
  EXPECT_EQ(data, "in");

  uint32_t fs = alloc(64);
  EXPECT_EQ(filestat(kDataFd, "../outside/secret", 0, fs), kNotCapable);
  EXPECT_EQ(filestat(kDataFd, "abs", kFollow, fs), kNotCapable);
  EXPECT_EQ(filestat(kDataFd, "up", kFollow, fs), kNotCapable);
  EXPECT_EQ(filestat(kDataFd, "..", 0, fs), kNotCapable);
  ASSERT_EQ(filestat(kDataFd, "abs", 0, fs), kSuccess);  // the link itself
  EXPECT_EQ(mem[fs + 16], 7);

  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "../evil"), kNotCapable);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "a/../../evil"), kNotCapable);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "abs/x"), kNotCapable);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, "/tmp/evil"), kNotCapable);
  EXPECT_FALSE(std::filesystem::exists(tmp / "evil"));
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kDataFd, "../outside/secret"), kNotCapable);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kDataFd, "a/up2/secret"), kNotCapable);
  EXPECT_EQ(path_op(&Wasi::path_remove_directory, kDataFd, "../outside"), kNotCapable);
  EXPECT_EQ(path_op(&Wasi::path_remove_directory, kDataFd, ".."), kNotCapable);
  EXPECT_TRUE(std::filesystem::exists(tmp / "outside/secret"));
  EXPECT_EQ(wasi->path_filestat_set_times(m, kDataFd, kFollow, put("abs"), 3, 0, 0, 2),
            kNotCapable);
  EXPECT_EQ(wasi->path_readlink(m, kDataFd, put("../x"), 4, alloc(8), 8, alloc(4)), kNotCapable);

  // Hard links from or to outside, or through a symlink that points outside.
  auto link = [&](uint32_t flags, std::string_view from, std::string_view to) {
    return wasi->path_link(m, kDataFd, flags, put(from), static_cast<uint32_t>(from.size()),
                           kDataFd, put(to), static_cast<uint32_t>(to.size()));
  };
  EXPECT_EQ(link(0, "../outside/secret", "stolen"), kNotCapable);
  EXPECT_EQ(link(kFollow, "abs", "stolen"), kNotCapable);
  EXPECT_EQ(link(kFollow, "up", "stolen"), kNotCapable);
  EXPECT_EQ(link(0, "a/inside", "../planted"), kNotCapable);
  EXPECT_FALSE(std::filesystem::exists(tmp / "mnt/stolen"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "planted"));

  auto rename = [&](std::string_view from, std::string_view to) {
    return wasi->path_rename(m, kDataFd, put(from), static_cast<uint32_t>(from.size()), kDataFd,
                             put(to), static_cast<uint32_t>(to.size()));
  };
  EXPECT_EQ(rename("../outside/secret", "stolen"), kNotCapable);
  EXPECT_EQ(rename("a/inside", "../moved"), kNotCapable);
  EXPECT_EQ(rename("a/inside", "abs/x"), kNotCapable);
  EXPECT_TRUE(std::filesystem::exists(tmp / "mnt/a/inside"));

  auto symlink = [&](std::string_view target, std::string_view path) {
    return wasi->path_symlink(m, put(target), static_cast<uint32_t>(target.size()), kDataFd,
                              put(path), static_cast<uint32_t>(path.size()));
  };
  EXPECT_EQ(symlink("/etc/passwd", "s1"), kNotCapable);
  EXPECT_EQ(symlink("../outside/secret", "s2"), kNotCapable);
  EXPECT_EQ(symlink("../../outside", "a/s3"), kNotCapable);
  EXPECT_EQ(symlink("x/../../y", "s4"), kNotCapable);
  EXPECT_EQ(symlink("target", "../s5"), kNotCapable);
  EXPECT_EQ(symlink("../a/inside", "a/s6"), kSuccess);
  EXPECT_FALSE(std::filesystem::exists(tmp / "mnt/s1"));
  EXPECT_FALSE(std::filesystem::is_symlink(tmp / "mnt/s2"));
}

TEST_F(WasiTest, NulInPathIsRejected) {
  make();
  write_host_file(tmp / "mnt/a", "A");
  uint32_t fd;
  EXPECT_EQ(open(kDataFd, std::string("a\0b", 3), 0, kRead, &fd), kInval);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kDataFd, std::string("x\0", 2)), kInval);
  EXPECT_EQ(open(kImageFd, std::string("os.py\0", 6), 0, kRead, &fd), kInval);
}

// --- read-only mounts ----------------------------------------------------------------

TEST_F(WasiTest, ReadOnlyMountRefusesChanges) {
  make();
  std::filesystem::create_symlink("hello.txt", tmp / "ro/link");
  uint32_t fd;
  EXPECT_EQ(open(kRoFd, "hello.txt", 0, kRead | kWrite, &fd), kRoFs);
  EXPECT_EQ(open(kRoFd, "hello.txt", 0, kWrite, &fd), kRoFs);
  EXPECT_EQ(open(kRoFd, "new.txt", kCreat, kRead, &fd), kRoFs);
  EXPECT_EQ(open(kRoFd, "hello.txt", kTrunc, kRead, &fd), kRoFs);
  EXPECT_EQ(open(kRoFd, "hello.txt", 0, kRead, &fd, kAppend), kRoFs);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kRoFd, "d"), kRoFs);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kRoFd, "hello.txt"), kRoFs);
  // Removing what is not there is ENOENT, also on a read-only mount.
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kRoFd, "missing.txt"), kNoEnt);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kRoFd, "../escape"), kNotCapable);
  EXPECT_EQ(path_op(&Wasi::path_remove_directory, kRoFd, "sub"), kRoFs);
  EXPECT_EQ(wasi->path_rename(m, kRoFd, put("hello.txt"), 9, kRoFd, put("x"), 1), kRoFs);
  EXPECT_EQ(wasi->path_rename(m, kRoFd, put("hello.txt"), 9, kDataFd, put("x"), 1), kRoFs);
  EXPECT_EQ(wasi->path_rename(m, kDataFd, put("x"), 1, kRoFd, put("y"), 1), kRoFs);
  EXPECT_EQ(wasi->path_symlink(m, put("hello.txt"), 9, kRoFd, put("s"), 1), kRoFs);
  EXPECT_EQ(wasi->path_link(m, kRoFd, 0, put("hello.txt"), 9, kRoFd, put("h"), 1), kRoFs);
  EXPECT_EQ(wasi->path_link(m, kRoFd, 0, put("hello.txt"), 9, kDataFd, put("h"), 1), kRoFs);
  EXPECT_EQ(wasi->path_filestat_set_times(m, kRoFd, 0, put("hello.txt"), 9, 0, 0, 2), kRoFs);
  EXPECT_EQ(wasi->fd_filestat_set_times(m, kRoFd, 0, 0, 2), kRoFs);

  // Reading works; the fd cannot be used to change the file.
  uint32_t f = must_open(kRoFd, "hello.txt", 0, kReadOnlyRights);
  std::string data;
  ASSERT_EQ(read(f, 100, &data), kSuccess);
  EXPECT_EQ(data, "hello, ro");
  EXPECT_EQ(write(f, "x"), kBadF);
  uint32_t iov = alloc(8);
  store<uint32_t>(iov, put("x"));
  store<uint32_t>(iov + 4, 1);
  EXPECT_EQ(wasi->fd_pwrite(m, f, iov, 1, 0, alloc(4)), kBadF);
  EXPECT_EQ(wasi->fd_filestat_set_size(m, f, 0), kRoFs);
  EXPECT_EQ(wasi->fd_filestat_set_times(m, f, 0, 0, 2), kRoFs);
  EXPECT_EQ(wasi->fd_allocate(m, f, 0, 10), kRoFs);
  EXPECT_EQ(wasi->fd_fdstat_set_flags(m, f, kAppend), kRoFs);
  // Subdirectories inherit read-only.
  uint32_t sub = must_open(kRoFd, "sub", kDirectory, kReadOnlyRights);
  EXPECT_EQ(open(sub, "new", kCreat, kRead, &fd), kRoFs);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, sub, "d"), kRoFs);
  // Listing and stat work.
  uint32_t dir = must_open(kRoFd, ".", kDirectory, kReadOnlyRights);
  EXPECT_EQ(names(readdir_all(dir, 256)),
            (std::set<std::string>{".", "..", "hello.txt", "sub", "link"}));
  uint32_t fs = alloc(64);
  ASSERT_EQ(filestat(kRoFd, "link", kFollow, fs), kSuccess);
  EXPECT_EQ(load<uint64_t>(fs + 32), 9u);
  EXPECT_EQ(read_host_file(tmp / "ro/hello.txt"), "hello, ro");
  EXPECT_TRUE(std::filesystem::exists(tmp / "ro/sub"));
}

// --- image mounts ---------------------------------------------------------------------

TEST_F(WasiTest, ImageMountOpenReadSeekStatReaddir) {
  make();
  uint32_t f = must_open(kImageFd, "os.py", 0, kReadOnlyRights);
  std::string data;
  ASSERT_EQ(read(f, 6, &data), kSuccess);
  EXPECT_EQ(data, "import");
  uint32_t off = alloc(8);
  ASSERT_EQ(wasi->fd_tell(m, f, off), kSuccess);
  EXPECT_EQ(load<uint64_t>(off), 6u);
  ASSERT_EQ(wasi->fd_seek(m, f, -4, 2, off), kSuccess);
  EXPECT_EQ(load<uint64_t>(off), 7u);
  EXPECT_EQ(read_all(f), "sys\n");
  ASSERT_EQ(read(f, 6, &data), kSuccess);
  EXPECT_EQ(data, "");
  EXPECT_EQ(wasi->fd_seek(m, f, -1, 0, off), kInval);
  ASSERT_EQ(wasi->fd_seek(m, f, 100, 0, off), kSuccess);
  ASSERT_EQ(read(f, 6, &data), kSuccess);
  EXPECT_EQ(data, "");
  uint32_t iov = alloc(8), buf = alloc(16), n = alloc(4);
  store<uint32_t>(iov, buf);
  store<uint32_t>(iov + 4, 3);
  ASSERT_EQ(wasi->fd_pread(m, f, iov, 1, 1, n), kSuccess);
  EXPECT_EQ(bytes(buf, load<uint32_t>(n)), "mpo");

  uint32_t fs = alloc(64);
  ASSERT_EQ(wasi->fd_filestat_get(m, f, fs), kSuccess);
  Image::NodeIndex node = *image->resolve(Image::kRoot, "os.py");
  EXPECT_EQ(load<uint64_t>(fs + 8), uint64_t{node} + 1);
  uint64_t image_dev = load<uint64_t>(fs);
  struct stat st;
  ASSERT_EQ(stat(tmp.path().c_str(), &st), 0);
  EXPECT_NE(image_dev, uint64_t(st.st_dev));
  EXPECT_EQ(mem[fs + 16], 4);
  EXPECT_EQ(load<uint64_t>(fs + 24), 1u);
  EXPECT_EQ(load<uint64_t>(fs + 32), 11u);
  ASSERT_EQ(filestat(kImageFd, "pkg", 0, fs), kSuccess);
  EXPECT_EQ(mem[fs + 16], 3);
  EXPECT_EQ(load<uint64_t>(fs), image_dev);
  ASSERT_EQ(filestat(kImageFd, "pkg/./mod.py", 0, fs), kSuccess);
  EXPECT_EQ(load<uint64_t>(fs + 32), 6u);
  uint32_t fdstat = alloc(24);
  ASSERT_EQ(wasi->fd_fdstat_get(m, f, fdstat), kSuccess);
  EXPECT_EQ(mem[fdstat], 4);
  ASSERT_EQ(wasi->fd_fdstat_get(m, kImageFd, fdstat), kSuccess);
  EXPECT_EQ(mem[fdstat], 3);

  auto root = readdir_all(kImageFd, 512);
  EXPECT_EQ(names(root), (std::set<std::string>{".", "..", "os.py", "pkg"}));
  for (const auto& e : root) {
    if (e.name == "pkg") {
      EXPECT_EQ(e.type, 3);
    }
  }
  uint32_t pkg = must_open(kImageFd, "pkg", kDirectory, kReadOnlyRights);
  auto entries = readdir_all(pkg, 40);
  EXPECT_EQ(names(entries), (std::set<std::string>{".", "..", "__init__.py", "mod.py"}));
  uint32_t mod = must_open(pkg, "mod.py", 0, kRead);
  EXPECT_EQ(read_all(mod), "x = 1\n");
  uint32_t up = must_open(pkg, "../os.py", 0, kRead);
  EXPECT_EQ(read_all(up), "import sys\n");
}

TEST_F(WasiTest, ImageMountErrors) {
  make();
  uint32_t fd;
  EXPECT_EQ(open(kImageFd, "../etc/passwd", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kImageFd, "pkg/../../x", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kImageFd, "/os.py", 0, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kImageFd, "..", kDirectory, kRead, &fd), kNotCapable);
  EXPECT_EQ(open(kImageFd, "missing.py", 0, kRead, &fd), kNoEnt);
  EXPECT_EQ(open(kImageFd, "os.py/x", 0, kRead, &fd), kNotDir);
  EXPECT_EQ(open(kImageFd, "os.py/", 0, kRead, &fd), kNotDir);
  EXPECT_EQ(open(kImageFd, "os.py", kDirectory, kRead, &fd), kNotDir);
  EXPECT_EQ(open(kImageFd, "os.py", 0, kRead | kWrite, &fd), kRoFs);
  EXPECT_EQ(open(kImageFd, "new.py", kCreat, kRead, &fd), kRoFs);
  EXPECT_EQ(open(kImageFd, "os.py", kTrunc, kRead, &fd), kRoFs);
  uint32_t fs = alloc(64);
  EXPECT_EQ(filestat(kImageFd, "../x", 0, fs), kNotCapable);
  EXPECT_EQ(filestat(kImageFd, "nope", 0, fs), kNoEnt);
  EXPECT_EQ(path_op(&Wasi::path_create_directory, kImageFd, "d"), kRoFs);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kImageFd, "os.py"), kRoFs);
  EXPECT_EQ(path_op(&Wasi::path_unlink_file, kImageFd, "stale.pyc"), kNoEnt);
  EXPECT_EQ(path_op(&Wasi::path_remove_directory, kImageFd, "pkg"), kRoFs);
  EXPECT_EQ(wasi->path_readlink(m, kImageFd, put("os.py"), 5, alloc(8), 8, alloc(4)), kInval);
  uint32_t f = must_open(kImageFd, "os.py", 0, kRead | kSeek);
  EXPECT_EQ(write(f, "x"), kBadF);
  EXPECT_EQ(wasi->fd_filestat_set_size(m, f, 0), kRoFs);
  EXPECT_EQ(wasi->fd_allocate(m, f, 0, 1), kRoFs);
  EXPECT_EQ(wasi->fd_filestat_set_times(m, f, 0, 0, 2), kRoFs);
  std::string data;
  EXPECT_EQ(read(kImageFd, 4, &data), kIsDir);
}

// --- bad guest pointers ---------------------------------------------------------------

TEST_F(WasiTest, BadPointersAndLengthsFault) {
  make();
  write_host_file(tmp / "mnt/f", "0123456789");
  uint32_t f = must_open(kDataFd, "f", 0, kAllRights);
  uint32_t iov = alloc(8), n = alloc(4), buf = alloc(16);
  // The iovec array itself out of memory, or its length overflowing.
  EXPECT_EQ(wasi->fd_write(m, 1, kBadPtr, 1, n), kFault);
  EXPECT_EQ(wasi->fd_write(m, 1, iov, 0x20000000u, n), kFault);
  EXPECT_EQ(wasi->fd_read(m, f, kMemSize - 4, 1, n), kFault);
  // A buffer pointer beyond memory; a length running past the end.
  store<uint32_t>(iov, kBadPtr);
  store<uint32_t>(iov + 4, 4);
  EXPECT_EQ(wasi->fd_write(m, 1, iov, 1, n), kFault);
  EXPECT_EQ(wasi->fd_read(m, f, iov, 1, n), kFault);
  EXPECT_EQ(wasi->fd_pread(m, f, iov, 1, 0, n), kFault);
  EXPECT_EQ(wasi->fd_pwrite(m, f, iov, 1, 0, n), kFault);
  store<uint32_t>(iov, buf);
  store<uint32_t>(iov + 4, 0xFFFFFFFFu);
  EXPECT_EQ(wasi->fd_write(m, 1, iov, 1, n), kFault);
  EXPECT_EQ(wasi->fd_read(m, f, iov, 1, n), kFault);
  // The result pointer.
  store<uint32_t>(iov + 4, 4);
  EXPECT_EQ(wasi->fd_read(m, f, iov, 1, kBadPtr), kFault);
  EXPECT_EQ(wasi->fd_write(m, 1, iov, 1, kMemSize - 3), kFault);
  EXPECT_EQ(out, "");  // nothing was written before the fault was found
  EXPECT_EQ(read_host_file(tmp / "mnt/f"), "0123456789");
  // Paths.
  EXPECT_EQ(wasi->path_open(m, kDataFd, 0, kBadPtr, 4, 0, kRead, 0, 0, n), kFault);
  EXPECT_EQ(wasi->path_open(m, kDataFd, 0, put("f"), 0xFFFFFFFFu, 0, kRead, 0, 0, n), kFault);
  EXPECT_EQ(wasi->path_create_directory(m, kDataFd, kMemSize, 1), kFault);
  EXPECT_EQ(wasi->path_unlink_file(m, kDataFd, kBadPtr, 1), kFault);
  EXPECT_EQ(wasi->path_remove_directory(m, kDataFd, kBadPtr, 1), kFault);
  EXPECT_EQ(wasi->path_symlink(m, kBadPtr, 1, kDataFd, put("x"), 1), kFault);
  EXPECT_EQ(wasi->path_rename(m, kDataFd, put("f"), 1, kDataFd, kBadPtr, 1), kFault);
  EXPECT_EQ(wasi->path_link(m, kDataFd, 0, kBadPtr, 1, kDataFd, put("x"), 1), kFault);
  EXPECT_EQ(wasi->path_filestat_set_times(m, kDataFd, 0, kBadPtr, 1, 0, 0, 2), kFault);
  // fd_out out of memory: the file is not opened (no fd leaks).
  EXPECT_EQ(wasi->path_open(m, kDataFd, 0, put("f"), 1, 0, kRead, 0, 0, kBadPtr), kFault);
  EXPECT_EQ(must_open(kDataFd, "f"), f + 1);
  // poll_oneoff arrays.
  clock_sub(buf, 1, 1, 0, 0);
  EXPECT_EQ(wasi->poll_oneoff(m, kBadPtr, buf, 1, n), kFault);
  EXPECT_EQ(wasi->poll_oneoff(m, buf, kMemSize - 8, 1, n), kFault);
  EXPECT_EQ(wasi->poll_oneoff(m, buf, alloc(32), 0x10000000u, n), kFault);
  EXPECT_EQ(wasi->poll_oneoff(m, buf, alloc(32), 1, kBadPtr), kFault);
  // A memory of size zero.
  GuestMemory empty(mem.data(), 0);
  EXPECT_EQ(wasi->fd_write(empty, 1, 0, 1, 0), kFault);
  EXPECT_EQ(wasi->args_sizes_get(empty, 0, 4), kFault);
}

// --- limits ------------------------------------------------------------------------------

TEST_F(WasiTest, OutputLimit) {
  WasiConfig config = default_config();
  config.limits.max_output_bytes = 10;
  make(std::move(config));
  ASSERT_EQ(write(1, "12345"), kSuccess);
  ASSERT_EQ(write(2, "678"), kSuccess);
  EXPECT_TRUE(wasi->limit_exceeded().empty());
  EXPECT_EQ(write(1, "90AB"), kFBig);
  EXPECT_EQ(out, "1234590");
  EXPECT_EQ(err, "678");
  EXPECT_EQ(wasi->limit_exceeded(), "output limit of 10 bytes exceeded");
  EXPECT_EQ(write(2, "x"), kFBig);
  EXPECT_EQ(err, "678");
  EXPECT_EQ(wasi->limit_exceeded(), "output limit of 10 bytes exceeded");
}

TEST_F(WasiTest, OpenFileLimit) {
  WasiConfig config = default_config();
  config.limits.max_open_files = 8;  // 3 stdio + 3 preopens + 2
  make(std::move(config));
  write_host_file(tmp / "mnt/f", "");
  uint32_t a = must_open(kDataFd, "f");
  must_open(kImageFd, "os.py", 0, kRead);
  uint32_t fd;
  EXPECT_TRUE(wasi->limit_exceeded().empty());
  EXPECT_EQ(open(kDataFd, "f", 0, kRead, &fd), kMFile);
  EXPECT_EQ(wasi->limit_exceeded(), "open file limit of 8 exceeded");
  ASSERT_EQ(wasi->fd_close(m, a), kSuccess);
  EXPECT_EQ(open(kDataFd, "f", 0, kRead, &fd), kSuccess);
}

TEST_F(WasiTest, WrittenBytesLimit) {
  WasiConfig config = default_config();
  config.limits.max_written_bytes = 10;
  make(std::move(config));
  uint32_t f = must_open(kDataFd, "f", kCreat, kAllRights);
  ASSERT_EQ(write(f, "12345678"), kSuccess);
  EXPECT_EQ(write(f, "abc"), kFBig);
  EXPECT_EQ(wasi->limit_exceeded(), "write limit of 10 bytes exceeded");
  EXPECT_EQ(read_host_file(tmp / "mnt/f"), "12345678");
  // stdout is not counted against the file limit.
  EXPECT_EQ(write(1, "plenty of output"), kSuccess);
}

TEST_F(WasiTest, WrittenBytesLimitCountsGrowth) {
  WasiConfig config = default_config();
  config.limits.max_written_bytes = 100;
  make(std::move(config));
  uint32_t f = must_open(kDataFd, "f", kCreat, kAllRights);
  ASSERT_EQ(wasi->fd_filestat_set_size(m, f, 60), kSuccess);
  ASSERT_EQ(wasi->fd_filestat_set_size(m, f, 10), kSuccess);  // shrinking is free
  ASSERT_EQ(wasi->fd_allocate(m, f, 0, 40), kSuccess);        // +30
  EXPECT_TRUE(wasi->limit_exceeded().empty());
  EXPECT_EQ(wasi->fd_allocate(m, f, 0, 100), kFBig);
  EXPECT_EQ(wasi->limit_exceeded(), "write limit of 100 bytes exceeded");
  struct stat st;
  ASSERT_EQ(stat((tmp / "mnt/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 40);
  EXPECT_EQ(wasi->fd_filestat_set_size(m, f, 1000), kFBig);
}

// --- poll_oneoff --------------------------------------------------------------------------

TEST_F(WasiTest, PollRelativeClockSleeps) {
  make();
  uint32_t in = alloc(48), ev = alloc(32), n = alloc(4);
  clock_sub(in, 0xABCDEF, 1, 50'000'000, 0);
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 1, n), kSuccess);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(50));
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
  ASSERT_EQ(load<uint32_t>(n), 1u);
  EXPECT_EQ(load<uint64_t>(ev), 0xABCDEFu);
  EXPECT_EQ(load<uint16_t>(ev + 8), kSuccess);
  EXPECT_EQ(mem[ev + 10], 0);
}

TEST_F(WasiTest, PollAbsoluteClockSleepsUntilDeadline) {
  make();
  uint32_t in = alloc(48), ev = alloc(32), n = alloc(4);
  uint64_t deadline = now_mono() + 60'000'000;
  clock_sub(in, 7, 1, deadline, 1);
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 1, n), kSuccess);
  EXPECT_GE(now_mono(), deadline);
  EXPECT_LT(now_mono(), deadline + 400'000'000);
  ASSERT_EQ(load<uint32_t>(n), 1u);
  EXPECT_EQ(load<uint64_t>(ev), 7u);
  // An absolute deadline in the past returns at once.
  clock_sub(in, 8, 1, 1, 1);
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 1, n), kSuccess);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
  EXPECT_EQ(load<uint32_t>(n), 1u);
  // Absolute on the realtime clock.
  uint32_t t = alloc(8);
  ASSERT_EQ(wasi->clock_time_get(m, 0, 0, t), kSuccess);
  clock_sub(in, 9, 0, load<uint64_t>(t) + 40'000'000, 1);
  start = std::chrono::steady_clock::now();
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 1, n), kSuccess);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(35));
}

TEST_F(WasiTest, PollReportsEarliestClockAndReadyFds) {
  int in_pipe[2];
  ASSERT_EQ(pipe(in_pipe), 0);
  WasiConfig config = default_config();
  config.stdin_fd = in_pipe[0];
  make(std::move(config));
  uint32_t in = alloc(48 * 3), ev = alloc(32 * 3), n = alloc(4);
  // Two clocks: only the earlier fires.
  clock_sub(in, 1, 1, 30'000'000, 0);
  clock_sub(in + 48, 2, 1, 5'000'000'000ull, 0);
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 2, n), kSuccess);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_EQ(load<uint32_t>(n), 1u);
  EXPECT_EQ(load<uint64_t>(ev), 1u);

  // stdin (empty pipe) + stdout (callback, always writable) + a long clock.
  fd_sub(in, 10, 1, 0);
  fd_sub(in + 48, 11, 2, 1);
  clock_sub(in + 96, 12, 1, 5'000'000'000ull, 0);
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 3, n), kSuccess);
  ASSERT_EQ(load<uint32_t>(n), 1u);
  EXPECT_EQ(load<uint64_t>(ev), 11u);
  EXPECT_EQ(mem[ev + 10], 2);

  // Data arriving on stdin.
  ASSERT_EQ(::write(in_pipe[1], "abc", 3), 3);
  fd_sub(in, 20, 1, 0);
  clock_sub(in + 48, 21, 1, 5'000'000'000ull, 0);
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 2, n), kSuccess);
  ASSERT_EQ(load<uint32_t>(n), 1u);
  EXPECT_EQ(load<uint64_t>(ev), 20u);
  EXPECT_EQ(mem[ev + 10], 1);
  EXPECT_EQ(load<uint64_t>(ev + 16), 3u);

  // A reader blocked until a writer thread fills the pipe.
  std::string data;
  ASSERT_EQ(read(0, 10, &data), kSuccess);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    (void)!::write(in_pipe[1], "z", 1);
  });
  fd_sub(in, 30, 1, 0);
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 1, n), kSuccess);
  writer.join();
  ASSERT_EQ(load<uint32_t>(n), 1u);
  EXPECT_EQ(load<uint64_t>(ev), 30u);

  // Errors are reported as events: bad fd, unknown clock.
  fd_sub(in, 40, 1, 99);
  clock_sub(in + 48, 41, 9, 0, 0);
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 2, n), kSuccess);
  ASSERT_EQ(load<uint32_t>(n), 2u);
  EXPECT_EQ(load<uint64_t>(ev), 40u);
  EXPECT_EQ(load<uint16_t>(ev + 8), kBadF);
  EXPECT_EQ(load<uint64_t>(ev + 32), 41u);
  EXPECT_EQ(load<uint16_t>(ev + 32 + 8), kInval);

  // A regular file is always ready.
  write_host_file(tmp / "mnt/f", "12345");
  uint32_t f = must_open(kDataFd, "f", 0, kAllRights);
  fd_sub(in, 50, 1, f);
  ASSERT_EQ(wasi->poll_oneoff(m, in, ev, 1, n), kSuccess);
  ASSERT_EQ(load<uint32_t>(n), 1u);
  EXPECT_EQ(load<uint64_t>(ev + 16), 5u);

  EXPECT_EQ(wasi->poll_oneoff(m, in, ev, 0, n), kInval);
  close(in_pipe[0]);
  close(in_pipe[1]);
}

}  // namespace
}  // namespace terrarium::wasi
