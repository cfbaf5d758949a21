// Shared by the binding files: turning chute::Status into Python exceptions.
#pragma once

#include <nanobind/nanobind.h>

#include <stdexcept>

#include "chute/status.h"

namespace chute::bindings {

// Carries a non-OK Status out of a binding; translated to a Python exception by the
// translator registered in module.cpp (NotFound -> FileNotFoundError, Corrupt ->
// CorruptDataError, VersionMismatch -> FormatVersionError, Invalid -> ValueError,
// Unsupported -> NotImplementedError, IOError -> OSError).
class StatusError : public std::runtime_error {
 public:
  explicit StatusError(const Status& st) : std::runtime_error(st.message()), code(st.code()) {}
  StatusCode code;
};

inline void Check(const Status& st) {
  if (!st.ok()) throw StatusError(st);
}

template <typename T>
T Unwrap(Result<T>&& r) {
  if (!r.ok()) throw StatusError(r.status());
  return std::move(r).ValueOrDie();
}

void init_dataset(nanobind::module_& m);
void init_order(nanobind::module_& m);
void init_profile(nanobind::module_& m);
void init_reader(nanobind::module_& m);
void init_storage(nanobind::module_& m);
void init_tokens(nanobind::module_& m);
void init_writer(nanobind::module_& m);

}  // namespace chute::bindings
