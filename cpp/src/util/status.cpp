#include "chute/status.h"

namespace chute {

std::string Status::ToString() const {
  const char* name = "OK";
  switch (code_) {
    case StatusCode::kOk: name = "OK"; break;
    case StatusCode::kInvalid: name = "Invalid"; break;
    case StatusCode::kNotFound: name = "NotFound"; break;
    case StatusCode::kIOError: name = "IOError"; break;
    case StatusCode::kCorrupt: name = "Corrupt"; break;
    case StatusCode::kVersionMismatch: name = "VersionMismatch"; break;
    case StatusCode::kUnsupported: name = "Unsupported"; break;
  }
  return ok() ? name : std::string(name) + ": " + message_;
}

}  // namespace chute
