// Byte flags in memory shared with forked children: DataLoader workers inherit a local
// Dataset, and what one of them has verified is not verified again by the others or by
// the next epoch's workers.
//
// Thread-safety: the flags are atomics, usable from any thread of any process sharing them.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "chute/status.h"
#include "util/posix_file.h"

namespace chute {

class SharedFlags {
 public:
  static Result<std::unique_ptr<SharedFlags>> Make(size_t n) {
    size_t bytes = std::max<size_t>(n, 1);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return Status::IOError(ErrnoMessage("mmap of " + std::to_string(bytes) + " shared bytes"));
    return std::unique_ptr<SharedFlags>(new SharedFlags(static_cast<std::atomic<uint8_t>*>(p), bytes));
  }
  ~SharedFlags() { ::munmap(flags_, bytes_); }
  SharedFlags(const SharedFlags&) = delete;
  SharedFlags& operator=(const SharedFlags&) = delete;

  // Lock-free byte atomics are address-free: they work across processes.
  static_assert(std::atomic<uint8_t>::is_always_lock_free);
  std::atomic<uint8_t>& operator[](size_t i) { return flags_[i]; }

 private:
  SharedFlags(std::atomic<uint8_t>* flags, size_t bytes) : flags_(flags), bytes_(bytes) {}
  std::atomic<uint8_t>* flags_;
  size_t bytes_;
};

}  // namespace chute
