#include "chute/dataset.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache/shm_index.h"
#include "checksum.h"
#include "chunk_layout.h"
#include "codec.h"
#include "json.h"
#include "io_pool.h"
#include "local_file.h"

namespace chute {

namespace fs = std::filesystem;

bool LeafView::as_bool() const { return as_int() != 0; }
int64_t LeafView::as_int() const {
  int64_t v = 0;
  if (size == sizeof v) std::memcpy(&v, data, sizeof v);
  return v;
}
double LeafView::as_float() const {
  double v = 0;
  if (size == sizeof v) std::memcpy(&v, data, sizeof v);
  return v;
}

namespace {

const char* kRewriteHint = "; the file is damaged: copy it again from its source or rewrite the dataset";

// A whole chunk whose checksum is not the one index.json gives.
Status WholeChunkMismatch(const std::string& url, uint64_t actual, uint64_t expected) {
  return Status::Corrupt(url + ": checksum mismatch (xxh3_64 " + ChecksumToHex(actual) + ", index.json says " +
                         ChecksumToHex(expected) + ")" + kRewriteHint);
}

// Tasks on a pool waited for together: counts them down and keeps the first failure.
// Shared with the tasks (shared_ptr), which may outlive a timed-out wait.
struct TaskGroup {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = 0;
  Status status;

  bool failed() {
    std::lock_guard lock(mu);
    return !status.ok();
  }
  void Done(const Status& st) {
    std::lock_guard lock(mu);
    if (!st.ok() && status.ok()) status = st;
    if (--left == 0) cv.notify_all();
  }
  // False if `seconds` passed first.
  bool Wait(double seconds) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return left == 0; });
  }
};

// Parses one item's bytes [base, base+size) into leaves that point into it.
Result<Item> DecodeItem(const std::byte* base, uint64_t size, std::shared_ptr<const void> owner,
                        const std::string& where) {
  auto corrupt = [&](const char* what) {
    return Status::Corrupt(where + ": malformed item (" + what + ")" + kRewriteHint);
  };
  if (size < sizeof(ItemHeader)) return corrupt("too short");
  ItemHeader ih;
  std::memcpy(&ih, base, sizeof ih);
  uint64_t table_end = sizeof ih + uint64_t{ih.num_leaves} * sizeof(LeafEntry);
  if (table_end > size) return corrupt("leaf table");
  Item item;
  item.leaves.resize(ih.num_leaves);
  uint64_t shape_pos = table_end;
  for (uint32_t k = 0; k < ih.num_leaves; ++k) {
    LeafEntry e;
    std::memcpy(&e, base + sizeof ih + k * sizeof e, sizeof e);
    if (e.kind > static_cast<uint8_t>(LeafKind::kArray)) return corrupt("leaf kind");
    if (e.offset > size || e.size > size - e.offset) return corrupt("leaf bounds");
    if (shape_pos + e.ndim * sizeof(int64_t) > size) return corrupt("shape");
    LeafView& v = item.leaves[k];
    v.kind = static_cast<LeafKind>(e.kind);
    v.dtype = DType{e.dtype_code, e.dtype_bits};
    v.shape.resize(e.ndim);
    std::memcpy(v.shape.data(), base + shape_pos, e.ndim * sizeof(int64_t));
    shape_pos += e.ndim * sizeof(int64_t);
    v.data = base + e.offset;
    v.size = e.size;
    if (v.kind == LeafKind::kArray) {
      uint64_t n = v.dtype.itemsize();
      for (int64_t d : v.shape) {
        if (d < 0) return corrupt("negative dimension");
        n *= static_cast<uint64_t>(d);
      }
      if (n != v.size) return corrupt("array size does not match its shape");
    }
  }
  item.owner = std::move(owner);
  return item;
}

// The bytes of one chunk file: mapped (local) or arriving by parallel ranged reads
// (remote). Thread-safe.
class ChunkBytes {
 public:
  virtual ~ChunkBytes() = default;
  virtual const std::byte* data() const = 0;
  virtual size_t size() const = 0;
  // Returns once bytes [offset, offset + length) are present, or why they never will be.
  virtual Status Wait(uint64_t offset, uint64_t length) = 0;
};

class MappedChunkBytes final : public ChunkBytes {
 public:
  // `on_release` runs when the last user of the bytes is gone (a cache reference).
  explicit MappedChunkBytes(std::shared_ptr<MappedFile> file, std::function<void()> on_release = {})
      : file_(std::move(file)), on_release_(std::move(on_release)) {}
  ~MappedChunkBytes() override {
    file_.reset();
    if (on_release_) on_release_();
  }
  const std::byte* data() const override { return file_->data(); }
  size_t size() const override { return file_->size(); }
  Status Wait(uint64_t, uint64_t) override { return Status::OK(); }
  const MappedFile& file() const { return *file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::function<void()> on_release_;
};

// A remote chunk downloaded in parts of `part_size` bytes, all requested at once on the
// I/O pool, into memory (no node cache); readers wait only for the parts they need. When
// the last part lands, the whole chunk's checksum is checked; after a mismatch every wait
// fails.
class RemoteChunkBytes final : public ChunkBytes, public std::enable_shared_from_this<RemoteChunkBytes> {
 public:
  RemoteChunkBytes(std::shared_ptr<Storage> storage, std::string path, const ChunkInfo& info, uint64_t part_size,
                   bool verify, std::shared_ptr<std::byte> buffer)
      : storage_(std::move(storage)), path_(std::move(path)), info_(info), part_size_(std::max<uint64_t>(part_size, 4096)),
        verify_(verify), buffer_(std::move(buffer)),
        done_((info.num_bytes + part_size_ - 1) / part_size_, 0) {}

  ~RemoteChunkBytes() override {
    // Inherited through fork() (e.g. by an array view): the parent's threads may have
    // waited on the condvar, and destroying it would block forever.
    if (pid_ != ::getpid()) (void)cv_.release();
  }

  void Start(IoPool& pool) {
    auto self = shared_from_this();
    for (size_t k = 0; k < done_.size(); ++k) pool.Submit([self, k] { self->FetchPart(k); });
  }

  const std::byte* data() const override { return buffer_.get(); }
  size_t size() const override { return info_.num_bytes; }

  Status Wait(uint64_t offset, uint64_t length) override {
    if (offset + length > info_.num_bytes)
      return Status::Corrupt(storage_->Url(path_) + ": item past the end of the chunk" + kRewriteHint);
    size_t first = offset / part_size_, last = length ? (offset + length - 1) / part_size_ : first;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(storage_->timeout() + 5);
    std::unique_lock lock(mu_);
    for (size_t k = first; k <= last && k < done_.size(); ++k) {
      if (!cv_->wait_until(lock, deadline, [&] { return done_[k] || !error_.ok(); }))
        return Status::IOError(storage_->Url(path_) + ": timed out waiting for bytes " + std::to_string(offset) +
                               ".." + std::to_string(offset + length) + " (storage_options timeout)");
      if (!error_.ok()) return error_;
    }
    return error_;
  }

 private:
  void FetchPart(size_t k) {
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
    if (last && verify_) {
      uint64_t sum = Checksum(buffer_.get(), info_.num_bytes);
      if (sum != info_.checksum) st = WholeChunkMismatch(storage_->Url(path_), sum, info_.checksum);
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

  pid_t pid_ = ::getpid();
  std::shared_ptr<Storage> storage_;
  std::string path_;
  ChunkInfo info_;
  uint64_t part_size_;
  bool verify_;
  std::shared_ptr<std::byte> buffer_;
  std::mutex mu_;
  std::unique_ptr<std::condition_variable> cv_ = std::make_unique<std::condition_variable>();
  std::vector<uint8_t> done_;
  size_t num_arrived_ = 0;
  Status error_;
};

// Downloads the chunk `info` at `path` into the new file `temp`: its parts of
// `part_size` bytes all requested at once on `pool`, each written to the file as it
// arrives (Storage::ReadRangeToFile: the chunk is never held in this process's memory);
// then its checksum is checked by reading the file back.
Status FetchChunkToFile(const std::shared_ptr<Storage>& storage, const std::string& path, const ChunkInfo& info,
                        uint64_t part_size, bool verify, IoPool& pool, const std::string& temp) {
  struct Fetch : TaskGroup {
    int fd = -1;
    ~Fetch() {
      if (fd >= 0) ::close(fd);
    }
  };
  auto fetch = std::make_shared<Fetch>();
  fetch->fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fetch->fd < 0) return Status::IOError(ErrnoMessage(temp));
  if (::ftruncate(fetch->fd, static_cast<off_t>(info.num_bytes)) != 0) return Status::IOError(ErrnoMessage(temp));
  part_size = std::max<uint64_t>(part_size, 4096);
  fetch->left = (info.num_bytes + part_size - 1) / part_size;
  for (uint64_t offset = 0; offset < info.num_bytes; offset += part_size) {
    uint64_t length = std::min(part_size, info.num_bytes - offset);
    pool.Submit([fetch, storage, path, offset, length] {
      fetch->Done(fetch->failed() ? Status::OK()
                                  : storage->ReadRangeToFile(path, offset, length, fetch->fd, offset));
    });
  }
  if (!fetch->Wait(storage->timeout() + 5))
    return Status::IOError(storage->Url(path) + ": timed out downloading it (storage_options timeout)");
  CHUTE_RETURN_NOT_OK(fetch->status);
  if (!verify || info.num_bytes == 0) return Status::OK();
  // Read back through a small buffer (it is in the page cache), not a mapping that would
  // stay resident.
  ChecksumStream sum;
  std::vector<std::byte> buffer(1 << 20);
  for (uint64_t offset = 0; offset < info.num_bytes;) {
    ssize_t n = ::pread(fetch->fd, buffer.data(), std::min<uint64_t>(buffer.size(), info.num_bytes - offset),
                        static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError(ErrnoMessage(temp));
    sum.Update(buffer.data(), static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  if (sum.Digest() != info.checksum) return WholeChunkMismatch(storage->Url(path), sum.Digest(), info.checksum);
  return Status::OK();
}

// A remote chunk read on demand: only the byte ranges readers wait for are fetched
// (header and tables, one item or one compressed block), into a chunk-sized buffer whose
// untouched pages the OS never commits. For random access to uncached chunks and for
// items needed before their chunk has arrived. Thread-safe: readers of different ranges
// read in parallel; a reader of a range being read by another waits for it.
class OnDemandChunkBytes final : public ChunkBytes {
 public:
  // `tables_hint`: the likely size of the header and tables, read in one request with the
  // header.
  OnDemandChunkBytes(std::shared_ptr<Storage> storage, std::string path, uint64_t size, uint64_t tables_hint)
      : storage_(std::move(storage)), path_(std::move(path)), size_(size), tables_hint_(tables_hint),
        buffer_(AllocateAligned(size)) {}
  ~OnDemandChunkBytes() override {
    if (pid_ != ::getpid()) (void)cv_.release();  // see ~RemoteChunkBytes
  }

  const std::byte* data() const override { return buffer_.get(); }
  size_t size() const override { return size_; }

  Status Wait(uint64_t offset, uint64_t length) override {
    if (offset + length > size_)
      return Status::Corrupt(storage_->Url(path_) + ": item past the end of the chunk" + kRewriteHint);
    uint64_t end = offset + length;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(storage_->timeout() + 5);
    std::unique_lock lock(mu_);
    for (;;) {
      std::vector<std::pair<uint64_t, uint64_t>> gaps = ClaimGaps(offset, end);
      if (!gaps.empty()) {
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
      if (cv_->wait_until(lock, deadline) == std::cv_status::timeout)
        return Status::IOError(storage_->Url(path_) + ": timed out waiting for bytes " + std::to_string(offset) +
                               ".." + std::to_string(end) + " (storage_options timeout)");
    }
  }

 private:
  struct Range {
    uint64_t end;
    bool done;  // false while being read
  };
  // The first range that ends after `pos`.
  std::map<uint64_t, Range>::iterator First(uint64_t pos) {
    auto it = ranges_.upper_bound(pos);
    if (it != ranges_.begin() && std::prev(it)->second.end > pos) --it;
    return it;
  }

  // Registers (as being read) and returns the parts of [offset, end) nobody has read or
  // is reading; a read of the header is widened to the tables.
  std::vector<std::pair<uint64_t, uint64_t>> ClaimGaps(uint64_t offset, uint64_t end) {
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
    for (auto [from, to] : gaps) ranges_[from] = Range{to, false};
    return gaps;
  }

  std::shared_ptr<Storage> storage_;
  std::string path_;
  uint64_t size_;
  uint64_t tables_hint_;
  std::shared_ptr<std::byte> buffer_;
  pid_t pid_ = ::getpid();
  std::mutex mu_;
  std::unique_ptr<std::condition_variable> cv_ = std::make_unique<std::condition_variable>();
  std::map<uint64_t, Range> ranges_;  // start -> range read or being read
};

// The likely size of a chunk's header and tables: offsets, about one block entry per MiB
// (compressed chunks) and the span checksums.
uint64_t TablesSizeHint(const ChunkInfo& info) {
  return sizeof(ChunkHeader) + (info.num_items + 1) * sizeof(uint64_t) +
         (info.num_bytes / (1 << 20) + 2) * sizeof(BlockEntry) +
         ((info.num_bytes >> kSpanShift) + 1) * sizeof(uint64_t);
}

// One opened chunk. Thread-safe.
class ChunkReader {
 public:
  // `bytes` is the chunk; `url` names it in errors. A mapped chunk is size-checked here.
  // With `verify`: a mapped version-1 chunk is checksummed whole, now (a remote one checks
  // itself when fully arrived); a version-2 chunk checks its header and tables now, and
  // each span of its data before the first item in it is returned (also when only that
  // item's spans were read from an object store). `span_flags` (one per span, shared by
  // the processes mapping the chunk) record which spans are checked; without them the
  // reader keeps its own.
  static Result<std::shared_ptr<ChunkReader>> Open(std::shared_ptr<ChunkBytes> bytes, std::string url,
                                                   const ChunkInfo& info, bool verify,
                                                   std::atomic<uint8_t>* span_flags = nullptr) {
    auto r = std::shared_ptr<ChunkReader>(new ChunkReader(std::move(url), std::move(bytes)));
    CHUTE_RETURN_NOT_OK(r->Validate(info, verify, span_flags));
    return r;
  }

  Result<Item> GetItem(uint64_t j) {
    std::string where = path_ + " item " + std::to_string(j);
    uint64_t begin = offsets_[j], end = offsets_[j + 1];
    if (begin > end || end > header_.stream_size)
      return Status::Corrupt(where + ": bad item offsets" + kRewriteHint);
    if (!codec_) {
      CHUTE_RETURN_NOT_OK(WaitVerified(header_.data_offset + begin, header_.data_offset + end));
      std::shared_ptr<const void> owner(bytes_, bytes_.get());
      const std::byte* base = bytes_->data() + header_.data_offset + begin;
      CHUTE_ASSIGN_OR_RETURN(Item item, DecodeItem(base, end - begin, std::move(owner), where));
      if (dynamic_cast<MappedChunkBytes*>(bytes_.get())) {
        item.mapping = {bytes_->data(), bytes_->size()};
        item.mapped_bytes = {base, end - begin};
      }
      return item;
    }
    auto it = std::upper_bound(blocks_.begin(), blocks_.end(), j,
                               [](uint64_t x, const BlockEntry& b) { return x < b.first_item; });
    size_t b = static_cast<size_t>(it - blocks_.begin()) - 1;
    CHUTE_ASSIGN_OR_RETURN(std::shared_ptr<std::byte> block, Block(b));
    const BlockEntry& e = blocks_[b];
    end = std::min(end, e.stream_offset + e.stream_size);
    if (begin < e.stream_offset || begin > end)
      return Status::Corrupt(where + ": item outside its block" + kRewriteHint);
    const std::byte* base = block.get() + (begin - e.stream_offset);
    return DecodeItem(base, end - begin, std::shared_ptr<const void>(std::move(block)), where);
  }

  // Asks the kernel to start reading what GetItem(j) will touch in a mapped chunk (the
  // item's bytes, or its compressed block, widened to the spans to check), so that the
  // reads of a batch from a cold disk are under way together instead of one page fault at
  // a time.
  void WillNeed(uint64_t j) const {
    auto* mapped = dynamic_cast<MappedChunkBytes*>(bytes_.get());
    if (!mapped || j >= header_.num_items) return;
    uint64_t from = header_.data_offset + offsets_[j], to = header_.data_offset + offsets_[j + 1];
    if (codec_) {
      auto it = std::upper_bound(blocks_.begin(), blocks_.end(), j,
                                 [](uint64_t x, const BlockEntry& b) { return x < b.first_item; });
      const BlockEntry& e = *(it - 1);
      from = e.file_offset;
      to = e.file_offset + e.file_size;
    }
    auto [start, stop] = SpanAligned(from, to);
    mapped->file().WillNeed(start, stop);
  }

 private:
  ChunkReader(std::string path, std::shared_ptr<ChunkBytes> bytes)
      : path_(std::move(path)), bytes_(std::move(bytes)) {}

  Status Validate(const ChunkInfo& info, bool verify, std::atomic<uint8_t>* span_flags) {
    auto corrupt = [&](const std::string& what) { return Status::Corrupt(path_ + ": " + what + kRewriteHint); };
    auto* mapped = dynamic_cast<MappedChunkBytes*>(bytes_.get());
    if (mapped && mapped->size() != info.num_bytes) {
      return corrupt((mapped->size() < info.num_bytes ? "truncated: " : "wrong size: ") +
                     std::to_string(mapped->size()) + " bytes, index.json says " + std::to_string(info.num_bytes));
    }
    if (bytes_->size() < sizeof header_) return corrupt("shorter than a chunk header");
    CHUTE_RETURN_NOT_OK(bytes_->Wait(0, sizeof header_));
    std::memcpy(&header_, bytes_->data(), sizeof header_);
    if (std::memcmp(header_.magic, kChunkMagic, sizeof kChunkMagic) != 0)
      return corrupt("not a chute chunk (bad magic)");
    if (header_.version > kFormatVersion)
      return Status::VersionMismatch(path_ + ": chunk format version " + std::to_string(header_.version) +
                                     " is newer than this chute reads (" + std::to_string(kFormatVersion) +
                                     "); upgrade chute");
    bool spans = header_.version >= 2 && header_.span_shift != 0;
    if (mapped && verify && !spans) {  // version 1: the whole file now
      mapped->file().WillNeed(0, mapped->size());
      uint64_t sum = Checksum(mapped->data(), mapped->size());
      if (sum != info.checksum) return WholeChunkMismatch(path_, sum, info.checksum);
    }
    if (header_.num_items != info.num_items)
      return corrupt("holds " + std::to_string(header_.num_items) + " items, index.json says " +
                     std::to_string(info.num_items));
    uint64_t tables = sizeof header_ + (header_.num_items + 1) * 8 + header_.num_blocks * sizeof(BlockEntry) +
                      (spans ? uint64_t{header_.num_spans} * 8 : 0);
    if (tables > bytes_->size() || header_.data_offset < tables || header_.data_offset > bytes_->size())
      return corrupt("bad tables");
    CHUTE_RETURN_NOT_OK(bytes_->Wait(0, tables));
    if (spans) {
      uint64_t data = bytes_->size() - header_.data_offset;
      if (header_.span_shift < kMinSpanShift || header_.span_shift > kMaxSpanShift ||
          header_.num_spans != (data + (uint64_t{1} << header_.span_shift) - 1) >> header_.span_shift)
        return corrupt("bad span table");
      if (verify) {
        ChunkHeader zeroed = header_;
        zeroed.tables_xxh3 = 0;
        ChecksumStream sum;
        sum.Update(&zeroed, sizeof zeroed);
        sum.Update(bytes_->data() + sizeof header_, tables - sizeof header_);
        if (sum.Digest() != header_.tables_xxh3)
          return corrupt("checksum mismatch in the header or tables (xxh3_64 " + ChecksumToHex(sum.Digest()) +
                         ", the header says " + ChecksumToHex(header_.tables_xxh3) + ")");
      }
      if (verify || span_flags) {  // shared flags: also when reopening a chunk checked before
        span_sums_ = reinterpret_cast<const uint64_t*>(bytes_->data() + tables - header_.num_spans * 8);
        if (!span_flags) {
          own_span_flags_ = std::make_unique<std::atomic<uint8_t>[]>(header_.num_spans);
          span_flags = own_span_flags_.get();
        }
        span_flags_ = span_flags;
      }
    }
    offsets_ = reinterpret_cast<const uint64_t*>(bytes_->data() + sizeof header_);
    if (header_.codec == static_cast<uint32_t>(CodecId::kNone)) {
      if (header_.data_offset + header_.stream_size > bytes_->size()) return corrupt("item stream past end");
      return Status::OK();
    }
    if (header_.codec != static_cast<uint32_t>(CodecId::kZstd)) return corrupt("unknown codec");
    CHUTE_ASSIGN_OR_RETURN(codec_, Codec::Make(CompressionSpec{CodecId::kZstd, 3}));
    blocks_.resize(header_.num_blocks);
    std::memcpy(blocks_.data(), offsets_ + header_.num_items + 1, blocks_.size() * sizeof(BlockEntry));
    if (blocks_.empty() && header_.num_items) return corrupt("no blocks");
    for (auto& b : blocks_) {
      if (b.file_offset < header_.data_offset || b.file_offset + b.file_size > bytes_->size() ||
          b.stream_offset + b.stream_size > header_.stream_size)
        return corrupt("bad block table");
    }
    if (!blocks_.empty() && blocks_[0].first_item != 0) return corrupt("bad block table");
    return Status::OK();
  }

  // File bytes [from, to) widened to whole spans when spans are checked.
  std::pair<uint64_t, uint64_t> SpanAligned(uint64_t from, uint64_t to) const {
    if (!span_sums_ || to <= from) return {from, to};
    const uint32_t shift = header_.span_shift;
    const uint64_t base = header_.data_offset;
    return {base + (((from - base) >> shift) << shift),
            std::min<uint64_t>(bytes_->size(), base + ((((to - 1 - base) >> shift) + 1) << shift))};
  }

  // Waits for file bytes [from, to) and the rest of their spans, then checks the spans
  // not checked yet.
  Status WaitVerified(uint64_t from, uint64_t to) {
    auto [start, stop] = SpanAligned(from, to);
    CHUTE_RETURN_NOT_OK(bytes_->Wait(start, stop - start));
    return VerifySpans(from, to);
  }

  // Checks the spans holding file bytes [from, to) that no process has checked yet
  // (version-2 chunks read with verification; otherwise a no-op).
  Status VerifySpans(uint64_t from, uint64_t to) {
    if (!span_sums_ || to <= from) return Status::OK();
    const uint32_t shift = header_.span_shift;
    const uint64_t base = header_.data_offset;
    for (uint64_t k = (from - base) >> shift; k <= (to - 1 - base) >> shift; ++k) {
      if (span_flags_[k].load(std::memory_order_acquire)) continue;
      uint64_t begin = base + (k << shift), end = std::min<uint64_t>(bytes_->size(), begin + (uint64_t{1} << shift));
      uint64_t sum = Checksum(bytes_->data() + begin, end - begin);
      if (sum != span_sums_[k])
        return Status::Corrupt(path_ + ": checksum mismatch in bytes " + std::to_string(begin) + ".." +
                               std::to_string(end) + " (xxh3_64 " + ChecksumToHex(sum) + ", the chunk says " +
                               ChecksumToHex(span_sums_[k]) + ")" + kRewriteHint);
      span_flags_[k].store(1, std::memory_order_release);
      // Hashing mapped the whole span into this process: unmap it (the item wanted is
      // mapped again alone).
      if (dynamic_cast<MappedChunkBytes*>(bytes_.get()))
        ReleasePages({bytes_->data(), bytes_->size()}, {bytes_->data() + begin, end - begin});
    }
    return Status::OK();
  }

  // The decompressed block `b`; the most recent one is kept for sequential reads.
  Result<std::shared_ptr<std::byte>> Block(size_t b) {
    {
      std::lock_guard lock(mu_);
      if (cached_index_ == b && cached_) return cached_;
    }
    const BlockEntry& e = blocks_[b];
    CHUTE_RETURN_NOT_OK(WaitVerified(e.file_offset, e.file_offset + e.file_size));
    auto buf = AllocateAligned(e.stream_size);
    Status st = codec_->Decompress(bytes_->data() + e.file_offset, e.file_size, buf.get(), e.stream_size);
    if (!st.ok()) return Status::Corrupt(path_ + " block " + std::to_string(b) + ": " + st.message() + kRewriteHint);
    std::lock_guard lock(mu_);
    cached_index_ = b;
    cached_ = buf;
    return buf;
  }

  std::string path_;
  std::shared_ptr<ChunkBytes> bytes_;
  ChunkHeader header_{};
  const uint64_t* offsets_ = nullptr;
  const uint64_t* span_sums_ = nullptr;         // set when spans are to be checked
  std::atomic<uint8_t>* span_flags_ = nullptr;  // per span: checked (shared memory, or own_span_flags_)
  std::unique_ptr<std::atomic<uint8_t>[]> own_span_flags_;
  std::vector<BlockEntry> blocks_;
  std::shared_ptr<Codec> codec_;
  std::mutex mu_;
  size_t cached_index_ = SIZE_MAX;
  std::shared_ptr<std::byte> cached_;
};

// Flags (per chunk, per span) in memory shared with forked children: DataLoader workers
// inherit a local Dataset, and what one of them verified is not verified again by the
// others or by the next epoch's workers.
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

Status BadIndex(const std::string& path, const std::string& what) {
  return Status::Corrupt(path + ": " + what + "; the index is damaged or not written by chute.optimize");
}

}  // namespace

struct Dataset::Impl {
  pid_t pid = ::getpid();  // the process that opened it
  std::string url;
  std::shared_ptr<Storage> storage;
  std::string root;  // the dataset's path inside `storage`
  DatasetOptions options;
  std::vector<ChunkInfo> chunks;
  std::vector<uint64_t> starts;
  std::string index_json;
  std::string schema_json;
  std::string compression;
  std::string fingerprint;
  std::string cache_path;
  std::unique_ptr<SharedFlags> verified;  // per chunk: checksum (v1) or tables (v2) verified
  // Local datasets: per span of version-2 chunk data, verified; chunk c's first span flag
  // is span_base[c] (room for spans as small as 2^kMinSpanShift).
  std::unique_ptr<SharedFlags> spans_verified;
  std::vector<uint64_t> span_base;
  std::unique_ptr<IoPool> pool;  // remote datasets only
  std::shared_ptr<ShmIndex> cache;  // remote datasets with a cache_dir

  std::mutex prefetch_mu;
  std::unordered_set<uint32_t> prefetching;

  // Chunks read on demand (random access; items wanted before their chunk has arrived),
  // most recent first. Each is opened (its header and tables read) once, by the first
  // thread to ask, without holding the lock: other chunks are opened meanwhile.
  using ReaderFuture = std::shared_future<Result<std::shared_ptr<ChunkReader>>>;
  static constexpr size_t kMaxOnDemand = 64;
  std::mutex on_demand_mu;
  std::list<std::pair<uint32_t, ReaderFuture>> on_demand;

  Result<std::shared_ptr<ChunkReader>> OnDemandChunk(uint32_t c) {
    std::promise<Result<std::shared_ptr<ChunkReader>>> promise;
    ReaderFuture future;
    bool opener = false;
    {
      std::lock_guard lock(on_demand_mu);
      auto it = std::find_if(on_demand.begin(), on_demand.end(), [c](auto& e) { return e.first == c; });
      if (it != on_demand.end()) {
        on_demand.splice(on_demand.begin(), on_demand, it);
        future = it->second;
      } else {
        future = promise.get_future().share();
        on_demand.emplace_front(c, future);
        if (on_demand.size() > kMaxOnDemand) on_demand.pop_back();
        opener = true;
      }
    }
    std::string path = JoinPath(root, chunks[c].file);
    if (opener) {
      const ChunkInfo& info = chunks[c];
      auto bytes = std::make_shared<OnDemandChunkBytes>(storage, path, info.num_bytes, TablesSizeHint(info));
      auto reader =
          ChunkReader::Open(std::move(bytes), storage->Url(path), chunks[c], options.verify_checksums);
      if (!reader.ok()) DropOnDemand(c);  // the next caller tries again
      promise.set_value(std::move(reader));
    }
    if (future.wait_for(std::chrono::duration<double>(storage->timeout() + 5)) != std::future_status::ready)
      return Status::IOError(storage->Url(path) + ": timed out reading its tables");
    return future.get();
  }

  // Forgets chunk c's on-demand reader (its chunk is in the cache now; its memory goes
  // with the last item that uses it).
  void DropOnDemand(uint32_t c) {
    std::lock_guard lock(on_demand_mu);
    on_demand.remove_if([c](auto& e) { return e.first == c; });
  }

  std::mutex mu;  // guards the open-chunk LRU
  std::list<uint32_t> lru;
  std::unordered_map<uint32_t, std::pair<std::shared_ptr<ChunkReader>, std::list<uint32_t>::iterator>> open;

  // Chunk c in the node cache, with a reference held (fetched by this thread if no
  // process has it).
  Result<std::string> AcquireCached(uint32_t c) {
    const ChunkInfo& info = chunks[c];
    std::string path = JoinPath(root, info.file);
    auto fetch = [&](const std::string& temp) {
      return FetchChunkToFile(storage, path, info, options.part_size, options.verify_checksums, *pool, temp);
    };
    return cache->Acquire(c, info.num_bytes, storage->timeout() + 30, fetch);
  }

  Result<std::shared_ptr<ChunkReader>> Chunk(uint32_t c) {
    {
      std::lock_guard lock(mu);
      if (auto it = open.find(c); it != open.end()) {
        lru.splice(lru.begin(), lru, it->second.second);
        return it->second.first;
      }
    }
    bool verify = options.verify_checksums && !(*verified)[c].load(std::memory_order_acquire);
    std::string path = JoinPath(root, chunks[c].file);
    std::string url = storage->Url(path);
    std::shared_ptr<ChunkBytes> bytes;
    if (storage->is_local()) {
      auto file = MappedFile::Open(path);
      if (!file.ok()) {
        if (file.status().code() == StatusCode::kNotFound)
          return Status::NotFound(file.status().message() + " (chunk listed in index.json is missing)");
        return file.status();
      }
      bytes = std::make_shared<MappedChunkBytes>(*file);
    } else if (cache) {
      CHUTE_ASSIGN_OR_RETURN(std::string cached, AcquireCached(c));
      auto file = MappedFile::Open(cached);
      if (!file.ok()) {
        cache->Release(c);
        return file.status();
      }
      bytes = std::make_shared<MappedChunkBytes>(*file, [index = cache, c] { index->Release(c); });
      verify = false;  // verified when it was fetched
      DropOnDemand(c);  // read whole from now on
    } else {
      auto remote = std::make_shared<RemoteChunkBytes>(storage, path, chunks[c], options.part_size, verify,
                                                       AllocateAligned(chunks[c].num_bytes));
      remote->Start(*pool);
      bytes = std::move(remote);
    }
    std::atomic<uint8_t>* span_flags = spans_verified ? &(*spans_verified)[span_base[c]] : nullptr;
    CHUTE_ASSIGN_OR_RETURN(auto reader, ChunkReader::Open(std::move(bytes), url, chunks[c], verify, span_flags));
    if (storage->is_local() || cache) (*verified)[c].store(1, std::memory_order_release);
    std::lock_guard lock(mu);
    if (auto it = open.find(c); it != open.end()) return it->second.first;
    lru.push_front(c);
    open.emplace(c, std::make_pair(reader, lru.begin()));
    while (open.size() > std::max<size_t>(1, options.max_open_chunks)) {
      open.erase(lru.back());
      lru.pop_back();
    }
    return reader;
  }

  // The chunk holding global item i (< num_items).
  uint32_t ChunkOf(uint64_t i) const {
    return static_cast<uint32_t>(std::upper_bound(starts.begin(), starts.end() - 1, i) - starts.begin() - 1);
  }

  // The readers of items `ids` (in range) of local chunks, having asked the kernel to read
  // what they need from disk in parallel: first the tables of chunks not yet open, then
  // the items (ChunkReader::WillNeed), rather than one page fault after another (a first
  // batch from 17 cold chunks: 0.45 -> 0.02 s).
  Result<std::vector<std::shared_ptr<ChunkReader>>> LocalReaders(std::span<const uint64_t> ids) {
    std::vector<uint32_t> opening;
    for (uint64_t i : ids) {
      uint32_t c = ChunkOf(i);
      if (std::find(opening.begin(), opening.end(), c) != opening.end()) continue;
      std::lock_guard lock(mu);
      if (!open.count(c)) opening.push_back(c);
    }
    for (uint32_t c : opening) {
      int fd = ::open(JoinPath(root, chunks[c].file).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // opening the chunk reports it
      ::posix_fadvise(fd, 0, static_cast<off_t>(TablesSizeHint(chunks[c])), POSIX_FADV_WILLNEED);
      ::close(fd);
    }
    std::vector<std::shared_ptr<ChunkReader>> readers(ids.size());
    for (size_t k = 0; k < ids.size(); ++k) {
      uint32_t c = ChunkOf(ids[k]);
      CHUTE_ASSIGN_OR_RETURN(readers[k], Chunk(c));
      readers[k]->WillNeed(ids[k] - starts[c]);
    }
    return readers;
  }

  // Chunk c can be read without waiting for its download: local, open, or in the cache.
  bool AtHand(uint32_t c) {
    if (storage->is_local()) return true;
    {
      std::lock_guard lock(mu);
      if (open.count(c)) return true;
    }
    return cache && cache->IsReady(c);
  }

  Result<Item> ReadOnDemand(uint32_t c, uint64_t j) {
    CHUTE_ASSIGN_OR_RETURN(auto reader, OnDemandChunk(c));
    return reader->GetItem(j);
  }

  // Declared last: destroyed first, before what their tasks use.
  std::unique_ptr<IoPool> prefetch_pool;  // whole chunks into the cache
  std::unique_ptr<IoPool> item_pool;      // single items of chunks not yet cached
};

void ReleaseMapping(const Item& item) {
  if (!item.mapping.empty()) ReleasePages(item.mapping, item.mapped_bytes);
}

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::~Dataset() {
  // Inherited through fork(): its threads, condition variables and clients belong to the
  // parent (destroying a condvar a parent thread waited on blocks forever): leave it.
  if (impl_ && impl_->pid != ::getpid()) (void)impl_.release();
}

Result<std::shared_ptr<Dataset>> Dataset::Open(const std::string& url, const DatasetOptions& options,
                                               const StorageOptions& storage_options) {
  CHUTE_ASSIGN_OR_RETURN(StorageLocation location, OpenStorage(url, storage_options));
  auto& storage = location.storage;
  std::error_code ec;
  if (storage->is_local() && !fs::is_directory(location.path, ec))
    return Status::NotFound(url + ": no such dataset directory; run chute.optimize(..., output_dir=...) first "
                            "or check the path");
  std::string index_path = storage->Url(JoinPath(location.path, "index.json"));
  Result<std::string> text = options.index_json;
  if (options.index_json.empty()) text = storage->ReadAll(JoinPath(location.path, "index.json"));
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound)
      return Status::NotFound(index_path + " does not exist: " + url +
                              " is not a chute dataset, or chute.optimize did not finish writing it (" +
                              text.status().message() + ")");
    return text.status();
  }
  auto parsed = json::Parse(*text);
  if (!parsed.ok()) return BadIndex(index_path, "not valid JSON (" + parsed.status().message() + ")");
  const json::Value& index = *parsed;
  auto* format = index.get("format");
  auto* version = index.get("version");
  if (!format || !format->string() || *format->string() != "chute" || !version || !version->integer())
    return BadIndex(index_path, "not a chute index (no \"format\": \"chute\" / \"version\")");
  if (*version->integer() > kFormatVersion)
    return Status::VersionMismatch(index_path + " is format version " + std::to_string(*version->integer()) +
                                   ", newer than this chute reads (" + std::to_string(kFormatVersion) +
                                   "); upgrade chute (pip install -U chute)");

  auto impl = std::make_unique<Impl>();
  impl->url = url;
  impl->index_json = *text;
  impl->storage = std::move(location.storage);
  impl->root = std::move(location.path);
  impl->options = options;
  impl->options.index_json.clear();  // kept once, in impl->index_json
  // Whole-chunk downloads run below the consumers' priority (nice +10): on a busy node,
  // readers waiting for none of them keep their CPU.
  constexpr int kBackgroundNice = 10;
  if (!impl->storage->is_local())
    impl->pool = std::make_unique<IoPool>(std::max<size_t>(1, options.concurrency), kBackgroundNice);
  auto* chunks = index.get("chunks");
  auto* schema = index.get("schema");
  if (!chunks || !chunks->array() || !schema || !schema->object())
    return BadIndex(index_path, "missing \"chunks\" or \"schema\"");
  impl->schema_json = json::Dump(*schema);
  if (auto* c = index.get("compression"); c && c->string()) impl->compression = *c->string();
  uint64_t total = 0;
  for (const json::Value& c : *chunks->array()) {
    auto* file = c.get("file");
    auto* n = c.get("num_items");
    auto* bytes = c.get("num_bytes");
    auto* sum = c.get("xxh3_64");
    ChunkInfo info;
    if (!file || !file->string() || !n || !n->integer() || *n->integer() < 0 || !bytes || !bytes->integer() ||
        !sum || !sum->string() || !ChecksumFromHex(*sum->string(), &info.checksum))
      return BadIndex(index_path, "malformed entry in \"chunks\"");
    info.file = *file->string();
    if (info.file.find('/') != std::string::npos || info.file.starts_with("."))
      return BadIndex(index_path, "chunk file name '" + info.file + "' is not a plain file name");
    info.num_items = static_cast<uint64_t>(*n->integer());
    if (auto* tokens = c.get("num_tokens"); tokens && tokens->integer()) info.num_tokens = *tokens->integer();
    info.num_bytes = static_cast<uint64_t>(*bytes->integer());
    impl->starts.push_back(total);
    total += info.num_items;
    impl->chunks.push_back(std::move(info));
  }
  impl->starts.push_back(total);
  if (auto* n = index.get("num_items"); n && n->integer() && static_cast<uint64_t>(*n->integer()) != total)
    return BadIndex(index_path, "\"num_items\" does not match the chunk list");
  ChecksumStream digest;
  for (auto& c : impl->chunks) {
    uint64_t fields[3] = {c.num_items, c.num_bytes, c.checksum};
    digest.Update(fields, sizeof fields);
  }
  impl->fingerprint = ChecksumToHex(digest.Digest());
  if (!impl->storage->is_local() && !options.cache_dir.empty()) {
    std::string dir = options.cache_dir + "/" + ChecksumToHex(Checksum(url.data(), url.size())) + "-" +
                      impl->fingerprint;
    uint64_t capacity = options.max_cache_size;
    if (capacity == 0) {
      std::error_code ec;
      fs::create_directories(options.cache_dir, ec);
      struct statvfs vfs;
      capacity = ::statvfs(options.cache_dir.c_str(), &vfs) == 0 ? vfs.f_bavail * vfs.f_frsize / 2 : (uint64_t{1} << 34);
    }
    CHUTE_ASSIGN_OR_RETURN(impl->cache, ShmIndex::Attach(dir, static_cast<uint32_t>(impl->chunks.size()), capacity));
    // Chunks fetched ahead at once (each with its own ranged GETs): small chunks need many.
    impl->prefetch_pool = std::make_unique<IoPool>(std::max<size_t>(2, options.concurrency / 2), kBackgroundNice);
    // A batch's items at once: small reads, each mostly waiting for its first byte.
    impl->item_pool = std::make_unique<IoPool>(std::max<size_t>(64, options.concurrency));
    impl->cache_path = dir;
    // Open chunks hold cache references (no eviction): keep few of them.
    impl->options.max_open_chunks = std::min<size_t>(impl->options.max_open_chunks, 2);
  }
  CHUTE_ASSIGN_OR_RETURN(impl->verified, SharedFlags::Make(impl->chunks.size()));
  if (impl->storage->is_local() && options.verify_checksums) {
    uint64_t spans = 0;
    for (auto& c : impl->chunks) {
      impl->span_base.push_back(spans);
      spans += (c.num_bytes >> kMinSpanShift) + 1;
    }
    CHUTE_ASSIGN_OR_RETURN(impl->spans_verified, SharedFlags::Make(spans));
  }
  return std::shared_ptr<Dataset>(new Dataset(std::move(impl)));
}

const std::string& Dataset::url() const { return impl_->url; }
bool Dataset::is_local() const { return impl_->storage->is_local(); }
uint64_t Dataset::num_items() const { return impl_->starts.back(); }
const std::vector<ChunkInfo>& Dataset::chunks() const { return impl_->chunks; }
const std::vector<uint64_t>& Dataset::chunk_starts() const { return impl_->starts; }
const std::string& Dataset::index_json() const { return impl_->index_json; }
const std::string& Dataset::schema_json() const { return impl_->schema_json; }
const std::string& Dataset::fingerprint() const { return impl_->fingerprint; }
const std::string& Dataset::cache_path() const { return impl_->cache_path; }
uint64_t Dataset::cache_capacity() const { return impl_->cache ? impl_->cache->capacity() : 0; }
const std::string& Dataset::compression() const { return impl_->compression; }

std::pair<uint32_t, uint64_t> Dataset::Locate(uint64_t i) const {
  uint32_t c = impl_->ChunkOf(i);
  return {c, i - impl_->starts[c]};
}

Result<Item> Dataset::GetItem(uint64_t i) const {
  if (i >= num_items())
    return Status::Invalid("item " + std::to_string(i) + " out of range for " + impl_->url + " (" +
                           std::to_string(num_items()) + " items)");
  auto [c, j] = Locate(i);
  return GetChunkItem(c, j);
}

void Dataset::Prefetch(std::span<const uint32_t> chunks) const {
  Impl* m = impl_.get();
  if (!m->cache) return;
  for (uint32_t c : chunks) {
    if (c >= m->chunks.size()) continue;
    {
      std::lock_guard lock(m->prefetch_mu);
      if (!m->prefetching.insert(c).second) continue;
    }
    m->prefetch_pool->Submit([m, c] {
      if (m->cache->Peek(c) == false) {
        auto path = m->AcquireCached(c);
        if (path.ok()) m->cache->Release(c);
      }
      std::lock_guard lock(m->prefetch_mu);
      m->prefetching.erase(c);
    });
  }
}

Result<Item> Dataset::ReadItem(uint64_t i) const {
  Impl* m = impl_.get();
  if (i >= num_items()) return GetItem(i);
  auto [c, j] = Locate(i);
  if (m->AtHand(c)) return GetChunkItem(c, j);
  return m->ReadOnDemand(c, j);
}

Result<std::vector<Item>> Dataset::GetItems(std::span<const uint64_t> ids, bool direct) const {
  Impl* m = impl_.get();
  for (uint64_t i : ids)
    if (i >= num_items()) return GetItem(i).status();  // the out-of-range error
  std::vector<Item> items(ids.size());
  if (m->storage->is_local()) {
    CHUTE_ASSIGN_OR_RETURN(auto readers, m->LocalReaders(ids));
    for (size_t k = 0; k < ids.size(); ++k) {
      CHUTE_ASSIGN_OR_RETURN(items[k], readers[k]->GetItem(ids[k] - m->starts[m->ChunkOf(ids[k])]));
    }
    return items;
  }
  std::vector<std::tuple<size_t, uint32_t, uint64_t>> late;  // (position, chunk, index in chunk)
  std::vector<uint32_t> late_chunks;
  for (size_t k = 0; k < ids.size(); ++k) {
    auto [c, j] = Locate(ids[k]);
    if (direct && m->cache && !m->AtHand(c)) {
      late.emplace_back(k, c, j);
      if (std::find(late_chunks.begin(), late_chunks.end(), c) == late_chunks.end()) late_chunks.push_back(c);
      continue;
    }
    CHUTE_ASSIGN_OR_RETURN(items[k], GetChunkItem(c, j));
  }
  if (late.empty()) return items;
  // Shared with the reads on the item pool, which may outlive a timed-out wait.
  struct Batch : TaskGroup {
    std::vector<Item> items;
  };
  auto batch = std::make_shared<Batch>();
  batch->items = std::move(items);
  batch->left = late.size();
  for (auto [k, c, j] : late) {
    m->item_pool->Submit([m, batch, k, c, j] {
      Result<Item> item = m->ReadOnDemand(c, j);
      if (item.ok()) batch->items[k] = std::move(*item);  // each task its own slot; Done() publishes it
      batch->Done(item.status());
    });
  }
  if (!batch->Wait(m->storage->timeout() + 30))
    return Status::IOError(m->url + ": timed out reading " + std::to_string(late.size()) +
                           " items (storage_options timeout)");
  CHUTE_RETURN_NOT_OK(batch->status);
  // Afterwards: whole chunks would compete with these reads for connections.
  Prefetch(late_chunks);
  return std::move(batch->items);
}

Result<Item> Dataset::GetChunkItem(uint32_t chunk, uint64_t j) const {
  if (chunk >= impl_->chunks.size() || j >= impl_->chunks[chunk].num_items)
    return Status::Invalid("chunk " + std::to_string(chunk) + " item " + std::to_string(j) + " out of range");
  CHUTE_ASSIGN_OR_RETURN(auto reader, impl_->Chunk(chunk));
  return reader->GetItem(j);
}

}  // namespace chute
