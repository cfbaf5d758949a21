#include "cache/node_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "chute/dataset.h"
#include "read/chunk_bytes.h"
#include "util/checksum.h"
#include "util/posix_file.h"
#include "util/task_group.h"
#include "chute/trace.h"

namespace chute {

namespace {

constexpr const char* kUrlFile = ".chute-url";

// Downloads the chunk `info` at `path` into the new file `temp`: its parts of
// `part_size` bytes all requested at once on `pool`, each written to the file as it
// arrives (Storage::ReadRangeToFile: the chunk is never held in this process's memory);
// then its checksum is checked by reading the file back.
Status DownloadChunk(const std::shared_ptr<Storage>& storage, const std::string& path, const ChunkInfo& info,
                     uint64_t part_size, bool verify, IoPool& pool, const std::string& temp) {
  trace::Span span("download");
  trace::counters().chunks_downloaded.fetch_add(1, std::memory_order_relaxed);
  struct Download : TaskGroup {
    int fd = -1;
    ~Download() {
      if (fd >= 0) ::close(fd);
    }
  };
  auto download = std::make_shared<Download>();
  download->fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (download->fd < 0) return Status::IOError(ErrnoMessage(temp));
  if (::ftruncate(download->fd, static_cast<off_t>(info.num_bytes)) != 0) return Status::IOError(ErrnoMessage(temp));
  part_size = std::max<uint64_t>(part_size, 4096);
  download->left = (info.num_bytes + part_size - 1) / part_size;
  for (uint64_t offset = 0; offset < info.num_bytes; offset += part_size) {
    uint64_t length = std::min(part_size, info.num_bytes - offset);
    pool.Submit([download, storage, path, offset, length] {
      download->Done(download->failed() ? Status::OK()
                                        : storage->ReadRangeToFile(path, offset, length, download->fd, offset));
    });
  }
  if (!download->Wait(storage->timeout() + 5))
    return Status::IOError(storage->Url(path) + ": timed out downloading it (storage_options timeout)");
  CHUTE_RETURN_NOT_OK(download->status);
  if (!verify || info.num_bytes == 0 || !info.has_checksum) return Status::OK();
  trace::Span checksum_span("checksum");
  // Read back through a small buffer (it is in the page cache), not a mapping that would
  // stay resident.
  ChecksumStream sum;
  std::vector<std::byte> buffer(1 << 20);
  for (uint64_t offset = 0; offset < info.num_bytes;) {
    ssize_t n = ::pread(download->fd, buffer.data(), std::min<uint64_t>(buffer.size(), info.num_bytes - offset),
                        static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError(ErrnoMessage(temp));
    sum.Update(buffer.data(), static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  if (sum.Digest() != info.checksum) return WholeFileMismatch(storage->Url(path), sum.Digest(), info.checksum);
  return Status::OK();
}

// Has `source` fetch chunk c into the new file `temp`.
Status FetchChunk(const Source& source, uint32_t c, const std::string& temp) {
  trace::Span span("download");
  trace::counters().chunks_downloaded.fetch_add(1, std::memory_order_relaxed);
  int fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(ErrnoMessage(temp));
  Status st = source.FetchChunk(c, fd);
  ::close(fd);
  return st;
}

}  // namespace

Result<std::unique_ptr<NodeCache>> NodeCache::Open(const NodeCacheOptions& options, const std::string& url,
                                                   const std::string& fingerprint, std::shared_ptr<Storage> storage,
                                                   std::string root, const Source& source, IoPool* parts) {
  std::unique_ptr<NodeCache> cache(new NodeCache());
  cache->path_ = options.cache_dir + "/" + ChecksumToHex(Checksum(url.data(), url.size())) + "-" + fingerprint;
  uint64_t capacity = options.max_size;
  if (capacity == 0) {
    std::error_code ec;
    std::filesystem::create_directories(options.cache_dir, ec);
    struct statvfs vfs;
    capacity = ::statvfs(options.cache_dir.c_str(), &vfs) == 0 ? vfs.f_bavail * vfs.f_frsize / 2 : (uint64_t{1} << 34);
  }
  CHUTE_ASSIGN_OR_RETURN(cache->index_,
                         ShmIndex::Attach(cache->path_, static_cast<uint32_t>(source.chunks().size()), capacity));
  // Which dataset this directory caches, for `chute cache ls` (written once; the index
  // keeps files named .chute-*).
  const std::string url_file = cache->path_ + "/" + kUrlFile;
  if (std::error_code ec; !std::filesystem::exists(url_file, ec)) {
    std::span<const std::byte> text(reinterpret_cast<const std::byte*>(url.data()), url.size());
    CHUTE_RETURN_NOT_OK(WriteFileAtomic(url_file, {&text, 1}));
  }
  cache->storage_ = std::move(storage);
  cache->root_ = std::move(root);
  cache->source_ = &source;
  cache->options_ = options;
  cache->parts_ = parts;
  cache->fetch_pool_ = std::make_unique<IoPool>("chute-fetch", std::max<size_t>(1, options.fetch_threads), kBackgroundNice);
  return cache;
}

Result<std::string> NodeCache::Acquire(uint32_t c) {
  const ChunkInfo& info = source_->chunks()[c];
  std::string path = JoinPath(root_, info.file);
  auto fetch = [&](const std::string& temp) {
    if (source_->sourcing() == ChunkSourcing::kFetched) return FetchChunk(*source_, c, temp);
    if (std::string copy = source_->LocalCopy(c); !copy.empty()) {
      struct stat st;
      if (::stat(copy.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == info.num_bytes &&
          ::rename(copy.c_str(), temp.c_str()) == 0)
        return Status::OK();
    }
    return DownloadChunk(storage_, path, info, options_.part_size, options_.verify, *parts_, temp);
  };
  // Another process fetching it is waited for while it lives; a block of raw objects
  // (many requests, each within the storage timeout of its own store) may take long.
  const double timeout = source_->sourcing() == ChunkSourcing::kFetched ? 600 : storage_->timeout() + 30;
  return index_->Acquire(c, info.num_bytes, timeout, fetch);
}

Result<std::shared_ptr<ChunkBytes>> NodeCache::Open(uint32_t c) {
  trace::Counters& counters = trace::counters();
  std::string cached;
  if (index_->Peek(c)) {
    counters.chunk_cache_hits.fetch_add(1, std::memory_order_relaxed);
    CHUTE_ASSIGN_OR_RETURN(cached, Acquire(c));
  } else {
    counters.chunk_cache_misses.fetch_add(1, std::memory_order_relaxed);
    trace::Span span("wait_chunk");
    trace::WaitTimer waited(counters.data_wait_ns);
    CHUTE_ASSIGN_OR_RETURN(cached, Acquire(c));
  }
  auto file = MappedFile::Open(cached);
  if (!file.ok()) {
    index_->Release(c);
    return file.status();
  }
  return std::shared_ptr<ChunkBytes>(
      std::make_shared<MappedChunkBytes>(*file, [index = index_, c] { index->Release(c); }));
}

void NodeCache::Prefetch(std::span<const uint32_t> chunks) {
  for (uint32_t c : chunks) {
    if (c >= source_->chunks().size()) continue;
    {
      std::lock_guard lock(mu_);
      if (!prefetching_.insert(c).second) continue;
    }
    fetch_pool_->Submit([this, c] {
      if (!index_->Peek(c)) {
        auto path = Acquire(c);
        if (path.ok()) index_->Release(c);
      }
      std::lock_guard lock(mu_);
      prefetching_.erase(c);
    });
  }
}

std::vector<CachedDataset> ListCaches(const std::string& cache_dir) {
  std::vector<CachedDataset> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(cache_dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    // Only chute's own directories (<url digest>-<fingerprint>, with a lock file), never
    // a symlink: clearing must not reach anything else under cache_dir.
    const std::string name = it->path().filename().string();
    std::error_code e;
    if (it->is_symlink(e) || !it->is_directory(e) || name.size() != 33 || name[16] != '-' ||
        !std::filesystem::exists(it->path() / ".chute-lock", e))
      continue;
    CachedDataset d;
    d.path = it->path().string();
    if (auto url = ReadFile(d.path + "/" + kUrlFile); url.ok()) d.url = *url;
    for (auto f = std::filesystem::directory_iterator(it->path(), e); !e && f != std::filesystem::directory_iterator();
         f.increment(e)) {
      std::string file = f->path().filename().string();
      std::error_code size_error;
      uint64_t size = f->file_size(size_error);
      if (file.starts_with("c") && file.ends_with(".bin") && !size_error) {  // (evicted meanwhile: skipped)
        d.chunks += 1;
        d.bytes += size;
      }
    }
    out.push_back(std::move(d));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return std::tie(a.url, a.path) < std::tie(b.url, b.path); });
  return out;
}

Status RemoveCache(const std::string& path) { return ShmIndex::Remove(path); }

}  // namespace chute
