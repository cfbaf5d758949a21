// litdata datasets (Lightning's `optimize`, 0.2.x) read in place: the parts shared by the
// source (litdata_source.cpp: index.json, schema, chunk list) and the chunk readers
// (litdata_chunk.cpp: the classic item container, litdata's three zstd modes, Arrow IPC
// footers). Byte layouts: docs/migrating.md points to the reference.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chute/source.h"

namespace chute::litdata {

// How one leaf of a pytree item is stored (a data_format entry).
enum class Serializer : uint8_t {
  kInt,           // i64
  kFloat,         // f64
  kBool,          // 1 byte
  kStr,           // UTF-8 (str, text)
  kBytes,         // raw (bytes and encoded media files: image:, video:, audio:, file:, ...)
  kJpeg,          // a JPEG file -> PIL image
  kPil,           // u32 width, u32 height, u32 mode length, mode, raw pixels -> PIL image
  kJson,          // litdata's compact binary JSON -> the value (decoded in Python)
  kNumpy1d,       // no_header_numpy:<dtype index>
  kNumpy,         // u32 dtype index, u32 ndim, u32 dims, values
  kTensor1d,      // no_header_tensor:<dtype index>
  kTensor,        // dtype, ndim, dims as u32 big-endian (0.2.76) or little-endian (older), values
};

struct Leaf {
  Serializer serializer;
  DType dtype;  // kNumpy1d / kTensor1d: from the data_format suffix
};

// zstd by compression_level: whole files ("chunk": their names hold ".<compression>."),
// frames of compression_batch_size items ("batch"), or each item ("sample").
enum class Compression : uint8_t { kNone, kWholeFile, kBatch, kSample };

struct Config {
  std::vector<Leaf> leaves;
  std::vector<std::string> names;  // a flat dict sample: its keys, in leaf order (else empty)
  bool tokens = false;  // TokensLoader: an item is one raw 1-D array (leaves[0]), no size header
  Compression compression = Compression::kNone;
  uint64_t batch_size = 256;  // compression_batch_size
};

// Opens chunk bytes of a litdata dataset (litdata_chunk.cpp). `raw_size`: index.json's
// chunk_bytes (the decompressed size of a whole-file zstd chunk, `whole_file`).
Result<std::shared_ptr<ChunkReader>> OpenChunk(std::shared_ptr<const Config> config, std::shared_ptr<ChunkBytes> bytes,
                                               const std::string& url, uint64_t num_items, uint64_t raw_size,
                                               bool whole_file);

// The dtypes of litdata's numpy and torch index tables; false if `index` is not a plain
// numeric one (object, bytes, str, void).
bool NumpyDType(uint32_t index, DType* dtype, std::string* descr);
bool TorchDType(uint32_t index, DType* dtype, std::string* name);

}  // namespace chute::litdata
