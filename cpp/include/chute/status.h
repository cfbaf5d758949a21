// Errors are values at the C++ boundary (Arrow style): functions that can fail return
// Status or Result<T>. Messages name the file/URL and, where known, the fix; the Python
// layer turns them into exceptions of a matching type.
//
// Thread-safety: Status and Result are plain values; copies are independent.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

#include "chute/export.h"

namespace chute {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalid,          // bad argument or bad user data
  kNotFound,         // file, object, bucket or index missing
  kIOError,          // the OS or the store failed
  kCorrupt,          // checksum mismatch, truncated or malformed file
  kVersionMismatch,  // written by a newer format version
  kUnsupported,      // valid but not supported by this build
};

class CHUTE_API Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return {}; }
  static Status Invalid(std::string m) { return {StatusCode::kInvalid, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status IOError(std::string m) { return {StatusCode::kIOError, std::move(m)}; }
  static Status Corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
  static Status VersionMismatch(std::string m) {
    return {StatusCode::kVersionMismatch, std::move(m)};
  }
  static Status Unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "<CodeName>: <message>"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-OK Status.
template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}      // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& operator*() & { return std::get<T>(v_); }
  const T& operator*() const& { return std::get<T>(v_); }
  T&& operator*() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &std::get<T>(v_); }
  const T* operator->() const { return &std::get<T>(v_); }
  T ValueOrDie() && { return std::get<T>(std::move(v_)); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace chute

#define CHUTE_CONCAT_INNER(a, b) a##b
#define CHUTE_CONCAT(a, b) CHUTE_CONCAT_INNER(a, b)

#define CHUTE_RETURN_NOT_OK(expr)            \
  do {                                       \
    ::chute::Status _chute_st = (expr);      \
    if (!_chute_st.ok()) return _chute_st;   \
  } while (0)

#define CHUTE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(*tmp)

#define CHUTE_ASSIGN_OR_RETURN(lhs, expr) \
  CHUTE_ASSIGN_OR_RETURN_IMPL(CHUTE_CONCAT(_chute_res_, __COUNTER__), lhs, expr)
