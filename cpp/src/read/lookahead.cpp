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
  if (prefetch && budget_ > 0) {
    std::vector<uint32_t> wanted;
    for (const auto& batch : planned_) {
      for (uint32_t c : batch.chunks) {
        if (requested_.insert(c).second) wanted.push_back(c);
      }
    }
    if (!wanted.empty()) dataset_->Prefetch(wanted);
  }
  PlannedBatch out = std::move(planned_.front());
  planned_.pop_front();
  const auto& info = dataset_->chunks();
  for (uint32_t c : out.chunks) {
    if (--uses_[c] == 0) {
      uses_.erase(c);
      pending_ -= info[c].num_bytes;
    }
  }
  return out;
}

}  // namespace chute
