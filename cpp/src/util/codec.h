// Block compression through Arrow's codecs (zstd) from the pyarrow wheel's libarrow.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chute/status.h"

namespace chute {

enum class CodecId : uint32_t { kNone = 0, kZstd = 1 };

// A parsed compression spec: "" -> none; "zstd" or "zstd:<level>".
struct CompressionSpec {
  CodecId codec = CodecId::kNone;
  int level = 3;
  static Result<CompressionSpec> Parse(const std::string& spec);
  std::string ToString() const;  // "" or "zstd:<level>"
};

// Thread-safety: Compress and Decompress may be called concurrently.
class Codec {
 public:
  static Result<std::shared_ptr<Codec>> Make(const CompressionSpec& spec);
  // A codec of another format's whole-file compression, for decompressing it: "zstd",
  // "gz" (gzip), "bz2", "br" (raw Brotli) or "snappy" (a raw block).
  static Result<std::shared_ptr<Codec>> ForFamily(const std::string& family);
  virtual ~Codec() = default;
  virtual Status Compress(const std::byte* src, size_t size, std::vector<std::byte>* out) = 0;
  // Decompresses exactly `dst_size` bytes into `dst`.
  virtual Status Decompress(const std::byte* src, size_t size, std::byte* dst,
                            size_t dst_size) = 0;
};

}  // namespace chute
