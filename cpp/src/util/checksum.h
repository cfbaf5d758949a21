// Chunk checksums: XXH3-64 (from the xxHash header that Arrow ships), streamed so that
// a writer can hash while it writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "chute/status.h"

namespace chute {

uint64_t Checksum(const void* data, size_t size);

class ChecksumStream {
 public:
  ChecksumStream();
  ~ChecksumStream();
  void Update(const void* data, size_t size);
  void Reset();  // back to the checksum of nothing
  uint64_t Digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string ChecksumToHex(uint64_t checksum);
// Returns false if `hex` is not 16 hex digits.
bool ChecksumFromHex(const std::string& hex, uint64_t* checksum);

// The advice ending every Corrupt error about a file's content.
inline constexpr const char* kRewriteHint =
    "; the file is damaged: copy it again from its source or rewrite the dataset";
// A whole file (`url`) whose checksum is not the one its index gives.
Status WholeFileMismatch(const std::string& url, uint64_t actual, uint64_t expected);

}  // namespace chute
