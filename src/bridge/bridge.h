// The host half of the bridge ABI (docs/abi.md): the host-function registry
// and the state of one guest's calls. The extern "C" import glue that
// wasm2c-generated code calls is in bridge_imports.cc; Sandbox drives the
// exports.
#pragma once

#include <wasm-rt.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "wasi/guest_memory.h"

namespace terrarium::bridge {

// Statuses of the imports (negative: the guest broke the ABI) and exports.
enum Status : int32_t {
  kOk = 0,
  kHostFailed = 1,       // the host function failed; the result is its message
  kNoSuchFunction = 2,   // no host function by that name; the result says so
  kGuestFailed = 3,      // (exports) the guest reported an error
  kBadPointer = -1,      // a pointer/length outside the guest's memory
  kBadArgument = -2,     // an unknown kind
  kNoResult = -3,        // host_result with no result pending
  kBufferTooSmall = -4,  // host_result into a buffer shorter than the result
  kBadState = -5,        // set_result outside terrarium_exec / terrarium_call
};

// What a payload is.
enum Kind : uint32_t {
  kJson = 0,      // UTF-8 JSON text
  kBytes = 1,     // raw bytes
  kError = 2,     // JSON {"type", "message", "traceback"} (guest results only)
  kNotFound = 3,  // UTF-8 message: no such export (guest results only)
};

const char* status_name(int32_t status);

// A host function on bytes. `json`: it takes and returns JSON text (the
// guest's JSON payloads; a raw-bytes payload is refused before the call).
// Failures are thrown (any exception; its what() reaches the guest).
struct HostFunction {
  std::function<std::string(std::string_view payload)> call;
  bool json = false;
};

class Bridge {
 public:
  Bridge() = default;
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  void define(std::string name, HostFunction function);

  // All host functions, to give a sandbox cloned from a snapshot the same.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  using FunctionMap = std::unordered_map<std::string, HostFunction, Hash, std::equal_to<>>;
  const FunctionMap& functions() const { return functions_; }
  void set_functions(const FunctionMap& functions) { functions_ = functions; }
  // Forgets any call in flight (a reset sandbox starts with none).
  void reset_call_state() {
    pending_.clear();
    has_pending_ = false;
    in_host_function_ = false;
    result_.clear();
    has_result_ = false;
    accepting_result_ = false;
    abi_violation_.clear();
  }
  bool in_host_function() const { return in_host_function_; }

  // The imports. Never throw, never trap: a broken rule is a negative status.
  int32_t host_call(const wasi::GuestMemory& memory, uint32_t name, uint32_t name_len,
                    uint32_t payload, uint32_t payload_len, uint32_t kind, uint32_t info) noexcept;
  int32_t host_result(const wasi::GuestMemory& memory, uint32_t buffer, uint32_t length) noexcept;
  int32_t set_result(const wasi::GuestMemory& memory, uint32_t data, uint32_t length,
                     uint32_t kind) noexcept;

  // Brackets an export call: set_result is accepted only in between.
  void begin_guest_call();
  void end_guest_call() { accepting_result_ = false; }
  bool has_result() const { return has_result_; }
  uint32_t result_kind() const { return result_kind_; }
  std::string& result() { return result_; }
  // The first ABI violation since begin_guest_call ("" if none).
  const std::string& abi_violation() const { return abi_violation_; }

 private:
  int32_t violation(int32_t status, const char* import);

  FunctionMap functions_;
  std::string pending_;  // the result of the last host_call, until host_result
  bool has_pending_ = false;
  bool in_host_function_ = false;
  std::string result_;  // the result of the current export call
  uint32_t result_kind_ = kJson;
  bool has_result_ = false;
  bool accepting_result_ = false;
  std::string abi_violation_;
};

}  // namespace terrarium::bridge

// The wasm2c import instance of module "terrarium" (one per guest instance).
struct Z_terrarium_instance_t {
  terrarium::bridge::Bridge* bridge;
  wasm_rt_memory_t* memory;
};
