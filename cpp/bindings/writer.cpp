// Bindings for writing datasets in parts (chute/writer.h), used by optimize.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <tuple>
#include <vector>

#include "chute/writer.h"
#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

namespace {

using InArray = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;
const WriterOptions kDefaults;
using ChunkTuple = std::tuple<std::string, uint64_t, uint64_t, uint64_t, int64_t>;

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

ChunkInfo ToChunkInfo(const ChunkTuple& t) {
  auto& [file, items, bytes, checksum, tokens] = t;
  return ChunkInfo{file, items, bytes, checksum, tokens};
}

}  // namespace

void init_writer(nb::module_& m) {
  m.def("prepare_output",
        [](const std::string& url, bool overwrite, const std::vector<std::string>& keep_chunks,
           const StorageOptions& storage_options) {
          nb::gil_scoped_release release;
          Check(PrepareOutput(url, overwrite, keep_chunks, storage_options));
        },
        "url"_a, "overwrite"_a, "keep_chunks"_a, "storage_options"_a = StorageOptions{},
        "Makes url ready for a new dataset: refuses one already there unless overwrite, removes its "
        "index.json, then every chunk-*.bin file but keep_chunks.");
  m.def("write_index",
        [](const std::string& url, const std::vector<ChunkTuple>& chunks, const std::string& schema_json,
           const std::string& compression, const std::string& metadata_json, const StorageOptions& storage_options) {
          std::vector<ChunkInfo> infos;
          for (auto& c : chunks) infos.push_back(ToChunkInfo(c));
          nb::gil_scoped_release release;
          Check(WriteIndex(url, infos, schema_json, compression, metadata_json, storage_options));
        },
        "url"_a, "chunks"_a, "schema_json"_a, "compression"_a, "metadata_json"_a = "{}",
        "storage_options"_a = StorageOptions{}, "Writes index.json listing chunks (ChunkWriter.chunks of each part, in order).");

  nb::class_<ChunkWriter>(m, "ChunkWriter",
                          "Packs items into chunk files <chunk_prefix>NNNNNN.bin under a URL; writes no index.")
      .def("__init__",
           [](ChunkWriter* self, const std::string& url, uint64_t chunk_bytes, uint64_t chunk_items,
              const std::string& compression, uint64_t block_bytes, const std::string& chunk_prefix,
              const StorageOptions& storage_options, const std::vector<ChunkTuple>& resume_chunks) {
             WriterOptions o;
             for (auto& c : resume_chunks) o.resume_chunks.push_back(ToChunkInfo(c));
             o.chunk_bytes = chunk_bytes;
             o.chunk_items = chunk_items;
             o.compression = compression;
             o.block_bytes = block_bytes;
             o.chunk_prefix = chunk_prefix;
             std::unique_ptr<ChunkWriter> w;
             {
               nb::gil_scoped_release release;
               w = Unwrap(ChunkWriter::Create(url, o, storage_options));
             }
             new (self) ChunkWriter(std::move(*w));
           },
           "url"_a, "chunk_bytes"_a = kDefaults.chunk_bytes, "chunk_items"_a = kDefaults.chunk_items,
           "compression"_a = kDefaults.compression, "block_bytes"_a = kDefaults.block_bytes,
           "chunk_prefix"_a = kDefaults.chunk_prefix, "storage_options"_a = StorageOptions{},
           "resume_chunks"_a = std::vector<ChunkTuple>{})
      .def("add",
           [](ChunkWriter& w, nb::list leaves) {
             LeafBuffers buf;
             std::vector<LeafInput> in = ToLeaves(leaves, buf);
             nb::gil_scoped_release release;
             Check(w.Add(in));
           },
           "leaves"_a, "Appends one item (a list of leaves: None, bool, int, float, str, bytes, array).")
      .def("close",
           [](ChunkWriter& w) {
             nb::gil_scoped_release release;
             Check(w.Close());
           },
           "Writes the last chunk, if it holds items.")
      .def_prop_ro("num_chunks", &ChunkWriter::num_chunks)
      .def_prop_ro("chunks",
                   [](const ChunkWriter& w) {
                     std::vector<ChunkTuple> out;
                     for (auto& c : w.chunks()) out.emplace_back(c.file, c.num_items, c.num_bytes, c.checksum, c.num_tokens);
                     return out;
                   },
                   "(file, num_items, num_bytes, xxh3_64, num_tokens) of each chunk written so far: give them back "
                   "as resume_chunks to continue an interrupted run.");
}

}  // namespace chute::bindings
