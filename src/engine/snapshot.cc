#include "engine/snapshot.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/memory.h"

namespace terrarium::engine {
namespace {

std::string os_error(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool all_zero(const uint8_t* page, size_t size) {
  const uint64_t* words = reinterpret_cast<const uint64_t*>(page);
  for (size_t i = 0; i < size / 8; ++i) {
    if (words[i]) return false;
  }
  return true;
}

bool write_all(int fd, const uint8_t* data, size_t size, off_t offset) {
  while (size > 0) {
    ssize_t n = pwrite(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
  return true;
}

int make_memfd(uint64_t size, std::string* error) {
  int fd = memfd_create("terrarium-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    *error = os_error("memfd_create");
    return -1;
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    *error = os_error("ftruncate");
    close(fd);
    return -1;
  }
  return fd;
}

bool seal(int fd, std::string* error) {
  // Nobody may change a snapshot once taken: every sandbox maps it.
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    *error = os_error("sealing the snapshot");
    return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const MemorySnapshot> MemorySnapshot::capture(const wasm_rt_memory_t& memory,
                                                              std::string* error) {
  uint64_t size = uint64_t{memory.pages} * kWasmPageSize;
  int fd = make_memfd(size, error);
  if (fd < 0) return nullptr;
  constexpr size_t kChunk = 4096;
  for (uint64_t offset = 0; offset < size; offset += kChunk) {
    const uint8_t* page = memory.data + offset;
    if (all_zero(page, kChunk)) continue;
    // Write runs of non-zero pages in one call.
    uint64_t end = offset + kChunk;
    while (end < size && !all_zero(memory.data + end, kChunk)) end += kChunk;
    if (!write_all(fd, page, end - offset, static_cast<off_t>(offset))) {
      *error = os_error("writing the snapshot");
      close(fd);
      return nullptr;
    }
    offset = end - kChunk;
  }
  if (!seal(fd, error)) {
    close(fd);
    return nullptr;
  }
  return std::shared_ptr<const MemorySnapshot>(new MemorySnapshot(fd, memory.pages));
}

std::shared_ptr<const MemorySnapshot> MemorySnapshot::read_from(int in, uint64_t size,
                                                                std::string* error) {
  if (size % kWasmPageSize != 0 || size / kWasmPageSize > 65535) {
    *error = "snapshot memory size " + std::to_string(size) + " is not a valid page count";
    return nullptr;
  }
  int fd = make_memfd(size, error);
  if (fd < 0) return nullptr;
  std::vector<uint8_t> buffer(1 << 20);
  uint64_t done = 0;
  while (done < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size - done));
    ssize_t n = read(in, buffer.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = n == 0 ? "snapshot file is truncated" : os_error("reading the snapshot");
      close(fd);
      return nullptr;
    }
    // Keep zero pages as holes, as capture does.
    for (size_t at = 0; at < static_cast<size_t>(n); at += 4096) {
      size_t len = std::min<size_t>(4096, static_cast<size_t>(n) - at);
      if (len == 4096 && all_zero(buffer.data() + at, len)) continue;
      if (!write_all(fd, buffer.data() + at, len, static_cast<off_t>(done + at))) {
        *error = os_error("writing the snapshot");
        close(fd);
        return nullptr;
      }
    }
    done += static_cast<uint64_t>(n);
  }
  if (!seal(fd, error)) {
    close(fd);
    return nullptr;
  }
  return std::shared_ptr<const MemorySnapshot>(
      new MemorySnapshot(fd, static_cast<uint32_t>(size / kWasmPageSize)));
}

MemorySnapshot::MemorySnapshot(int fd, uint32_t pages) : fd_(fd), pages_(pages) {
  if (pages_ == 0) return;
  void* view = mmap(nullptr, bytes(), PROT_READ, MAP_SHARED, fd_, 0);
  if (view != MAP_FAILED) view_ = static_cast<const uint8_t*>(view);  // else pread is used
}

MemorySnapshot::~MemorySnapshot() {
  if (view_) munmap(const_cast<uint8_t*>(view_), bytes());
  close(fd_);
}

bool MemorySnapshot::map_new(wasm_rt_memory_t* memory, uint32_t max_pages,
                             std::string* error) const {
  // An ordinary allocation of zero pages gives the reservation and registers
  // it with the fault handler; the snapshot is then mapped over its start.
  wasm_rt_allocate_memory(memory, 0, max_pages);
  if (pages_ == 0) return true;
  void* mapped =
      mmap(memory->data, bytes(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd_, 0);
  if (mapped == MAP_FAILED) {
    *error = os_error("mapping the snapshot");
    wasm_rt_free_memory(memory);
    return false;
  }
  memory->pages = pages_;
  memory->size = static_cast<uint32_t>(bytes());
  return true;
}

namespace {

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr uint64_t kPagePresent = 1ull << 63;
constexpr uint64_t kPageSwapped = 1ull << 62;
constexpr uint64_t kPageFileOrShared = 1ull << 61;

int pagemap_fd() {
  static int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  return fd;
}

// PAGEMAP_SCAN (Linux 6.7): the kernel walks the page tables and returns
// only the ranges that match, instead of 8 bytes of pagemap per page. Debian
// 12's headers (6.1) lack it, so it is declared here
// (include/uapi/linux/fs.h of later kernels).
struct PageRegion {
  uint64_t start, end, categories;
};
struct PageScanArgument {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted,
      category_mask, category_anyof_mask, return_mask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PageScanArgument);
constexpr uint64_t kPageIsFile = 1 << 2;
constexpr uint64_t kPageIsPresent = 1 << 3;
constexpr uint64_t kPageIsSwapped = 1 << 4;

// Copies `length` bytes of the snapshot at `offset` back into `target`.
bool copy_from_snapshot(int snapshot_fd, const uint8_t* view, uint8_t* target, off_t offset,
                        size_t length) {
  if (view) {
    std::memcpy(target, view + offset, length);
    return true;
  }
  while (length > 0) {
    ssize_t n = pread(snapshot_fd, target, length, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {  // past the end of the memfd cannot happen; zero to be safe
      std::memset(target, 0, length);
      break;
    }
    target += n;
    offset += n;
    length -= static_cast<size_t>(n);
  }
  return true;
}

using Runs = std::vector<MemorySnapshot::Run>;

// The private pages (anonymous, present or swapped out: copies made by the
// guest's writes) through PAGEMAP_SCAN. Returns false if the kernel lacks it.
bool find_by_scan(uint8_t* data, uint64_t bytes, Runs* runs) {
  static std::atomic<bool> scan_works{true};
  if (!scan_works.load(std::memory_order_relaxed)) return false;
  constexpr size_t kRegions = 512;
  // On the heap, one buffer per thread: a large thread_local array would
  // make the library's TLS block too big to dlopen (the Python binding).
  static thread_local std::unique_ptr<PageRegion[]> buffer;
  if (!buffer) buffer.reset(new PageRegion[kRegions]);
  PageRegion* regions = buffer.get();
  uint64_t base = reinterpret_cast<uintptr_t>(data);
  uint64_t begin = base;
  uint64_t end = base + bytes;
  while (begin < end) {
    PageScanArgument scan{};
    scan.size = sizeof scan;
    scan.start = begin;
    scan.end = end;
    scan.vec = reinterpret_cast<uintptr_t>(regions);
    scan.vec_len = kRegions;
    scan.category_mask = kPageIsFile;
    scan.category_inverted = kPageIsFile;                        // not the file's page ...
    scan.category_anyof_mask = kPageIsPresent | kPageIsSwapped;  // ... but a page of ours
    scan.return_mask = kPageIsPresent | kPageIsSwapped | kPageIsFile;
    int found = ioctl(pagemap_fd(), kPagemapScan, &scan);
    if (found < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP) scan_works = false;
      return false;
    }
    for (int i = 0; i < found; ++i) {
      runs->push_back({regions[i].start - base, regions[i].end - regions[i].start});
    }
    if (scan.walk_end <= begin) return false;  // no progress: leave it to pagemap
    begin = scan.walk_end;
  }
  return true;
}

// The same by reading /proc/self/pagemap: 8 bytes per page of memory.
bool find_by_pagemap(uint8_t* data, uint64_t bytes, Runs* runs) {
  int pagemap = pagemap_fd();
  if (pagemap < 0) return false;
  constexpr size_t kPage = 4096;
  constexpr size_t kBatch = 4096;  // entries read per pread (16 MiB of memory)
  static thread_local std::unique_ptr<uint64_t[]> buffer;  // heap: see find_by_scan
  if (!buffer) buffer.reset(new uint64_t[kBatch]);
  uint64_t* entries = buffer.get();
  auto ours = [](uint64_t entry) {
    return (entry & (kPagePresent | kPageSwapped)) && !(entry & kPageFileOrShared);
  };
  uint64_t pages = bytes / kPage;
  uint64_t first_page = reinterpret_cast<uintptr_t>(data) / kPage;
  for (uint64_t done = 0; done < pages;) {
    size_t count = static_cast<size_t>(std::min<uint64_t>(kBatch, pages - done));
    ssize_t got = pread(pagemap, entries, count * 8, static_cast<off_t>((first_page + done) * 8));
    if (got != static_cast<ssize_t>(count * 8)) return false;
    for (size_t i = 0; i < count;) {
      if (!ours(entries[i])) {
        ++i;
        continue;
      }
      size_t run = 1;
      while (i + run < count && ours(entries[i + run])) ++run;
      runs->push_back({(done + i) * kPage, run * kPage});
      i += run;
    }
    done += count;
  }
  return true;
}

}  // namespace

bool MemorySnapshot::copy_runs(const std::vector<Run>& runs, uint8_t* data) const {
  for (const Run& run : runs) {
    if (run.offset + run.length > bytes()) return false;
    if (!copy_from_snapshot(fd_, view_, data + run.offset, static_cast<off_t>(run.offset),
                            run.length)) {
      return false;
    }
  }
  return true;
}

bool MemorySnapshot::reset(wasm_rt_memory_t* memory, std::string* error, ResetStrategy strategy,
                           PrivatePages* known) const {
  uint64_t current = uint64_t{memory->pages} * kWasmPageSize;
  if (current > bytes()) {
    // Pages grown after the snapshot: back to inaccessible, and zero (a
    // later grow must see zeros, as wasm requires).
    uint8_t* tail = memory->data + bytes();
    if (madvise(tail, current - bytes(), MADV_DONTNEED) != 0 ||
        mprotect(tail, current - bytes(), PROT_NONE) != 0) {
      *error = os_error("shrinking the memory");
      return false;
    }
  }
  bool copied = false;
  if (pages_ && strategy != ResetStrategy::kDropAllPages) {
    if (known && known->trusted && known->valid) {
      // No page became private since the last search (the caller's fault
      // count says so): the private pages are the ones found then.
      copied = copy_runs(known->runs, memory->data);
    } else {
      Runs runs;
      bool found =
          strategy == ResetStrategy::kCopyDirtyPages && find_by_scan(memory->data, bytes(), &runs);
      if (!found) {
        runs.clear();
        found = find_by_pagemap(memory->data, bytes(), &runs);
      }
      copied = found && copy_runs(runs, memory->data);
      if (known) {
        known->valid = copied;
        known->runs = std::move(runs);
      }
    }
  }
  if (known) known->trusted = false;
  // On a private file mapping, MADV_DONTNEED drops the copied pages: the
  // next access sees the snapshot again.
  if (!copied && pages_) {
    if (known) known->valid = false;
    if (madvise(memory->data, bytes(), MADV_DONTNEED) != 0) {
      *error = os_error("resetting the memory");
      return false;
    }
  }
  memory->pages = pages_;
  memory->size = static_cast<uint32_t>(bytes());
  return true;
}

bool MemorySnapshot::write_to(int out, std::string* error) const {
  std::vector<uint8_t> buffer(1 << 20);
  uint64_t done = 0;
  while (done < bytes()) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), bytes() - done));
    ssize_t n = pread(fd_, buffer.data(), want, static_cast<off_t>(done));
    if (n <= 0) {
      *error = os_error("reading the snapshot");
      return false;
    }
    size_t written = 0;
    while (written < static_cast<size_t>(n)) {
      ssize_t w = write(out, buffer.data() + written, static_cast<size_t>(n) - written);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        *error = os_error("writing the snapshot file");
        return false;
      }
      written += static_cast<size_t>(w);
    }
    done += static_cast<uint64_t>(n);
  }
  return true;
}

}  // namespace terrarium::engine
