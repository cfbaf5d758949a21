// A remote dataset's chunks in the node-local cache: the cache directory of one dataset
// (keyed by its URL and content fingerprint, so a rewritten dataset never reuses stale
// chunks), its shared-memory index (shm_index.h), whole-chunk downloads into it, and
// prefetching in the background.
//
// Threads: `fetch_threads` threads (started on first use, below normal priority) each
// fetch one chunk at a time, its parts running on the caller's part pool.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "cache/shm_index.h"
#include "chute/source.h"
#include "util/io_pool.h"

namespace chute {

struct NodeCacheOptions {
  std::string cache_dir;      // the parent of every dataset's cache directory
  uint64_t max_size = 0;      // 0: half the free space of cache_dir's file system
  uint64_t part_size = 8 << 20;
  bool verify = true;         // check each downloaded chunk's checksum
  size_t fetch_threads = 2;   // chunks fetched at once by Prefetch
};

class NodeCache {
 public:
  // `source`'s chunks, under `root` in `storage` (or fetched by the source itself:
  // ChunkSourcing::kFetched). `parts`: the pool the ranged reads of a download run on.
  // Both outlive the cache.
  static Result<std::unique_ptr<NodeCache>> Open(const NodeCacheOptions& options, const std::string& url,
                                                 const std::string& fingerprint, std::shared_ptr<Storage> storage,
                                                 std::string root, const Source& source, IoPool* parts);

  const std::string& path() const { return path_; }
  uint64_t capacity() const { return index_->capacity(); }
  // Processes of the node attached to this dataset's cache (at least 1).
  uint32_t attached() const { return index_->attached(); }
  // Chunk c from the cache, downloaded by this thread if no process has it; the cache
  // reference is held until the bytes are released.
  Result<std::shared_ptr<ChunkBytes>> Open(uint32_t c);
  // Whether chunk c is ready in the cache (a hint).
  bool IsReady(uint32_t c) const { return index_->IsReady(c); }
  // Starts fetching `chunks` in the background, in this order; chunks cached or being
  // fetched are skipped; failures surface when the chunk is opened.
  void Prefetch(std::span<const uint32_t> chunks);

 private:
  NodeCache() = default;
  // Chunk c in the cache with a reference held.
  Result<std::string> Acquire(uint32_t c);

  std::string path_;
  std::shared_ptr<Storage> storage_;
  std::string root_;
  const Source* source_ = nullptr;
  NodeCacheOptions options_;
  IoPool* parts_ = nullptr;
  std::shared_ptr<ShmIndex> index_;
  std::mutex mu_;
  std::unordered_set<uint32_t> prefetching_;
  // Declared last: destroyed first, before what its tasks use.
  std::unique_ptr<IoPool> fetch_pool_;
};

}  // namespace chute
