// Parsing of the CLI's option values (mount specs, sizes, durations), kept
// apart from main() so they can be tested.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "terrarium/config.h"
#include "terrarium/error.h"
#include "terrarium/units.h"

namespace terrarium::cli {

// "HOST::GUEST" or "HOST::GUEST:ro" (also ":rw"); GUEST must be absolute. A
// bare "DIR" mounts DIR at the same (absolute) path.
Result<Mount> parse_mount(const std::string& spec);

// Sizes and durations: one parser for every front end (terrarium/units.h).
using terrarium::parse_duration;
using terrarium::parse_size;

// The guest path at which `host_file` is visible through `mounts`, if any.
std::optional<std::string> guest_path_for(const std::string& host_file,
                                          const std::vector<Mount>& mounts);

// The host file behind the guest path `guest_file` (absolute), through the
// mount that the guest sees it by, if any mount's guest path contains it.
// Whether the file exists is not checked.
struct HostFile {
  std::string host_path;
  size_t mount_index;
};
std::optional<HostFile> host_file_for(const std::string& guest_file,
                                      const std::vector<Mount>& mounts);

}  // namespace terrarium::cli
