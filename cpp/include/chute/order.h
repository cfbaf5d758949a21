// The sample order of an epoch: a pure function of (chunk sizes, seed, epoch, partition
// count, shuffle window) — never of the number of nodes, ranks or workers.
//
// Construction (docs/order.md has the full description):
//  1. The chunks are permuted (seed, epoch); T is the concatenation of their items.
//  2. T is cut into `partitions` contiguous parts of nearly equal length (sizes differ by
//     at most one item); partition p reads only its own chunks.
//  3. Inside a partition, items are permuted within consecutive windows of
//     `window_items` items (a keyed Feistel permutation: O(1) memory, O(1) lookup).
//  4. The epoch sequence takes one item from each partition in turn: position t holds
//     item t / P of partition t % P (P = partitions), the last partial round in
//     partition order.
// A reader that takes positions t ≡ r (mod R) with R dividing P reads only partitions
// p ≡ r (mod R): chunk locality for any layout that divides the partition count.
//
// Memory: O(number of chunks). At(t): O(log chunks).
// Thread-safety: immutable after construction; all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "chute/export.h"

namespace chute {

struct OrderOptions {
  bool shuffle = true;
  uint64_t seed = 42;
  uint64_t epoch = 0;
  uint32_t partitions = 64;
  uint64_t window_items = 0;  // 0: one window per partition
};

class CHUTE_API EpochOrder {
 public:
  // `chunk_sizes[c]` is the number of items of chunk c (global ids are in chunk order).
  EpochOrder(std::span<const uint64_t> chunk_sizes, const OrderOptions& options);

  uint64_t size() const { return num_items_; }
  // The global item id at epoch position t (t < size()).
  uint64_t At(uint64_t t) const;
  // out[k] = At((start + k * stride) % size()) for k < out.size().
  void Fill(uint64_t start, uint64_t stride, std::span<uint64_t> out) const;
  // The chunk that holds global item `id`.
  uint32_t ChunkOf(uint64_t id) const;

 private:
  uint64_t TIndexAt(uint64_t t) const;  // position -> index into T

  OrderOptions options_;
  uint64_t num_items_ = 0;
  uint64_t base_ = 0;    // items per partition, rounded down
  uint64_t extra_ = 0;   // partitions that hold one more item
  std::vector<uint32_t> chunk_perm_;       // T's chunks
  std::vector<uint64_t> t_starts_;         // start of each permuted chunk in T (+ end)
  std::vector<uint64_t> chunk_starts_;     // global id of each chunk's first item (+ end)
};

}  // namespace chute
