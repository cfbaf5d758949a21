#include "read/chunk_bytes.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "util/checksum.h"
#include "chute/trace.h"

namespace chute {

namespace {

Status PastEnd(const std::string& url) {
  return Status::Corrupt(url + ": item past the end of the chunk" + kRewriteHint);
}

Status TimedOut(const std::string& url, uint64_t from, uint64_t to) {
  return Status::IOError(url + ": timed out waiting for bytes " + std::to_string(from) + ".." + std::to_string(to) +
                         " (storage_options timeout)");
}

auto Deadline(const Storage& storage) {
  return std::chrono::steady_clock::now() + std::chrono::duration<double>(storage.timeout() + 5);
}

}  // namespace

Result<std::shared_ptr<ChunkBytes>> FetchedChunkBytes(const Source& source, uint32_t c) {
  int fd = ::memfd_create("chute-chunk", MFD_CLOEXEC);
  if (fd < 0) return Status::IOError(ErrnoMessage("memfd_create"));
  Status st = source.FetchChunk(c, fd);
  auto file = st.ok() ? MappedFile::Open("/proc/self/fd/" + std::to_string(fd)) : Result<std::shared_ptr<MappedFile>>(st);
  ::close(fd);
  CHUTE_RETURN_NOT_OK(file.status());
  return std::shared_ptr<ChunkBytes>(std::make_shared<MappedChunkBytes>(*file));
}

MappedChunkBytes::~MappedChunkBytes() {
  file_.reset();
  if (on_release_) on_release_();
}

RemoteChunkBytes::RemoteChunkBytes(std::shared_ptr<Storage> storage, std::string path, const ChunkInfo& info,
                                   uint64_t part_size, bool verify)
    : storage_(std::move(storage)), path_(std::move(path)), info_(info),
      part_size_(std::max<uint64_t>(part_size, 4096)), verify_(verify), buffer_(AllocateAligned(info.num_bytes)),
      done_((info.num_bytes + part_size_ - 1) / part_size_, 0) {}

// Inherited through fork() (e.g. by an array view): the parent's threads may have waited
// on the condvar, and destroying it would block forever.
RemoteChunkBytes::~RemoteChunkBytes() { owner_.LeakIfInherited(cv_); }

void RemoteChunkBytes::Start(IoPool& pool) {
  auto self = shared_from_this();
  for (size_t k = 0; k < done_.size(); ++k) pool.Submit([self, k] { self->FetchPart(k); });
}

Status RemoteChunkBytes::Wait(uint64_t offset, uint64_t length) {
  if (offset + length > info_.num_bytes) return PastEnd(storage_->Url(path_));
  size_t first = offset / part_size_, last = length ? (offset + length - 1) / part_size_ : first;
  auto deadline = Deadline(*storage_);
  std::unique_lock lock(mu_);
  for (size_t k = first; k <= last && k < done_.size(); ++k) {
    auto arrived = [&] { return done_[k] || !error_.ok(); };
    if (!arrived()) {
      trace::Span span("wait_chunk");
      trace::WaitTimer waited(trace::counters().data_wait_ns);
      if (!cv_->wait_until(lock, deadline, arrived)) return TimedOut(storage_->Url(path_), offset, offset + length);
    }
    if (!error_.ok()) return error_;
  }
  return error_;
}

void RemoteChunkBytes::FetchPart(size_t k) {
  {
    std::lock_guard lock(mu_);
    if (!error_.ok()) return;
  }
  uint64_t offset = k * part_size_;
  uint64_t length = std::min(part_size_, info_.num_bytes - offset);
  PopulateWritable(buffer_.get() + offset, length);  // just before its download: not all parts at once
  Status st = storage_->ReadRange(path_, offset, length, buffer_.get() + offset);
  bool last = false;
  {
    std::lock_guard lock(mu_);
    last = st.ok() && ++num_arrived_ == done_.size();
  }
  // The last part to arrive is marked done only after the whole chunk is verified, so
  // that waiting for all parts also waits for the checksum.
  if (last && verify_ && info_.has_checksum) {
    trace::Span span("checksum");
    uint64_t sum = Checksum(buffer_.get(), info_.num_bytes);
    if (sum != info_.checksum) st = WholeFileMismatch(storage_->Url(path_), sum, info_.checksum);
  }
  {
    std::lock_guard lock(mu_);
    if (!st.ok()) {
      if (error_.ok()) error_ = st;
    } else {
      done_[k] = 1;
    }
  }
  cv_->notify_all();
}

OnDemandChunkBytes::OnDemandChunkBytes(std::shared_ptr<Storage> storage, std::string path, uint64_t size,
                                       uint64_t tables_hint)
    : storage_(std::move(storage)), path_(std::move(path)), size_(size), tables_hint_(tables_hint),
      buffer_(AllocateAligned(size)), max_wait_(size / 2) {}

OnDemandChunkBytes::~OnDemandChunkBytes() { owner_.LeakIfInherited(cv_); }  // see ~RemoteChunkBytes

Status OnDemandChunkBytes::Wait(uint64_t offset, uint64_t length) {
  if (offset + length > size_) return PastEnd(storage_->Url(path_));
  uint64_t end = offset + length;
  auto deadline = Deadline(*storage_);
  std::unique_lock lock(mu_);
  if (length > max_wait_.load()) {  // refused when what is not read yet is that much
    uint64_t unread = 0;
    for (auto [from, to] : ClaimGaps(offset, end, false)) unread += to - from;
    if (unread > max_wait_.load()) {
      wanted_whole_ = true;
      return Status::Unsupported(storage_->Url(path_) + ": read whole, not by ranges");
    }
  }
  for (;;) {
    std::vector<std::pair<uint64_t, uint64_t>> gaps = ClaimGaps(offset, end, true);
    if (!gaps.empty()) {
      trace::Span span("wait_chunk");
      trace::WaitTimer waited(trace::counters().data_wait_ns);
      lock.unlock();
      Status st;
      for (auto [from, to] : gaps) {
        if (st.ok()) st = storage_->ReadRange(path_, from, to - from, buffer_.get() + from);
      }
      lock.lock();
      for (auto [from, to] : gaps) {
        if (st.ok()) ranges_[from].done = true; else ranges_.erase(from);
      }
      cv_->notify_all();
      if (!st.ok()) return st;
      continue;
    }
    bool pending = false;
    for (auto it = First(offset); it != ranges_.end() && it->first < end; ++it) pending |= !it->second.done;
    if (!pending) return Status::OK();
    trace::Span span("wait_chunk");
    trace::WaitTimer waited(trace::counters().data_wait_ns);
    if (cv_->wait_until(lock, deadline) == std::cv_status::timeout) return TimedOut(storage_->Url(path_), offset, end);
  }
}

// The first range that ends after `pos`.
std::map<uint64_t, OnDemandChunkBytes::Range>::iterator OnDemandChunkBytes::First(uint64_t pos) {
  auto it = ranges_.upper_bound(pos);
  if (it != ranges_.begin() && std::prev(it)->second.end > pos) --it;
  return it;
}

// Returns the parts of [offset, end) nobody has read or is reading, and with `claim`
// registers them as being read; a read of the header is widened to the tables.
std::vector<std::pair<uint64_t, uint64_t>> OnDemandChunkBytes::ClaimGaps(uint64_t offset, uint64_t end, bool claim) {
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t pos = offset;
  for (auto it = First(offset); pos < end; ++it) {
    uint64_t next = it != ranges_.end() ? it->first : size_;
    if (pos < next) {
      uint64_t to = std::min(next, pos == 0 ? std::max(end, std::min(size_, tables_hint_)) : end);
      gaps.emplace_back(pos, to);
      pos = to;
    }
    if (it == ranges_.end()) break;
    pos = std::max(pos, it->second.end);
  }
  if (claim)
    for (auto [from, to] : gaps) ranges_[from] = Range{to, false};
  return gaps;
}

}  // namespace chute
