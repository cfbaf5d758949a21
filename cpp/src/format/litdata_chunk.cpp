// litdata chunk readers (litdata.h): the classic container (u32 N, u32 off[N+1] absolute,
// items), whose items are pytree items (u32 size per leaf, then the leaves) or, for
// TokensLoader, raw arrays; the framed "batch" zstd layout (magic LDFZ01); per-sample zstd
// items; whole-file zstd; and chunks whose rows are an Arrow IPC file at the end (magic
// LDARW01), read with Arrow C++.
#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/record_batch.h>
#include <arrow/array.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "format/arrow_rows.h"
#include "format/litdata.h"
#include "util/bytes.h"
#include "util/codec.h"

namespace chute::litdata {

namespace {

uint32_t U32BigEndian(const std::byte* p) {
  auto b = reinterpret_cast<const uint8_t*>(p);
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

// The decompressed size a zstd frame declares in its header (litdata's writers record it).
Result<uint64_t> ZstdContentSize(const std::byte* p, size_t n) {
  if (n < 6 || LoadU32(p) != 0xFD2FB528u) return Status::Corrupt("not a zstd frame");
  auto descriptor = static_cast<uint8_t>(p[4]);
  unsigned fcs_flag = descriptor >> 6, single_segment = (descriptor >> 5) & 1, dict_flag = descriptor & 3;
  size_t at = 5 + (single_segment ? 0 : 1) + (dict_flag == 3 ? 4 : dict_flag);
  size_t width = fcs_flag == 0 ? (single_segment ? 1 : 0) : (fcs_flag == 1 ? 2 : (fcs_flag == 2 ? 4 : 8));
  if (width == 0) return Status::Corrupt("a zstd frame without its content size");
  if (at + width > n) return Status::Corrupt("a truncated zstd frame header");
  uint64_t size = 0;
  std::memcpy(&size, p + at, width);
  return width == 2 ? size + 256 : size;
}

// Decompresses one zstd frame of `size` bytes (as the file says) into a new buffer.
Result<std::shared_ptr<std::vector<std::byte>>> Inflate(const std::byte* p, size_t n, uint64_t size) {
  static const Result<std::shared_ptr<Codec>> zstd = Codec::ForFamily("zstd");
  CHUTE_RETURN_NOT_OK(zstd.status());
  std::shared_ptr<std::vector<std::byte>> out;
  try {
    out = std::make_shared<std::vector<std::byte>>(size);
  } catch (const std::exception&) {
    return Status::Corrupt("a zstd frame claims " + std::to_string(size) + " decompressed bytes");
  }
  CHUTE_RETURN_NOT_OK((*zstd)->Decompress(p, n, out->data(), out->size()));
  return out;
}

// Leaf views over a pytree item's bytes [p, p + n) (or, with `tokens`, over a raw array).
Result<Item> DecodeItem(const Config& config, const std::byte* p, uint64_t n, std::shared_ptr<const void> owner,
                        const std::string& where) {
  auto memory = std::make_shared<ItemMemory>();
  memory->bytes = std::move(owner);
  memory->scalars.reserve(config.leaves.size());  // stable addresses
  Item item;
  const size_t num_leaves = config.leaves.size();
  const std::byte* sizes = p;
  const std::byte* at = p + (config.tokens ? 0 : 4 * num_leaves);
  if (!config.tokens && 4 * num_leaves > n) return Status::Corrupt(where + ": shorter than its size header");
  uint64_t left = n - (at - p);
  for (size_t k = 0; k < num_leaves; ++k) {
    const Leaf& spec = config.leaves[k];
    uint64_t size = config.tokens ? left : LoadU32(sizes + 4 * k);
    if (size > left) return Status::Corrupt(where + ": leaf " + std::to_string(k) + " runs past the item's end");
    LeafView leaf;
    leaf.data = at;
    leaf.size = size;
    auto bad = [&](const char* why) {
      return Status::Corrupt(where + ": leaf " + std::to_string(k) + " " + why);
    };
    switch (spec.serializer) {
      case Serializer::kInt:
      case Serializer::kFloat:
        if (size != 8) return bad("is not 8 bytes");
        leaf.kind = spec.serializer == Serializer::kInt ? LeafKind::kInt : LeafKind::kFloat;
        break;
      case Serializer::kBool:
        if (size != 1) return bad("is not 1 byte");
        memory->scalars.push_back(static_cast<int64_t>(at[0] != std::byte{0}));
        leaf.kind = LeafKind::kBool;
        leaf.data = reinterpret_cast<const std::byte*>(&memory->scalars.back());
        leaf.size = 8;
        break;
      case Serializer::kStr: leaf.kind = LeafKind::kString; break;
      case Serializer::kBytes:
      case Serializer::kJpeg:
      case Serializer::kPil:
      case Serializer::kJson: leaf.kind = LeafKind::kBytes; break;
      case Serializer::kNumpy1d:
      case Serializer::kTensor1d:
        if (size % spec.dtype.itemsize()) return bad("is not a whole number of elements");
        leaf.kind = LeafKind::kArray;
        leaf.dtype = spec.dtype;
        leaf.shape = {static_cast<int64_t>(size / spec.dtype.itemsize())};
        break;
      case Serializer::kNumpy:
      case Serializer::kTensor: {
        // u32 dtype index, u32 ndim, u32 dims[ndim]: little-endian for numpy; for tensors
        // big-endian since 0.2.76, little before: the reading whose sizes add up wins.
        bool numpy = spec.serializer == Serializer::kNumpy;
        bool found = false;
        for (int reading = numpy ? 1 : 0; reading < 2 && size >= 8; ++reading) {
          bool big = reading == 0;
          auto u32 = [&](uint64_t i) { return big ? U32BigEndian(at + 4 * i) : LoadU32(at + 4 * i); };
          uint32_t index = u32(0), ndim = u32(1);
          if (ndim > 64 || 8 + 4 * uint64_t{ndim} > size) continue;
          DType dtype;
          std::string unused;
          if (!(numpy ? NumpyDType(index, &dtype, &unused) : TorchDType(index, &dtype, &unused))) continue;
          std::vector<int64_t> shape;
          for (uint32_t d = 0; d < ndim; ++d) shape.push_back(u32(2 + d));
          uint64_t header = 8 + 4 * uint64_t{ndim}, bytes = 0;
          if (!ArrayBytes(shape, dtype.itemsize(), &bytes) || bytes != size - header) continue;
          leaf.kind = LeafKind::kArray;
          leaf.dtype = dtype;
          leaf.shape = std::move(shape);
          leaf.data = at + header;
          leaf.size = size - header;
          found = true;
          break;
        }
        if (!found) return bad("has no valid array header");
        break;
      }
    }
    item.leaves.push_back(std::move(leaf));
    at += size;
    left -= size;
  }
  if (left != 0) return Status::Corrupt(where + ": bytes after its last leaf");
  item.owner = std::move(memory);
  return item;
}

// The classic container over `data` (a file's bytes, mapped, downloaded or decompressed).
// `sample_zstd`: each item is a zstd frame holding the pytree item.
class ClassicReader final : public ChunkReader {
 public:
  ClassicReader(std::shared_ptr<const Config> config, std::shared_ptr<ChunkBytes> bytes,
                std::shared_ptr<const std::vector<std::byte>> inflated, std::string url)
      : config_(std::move(config)), bytes_(std::move(bytes)), inflated_(std::move(inflated)), url_(std::move(url)) {}

  Result<Item> GetItem(uint64_t j) override {
    const std::string where = url_ + ": item " + std::to_string(j);
    CHUTE_RETURN_NOT_OK(Wait(4 + 4 * j, 8));
    uint64_t begin = LoadU32(data() + 4 + 4 * j), end = LoadU32(data() + 8 + 4 * j);
    if (begin > end || end > size()) return Status::Corrupt(where + ": offsets past the chunk's end");
    CHUTE_RETURN_NOT_OK(Wait(begin, end - begin));
    std::shared_ptr<const void> owner = inflated_ ? std::shared_ptr<const void>(inflated_) : bytes_;
    if (config_->compression != Compression::kSample)
      return DecodeItem(*config_, data() + begin, end - begin, std::move(owner), where);
    CHUTE_ASSIGN_OR_RETURN(uint64_t raw, ZstdContentSize(data() + begin, end - begin));
    auto item = Inflate(data() + begin, end - begin, raw);
    if (!item.ok()) return Status::Corrupt(where + ": " + item.status().message());
    return DecodeItem(*config_, (*item)->data(), (*item)->size(), *item, where);
  }

 private:
  const std::byte* data() const { return inflated_ ? inflated_->data() : bytes_->data(); }
  uint64_t size() const { return inflated_ ? inflated_->size() : bytes_->size(); }
  Status Wait(uint64_t offset, uint64_t length) const {
    if (offset + length > size()) return Status::Corrupt(url_ + ": a read past the chunk's end");
    return inflated_ ? Status::OK() : bytes_->Wait(offset, length);
  }

  std::shared_ptr<const Config> config_;
  std::shared_ptr<ChunkBytes> bytes_;
  std::shared_ptr<const std::vector<std::byte>> inflated_;  // whole-file zstd, decompressed
  std::string url_;
};

// "LDFZ01": items concatenated and compressed in frames of K (compression_batch_size).
class FramedReader final : public ChunkReader {
 public:
  static constexpr uint64_t kHeader = 24;
  FramedReader(std::shared_ptr<const Config> config, std::shared_ptr<ChunkBytes> bytes, std::string url, uint64_t n,
               uint64_t per_frame, uint64_t frames)
      : config_(std::move(config)), bytes_(std::move(bytes)), url_(std::move(url)), n_(n), per_frame_(per_frame),
        frames_(frames) {}

  Result<Item> GetItem(uint64_t j) override {
    const std::string where = url_ + ": item " + std::to_string(j);
    const std::byte* p = bytes_->data();
    const uint64_t frame = j / per_frame_, records = kHeader + 4 * (n_ + 1);
    if (frame >= frames_) return Status::Corrupt(where + ": past the chunk's frames");
    const std::byte* record = p + records + 24 * frame;
    uint64_t first = LoadU32(record), count = LoadU32(record + 4), offset = LoadU64(record + 8);
    uint64_t length = LoadU32(record + 16), raw = LoadU32(record + 20);
    if (first != frame * per_frame_ || j >= first + count || first + count > n_ || !InRange(offset, length, bytes_->size()))
      return Status::Corrupt(where + ": its frame record is out of range");
    uint64_t base = LoadU32(p + kHeader + 4 * first), from = LoadU32(p + kHeader + 4 * j),
             to = LoadU32(p + kHeader + 4 * (j + 1));
    if (from < base || to < from || to - base > raw) return Status::Corrupt(where + ": its offsets are out of range");
    uint64_t start = from - base, end = to - base;
    std::shared_ptr<const std::vector<std::byte>> inflated;
    {
      std::lock_guard lock(mu_);  // the last frame inflated, for the items after it
      if (frame == cached_frame_) inflated = cached_;
    }
    if (!inflated) {
      CHUTE_RETURN_NOT_OK(bytes_->Wait(offset, length));
      auto out = Inflate(p + offset, length, raw);
      if (!out.ok()) return Status::Corrupt(where + ": " + out.status().message());
      inflated = *out;
      std::lock_guard lock(mu_);
      cached_frame_ = frame;
      cached_ = inflated;
    }
    return DecodeItem(*config_, inflated->data() + start, end - start, inflated, where);
  }

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<ChunkBytes> bytes_;
  std::string url_;
  uint64_t n_, per_frame_, frames_;
  std::mutex mu_;
  uint64_t cached_frame_ = UINT64_MAX;
  std::shared_ptr<const std::vector<std::byte>> cached_;
};

// Rows of an Arrow IPC file stored after the (empty) items: one leaf per column.
class ArrowRowsReader final : public ChunkReader {
 public:
  ArrowRowsReader(std::string url, std::vector<std::shared_ptr<arrow::RecordBatch>> batches,
                  std::vector<uint64_t> starts, std::vector<int> columns)
      : url_(std::move(url)), batches_(std::move(batches)), starts_(std::move(starts)), columns_(std::move(columns)) {}

  Result<Item> GetItem(uint64_t j) override {
    size_t b = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), j) - starts_.begin()) - 1;
    return ArrowRowItem(batches_[b], static_cast<int64_t>(j - starts_[b]), columns_, url_);
  }

 private:
  std::string url_;
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches_;  // they keep the chunk's bytes alive
  std::vector<uint64_t> starts_;  // first row of each batch
  std::vector<int> columns_;      // the column of each leaf
};

// A buffer over chunk memory that keeps the chunk alive.
class ChunkBuffer final : public arrow::Buffer {
 public:
  ChunkBuffer(const std::byte* data, int64_t size, std::shared_ptr<const void> owner)
      : arrow::Buffer(reinterpret_cast<const uint8_t*>(data), size), owner_(std::move(owner)) {}

 private:
  std::shared_ptr<const void> owner_;
};

constexpr char kFooterMagic[8] = {'L', 'D', 'A', 'R', 'W', '0', '1', '\0'};
constexpr char kFramedMagic[8] = {'L', 'D', 'F', 'Z', '0', '1', '\0', '\0'};

Result<std::shared_ptr<ChunkReader>> OpenArrowRows(const Config& config, std::shared_ptr<ChunkBytes> bytes,
                                                   const std::string& url, uint64_t n, uint64_t blob_size) {
  const uint64_t size = bytes->size(), start = size - 12 - blob_size;
  auto buffer = std::make_shared<ChunkBuffer>(bytes->data() + start, static_cast<int64_t>(blob_size), bytes);
  auto file = std::make_shared<arrow::io::BufferReader>(buffer);
  auto reader = arrow::ipc::RecordBatchFileReader::Open(file);
  if (!reader.ok()) return Status::Corrupt(url + ": its Arrow rows do not open: " + reader.status().ToString());
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  std::vector<uint64_t> starts{0};
  for (int b = 0; b < (*reader)->num_record_batches(); ++b) {
    auto batch = (*reader)->ReadRecordBatch(b);
    if (!batch.ok()) return Status::Corrupt(url + ": Arrow record batch " + std::to_string(b) + ": " +
                                            batch.status().ToString());
    starts.push_back(starts.back() + static_cast<uint64_t>((*batch)->num_rows()));
    batches.push_back(std::move(*batch));
  }
  if (starts.back() != n)
    return Status::Corrupt(url + ": its Arrow rows hold " + std::to_string(starts.back()) + " rows, index.json says " +
                           std::to_string(n));
  std::vector<int> columns;  // by name: the leaves are the sample dict's keys in data_spec order
  for (const std::string& name : config.names) {
    int c = batches.empty() ? -1 : batches[0]->schema()->GetFieldIndex(name);
    if (c < 0 && !batches.empty())
      return Status::Corrupt(url + ": its Arrow rows have no column '" + name + "' (data_spec names it)");
    columns.push_back(c);
  }
  if (config.names.size() != config.leaves.size())
    return Status::Unsupported(url + ": Arrow rows of a sample that is not a flat dict are not read");
  starts.pop_back();
  return std::shared_ptr<ChunkReader>(
      std::make_shared<ArrowRowsReader>(url, std::move(batches), std::move(starts), std::move(columns)));
}

}  // namespace

Result<std::shared_ptr<ChunkReader>> OpenChunk(std::shared_ptr<const Config> config, std::shared_ptr<ChunkBytes> bytes,
                                               const std::string& url, uint64_t n, uint64_t raw_size, bool whole_file) {
  std::shared_ptr<const std::vector<std::byte>> inflated;
  if (whole_file) {  // no random access inside
    CHUTE_RETURN_NOT_OK(bytes->Wait(0, bytes->size()));
    auto out = Inflate(bytes->data(), bytes->size(), raw_size);
    if (!out.ok()) return Status::Corrupt(url + ": " + out.status().message());
    inflated = *out;
  }
  const std::byte* p = inflated ? inflated->data() : bytes->data();
  const uint64_t size = inflated ? inflated->size() : bytes->size();
  if (size < 8) return Status::Corrupt(url + ": " + std::to_string(size) + " bytes, too short for a litdata chunk");
  CHUTE_RETURN_NOT_OK(bytes->Wait(0, 8));
  if (!inflated && std::memcmp(p, kFramedMagic, 8) == 0) {
    if (size < FramedReader::kHeader) return Status::Corrupt(url + ": a truncated frame header");
    CHUTE_RETURN_NOT_OK(bytes->Wait(0, FramedReader::kHeader));
    uint32_t version = static_cast<uint32_t>(p[8]) | (static_cast<uint32_t>(p[9]) << 8);
    uint64_t items = LoadU32(p + 12), per_frame = LoadU32(p + 16), frames = LoadU32(p + 20);
    if (version != 1) return Status::VersionMismatch(url + ": framed zstd chunk version " + std::to_string(version) +
                                                     " (chute reads version 1)");
    if (items != n || per_frame == 0 || frames != (n + per_frame - 1) / per_frame)
      return Status::Corrupt(url + ": its frame header does not match index.json's " + std::to_string(n) + " items");
    uint64_t tables = FramedReader::kHeader + 4 * (n + 1) + 24 * frames;
    if (tables > size) return Status::Corrupt(url + ": truncated frame tables");
    CHUTE_RETURN_NOT_OK(bytes->Wait(0, tables));
    return std::shared_ptr<ChunkReader>(std::make_shared<FramedReader>(config, std::move(bytes), url, n, per_frame,
                                                                       frames));
  }
  if (LoadU32(p) != n)
    return Status::Corrupt(url + ": holds " + std::to_string(LoadU32(p)) + " items, index.json says " + std::to_string(n));
  if (!inflated && size >= 12) {  // rows in an Arrow IPC footer?
    CHUTE_RETURN_NOT_OK(bytes->Wait(size - 12, 12));
    uint64_t blob = LoadU32(p + size - 12);
    // The footer's magic, a blob that fits after the (empty) items and starts like an
    // Arrow IPC file: a classic chunk's last item may end with the magic too.
    if (std::memcmp(p + size - 8, kFooterMagic, 8) == 0 && blob + 12 <= size && 4 + 4 * (n + 1) <= size - 12 - blob) {
      uint64_t start = size - 12 - blob;
      CHUTE_RETURN_NOT_OK(bytes->Wait(4 + 4 * n, 4));
      CHUTE_RETURN_NOT_OK(bytes->Wait(start, blob));
      if (LoadU32(p + 4 + 4 * n) <= start && blob >= 6 && std::memcmp(p + start, "ARROW1", 6) == 0)
        return OpenArrowRows(*config, std::move(bytes), url, n, blob);
    }
  }
  if (4 + 4 * (n + 1) > size) return Status::Corrupt(url + ": truncated offsets table");
  return std::shared_ptr<ChunkReader>(
      std::make_shared<ClassicReader>(std::move(config), std::move(bytes), std::move(inflated), url));
}

}  // namespace chute::litdata
