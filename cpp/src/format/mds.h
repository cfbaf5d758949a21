// Mosaic Streaming's MDS datasets read in place: the parts shared by the source
// (mds_source.cpp: index.json, columns, schema) and the shard reader (mds_chunk.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chute/source.h"
#include "util/json.h"

namespace chute::mds {

// kBytes / kStr columns may be decoded further in Python (ColumnSpec::decoded).
enum class Column : uint8_t { kBytes, kStr, kInt, kScalar, kStrInt, kStrFloat, kJson, kArray };

struct NumpyType {
  const char* name;
  uint8_t code;  // MDS's dtype code in dynamic ndarrays
  DType dtype;
  const char* descr;  // numpy dtype.str
};
inline constexpr NumpyType kNumpyTypes[] = {
    {"uint8", 8, {DType::kUInt, 8}, "|u1"},      {"int8", 9, {DType::kInt, 8}, "|i1"},
    {"uint16", 16, {DType::kUInt, 16}, "<u2"},   {"int16", 17, {DType::kInt, 16}, "<i2"},
    {"float16", 18, {DType::kFloat, 16}, "<f2"}, {"uint32", 32, {DType::kUInt, 32}, "<u4"},
    {"int32", 33, {DType::kInt, 32}, "<i4"},     {"float32", 34, {DType::kFloat, 32}, "<f4"},
    {"uint64", 64, {DType::kUInt, 64}, "<u8"},   {"int64", 65, {DType::kInt, 64}, "<i8"},
    {"float64", 66, {DType::kFloat, 64}, "<f8"}};

inline const NumpyType* NumpyTypeNamed(const std::string& name) {
  for (const NumpyType& t : kNumpyTypes)
    if (name == t.name) return &t;
  return nullptr;
}

struct ColumnSpec {
  std::string name, encoding;
  Column kind = Column::kBytes;
  int64_t fixed_size = -1;        // column_sizes[i], or -1 (a u32 size in each sample)
  const NumpyType* type = nullptr;  // scalars; ndarray with a dtype in its spec
  std::vector<int64_t> shape;     // ndarray with a shape in its spec
  json::Object decoded{{"type", "bytes"}};  // kBytes / kStr: the schema field's type (docs/format.md)
};


using Columns = std::shared_ptr<const std::vector<ColumnSpec>>;

// Opens a shard over `bytes` (or, for a compressed shard, over `inflated`, its whole
// decompressed bytes); samples are read by ranges of the shard (mds_chunk.cpp).
std::shared_ptr<ChunkReader> OpenShard(std::shared_ptr<ChunkBytes> bytes,
                                       std::shared_ptr<const std::vector<std::byte>> inflated, std::string url,
                                       Columns columns);

}  // namespace chute::mds
