// Bindings for the Reader (chute/reader.h): one pass of one rank or worker over an epoch.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>

#include "chute/reader.h"
#include "common.h"
#include "convert.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace chute::bindings {

namespace {

const ReaderOptions kDefaults;

ReaderOptions MakeOptions(bool shuffle, uint64_t seed, uint64_t epoch, uint32_t partitions, uint64_t window_items,
                          uint32_t rank, uint32_t world_size, uint32_t worker, uint32_t num_workers,
                          uint64_t batch_size, uint64_t start, bool drop_last, uint64_t prefetch_bytes,
                          bool scheduled) {
  ReaderOptions o;
  o.order = OrderOptions{shuffle, seed, epoch, partitions, window_items};
  o.share = ReaderShare{rank, world_size, worker, num_workers};
  o.batch_size = batch_size;
  o.start = start;
  o.drop_last = drop_last;
  o.prefetch_bytes = prefetch_bytes;
  o.scheduled = scheduled;
  return o;
}

// One Reader with what its batches are turned into in Python.
struct PyReader {
  std::unique_ptr<Reader> reader;
  uint64_t block_size = 0;  // token mode
  DType token_dtype;
  std::vector<uint64_t> ids;  // of the last batch

  // The next batch: a list of items' leaves (or, for an item skipped because its objects
  // are missing, its global id), or a [n, block_size] array of tokens; None at the end.
  nb::object Next() {
    Batch batch;
    Result<bool> more = [&] {
      nb::gil_scoped_release release;
      return reader->Next(&batch);
    }();
    if (!Unwrap(std::move(more))) return nb::none();
    ids = batch.ids;
    if (block_size)
      return nb::cast(OwnedArray(std::move(batch.tokens), batch.ids.size(), block_size, token_dtype));
    nb::list out;
    for (size_t k = 0; k < batch.items.size(); ++k) {
      if (batch.items[k].missing)
        out.append(batch.ids[k]);
      else
        out.append(ToPython(std::move(batch.items[k])));
    }
    return out;
  }
};

}  // namespace

void init_reader(nb::module_& m) {
  m.def("rank_sample_count", &RankSampleCount, "remaining"_a, "world_size"_a, "drop_last"_a,
        "Samples each rank reads of `remaining` epoch positions shared by world_size ranks.");
  nb::class_<PyReader>(m, "Reader",
                       "One rank's (or DataLoader worker's) pass over an epoch: its share of the order, "
                       "prefetch into the node cache, batches out (chute/reader.h).")
      .def("__init__",
           [](PyReader* self, std::shared_ptr<Dataset> dataset, std::shared_ptr<TokenBlocks> blocks,
              const std::string& token_dtype, size_t gather_threads, size_t gather_ahead, bool shuffle,
              uint64_t seed, uint64_t epoch, uint32_t partitions, uint64_t window_items, uint32_t rank,
              uint32_t world_size, uint32_t worker, uint32_t num_workers, uint64_t batch_size, uint64_t start,
              bool drop_last, uint64_t prefetch_bytes, bool scheduled) {
             ReaderOptions o = MakeOptions(shuffle, seed, epoch, partitions, window_items, rank, world_size, worker,
                                           num_workers, batch_size, start, drop_last, prefetch_bytes, scheduled);
             new (self) PyReader();
             if (blocks) {
               o.token_dtype = ParseIntDType(token_dtype);
               o.gather_threads = gather_threads;
               o.gather_ahead = gather_ahead;
               self->block_size = blocks->block_size();
               self->token_dtype = o.token_dtype;
               self->reader = Unwrap(Reader::Make(std::shared_ptr<const TokenBlocks>(std::move(blocks)), o));
             } else if (dataset) {
               self->reader = Unwrap(Reader::Make(std::shared_ptr<const Dataset>(std::move(dataset)), o));
             } else {
               throw nb::value_error("Reader needs a dataset or token blocks");
             }
           },
           "dataset"_a.none() = nb::none(), "blocks"_a.none() = nb::none(), "token_dtype"_a = "int64",
           "gather_threads"_a = kDefaults.gather_threads, "gather_ahead"_a = kDefaults.gather_ahead,
           "shuffle"_a = kDefaults.order.shuffle, "seed"_a = kDefaults.order.seed, "epoch"_a = 0,
           "partitions"_a = kDefaults.order.partitions, "window_items"_a = kDefaults.order.window_items,
           "rank"_a = 0, "world_size"_a = 1, "worker"_a = 0, "num_workers"_a = 1,
           "batch_size"_a = kDefaults.batch_size, "start"_a = 0, "drop_last"_a = kDefaults.drop_last,
           "prefetch_bytes"_a = kDefaults.prefetch_bytes, "scheduled"_a = false)
      .def("next", &PyReader::Next,
           "The next batch (a list of items' leaves, or the global id of an item skipped for its missing objects; "
           "or a [n, block_size] token array), or None at the end.")
      .def("schedule",
           [](PyReader& r, uint64_t start, uint64_t stride, uint64_t count) {
             Check(r.reader->Schedule(start, stride, count));
           },
           "start"_a, "stride"_a, "count"_a,
           "Scheduled mode: queues a batch of positions start + k * stride (mod the order's size), k < count.")
      .def_prop_ro("wants_more", [](const PyReader& r) { return r.reader->WantsMore(); },
                   "Scheduled mode: the queued batches span less than the prefetch budget.")
      .def("__len__", [](const PyReader& r) { return r.reader->order_size(); }, "Samples in the epoch order.")
      .def_ro("ids", &PyReader::ids, "The global item (or block) ids of the last batch, in order.");
}

}  // namespace chute::bindings
