// A kind of dataset behind one interface, so that one engine (dataset.h: storage, node
// cache, prefetch, ranged reads; reader.h: order, batches) reads them all.
//
// A source describes a dataset that lives at a URL: its chunks (the unit of locality,
// caching and prefetch: a storage object each, with its item count and byte size), its
// schema, and how to read the items of one chunk from that chunk's bytes. It never
// touches storage for chunk data: the engine hands it the bytes (ChunkBytes) — a mapped
// local or cached file, a download arriving in memory, or a buffer filled on demand by
// ranged reads — and the source's ChunkReader asks for the byte ranges it reads with
// ChunkBytes::Wait before reading them. Ranged random access therefore comes for free:
// over on-demand bytes, the ranges a reader waits for are exactly the ones fetched (its
// header and tables first, as much as TablesSizeHint says, then one item's bytes).
//
// Sources register a factory by format name (RegisterSource), like storage backends by
// URL scheme; Dataset::Open(url, {.format = name}) picks one, so a new kind of dataset
// never edits the engine.
//
// Lifetime: the engine keeps its Source for the Dataset's life; ChunkReaders keep their
// ChunkBytes alive, and Items the memory their leaves point into.
// Thread-safety: every const method of Source, and every method of ChunkBytes and
// ChunkReader, may be called concurrently from any thread. Source methods never block on
// I/O; ChunkReader methods block only in ChunkBytes::Wait (bounded by the storage's
// timeout).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "chute/export.h"
#include "chute/format.h"
#include "chute/status.h"
#include "chute/storage.h"

namespace chute {

// The bytes of one chunk, as the engine provides them.
class CHUTE_API ChunkBytes {
 public:
  virtual ~ChunkBytes() = default;
  virtual const std::byte* data() const = 0;
  virtual size_t size() const = 0;
  // Returns once bytes [offset, offset + length) are present, or why they never will be
  // (a storage error, a timeout, a range past the end: Corrupt).
  virtual Status Wait(uint64_t offset, uint64_t length) = 0;
  // The whole file mapping when the bytes are a mapped file (local or node-cached), else
  // empty: items read in place can then give their pages back (ReleaseMapping).
  virtual std::span<const std::byte> mapping() const { return {}; }
  // Asks the kernel to start reading bytes [from, to) of a mapped file; else a no-op.
  virtual void WillNeed(uint64_t from, uint64_t to) const { (void)from, (void)to; }
};

// One opened chunk: its items.
class CHUTE_API ChunkReader {
 public:
  virtual ~ChunkReader() = default;
  // Item j of the chunk (j < ChunkInfo::num_items). Errors name the chunk's URL.
  virtual Result<Item> GetItem(uint64_t j) = 0;
  // Announces that item j will be read soon (mapped chunks: ChunkBytes::WillNeed on its
  // bytes), so that the disk reads of a batch run together. Optional.
  virtual void WillNeed(uint64_t j) const { (void)j; }
};

// Where the engine gets the bytes of a source's chunks.
enum class ChunkSourcing : uint8_t {
  // The object chunks()[c].file under the dataset's root: mapped in place when local,
  // downloaded (into the node cache or memory) when remote.
  kFile,
  // The source fetches them (FetchChunk; FetchItem for single items): a chunk that is no
  // object of its own — a block of index rows naming raw objects anywhere. Treated as
  // remote: node cache, prefetch, pools.
  kFetched,
  // None: the chunk reader reads what it needs itself, in place (raw objects that are
  // local files); OpenChunk gets empty bytes.
  kInPlace,
};

class CHUTE_API Source {
 public:
  virtual ~Source() = default;

  // The registered name of this kind ("chute").
  virtual const std::string& format() const = 0;
  // Chunk files relative to the dataset's root, in global item order.
  virtual const std::vector<ChunkInfo>& chunks() const = 0;
  // A JSON object describing the fields of an item (see docs/format.md for chute's).
  virtual const std::string& schema_json() const = 0;
  // The dataset's description as read (chute: index.json). Given back to the factory in
  // a process that reopens the dataset (a forked DataLoader worker), it is not read
  // again.
  virtual const std::string& description() const = 0;
  // "zstd:<level>" or "" when the chunks are not compressed (for tools: chute inspect).
  virtual const std::string& compression() const = 0;
  // What lists the chunks, for messages (chute: "index.json").
  virtual const std::string& index_name() const = 0;
  // Token blocks (tokens.h) of this format never cross chunks: each chunk holds
  // floor(its tokens / block_size) blocks and its remainder is never read (litdata's
  // TokensLoader). Otherwise blocks run on across document and chunk boundaries.
  virtual bool token_blocks_within_chunks() const { return false; }
  // The bytes at the start of chunk c that open it (header and tables): an on-demand
  // reader fetches that much in the first request.
  virtual uint64_t TablesSizeHint(uint32_t c) const = 0;
  // A local file already holding exactly chunk c's bytes (kept by the source when opening
  // the dataset read them, as a WebDataset scan does), which the node cache may move into
  // place instead of downloading the chunk; empty if none.
  virtual std::string LocalCopy(uint32_t c) const {
    (void)c;
    return {};
  }
  // Flags the engine keeps for chunk c in memory shared by every process mapping a local
  // dataset (chute: one per checksum span), so that what one process has checked is not
  // checked again by the others. 0: none.
  virtual uint64_t NumCheckFlags(uint32_t c) const = 0;
  // Opens chunk c over `bytes` (`url` names it in errors). `verify`: check what the
  // format can check before handing out data (the engine has already checked the whole
  // chunk's checksum when `bytes` were downloaded whole). `check_flags`:
  // NumCheckFlags(c) flags shared across processes, or null (the reader keeps its own).
  virtual Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes,
                                                         const std::string& url, bool verify,
                                                         std::atomic<uint8_t>* check_flags) const = 0;

  // Where chunk bytes come from (kFile unless the source fetches them itself).
  virtual ChunkSourcing sourcing() const { return ChunkSourcing::kFile; }
  // kFetched: writes chunk c's bytes into `fd`, a new empty file (a node cache file being
  // fetched, or an anonymous one), blocking until they are all there. Errors name the
  // object that failed.
  virtual Status FetchChunk(uint32_t c, int fd) const;
  // kFetched: item j of chunk c read on its own (random access, the first batch of an
  // epoch), without its chunk.
  virtual Result<Item> FetchItem(uint32_t c, uint64_t j) const;
  // kFetched: seconds a FetchItem may take (the timeouts of the stores it reads).
  virtual double FetchTimeout() const { return 60; }
};

// Where a source's dataset lives.
struct SourceLocation {
  std::string url;                   // as given by the user, for messages
  std::shared_ptr<Storage> storage;  // the dataset's storage
  std::string root;                  // the dataset's path inside `storage`
  std::vector<std::string> columns;  // DatasetOptions::columns: read only these (empty: all)
  // Where a source may keep what it derives from the data across runs (WebDataset's scan
  // of tar headers): DatasetOptions::cache_dir, or empty (nothing kept).
  std::string cache_dir;
  // Sources that fetch objects themselves (ChunkSourcing::kFetched): the options of the
  // objects' stores (DatasetOptions::object_storage_options), and the requests they keep
  // in flight.
  StorageOptions storage_options;
  size_t concurrency = 16;
  // Raw objects: an item whose object is missing comes back as Item::missing (a reader
  // skips it) instead of as a NotFound error.
  bool allow_missing = false;
  // Raw objects read in place: fields are the objects' paths (DatasetOptions::as_paths).
  bool as_paths = false;
  // Parquet: the split to read (DatasetOptions::split).
  std::string split;
};

// Makes a source for the dataset at `location`; `description` is Source::description()
// of an earlier open of the same URL, or empty (then it is read from storage). Errors:
// NotFound (nothing of this kind there), Corrupt, VersionMismatch, storage errors.
using SourceFactory =
    std::function<Result<std::shared_ptr<Source>>(const SourceLocation& location, const std::string& description)>;

CHUTE_API void RegisterSource(const std::string& format, SourceFactory factory);
// Opens the dataset at `location` with the source registered as `format`; "" picks it
// from the dataset's index.json (Mosaic's MDS lists "shards", litdata's has "config" and
// "chunks", chute's says "format": "chute"), or, with no index.json, from *.tar files
// there (WebDataset).
CHUTE_API Result<std::shared_ptr<Source>> OpenSource(const std::string& format, const SourceLocation& location,
                                                     const std::string& description = "");

}  // namespace chute
