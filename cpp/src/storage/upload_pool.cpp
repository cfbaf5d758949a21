#include "storage/upload_pool.h"

namespace chute::storage {

UploadPool& UploadPool::Get() {
  static UploadPool* pool = new UploadPool();  // never destroyed: see the header
  return *pool;
}

bool UploadPool::WaitBelow(int64_t limit, std::chrono::seconds stall) {
  std::unique_lock lock(mu_);
  while (allocated_ > limit) {
    int64_t before = allocated_;
    if (!freed_.wait_for(lock, stall, [&] { return allocated_ < before; })) return false;
  }
  return true;
}

arrow::Status UploadPool::Allocate(int64_t size, int64_t alignment, uint8_t** out) {
  ARROW_RETURN_NOT_OK(base_->Allocate(size, alignment, out));
  Add(size);
  return arrow::Status::OK();
}

arrow::Status UploadPool::Reallocate(int64_t old_size, int64_t new_size, int64_t alignment, uint8_t** ptr) {
  ARROW_RETURN_NOT_OK(base_->Reallocate(old_size, new_size, alignment, ptr));
  Add(new_size - old_size);
  return arrow::Status::OK();
}

void UploadPool::Free(uint8_t* buffer, int64_t size, int64_t alignment) {
  base_->Free(buffer, size, alignment);
  Add(-size);
}

int64_t UploadPool::bytes_allocated() const {
  std::lock_guard lock(mu_);
  return allocated_;
}

void UploadPool::Add(int64_t delta) {
  {
    std::lock_guard lock(mu_);
    allocated_ += delta;
  }
  if (delta < 0) freed_.notify_all();
}

}  // namespace chute::storage
