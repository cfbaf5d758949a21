// The engine over a source (chute/dataset.h): where a chunk's bytes come from (mapped
// file, node cache, download into memory, ranged reads on demand), the open-chunk tables
// and the read strategies of single items and batches.
#include "chute/dataset.h"

#include <sys/types.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <mutex>
#include <tuple>

#include "cache/node_cache.h"
#include "read/chunk_bytes.h"
#include "util/checksum.h"
#include "util/io_pool.h"
#include "util/lru_map.h"
#include "util/posix_file.h"
#include "util/process_owner.h"
#include "util/ranges.h"
#include "util/shared_flags.h"
#include "util/task_group.h"
#include "chute/trace.h"

namespace chute {

namespace {

// 16 hex digits of a digest of the chunk list and checksums. Formats without checksums
// add their whole description (index), so that a dataset rewritten with the same sizes
// does not reuse another's cache.
std::string Fingerprint(const Source& source) {
  ChecksumStream digest;
  bool checksummed = true;
  for (auto& c : source.chunks()) {
    uint64_t fields[3] = {c.num_items, c.num_bytes, c.checksum};
    digest.Update(fields, sizeof fields);
    checksummed = checksummed && c.has_checksum;
  }
  if (!checksummed) digest.Update(source.description().data(), source.description().size());
  return ChecksumToHex(digest.Digest());
}

// Open chunks of a cached dataset hold cache references (they are not evicted): those of
// all the processes attached to the cache may span this share of it. (Reading shuffled
// token blocks or items touches one chunk per partition in turn: with 2 chunks open,
// each read reopened its chunk, and cached token blocks read at 69k blocks/s against
// 663k with this share.)
constexpr uint64_t kOpenCacheShare = 4;
// Chunks read on demand kept open.
constexpr size_t kMaxOnDemand = 64;

}  // namespace

void ReleaseMapping(const Item& item) {
  if (!item.mapping.empty()) ReleasePages(item.mapping, item.mapped_bytes);
}

struct Dataset::Impl {
  ProcessOwner owner;
  std::string url;
  std::shared_ptr<Storage> storage;
  std::string root;  // the dataset's path inside `storage`
  DatasetOptions options;
  std::shared_ptr<const Source> source;
  // Chunks are local files, or read in place by the source: mapped, no pools, no cache,
  // usable after fork().
  bool local = false;
  bool fetched = false;  // the source fetches chunks itself (ChunkSourcing::kFetched)
  double timeout = 0;    // of a read: the storage's, or the source's fetches
  std::vector<uint64_t> starts;
  std::string fingerprint;
  std::unique_ptr<SharedFlags> verified;  // per chunk: opened with verification by some process
  // Local datasets: the source's check flags of chunk c start at check_base[c].
  std::unique_ptr<SharedFlags> check_flags;
  std::vector<uint64_t> check_base;
  std::unique_ptr<IoPool> download_pool;  // remote: parts of whole-chunk downloads
  std::unique_ptr<NodeCache> cache;       // remote with a cache_dir

  std::mutex open_mu;
  LruMap<uint32_t, std::shared_ptr<ChunkReader>> open{1};

  // Chunks read on demand (random access; items wanted before their chunk has arrived).
  // Each is opened (its header and tables read) once, by the first thread to ask, without
  // holding the lock: other chunks are opened meanwhile. A layout read whole (its opening
  // wants over half the chunk: OnDemandChunkBytes::wanted_whole) is opened whole instead.
  using ReaderFuture = std::shared_future<Result<std::shared_ptr<ChunkReader>>>;
  std::mutex on_demand_mu;
  LruMap<uint32_t, ReaderFuture> on_demand{kMaxOnDemand};

  // Declared last: destroyed first, before what its tasks use.
  std::unique_ptr<IoPool> item_pool;  // remote with a cache: single items of chunks not yet cached

  const std::vector<ChunkInfo>& chunks() const { return source->chunks(); }
  std::string ChunkPath(uint32_t c) const { return JoinPath(root, chunks()[c].file); }

  uint32_t ChunkOf(uint64_t i) const {
    return static_cast<uint32_t>(RangeOf(starts, i));
  }

  double OpenTimeout() const { return 3 * (timeout + 30); }  // table reads, then a download

  Result<std::shared_ptr<ChunkReader>> OnDemandChunk(uint32_t c) {
    if (AtHand(c)) return Chunk(c);  // (it fell back to the whole chunk meanwhile)
    std::promise<Result<std::shared_ptr<ChunkReader>>> promise;
    ReaderFuture future;
    bool opener = false;
    {
      std::lock_guard lock(on_demand_mu);
      ReaderFuture* f = on_demand.Find(c);
      opener = f == nullptr;
      future = opener ? promise.get_future().share() : *f;
      if (opener) on_demand.Insert(c, future);
    }
    std::string path = ChunkPath(c);
    if (opener) {
      auto bytes = std::make_shared<OnDemandChunkBytes>(storage, path, chunks()[c].num_bytes, source->TablesSizeHint(c));
      auto reader = source->OpenChunk(c, bytes, storage->Url(path), options.verify_checksums, nullptr);
      const bool whole = !reader.ok() && bytes->wanted_whole();
      if (whole) reader = Chunk(c);  // through the node cache, if any (then AtHand)
      else if (reader.ok()) bytes->AllowAnyWait();
      promise.set_value(reader);
      if (whole || !reader.ok()) DropOnDemand(c);  // held by `open` / the next caller tries again
    }
    if (future.wait_for(std::chrono::duration<double>(OpenTimeout())) != std::future_status::ready)
      return Status::IOError(storage->Url(path) + ": timed out opening it (storage_options timeout)");
    return future.get();
  }

  // Forgets chunk c's on-demand reader (its chunk is in the cache now; its memory goes
  // with the last item that uses it).
  void DropOnDemand(uint32_t c) {
    std::lock_guard lock(on_demand_mu);
    on_demand.Erase(c);
  }

  // The bytes of chunk c, to be read whole.
  Result<std::shared_ptr<ChunkBytes>> WholeChunk(uint32_t c, bool verify) {
    std::string path = ChunkPath(c);
    if (source->sourcing() == ChunkSourcing::kInPlace) return std::shared_ptr<ChunkBytes>(std::make_shared<NoChunkBytes>());
    if (local) {
      auto file = MappedFile::Open(path);
      if (!file.ok()) {
        if (file.status().code() == StatusCode::kNotFound)
          return Status::NotFound(file.status().message() + " (chunk listed in " + source->index_name() +
                                  " is missing)");
        return file.status();
      }
      return std::shared_ptr<ChunkBytes>(std::make_shared<MappedChunkBytes>(*file));
    }
    if (cache) {
      CHUTE_ASSIGN_OR_RETURN(auto bytes, cache->Open(c));
      DropOnDemand(c);  // read whole from now on
      return bytes;
    }
    if (fetched) return FetchedChunkBytes(*source, c);
    auto remote = std::make_shared<RemoteChunkBytes>(storage, path, chunks()[c], options.part_size, verify);
    remote->Start(*download_pool);
    return std::shared_ptr<ChunkBytes>(std::move(remote));
  }

  // The open reader of chunk c (opened now if it is not).
  Result<std::shared_ptr<ChunkReader>> Chunk(uint32_t c) {
    {
      std::lock_guard lock(open_mu);
      if (auto* reader = open.Find(c)) return *reader;
    }
    bool verify = options.verify_checksums && !(*verified)[c].load(std::memory_order_acquire);
    CHUTE_ASSIGN_OR_RETURN(auto bytes, WholeChunk(c, verify));
    if (cache) verify = false;  // verified when it was fetched
    std::atomic<uint8_t>* flags = check_flags ? &(*check_flags)[check_base[c]] : nullptr;
    CHUTE_ASSIGN_OR_RETURN(auto reader, source->OpenChunk(c, std::move(bytes), storage->Url(ChunkPath(c)), verify, flags));
    if (local || cache) (*verified)[c].store(1, std::memory_order_release);
    // Opening a chunk is rare next to reading from it: the share is recomputed here as
    // processes come and go.
    uint64_t open_share = cache ? cache->capacity() / (kOpenCacheShare * cache->attached()) : UINT64_MAX;
    std::lock_guard lock(open_mu);
    open.SetMaxWeight(open_share);
    return open.Insert(c, std::move(reader), chunks()[c].num_bytes);
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
      std::lock_guard lock(open_mu);
      if (!open.Find(c)) opening.push_back(c);
    }
    if (source->sourcing() != ChunkSourcing::kFile) opening.clear();  // no chunk files
    for (uint32_t c : opening) {
      int fd = ::open(ChunkPath(c).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // opening the chunk reports it
      ::posix_fadvise(fd, 0, static_cast<off_t>(source->TablesSizeHint(c)), POSIX_FADV_WILLNEED);
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
    if (local || (cache && cache->IsReady(c))) return true;
    std::lock_guard lock(open_mu);
    return open.Find(c) != nullptr;
  }

  Result<Item> ReadOnDemand(uint32_t c, uint64_t j) {
    if (fetched) return source->FetchItem(c, j);
    CHUTE_ASSIGN_OR_RETURN(auto reader, OnDemandChunk(c));
    return reader->GetItem(j);
  }
};

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::~Dataset() {
  // Inherited through fork(): its threads, condition variables and clients belong to the
  // parent (destroying a condvar a parent thread waited on blocks forever): leave it.
  if (impl_) impl_->owner.LeakIfInherited(impl_);
}

Result<std::shared_ptr<Dataset>> Dataset::Open(const std::string& url, const DatasetOptions& options,
                                               const StorageOptions& storage_options) {
  CHUTE_ASSIGN_OR_RETURN(StorageLocation location, OpenStorage(url, storage_options));
  std::error_code ec;
  if (location.storage->is_local() && !std::filesystem::is_directory(location.path, ec))
    return Status::NotFound(url + ": no such dataset directory; run chute.optimize(..., output_dir=...) first "
                            "or check the path");
  auto impl = std::make_unique<Impl>();
  impl->url = url;
  impl->storage = std::move(location.storage);
  impl->root = std::move(location.path);
  impl->options = options;
  impl->options.description.clear();  // kept once, by the source
  SourceLocation where{url, impl->storage, impl->root, options.columns, options.cache_dir,
                       options.object_storage_options, options.concurrency, options.allow_missing,
                       options.as_paths, options.split};
  CHUTE_ASSIGN_OR_RETURN(impl->source, OpenSource(options.format, where, options.description));
  impl->fetched = impl->source->sourcing() == ChunkSourcing::kFetched;
  impl->local = impl->storage->is_local() && !impl->fetched;
  impl->timeout = impl->fetched ? impl->source->FetchTimeout() : impl->storage->timeout();
  const auto& chunks = impl->source->chunks();
  impl->starts.push_back(0);
  for (auto& c : chunks) impl->starts.push_back(impl->starts.back() + c.num_items);
  impl->fingerprint = Fingerprint(*impl->source);
  const size_t concurrency = std::max<size_t>(1, options.concurrency);
  if (!impl->local) {
    impl->download_pool = std::make_unique<IoPool>("chute-download", concurrency, kBackgroundNice);
    if (!options.cache_dir.empty()) {
      NodeCacheOptions cache_options{options.cache_dir, options.max_cache_size, options.part_size,
                                     options.verify_checksums, std::max<size_t>(2, concurrency / 2)};
      CHUTE_ASSIGN_OR_RETURN(impl->cache, NodeCache::Open(cache_options, url, impl->fingerprint, impl->storage,
                                                          impl->root, *impl->source, impl->download_pool.get()));
      impl->item_pool = std::make_unique<IoPool>("chute-item", kItemThreadsPerRequest * concurrency);
    }
  }
  impl->open = LruMap<uint32_t, std::shared_ptr<ChunkReader>>(options.max_open_chunks);
  CHUTE_ASSIGN_OR_RETURN(impl->verified, SharedFlags::Make(chunks.size()));
  if (impl->local && options.verify_checksums) {
    uint64_t flags = 0;
    for (uint32_t c = 0; c < chunks.size(); ++c) {
      impl->check_base.push_back(flags);
      flags += impl->source->NumCheckFlags(c);
    }
    if (flags) {
      CHUTE_ASSIGN_OR_RETURN(impl->check_flags, SharedFlags::Make(flags));
    }
  }
  return std::shared_ptr<Dataset>(new Dataset(std::move(impl)));
}

const std::string& Dataset::url() const { return impl_->url; }
bool Dataset::is_local() const { return impl_->local; }
double Dataset::timeout() const { return impl_->timeout; }
const Source& Dataset::source() const { return *impl_->source; }
uint64_t Dataset::num_items() const { return impl_->starts.back(); }
const std::vector<ChunkInfo>& Dataset::chunks() const { return impl_->chunks(); }
const std::vector<uint64_t>& Dataset::chunk_starts() const { return impl_->starts; }
const std::string& Dataset::fingerprint() const { return impl_->fingerprint; }
const std::string& Dataset::cache_path() const {
  static const std::string none;
  return impl_->cache ? impl_->cache->path() : none;
}
uint64_t Dataset::cache_capacity() const { return impl_->cache ? impl_->cache->capacity() : 0; }
uint32_t Dataset::ChunkOf(uint64_t i) const { return impl_->ChunkOf(i); }

Result<Item> Dataset::GetItem(uint64_t i) const {
  if (i >= num_items())
    return Status::Invalid("item " + std::to_string(i) + " out of range for " + impl_->url + " (" +
                           std::to_string(num_items()) + " items)");
  uint32_t c = ChunkOf(i);
  return GetChunkItem(c, i - impl_->starts[c]);
}

Result<Item> Dataset::GetChunkItem(uint32_t chunk, uint64_t j) const {
  if (chunk >= chunks().size() || j >= chunks()[chunk].num_items)
    return Status::Invalid("chunk " + std::to_string(chunk) + " item " + std::to_string(j) + " out of range");
  CHUTE_ASSIGN_OR_RETURN(auto reader, impl_->Chunk(chunk));
  return reader->GetItem(j);
}

Status Dataset::VerifyChunk(uint32_t c) const {
  trace::Span span("checksum");
  Impl* m = impl_.get();
  if (c >= chunks().size()) return Status::Invalid("chunk " + std::to_string(c) + " out of range for " + m->url);
  const ChunkInfo& info = chunks()[c];
  if (!info.has_checksum) return Status::OK();  // nothing to check against
  const std::string path = m->ChunkPath(c), url = m->storage->Url(path);
  std::shared_ptr<ChunkBytes> bytes;
  if (m->local) {
    CHUTE_ASSIGN_OR_RETURN(bytes, m->WholeChunk(c, true));
    if (bytes->size() == info.num_bytes) {
      bytes->WillNeed(0, bytes->size());
      uint64_t sum = Checksum(bytes->data(), bytes->size());
      ReleasePages(bytes->mapping(), {bytes->data(), bytes->size()});
      if (sum != info.checksum) return WholeFileMismatch(url, sum, info.checksum);
    }  // else: opening it reports the size
  } else {
    // Downloaded into memory whatever the cache holds: the stored object is checked.
    auto remote = std::make_shared<RemoteChunkBytes>(m->storage, path, info, m->options.part_size, true);
    remote->Start(*m->download_pool);
    CHUTE_RETURN_NOT_OK(remote->Wait(0, info.num_bytes));  // with the whole-chunk checksum
    bytes = std::move(remote);
  }
  return m->source->OpenChunk(c, std::move(bytes), url, true, nullptr).status();
}

void Dataset::Prefetch(std::span<const uint32_t> chunks) const {
  if (impl_->cache) impl_->cache->Prefetch(chunks);
}

Result<Item> Dataset::ReadItem(uint64_t i) const {
  if (i >= num_items()) return GetItem(i);
  uint32_t c = ChunkOf(i);
  if (impl_->AtHand(c)) return GetChunkItem(c, i - impl_->starts[c]);
  return impl_->ReadOnDemand(c, i - impl_->starts[c]);
}

Result<std::vector<Item>> Dataset::GetItems(std::span<const uint64_t> ids, bool direct) const {
  Impl* m = impl_.get();
  for (uint64_t i : ids)
    if (i >= num_items()) return GetItem(i).status();  // the out-of-range error
  std::vector<Item> items(ids.size());
  if (m->local) {
    CHUTE_ASSIGN_OR_RETURN(auto readers, m->LocalReaders(ids));
    for (size_t k = 0; k < ids.size(); ++k) {
      CHUTE_ASSIGN_OR_RETURN(items[k], readers[k]->GetItem(ids[k] - m->starts[ChunkOf(ids[k])]));
    }
    return items;
  }
  std::vector<std::tuple<size_t, uint32_t, uint64_t>> late;  // (position, chunk, index in chunk)
  std::vector<uint32_t> late_chunks;
  for (size_t k = 0; k < ids.size(); ++k) {
    uint32_t c = ChunkOf(ids[k]);
    uint64_t j = ids[k] - m->starts[c];
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
  if (!batch->Wait(m->OpenTimeout()))
    return Status::IOError(m->url + ": timed out reading " + std::to_string(late.size()) +
                           " items (storage_options timeout)");
  CHUTE_RETURN_NOT_OK(batch->status);
  // Afterwards: whole chunks would compete with these reads for connections.
  Prefetch(late_chunks);
  return std::move(batch->items);
}

}  // namespace chute
