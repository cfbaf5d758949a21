// Finding which of consecutive ranges holds a value: chunks of item ids, documents of
// token positions, ...
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

namespace chute {

// The k with starts[k] <= x < starts[k + 1], for ascending `starts` whose last entry is
// the end of the last range (x < starts.back()).
inline size_t RangeOf(std::span<const uint64_t> starts, uint64_t x) {
  return static_cast<size_t>(std::upper_bound(starts.begin(), starts.end() - 1, x) - starts.begin()) - 1;
}

}  // namespace chute
