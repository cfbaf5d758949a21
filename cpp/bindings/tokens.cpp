// Bindings for token datasets: block gathering and the conversion kernel.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdlib>
#include <string>

#include "chute/tokens.h"
#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

namespace {

DType ParseIntDType(const std::string& name) {
  static const std::pair<const char*, DType> kNames[] = {
      {"int8", {DType::kInt, 8}},   {"int16", {DType::kInt, 16}},   {"int32", {DType::kInt, 32}},
      {"int64", {DType::kInt, 64}}, {"uint8", {DType::kUInt, 8}},   {"uint16", {DType::kUInt, 16}},
      {"uint32", {DType::kUInt, 32}}, {"uint64", {DType::kUInt, 64}}};
  for (auto& [n, d] : kNames)
    if (name == n) return d;
  throw nb::value_error(("token dtype must be an integer dtype name such as 'int64', not '" + name + "'").c_str());
}

// A new C-contiguous array of `rows` x `cols` elements of `dtype`, 64-byte aligned,
// owned by a capsule.
std::pair<std::byte*, nb::ndarray<nb::numpy>> NewArray(size_t rows, size_t cols, DType dtype, bool two_d) {
  size_t bytes = std::max<size_t>(rows * cols * dtype.itemsize(), 1);
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  nb::capsule owner(p, [](void* q) noexcept { std::free(q); });
  size_t shape[2] = {rows, cols};
  nb::ndarray<nb::numpy> arr(p, two_d ? 2 : 1, two_d ? shape : shape + 1, owner, nullptr,
                             nb::dlpack::dtype{dtype.code, dtype.bits, 1});
  return {static_cast<std::byte*>(p), arr};
}

}  // namespace

void init_tokens(nb::module_& m) {
  m.def("simd_available", &TokensSimdAvailable, "Whether the AVX2 token kernels run on this CPU.");
  m.def("convert_tokens",
        [](nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu, nb::ndim<1>> src, const std::string& dtype, bool simd) {
          DType out = ParseIntDType(dtype);
          auto dt = src.dtype();
          auto [ptr, arr] = NewArray(1, src.shape(0), out, false);
          {
            nb::gil_scoped_release release;
            Check(ConvertTokens(static_cast<const std::byte*>(src.data()), DType{dt.code, static_cast<uint8_t>(dt.bits)},
                                ptr, out, src.shape(0), simd));
          }
          return arr;
        },
        "src"_a, "dtype"_a, "simd"_a = true, "src converted to dtype (the SIMD or the portable kernel).");

  nb::class_<TokenBlocks>(m, "TokenBlocks", "A token dataset read as blocks of block_size consecutive tokens.")
      .def("__init__",
           [](TokenBlocks* self, std::shared_ptr<Dataset> dataset, uint64_t block_size) {
             auto blocks = Unwrap(TokenBlocks::Make(std::move(dataset), block_size));
             new (self) TokenBlocks(std::move(*blocks));
           },
           "dataset"_a, "block_size"_a)
      .def("__len__", &TokenBlocks::num_blocks)
      .def_prop_ro("block_size", &TokenBlocks::block_size)
      .def_prop_ro("num_tokens", &TokenBlocks::num_tokens)
      .def_prop_ro("blocks_per_chunk", &TokenBlocks::blocks_per_chunk)
      .def_prop_ro("chunk_token_starts", &TokenBlocks::chunk_token_starts, "First token of each chunk, then the total.")
      .def_prop_ro("token_dtype",
                   [](const TokenBlocks& t) {
                     DType d = Unwrap(t.token_dtype());
                     return std::string(d.code == DType::kInt ? "int" : "uint") + std::to_string(d.bits);
                   })
      .def("gather",
           [](const TokenBlocks& t, nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu, nb::ndim<1>, uint64_t> ids,
              const std::string& dtype, bool simd) {
             DType out = ParseIntDType(dtype);
             auto [ptr, arr] = NewArray(ids.shape(0), t.block_size(), out, true);
             {
               nb::gil_scoped_release release;
               Check(t.Gather({ids.data(), ids.shape(0)}, out, ptr, simd));
             }
             return arr;
           },
           "ids"_a, "dtype"_a = "int64", "simd"_a = true,
           "A new [len(ids), block_size] array of the blocks, converted to dtype.");
}

}  // namespace chute::bindings
