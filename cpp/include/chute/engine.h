// Prefetching in epoch order: a reader (a rank, a DataLoader worker) knows the batches it
// will read — its share of the epoch order (order.h) — so it can have their chunks
// fetched into the node cache before it needs them, within a byte budget.
//
// Lookahead does the bookkeeping: the reader tells it the chunks of each of its coming
// batches in order (Add), and takes batches in the same order (Next) once the batches
// queued ahead need `budget_bytes` of distinct chunks (or at the end). Next asks the
// dataset (Dataset::Prefetch) for every queued chunk not asked for yet, in order, so the
// fetches run that far ahead of the reader. The reader keeps the batches themselves.
//
// Thread-safety: one reader per Lookahead (not thread-safe).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "chute/dataset.h"
#include "chute/export.h"

namespace chute {

class CHUTE_API Lookahead {
 public:
  Lookahead(std::shared_ptr<const Dataset> dataset, uint64_t budget_bytes);

  // Queues the next batch, which reads `chunks`. Returns whether a batch should be
  // taken now: the queued batches need at least `budget_bytes` of distinct chunks.
  bool Add(std::vector<uint32_t> chunks);
  // Asks for the queued chunks not asked for yet, then forgets the oldest queued batch
  // (the reader reads it now). Requires a queued batch.
  void Next();
  size_t queued() const { return ahead_.size(); }

 private:
  std::shared_ptr<const Dataset> dataset_;
  uint64_t budget_;
  std::deque<std::vector<uint32_t>> ahead_;     // chunks of each queued batch
  std::unordered_map<uint32_t, uint32_t> uses_;  // chunk -> queued batches reading it
  uint64_t pending_ = 0;                         // bytes of the distinct chunks queued
  std::unordered_set<uint32_t> requested_;
};

}  // namespace chute
