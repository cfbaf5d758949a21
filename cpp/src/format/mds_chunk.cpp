// MDS shard reader (mds.h): u32 n, u32 off[n+1] (absolute), the writer's JSON, then the
// samples; a sample is a u32 size per variable-size column, then every column's bytes.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "format/mds.h"
#include "util/bytes.h"

namespace chute::mds {

namespace {

class MdsChunkReader final : public ChunkReader {
 public:
  MdsChunkReader(std::shared_ptr<ChunkBytes> bytes, std::shared_ptr<const std::vector<std::byte>> inflated,
                 std::string url, Columns columns)
      : bytes_(std::move(bytes)), inflated_(std::move(inflated)), url_(std::move(url)), columns_(std::move(columns)) {}

  Result<Item> GetItem(uint64_t j) override {
    const std::byte* base = data();
    uint64_t size = this->size();
    uint64_t table = 4 + 4 * (j + 1);
    CHUTE_RETURN_NOT_OK(Wait(table - 4, 8));
    uint64_t begin = LoadU32(base + table - 4), end = LoadU32(base + table);
    if (begin > end || end > size) return Corrupt("sample " + std::to_string(j) + " has offsets past the shard");
    CHUTE_RETURN_NOT_OK(Wait(begin, end - begin));
    const std::byte* p = base + begin;
    uint64_t left = end - begin, sizes_bytes = 0;
    for (const ColumnSpec& c : *columns_) sizes_bytes += c.fixed_size < 0 ? 4 : 0;
    if (sizes_bytes > left) return Corrupt("sample " + std::to_string(j) + " is shorter than its column sizes");
    auto memory = std::make_shared<ItemMemory>();
    memory->bytes = inflated_ ? std::shared_ptr<const void>(inflated_) : std::shared_ptr<const void>(bytes_);
    memory->scalars.reserve(columns_->size());  // numbers parsed from text; stable addresses for the leaves
    Item item;
    item.leaves.reserve(columns_->size());
    const std::byte* sizes = p;
    const std::byte* at = p + sizes_bytes;
    left -= sizes_bytes;
    for (const ColumnSpec& c : *columns_) {
      uint64_t n = c.fixed_size >= 0 ? static_cast<uint64_t>(c.fixed_size) : LoadU32(sizes);
      if (c.fixed_size < 0) sizes += 4;
      if (n > left)
        return Corrupt("sample " + std::to_string(j) + ": column '" + c.name + "' runs past the sample's end");
      CHUTE_ASSIGN_OR_RETURN(LeafView leaf, Leaf(c, at, n, memory.get(), j));
      item.leaves.push_back(std::move(leaf));
      at += n;
      left -= n;
    }
    if (left != 0) return Corrupt("sample " + std::to_string(j) + " has bytes after its last column");
    item.owner = std::move(memory);
    return item;
  }

 private:
  const std::byte* data() const { return inflated_ ? inflated_->data() : bytes_->data(); }
  uint64_t size() const { return inflated_ ? inflated_->size() : bytes_->size(); }
  Status Wait(uint64_t offset, uint64_t length) const {
    if (offset + length > size()) return Corrupt("a read past the end of the shard");
    return inflated_ ? Status::OK() : bytes_->Wait(offset, length);
  }
  Status Corrupt(const std::string& what) const { return Status::Corrupt(url_ + ": " + what); }

  Result<LeafView> Leaf(const ColumnSpec& c, const std::byte* p, uint64_t n, ItemMemory* memory, uint64_t j) const {
    LeafView leaf;
    leaf.data = p;
    leaf.size = n;
    auto bad = [&](const std::string& why) {
      return Corrupt("sample " + std::to_string(j) + ": column '" + c.name + "' (" + c.encoding + ") " + why);
    };
    switch (c.kind) {
      case Column::kBytes: leaf.kind = LeafKind::kBytes; break;
      case Column::kStr:
      case Column::kJson: leaf.kind = LeafKind::kString; break;
      case Column::kInt:
        if (n != 8) return bad("is not 8 bytes");
        leaf.kind = LeafKind::kInt;
        break;
      case Column::kStrInt:
      case Column::kStrFloat: {
        std::string text(reinterpret_cast<const char*>(p), n);
        char* end = nullptr;
        errno = 0;
        int64_t bits = 0;
        if (c.kind == Column::kStrInt) {
          bits = std::strtoll(text.c_str(), &end, 10);
        } else {
          double v = std::strtod(text.c_str(), &end);
          std::memcpy(&bits, &v, sizeof v);
        }
        if (text.empty() || *end != '\0' || errno == ERANGE) return bad("is not a number: '" + text + "'");
        memory->scalars.push_back(bits);
        leaf.kind = c.kind == Column::kStrInt ? LeafKind::kInt : LeafKind::kFloat;
        leaf.data = reinterpret_cast<const std::byte*>(&memory->scalars.back());
        leaf.size = 8;
        break;
      }
      case Column::kScalar:
        if (n != c.type->dtype.itemsize()) return bad("has the wrong size");
        leaf.kind = LeafKind::kArray;
        leaf.dtype = c.type->dtype;
        break;
      case Column::kArray: return ArrayLeaf(c, p, n, j);
    }
    return leaf;
  }

  // ndarray: [dtype code if not in the spec][shape byte + dims if not in the spec][values].
  Result<LeafView> ArrayLeaf(const ColumnSpec& c, const std::byte* p, uint64_t n, uint64_t j) const {
    auto bad = [&](const std::string& why) {
      return Corrupt("sample " + std::to_string(j) + ": ndarray column '" + c.name + "' " + why);
    };
    const std::byte* end = p + n;
    const NumpyType* type = c.type;
    if (!type) {
      if (p == end) return bad("is empty");
      uint8_t code = static_cast<uint8_t>(*p++);
      for (const NumpyType& t : kNumpyTypes)
        if (t.code == code) type = &t;
      if (!type) return bad("has unknown dtype code " + std::to_string(code));
    }
    LeafView leaf;
    leaf.kind = LeafKind::kArray;
    leaf.dtype = type->dtype;
    leaf.shape = c.shape;
    if (c.shape.empty()) {
      if (p == end) return bad("has no shape");
      uint8_t head = static_cast<uint8_t>(*p++);
      unsigned ndim = head >> 2, width = 1u << (head & 3);
      if (ndim == 0 || static_cast<uint64_t>(end - p) < uint64_t{ndim} * width) return bad("has a bad shape");
      for (unsigned d = 0; d < ndim; ++d, p += width) {
        uint64_t v = 0;
        std::memcpy(&v, p, width);  // little-endian
        leaf.shape.push_back(static_cast<int64_t>(v));
      }
    }
    uint64_t bytes = 0;
    if (!ArrayBytes(leaf.shape, type->dtype.itemsize(), &bytes)) return bad("has a shape too large");
    if (bytes != static_cast<uint64_t>(end - p))
      return bad("holds " + std::to_string(end - p) + " bytes of values, not " + std::to_string(bytes));
    leaf.data = p;
    leaf.size = static_cast<size_t>(end - p);
    return leaf;
  }

  std::shared_ptr<ChunkBytes> bytes_;
  std::shared_ptr<const std::vector<std::byte>> inflated_;  // a compressed shard, decompressed
  std::string url_;
  Columns columns_;
};

}  // namespace

std::shared_ptr<ChunkReader> OpenShard(std::shared_ptr<ChunkBytes> bytes,
                                       std::shared_ptr<const std::vector<std::byte>> inflated, std::string url,
                                       Columns columns) {
  return std::make_shared<MdsChunkReader>(std::move(bytes), std::move(inflated), std::move(url), std::move(columns));
}

}  // namespace chute::mds
