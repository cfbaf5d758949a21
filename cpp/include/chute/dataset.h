// Reading a chute dataset (index.json + chunk files) from a local directory or an
// object store (see storage.h). Local chunks are memory-mapped in place; remote chunks
// are fetched into memory with parallel ranged reads on a pool of I/O threads that
// starts on first use, and an item is returned as soon as its bytes have arrived.
//
// Lifetime: Dataset::Open returns a shared_ptr; Items returned by it own (share) the
// memory their leaves point to, so they stay valid after the Dataset is destroyed.
// Thread-safety: all const methods may be called concurrently from any thread.
// Fork: a local Dataset may be used in a child process after fork() (as long as no other
// thread of the parent was inside one of its methods at the fork); the chunks one
// process has verified count as verified in all of them. A remote one must not (its
// clients and threads belong to the parent): open a new one in the child. A Dataset
// destroyed in a process other than the one that opened it releases nothing (its
// memory stays with the child until exit).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "chute/export.h"
#include "chute/format.h"
#include "chute/status.h"
#include "chute/storage.h"

namespace chute {

struct DatasetOptions {
  // Verify each chunk's checksum the first time this process opens it.
  bool verify_checksums = true;
  // Chunk mappings kept open (LRU); Items keep their own chunk alive regardless.
  size_t max_open_chunks = 64;
  // Remote reads: bytes per ranged GET and GETs in flight.
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
  // The content of index.json when the caller has it already (Dataset::index_json() of
  // the same URL, e.g. in a forked worker reopening its parent's dataset): not read again.
  std::string index_json;
};

// Leaves every node cache this process uses: drops its chunk references and its
// registration, and the last process out removes the shared-memory index. Waits for the
// cache calls under way. For a process that exits without ShutdownStorage() (a forked
// DataLoader worker, whose inherited object-store clients must not be touched);
// ShutdownStorage() does it too. Datasets with a cache fail to read afterwards.
CHUTE_API void DetachAllCaches();

class CHUTE_API Dataset {
 public:
  // Reads and validates `<url>/index.json`. Errors: NotFound (no such directory, bucket
  // or index.json), Corrupt (unparseable index), VersionMismatch (newer format), and
  // the storage's errors (storage.h).
  static Result<std::shared_ptr<Dataset>> Open(const std::string& url, const DatasetOptions& options = {},
                                               const StorageOptions& storage_options = {});
  ~Dataset();
  Dataset(const Dataset&) = delete;
  Dataset& operator=(const Dataset&) = delete;

  const std::string& url() const;
  // True when the chunks are local files (read in place, usable after fork()).
  bool is_local() const;
  uint64_t num_items() const;
  const std::vector<ChunkInfo>& chunks() const;
  // First global item index of each chunk, plus num_items() at the end.
  const std::vector<uint64_t>& chunk_starts() const;
  // index.json as read.
  const std::string& index_json() const;
  // The "schema" object of index.json, serialized as JSON.
  const std::string& schema_json() const;
  // 16 hex digits identifying the dataset's content (a digest of its chunk list and
  // checksums): equal for copies of one dataset, different after it is rewritten.
  const std::string& fingerprint() const;
  // The node-local cache directory of this dataset, or "" (local dataset, or no cache).
  const std::string& cache_path() const;
  // Bytes the node cache may hold (0 without a cache).
  uint64_t cache_capacity() const;
  // "zstd:<level>" or "" when uncompressed.
  const std::string& compression() const;

  // (chunk index, item index inside the chunk) of global item `i` (< num_items()).
  std::pair<uint32_t, uint64_t> Locate(uint64_t i) const;
  // Global item `i`. Errors name the chunk file: NotFound, Corrupt (checksum, truncation).
  Result<Item> GetItem(uint64_t i) const;
  Result<Item> GetChunkItem(uint32_t chunk, uint64_t j) const;
  // Random access: like GetItem, but if item i's chunk is remote and neither open nor
  // in the node cache, reads only the chunk's header and tables and the spans of the
  // item's bytes (or of its compressed block) — not the whole chunk — and checks them
  // against their span checksums (version-2 chunks).
  Result<Item> ReadItem(uint64_t i) const;
  // Items `ids` (global indices), in order. `direct` (with a node cache): the items of
  // chunks not yet cached are read by their own byte ranges, in parallel, while their
  // chunks are fetched whole in the background, so the call does not wait for whole
  // chunks — for the first batch of an epoch, which would otherwise wait for every chunk
  // it touches (each item is then downloaded twice: keep it to few batches).
  Result<std::vector<Item>> GetItems(std::span<const uint64_t> ids, bool direct = false) const;
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
