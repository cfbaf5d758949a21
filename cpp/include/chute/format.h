// chute's data format, version 1 (specified in docs/format.md): the value types a
// sample's leaves can have, as seen by writers and readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chute/export.h"

namespace chute {

inline constexpr uint32_t kFormatVersion = 2;
// Array payloads start at multiples of this (in the file, and in decompressed blocks).
inline constexpr size_t kArrayAlignment = 64;

// What a leaf of a sample is. Scalars (Bool, Int, Float) are 8-byte payloads.
enum class LeafKind : uint8_t {
  kNull = 0,
  kBool = 1,
  kInt = 2,     // int64
  kFloat = 3,   // float64
  kString = 4,  // UTF-8
  kBytes = 5,
  kArray = 6,   // n-d, C order, dtype + shape
};

// Array element type, with DLPack's type codes so it maps 1:1 onto DLPack/nb::ndarray.
struct DType {
  enum Code : uint8_t { kInt = 0, kUInt = 1, kFloat = 2, kBfloat = 4, kComplex = 5, kBool = 6 };
  uint8_t code = kUInt;
  uint8_t bits = 8;
  size_t itemsize() const { return bits / 8; }
  bool operator==(const DType&) const = default;
};

// A leaf of an item read from a chunk. `data` points into memory kept alive by the
// owning Item's `owner` (the chunk's mapping or a decompressed block).
struct CHUTE_API LeafView {
  LeafKind kind = LeafKind::kNull;
  DType dtype;                  // kArray only
  std::vector<int64_t> shape;   // kArray only
  const std::byte* data = nullptr;
  size_t size = 0;              // payload bytes

  bool as_bool() const;
  int64_t as_int() const;
  double as_float() const;
  std::string_view as_string() const {
    return {reinterpret_cast<const char*>(data), size};
  }
};

// One sample: its leaves in schema order and the owner of the memory they point to.
// Holding an Item (or any copy of `owner`) keeps its bytes valid; it is cheap to move.
struct Item {
  std::vector<LeafView> leaves;
  std::shared_ptr<const void> owner;
  // When the item is read in place from a file mapping (an uncompressed local or cached
  // chunk): that mapping, and the item's bytes in it; else both empty. See ReleaseMapping().
  std::span<const std::byte> mapping, mapped_bytes;
  // Raw objects read with allow_missing: the item's objects are missing, it has no leaves
  // and readers skip it.
  bool missing = false;
};

// Unmaps the pages of `item`'s bytes (and the others within the 2 MiB the kernel may map
// around a page fault) from this process; they stay in the page cache and are mapped
// again if read. For a reader that has copied the leaves out (into Python bytes, say):
// without it, every page a process has read stays resident in it, so that each worker
// of a loader grows towards the size of the dataset. Leaves pointing into the mapping
// stay valid. No-op when `item.mapping` is empty.
CHUTE_API void ReleaseMapping(const Item& item);

// A leaf handed to a writer; `data` must stay valid for the duration of the call.
// Scalars: `data` points to one int64 (kBool, kInt) or one double (kFloat).
struct LeafInput {
  LeafKind kind = LeafKind::kNull;
  DType dtype;
  std::span<const int64_t> shape;
  const void* data = nullptr;
  size_t size = 0;
};

// One entry of the chunk list in index.json.
struct ChunkInfo {
  std::string file;     // relative to the dataset directory
  uint64_t num_items = 0;
  uint64_t num_bytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the whole file
  // Tokens in the chunk when every item is one 1-D integer array (a token dataset),
  // else -1.
  int64_t num_tokens = -1;
  bool has_checksum = true;  // false: the format records none (other libraries' datasets)
};

}  // namespace chute
