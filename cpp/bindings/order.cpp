// Bindings for the epoch order.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/vector.h>

#include <vector>

#include "chute/order.h"
#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

void init_order(nb::module_& m) {
  nb::class_<EpochOrder>(m, "EpochOrder",
                         "The sample order of one epoch (see chute/order.h). Immutable, thread-safe.")
      .def("__init__",
           [](EpochOrder* self, const std::vector<uint64_t>& chunk_sizes, bool shuffle, uint64_t seed,
              uint64_t epoch, uint32_t partitions, uint64_t window_items) {
             if (partitions == 0) throw nb::value_error("partitions must be at least 1");
             new (self) EpochOrder(chunk_sizes, OrderOptions{shuffle, seed, epoch, partitions, window_items});
           },
           "chunk_sizes"_a, "shuffle"_a = true, "seed"_a = 42, "epoch"_a = 0, "partitions"_a = 64,
           "window_items"_a = 0)
      .def("__len__", &EpochOrder::size)
      .def("at",
           [](const EpochOrder& o, uint64_t t) {
             if (t >= o.size()) throw nb::index_error("epoch position out of range");
             return o.At(t);
           },
           "t"_a, "The global item id at epoch position t.")
      .def("fill",
           [](const EpochOrder& o, uint64_t start, uint64_t stride, size_t count) {
             auto* ids = new std::vector<uint64_t>(count);
             nb::capsule owner(ids, [](void* p) noexcept { delete static_cast<std::vector<uint64_t>*>(p); });
             {
               nb::gil_scoped_release release;
               o.Fill(start, stride, *ids);
             }
             return nb::ndarray<nb::numpy, uint64_t, nb::ndim<1>>(ids->data(), {count}, owner);
           },
           "start"_a, "stride"_a, "count"_a,
           "Item ids at positions (start + k * stride) mod len, k < count, as a uint64 array.")
      .def("chunk_of", &EpochOrder::ChunkOf, "id"_a, "The chunk holding global item id.");
}

}  // namespace chute::bindings
