#include "terrarium/units.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace terrarium {

Result<uint64_t> parse_size(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  double number = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || errno != 0 || number < 0 || !std::isfinite(number)) {
    return Error(ErrorKind::kConfig, "not a size (expected e.g. 512K, 256M, 2G)");
  }
  std::string unit(end);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double multiplier;
  if (unit.empty() || unit == "B")
    multiplier = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    multiplier = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    multiplier = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    multiplier = 1024.0 * 1024 * 1024;
  else
    return Error(ErrorKind::kConfig, "unknown size unit '" + std::string(end) + "'");
  double bytes = number * multiplier;
  if (bytes > 1.8e19) return Error(ErrorKind::kConfig, "size too large");
  return static_cast<uint64_t>(bytes);
}

Result<std::chrono::milliseconds> parse_duration(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  double number = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || errno != 0 || number < 0 || !std::isfinite(number)) {
    return Error(ErrorKind::kConfig, "not a duration (expected e.g. 500ms, 2s, 1m)");
  }
  std::string unit(end);
  double milliseconds;
  if (unit.empty() || unit == "s")
    milliseconds = number * 1000;
  else if (unit == "ms")
    milliseconds = number;
  else if (unit == "m" || unit == "min")
    milliseconds = number * 60000;
  else if (unit == "h")
    milliseconds = number * 3600000;
  else
    return Error(ErrorKind::kConfig, "unknown duration unit '" + unit + "'");
  if (milliseconds > 1e12) return Error(ErrorKind::kConfig, "duration too long");
  if (milliseconds > 0 && milliseconds < 1) milliseconds = 1;
  return std::chrono::milliseconds(static_cast<int64_t>(milliseconds));
}

}  // namespace terrarium
