// Bindings for the data format: DatasetWriter (optimize) and Dataset (reading).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <vector>

#include "chute/dataset.h"
#include "chute/writer.h"
#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

namespace {

using InArray = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;
using OutArray = nb::ndarray<nb::numpy, nb::ro>;

// Python leaves -> LeafInput. `keep` holds converted scalars and shapes for the call.
struct LeafBuffers {
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<InArray> arrays;
};

std::vector<LeafInput> ToLeaves(nb::list leaves, LeafBuffers& buf) {
  size_t n = leaves.size();
  buf.ints.reserve(n);
  buf.floats.reserve(n);
  buf.shapes.reserve(n);
  buf.arrays.reserve(n);
  std::vector<LeafInput> out(n);
  for (size_t k = 0; k < n; ++k) {
    nb::handle h = leaves[k];
    LeafInput& leaf = out[k];
    if (h.is_none()) {
      leaf.kind = LeafKind::kNull;
    } else if (PyBool_Check(h.ptr())) {
      leaf.kind = LeafKind::kBool;
      buf.ints.push_back(h.ptr() == Py_True);
      leaf.data = &buf.ints.back();
      leaf.size = 8;
    } else if (PyLong_Check(h.ptr())) {
      int overflow = 0;
      long long v = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
      if (overflow)
        throw nb::value_error("int leaf does not fit in 64 bits; store it as a str or bytes, "
                              "or pass allow_pickle=True");
      leaf.kind = LeafKind::kInt;
      buf.ints.push_back(v);
      leaf.data = &buf.ints.back();
      leaf.size = 8;
    } else if (PyFloat_Check(h.ptr())) {
      leaf.kind = LeafKind::kFloat;
      buf.floats.push_back(PyFloat_AS_DOUBLE(h.ptr()));
      leaf.data = &buf.floats.back();
      leaf.size = 8;
    } else if (PyUnicode_Check(h.ptr())) {
      Py_ssize_t size = 0;
      const char* s = PyUnicode_AsUTF8AndSize(h.ptr(), &size);
      if (!s) throw nb::python_error();
      leaf.kind = LeafKind::kString;
      leaf.data = s;
      leaf.size = static_cast<size_t>(size);
    } else if (PyBytes_Check(h.ptr())) {
      leaf.kind = LeafKind::kBytes;
      leaf.data = PyBytes_AS_STRING(h.ptr());
      leaf.size = static_cast<size_t>(PyBytes_GET_SIZE(h.ptr()));
    } else {
      InArray a;
      if (!nb::try_cast(h, a))
        throw nb::type_error("leaf must be None, bool, int, float, str, bytes or a C-contiguous "
                             "CPU array (chute.optimize converts other types)");
      auto dt = a.dtype();
      if (dt.lanes != 1) throw nb::type_error("vector dtypes are not supported");
      buf.arrays.push_back(a);
      auto& shape = buf.shapes.emplace_back(a.ndim());
      for (size_t d = 0; d < a.ndim(); ++d) shape[d] = a.shape(d);
      leaf.kind = LeafKind::kArray;
      leaf.dtype = DType{dt.code, static_cast<uint8_t>(dt.bits)};
      leaf.shape = shape;
      leaf.data = a.data();
      leaf.size = a.nbytes();
    }
  }
  return out;
}

// Item -> list of Python leaves. Arrays are read-only views owned by one capsule that
// holds the item's owner (mapping or decompressed block). An item copied out whole
// (no array views) leaves no pages of its chunk mapped in this process.
nb::list ToPython(Item&& item) {
  nb::list out;
  nb::object owner;
  for (const LeafView& v : item.leaves) {
    switch (v.kind) {
      case LeafKind::kNull: out.append(nb::none()); break;
      case LeafKind::kBool: out.append(nb::bool_(v.as_bool())); break;
      case LeafKind::kInt: out.append(nb::int_(v.as_int())); break;
      case LeafKind::kFloat: out.append(nb::float_(v.as_float())); break;
      case LeafKind::kString: {
        PyObject* s = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(v.data),
                                           static_cast<Py_ssize_t>(v.size), "strict");
        if (!s) throw nb::python_error();
        out.append(nb::steal(s));
        break;
      }
      case LeafKind::kBytes:
        out.append(nb::bytes(reinterpret_cast<const char*>(v.data), v.size));
        break;
      case LeafKind::kArray: {
        if (!owner.is_valid()) {
          auto* keep = new std::shared_ptr<const void>(item.owner);
          owner = nb::capsule(keep, [](void* p) noexcept {
            delete static_cast<std::shared_ptr<const void>*>(p);
          });
        }
        std::vector<size_t> shape(v.shape.begin(), v.shape.end());
        OutArray arr(v.data, shape.size(), shape.data(), owner, nullptr,
                     nb::dlpack::dtype{v.dtype.code, v.dtype.bits, 1});
        out.append(nb::cast(arr, nb::rv_policy::reference));
        break;
      }
    }
  }
  if (!owner.is_valid()) ReleaseMapping(item);
  return out;
}

// Runs `read` (a Result<Item> producer) without the GIL, then converts the item.
template <typename F>
nb::list ReadWithoutGil(F&& read) {
  Result<Item> r = [&] {
    nb::gil_scoped_release release;
    return read();
  }();
  return ToPython(Unwrap(std::move(r)));
}

}  // namespace

void init_format(nb::module_& m) {
  m.attr("FORMAT_VERSION") = kFormatVersion;
  m.def("shutdown_storage", [] {
    nb::gil_scoped_release release;
    ShutdownStorage();
  }, "Releases every object-store client (before Arrow finalizes S3 at exit).");
  m.def("detach_caches", [] {
    nb::gil_scoped_release release;
    DetachAllCaches();
  }, "Leaves the node caches (a worker process at exit; its clients are left alone).");

  nb::class_<DatasetWriter>(m, "DatasetWriter",
                            "Appends items to chunk files in a directory; index.json last.")
      .def("__init__",
           [](DatasetWriter* self, const std::string& url, uint64_t chunk_bytes, uint64_t chunk_items,
              const std::string& compression, uint64_t block_bytes, bool overwrite,
              const StorageOptions& storage_options) {
             WriterOptions o;
             o.chunk_bytes = chunk_bytes;
             o.chunk_items = chunk_items;
             o.compression = compression;
             o.block_bytes = block_bytes;
             o.overwrite = overwrite;
             std::unique_ptr<DatasetWriter> w;
             {
               nb::gil_scoped_release release;
               w = Unwrap(DatasetWriter::Create(url, o, storage_options));
             }
             new (self) DatasetWriter(std::move(*w));
           },
           "url"_a, "chunk_bytes"_a = 64'000'000, "chunk_items"_a = 0, "compression"_a = "",
           "block_bytes"_a = 1 << 20, "overwrite"_a = false, "storage_options"_a = StorageOptions{})
      .def("add",
           [](DatasetWriter& w, nb::list leaves) {
             LeafBuffers buf;
             std::vector<LeafInput> in = ToLeaves(leaves, buf);
             nb::gil_scoped_release release;
             Check(w.Add(in));
           },
           "leaves"_a, "Appends one item (a list of leaves: None, bool, int, float, str, bytes, array).")
      .def("finish",
           [](DatasetWriter& w, const std::string& schema_json, const std::string& metadata_json) {
             nb::gil_scoped_release release;
             Check(w.Finish(schema_json, metadata_json));
           },
           "schema_json"_a, "metadata_json"_a = "{}")
      .def_prop_ro("num_items", &DatasetWriter::num_items)
      .def_prop_ro("num_chunks", &DatasetWriter::num_chunks);

  nb::class_<Dataset>(m, "Dataset", "A chute dataset opened for reading (thread-safe).")
      .def_static("open",
                  [](const std::string& url, bool verify_checksums, const StorageOptions& storage_options,
                     uint64_t part_size, size_t concurrency, const std::string& cache_dir, uint64_t max_cache_size,
                     const std::string& index_json) {
                    DatasetOptions o;
                    o.index_json = index_json;
                    o.verify_checksums = verify_checksums;
                    o.part_size = part_size;
                    o.concurrency = concurrency;
                    o.cache_dir = cache_dir;
                    o.max_cache_size = max_cache_size;
                    nb::gil_scoped_release release;
                    return Unwrap(Dataset::Open(url, o, storage_options));
                  },
                  "url"_a, "verify_checksums"_a = true, "storage_options"_a = StorageOptions{},
                  "part_size"_a = 8 << 20, "concurrency"_a = 16, "cache_dir"_a = "", "max_cache_size"_a = 0,
                  "index_json"_a = "")
      .def("__len__", &Dataset::num_items)
      .def_prop_ro("url", &Dataset::url)
      .def_prop_ro("is_local", &Dataset::is_local, "Local files: usable in forked processes.")
      .def_prop_ro("index_json", &Dataset::index_json)
      .def_prop_ro("schema_json", &Dataset::schema_json)
      .def_prop_ro("compression", &Dataset::compression)
      .def_prop_ro("fingerprint", &Dataset::fingerprint)
      .def_prop_ro("cache_path", &Dataset::cache_path)
      .def_prop_ro("cache_capacity", &Dataset::cache_capacity)
      .def_prop_ro("chunk_starts", &Dataset::chunk_starts, "First item of each chunk, then len().")
      .def_prop_ro("chunks",
                   [](const Dataset& d) {
                     nb::list out;
                     for (auto& c : d.chunks())
                       out.append(nb::make_tuple(c.file, c.num_items, c.num_bytes));
                     return out;
                   },
                   "(file, num_items, num_bytes) per chunk.")
      .def("locate", &Dataset::Locate, "i"_a, "(chunk, index in chunk) of item i.")
      .def("prefetch",
           [](const Dataset& d, const std::vector<uint32_t>& chunks) { d.Prefetch(chunks); },
           "chunks"_a, "Starts fetching these chunks into the node cache in the background.")
      .def("get",
           [](const Dataset& d, uint64_t i) {
             return ReadWithoutGil([&] { return d.GetItem(i); });
           },
           "i"_a, "The leaves of item i (arrays are read-only zero-copy views).")
      .def("get_many",
           [](const Dataset& d, nb::ndarray<const uint64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> ids,
              bool direct) {
             Result<std::vector<Item>> items = [&] {
               nb::gil_scoped_release release;
               return d.GetItems({ids.data(), ids.shape(0)}, direct);
             }();
             nb::list out;
             for (Item& item : Unwrap(std::move(items))) out.append(ToPython(std::move(item)));
             return out;
           },
           "ids"_a, "direct"_a = false,
           "The leaves of items `ids` (uint64 array), in order. direct: items of chunks not yet in "
           "the node cache are read by their own byte ranges, in parallel (for an epoch's first batch).")
      .def("read",
           [](const Dataset& d, uint64_t i) {
             return ReadWithoutGil([&] { return d.ReadItem(i); });
           },
           "i"_a, "Item i for random access: an uncached remote chunk is read only in part.")
      .def("get_in_chunk",
           [](const Dataset& d, uint32_t chunk, uint64_t j) {
             return ReadWithoutGil([&] { return d.GetChunkItem(chunk, j); });
           },
           "chunk"_a, "j"_a, "The leaves of item j of chunk `chunk`.");
}

}  // namespace chute::bindings
