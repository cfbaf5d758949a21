// Mosaic Streaming's MDS datasets as a source (chute/source.h), read in place: index.json
// with "shards", each shard "shard.NNNNN.mds" (optionally compressed whole, e.g.
// ".mds.zstd"). Layout (../docs/migrating.md links the reference): u32 n, u32 off[n+1]
// (absolute), the writer's JSON, then the samples; a sample is a u32 size per
// variable-size column, then every column's bytes, columns in index order.
//
// A sample becomes a dict of its columns (chute's Python schema, docs/format.md):
// bytes -> bytes, str -> str, int / str_int -> int, str_float -> float, str_decimal ->
// Decimal, the numpy scalar encodings -> numpy scalars, json -> the parsed value, jpeg /
// png / pil -> PIL images, jpeg_array / list[jpeg|png|pil] -> lists of them,
// ndarray[:dtype[:shape]] -> numpy arrays, as Mosaic's reader returns them. pkl columns are
// refused when the dataset is opened.
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "chute/source.h"
#include "util/bytes.h"
#include "util/codec.h"
#include "util/json.h"

namespace chute {

namespace {

// kBytes / kStr columns may be decoded further in Python (ColumnSpec::decoded).
enum class Column : uint8_t { kBytes, kStr, kInt, kScalar, kStrInt, kStrFloat, kJson, kArray };

struct NumpyType {
  const char* name;
  uint8_t code;  // MDS's dtype code in dynamic ndarrays
  DType dtype;
  const char* descr;  // numpy dtype.str
};
constexpr NumpyType kNumpyTypes[] = {
    {"uint8", 8, {DType::kUInt, 8}, "|u1"},      {"int8", 9, {DType::kInt, 8}, "|i1"},
    {"uint16", 16, {DType::kUInt, 16}, "<u2"},   {"int16", 17, {DType::kInt, 16}, "<i2"},
    {"float16", 18, {DType::kFloat, 16}, "<f2"}, {"uint32", 32, {DType::kUInt, 32}, "<u4"},
    {"int32", 33, {DType::kInt, 32}, "<i4"},     {"float32", 34, {DType::kFloat, 32}, "<f4"},
    {"uint64", 64, {DType::kUInt, 64}, "<u8"},   {"int64", 65, {DType::kInt, 64}, "<i8"},
    {"float64", 66, {DType::kFloat, 64}, "<f8"}};

const NumpyType* NumpyTypeNamed(const std::string& name) {
  for (const NumpyType& t : kNumpyTypes)
    if (name == t.name) return &t;
  return nullptr;
}

struct ColumnSpec {
  std::string name, encoding;
  Column kind = Column::kBytes;
  int64_t fixed_size = -1;        // column_sizes[i], or -1 (a u32 size in each sample)
  const NumpyType* type = nullptr;  // scalars; ndarray with a dtype in its spec
  std::vector<int64_t> shape;     // ndarray with a shape in its spec
  json::Object decoded{{"type", "bytes"}};  // kBytes / kStr: the schema field's type (docs/format.md)
};

Result<ColumnSpec> ParseColumn(const std::string& name, const std::string& encoding, const std::string& where) {
  ColumnSpec c{name, encoding};
  auto refuse = [&](const std::string& why) {
    return Status::Unsupported(where + ": column '" + name + "' has encoding '" + encoding + "': " + why);
  };
  auto image_list = [&](bool reserved, const char* element) {
    c.decoded = {{"type", "image_list"}, {"reserved", reserved}, {"element", element}};
  };
  if (encoding == "bytes") c.kind = Column::kBytes;
  else if (encoding == "str") c.kind = Column::kStr, c.decoded = {{"type", "str"}};
  else if (encoding == "str_decimal") c.kind = Column::kStr, c.decoded = {{"type", "decimal"}};
  else if (encoding == "jpeg" || encoding == "png") c.decoded = {{"type", "image"}};
  else if (encoding == "pil") c.decoded = {{"type", "pil_raw"}};
  else if (encoding == "jpeg_array" || encoding == "jpegarray") image_list(false, "image");
  else if (encoding == "list[jpeg]" || encoding == "list[png]") image_list(true, "image");
  else if (encoding == "list[pil]") image_list(true, "pil_raw");
  else if (encoding == "int") c.kind = Column::kInt;
  else if (encoding == "str_int") c.kind = Column::kStrInt;
  else if (encoding == "str_float") c.kind = Column::kStrFloat;
  else if (encoding == "json") c.kind = Column::kJson;
  else if ((c.type = NumpyTypeNamed(encoding))) c.kind = Column::kScalar;
  else if (encoding == "ndarray" || encoding.rfind("ndarray:", 0) == 0) {
    c.kind = Column::kArray;
    std::string spec = encoding.size() > 8 ? encoding.substr(8) : "";
    std::string dtype = spec.substr(0, spec.find(':'));
    if (!dtype.empty() && !(c.type = NumpyTypeNamed(dtype))) return refuse("unknown ndarray dtype '" + dtype + "'");
    if (size_t colon = spec.find(':'); colon != std::string::npos) {
      std::string dims = spec.substr(colon + 1);
      for (size_t at = 0; at <= dims.size();) {
        size_t comma = std::min(dims.find(',', at), dims.size());
        char* end = nullptr;
        std::string dim = dims.substr(at, comma - at);
        int64_t d = std::strtoll(dim.c_str(), &end, 10);
        if (dim.empty() || *end != '\0' || d < 0) return refuse("bad ndarray shape '" + dims + "'");
        c.shape.push_back(d);
        at = comma + 1;
      }
    }
  } else if (encoding == "pkl") {
    return refuse("pickled columns are not read (unsafe; Mosaic refuses them too unless allow_unsafe_types=True)");
  } else {
    return refuse("not supported (supported: bytes, str, int, the numpy scalar types, str_int, str_float, "
                  "str_decimal, json, jpeg, png, pil, jpeg_array, list[jpeg|png|pil], ndarray)");
  }
  return c;
}

std::string SchemaJson(const std::vector<ColumnSpec>& columns) {
  json::Array tree, fields;
  for (size_t i = 0; i < columns.size(); ++i) {
    const ColumnSpec& c = columns[i];
    tree.push_back(json::Array{c.name, "*"});
    json::Object field{{"name", c.name}};
    switch (c.kind) {
      case Column::kBytes:
      case Column::kStr: field.insert(field.end(), c.decoded.begin(), c.decoded.end()); break;
      case Column::kInt:
      case Column::kStrInt: field.emplace_back("type", "int"); break;
      case Column::kStrFloat: field.emplace_back("type", "float"); break;
      case Column::kJson: field.emplace_back("type", "json"); break;
      case Column::kScalar:
        field.emplace_back("type", "numpy_scalar");
        field.emplace_back("dtype", c.type->descr);
        break;
      case Column::kArray:
        field.emplace_back("type", "numpy");
        if (c.type) field.emplace_back("dtype", c.type->descr);
        break;
    }
    fields.push_back(std::move(field));
  }
  return json::Dump(json::Object{{"tree", json::Object{{"dict", std::move(tree)}}}, {"fields", std::move(fields)}});
}

using Columns = std::shared_ptr<const std::vector<ColumnSpec>>;

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

struct Shard {
  uint64_t raw_bytes = 0;
  std::string compression;  // the family of zip_data, or ""
};

class MdsSource final : public Source {
 public:
  MdsSource(std::string index_text, std::vector<ChunkInfo> chunks, std::vector<Shard> shards,
            std::vector<ColumnSpec> columns)
      : index_text_(std::move(index_text)), chunks_(std::move(chunks)), shards_(std::move(shards)),
        columns_(std::make_shared<const std::vector<ColumnSpec>>(std::move(columns))),
        schema_(SchemaJson(*columns_)) {}

  const std::string& format() const override {
    static const std::string name = "mds";
    return name;
  }
  const std::string& index_name() const override {
    static const std::string name = "index.json";
    return name;
  }
  const std::vector<ChunkInfo>& chunks() const override { return chunks_; }
  const std::string& schema_json() const override { return schema_; }
  const std::string& description() const override { return index_text_; }
  const std::string& compression() const override {
    static const std::string none;
    return none;  // chute's own compression; MDS's is whole-file, undone when a shard is opened
  }
  uint64_t TablesSizeHint(uint32_t c) const override {
    return shards_[c].compression.empty() ? 4 + 4 * (chunks_[c].num_items + 1) : chunks_[c].num_bytes;
  }
  uint64_t NumCheckFlags(uint32_t) const override { return 0; }

  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool, std::atomic<uint8_t>*) const override {
    const ChunkInfo& info = chunks_[c];
    std::shared_ptr<std::vector<std::byte>> inflated;
    const std::byte* base = bytes->data();
    if (!shards_[c].compression.empty()) {  // no random access inside: the whole shard, decompressed
      CHUTE_RETURN_NOT_OK(bytes->Wait(0, bytes->size()));
      CHUTE_ASSIGN_OR_RETURN(auto codec, Codec::ForFamily(shards_[c].compression));
      try {
        inflated = std::make_shared<std::vector<std::byte>>(shards_[c].raw_bytes);
      } catch (const std::exception&) {
        return Status::IOError(url + ": no memory for its " + std::to_string(shards_[c].raw_bytes) +
                               " decompressed bytes (raw_data.bytes in index.json)");
      }
      Status st = codec->Decompress(bytes->data(), bytes->size(), inflated->data(), inflated->size());
      if (!st.ok()) return Status::Corrupt(url + ": " + st.message());
      base = inflated->data();
    } else {
      CHUTE_RETURN_NOT_OK(bytes->Wait(0, 4));
    }
    const uint64_t size = inflated ? inflated->size() : bytes->size();
    if (size < 4 + 4 * (info.num_items + 1))
      return Status::Corrupt(url + ": " + std::to_string(size) + " bytes, too short for its " +
                             std::to_string(info.num_items) + " samples");
    if (LoadU32(base) != info.num_items)
      return Status::Corrupt(url + ": holds " + std::to_string(LoadU32(base)) + " samples, index.json says " +
                             std::to_string(info.num_items));
    return std::shared_ptr<ChunkReader>(
        std::make_shared<MdsChunkReader>(std::move(bytes), std::move(inflated), url, columns_));
  }

 private:
  std::string index_text_;
  std::vector<ChunkInfo> chunks_;
  std::vector<Shard> shards_;
  Columns columns_;
  std::string schema_;
};

const std::string* StringAt(const json::Value& v, const char* key) {
  const json::Value* m = v.get(key);
  return m ? m->string() : nullptr;
}

Result<std::shared_ptr<Source>> OpenMds(const SourceLocation& location, const std::string& description) {
  Storage& storage = *location.storage;
  const std::string index_path = JoinPath(location.root, "index.json");
  const std::string where = storage.Url(index_path);
  Result<std::string> text = description;
  if (description.empty()) text = storage.ReadAll(index_path);
  if (!text.ok()) return text.status();
  CHUTE_ASSIGN_OR_RETURN(json::Value index, json::Parse(*text));
  auto invalid = [&](const std::string& why) {
    return Status::Corrupt(where + ": not an MDS index (Mosaic Streaming, version 2): " + why);
  };
  const json::Value* shards = index.get("shards");
  const json::Value* version = index.get("version");
  if (!shards || !shards->array()) return invalid("no \"shards\" list");
  if (!version || !version->integer() || *version->integer() != 2)
    return Status::VersionMismatch(where + ": MDS index version is not 2 (the version Mosaic Streaming writes)");
  std::vector<ChunkInfo> chunks;
  std::vector<Shard> shard_info;
  std::vector<ColumnSpec> columns;
  json::Value first_columns;
  for (const json::Value& shard : *shards->array()) {
    const std::string name = "shard " + std::to_string(chunks.size());
    const std::string* format = StringAt(shard, "format");
    if (!format || *format != "mds")
      return Status::Unsupported(where + ": " + name + " has format '" + (format ? *format : "?") +
                                 "': only MDS shards are read (not json/csv/tsv/xsv)");
    const json::Value* names = shard.get("column_names");
    const json::Value* encodings = shard.get("column_encodings");
    const json::Value* sizes = shard.get("column_sizes");
    const json::Value* samples = shard.get("samples");
    const json::Value* raw = shard.get("raw_data");
    if (!names || !names->array() || !encodings || !encodings->array() || !sizes || !sizes->array() ||
        names->array()->size() != encodings->array()->size() || names->array()->size() != sizes->array()->size())
      return invalid(name + " has no matching column_names / column_encodings / column_sizes");
    json::Value shard_columns{json::Array{*names, *encodings, *sizes}};
    if (chunks.empty()) {
      first_columns = shard_columns;
      for (size_t i = 0; i < names->array()->size(); ++i) {
        const std::string* column = (*names->array())[i].string();
        const std::string* encoding = (*encodings->array())[i].string();
        if (!column || !encoding) return invalid(name + " has a column name or encoding that is not a string");
        CHUTE_ASSIGN_OR_RETURN(ColumnSpec spec, ParseColumn(*column, *encoding, where));
        const json::Value& size = (*sizes->array())[i];
        if (size.integer()) spec.fixed_size = *size.integer();
        columns.push_back(std::move(spec));
      }
    } else if (json::Dump(shard_columns) != json::Dump(first_columns)) {
      return Status::Unsupported(where + ": " + name + " has other columns than shard 0 (one schema per dataset)");
    }
    if (!samples || !samples->integer() || *samples->integer() < 0 || !raw || !StringAt(*raw, "basename") ||
        !raw->get("bytes") || !raw->get("bytes")->integer())
      return invalid(name + " has no samples / raw_data");
    ChunkInfo info;
    Shard s;
    s.raw_bytes = static_cast<uint64_t>(*raw->get("bytes")->integer());
    info.num_items = static_cast<uint64_t>(*samples->integer());
    info.has_checksum = false;
    const json::Value* zip = shard.get("zip_data");
    if (zip && !zip->is_null()) {
      const std::string* compression = StringAt(shard, "compression");
      if (!compression || !StringAt(*zip, "basename") || !zip->get("bytes") || !zip->get("bytes")->integer())
        return invalid(name + " has zip_data without compression / basename / bytes");
      s.compression = compression->substr(0, compression->find(':'));
      if (s.compression == "bz2")  // Arrow has no one-shot bz2 decompression
        return Status::Unsupported(where + ": " + name + " is compressed with bz2, which chute does not read yet");
      if (Status st = Codec::ForFamily(s.compression).status(); !st.ok())  // refused now, not mid-epoch
        return Status::Unsupported(where + ": " + name + ": " + st.message());
      info.file = *StringAt(*zip, "basename");
      info.num_bytes = static_cast<uint64_t>(*zip->get("bytes")->integer());
    } else {
      info.file = *StringAt(*raw, "basename");
      info.num_bytes = s.raw_bytes;
    }
    // One fixed-length 1-D integer ndarray column: a token dataset (TokensLoader).
    if (columns.empty()) return invalid(name + " has no columns");
    const ColumnSpec& only = columns[0];
    if (columns.size() == 1 && only.kind == Column::kArray && only.type && only.shape.size() == 1 &&
        (only.type->dtype.code == DType::kInt || only.type->dtype.code == DType::kUInt))
      info.num_tokens = static_cast<int64_t>(info.num_items) * only.shape[0];
    chunks.push_back(std::move(info));
    shard_info.push_back(std::move(s));
  }
  if (chunks.empty()) return invalid("it lists no shards");
  return std::shared_ptr<Source>(
      std::make_shared<MdsSource>(std::move(*text), std::move(chunks), std::move(shard_info), std::move(columns)));
}

const bool registered = (RegisterSource("mds", OpenMds), true);

}  // namespace

}  // namespace chute
