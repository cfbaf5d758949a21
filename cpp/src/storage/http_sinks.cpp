// Where response bodies go (http_client.h): a caller's memory, a cache file, a string.
#include <algorithm>
#include <memory>

#include "storage/http_client.h"
#include "util/posix_file.h"

namespace chute::storage {

namespace {

class RangeSink : public BodySink {
 public:
  RangeSink(uint64_t offset, uint64_t length) : offset_(offset), length_(length) {}
  arrow::Result<uint64_t> Start(uint64_t available) override {
    if (available < length_)
      return arrow::Status::Invalid("truncated: ", offset_ + available, " bytes, needed ", offset_ + length_);
    return length_;
  }

 protected:
  uint64_t offset_, length_;
};

class MemoryRangeSink final : public RangeSink {
 public:
  MemoryRangeSink(uint64_t offset, uint64_t length, std::byte* out) : RangeSink(offset, length), out_(out) {}
  std::byte* Window(uint64_t done, size_t* capacity) override {
    *capacity = static_cast<size_t>(length_ - done);
    return out_ + done;
  }
  arrow::Status Filled(uint64_t, size_t) override { return arrow::Status::OK(); }

 private:
  std::byte* out_;
};

class FileRangeSink final : public RangeSink {
 public:
  FileRangeSink(uint64_t offset, uint64_t length, int fd, uint64_t file_offset)
      : RangeSink(offset, length), fd_(fd), file_offset_(file_offset) {}
  std::byte* Window(uint64_t done, size_t* capacity) override {
    *capacity = static_cast<size_t>(std::min<uint64_t>(kBuffer - fill_, length_ - done));
    return Buffer() + fill_;
  }
  arrow::Status Filled(uint64_t done, size_t n) override {
    fill_ += n;
    if (fill_ < kBuffer && done + n < length_) return arrow::Status::OK();
    if (!WriteAll(fd_, Buffer(), fill_, file_offset_ + done + n - fill_))
      // Not retried: a full or failing disk does not get better in a second.
      return arrow::Status::Invalid(ErrnoMessage("writing the downloaded bytes to the cache file"));
    fill_ = 0;
    return arrow::Status::OK();
  }

 private:
  static constexpr size_t kBuffer = 256 << 10;
  static std::byte* Buffer() {
    thread_local std::unique_ptr<std::byte[]> buffer(new std::byte[kBuffer]);
    return buffer.get();
  }
  int fd_;
  uint64_t file_offset_;
  size_t fill_ = 0;
};

class StringBodySink final : public BodySink {
 public:
  StringBodySink(std::string* out, uint64_t limit) : out_(out), limit_(limit) {}
  arrow::Result<uint64_t> Start(uint64_t available) override {
    out_->resize(static_cast<size_t>(std::min(available, limit_)));
    return out_->size();
  }
  std::byte* Window(uint64_t done, size_t* capacity) override {
    *capacity = out_->size() - done;
    return reinterpret_cast<std::byte*>(out_->data()) + done;
  }
  arrow::Status Filled(uint64_t, size_t) override { return arrow::Status::OK(); }

 private:
  std::string* out_;
  uint64_t limit_;
};

}  // namespace

std::unique_ptr<BodySink> MemorySink(uint64_t offset, uint64_t length, std::byte* out) {
  return std::make_unique<MemoryRangeSink>(offset, length, out);
}
std::unique_ptr<BodySink> FileSink(uint64_t offset, uint64_t length, int fd, uint64_t file_offset) {
  return std::make_unique<FileRangeSink>(offset, length, fd, file_offset);
}
std::unique_ptr<BodySink> StringSink(std::string* out, uint64_t limit) {
  return std::make_unique<StringBodySink>(out, limit);
}

}  // namespace chute::storage
