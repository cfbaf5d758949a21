// Reading numbers and ranges out of untrusted file bytes (other libraries' formats):
// little-endian loads, overflow-checked ranges and sizes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace chute {

inline uint32_t LoadU32(const std::byte* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline uint64_t LoadU64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Whether [offset, offset + length) lies within `size` bytes (no wrap-around).
inline bool InRange(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

// The bytes of an array of `shape` with elements of `itemsize`, or false if a dimension
// is negative or the product overflows.
inline bool ArrayBytes(std::span<const int64_t> shape, uint64_t itemsize, uint64_t* bytes) {
  uint64_t n = itemsize;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  *bytes = n;
  return true;
}

// What a leaf of another format's item points into besides the chunk: scalars widened to
// the 8 bytes chute's leaves hold (bool, numbers parsed from text). Reserve before use:
// leaves keep pointers into `scalars`.
struct ItemMemory {
  std::shared_ptr<const void> bytes;
  std::vector<int64_t> scalars;
  std::vector<std::string> texts;  // reserved before use: leaves point into them
};

}  // namespace chute
