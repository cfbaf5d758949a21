// Mosaic Streaming's MDS datasets as a source (chute/source.h, mds.h), read in place:
// index.json with "shards", each shard "shard.NNNNN.mds" (optionally compressed whole,
// e.g. ".mds.zstd"), read by mds_chunk.cpp.
//
// A sample becomes a dict of its columns (chute's Python schema, docs/format.md):
// bytes -> bytes, str -> str, int / str_int -> int, str_float -> float, str_decimal ->
// Decimal, the numpy scalar encodings -> numpy scalars, json -> the parsed value, jpeg /
// png / pil -> PIL images, jpeg_array / list[jpeg|png|pil] -> lists of them,
// ndarray[:dtype[:shape]] -> numpy arrays, as Mosaic's reader returns them. pkl columns are
// refused when the dataset is opened.
#include <cstdlib>

#include "format/foreign_source.h"
#include "format/mds.h"
#include "util/bytes.h"
#include "util/codec.h"

namespace chute::mds {

namespace {

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

struct Shard {
  uint64_t raw_bytes = 0;
  std::string compression;  // the family of zip_data, or ""
};

class MdsSource final : public ForeignSource {
 public:
  MdsSource(std::string index_text, std::vector<ChunkInfo> chunks, std::vector<Shard> shards, Columns columns)
      : ForeignSource("mds", "index.json", std::move(index_text), std::move(chunks), SchemaJson(*columns)),
        shards_(std::move(shards)), columns_(std::move(columns)) {}

  uint64_t TablesSizeHint(uint32_t c) const override {
    return shards_[c].compression.empty() ? 4 + 4 * (chunks()[c].num_items + 1) : chunks()[c].num_bytes;
  }

  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool, std::atomic<uint8_t>*) const override {
    const ChunkInfo& info = chunks()[c];
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
    return OpenShard(std::move(bytes), std::move(inflated), url, columns_);
  }

 private:
  std::vector<Shard> shards_;
  Columns columns_;
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
      std::make_shared<MdsSource>(std::move(*text), std::move(chunks), std::move(shard_info),
                                  std::make_shared<const std::vector<ColumnSpec>>(std::move(columns))));
}

const bool registered = (RegisterSource("mds", OpenMds), true);

}  // namespace

}  // namespace chute::mds
