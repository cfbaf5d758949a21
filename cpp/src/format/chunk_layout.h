// The byte layout of a chunk file and of one item (docs/format.md), shared by the
// writer and the reader. All integers are little-endian.
#pragma once

#include <cstdint>
#include <cstring>

#include "chute/format.h"
#include "chute/status.h"

namespace chute {

inline constexpr char kChunkMagic[8] = {'C', 'H', 'U', 'T', 'E', 'C', 'H', 'K'};

struct ChunkHeader {          // 64 bytes at offset 0
  char magic[8];
  uint32_t version;
  uint32_t codec;             // CodecId
  uint64_t num_items;
  uint64_t num_blocks;        // 0 when uncompressed
  uint64_t data_offset;       // file offset of the item stream / first block (64-aligned)
  uint64_t stream_size;       // uncompressed size of the item stream
  // Version 2: the data is checked in spans of 2^span_shift bytes (0: version 1, only the
  // whole file's checksum in index.json), whose XXH3-64s follow the block table; and
  // the header (with tables_xxh3 zero) and all tables have the checksum tables_xxh3.
  uint32_t span_shift;
  uint32_t num_spans;
  uint64_t tables_xxh3;
};
static_assert(sizeof(ChunkHeader) == 64);
// Written: 64 KiB spans, so that reading one item checks little more than the item (with
// 1 MiB spans, a first batch of 110 KB items read 9x its bytes from a cold disk).
inline constexpr uint32_t kSpanShift = 16;
inline constexpr uint32_t kMinSpanShift = 16;  // read: at most 16 span flags per MiB
inline constexpr uint32_t kMaxSpanShift = 30;

// Followed by: uint64 item_offsets[num_items + 1] (positions in the uncompressed item
// stream), then BlockEntry blocks[num_blocks], then uint64 span_xxh3[num_spans], then
// zero padding up to data_offset.
struct BlockEntry {
  uint64_t first_item;        // first item in this block (blocks hold whole items)
  uint64_t stream_offset;     // where the block starts in the item stream (64-aligned)
  uint64_t stream_size;       // its uncompressed size
  uint64_t file_offset;       // where its compressed bytes start in the file
  uint64_t file_size;         // compressed size
};
static_assert(sizeof(BlockEntry) == 40);

// An item: ItemHeader, LeafEntry[num_leaves], int64 shapes (sum of ndim), payloads.
// Payload offsets are relative to the item start; arrays sit at 64-aligned stream
// positions, so they are 64-aligned in a mapped uncompressed chunk and in a
// decompressed block.
struct ItemHeader {
  uint32_t num_leaves;
  uint32_t reserved;
};
struct LeafEntry {
  uint8_t kind;
  uint8_t dtype_code;
  uint8_t dtype_bits;
  uint8_t ndim;
  uint32_t reserved;
  uint64_t offset;
  uint64_t size;
};
static_assert(sizeof(LeafEntry) == 24);

inline constexpr uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace chute
