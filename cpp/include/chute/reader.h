// One reader's pass over one epoch of a dataset (any source, chute/source.h): its share
// of the epoch order, the chunks of its coming batches fetched into the node cache ahead
// of it, and its batches of items — or, over token blocks, batches of tokens gathered
// into one buffer.
//
// Which batches. With a share (the default), a reader is rank `rank` of `world_size`,
// DataLoader worker `worker` of `num_workers`: from epoch position `start` on, rank r
// takes positions start + m * R + r (m < its sample count), so global batch k — batch
// k of every rank — is the contiguous positions [start + k*B*R, start + (k+1)*B*R)
// whatever the layout; workers take whole batches in turn (batch k from worker k % W).
// Every rank gets the same number of samples: with drop_last the last (< R) positions
// are dropped, otherwise positions past the end wrap to the epoch's start. A reader in
// `scheduled` mode instead reads the batches given to Schedule(), in that order (a mix
// of several datasets decides how many samples each batch takes from each).
//
// Prefetch. With a node cache, the reader plans its coming batches until their distinct
// chunks reach the budget (min(prefetch_bytes, half the cache)), and before handing out
// a batch asks the dataset to fetch the planned chunks within the budget not asked for
// yet, in order, so downloads run that far ahead of it. An item reader's first batch is
// read directly (each item by its own byte ranges, Dataset::GetItems direct) before any
// chunk is downloaded: it draws from many chunks, and would otherwise wait for all of
// them. Token batches are gathered from whole chunks, asked for from the first batch on.
//
// Threads: Next() blocks the calling thread (release the GIL around it). Token batches
// are gathered ahead by `gather_threads` threads of the reader, `gather_ahead` batches
// per thread; item batches are read in the calling thread (remote items on the
// dataset's item threads, chute/dataset.h).
//
// Lifetime: a Reader keeps its Dataset (or TokenBlocks) alive; Batches own their memory.
// Thread-safety: one thread at a time per Reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "chute/dataset.h"
#include "chute/export.h"
#include "chute/format.h"
#include "chute/order.h"
#include "chute/status.h"
#include "chute/tokens.h"

namespace chute {

// Which part of the epoch a reader reads (see above).
struct ReaderShare {
  uint32_t rank = 0;
  uint32_t world_size = 1;
  uint32_t worker = 0;
  uint32_t num_workers = 1;
};

struct ReaderOptions {
  OrderOptions order;
  ReaderShare share;
  uint64_t batch_size = 1;
  uint64_t start = 0;  // the epoch position reading starts from (a resumed epoch)
  bool drop_last = false;
  uint64_t prefetch_bytes = 256'000'000;
  bool scheduled = false;  // batches come from Schedule(), not from the share
  // Token blocks only: the dtype of the batch buffer, and the gather pipeline.
  DType token_dtype{DType::kInt, 64};
  size_t gather_threads = 1;
  size_t gather_ahead = 2;
};

struct Batch {
  std::vector<uint64_t> ids;  // global item (or block) ids, in order
  std::vector<Item> items;    // items mode (Item::missing ones are to be skipped)
  // Token mode: ids.size() x block_size tokens of ReaderOptions::token_dtype, C order,
  // 64-byte aligned.
  std::shared_ptr<std::byte> tokens;
};

// Samples each rank reads of `remaining` epoch positions shared by `world_size` ranks.
CHUTE_API uint64_t RankSampleCount(uint64_t remaining, uint32_t world_size, bool drop_last);

class CHUTE_API Reader {
 public:
  // Reads items of `dataset`.
  static Result<std::unique_ptr<Reader>> Make(std::shared_ptr<const Dataset> dataset, const ReaderOptions& options);
  // Reads token blocks: each batch one buffer (Batch::tokens).
  static Result<std::unique_ptr<Reader>> Make(std::shared_ptr<const TokenBlocks> blocks, const ReaderOptions& options);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Samples (items or blocks) in the epoch order.
  uint64_t order_size() const;
  // Scheduled mode: queues a batch of the `count` positions start + k * stride (mod
  // order_size()), k < count.
  Status Schedule(uint64_t start, uint64_t stride, uint64_t count);
  // Scheduled mode: whether the batches queued but not yet read need fewer chunk bytes
  // than the prefetch budget (schedule more to keep the downloads ahead).
  bool WantsMore() const;
  // The next batch into `out`; false when there is none (the share is read, or nothing
  // is scheduled). Errors name the chunk or URL that failed.
  Result<bool> Next(Batch* out);

 private:
  struct Impl;
  explicit Reader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chute
