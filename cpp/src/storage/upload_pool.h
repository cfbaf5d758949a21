// Memory that Arrow's S3 clients hold for uploads, counted, so that a streaming writer
// can wait for room instead of draining every upload in flight.
//
// Arrow's S3 output stream copies each part into a buffer from its IOContext's memory
// pool and frees it when the part's upload ends (sent or failed); each open stream also
// holds one buffer for the part it is filling. S3 file systems are made with this pool
// (s3.cpp). A writer waits until the process's S3 buffers fit in a budget that grows by
// one part per open writer (so that writers' partly filled parts never exhaust it), while
// the parts in flight keep going. (Arrow's Flush() would wait for all of them: a pipeline
// bubble of one part's round trip every time.) Other S3 buffers (whole-object reads and
// writes) are counted too: they are short-lived.
//
// Thread-safety: all of it. Lifetime: one per process, never destroyed (Arrow's clients
// may free buffers during interpreter shutdown). Fork: the child starts with empty counts
// and a fresh lock (the parent's uploads are not the child's).
#pragma once

#include <arrow/memory_pool.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace chute::storage {

class S3UploadPool final : public arrow::MemoryPool {
 public:
  static S3UploadPool& Get();

  // A streaming writer, counted for its lifetime (it adds kPartAllowance to the budget).
  class Writer {
   public:
    Writer();
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
  };
  static constexpr int64_t kPartAllowance = int64_t{16} << 20;  // >= Arrow's part buffer (10 MiB)

  // Waits until the pool holds at most `budget` + kPartAllowance per open writer. False if
  // nothing was freed for `stall` (uploads that stopped; their own timeouts end them first).
  bool WaitForRoom(int64_t budget, std::chrono::seconds stall);

  arrow::Status Allocate(int64_t size, int64_t alignment, uint8_t** out) override;
  arrow::Status Reallocate(int64_t old_size, int64_t new_size, int64_t alignment, uint8_t** ptr) override;
  void Free(uint8_t* buffer, int64_t size, int64_t alignment) override;
  int64_t bytes_allocated() const override;
  int64_t total_bytes_allocated() const override;
  int64_t num_allocations() const override;
  std::string backend_name() const override { return base_->backend_name(); }

 private:
  S3UploadPool();
  void Add(int64_t delta);
  static void ResetInChild();

  arrow::MemoryPool* base_ = arrow::default_memory_pool();
  mutable std::mutex mu_;
  std::condition_variable freed_;
  int64_t allocated_ = 0, total_allocated_ = 0, allocations_ = 0;
  uint64_t frees_ = 0;  // only grows: a waiter sees progress even if others allocate at once
  int writers_ = 0;
};

}  // namespace chute::storage
