#include "util/checksum.h"

#include <cstdio>

#define XXH_INLINE_ALL
#include <arrow/vendored/xxhash.h>

namespace chute {

uint64_t Checksum(const void* data, size_t size) { return XXH3_64bits(data, size); }

struct ChecksumStream::State {
  XXH3_state_t xxh;
};

ChecksumStream::ChecksumStream() : state_(std::make_unique<State>()) { Reset(); }

void ChecksumStream::Reset() { XXH3_64bits_reset(&state_->xxh); }
ChecksumStream::~ChecksumStream() = default;

void ChecksumStream::Update(const void* data, size_t size) {
  XXH3_64bits_update(&state_->xxh, data, size);
}

uint64_t ChecksumStream::Digest() const { return XXH3_64bits_digest(&state_->xxh); }

std::string ChecksumToHex(uint64_t checksum) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(checksum));
  return buf;
}

bool ChecksumFromHex(const std::string& hex, uint64_t* checksum) {
  if (hex.size() != 16) return false;
  uint64_t v = 0;
  for (char c : hex) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else return false;
  }
  *checksum = v;
  return true;
}

Status WholeFileMismatch(const std::string& url, uint64_t actual, uint64_t expected) {
  return Status::Corrupt(url + ": checksum mismatch (xxh3_64 " + ChecksumToHex(actual) + ", index.json says " +
                         ChecksumToHex(expected) + ")" + kRewriteHint);
}

}  // namespace chute
