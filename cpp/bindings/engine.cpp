// Bindings for the engine's look-ahead (chute/engine.h).
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/vector.h>

#include "chute/engine.h"
#include "common.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

void init_engine(nb::module_& m) {
  nb::class_<Lookahead>(m, "Lookahead",
                        "Prefetch bookkeeping of one reader: add the chunks of each coming batch in order, "
                        "take batches (next) when add says so; next asks the dataset for the chunks queued.")
      .def(nb::init<std::shared_ptr<const Dataset>, uint64_t>(), "dataset"_a, "budget_bytes"_a)
      .def("add", &Lookahead::Add, "chunks"_a,
           "Queues the next batch's chunks; whether a batch should be taken now.")
      .def("next", &Lookahead::Next,
           "Asks for the queued chunks not asked for yet; forgets the oldest queued batch.")
      .def_prop_ro("queued", &Lookahead::queued);
}

}  // namespace chute::bindings
