// Parsing of the CLI's option values (mount specs, sizes, durations), kept
// apart from main() so they can be tested.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "terrarium/config.h"
#include "terrarium/error.h"

namespace terrarium::cli {

// "HOST::GUEST" or "HOST::GUEST:ro" (also ":rw"); GUEST must be absolute. A
// bare "DIR" mounts DIR at the same (absolute) path.
Result<Mount> parse_mount(const std::string& spec);

// "1024", "64K", "256M", "2G" (powers of 1024; "KiB"/"MB" spellings too).
Result<uint64_t> parse_size(const std::string& text);

// "2s", "500ms", "1.5s", "1m"; a bare number is seconds.
Result<std::chrono::milliseconds> parse_duration(const std::string& text);

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
