// Raw objects as a source (chute/source.h, format "raw"): a sample is a row of an index
// table whose download columns hold object URLs (any registered storage, or local paths)
// and whose other columns are values. The table is `index.parquet` in the dataset's
// directory, written by chute.StreamingRawDataset from whatever index it was given (CSV,
// JSON, Parquet, a listing of a prefix or directory), with its settings in the file's
// key-value metadata under "chute.raw":
//   {"download": [column, ...], "local": bool, "index_col": column or null,
//    "block_bytes": [estimated object bytes of each row group] or absent}
// A chunk is a block of rows: a row group. Its rows are read from the index on demand (a
// process holds a few row groups, never the table).
//
// Objects that are all local files are read in place (ChunkSourcing::kInPlace, each
// mapped when its item is read). Otherwise a chunk is fetched by the source
// (kFetched): every object of its rows requested at once on the source's pool of
// `concurrency` threads, the bytes written into one chunk file as they arrive, laid out as
//   object bytes, back to back, in arrival order, then zeros to a multiple of 8 bytes
//   slots: one per (row, download column), row-major: u64 offset, u64 size, u64 state
//          (0 fetched, 1 no URL (null), 2 missing: the store said it does not exist)
//   u64 number of slots, u64 kRawMagic
// so that the node cache holds blocks like any chunk (one download per node, LRU,
// SIGKILL-safe) and a missing object is remembered like a present one.
//
// An item: the row's columns in the index's order, each download column replaced by its
// object's bytes (null without URL). A missing object is an error naming the row, the
// column and the URL, or, with SourceLocation::allow_missing, an item without leaves.
#pragma once

#include <cstdint>

namespace chute {

inline constexpr uint64_t kRawMagic = 0x314b4c4257415243;  // "CRAWBLK1"

enum class RawSlotState : uint64_t { kFetched = 0, kNoUrl = 1, kMissing = 2 };

struct RawSlot {
  uint64_t offset = 0;
  uint64_t size = 0;
  RawSlotState state = RawSlotState::kNoUrl;
};

}  // namespace chute
