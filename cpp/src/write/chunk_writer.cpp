// ChunkWriter (chute/writer.h): items -> chunk files (docs/format.md, "Chunk files").
#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "chute/writer.h"
#include "format/chunk_layout.h"
#include "format/index_file.h"
#include "format/item_codec.h"
#include "util/checksum.h"
#include "util/codec.h"

namespace chute {

namespace {

// The stream buffer of the last ChunkWriter this process dropped, for the next one: its
// pages stay mapped, so a writer per part (optimize) faults in no fresh memory (a page
// fault per 4 KiB cost more than the copies here).
std::mutex spare_mu;
std::vector<std::byte> spare_stream;

std::string ChunkFileName(const std::string& prefix, uint64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06llu.bin", static_cast<unsigned long long>(index));
  return prefix + buf;
}

// XXH3-64 of each 2^kSpanShift bytes of the concatenation of `data` (the last span
// shorter).
std::vector<uint64_t> SpanChecksums(const std::vector<std::span<const std::byte>>& data) {
  const uint64_t span = uint64_t{1} << kSpanShift;
  std::vector<uint64_t> sums;
  ChecksumStream sum;
  uint64_t filled = 0;  // bytes in the current span
  for (auto part : data) {
    while (!part.empty()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(part.size(), span - filled));
      sum.Update(part.data(), n);
      part = part.subspan(n);
      if ((filled += n) == span) {
        sums.push_back(sum.Digest());
        sum.Reset();
        filled = 0;
      }
    }
  }
  if (filled) sums.push_back(sum.Digest());
  return sums;
}

}  // namespace

struct ChunkWriter::Impl {
  std::shared_ptr<Storage> storage;
  std::string root;
  WriterOptions options;
  CompressionSpec spec;
  std::shared_ptr<Codec> codec;

  // The chunk being built.
  std::vector<std::byte> stream;        // uncompressed item stream
  std::vector<uint64_t> item_offsets;   // stream position of each item
  std::vector<BlockEntry> blocks;       // file_offset relative to data start until flush
  std::vector<std::vector<std::byte>> compressed;
  uint64_t block_start = 0;             // stream position of the open block
  uint64_t block_first_item = 0;
  int64_t num_tokens = 0;               // -1 once an item is not one 1-D integer array

  std::vector<ChunkInfo> chunks;
  uint64_t num_items = 0;

  ~Impl() {
    std::lock_guard lock(spare_mu);
    if (stream.capacity() > spare_stream.capacity()) stream.swap(spare_stream);
  }

  Status CloseBlock() {
    if (block_start >= stream.size()) return Status::OK();
    std::vector<std::byte> out;
    CHUTE_RETURN_NOT_OK(codec->Compress(stream.data() + block_start, stream.size() - block_start, &out));
    uint64_t rel = blocks.empty() ? 0 : blocks.back().file_offset + blocks.back().file_size;
    blocks.push_back({block_first_item, block_start, stream.size() - block_start, rel, out.size()});
    compressed.push_back(std::move(out));
    // The next block starts 64-aligned so its arrays stay aligned once decompressed.
    stream.resize(AlignUp(stream.size(), kArrayAlignment));
    block_start = stream.size();
    block_first_item = item_offsets.size();
    return Status::OK();
  }

  Status FlushChunk() {
    if (item_offsets.empty()) return Status::OK();
    if (codec) CHUTE_RETURN_NOT_OK(CloseBlock());
    ChunkHeader h{};
    std::memcpy(h.magic, kChunkMagic, sizeof h.magic);
    h.version = kFormatVersion;
    h.codec = static_cast<uint32_t>(spec.codec);
    h.num_items = item_offsets.size();
    h.num_blocks = blocks.size();
    h.stream_size = stream.size();
    std::vector<uint64_t> offsets = item_offsets;
    offsets.push_back(stream.size());
    std::vector<std::span<const std::byte>> data;
    if (codec) {
      for (auto& c : compressed) data.emplace_back(c.data(), c.size());
    } else {
      data.emplace_back(stream.data(), stream.size());
    }
    std::vector<uint64_t> spans = SpanChecksums(data);
    h.span_shift = kSpanShift;
    h.num_spans = static_cast<uint32_t>(spans.size());
    uint64_t tables = sizeof h + offsets.size() * 8 + blocks.size() * sizeof(BlockEntry) + spans.size() * 8;
    h.data_offset = AlignUp(tables, kArrayAlignment);
    for (auto& b : blocks) b.file_offset += h.data_offset;
    std::vector<std::byte> padding(h.data_offset - tables);

    std::vector<std::span<const std::byte>> parts;
    parts.emplace_back(reinterpret_cast<const std::byte*>(&h), sizeof h);
    parts.emplace_back(reinterpret_cast<const std::byte*>(offsets.data()), offsets.size() * 8);
    parts.emplace_back(reinterpret_cast<const std::byte*>(blocks.data()), blocks.size() * sizeof(BlockEntry));
    parts.emplace_back(reinterpret_cast<const std::byte*>(spans.data()), spans.size() * 8);
    ChecksumStream tables_sum;  // the header (tables_xxh3 still 0) and the tables
    for (auto p : parts) tables_sum.Update(p.data(), p.size());
    h.tables_xxh3 = tables_sum.Digest();
    parts.emplace_back(padding.data(), padding.size());
    parts.insert(parts.end(), data.begin(), data.end());
    ChecksumStream sum;
    uint64_t total = 0;
    for (auto p : parts) {
      sum.Update(p.data(), p.size());
      total += p.size();
    }
    ChunkInfo info{ChunkFileName(options.chunk_prefix, chunks.size()), h.num_items, total, sum.Digest(), num_tokens};
    CHUTE_RETURN_NOT_OK(storage->Write(JoinPath(root, info.file), parts, WriteMode::kBulk));
    chunks.push_back(std::move(info));

    stream.clear();
    item_offsets.clear();
    blocks.clear();
    compressed.clear();
    block_start = 0;
    block_first_item = 0;
    num_tokens = 0;
    return Status::OK();
  }
};

ChunkWriter::ChunkWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ChunkWriter::~ChunkWriter() = default;
ChunkWriter::ChunkWriter(ChunkWriter&&) noexcept = default;
ChunkWriter& ChunkWriter::operator=(ChunkWriter&&) noexcept = default;

Result<std::unique_ptr<ChunkWriter>> ChunkWriter::Create(const std::string& url, const WriterOptions& options,
                                                         const StorageOptions& storage_options) {
  if (options.chunk_bytes == 0) return Status::Invalid("chunk_bytes must be positive");
  if (!options.chunk_prefix.starts_with("chunk-") || options.chunk_prefix.find('/') != std::string::npos)
    return Status::Invalid("chunk_prefix must start with \"chunk-\" and hold no '/': " + options.chunk_prefix);
  auto impl = std::make_unique<Impl>();
  CHUTE_ASSIGN_OR_RETURN(StorageLocation location, OpenStorage(url, storage_options));
  impl->storage = std::move(location.storage);
  impl->root = std::move(location.path);
  impl->options = options;
  CHUTE_ASSIGN_OR_RETURN(impl->spec, CompressionSpec::Parse(options.compression));
  if (impl->spec.codec != CodecId::kNone) {
    CHUTE_ASSIGN_OR_RETURN(impl->codec, Codec::Make(impl->spec));
  }
  {
    std::lock_guard lock(spare_mu);
    impl->stream.swap(spare_stream);
  }
  impl->stream.clear();
  // Room for a whole chunk at once: growing by doubling would copy it and fault in fresh
  // pages at every step. (Untouched, the reservation costs no memory.)
  impl->stream.reserve(std::min<uint64_t>(options.chunk_bytes, uint64_t{256} << 20) + (1 << 20));
  for (const ChunkInfo& c : options.resume_chunks) {
    if (c.file != ChunkFileName(options.chunk_prefix, impl->chunks.size()))
      return Status::Invalid(url + ": chunk " + c.file + " out of sequence");
    // Kept if intact (a record may name a chunk that a crash or a hand damaged since).
    std::string path = JoinPath(impl->root, c.file);
    auto size = impl->storage->Size(path);
    if (!size.ok() && size.status().code() != StatusCode::kNotFound) return size.status();
    if (!size.ok() || *size != c.num_bytes) break;
    if (impl->storage->is_local()) {
      CHUTE_ASSIGN_OR_RETURN(std::string bytes, impl->storage->ReadAll(path));
      if (Checksum(bytes.data(), bytes.size()) != c.checksum) break;
    }
    impl->chunks.push_back(c);
    impl->num_items += c.num_items;
  }
  return std::unique_ptr<ChunkWriter>(new ChunkWriter(std::move(impl)));
}

Status ChunkWriter::Add(std::span<const LeafInput> leaves) {
  Impl& w = *impl_;
  for (auto& leaf : leaves) {
    if (leaf.shape.size() > 255) return Status::Invalid("arrays may have at most 255 dimensions");
    if (leaf.kind != LeafKind::kArray && !leaf.shape.empty())
      return Status::Invalid("only array leaves have a shape");
  }
  uint64_t start = AlignUp(w.stream.size(), 8);
  uint64_t size = EncodedItemSize(leaves, start);
  bool full = (start + size > w.options.chunk_bytes) ||
              (w.options.chunk_items && w.item_offsets.size() >= w.options.chunk_items);
  if (!w.item_offsets.empty() && full) {
    CHUTE_RETURN_NOT_OK(w.FlushChunk());
    start = 0;
    size = EncodedItemSize(leaves, start);
  }
  if (w.codec && w.stream.size() - w.block_start >= w.options.block_bytes) {
    CHUTE_RETURN_NOT_OK(w.CloseBlock());
    start = AlignUp(w.stream.size(), 8);
    size = EncodedItemSize(leaves, start);
  }
  w.stream.resize(start + size);  // zero-fills padding
  EncodeItem(leaves, start, w.stream.data() + start);
  w.item_offsets.push_back(start);
  ++w.num_items;
  bool tokens = leaves.size() == 1 && leaves[0].kind == LeafKind::kArray && leaves[0].shape.size() == 1 &&
                (leaves[0].dtype.code == DType::kInt || leaves[0].dtype.code == DType::kUInt);
  w.num_tokens = tokens && w.num_tokens >= 0 ? w.num_tokens + leaves[0].shape[0] : -1;
  return Status::OK();
}

Status ChunkWriter::Close() { return impl_->FlushChunk(); }

uint64_t ChunkWriter::num_items() const { return impl_->num_items; }
uint64_t ChunkWriter::num_chunks() const { return impl_->chunks.size(); }
const std::vector<ChunkInfo>& ChunkWriter::chunks() const { return impl_->chunks; }

}  // namespace chute
