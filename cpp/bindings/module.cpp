// chute._core: type conversion only; semantics live in the C++ library.
#include <nanobind/nanobind.h>

#include "chute/dataset.h"
#include "chute/reader.h"
#include "chute/writer.h"
#include "common.h"

namespace nb = nanobind;

namespace {
PyObject* corrupt_error = nullptr;
PyObject* version_error = nullptr;
}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "chute's C++ core (I/O engine and data format)";
  corrupt_error = PyErr_NewExceptionWithDoc(
      "chute._core.CorruptDataError",
      "A chunk or index is damaged: checksum mismatch, truncated or malformed file.",
      PyExc_OSError, nullptr);
  version_error = PyErr_NewExceptionWithDoc(
      "chute._core.FormatVersionError",
      "The dataset was written by a newer format version than this chute reads.",
      PyExc_ValueError, nullptr);
  m.attr("CorruptDataError") = nb::borrow(corrupt_error);
  m.attr("FormatVersionError") = nb::borrow(version_error);

  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const chute::bindings::StatusError& e) {
      using chute::StatusCode;
      PyObject* type = PyExc_OSError;
      switch (e.code) {
        case StatusCode::kNotFound: type = PyExc_FileNotFoundError; break;
        case StatusCode::kCorrupt: type = corrupt_error; break;
        case StatusCode::kVersionMismatch: type = version_error; break;
        case StatusCode::kInvalid: type = PyExc_ValueError; break;
        case StatusCode::kUnsupported: type = PyExc_NotImplementedError; break;
        default: type = PyExc_OSError; break;
      }
      PyErr_SetString(type, e.what());
    }
  });

  chute::bindings::init_dataset(m);
  chute::bindings::init_order(m);
  chute::bindings::init_profile(m);
  chute::bindings::init_reader(m);
  chute::bindings::init_storage(m);
  chute::bindings::init_tokens(m);
  chute::bindings::init_writer(m);

  // The one definition of each default (the C++ options), for the Python API.
  const chute::DatasetOptions dataset;
  const chute::ReaderOptions reader;
  const chute::WriterOptions writer;
  nb::dict defaults;
  defaults["part_size"] = dataset.part_size;
  defaults["concurrency"] = dataset.concurrency;
  defaults["prefetch_bytes"] = reader.prefetch_bytes;
  defaults["seed"] = reader.order.seed;
  defaults["partitions"] = reader.order.partitions;
  defaults["chunk_bytes"] = writer.chunk_bytes;
  defaults["block_bytes"] = writer.block_bytes;
  m.attr("DEFAULTS") = defaults;
}
