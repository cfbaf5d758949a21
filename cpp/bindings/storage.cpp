// Bindings for storage (chute/storage.h): the objects under one URL, for chute.map's
// uploads and optimize's resume record. A Storage belongs to the process that opened it (open one per process).
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <span>
#include <string>
#include <vector>

#include "chute/storage.h"
#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

void init_storage(nb::module_& m) {
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
           "dir"_a, "Names of the objects directly under `dir` (\"\": this storage's URL; not recursive).");
}

}  // namespace chute::bindings
