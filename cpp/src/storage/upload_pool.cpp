#include "storage/upload_pool.h"

#include <pthread.h>

#include <new>

namespace chute::storage {

S3UploadPool& S3UploadPool::Get() {
  static S3UploadPool* pool = new S3UploadPool();  // never destroyed: see the header
  return *pool;
}

S3UploadPool::S3UploadPool() { pthread_atfork(nullptr, nullptr, &S3UploadPool::ResetInChild); }

void S3UploadPool::ResetInChild() {
  S3UploadPool& pool = Get();
  // The parent's lock may have been held by one of its threads at fork().
  new (&pool.mu_) std::mutex();
  new (&pool.freed_) std::condition_variable();
  pool.allocated_ = pool.writers_ = 0;
}

S3UploadPool::Writer::Writer() {
  S3UploadPool& pool = Get();
  std::lock_guard lock(pool.mu_);
  ++pool.writers_;
}

S3UploadPool::Writer::~Writer() {
  S3UploadPool& pool = Get();
  {
    std::lock_guard lock(pool.mu_);
    --pool.writers_;
  }
  pool.freed_.notify_all();  // the others' budget shrank; wake them to re-check
}

bool S3UploadPool::WaitForRoom(int64_t budget, std::chrono::seconds stall) {
  std::unique_lock lock(mu_);
  while (allocated_ > budget + kPartAllowance * writers_) {
    uint64_t seen = frees_;
    if (!freed_.wait_for(lock, stall, [&] { return frees_ != seen; })) return false;
  }
  return true;
}

arrow::Status S3UploadPool::Allocate(int64_t size, int64_t alignment, uint8_t** out) {
  ARROW_RETURN_NOT_OK(base_->Allocate(size, alignment, out));
  std::lock_guard lock(mu_);
  allocated_ += size;
  total_allocated_ += size;
  ++allocations_;
  return arrow::Status::OK();
}

arrow::Status S3UploadPool::Reallocate(int64_t old_size, int64_t new_size, int64_t alignment, uint8_t** ptr) {
  ARROW_RETURN_NOT_OK(base_->Reallocate(old_size, new_size, alignment, ptr));
  Add(new_size - old_size);
  return arrow::Status::OK();
}

void S3UploadPool::Free(uint8_t* buffer, int64_t size, int64_t alignment) {
  base_->Free(buffer, size, alignment);
  Add(-size);
}

int64_t S3UploadPool::bytes_allocated() const {
  std::lock_guard lock(mu_);
  return allocated_;
}

int64_t S3UploadPool::total_bytes_allocated() const {
  std::lock_guard lock(mu_);
  return total_allocated_;
}

int64_t S3UploadPool::num_allocations() const {
  std::lock_guard lock(mu_);
  return allocations_;
}

void S3UploadPool::Add(int64_t delta) {
  {
    std::lock_guard lock(mu_);
    allocated_ += delta;
    if (delta > 0) total_allocated_ += delta;
    if (delta < 0) ++frees_;
  }
  if (delta < 0) freed_.notify_all();
}

}  // namespace chute::storage
