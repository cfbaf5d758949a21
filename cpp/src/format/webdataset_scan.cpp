#include "format/webdataset_scan.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <memory>

#include "format/tar.h"
#include "util/checksum.h"
#include "util/inflater.h"
#include "util/posix_file.h"

namespace chute::webdataset {

using namespace tar;

namespace {

constexpr uint64_t kWindow = uint64_t{1} << 20;

// A shard's bytes for the scan, kWindow-aligned windows read kReadAhead at a time ahead
// of the walk, which goes forward: with small members it reads every window, and the
// latency of one request per window would dominate (a shard of 62 MB from a store with
// 20 ms to first byte: 1.8 s). A member skipped wastes at most the windows read ahead.
// With `copy`, a scan that read the whole shard keeps it there (Source::LocalCopy: the
// node cache takes it instead of downloading the shard again), within `budget` bytes.
class ShardWindows {
 public:
  ShardWindows(Storage& storage, std::string path, uint64_t size, std::string url, std::string copy,
               std::atomic<int64_t>* budget)
      : storage_(storage), path_(std::move(path)), size_(size), url_(std::move(url)), copy_(std::move(copy)),
        budget_(budget) {}
  ~ShardWindows() {
    for (Window& w : windows_) w.done.wait();  // they write into their buffers
    Abandon();
  }

  // After the walk: the rest of the windows into the copy, kept if it is the whole shard.
  void Finish() {
    if (copy_.empty()) return;
    for (uint64_t at = windows_.empty() ? copied_ : windows_.back().at + kWindow; at < size_; at += kWindow) {
      if (at - copied_ > 2 * kReadAhead * kWindow) return Abandon();  // not worth reading for it
      (void)Get(at, std::min(kWindow, size_ - at));  // requests the tail (read ahead)
    }
    for (; !windows_.empty(); windows_.pop_front()) Keep(windows_.front());
    if (fd_ >= 0 && copied_ == size_ && ::close(std::exchange(fd_, -1)) == 0 &&
        ::rename((copy_ + ".part").c_str(), copy_.c_str()) == 0)
      copy_.clear();  // kept
  }

  // Bytes [offset, offset + length), valid until the next call.
  Result<const std::byte*> Get(uint64_t offset, uint64_t length) {
    if (offset > size_ || length > size_ - offset)
      return Status::Corrupt(url_ + ": truncated at offset " + std::to_string(offset));
    const uint64_t first = offset / kWindow * kWindow;
    while (!windows_.empty() && windows_.front().at < first) {  // passed
      Keep(windows_.front());
      windows_.pop_front();
    }
    for (uint64_t at = windows_.empty() ? first : windows_.back().at + kWindow;
         windows_.size() < kReadAhead && at < size_; at += kWindow) {
      auto w = std::make_shared<std::vector<std::byte>>(std::min(kWindow, size_ - at));
      windows_.push_back({at, w, std::async(std::launch::async, [this, w, at] {
                            return storage_.ReadRange(path_, at, w->size(), w->data());
                          })});
    }
    // The windows holding the range (several when it crosses a boundary).
    joined_.clear();
    for (Window& w : windows_) {
      if (w.at >= offset + length) break;
      CHUTE_RETURN_NOT_OK(w.done.get());
      if (w.at <= offset && offset + length <= w.at + w.bytes->size()) return w.bytes->data() + (offset - w.at);
      const uint64_t from = std::max(offset, w.at), to = std::min(offset + length, w.at + w.bytes->size());
      joined_.insert(joined_.end(), w.bytes->begin() + static_cast<ptrdiff_t>(from - w.at),
                     w.bytes->begin() + static_cast<ptrdiff_t>(to - w.at));
    }
    if (joined_.size() == length) return joined_.data();
    // Past the read-ahead (a long PAX record): read directly.
    joined_.resize(length);
    CHUTE_RETURN_NOT_OK(storage_.ReadRange(path_, offset, length, joined_.data()));
    return joined_.data();
  }

 private:
  static constexpr size_t kReadAhead = 4;
  struct Window {
    uint64_t at;
    std::shared_ptr<std::vector<std::byte>> bytes;
    std::shared_future<Status> done;
  };

  // Window `w` (consecutive to what the copy holds, or the copy is given up) into the copy.
  void Keep(const Window& w);
  void Abandon() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    if (!copy_.empty()) ::unlink((copy_ + ".part").c_str());
    copy_.clear();
  }
  Storage& storage_;
  std::string path_;
  uint64_t size_;
  std::string url_;
  std::deque<Window> windows_;  // consecutive, from the walk's position on
  std::vector<std::byte> joined_;
  std::string copy_;  // where to keep the shard; empty: not (or given up)
  std::atomic<int64_t>* budget_;
  int fd_ = -1;
  uint64_t copied_ = 0;  // bytes [0, copied_) are in the copy
};

void ShardWindows::Keep(const Window& w) {
  w.done.wait();
  if (copy_.empty()) return;
  if (w.at != copied_ || !w.done.get().ok() || budget_->fetch_sub(static_cast<int64_t>(w.bytes->size())) <
                                                   static_cast<int64_t>(w.bytes->size()))
    return Abandon();
  if (fd_ < 0) fd_ = ::open((copy_ + ".part").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0 || !WriteAll(fd_, w.bytes->data(), w.bytes->size(), w.at)) return Abandon();
  copied_ += w.bytes->size();
}

}  // namespace

bool EndsWith(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool IsGzipShard(const std::string& path) { return EndsWith(path, ".tar.gz") || EndsWith(path, ".tgz"); }

std::string ScanPath(const SourceLocation& location) {
  if (location.cache_dir.empty()) return "";
  return JoinPath(JoinPath(location.cache_dir, "webdataset-scans"),
                  ChecksumToHex(Checksum(location.url.data(), location.url.size())) + ".json");
}
std::string CopiesDir(const SourceLocation& location) {
  if (location.cache_dir.empty() || location.storage->is_local()) return "";
  return ScanPath(location) + ".shards";
}
std::string CopyPath(const std::string& dir, std::string name) {
  std::replace(name.begin(), name.end(), '/', '%');
  return JoinPath(dir, name);
}

Status ScanShard(Storage& storage, const std::string& path, uint64_t size, std::vector<Sample>* samples,
                 std::set<std::string>* fields, uint64_t* inflated_size, const std::string& copy,
                 std::atomic<int64_t>* budget) {
  const std::string url = storage.Url(path);
  ShardWindows shard(storage, path, size, url, copy, budget);
  std::function<Result<const std::byte*>(uint64_t, uint64_t)> get = [&](uint64_t offset, uint64_t length) {
    return shard.Get(offset, length);
  };
  uint64_t end = size;
  // A gzip shard: its decompressed bytes, forward only (the walk never goes back), the
  // compressed ones read by windows.
  std::vector<std::byte> window;
  uint64_t window_at = 0;
  uint64_t read = 0;
  Inflater inflater([&]() -> Result<std::span<const std::byte>> {
    const uint64_t n = std::min(kWindow, size - read);
    if (n == 0) return std::span<const std::byte>();
    CHUTE_ASSIGN_OR_RETURN(const std::byte* bytes, shard.Get(read, n));
    read += n;
    return std::span<const std::byte>(bytes, n);
  }, url);
  static const std::byte kZeros[kBlock] = {};
  if (IsGzipShard(path)) {
    end = kMaxMemberSize;  // unknown until inflated
    get = [&](uint64_t offset, uint64_t length) -> Result<const std::byte*> {
      if (offset < window_at) return Status::Corrupt(url + ": a tar member starts before the one ahead of it");
      // Drop what the walk has passed, inflating skipped member data kWindow at a time.
      while (offset > window_at + window.size()) {
        window_at += window.size();
        window.clear();
        CHUTE_RETURN_NOT_OK(inflater.Inflate(&window, std::min<uint64_t>(kWindow, offset - window_at)));
        if (window.empty()) break;  // the stream ended
      }
      if (offset - window_at > kWindow) {
        const size_t drop = std::min<uint64_t>(offset - window_at, window.size());
        window.erase(window.begin(), window.begin() + static_cast<ptrdiff_t>(drop));
        window_at += drop;
      }
      const uint64_t have = window_at + window.size();
      if (offset + length > have) CHUTE_RETURN_NOT_OK(inflater.Inflate(&window, offset + length - have));
      if (offset + length <= window_at + window.size()) return window.data() + (offset - window_at);
      // The stream's end is the archive's end (tar writers may leave out its zero blocks).
      if (offset == window_at + window.size() && length == kBlock) return kZeros;
      return Status::Corrupt(url + ": truncated at decompressed offset " + std::to_string(offset));
    };
  }
  std::set<std::string> exts;
  CHUTE_RETURN_NOT_OK(Walk(get, 0, end, url, [&](Member m) -> Status {
    std::string key, ext;
    if (!m.regular || !KeyAndExtension(m.name, &key, &ext)) return Status::OK();
    if (samples->empty() || samples->back().key != key) {
      samples->push_back(Sample{key, m.header, 0});
      exts.clear();
    }
    if (!exts.insert(ext).second)
      return Status::Corrupt(url + ": sample '" + key + "' has two members with extension '" + ext + "'");
    fields->insert(ext);
    samples->back().end = m.data + m.size;
    return Status::OK();
  }));
  if (!IsGzipShard(path)) {
    shard.Finish();
    return Status::OK();
  }
  for (;;) {  // the rest of the stream (the archive's padding): its size
    const size_t before = window.size();
    CHUTE_RETURN_NOT_OK(inflater.Inflate(&window, kWindow));
    if (window.size() - before < kWindow) break;
    window_at += window.size();
    window.clear();
  }
  *inflated_size = window_at + window.size();
  shard.Finish();
  return Status::OK();
}

}  // namespace chute::webdataset
