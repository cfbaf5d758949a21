// The memory of upload parts that have not been sent yet, counted, so that a writer can
// wait for room instead of draining every upload in flight.
//
// Arrow's S3 output stream copies each part into a buffer from its IOContext's memory
// pool and frees it when the part's upload ends (sent or failed). S3 file systems are
// made with this pool (s3.cpp): a writer that has handed Arrow a part waits until the
// process's unsent parts fit under its budget, while the parts in flight keep going.
// (Arrow's Flush() would wait for all of them: a pipeline bubble of one part's round trip
// every time.)
//
// Thread-safety: all of it. Lifetime: one per process, never destroyed (Arrow's clients
// may free buffers during interpreter shutdown).
#pragma once

#include <arrow/memory_pool.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace chute::storage {

class UploadPool final : public arrow::MemoryPool {
 public:
  static UploadPool& Get();

  // Waits until at most `limit` bytes are allocated. False if no buffer was freed for
  // `stall` (uploads that stopped making progress; their own timeouts normally end them first).
  bool WaitBelow(int64_t limit, std::chrono::seconds stall);

  arrow::Status Allocate(int64_t size, int64_t alignment, uint8_t** out) override;
  arrow::Status Reallocate(int64_t old_size, int64_t new_size, int64_t alignment, uint8_t** ptr) override;
  void Free(uint8_t* buffer, int64_t size, int64_t alignment) override;
  int64_t bytes_allocated() const override;
  int64_t total_bytes_allocated() const override { return base_->total_bytes_allocated(); }
  int64_t num_allocations() const override { return base_->num_allocations(); }
  std::string backend_name() const override { return base_->backend_name(); }

 private:
  UploadPool() = default;
  void Add(int64_t delta);

  arrow::MemoryPool* base_ = arrow::default_memory_pool();
  mutable std::mutex mu_;
  std::condition_variable freed_;
  int64_t allocated_ = 0;
};

}  // namespace chute::storage
