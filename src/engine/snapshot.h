// Linear-memory snapshots: the bytes of a memory captured once into a sealed
// memfd, then mapped copy-on-write into any number of new memories. A new
// memory costs one mmap; a page costs a fault only when the guest first
// writes it. See shared/snapshot-notes.md for what faults cost here.
#pragma once

#include <wasm-rt.h>

#include <cstdint>
#include <memory>
#include <string>

namespace terrarium::engine {

class MemorySnapshot {
 public:
  // Captures the accessible bytes of `memory`. Pages that are all zero are
  // left as holes in the memfd (they cost nothing). Returns nullptr and sets
  // `error` when the memfd cannot be made.
  static std::shared_ptr<const MemorySnapshot> capture(const wasm_rt_memory_t& memory,
                                                       std::string* error);
  // Reads a snapshot written by write_to (the caller checks compatibility).
  static std::shared_ptr<const MemorySnapshot> read_from(int fd, uint64_t size, std::string* error);
  ~MemorySnapshot();

  uint32_t pages() const { return pages_; }
  uint64_t bytes() const { return uint64_t{pages_} * 65536; }

  // Makes `memory` a new memory (its own reservation) whose contents are the
  // snapshot, mapped copy-on-write. `max_pages` as for wasm_rt_allocate_memory.
  bool map_new(wasm_rt_memory_t* memory, uint32_t max_pages, std::string* error) const;

  // How reset() restores the pages the guest wrote.
  enum class ResetStrategy {
    // Copy the snapshot's bytes back into exactly the pages that became
    // private (found with the PAGEMAP_SCAN ioctl). Every mapping stays in place, so
    // the next call takes no page faults at all. The default: measured
    // fastest (bench/results/coldstart.md).
    kCopyDirtyPages,
    // The same, with the pages found by reading /proc/self/pagemap (8 bytes
    // a page) instead of the PAGEMAP_SCAN ioctl: what kCopyDirtyPages falls
    // back to on kernels before 6.7; selectable for tests and comparisons.
    kCopyDirtyPagesFromPagemap,
    // madvise(MADV_DONTNEED) over the whole memory: every page is dropped and
    // faults in again (from the snapshot) on its next use.
    kDropAllPages,
  };

  // Puts a memory made by map_new back to the snapshot's contents and size;
  // pages grown since the snapshot are removed.
  bool reset(wasm_rt_memory_t* memory, std::string* error,
             ResetStrategy strategy = ResetStrategy::kCopyDirtyPages) const;

  // Writes the raw memory image (bytes() long) to `fd`.
  bool write_to(int fd, std::string* error) const;

 private:
  MemorySnapshot(int fd, uint32_t pages);
  int fd_;
  uint32_t pages_;
  // A read-only shared view of the memfd: reset() copies dirty pages back
  // from it with memcpy (a pread per run costs a page-cache lookup per page).
  const uint8_t* view_ = nullptr;
};

}  // namespace terrarium::engine
