// Bindings for reading datasets: Dataset (chute/dataset.h) and the process-wide storage
// calls.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "chute/dataset.h"
#include "common.h"
#include "convert.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

namespace {
const DatasetOptions kDefaults;
}  // namespace

void init_dataset(nb::module_& m) {
  m.attr("FORMAT_VERSION") = kFormatVersion;
  m.def("shutdown_storage", [] {
    nb::gil_scoped_release release;
    ShutdownStorage();
  }, "Releases every object-store client (before Arrow finalizes S3 at exit).");
  m.def("detach_caches", [] {
    nb::gil_scoped_release release;
    DetachAllCaches();
  }, "Leaves the node caches (a worker process at exit; its clients are left alone).");

  m.def("list_caches",
        [](const std::string& cache_dir) {
          nb::list out;
          for (auto& c : ListCaches(cache_dir)) out.append(nb::make_tuple(c.path, c.url, c.chunks, c.bytes));
          return out;
        },
        "cache_dir"_a, "(path, url, chunks, bytes) of each dataset directory of a node cache.");
  m.def("remove_cache",
        [](const std::string& path) {
          nb::gil_scoped_release release;
          Check(RemoveCache(path));
        },
        "path"_a, "Removes a dataset's cache directory (ValueError while a process uses it).");

  nb::class_<Dataset>(m, "Dataset", "A dataset opened for reading (thread-safe); see chute/dataset.h.")
      .def_static("open",
                  [](const std::string& url, const std::string& format, bool verify_checksums,
                     const StorageOptions& storage_options, uint64_t part_size, size_t concurrency,
                     const std::string& cache_dir, uint64_t max_cache_size, const std::string& description,
                     const std::vector<std::string>& columns, const std::string& split, bool allow_missing,
                     bool as_paths,
                     const StorageOptions& object_storage_options) {
                    DatasetOptions o;
                    o.format = format;
                    o.description = description;
                    o.columns = columns;
                    o.split = split;
                    o.allow_missing = allow_missing;
                    o.as_paths = as_paths;
                    o.object_storage_options = object_storage_options;
                    o.verify_checksums = verify_checksums;
                    o.part_size = part_size;
                    o.concurrency = concurrency;
                    o.cache_dir = cache_dir;
                    o.max_cache_size = max_cache_size;
                    nb::gil_scoped_release release;
                    return Unwrap(Dataset::Open(url, o, storage_options));
                  },
                  "url"_a, "format"_a = kDefaults.format, "verify_checksums"_a = kDefaults.verify_checksums,
                  "storage_options"_a = StorageOptions{}, "part_size"_a = kDefaults.part_size,
                  "concurrency"_a = kDefaults.concurrency, "cache_dir"_a = "", "max_cache_size"_a = 0,
                  "description"_a = "", "columns"_a = std::vector<std::string>{}, "split"_a = "",
                  "allow_missing"_a = kDefaults.allow_missing, "as_paths"_a = kDefaults.as_paths,
                  "object_storage_options"_a = StorageOptions{})
      .def("__len__", &Dataset::num_items)
      .def_prop_ro("is_local", &Dataset::is_local, "Local files: usable in forked processes.")
      .def_prop_ro("description", [](const Dataset& d) { return d.source().description(); },
                   "The index as read (pass it to open() in a forked process).")
      .def_prop_ro("format", [](const Dataset& d) { return d.source().format(); })
      .def_prop_ro("schema_json", [](const Dataset& d) { return d.source().schema_json(); })
      .def_prop_ro("compression", [](const Dataset& d) { return d.source().compression(); })
      .def_prop_ro("fingerprint", &Dataset::fingerprint)
      .def_prop_ro("cache_path", &Dataset::cache_path)
      .def_prop_ro("chunks",
                   [](const Dataset& d) {
                     nb::list out;
                     for (auto& c : d.chunks())
                       out.append(nb::make_tuple(c.file, c.num_items, c.num_bytes, c.num_tokens));
                     return out;
                   },
                   "(file, num_items, num_bytes, num_tokens or -1) per chunk.")
      .def("chunk_of", &Dataset::ChunkOf, "i"_a, "The chunk holding item i.")
      .def("verify_chunk",
           [](const Dataset& d, uint32_t c) {
             nb::gil_scoped_release release;
             Check(d.VerifyChunk(c));
           },
           "c"_a, "Checks chunk c as stored: its checksum, then its structure (reads it whole).")
      .def("read",
           [](const Dataset& d, uint64_t i) {
             Result<Item> item = [&] {
               nb::gil_scoped_release release;
               return d.ReadItem(i);
             }();
             Item got = Unwrap(std::move(item));
             return got.missing ? nb::none() : nb::object(ToPython(std::move(got)));
           },
           "i"_a, "The leaves of item i, for random access: an uncached remote chunk is read only in part. None: "
           "its objects are missing (raw objects with allow_missing).");
}

}  // namespace chute::bindings
