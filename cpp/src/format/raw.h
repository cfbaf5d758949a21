// Raw objects as a source (chute/source.h, format "raw"): a sample is a row of an index
// table whose download columns hold object URLs (any registered storage, or local paths)
// and whose other columns are values. The table is `index.parquet` in the dataset's
// directory, written by chute.StreamingRawDataset from whatever index it was given (CSV,
// JSON, Parquet, a listing of a prefix or directory), with its settings in the file's
// key-value metadata under "chute.raw":
//   {"download": [column, ...], "local": bool, "index_col": column or null,
//    "block_bytes": [estimated object bytes of each row group] or absent,
//    "ranged": [URL columns whose objects Python reads by byte range, not fetched here]}
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
// column and the URL, or, with SourceLocation::allow_missing, an Item::missing (skipped).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chute/format.h"
#include "chute/status.h"

namespace chute {

inline constexpr uint64_t kRawMagic = 0x314b4c4257415243;  // "CRAWBLK1"

enum class RawSlotState : uint64_t { kFetched = 0, kNoUrl = 1, kMissing = 2 };

struct RawSlot {
  uint64_t offset = 0;
  uint64_t size = 0;
  RawSlotState state = RawSlotState::kNoUrl;
};

// The description of the index at `index_path`: {"format": "raw", "digest" (of what the
// index was built from), "source", "columns", "download", "local", "index_col", "blocks":
// [[rows, estimated bytes], ...], "schema"}. Not where the index is: the dataset's
// fingerprint (a digest of this) is the same in every node's cache. Errors name the file.
Result<std::string> DescribeRawIndex(const std::string& index_path);

// What a description says.
struct RawIndex {
  std::vector<ChunkInfo> chunks;  // a block per row group: its rows, its estimated bytes
  std::string schema;             // JSON (docs/format.md)
  std::string source;             // what the user gave, for messages
  std::vector<int> download;      // the download columns' positions among the columns
  std::vector<std::string> download_names;
  bool local = false;             // every object is a local file
  int index_col = -1;             // the position of index_col, or -1
};
// Parses DescribeRawIndex's text; Corrupt naming `url` if malformed.
Result<RawIndex> ParseRawDescription(const std::string& text, const std::string& url);

}  // namespace chute
