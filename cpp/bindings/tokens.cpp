// Bindings for token datasets: block gathering and the conversion kernel.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>

#include "chute/tokens.h"
#include "common.h"
#include "convert.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

void init_tokens(nb::module_& m) {
  m.def("convert_tokens",
        [](nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu, nb::ndim<1>> src, const std::string& dtype, bool simd) {
          DType out = ParseIntDType(dtype);
          auto dt = src.dtype();
          auto buffer = NewBuffer(src.shape(0) * out.itemsize());
          {
            nb::gil_scoped_release release;
            Check(ConvertTokens(static_cast<const std::byte*>(src.data()), DType{dt.code, static_cast<uint8_t>(dt.bits)},
                                buffer.get(), out, src.shape(0), simd));
          }
          return OwnedArray(std::move(buffer), 1, src.shape(0), out, false);
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
      .def_prop_ro("blocks_per_chunk", &TokenBlocks::blocks_per_chunk)
      .def_prop_ro("token_dtype",
                   [](const TokenBlocks& t) {
                     DType d = Unwrap(t.token_dtype());
                     return std::string(d.code == DType::kInt ? "int" : "uint") + std::to_string(d.bits);
                   })
      .def("gather",
           [](const TokenBlocks& t, nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu, nb::ndim<1>, uint64_t> ids,
              const std::string& dtype, bool simd) {
             DType out = ParseIntDType(dtype);
             auto buffer = NewBuffer(ids.shape(0) * t.block_size() * out.itemsize());
             {
               nb::gil_scoped_release release;
               Check(t.Gather({ids.data(), ids.shape(0)}, out, buffer.get(), simd));
             }
             return OwnedArray(std::move(buffer), ids.shape(0), t.block_size(), out);
           },
           "ids"_a, "dtype"_a = "int64", "simd"_a = true,
           "A new [len(ids), block_size] array of the blocks, converted to dtype.");
}

}  // namespace chute::bindings
