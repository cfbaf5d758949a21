// Reading one chute chunk file (docs/format.md, "Chunk files") from its bytes: the header
// and tables are validated when it is opened, items are decoded on request, and with
// verification each span of data is checked against its checksum before the first item
// in it is returned (version 2).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "chute/format.h"
#include "chute/source.h"
#include "chute/status.h"

namespace chute {

// The likely size of a chunk's header and tables (offsets, about one block entry per MiB
// of compressed chunk, the span checksums).
uint64_t ChunkTablesSizeHint(const ChunkInfo& info);
// Span flags a chunk of `num_bytes` may need (its spans are at least 2^kMinSpanShift).
uint64_t MaxSpanFlags(uint64_t num_bytes);

// Opens the chunk `info` over `bytes`; `url` names it in errors. Their size is checked
// against index.json's here. With `verify`: a mapped version-1 chunk is checksummed whole, now
// (remote bytes were checked when downloaded); a version-2 chunk checks its header and
// tables now, and each span of its data before the first item in it is returned (also
// when only that item's spans were read from an object store). `span_flags`
// (MaxSpanFlags(info.num_bytes), shared by the processes mapping the chunk) record which
// spans are checked; null: the reader keeps its own.
Result<std::shared_ptr<ChunkReader>> OpenChuteChunk(std::shared_ptr<ChunkBytes> bytes, std::string url,
                                                    const ChunkInfo& info, bool verify,
                                                    std::atomic<uint8_t>* span_flags);

}  // namespace chute
