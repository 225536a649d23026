#include "bridge/bridge.h"

#include <cstring>
#include <exception>

namespace terrarium::bridge {

const char* status_name(int32_t status) {
  switch (status) {
    case kOk:
      return "ok";
    case kHostFailed:
      return "host function failed";
    case kNoSuchFunction:
      return "no such host function";
    case kGuestFailed:
      return "guest error";
    case kBadPointer:
      return "pointer or length outside guest memory";
    case kBadArgument:
      return "bad argument";
    case kNoResult:
      return "no result pending";
    case kBufferTooSmall:
      return "buffer too small";
    case kBadState:
      return "call outside an export call";
  }
  return "unknown status";
}

void Bridge::define(std::string name, HostFunction function) {
  functions_.insert_or_assign(std::move(name), std::move(function));
}

void Bridge::begin_guest_call() {
  accepting_result_ = true;
  has_result_ = false;
  result_.clear();
  if (result_.capacity() > (1u << 20)) result_.shrink_to_fit();
  abi_violation_.clear();
}

int32_t Bridge::violation(int32_t status, const char* import) {
  if (abi_violation_.empty()) {
    abi_violation_ = std::string(import) + ": " + status_name(status);
  }
  return status;
}

int32_t Bridge::host_call(const wasi::GuestMemory& memory, uint32_t name, uint32_t name_len,
                          uint32_t payload, uint32_t payload_len, uint32_t kind,
                          uint32_t info) noexcept {
  auto name_text = memory.string(name, name_len);
  auto payload_text = memory.string(payload, payload_len);
  if (!name_text || !payload_text || !memory.contains(info, 8)) {
    return violation(kBadPointer, "host_call");
  }
  if (kind != kJson && kind != kBytes) return violation(kBadArgument, "host_call");
  int32_t status = kOk;
  uint32_t result_kind = kJson;
  try {
    has_pending_ = false;
    pending_.clear();
    if (pending_.capacity() > (1u << 20)) pending_.shrink_to_fit();
    auto found = functions_.find(*name_text);
    if (found == functions_.end()) {
      status = kNoSuchFunction;
      pending_ = "no host function named '" + std::string(*name_text) + "'";
    } else if (found->second.json && kind != kJson) {
      status = kHostFailed;
      pending_ = "host function '" + std::string(*name_text) + "' takes JSON, not bytes";
    } else {
      result_kind = found->second.json ? kJson : kBytes;
      in_host_function_ = true;
      try {
        pending_ = found->second.call(*payload_text);
      } catch (const std::exception& e) {
        status = kHostFailed;
        pending_ = e.what();
      } catch (...) {
        status = kHostFailed;
        pending_ = "host function '" + std::string(*name_text) + "' failed";
      }
      in_host_function_ = false;
    }
  } catch (...) {  // std::bad_alloc building a message
    in_host_function_ = false;
    status = kHostFailed;
    pending_.clear();
  }
  if (pending_.size() > UINT32_MAX) {
    status = kHostFailed;
    pending_ = "host function result is larger than 4 GiB";
  }
  if (status != kOk) result_kind = kJson;  // messages are UTF-8 text
  has_pending_ = true;
  uint32_t out[2] = {static_cast<uint32_t>(pending_.size()), result_kind};
  memory.store(info, out);
  return status;
}

int32_t Bridge::host_result(const wasi::GuestMemory& memory, uint32_t buffer,
                            uint32_t length) noexcept {
  if (!has_pending_) return violation(kNoResult, "host_result");
  if (length < pending_.size()) return violation(kBufferTooSmall, "host_result");
  auto target = memory.bytes(buffer, pending_.size());
  if (!target) return violation(kBadPointer, "host_result");
  if (!pending_.empty()) std::memcpy(target->data(), pending_.data(), pending_.size());
  has_pending_ = false;
  return kOk;
}

int32_t Bridge::set_result(const wasi::GuestMemory& memory, uint32_t data, uint32_t length,
                           uint32_t kind) noexcept {
  if (!accepting_result_) return violation(kBadState, "set_result");
  auto bytes = memory.string(data, length);
  if (!bytes) return violation(kBadPointer, "set_result");
  if (kind > kNotFound) return violation(kBadArgument, "set_result");
  try {
    result_.assign(*bytes);
  } catch (...) {
    return violation(kBadArgument, "set_result");
  }
  result_kind_ = kind;
  has_result_ = true;
  return kOk;
}

}  // namespace terrarium::bridge
