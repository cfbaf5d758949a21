#include "chute/engine.h"

#include <algorithm>

namespace chute {

Lookahead::Lookahead(std::shared_ptr<const Dataset> dataset, uint64_t budget_bytes)
    : dataset_(std::move(dataset)), budget_(budget_bytes) {}

bool Lookahead::Add(std::vector<uint32_t> chunks) {
  const auto& info = dataset_->chunks();
  for (uint32_t c : chunks) {
    if (uses_[c]++ == 0) pending_ += info[c].num_bytes;
  }
  ahead_.push_back(std::move(chunks));
  return pending_ >= budget_;
}

void Lookahead::Next() {
  std::vector<uint32_t> wanted;
  for (const auto& chunks : ahead_) {
    for (uint32_t c : chunks) {
      if (requested_.insert(c).second) wanted.push_back(c);
    }
  }
  if (!wanted.empty()) dataset_->Prefetch(wanted);
  const auto& info = dataset_->chunks();
  for (uint32_t c : ahead_.front()) {
    if (--uses_[c] == 0) {
      uses_.erase(c);
      pending_ -= info[c].num_bytes;
    }
  }
  ahead_.pop_front();
}

}  // namespace chute
