// extern "C" glue between wasm2c-generated code and terrarium::bridge::Bridge
// for the imports of module "terrarium". Same pattern as wasi_imports.cc:
// check the native stack, enter_host(), do the C++ work (which never throws)
// in a nested scope, leave_host(). Nothing with a destructor is alive when a
// raise_* function unwinds.
#include <cstdint>

#include "bridge/bridge.h"
#include "engine/host_import.h"
#include "wasi/guest_memory.h"

using terrarium::wasi::GuestMemory;
using Instance = Z_terrarium_instance_t;
using u32 = uint32_t;

namespace {

template <typename Call>
u32 bridge_import(Instance* instance, const Call& call) {
  int32_t status = terrarium::engine::run_host_import([&]() noexcept {
    GuestMemory memory(instance->memory->data, instance->memory->size);
    return call(*instance->bridge, memory);
  });
  return static_cast<u32>(status);
}

}  // namespace

extern "C" u32 Z_terrariumZ_host_call(Instance* instance, u32 name, u32 name_len, u32 payload,
                                      u32 payload_len, u32 kind, u32 info) {
  return bridge_import(instance, [&](terrarium::bridge::Bridge& bridge, const GuestMemory& memory) {
    return bridge.host_call(memory, name, name_len, payload, payload_len, kind, info);
  });
}

extern "C" u32 Z_terrariumZ_host_result(Instance* instance, u32 buffer, u32 length) {
  return bridge_import(instance, [&](terrarium::bridge::Bridge& bridge, const GuestMemory& memory) {
    return bridge.host_result(memory, buffer, length);
  });
}

extern "C" u32 Z_terrariumZ_set_result(Instance* instance, u32 data, u32 length, u32 kind) {
  return bridge_import(instance, [&](terrarium::bridge::Bridge& bridge, const GuestMemory& memory) {
    return bridge.set_result(memory, data, length, kind);
  });
}
