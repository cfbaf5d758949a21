#include "chute/reader.h"

#include <algorithm>
#include <deque>
#include <optional>

#include "read/lookahead.h"
#include "util/io_pool.h"
#include "util/posix_file.h"
#include "util/task_group.h"
#include "chute/trace.h"

namespace chute {

uint64_t RankSampleCount(uint64_t remaining, uint32_t world_size, bool drop_last) {
  world_size = std::max<uint32_t>(1, world_size);
  return drop_last ? remaining / world_size : (remaining + world_size - 1) / world_size;
}

namespace {

Status CheckOptions(const ReaderOptions& o) {
  if (o.order.partitions == 0) return Status::Invalid("partitions must be at least 1");
  if (o.batch_size == 0) return Status::Invalid("batch_size must be at least 1");
  if (o.share.world_size == 0 || o.share.rank >= o.share.world_size)
    return Status::Invalid("need 0 <= rank < world_size (rank " + std::to_string(o.share.rank) + ", world_size " +
                           std::to_string(o.share.world_size) + ")");
  if (o.share.num_workers == 0 || o.share.worker >= o.share.num_workers)
    return Status::Invalid("need 0 <= worker < num_workers (worker " + std::to_string(o.share.worker) +
                           ", num_workers " + std::to_string(o.share.num_workers) + ")");
  return Status::OK();
}

// Positions start + k * stride (mod the order's size), k < count.
struct Slice {
  uint64_t start, stride, count;
};

// The batches of a share, in the order its reader reads them (chute/reader.h).
class ShareSlices {
 public:
  ShareSlices(uint64_t order_size, const ReaderOptions& o)  // o: checked (CheckOptions)
      : o_(o), world_(o.share.world_size), workers_(o.share.num_workers), batch_(o.batch_size) {
    count_ = order_size ? RankSampleCount(order_size > o.start ? order_size - o.start : 0, world_, o.drop_last) : 0;
    num_batches_ = (count_ + batch_ - 1) / batch_;
    next_ = o.share.worker;
  }
  std::optional<Slice> Next() {
    if (next_ >= num_batches_) return std::nullopt;
    uint64_t m0 = next_ * batch_;
    next_ += workers_;
    return Slice{o_.start + m0 * world_ + o_.share.rank, world_, std::min(batch_, count_ - m0)};
  }

 private:
  ReaderOptions o_;
  uint32_t world_, workers_;
  uint64_t batch_, count_ = 0, num_batches_ = 0, next_ = 0;
};

// A token batch being gathered on the reader's threads. Shared with its task, which may
// outlive a timed-out wait.
struct Gather : TaskGroup {
  Batch batch;
  size_t num_chunks = 0;  // chunks the batch reads (each may be downloaded in turn)
};

}  // namespace

struct Reader::Impl {
  std::shared_ptr<const Dataset> dataset;
  std::shared_ptr<const TokenBlocks> blocks;  // token mode
  ReaderOptions options;
  EpochOrder order;
  std::optional<ShareSlices> share;  // share mode
  Lookahead lookahead;
  bool started = false;
  // Token mode: batches being gathered, oldest first.
  std::deque<std::shared_ptr<Gather>> gathering;
  std::unique_ptr<IoPool> gather_pool;

  Impl(std::shared_ptr<const Dataset> ds, std::shared_ptr<const TokenBlocks> tb, const ReaderOptions& o,
       std::span<const uint64_t> chunk_sizes)
      : dataset(std::move(ds)), blocks(std::move(tb)), options(o), order(chunk_sizes, o.order),
        lookahead(dataset, dataset->cache_capacity() ? std::min(o.prefetch_bytes, dataset->cache_capacity() / 2) : 0) {
    if (!o.scheduled) share.emplace(order.size(), o);
  }

  // The chunks that sample `id` reads: its item's, or every chunk its block spans.
  void AddChunks(uint64_t id, std::vector<uint32_t>& chunks) const {
    auto add = [&](uint32_t c) {
      if (std::find(chunks.begin(), chunks.end(), c) == chunks.end()) chunks.push_back(c);
    };
    if (!blocks) {
      add(order.ChunkOf(id));
      return;
    }
    uint64_t first = blocks->FirstToken(id);
    for (uint32_t c = blocks->ChunkOfToken(first), last = blocks->ChunkOfToken(first + blocks->block_size() - 1);
         c <= last; ++c)
      add(c);
  }

  void Plan(const Slice& s) {
    PlannedBatch batch;
    batch.ids.resize(s.count);
    order.Fill(s.start, s.stride, batch.ids);
    for (uint64_t id : batch.ids) AddChunks(id, batch.chunks);
    lookahead.Add(std::move(batch));
  }

  // The next planned batch (planning ahead up to the budget first), or nullopt. The
  // first batch is taken before any prefetch starts.
  std::optional<PlannedBatch> TakeNext() {
    if (share) {
      while (lookahead.empty() || (started && !lookahead.Full())) {
        std::optional<Slice> s = share->Next();
        if (!s) break;
        Plan(*s);
      }
    }
    if (lookahead.empty()) return std::nullopt;
    // Item readers read their first batch by byte ranges and only then queue its chunks
    // (Dataset::GetItems direct); token readers gather from whole chunks at once.
    bool prefetch = started || blocks != nullptr;
    started = true;
    return lookahead.Take(prefetch);
  }

  Result<bool> NextItems(Batch* out) {
    bool first = !started;
    std::optional<PlannedBatch> planned = TakeNext();
    if (!planned) return false;
    out->ids = std::move(planned->ids);
    out->tokens.reset();
    CHUTE_ASSIGN_OR_RETURN(out->items, dataset->GetItems(out->ids, first));
    return true;
  }

  Result<bool> NextTokens(Batch* out) {
    const size_t in_flight = std::max<size_t>(1, options.gather_threads) * std::max<size_t>(1, options.gather_ahead);
    while (gathering.size() < in_flight) {
      std::optional<PlannedBatch> planned = TakeNext();
      if (!planned) break;
      auto job = std::make_shared<Gather>();
      job->left = 1;
      job->batch.ids = std::move(planned->ids);
      job->num_chunks = planned->chunks.size();
      job->batch.tokens = AllocateAligned(job->batch.ids.size() * blocks->block_size() * options.token_dtype.itemsize());
      gather_pool->Submit([job, blocks = blocks, dtype = options.token_dtype] {
        trace::Span span("gather_tokens");
        job->Done(blocks->Gather(job->batch.ids, dtype, job->batch.tokens.get()));
      });
      gathering.push_back(std::move(job));
    }
    if (gathering.empty()) return false;
    std::shared_ptr<Gather> job = std::move(gathering.front());
    gathering.pop_front();
    // Each chunk it reads may be downloaded in turn, each bounded by the storage timeout.
    if (!job->Wait((dataset->timeout() + 60) * static_cast<double>(1 + job->num_chunks)))
      return Status::IOError(dataset->url() + ": timed out gathering a batch of token blocks (storage_options "
                             "timeout)");
    CHUTE_RETURN_NOT_OK(job->status);
    *out = std::move(job->batch);
    return true;
  }
};

Reader::Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::~Reader() = default;

Result<std::unique_ptr<Reader>> Reader::Make(std::shared_ptr<const Dataset> dataset, const ReaderOptions& options) {
  if (!dataset) return Status::Invalid("Reader needs a dataset");
  CHUTE_RETURN_NOT_OK(CheckOptions(options));
  std::vector<uint64_t> sizes;
  for (auto& c : dataset->chunks()) sizes.push_back(c.num_items);
  return std::unique_ptr<Reader>(new Reader(std::make_unique<Impl>(std::move(dataset), nullptr, options, sizes)));
}

Result<std::unique_ptr<Reader>> Reader::Make(std::shared_ptr<const TokenBlocks> blocks, const ReaderOptions& options) {
  if (!blocks) return Status::Invalid("Reader needs token blocks");
  CHUTE_RETURN_NOT_OK(CheckOptions(options));
  auto impl = std::make_unique<Impl>(blocks->dataset(), blocks, options, blocks->blocks_per_chunk());
  // The reader's own threads: they only slice chunks already at hand or wait for them.
  impl->gather_pool = std::make_unique<IoPool>("chute-gather", std::max<size_t>(1, options.gather_threads));
  return std::unique_ptr<Reader>(new Reader(std::move(impl)));
}

uint64_t Reader::order_size() const { return impl_->order.size(); }

Status Reader::Schedule(uint64_t start, uint64_t stride, uint64_t count) {
  if (!impl_->options.scheduled) return Status::Invalid("Reader::Schedule needs ReaderOptions::scheduled");
  if (count > 0 && impl_->order.size() == 0) return Status::Invalid(impl_->dataset->url() + " holds no samples");
  impl_->Plan(Slice{start, stride, count});
  return Status::OK();
}

bool Reader::WantsMore() const { return !impl_->lookahead.Full(); }

Result<bool> Reader::Next(Batch* out) {
  trace::Span span("read_batch");
  return impl_->blocks ? impl_->NextTokens(out) : impl_->NextItems(out);
}

}  // namespace chute
