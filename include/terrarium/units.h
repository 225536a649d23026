// Sizes and durations as people write them ("256M", "2s"), for every front
// end's flags and configuration files.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "terrarium/error.h"

namespace terrarium {

// "1024", "64K", "256M", "2G" (powers of 1024; "KiB"/"MB" spellings too).
// Errors (kConfig) say what was expected.
Result<uint64_t> parse_size(const std::string& text);

// "2s", "500ms", "1.5s", "1m", "1h"; a bare number is seconds.
Result<std::chrono::milliseconds> parse_duration(const std::string& text);

}  // namespace terrarium
