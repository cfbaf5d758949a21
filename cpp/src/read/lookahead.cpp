#include "read/lookahead.h"

namespace chute {

void Lookahead::Add(PlannedBatch batch) {
  const auto& info = dataset_->chunks();
  for (uint32_t c : batch.chunks) {
    if (uses_[c]++ == 0) pending_ += info[c].num_bytes;
  }
  planned_.push_back(std::move(batch));
}

PlannedBatch Lookahead::Take(bool prefetch) {
  const auto& info = dataset_->chunks();
  if (prefetch && budget_ > 0) {
    // Only the leading batches' chunks within the budget: a plan may run further ahead
    // (a mix schedules batches for all its readers), and fetching further would evict
    // what is about to be read.
    std::vector<uint32_t> wanted;
    std::unordered_set<uint32_t> seen;
    uint64_t bytes = 0;
    for (auto batch = planned_.begin(); batch != planned_.end() && bytes < budget_; ++batch) {
      for (uint32_t c : batch->chunks) {
        if (!seen.insert(c).second) continue;
        bytes += info[c].num_bytes;
        if (requested_.insert(c).second) wanted.push_back(c);
      }
    }
    if (!wanted.empty()) dataset_->Prefetch(wanted);
  }
  PlannedBatch out = std::move(planned_.front());
  planned_.pop_front();
  for (uint32_t c : out.chunks) {
    if (--uses_[c] == 0) {  // planned no more: asked for again if planned again (it may be evicted by then)
      uses_.erase(c);
      requested_.erase(c);
      pending_ -= info[c].num_bytes;
    }
  }
  return out;
}

}  // namespace chute
