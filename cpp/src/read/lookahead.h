// The Reader's plan of its coming batches (chute/reader.h, "Prefetch"): batches are
// added in reading order with the chunks they read; Take() hands out the oldest after
// asking the dataset to prefetch, in order, the chunks not asked for yet of the leading
// planned batches whose distinct chunks fit the budget.
//
// Thread-safety: one thread at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "chute/dataset.h"

namespace chute {

struct PlannedBatch {
  std::vector<uint64_t> ids;
  std::vector<uint32_t> chunks;  // distinct, in first-use order
};

class Lookahead {
 public:
  // `budget_bytes`: how many bytes of distinct chunks the planned batches may span
  // before Full() (0: no prefetching at all).
  Lookahead(std::shared_ptr<const Dataset> dataset, uint64_t budget_bytes)
      : dataset_(std::move(dataset)), budget_(budget_bytes) {}

  void Add(PlannedBatch batch);
  bool empty() const { return planned_.empty(); }
  // The planned batches span at least the budget: plan no further.
  bool Full() const { return pending_ >= budget_; }
  // The oldest planned batch; with `prefetch`, the chunks of the leading planned batches
  // (within the budget) not asked for yet are asked for first. Requires !empty().
  PlannedBatch Take(bool prefetch);

 private:
  std::shared_ptr<const Dataset> dataset_;
  uint64_t budget_;
  std::deque<PlannedBatch> planned_;
  std::unordered_map<uint32_t, uint32_t> uses_;  // chunk -> planned batches reading it
  uint64_t pending_ = 0;                         // bytes of the distinct planned chunks
  std::unordered_set<uint32_t> requested_;
};

}  // namespace chute
