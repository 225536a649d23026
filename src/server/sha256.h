// SHA-256 (FIPS 180-4), for Wagi's per-route log folders
// (LOG_DIR/<sha256 of the route>/module.stderr).
#pragma once

#include <string>
#include <string_view>

namespace terrarium::server {

// Lower-case hex digest of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace terrarium::server
