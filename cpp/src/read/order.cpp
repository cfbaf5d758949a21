#include "chute/order.h"

#include <algorithm>
#include <numeric>

#include "util/ranges.h"

namespace chute {

namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t Key(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) {
  return Mix(Mix(Mix(Mix(a) ^ b) ^ c) ^ d);
}

// A keyed permutation of [0, n): a 4-round balanced Feistel network over the smallest
// even number of bits covering n, with cycle walking back into range.
uint64_t Permute(uint64_t x, uint64_t n, uint64_t key) {
  if (n <= 1) return x;
  unsigned bits = 64 - static_cast<unsigned>(__builtin_clzll(n - 1));
  bits += bits & 1;
  unsigned half = bits / 2;
  uint64_t mask = (uint64_t{1} << half) - 1;
  do {
    uint64_t left = x >> half, right = x & mask;
    for (uint64_t round = 0; round < 4; ++round) {
      uint64_t next = left ^ (Mix(key ^ (round << 56) ^ right) & mask);
      left = right;
      right = next;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

}  // namespace

EpochOrder::EpochOrder(std::span<const uint64_t> chunk_sizes, const OrderOptions& options)
    : options_(options) {
  if (options_.partitions == 0) options_.partitions = 1;
  size_t c = chunk_sizes.size();
  chunk_starts_.resize(c + 1);
  chunk_starts_[0] = 0;
  for (size_t k = 0; k < c; ++k) chunk_starts_[k + 1] = chunk_starts_[k] + chunk_sizes[k];
  num_items_ = chunk_starts_[c];

  chunk_perm_.resize(c);
  std::iota(chunk_perm_.begin(), chunk_perm_.end(), 0u);
  if (options_.shuffle) {  // Fisher-Yates driven by a counter-based hash
    uint64_t key = Key(options_.seed, options_.epoch, 0xC4u);
    for (size_t k = c; k > 1; --k) {
      size_t j = Mix(key ^ k) % k;
      std::swap(chunk_perm_[k - 1], chunk_perm_[j]);
    }
  }
  t_starts_.resize(c + 1);
  t_starts_[0] = 0;
  for (size_t k = 0; k < c; ++k) t_starts_[k + 1] = t_starts_[k] + chunk_sizes[chunk_perm_[k]];
  base_ = num_items_ / options_.partitions;
  extra_ = num_items_ % options_.partitions;
}

uint64_t EpochOrder::TIndexAt(uint64_t t) const {
  if (!options_.shuffle) return t;
  const uint64_t P = options_.partitions;
  uint64_t p, q;
  if (t < P * base_) {
    p = t % P;
    q = t / P;
  } else {  // the last partial round: partitions 0..extra_-1 hold one more item
    p = t - P * base_;
    q = base_;
  }
  uint64_t length = base_ + (p < extra_ ? 1 : 0);
  uint64_t start = p * base_ + std::min(p, extra_);
  uint64_t window = options_.window_items ? options_.window_items : length;
  uint64_t w = q / window;
  uint64_t offset = q % window;
  uint64_t window_len = std::min(window, length - w * window);
  uint64_t key = Key(options_.seed, options_.epoch, p + 1, w + 1);
  return start + w * window + Permute(offset, window_len, key);
}

uint64_t EpochOrder::At(uint64_t t) const {
  uint64_t i = TIndexAt(t);
  if (!options_.shuffle) return i;
  size_t k = RangeOf(t_starts_, i);
  return chunk_starts_[chunk_perm_[k]] + (i - t_starts_[k]);
}

void EpochOrder::Fill(uint64_t start, uint64_t stride, std::span<uint64_t> out) const {
  if (num_items_ == 0) return;
  uint64_t t = start % num_items_;
  stride %= num_items_;
  for (uint64_t& id : out) {
    id = At(t);
    t += stride;
    if (t >= num_items_) t -= num_items_;
  }
}

uint32_t EpochOrder::ChunkOf(uint64_t id) const {
  return static_cast<uint32_t>(RangeOf(chunk_starts_, id));
}

}  // namespace chute
