#include "storage/stream_writer.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "storage/upload_pool.h"

namespace chute::storage {

namespace {

class StreamWriter final : public ObjectWriter {
 public:
  static constexpr uint64_t kPieceBytes = uint64_t{16} << 20;
  static constexpr int64_t kBudgetBytes = int64_t{128} << 20;
  static constexpr uint64_t kFlushBytes = uint64_t{1} << 30;
  // Writes `target` (`path`, or a temporary name copied to `path` on Close()).
  StreamWriter(std::shared_ptr<Storage> storage, std::string path, std::string target,
               std::shared_ptr<arrow::io::OutputStream> stream, bool count_uploads, CopyIntoPlace copy)
      : storage_(std::move(storage)), path_(std::move(path)), target_(std::move(target)), stream_(std::move(stream)),
        copy_(std::move(copy)) {
    if (count_uploads) counted_.emplace();
  }
  ~StreamWriter() override { (void)Abort(); }

  Status Write(std::span<const std::byte> data) override {
    if (!stream_) return Status::Invalid(storage_->Url(path_) + ": written after it was closed or failed");
    while (!data.empty()) {  // in pieces, so that even one huge write waits for room
      size_t n = static_cast<size_t>(std::min<uint64_t>(data.size(), kPieceBytes));
      arrow::Status st = stream_->Write(data.data(), static_cast<int64_t>(n));
      if (st.ok() && (unflushed_ += n) >= kFlushBytes) {
        st = stream_->Flush();
        unflushed_ = 0;
      }
      if (st.ok() && counted_ &&
          !S3UploadPool::Get().WaitForRoom(kBudgetBytes, std::chrono::seconds(kStallSeconds)))
        st = arrow::Status::IOError("uploads made no progress for ", kStallSeconds, " s");
      if (!st.ok()) {
        (void)Abort();  // nothing partial is left
        return Failed("write", st);
      }
      data = data.subspan(n);
    }
    return Status::OK();
  }
  Status Close() override {
    if (!stream_) return Status::Invalid(storage_->Url(path_) + ": closed twice, or after a failure");
    std::shared_ptr<arrow::io::OutputStream> stream = std::exchange(stream_, nullptr);
    if (arrow::Status st = stream->Close(); !st.ok()) {
      (void)stream->Abort();  // a multipart upload left open would keep its parts
      RemoveTarget();
      return Failed("write", st);
    }
    if (target_ == path_) return Status::OK();
    Status copied = copy_(target_, path_);  // then the temporary is removed, once
    RemoveTarget();
    return copied;
  }
  Status Abort() override {
    if (!stream_) return Status::OK();
    arrow::Status st = std::exchange(stream_, nullptr)->Abort();
    RemoveTarget();
    return st.ok() ? Status::OK() : Failed("abort the upload of", st);
  }

 private:
  // Streams are not retried (a part cannot be sent again by this stream): the caller
  // saves again.
  Status Failed(const char* what, const arrow::Status& st) const {
    return Status::IOError(storage_->Url(path_) + ": " + what + " failed: " + st.message() +
                           " (nothing was left behind; save again)");
  }
  // The temporary object, if any (never `path`: an object there before stays).
  void RemoveTarget() {
    if (target_ != path_) (void)storage_->Delete(target_);
  }

  std::shared_ptr<Storage> storage_;
  std::string path_, target_;
  std::shared_ptr<arrow::io::OutputStream> stream_;
  CopyIntoPlace copy_;
  uint64_t unflushed_ = 0;
  std::optional<S3UploadPool::Writer> counted_;  // S3: its part buffer widens the budget
  static constexpr int kStallSeconds = 600;
};

}  // namespace

std::unique_ptr<ObjectWriter> MakeStreamWriter(std::shared_ptr<Storage> storage, std::string path, std::string target,
                                               std::shared_ptr<arrow::io::OutputStream> stream, bool count_uploads,
                                               CopyIntoPlace copy) {
  return std::make_unique<StreamWriter>(std::move(storage), std::move(path), std::move(target), std::move(stream),
                                        count_uploads, std::move(copy));
}

}  // namespace chute::storage
