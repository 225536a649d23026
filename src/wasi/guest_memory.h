// A bounds-checked view of a guest's linear memory. Every pointer and length
// that arrives from the guest goes through here: nothing in src/wasi or
// src/bridge touches guest memory any other way.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

namespace terrarium::wasi {

class GuestMemory {
 public:
  GuestMemory(uint8_t* base, uint64_t size) : base_(base), size_(size) {}

  uint64_t size() const { return size_; }

  // True when [pointer, pointer + length) lies inside the memory.
  bool contains(uint64_t pointer, uint64_t length) const {
    return pointer <= size_ && length <= size_ - pointer;
  }

  // The bytes at [pointer, pointer + length), or an empty optional when any
  // of them is outside the memory.
  std::optional<std::span<uint8_t>> bytes(uint64_t pointer, uint64_t length) const {
    if (!contains(pointer, length)) return std::nullopt;
    return std::span<uint8_t>(base_ + pointer, length);
  }

  std::optional<std::string_view> string(uint64_t pointer, uint64_t length) const {
    if (!contains(pointer, length)) return std::nullopt;
    return std::string_view(reinterpret_cast<const char*>(base_ + pointer), length);
  }

  // Little-endian scalar access (wasm is little-endian, so is x86-64).
  template <typename T>
  bool load(uint64_t pointer, T* out) const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (!contains(pointer, sizeof(T))) return false;
    std::memcpy(out, base_ + pointer, sizeof(T));
    return true;
  }
  template <typename T>
  bool store(uint64_t pointer, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (!contains(pointer, sizeof(T))) return false;
    std::memcpy(base_ + pointer, &value, sizeof(T));
    return true;
  }

 private:
  uint8_t* base_;
  uint64_t size_;
};

}  // namespace terrarium::wasi
