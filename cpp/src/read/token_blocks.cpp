#include "chute/tokens.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "util/lru_map.h"
#include "util/ranges.h"

namespace chute {

namespace {

bool IsInteger(DType d) {
  return (d.code == DType::kInt || d.code == DType::kUInt) && (d.bits == 8 || d.bits == 16 || d.bits == 32 || d.bits == 64);
}

template <typename S, typename D>
void ConvertScalar(const std::byte* src, std::byte* dst, size_t n) {
  const S* s = reinterpret_cast<const S*>(src);
  D* d = reinterpret_cast<D*>(dst);
  for (size_t k = 0; k < n; ++k) d[k] = static_cast<D>(s[k]);
}

// AVX2 widening kernels: 16 source tokens per iteration, unaligned loads/stores.
__attribute__((target("avx2"))) void U16ToI64Avx2(const std::byte* src, std::byte* dst, size_t n) {
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  int64_t* d = reinterpret_cast<int64_t*>(dst);
  size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k + 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), _mm256_cvtepu16_epi64(a));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k + 4), _mm256_cvtepu16_epi64(_mm_srli_si128(a, 8)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k + 8), _mm256_cvtepu16_epi64(b));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k + 12), _mm256_cvtepu16_epi64(_mm_srli_si128(b, 8)));
  }
  for (; k < n; ++k) d[k] = s[k];
}

__attribute__((target("avx2"))) void U16ToI32Avx2(const std::byte* src, std::byte* dst, size_t n) {
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  int32_t* d = reinterpret_cast<int32_t*>(dst);
  size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k + 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k), _mm256_cvtepu16_epi32(a));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k + 8), _mm256_cvtepu16_epi32(b));
  }
  for (; k < n; ++k) d[k] = s[k];
}

template <bool Signed>
__attribute__((target("avx2"))) void X32ToI64Avx2(const std::byte* src, std::byte* dst, size_t n) {
  using S = std::conditional_t<Signed, int32_t, uint32_t>;
  const S* s = reinterpret_cast<const S*>(src);
  int64_t* d = reinterpret_cast<int64_t*>(dst);
  size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    for (size_t q = 0; q < 16; q += 4) {
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k + q));
      __m256i w = Signed ? _mm256_cvtepi32_epi64(a) : _mm256_cvtepu32_epi64(a);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + k + q), w);
    }
  }
  for (; k < n; ++k) d[k] = static_cast<int64_t>(s[k]);
}

using Kernel = void (*)(const std::byte*, std::byte*, size_t);

template <typename S>
Kernel ScalarTo(DType dst) {
  switch (dst.bits) {
    case 8: return dst.code == DType::kInt ? ConvertScalar<S, int8_t> : ConvertScalar<S, uint8_t>;
    case 16: return dst.code == DType::kInt ? ConvertScalar<S, int16_t> : ConvertScalar<S, uint16_t>;
    case 32: return dst.code == DType::kInt ? ConvertScalar<S, int32_t> : ConvertScalar<S, uint32_t>;
    default: return dst.code == DType::kInt ? ConvertScalar<S, int64_t> : ConvertScalar<S, uint64_t>;
  }
}

Kernel ScalarKernel(DType src, DType dst) {
  bool s = src.code == DType::kInt;
  switch (src.bits) {
    case 8: return s ? ScalarTo<int8_t>(dst) : ScalarTo<uint8_t>(dst);
    case 16: return s ? ScalarTo<int16_t>(dst) : ScalarTo<uint16_t>(dst);
    case 32: return s ? ScalarTo<int32_t>(dst) : ScalarTo<uint32_t>(dst);
    default: return s ? ScalarTo<int64_t>(dst) : ScalarTo<uint64_t>(dst);
  }
}

Kernel SimdKernel(DType src, DType dst) {
  if (!TokensSimdAvailable()) return nullptr;
  bool to_i64 = dst.code == DType::kInt && dst.bits == 64;
  bool to_i32 = dst.code == DType::kInt && dst.bits == 32;
  if (src.code == DType::kUInt && src.bits == 16) return to_i64 ? U16ToI64Avx2 : to_i32 ? U16ToI32Avx2 : nullptr;
  if (src.bits == 32 && to_i64) return src.code == DType::kInt ? X32ToI64Avx2<true> : X32ToI64Avx2<false>;
  return nullptr;
}

}  // namespace

bool TokensSimdAvailable() {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
}

Status ConvertTokens(const std::byte* src, DType src_dtype, std::byte* dst, DType dst_dtype, size_t count, bool simd) {
  if (!IsInteger(src_dtype) || !IsInteger(dst_dtype))
    return Status::Invalid("tokens must be 8/16/32/64-bit integers");
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, count * src_dtype.itemsize());
    return Status::OK();
  }
  Kernel k = simd ? SimdKernel(src_dtype, dst_dtype) : nullptr;
  (k ? k : ScalarKernel(src_dtype, dst_dtype))(src, dst, count);
  return Status::OK();
}

struct TokenBlocks::Impl {
  std::shared_ptr<Dataset> dataset;
  uint64_t block_size = 0;
  uint64_t num_tokens = 0;
  std::vector<uint64_t> chunk_token_starts;  // + end
  std::vector<uint64_t> blocks_per_chunk;
  std::vector<uint64_t> chunk_block_starts;  // blocks within chunks: first block of each chunk + end
  uint64_t num_blocks = 0;

  // The first token of block b.
  uint64_t FirstToken(uint64_t b) const {
    if (chunk_block_starts.empty()) return b * block_size;
    size_t c = RangeOf(chunk_block_starts, b);
    return chunk_token_starts[c] + (b - chunk_block_starts[c]) * block_size;
  }

  // Token offset of each document of a chunk (+ end), for the chunks read lately.
  using DocStartsPtr = std::shared_ptr<const std::vector<uint64_t>>;
  std::mutex mu;
  LruMap<uint32_t, DocStartsPtr> doc_starts{256};

  uint32_t ChunkOfToken(uint64_t t) const {
    return static_cast<uint32_t>(RangeOf(chunk_token_starts, t));
  }

  Result<DocStartsPtr> DocStarts(uint32_t c) {
    {
      std::lock_guard lock(mu);
      if (DocStartsPtr* found = doc_starts.Find(c)) return *found;
    }
    auto starts = std::make_shared<std::vector<uint64_t>>();
    uint64_t n = dataset->chunks()[c].num_items, total = 0;
    starts->reserve(n + 1);
    for (uint64_t j = 0; j < n; ++j) {
      CHUTE_ASSIGN_OR_RETURN(Item item, dataset->GetChunkItem(c, j));
      starts->push_back(total);
      total += item.leaves[0].shape[0];
    }
    starts->push_back(total);
    if (static_cast<int64_t>(total) != dataset->chunks()[c].num_tokens)
      return Status::Corrupt(dataset->url() + " chunk " + dataset->chunks()[c].file + " holds " + std::to_string(total) +
                             " tokens, index.json says " + std::to_string(dataset->chunks()[c].num_tokens));
    std::lock_guard lock(mu);
    return doc_starts.Insert(c, std::move(starts));
  }
};

TokenBlocks::TokenBlocks(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TokenBlocks::~TokenBlocks() = default;
TokenBlocks::TokenBlocks(TokenBlocks&&) noexcept = default;

Result<std::shared_ptr<TokenBlocks>> TokenBlocks::Make(std::shared_ptr<Dataset> dataset, uint64_t block_size) {
  if (block_size == 0) return Status::Invalid("block_size must be positive");
  auto impl = std::make_unique<Impl>();
  impl->block_size = block_size;
  impl->chunk_token_starts.push_back(0);
  for (auto& c : dataset->chunks()) {
    if (c.num_tokens < 0)
      return Status::Invalid(dataset->url() + " is not a token dataset (chunk " + c.file +
                             " holds items other than one 1-D integer array each); TokensLoader needs "
                             "optimize(fn) to return 1-D integer arrays (uint16/uint32/int32/int64)");
    impl->chunk_token_starts.push_back(impl->chunk_token_starts.back() + static_cast<uint64_t>(c.num_tokens));
  }
  impl->num_tokens = impl->chunk_token_starts.back();
  const size_t num_chunks = dataset->chunks().size();
  impl->blocks_per_chunk.assign(num_chunks, 0);
  if (dataset->source().token_blocks_within_chunks()) {
    impl->chunk_block_starts.push_back(0);
    for (size_t c = 0; c < num_chunks; ++c) {
      impl->blocks_per_chunk[c] = static_cast<uint64_t>(dataset->chunks()[c].num_tokens) / block_size;
      impl->chunk_block_starts.push_back(impl->chunk_block_starts.back() + impl->blocks_per_chunk[c]);
    }
    impl->num_blocks = impl->chunk_block_starts.back();
  } else {
    impl->num_blocks = impl->num_tokens / block_size;
    for (size_t c = 0; c < num_chunks; ++c) {
      // blocks b with start b * block_size in [start(c), start(c+1)), b < num_blocks
      auto first = (impl->chunk_token_starts[c] + block_size - 1) / block_size;
      auto end = std::min(impl->num_blocks, (impl->chunk_token_starts[c + 1] + block_size - 1) / block_size);
      impl->blocks_per_chunk[c] = end > first ? end - first : 0;
    }
  }
  impl->dataset = std::move(dataset);
  return std::shared_ptr<TokenBlocks>(new TokenBlocks(std::move(impl)));
}

const std::shared_ptr<Dataset>& TokenBlocks::dataset() const { return impl_->dataset; }
uint32_t TokenBlocks::ChunkOfToken(uint64_t t) const { return impl_->ChunkOfToken(t); }
uint64_t TokenBlocks::FirstToken(uint64_t b) const { return impl_->FirstToken(b); }
uint64_t TokenBlocks::block_size() const { return impl_->block_size; }
uint64_t TokenBlocks::num_tokens() const { return impl_->num_tokens; }
uint64_t TokenBlocks::num_blocks() const { return impl_->num_blocks; }
const std::vector<uint64_t>& TokenBlocks::blocks_per_chunk() const { return impl_->blocks_per_chunk; }
const std::vector<uint64_t>& TokenBlocks::chunk_token_starts() const { return impl_->chunk_token_starts; }

Result<DType> TokenBlocks::token_dtype() const {
  for (uint32_t c = 0; c < impl_->dataset->chunks().size(); ++c) {
    if (impl_->dataset->chunks()[c].num_items == 0) continue;
    CHUTE_ASSIGN_OR_RETURN(Item item, impl_->dataset->GetChunkItem(c, 0));
    return item.leaves[0].dtype;
  }
  return Status::Invalid(impl_->dataset->url() + " holds no tokens");
}

Status TokenBlocks::Gather(std::span<const uint64_t> ids, DType out_dtype, std::byte* out, bool simd) const {
  const Impl& m = *impl_;
  const auto& starts = m.chunk_token_starts;
  size_t out_item = out_dtype.itemsize();
  for (size_t row = 0; row < ids.size(); ++row) {
    if (ids[row] >= num_blocks())
      return Status::Invalid("block " + std::to_string(ids[row]) + " out of range (" + std::to_string(num_blocks()) +
                             " blocks)");
    uint64_t token = m.FirstToken(ids[row]), left = m.block_size;
    std::byte* dst = out + row * m.block_size * out_item;
    uint32_t c = m.ChunkOfToken(token);
    while (left > 0) {
      CHUTE_ASSIGN_OR_RETURN(auto docs, impl_->DocStarts(c));
      uint64_t local = token - starts[c];
      uint64_t j = RangeOf(*docs, local);
      for (; left > 0 && j + 1 < docs->size(); ++j) {
        uint64_t doc_len = (*docs)[j + 1] - (*docs)[j];
        if (doc_len == 0) continue;
        uint64_t offset = local - (*docs)[j];
        uint64_t n = std::min(left, doc_len - offset);
        CHUTE_ASSIGN_OR_RETURN(Item item, m.dataset->GetChunkItem(c, j));
        const LeafView& leaf = item.leaves[0];
        CHUTE_RETURN_NOT_OK(
            ConvertTokens(leaf.data + offset * leaf.dtype.itemsize(), leaf.dtype, dst, out_dtype, n, simd));
        dst += n * out_item;
        left -= n;
        local += n;
        token += n;
      }
      ++c;  // the block continues in the next chunk
    }
  }
  return Status::OK();
}

}  // namespace chute
