// Bindings for storage (chute/storage.h): the objects under one URL, for chute.map's
// uploads, optimize's resume records and chute.checkpoint's streams. A Storage belongs to the process that opened it (open one per process).
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <span>
#include <string>
#include <vector>

#include "chute/storage.h"
#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

namespace {

// A Python buffer (bytes, bytearray, memoryview, numpy array), held for the call.
class Buffer {
 public:
  Buffer(nb::handle object, bool writable) {
    if (PyObject_GetBuffer(object.ptr(), &view_, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) != 0)
      throw nb::python_error();
  }
  ~Buffer() { PyBuffer_Release(&view_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::byte* data() const { return static_cast<std::byte*>(view_.buf); }
  size_t size() const { return static_cast<size_t>(view_.len); }

 private:
  Py_buffer view_;
};

}  // namespace

void init_storage(nb::module_& m) {
  nb::class_<ObjectWriter>(m, "ObjectWriter",
                           "A stream into one object: it appears whole on close(), or not at all (abort()).")
      .def("write",
           [](ObjectWriter& w, nb::handle data) {
             Buffer buffer(data, false);
             nb::gil_scoped_release release;
             Check(w.Write({buffer.data(), buffer.size()}));
             return buffer.size();
           },
           "data"_a, "Sends a bytes-like object (may wait while earlier parts upload); returns its length.")
      .def("close",
           [](ObjectWriter& w) {
             nb::gil_scoped_release release;
             Check(w.Close());
           },
           "The object appears, whole.")
      .def("abort",
           [](ObjectWriter& w) {
             nb::gil_scoped_release release;
             Check(w.Abort());
           },
           "Nothing appears.");

  nb::class_<StorageLocation>(m, "Storage", "The objects under one URL (a local directory or a bucket prefix).")
      .def_static("open",
                  [](const std::string& url, const StorageOptions& storage_options) {
                    nb::gil_scoped_release release;
                    return Unwrap(OpenStorage(url, storage_options));
                  },
                  "url"_a, "storage_options"_a = StorageOptions{})
      .def("write",
           [](const StorageLocation& s, const std::string& name, nb::bytes data) {
             std::span<const std::byte> part(static_cast<const std::byte*>(data.data()), data.size());
             nb::gil_scoped_release release;
             Check(s.storage->Write(JoinPath(s.path, name), {&part, 1}));
           },
           "name"_a, "data"_a, "Writes object `name` whole: it appears complete or not at all.")
      .def("exists",
           [](const StorageLocation& s, const std::string& name) {
             Result<uint64_t> size = [&] {
               nb::gil_scoped_release release;
               return s.storage->Size(JoinPath(s.path, name));
             }();
             if (!size.ok() && size.status().code() == StatusCode::kNotFound) return false;
             Unwrap(std::move(size));
             return true;
           },
           "name"_a, "Whether object `name` exists.")
      .def("read",
           [](const StorageLocation& s, const std::string& name) {
             Result<std::string> data = [&] {
               nb::gil_scoped_release release;
               return s.storage->ReadAll(JoinPath(s.path, name));
             }();
             std::string bytes = Unwrap(std::move(data));
             return nb::bytes(bytes.data(), bytes.size());
           },
           "name"_a, "Object `name` whole (FileNotFoundError if absent).")
      .def("read_prefix",
           [](const StorageLocation& s, const std::string& name, uint64_t limit) {
             Result<ObjectPrefix> prefix = [&] {
               nb::gil_scoped_release release;
               return s.storage->ReadPrefix(JoinPath(s.path, name), limit);
             }();
             ObjectPrefix got = Unwrap(std::move(prefix));
             return nb::make_tuple(nb::bytes(got.bytes.data(), got.bytes.size()), got.size);
           },
           "name"_a, "limit"_a,
           "(the first `limit` bytes of object `name`, its whole size): one request where the store allows.")
      .def("open_writer",
           [](const StorageLocation& s, const std::string& name) {
             nb::gil_scoped_release release;
             return Unwrap(s.storage->OpenWriter(JoinPath(s.path, name)));
           },
           "name"_a, nb::keep_alive<0, 1>(), "An ObjectWriter into object `name` (it keeps this storage alive).")
      .def("size",
           [](const StorageLocation& s, const std::string& name) {
             nb::gil_scoped_release release;
             return Unwrap(s.storage->Size(JoinPath(s.path, name)));
           },
           "name"_a, "The size of object `name` (FileNotFoundError if absent).")
      .def("read_into",
           [](const StorageLocation& s, const std::string& name, uint64_t offset, nb::handle out) {
             Buffer buffer(out, true);
             nb::gil_scoped_release release;
             Check(s.storage->ReadRange(JoinPath(s.path, name), offset, buffer.size(), buffer.data()));
           },
           "name"_a, "offset"_a, "out"_a, "Fills the writable buffer `out` with the bytes of `name` from `offset`.")
      .def("url", [](const StorageLocation& s, const std::string& name) { return s.storage->Url(JoinPath(s.path, name)); },
           "name"_a, "The URL of object `name`.")
      .def("delete",
           [](const StorageLocation& s, const std::string& name) {
             nb::gil_scoped_release release;
             Check(s.storage->Delete(JoinPath(s.path, name)));
           },
           "name"_a)
      .def("list",
           [](const StorageLocation& s, const std::string& dir) {
             const std::string base = dir.empty() ? s.path : JoinPath(s.path, dir);
             Result<std::vector<ObjectInfo>> objects = [&] {
               nb::gil_scoped_release release;
               return s.storage->List(base);
             }();
             std::vector<std::string> names;
             const std::string prefix = JoinPath(base, "");
             for (auto& o : Unwrap(std::move(objects)))
               names.push_back(o.path.starts_with(prefix) ? o.path.substr(prefix.size()) : o.path);
             return names;
           },
           "dir"_a, "Names of the objects directly under `dir` (\"\": this storage's URL; not recursive).")
      .def("walk",
           [](const StorageLocation& s) {
             Result<std::vector<ObjectInfo>> objects = [&] {
               nb::gil_scoped_release release;
               return s.storage->ListTree(s.path);
             }();
             nb::list out;
             const std::string prefix = JoinPath(s.path, "");
             for (auto& o : Unwrap(std::move(objects)))
               out.append(nb::make_tuple(o.path.starts_with(prefix) ? o.path.substr(prefix.size()) : o.path, o.size));
             return out;
           },
           "(name, size) of every object under this storage's URL, recursively, in no order.");
}

}  // namespace chute::bindings
