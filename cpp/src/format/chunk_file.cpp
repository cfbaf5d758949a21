#include "format/chunk_file.h"

#include <algorithm>
#include <mutex>
#include <vector>

#include "format/chunk_layout.h"
#include "format/item_codec.h"
#include "util/checksum.h"
#include "util/codec.h"
#include "util/posix_file.h"
#include "chute/trace.h"

namespace chute {

uint64_t ChunkTablesSizeHint(const ChunkInfo& info) {
  return sizeof(ChunkHeader) + (info.num_items + 1) * sizeof(uint64_t) +
         (info.num_bytes / (1 << 20) + 2) * sizeof(BlockEntry) +
         ((info.num_bytes >> kSpanShift) + 1) * sizeof(uint64_t);
}

uint64_t MaxSpanFlags(uint64_t num_bytes) { return (num_bytes >> kMinSpanShift) + 1; }

namespace {

class ChuteChunkReader final : public ChunkReader {
 public:
  ChuteChunkReader(std::string url, std::shared_ptr<ChunkBytes> bytes)
      : url_(std::move(url)), bytes_(std::move(bytes)) {}

  Status Validate(const ChunkInfo& info, bool verify, std::atomic<uint8_t>* span_flags);

  Result<Item> GetItem(uint64_t j) override {
    std::string where = url_ + " item " + std::to_string(j);
    if (j >= header_.num_items)
      return Status::Invalid(where + ": out of range (the chunk holds " + std::to_string(header_.num_items) + ")");
    uint64_t begin = offsets_[j], end = offsets_[j + 1];
    if (begin > end || end > header_.stream_size) return Status::Corrupt(where + ": bad item offsets" + kRewriteHint);
    if (!codec_) {
      CHUTE_RETURN_NOT_OK(WaitVerified(header_.data_offset + begin, header_.data_offset + end));
      std::shared_ptr<const void> owner(bytes_, bytes_.get());
      const std::byte* base = bytes_->data() + header_.data_offset + begin;
      CHUTE_ASSIGN_OR_RETURN(Item item, DecodeItem(base, end - begin, std::move(owner), where));
      item.mapping = bytes_->mapping();
      if (!item.mapping.empty()) item.mapped_bytes = {base, end - begin};
      return item;
    }
    size_t b = BlockOf(j);
    CHUTE_ASSIGN_OR_RETURN(std::shared_ptr<std::byte> block, Block(b));
    const BlockEntry& e = blocks_[b];
    end = std::min(end, e.stream_offset + e.stream_size);
    if (begin < e.stream_offset || begin > end) return Status::Corrupt(where + ": item outside its block" + kRewriteHint);
    const std::byte* base = block.get() + (begin - e.stream_offset);
    return DecodeItem(base, end - begin, std::shared_ptr<const void>(std::move(block)), where);
  }

  // The item's bytes, or its compressed block, widened to the spans to check.
  void WillNeed(uint64_t j) const override {
    if (bytes_->mapping().empty() || j >= header_.num_items) return;
    uint64_t from = header_.data_offset + offsets_[j], to = header_.data_offset + offsets_[j + 1];
    if (codec_) {
      const BlockEntry& e = blocks_[BlockOf(j)];
      from = e.file_offset;
      to = e.file_offset + e.file_size;
    }
    auto [start, stop] = SpanAligned(from, to);
    bytes_->WillNeed(start, stop);
  }

 private:
  size_t BlockOf(uint64_t j) const {
    auto it = std::upper_bound(blocks_.begin(), blocks_.end(), j,
                               [](uint64_t x, const BlockEntry& b) { return x < b.first_item; });
    return static_cast<size_t>(it - blocks_.begin()) - 1;
  }

  // File bytes [from, to) widened to whole spans when spans are checked.
  std::pair<uint64_t, uint64_t> SpanAligned(uint64_t from, uint64_t to) const {
    if (!span_sums_ || to <= from) return {from, to};
    const uint32_t shift = header_.span_shift;
    const uint64_t base = header_.data_offset;
    return {base + (((from - base) >> shift) << shift),
            std::min<uint64_t>(bytes_->size(), base + ((((to - 1 - base) >> shift) + 1) << shift))};
  }

  // Waits for file bytes [from, to) and the rest of their spans, then checks the spans
  // not checked yet.
  Status WaitVerified(uint64_t from, uint64_t to) {
    auto [start, stop] = SpanAligned(from, to);
    CHUTE_RETURN_NOT_OK(bytes_->Wait(start, stop - start));
    return VerifySpans(from, to);
  }

  // Checks the spans holding file bytes [from, to) that no process has checked yet
  // (version-2 chunks read with verification; otherwise a no-op).
  Status VerifySpans(uint64_t from, uint64_t to) {
    if (!span_sums_ || to <= from) return Status::OK();
    const uint32_t shift = header_.span_shift;
    const uint64_t base = header_.data_offset;
    for (uint64_t k = (from - base) >> shift; k <= (to - 1 - base) >> shift; ++k) {
      if (span_flags_[k].load(std::memory_order_acquire)) continue;
      uint64_t begin = base + (k << shift), end = std::min<uint64_t>(bytes_->size(), begin + (uint64_t{1} << shift));
      uint64_t sum = Checksum(bytes_->data() + begin, end - begin);
      if (sum != span_sums_[k])
        return Status::Corrupt(url_ + ": checksum mismatch in bytes " + std::to_string(begin) + ".." +
                               std::to_string(end) + " (xxh3_64 " + ChecksumToHex(sum) + ", the chunk says " +
                               ChecksumToHex(span_sums_[k]) + ")" + kRewriteHint);
      span_flags_[k].store(1, std::memory_order_release);
      // Hashing mapped the whole span into this process: unmap it (the item wanted is
      // mapped again alone).
      ReleasePages(bytes_->mapping(), {bytes_->data() + begin, end - begin});
    }
    return Status::OK();
  }

  // The decompressed block `b`; the most recent one is kept for sequential reads.
  Result<std::shared_ptr<std::byte>> Block(size_t b) {
    {
      std::lock_guard lock(mu_);
      if (cached_index_ == b && cached_) return cached_;
    }
    const BlockEntry& e = blocks_[b];
    CHUTE_RETURN_NOT_OK(WaitVerified(e.file_offset, e.file_offset + e.file_size));
    auto buf = AllocateAligned(e.stream_size);
    trace::Span span("decode");
    Status st = codec_->Decompress(bytes_->data() + e.file_offset, e.file_size, buf.get(), e.stream_size);
    if (!st.ok()) return Status::Corrupt(url_ + " block " + std::to_string(b) + ": " + st.message() + kRewriteHint);
    std::lock_guard lock(mu_);
    cached_index_ = b;
    cached_ = buf;
    return buf;
  }

  std::string url_;
  std::shared_ptr<ChunkBytes> bytes_;
  ChunkHeader header_{};
  const uint64_t* offsets_ = nullptr;
  const uint64_t* span_sums_ = nullptr;         // set when spans are to be checked
  std::atomic<uint8_t>* span_flags_ = nullptr;  // per span: checked (shared memory, or own_span_flags_)
  std::unique_ptr<std::atomic<uint8_t>[]> own_span_flags_;
  std::vector<BlockEntry> blocks_;
  std::shared_ptr<Codec> codec_;
  std::mutex mu_;
  size_t cached_index_ = SIZE_MAX;
  std::shared_ptr<std::byte> cached_;
};

Status ChuteChunkReader::Validate(const ChunkInfo& info, bool verify, std::atomic<uint8_t>* span_flags) {
  auto corrupt = [&](const std::string& what) { return Status::Corrupt(url_ + ": " + what + kRewriteHint); };
  // Only a file can differ (downloads and on-demand buffers are made of index.json's size).
  const bool mapped = !bytes_->mapping().empty();
  if (bytes_->size() != info.num_bytes) {
    return corrupt((bytes_->size() < info.num_bytes ? "truncated: " : "wrong size: ") +
                   std::to_string(bytes_->size()) + " bytes, index.json says " + std::to_string(info.num_bytes));
  }
  if (bytes_->size() < sizeof header_) return corrupt("shorter than a chunk header");
  CHUTE_RETURN_NOT_OK(bytes_->Wait(0, sizeof header_));
  std::memcpy(&header_, bytes_->data(), sizeof header_);
  if (std::memcmp(header_.magic, kChunkMagic, sizeof kChunkMagic) != 0) return corrupt("not a chute chunk (bad magic)");
  if (header_.version > kFormatVersion)
    return Status::VersionMismatch(url_ + ": chunk format version " + std::to_string(header_.version) +
                                   " is newer than this chute reads (" + std::to_string(kFormatVersion) +
                                   "); upgrade chute");
  bool spans = header_.version >= 2 && header_.span_shift != 0;
  if (mapped && verify && !spans) {  // version 1: the whole file now
    bytes_->WillNeed(0, bytes_->size());
    uint64_t sum = Checksum(bytes_->data(), bytes_->size());
    if (sum != info.checksum) return WholeFileMismatch(url_, sum, info.checksum);
  }
  if (header_.num_items != info.num_items)
    return corrupt("holds " + std::to_string(header_.num_items) + " items, index.json says " +
                   std::to_string(info.num_items));
  uint64_t tables = sizeof header_ + (header_.num_items + 1) * 8 + header_.num_blocks * sizeof(BlockEntry) +
                    (spans ? uint64_t{header_.num_spans} * 8 : 0);
  if (tables > bytes_->size() || header_.data_offset < tables || header_.data_offset > bytes_->size())
    return corrupt("bad tables");
  CHUTE_RETURN_NOT_OK(bytes_->Wait(0, tables));
  if (spans) {
    uint64_t data = bytes_->size() - header_.data_offset;
    if (header_.span_shift < kMinSpanShift || header_.span_shift > kMaxSpanShift ||
        header_.num_spans != (data + (uint64_t{1} << header_.span_shift) - 1) >> header_.span_shift)
      return corrupt("bad span table");
    if (verify) {
      ChunkHeader zeroed = header_;
      zeroed.tables_xxh3 = 0;
      ChecksumStream sum;
      sum.Update(&zeroed, sizeof zeroed);
      sum.Update(bytes_->data() + sizeof header_, tables - sizeof header_);
      if (sum.Digest() != header_.tables_xxh3)
        return corrupt("checksum mismatch in the header or tables (xxh3_64 " + ChecksumToHex(sum.Digest()) +
                       ", the header says " + ChecksumToHex(header_.tables_xxh3) + ")");
    }
    if (verify || span_flags) {  // shared flags: also when reopening a chunk checked before
      span_sums_ = reinterpret_cast<const uint64_t*>(bytes_->data() + tables - header_.num_spans * 8);
      if (!span_flags) {
        own_span_flags_ = std::make_unique<std::atomic<uint8_t>[]>(header_.num_spans);
        span_flags = own_span_flags_.get();
      }
      span_flags_ = span_flags;
    }
  }
  offsets_ = reinterpret_cast<const uint64_t*>(bytes_->data() + sizeof header_);
  if (header_.codec == static_cast<uint32_t>(CodecId::kNone)) {
    if (header_.data_offset + header_.stream_size > bytes_->size()) return corrupt("item stream past end");
    return Status::OK();
  }
  if (header_.codec != static_cast<uint32_t>(CodecId::kZstd)) return corrupt("unknown codec");
  CHUTE_ASSIGN_OR_RETURN(codec_, Codec::Make(CompressionSpec{CodecId::kZstd, 3}));
  blocks_.resize(header_.num_blocks);
  std::memcpy(blocks_.data(), offsets_ + header_.num_items + 1, blocks_.size() * sizeof(BlockEntry));
  if (blocks_.empty() && header_.num_items) return corrupt("no blocks");
  for (auto& b : blocks_) {
    if (b.file_offset < header_.data_offset || b.file_offset + b.file_size > bytes_->size() ||
        b.stream_offset + b.stream_size > header_.stream_size)
      return corrupt("bad block table");
  }
  if (!blocks_.empty() && blocks_[0].first_item != 0) return corrupt("bad block table");
  return Status::OK();
}

}  // namespace

Result<std::shared_ptr<ChunkReader>> OpenChuteChunk(std::shared_ptr<ChunkBytes> bytes, std::string url,
                                                    const ChunkInfo& info, bool verify,
                                                    std::atomic<uint8_t>* span_flags) {
  auto reader = std::make_shared<ChuteChunkReader>(std::move(url), std::move(bytes));
  CHUTE_RETURN_NOT_OK(reader->Validate(info, verify, span_flags));
  return std::shared_ptr<ChunkReader>(std::move(reader));
}

}  // namespace chute
