// Inflating a gzip stream (concatenated members too) piece by piece with Arrow's gzip
// decompressor: compressed tar shards (WebDataset .tar.gz), read forward with bounded
// memory, or whole.
//
// Thread-safety: one thread at a time.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "chute/status.h"

namespace arrow::util {
class Codec;
class Decompressor;
}  // namespace arrow::util

namespace chute {

class Inflater {
 public:
  // `input`: the next piece of the compressed stream, which stays valid until the next
  // call; empty at its end. `url` names the stream in errors.
  using Input = std::function<Result<std::span<const std::byte>>()>;
  Inflater(Input input, std::string url);
  ~Inflater();

  // Appends up to `want` more inflated bytes to *out; fewer only at the end of the stream.
  Status Inflate(std::vector<std::byte>* out, size_t want);

 private:
  Input input_;
  std::string url_;
  std::shared_ptr<arrow::util::Codec> codec_;
  std::shared_ptr<arrow::util::Decompressor> inflater_;
  std::span<const std::byte> piece_;  // compressed bytes not inflated yet
  bool ended_ = false;
};

}  // namespace chute
