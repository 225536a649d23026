// Errors at Terrarium's API boundary: every fallible call returns a
// Result<T>, which holds either a value or an Error. No exception crosses
// the API (documented exception: std::bad_alloc from the C++ library).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace terrarium {

enum class ErrorKind {
  kConfig,        // a bad configuration: missing mount directory, bad path, ...
  kTrap,          // the guest trapped (out-of-bounds access, stack exhausted, ...)
  kLimit,         // a limit was hit (memory, time, output, files, bytes written)
  kTimeout,       // the wall-clock or CPU deadline passed
  kGuestError,    // the guest reported an error (Python exception, bad ABI use)
  kHostError,     // a host function failed
  kNotFound,      // no such export / host function / file
  kInternal,      // a bug in Terrarium
  kInterrupted,   // Sandbox::interrupt stopped the call (the sandbox is spent)
};

const char* error_kind_name(ErrorKind kind);

class Error {
 public:
  Error(ErrorKind kind, std::string message) : kind_(kind), message_(std::move(message)) {}
  Error(ErrorKind kind, std::string message, std::string details)
      : kind_(kind), message_(std::move(message)), details_(std::move(details)) {}
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  // More about the error, when there is more: for a Python exception
  // (kGuestError), the formatted traceback; else empty.
  const std::string& details() const { return details_; }
  // For a Python exception: its type ("ValueError", "json.JSONDecodeError").
  const std::string& python_type() const { return python_type_; }
  Error& set_python_type(std::string type) {
    python_type_ = std::move(type);
    return *this;
  }
  // "<kind>: <message>"
  std::string to_string() const;

 private:
  ErrorKind kind_;
  std::string message_;
  std::string details_;
  std::string python_type_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}
  Result(Error error) : state_(std::move(error)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const Error& error() const { return std::get<1>(state_); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Error> state_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_{ErrorKind::kInternal, ""};
  bool ok_ = true;
};

}  // namespace terrarium
