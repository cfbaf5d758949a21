// Token datasets for LLM pre-training: every item is one 1-D integer array (a document),
// and the dataset is read as one token stream cut into blocks of `block_size`
// consecutive tokens. Blocks cross document and chunk boundaries; only the final
// remainder (< block_size tokens) is never read — unless the format keeps blocks within
// chunks (Source::token_blocks_within_chunks, litdata): then each chunk's remainder is.
//
// Lifetime: TokenBlocks keeps its Dataset alive.
// Thread-safety: all const methods may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "chute/dataset.h"
#include "chute/export.h"
#include "chute/format.h"
#include "chute/status.h"

namespace chute {

// Converts `count` integers from `src_dtype` to `dst_dtype` (widening, narrowing by
// truncation, or a copy). Integer dtypes of 8, 16, 32 and 64 bits. `simd` picks the
// AVX2 kernel when the CPU has it; false forces the portable loop (same bytes).
CHUTE_API Status ConvertTokens(const std::byte* src, DType src_dtype, std::byte* dst, DType dst_dtype, size_t count,
                               bool simd = true);
// Whether ConvertTokens(simd=true) uses AVX2 on this CPU.
CHUTE_API bool TokensSimdAvailable();

class CHUTE_API TokenBlocks {
 public:
  // Fails with Invalid if the dataset is not a token dataset (index.json has no
  // num_tokens for some chunk: its items are not single 1-D integer arrays).
  static Result<std::shared_ptr<TokenBlocks>> Make(std::shared_ptr<Dataset> dataset, uint64_t block_size);
  ~TokenBlocks();
  TokenBlocks(TokenBlocks&&) noexcept;

  const std::shared_ptr<Dataset>& dataset() const;
  uint64_t block_size() const;
  uint64_t num_blocks() const;
  uint64_t num_tokens() const;
  // Blocks whose first token lies in each chunk (the "chunk sizes" of an EpochOrder over
  // blocks, so that block orders keep chunk locality).
  const std::vector<uint64_t>& blocks_per_chunk() const;
  // First token of each chunk, then num_tokens().
  const std::vector<uint64_t>& chunk_token_starts() const;
  // The chunk holding token `t` (< num_tokens()).
  uint32_t ChunkOfToken(uint64_t t) const;
  // The first token of block `b` (< num_blocks()).
  uint64_t FirstToken(uint64_t b) const;
  // The stored token dtype (of the first document).
  Result<DType> token_dtype() const;

  // Writes block ids[k] into row k of `out` (ids.size() x block_size elements of
  // `out_dtype`), converting with ConvertTokens.
  Status Gather(std::span<const uint64_t> ids, DType out_dtype, std::byte* out, bool simd = true) const;

 private:
  struct Impl;
  explicit TokenBlocks(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chute
