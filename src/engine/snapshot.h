// Linear-memory snapshots: the bytes of a memory captured once into a sealed
// memfd, then mapped copy-on-write into any number of new memories. A new
// memory costs one mmap; a page costs a fault only when the guest first
// writes it. See shared/snapshot-notes.md for what faults cost here.
#pragma once

#include <wasm-rt.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

  // A range of a memory's pages, in bytes from its start.
  struct Run {
    uint64_t offset;
    uint64_t length;
  };
  // What a resident memory's last reset learned: its private pages (once a
  // page is a private copy it stays one, so the set only grows). When the
  // caller knows no page can have become private since (its thread took no
  // page fault and no other thread ran the guest), it sets `trusted` and the
  // next reset copies these runs back without searching the page tables.
  struct PrivatePages {
    std::vector<Run> runs;
    bool valid = false;    // runs is the set found by the last search
    bool trusted = false;  // set by the caller before a reset; cleared by it
  };

  // Puts a memory made by map_new back to the snapshot's contents and size;
  // pages grown since the snapshot are removed. `known` (optional) is kept
  // up to date for the next reset of the same memory.
  bool reset(wasm_rt_memory_t* memory, std::string* error,
             ResetStrategy strategy = ResetStrategy::kCopyDirtyPages,
             PrivatePages* known = nullptr) const;

  // Writes the raw memory image (bytes() long) to `fd`.
  bool write_to(int fd, std::string* error) const;

 private:
  MemorySnapshot(int fd, uint32_t pages);
  bool copy_runs(const std::vector<Run>& runs, uint8_t* data) const;
  int fd_;
  uint32_t pages_;
  // A read-only shared view of the memfd: reset() copies dirty pages back
  // from it with memcpy (a pread per run costs a page-cache lookup per page).
  const uint8_t* view_ = nullptr;
};

}  // namespace terrarium::engine
