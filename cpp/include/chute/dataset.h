// Reading a dataset of any registered kind (chute/source.h; chute's own format by
// default) from a local directory or an object store (chute/storage.h). This is the
// engine under the Reader (chute/reader.h): where a chunk's bytes come from and how items
// are read from them. Local chunks are memory-mapped in place. Remote chunks are
// downloaded whole by parallel ranged reads — into the node-local cache when there is
// one (prefetched ahead of the readers), else into memory — and an item wanted before its
// chunk is there is read by its own byte ranges.
//
// Threads (the one thread model; all pools start on first use, so a Dataset opened in a
// parent process starts none before a DataLoader forks its workers, and a local dataset
// never starts any):
//   download   `concurrency` threads: the ranged GETs of whole-chunk downloads (below
//              normal priority: consumers keep their CPU);
//   fetch      max(2, concurrency / 2) threads, with a node cache: chunks prefetched into
//              the cache at once, each waiting for its parts on the download threads;
//   item       kItemThreadsPerRequest x concurrency threads, with a node cache: direct
//              reads of single items (each mostly waiting for its first byte);
// plus the Reader's gather threads for token batches (reader.h). `concurrency` is the
// one knob (Python: max_concurrency=).
//
// Lifetime: Dataset::Open returns a shared_ptr; Items returned by it own (share) the
// memory their leaves point to, so they stay valid after the Dataset is destroyed.
// Thread-safety: all const methods may be called concurrently from any thread.
// Fork: a local Dataset may be used in a child process after fork() (as long as no other
// thread of the parent was inside one of its methods at the fork); the chunks one
// process has verified count as verified in all of them. A remote one must not (its
// clients and threads belong to the parent): open a new one in the child (passing
// description = source().description() to skip reading the index again). A Dataset
// destroyed in a process other than the one that opened it releases nothing (its memory
// stays with the child until exit).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "chute/export.h"
#include "chute/format.h"
#include "chute/source.h"
#include "chute/status.h"
#include "chute/storage.h"

namespace chute {

// Threads of the item pool per unit of `concurrency` (see the thread model above).
inline constexpr size_t kItemThreadsPerRequest = 4;

struct DatasetOptions {
  // The registered source (chute/source.h) that reads the dataset ("chute", "litdata",
  // "mds", "webdataset"); "" recognizes it from its index.json, or from *.tar files and no
  // index (WebDataset).
  std::string format;
  // Verify each chunk's checksum the first time this process opens it.
  bool verify_checksums = true;
  // Chunk readers kept open (LRU); Items keep their own chunk alive regardless. Open
  // chunks of a node cache hold references (they cannot be evicted): each process also
  // keeps them under capacity / (4 x the processes attached to the cache), so that
  // those of the whole node stay within a quarter of it.
  size_t max_open_chunks = 64;
  // Remote reads: bytes per ranged GET, and the thread model's knob (GETs in flight for
  // whole-chunk downloads; see above).
  uint64_t part_size = 8 << 20;
  size_t concurrency = 16;
  // Node-local cache of remote chunks: a directory under `cache_dir` keyed by the URL and
  // the dataset's fingerprint (a rewritten dataset never reuses stale chunks), shared by
  // every process on the node through a shared-memory index (see cache/shm_index.h):
  // each chunk is fetched once per node. Empty: no cache (chunks live in memory).
  std::string cache_dir;
  // Bytes the cache may hold (exceeded only by chunks being read); 0: half the free
  // space of the cache's file system.
  uint64_t max_cache_size = 0;
  // Source::description() of an earlier open of the same URL (e.g. in a forked worker
  // reopening its parent's dataset): the index is not read again.
  std::string description;
  // The columns to read, for formats that can read fewer (Parquet: only their byte
  // ranges are fetched); empty: all. Invalid for the others.
  std::vector<std::string> columns;
  // Parquet datasets whose files are named by split (Hugging Face's
  // "<split>-00000-of-00003.parquet"): the split to read; required when there are several.
  std::string split;
  // Raw objects (format "raw"): an item whose object is missing is skipped (it comes back
  // as Item::missing, which readers skip) instead of failing with an error naming it.
  bool allow_missing = false;
  // Raw objects that are all local files: an object's field is its path (a string), not
  // its bytes.
  bool as_paths = false;
  // Sources that fetch objects named by the dataset (raw objects): the options of the
  // objects' stores (the dataset's own `storage_options` are for where it lives).
  StorageOptions object_storage_options;
};

// Leaves every node cache this process uses: drops its chunk references and its
// registration, and the last process out removes the shared-memory index. Waits for the
// cache calls under way. For a process that exits without ShutdownStorage() (a forked
// DataLoader worker, whose inherited object-store clients must not be touched);
// ShutdownStorage() does it too. Datasets with a cache fail to read afterwards.
CHUTE_API void DetachAllCaches();

// A dataset's directory in a node cache (for tools: chute cache ls / clear).
struct CachedDataset {
  std::string path;  // the cache directory (under cache_dir)
  std::string url;   // the dataset it holds chunks of ("" if not recorded)
  uint64_t chunks = 0;  // chunk files cached
  uint64_t bytes = 0;
};
// The dataset directories of the node cache `cache_dir`, by URL (none if it does not
// exist).
CHUTE_API std::vector<CachedDataset> ListCaches(const std::string& cache_dir);
// Removes one dataset's cache directory (CachedDataset::path) and its shared-memory
// index. Invalid while a running process uses it.
CHUTE_API Status RemoveCache(const std::string& path);

class CHUTE_API Dataset {
 public:
  // Opens the dataset at `url` with the source `options.format` (chute: reads and
  // validates `<url>/index.json`). Errors: NotFound (no such directory, bucket or
  // index), Corrupt (unparseable index), VersionMismatch (newer format), Invalid
  // (unknown format), and the storage's errors (storage.h).
  static Result<std::shared_ptr<Dataset>> Open(const std::string& url, const DatasetOptions& options = {},
                                               const StorageOptions& storage_options = {});
  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  const std::string& url() const;
  // True when the chunks are local files (read in place, usable after fork()).
  bool is_local() const;
  // Seconds a storage operation may take (the storage's `timeout` option; 0 for local).
  double timeout() const;
  // What kind of dataset this is: its chunks, schema and description.
  const Source& source() const;
  uint64_t num_items() const;
  const std::vector<ChunkInfo>& chunks() const;
  // First global item index of each chunk, plus num_items() at the end.
  const std::vector<uint64_t>& chunk_starts() const;
  // The chunk that holds global item `i` (< num_items()).
  uint32_t ChunkOf(uint64_t i) const;
  // 16 hex digits identifying the dataset's content (a digest of its chunk list and
  // checksums): equal for copies of one dataset, different after it is rewritten.
  const std::string& fingerprint() const;
  // The node-local cache directory of this dataset, or "" (local dataset, or no cache).
  const std::string& cache_path() const;
  // Bytes the node cache may hold (0 without a cache).
  uint64_t cache_capacity() const;

  // Global item `i`. Errors name the chunk file: NotFound, Corrupt (checksum, truncation).
  Result<Item> GetItem(uint64_t i) const;
  Result<Item> GetChunkItem(uint32_t chunk, uint64_t j) const;
  // Random access: like GetItem, but if item i's chunk is remote and neither open nor
  // in the node cache, reads only the chunk's header and tables and the spans of the
  // item's bytes (or of its compressed block) — not the whole chunk — and checks them
  // against their span checksums (version-2 chunks).
  Result<Item> ReadItem(uint64_t i) const;
  // Items `ids` (global indices), in order. `direct` (with a node cache): the items of
  // chunks not yet cached are read by their own byte ranges, in parallel, and their
  // chunks are queued for download (Prefetch) once those reads are done, so the call
  // does not wait for whole chunks — for the first batch of an epoch, which would
  // otherwise wait for every chunk it touches (each item is then downloaded twice: keep
  // it to few batches).
  Result<std::vector<Item>> GetItems(std::span<const uint64_t> ids, bool direct = false) const;
  // Checks chunk c as stored (not as cached): its bytes against the checksum the index
  // gives, then its structure (the source opens it with verification). Reads the whole
  // chunk. Errors name it: NotFound, Corrupt, the storage's errors.
  Status VerifyChunk(uint32_t c) const;
  // Starts fetching `chunks` into the node cache in the background, in this order, and
  // returns at once (remote datasets with a cache; otherwise a no-op). Chunks already
  // cached or being fetched are skipped; failures surface when the chunk is read.
  void Prefetch(std::span<const uint32_t> chunks) const;

 private:
  struct Impl;
  explicit Dataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chute
