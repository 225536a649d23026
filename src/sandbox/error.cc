#include "terrarium/error.h"

namespace terrarium {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kConfig:
      return "config error";
    case ErrorKind::kTrap:
      return "trap";
    case ErrorKind::kLimit:
      return "limit exceeded";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kGuestError:
      return "guest error";
    case ErrorKind::kHostError:
      return "host error";
    case ErrorKind::kNotFound:
      return "not found";
    case ErrorKind::kInternal:
      return "internal error";
    case ErrorKind::kInterrupted:
      return "interrupted";
  }
  return "error";
}

std::string Error::to_string() const {
  return std::string(error_kind_name(kind_)) + ": " + message_;
}

}  // namespace terrarium
