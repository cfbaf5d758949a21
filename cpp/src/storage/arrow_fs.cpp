#include "storage/arrow_fs.h"

#include "chute/dataset.h"

#include <arrow/buffer.h>
#include <arrow/filesystem/s3fs.h>
#include <arrow/io/interfaces.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "storage/parallel_list.h"
#include "storage/stream_writer.h"
#include "util/process_owner.h"
#include "chute/trace.h"

namespace chute::storage {

// ListObjectsV2 requests in flight when listing a prefix in parallel.
constexpr size_t kListThreads = 32;

namespace {

enum class Failure { kTransient, kNotFound, kDenied, kPermanent };

bool Contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

Failure Classify(const arrow::Status& st) {
  // Keywords only: bare status codes would match bucket names, ports and byte counts.
  const std::string m = st.ToString();
  if (Contains(m, "NETWORK_CONNECTION") || Contains(m, "curlCode") || Contains(m, "UNAVAILABLE"))
    return Failure::kTransient;
  if (Contains(m, "NO_SUCH_BUCKET") || Contains(m, "NoSuchBucket") || Contains(m, "NO_SUCH_KEY") ||
      Contains(m, "NoSuchKey") || Contains(m, "RESOURCE_NOT_FOUND") || Contains(m, "NOT_FOUND") ||
      Contains(m, "NotFound") || Contains(m, "not found") || Contains(m, "does not exist") || st.IsKeyError())
    return Failure::kNotFound;
  if (Contains(m, "ACCESS_DENIED") || Contains(m, "AccessDenied") || Contains(m, "InvalidAccessKeyId") ||
      Contains(m, "SignatureDoesNotMatch") || Contains(m, "PERMISSION_DENIED") || Contains(m, "UNAUTHENTICATED"))
    return Failure::kDenied;
  if (st.IsInvalid() || st.IsNotImplemented() || st.IsTypeError()) return Failure::kPermanent;
  return Failure::kTransient;  // connection refused/reset, timeouts, 5xx, throttling
}

class ArrowStorage;

// Requests under way (on any thread), so that ShutdownStorage() finalizes S3 only after
// the last one: background fetches may still be running at interpreter exit.
struct InFlight {
  static std::mutex& Mutex() {
    static auto* mu = new std::mutex();  // never destroyed: used at exit
    return *mu;
  }
  static std::condition_variable& Idle() {
    static auto* cv = new std::condition_variable();
    return *cv;
  }
  static int& Count() {
    static int count = 0;
    return count;
  }
  InFlight() {
    std::lock_guard lock(Mutex());
    ++Count();
  }
  ~InFlight() {
    std::lock_guard lock(Mutex());
    if (--Count() == 0) Idle().notify_all();
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

// Every live ArrowStorage, so that ShutdownStorage() can drop their clients.
std::mutex& LiveMutex() {
  static std::mutex mu;
  return mu;
}
std::vector<std::weak_ptr<ArrowStorage>>& Live() {
  static auto* live = new std::vector<std::weak_ptr<ArrowStorage>>();  // never destroyed: used at exit
  return *live;
}

// One read from remote storage: a "fetch" span, and its bytes counted once it succeeded.
struct Fetch {
  explicit Fetch(uint64_t length) : length(length) {}
  Status operator()(Status st) const {
    if (st.ok()) trace::counters().bytes_fetched.fetch_add(length, std::memory_order_relaxed);
    return st;
  }
  uint64_t length;
  trace::Span span{"fetch"};
};

class ArrowStorage final : public Storage, public std::enable_shared_from_this<ArrowStorage> {
 public:
  ArrowStorage(std::shared_ptr<arrow::fs::FileSystem> fs, std::string scheme, CommonOptions options,
               ErrorHints hints, std::shared_ptr<ObjectReader> reader)
      : fs_(std::move(fs)), read_only_(!fs_), scheme_(std::move(scheme)), options_(options),
        hints_(std::move(hints)), reader_(std::move(reader)) {}

  ~ArrowStorage() override {
    // A client made before fork() belongs to the parent: never tear it down here.
    owner_.LeakIfInherited(fs_);
  }

  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    owner_.LeakIfInherited(fs_);
    fs_.reset();
  }

  bool is_local() const override { return false; }
  std::string Url(const std::string& path) const override { return scheme_ + "://" + path; }
  double timeout() const override { return options_.timeout; }

  Result<uint64_t> Size(const std::string& path) override {
    uint64_t size = 0;
    if (read_only_) {
      CHUTE_RETURN_NOT_OK(Retry(path, "stat", [&](arrow::fs::FileSystem*) { return reader_->Size(path, &size); }));
      return size;
    }
    CHUTE_RETURN_NOT_OK(Retry(path, "stat", [&](arrow::fs::FileSystem* fs) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto info, fs->GetFileInfo(path));
      if (info.type() == arrow::fs::FileType::NotFound) return arrow::Status::KeyError("object not found");
      size = static_cast<uint64_t>(info.size());
      return arrow::Status::OK();
    }));
    return size;
  }

  Result<std::vector<ObjectInfo>> List(const std::string& dir) override { return Select(dir, false); }
  // With chute's own S3 reader, in parallel (parallel_list.h); else Arrow's one loop.
  Result<std::vector<ObjectInfo>> ListTree(const std::string& dir) override {
    if (!reader_ || read_only_) return Select(dir, true);
    const size_t slash = dir.find('/');
    const std::string bucket = dir.substr(0, slash);
    const std::string prefix = slash == std::string::npos ? "" : dir.substr(slash + 1) + "/";
    auto page = [&](const std::string& after, std::vector<ObjectInfo>* out, bool* truncated) {
      return Retry(dir, "list", [&](arrow::fs::FileSystem*) {
        std::vector<ObjectInfo> attempt;  // a retried page starts again
        ARROW_RETURN_NOT_OK(reader_->ListPage(bucket, prefix, after, &attempt, truncated));
        *out = std::move(attempt);
        return arrow::Status::OK();
      });
    };
    Result<std::vector<ObjectInfo>> listed = ListInParallel(page, prefix, bucket.size() + 1, kListThreads);
    if (listed.status().code() == StatusCode::kUnsupported) return Select(dir, true);  // keys out of order
    return listed;
  }

  Result<std::vector<ObjectInfo>> Select(const std::string& dir, bool recursive) {
    if (read_only_) return ReadOnly(dir, "cannot be listed (give an index file of URLs)");
    std::vector<ObjectInfo> out;
    CHUTE_RETURN_NOT_OK(Retry(dir, "list", [&](arrow::fs::FileSystem* fs) -> arrow::Status {
      arrow::fs::FileSelector sel;
      sel.base_dir = dir;
      sel.recursive = recursive;
      sel.allow_not_found = true;
      ARROW_ASSIGN_OR_RAISE(auto infos, fs->GetFileInfo(sel));
      out.clear();
      for (auto& info : infos)
        if (info.IsFile()) out.push_back({info.path(), static_cast<uint64_t>(info.size())});
      return arrow::Status::OK();
    }));
    return out;
  }

  Status ReadRange(const std::string& path, uint64_t offset, uint64_t length, std::byte* out) override {
    Fetch fetch(length);
    if (reader_) {
      return fetch(Retry(path, "read",
                         [&](arrow::fs::FileSystem*) { return reader_->ReadRange(path, offset, length, out); }));
    }
    return fetch(Retry(path, "read", [&](arrow::fs::FileSystem* fs) -> arrow::Status {
      // A known (lower bound of the) size spares the HEAD request: one GET per range.
      arrow::fs::FileInfo info(path, arrow::fs::FileType::File);
      info.set_size(static_cast<int64_t>(offset + length));
      ARROW_ASSIGN_OR_RAISE(auto file, fs->OpenInputFile(info));
      ARROW_ASSIGN_OR_RAISE(int64_t n, file->ReadAt(static_cast<int64_t>(offset), static_cast<int64_t>(length), out));
      if (static_cast<uint64_t>(n) != length)
        return arrow::Status::Invalid("truncated: ", offset + static_cast<uint64_t>(n), " bytes, needed ",
                                      offset + length);
      return arrow::Status::OK();
    }));
  }

  Status ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                         uint64_t file_offset) override {
    if (!reader_) return Storage::ReadRangeToFile(path, offset, length, fd, file_offset);  // through ReadRange
    Fetch fetch(length);
    return fetch(Retry(path, "read", [&](arrow::fs::FileSystem*) {
      return reader_->ReadRangeToFile(path, offset, length, fd, file_offset);
    }));
  }

  Result<std::string> ReadAll(const std::string& path) override {
    trace::Span span("fetch");
    std::string out;
    if (reader_) {
      CHUTE_RETURN_NOT_OK(Retry(path, "read", [&](arrow::fs::FileSystem*) { return reader_->ReadAll(path, &out); }));
      trace::counters().bytes_fetched.fetch_add(out.size(), std::memory_order_relaxed);
      return out;
    }
    CHUTE_RETURN_NOT_OK(Retry(path, "read", [&](arrow::fs::FileSystem* fs) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto file, fs->OpenInputFile(path));
      ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
      ARROW_ASSIGN_OR_RAISE(auto buf, file->ReadAt(0, size));
      out.assign(reinterpret_cast<const char*>(buf->data()), static_cast<size_t>(buf->size()));
      return arrow::Status::OK();
    }));
    trace::counters().bytes_fetched.fetch_add(out.size(), std::memory_order_relaxed);
    return out;
  }

  Result<ObjectPrefix> ReadPrefix(const std::string& path, uint64_t limit) override {
    trace::Span span("fetch");
    ObjectPrefix prefix;
    if (reader_) {
      CHUTE_RETURN_NOT_OK(Retry(path, "read", [&](arrow::fs::FileSystem*) {
        return reader_->ReadPrefix(path, limit, &prefix.bytes, &prefix.size);
      }));
    } else {
      CHUTE_RETURN_NOT_OK(Retry(path, "read", [&](arrow::fs::FileSystem* fs) -> arrow::Status {
        ARROW_ASSIGN_OR_RAISE(auto file, fs->OpenInputFile(path));  // a HEAD: the size
        ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
        ARROW_ASSIGN_OR_RAISE(auto buf, file->ReadAt(0, std::min<int64_t>(size, static_cast<int64_t>(limit))));
        prefix.bytes.assign(reinterpret_cast<const char*>(buf->data()), static_cast<size_t>(buf->size()));
        prefix.size = static_cast<uint64_t>(size);
        return arrow::Status::OK();
      }));
    }
    trace::counters().bytes_fetched.fetch_add(prefix.bytes.size(), std::memory_order_relaxed);
    return prefix;
  }

  Status Write(const std::string& path, std::span<const std::span<const std::byte>> parts, WriteMode) override {
    if (read_only_) return ReadOnly(path, "is read-only");
    return Retry(path, "write", [&](arrow::fs::FileSystem* fs) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(auto stream, fs->OpenOutputStream(path));
      for (auto part : parts) ARROW_RETURN_NOT_OK(stream->Write(part.data(), static_cast<int64_t>(part.size())));
      return stream->Close();
    });
  }

  Result<std::unique_ptr<ObjectWriter>> OpenWriter(const std::string& path) override {
    if (read_only_) return ReadOnly(path, "is read-only");
    // Opening a stream on Azure replaces the blob at once, and its flushes commit what
    // was written: no way here to make the object appear whole or not at all.
    if (scheme_ == "az")
      return Status::Unsupported(Url(path) + ": streaming writes (checkpoints) to Azure are not supported yet");
    // GCS finalizes even an aborted upload: there the object is written under a
    // temporary name and copied into place on Close().
    std::string target = path;
    if (scheme_ == "gs") {
      thread_local std::mt19937_64 rng(std::random_device{}());
      target = path + ".chute-upload-" + std::to_string(rng());
    }
    std::shared_ptr<arrow::io::OutputStream> stream;
    CHUTE_RETURN_NOT_OK(Retry(path, "open for writing", [&](arrow::fs::FileSystem* fs) -> arrow::Status {
      ARROW_ASSIGN_OR_RAISE(stream, fs->OpenOutputStream(target));
      return arrow::Status::OK();
    }));
    auto self = shared_from_this();
    return MakeStreamWriter(self, path, target, std::move(stream), scheme_ == "s3",
                            [self](const std::string& from, const std::string& to) {  // retried: copying again is harmless
                              return self->Retry(to, "copy into place",
                                                 [&](arrow::fs::FileSystem* fs) { return fs->CopyFile(from, to); });
                            });
  }

  Status Delete(const std::string& path) override {
    if (read_only_) return ReadOnly(path, "is read-only");
    return Retry(path, "delete", [&](arrow::fs::FileSystem* fs) { return fs->DeleteFile(path); });
  }

 private:
  std::shared_ptr<arrow::fs::FileSystem> Client(bool* released) {
    std::lock_guard lock(mu_);
    *released = released_;
    return fs_;
  }
  Status ReadOnly(const std::string& path, const char* what) const {
    return Status::Unsupported(Url(path) + ": " + scheme_ + ":// " + what);
  }

  template <typename Op>
  Status Retry(const std::string& path, const char* what, Op&& op) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + std::chrono::duration<double>(options_.timeout);
    thread_local std::mt19937_64 rng(std::random_device{}());
    double backoff = 0.1;
    arrow::Status st;
    int attempt = 0;
    for (;;) {
      {
        InFlight request;  // declared first: counted until the client reference below is gone
        bool released = false;
        auto fs = Client(&released);
        if (released) return Status::IOError(Url(path) + ": storage was shut down (interpreter exit)");
        st = op(fs.get());
      }
      ++attempt;
      if (st.ok()) return Status::OK();
      Failure kind = Classify(st);
      if (kind != Failure::kTransient || attempt >= options_.max_attempts) break;
      // Full jitter: sleep uniformly in [0, backoff], never past the deadline.
      double sleep = std::uniform_real_distribution<double>(0, backoff)(rng);
      auto wake = Clock::now() + std::chrono::duration<double>(sleep);
      if (wake >= deadline) break;
      std::this_thread::sleep_until(wake);
      backoff = std::min(backoff * 2, 5.0);
    }
    return ToStatus(path, what, st, attempt);
  }

  Status ToStatus(const std::string& path, const char* what, const arrow::Status& st, int attempts) const {
    std::string url = Url(path);
    std::string detail = st.message();
    switch (Classify(st)) {
      case Failure::kNotFound: {
        if (read_only_) return Status::NotFound(url + ": not found (" + detail + ")");
        std::string bucket = path.substr(0, path.find('/'));
        return Status::NotFound(url + ": not found (" + detail + "); check the bucket '" + bucket +
                                "' and the path exist" + (hints_.endpoint.empty() ? "" : " at " + hints_.endpoint));
      }
      case Failure::kDenied:
        return Status::IOError(url + ": access denied (" + detail + "); check the credentials: " + hints_.credentials);
      case Failure::kPermanent:
        if (Contains(detail, "truncated")) return Status::Corrupt(url + ": " + detail);
        return Status::IOError(url + ": " + what + " failed: " + detail);
      case Failure::kTransient:
        break;
    }
    return Status::IOError(url + ": " + what + " failed after " + std::to_string(attempts) + " attempt(s) within " +
                           std::to_string(static_cast<int>(options_.timeout)) + " s: " + detail +
                           (hints_.endpoint.empty() ? "" : "; is the endpoint " + hints_.endpoint + " reachable?") +
                           " (storage_options: timeout, max_attempts)");
  }

  std::mutex mu_;
  std::shared_ptr<arrow::fs::FileSystem> fs_;  // null: a read-only store of reader_ (http)
  bool released_ = false;                      // by ShutdownStorage()
  const bool read_only_;
  std::string scheme_;
  CommonOptions options_;
  ErrorHints hints_;
  std::shared_ptr<ObjectReader> reader_;
  ProcessOwner owner_;
};

}  // namespace

std::shared_ptr<Storage> MakeArrowStorage(std::shared_ptr<arrow::fs::FileSystem> fs, std::string scheme,
                                          CommonOptions options, ErrorHints hints,
                                          std::shared_ptr<ObjectReader> reader) {
  auto storage = std::make_shared<ArrowStorage>(std::move(fs), std::move(scheme), options, std::move(hints),
                                                std::move(reader));
  std::lock_guard lock(LiveMutex());
  auto& live = Live();
  live.erase(std::remove_if(live.begin(), live.end(), [](auto& w) { return w.expired(); }), live.end());
  live.push_back(storage);
  return storage;
}

}  // namespace chute::storage

namespace chute {

void ShutdownStorage() {
  std::vector<std::shared_ptr<storage::ArrowStorage>> live;
  {
    std::lock_guard lock(storage::LiveMutex());
    for (auto& w : storage::Live())
      if (auto s = w.lock()) live.push_back(std::move(s));
    storage::Live().clear();
  }
  for (auto& s : live) s->Release();  // from now on every request fails at once
  live.clear();
  DetachAllCaches();  // waits for the cache calls under way (their fetches fail or finish)
  // Arrow requires S3 to be finalized before exit, after the last S3 client is gone: let
  // the requests under way finish (new ones fail at once now), each bounded by its
  // timeouts; past a minute, finalize regardless.
  {
    std::unique_lock lock(storage::InFlight::Mutex());
    storage::InFlight::Idle().wait_for(lock, std::chrono::seconds(60), [] { return storage::InFlight::Count() == 0; });
  }
  (void)arrow::fs::EnsureS3Finalized();
}

}  // namespace chute
