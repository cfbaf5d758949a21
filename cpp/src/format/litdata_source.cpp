// litdata datasets as a source (chute/source.h, litdata.h): index.json with "chunks" and
// "config". The sample's tree comes from config.data_spec (torch's pytree spec) and each
// leaf's type from config.data_format; a sample is rebuilt as litdata's StreamingDataset
// returns it (numpy arrays, torch tensors, JPEGs and raw PIL images as PIL images, JSON
// leaves as their values). Refused when opened, naming the reason: encryption, item
// loaders other than PyTreeLoader / TokensLoader, pickled leaves and other containers
// than dict / list / tuple.
#include <cstdlib>
#include <map>

#include "format/foreign_source.h"
#include "format/litdata.h"
#include "util/json.h"

namespace chute::litdata {

bool NumpyDType(uint32_t index, DType* dtype, std::string* descr) {
  static const std::pair<DType, const char*> kTable[] = {
      {{DType::kInt, 8}, "|i1"},   {{DType::kInt, 16}, "<i2"},  {{DType::kInt, 32}, "<i4"},   {{DType::kInt, 64}, "<i8"},
      {{DType::kUInt, 8}, "|u1"},  {{DType::kUInt, 16}, "<u2"}, {{DType::kUInt, 32}, "<u4"},  {{DType::kUInt, 64}, "<u8"},
      {{DType::kFloat, 16}, "<f2"}, {{DType::kFloat, 32}, "<f4"}, {{DType::kFloat, 64}, "<f8"},
      {{DType::kComplex, 64}, "<c8"}, {{DType::kComplex, 128}, "<c16"}, {{DType::kBool, 8}, "|b1"}};
  if (index >= std::size(kTable)) return false;  // object, bytes, str, void
  *dtype = kTable[index].first;
  *descr = kTable[index].second;
  return true;
}

bool TorchDType(uint32_t index, DType* dtype, std::string* name) {
  static const std::pair<DType, const char*> kTable[] = {
      {{DType::kFloat, 32}, "float32"},    {{DType::kFloat, 32}, "float32"},    {{DType::kFloat, 64}, "float64"},
      {{DType::kFloat, 64}, "float64"},    {{DType::kComplex, 64}, "complex64"}, {{DType::kComplex, 64}, "complex64"},
      {{DType::kComplex, 128}, "complex128"}, {{DType::kComplex, 128}, "complex128"}, {{DType::kFloat, 16}, "float16"},
      {{DType::kFloat, 16}, "float16"},    {{DType::kBfloat, 16}, "bfloat16"},  {{DType::kUInt, 8}, "uint8"},
      {{DType::kInt, 8}, "int8"},          {{DType::kInt, 16}, "int16"},        {{DType::kInt, 16}, "int16"},
      {{DType::kInt, 32}, "int32"},        {{DType::kInt, 32}, "int32"},        {{DType::kInt, 64}, "int64"},
      {{DType::kInt, 64}, "int64"},        {{DType::kBool, 8}, "bool"},         {{DType::kUInt, 16}, "uint16"}};
  if (index >= std::size(kTable)) return false;
  *dtype = kTable[index].first;
  *name = kTable[index].second;
  return true;
}

namespace {

// A data_format entry: its leaf and its field in chute's Python schema (docs/format.md).
Result<std::pair<Leaf, json::Object>> ParseLeaf(const std::string& format, const std::string& where) {
  // "a:b" names serializer b if b is one, else a ("no_header_tensor:16", "image:png").
  std::string name = format, suffix;
  if (size_t colon = format.find(':'); colon != std::string::npos) {
    name = format.substr(0, colon);
    suffix = format.substr(colon + 1);
  }
  Leaf leaf{};
  json::Object field;
  auto type = [&](const char* t) { field.emplace_back("type", t); };
  auto index = [&]() -> Result<uint32_t> {
    char* end = nullptr;
    unsigned long v = std::strtoul(suffix.c_str(), &end, 10);
    if (suffix.empty() || *end != '\0') return Status::Corrupt(where + ": data_format '" + format + "' has no dtype index");
    return static_cast<uint32_t>(v);
  };
  if (name == "int") leaf.serializer = Serializer::kInt, type("int");
  else if (name == "float") leaf.serializer = Serializer::kFloat, type("float");
  else if (name == "bool") leaf.serializer = Serializer::kBool, type("bool");
  else if (name == "str" || name == "text") leaf.serializer = Serializer::kStr, type("str");
  else if (name == "bytes" || name == "image" || name == "video" || name == "audio" || name == "file" ||
           name == "mesh" || name == "nifti" || name == "pdf" || name == "tiff" || name == "tifffile")
    leaf.serializer = Serializer::kBytes, type("bytes");
  else if (name == "jpeg") leaf.serializer = Serializer::kJpeg, type("image");
  else if (name == "pil") leaf.serializer = Serializer::kPil, type("pil_raw");
  else if (name == "json") leaf.serializer = Serializer::kJson, type("litdata_json");
  else if (name == "numpy") leaf.serializer = Serializer::kNumpy, type("numpy");
  else if (name == "tensor") leaf.serializer = Serializer::kTensor, type("torch");
  else if (name == "no_header_numpy" || name == "no_header_tensor") {
    CHUTE_ASSIGN_OR_RETURN(uint32_t i, index());
    std::string dtype;
    bool numpy = name == "no_header_numpy";
    if (!(numpy ? NumpyDType(i, &leaf.dtype, &dtype) : TorchDType(i, &leaf.dtype, &dtype)))
      return Status::Unsupported(where + ": data_format '" + format + "' is not a numeric dtype");
    leaf.serializer = numpy ? Serializer::kNumpy1d : Serializer::kTensor1d;
    type(numpy ? "numpy" : "torch");
    field.emplace_back("dtype", dtype);
  } else {
    return Status::Unsupported(where + ": leaves stored as '" + format + "' are not read" +
                               (name == "pickle" || name == "graph" ? " (pickled data is not unpickled)" : ""));
  }
  return std::make_pair(leaf, std::move(field));  // numpy / tensor: the dtype is in each leaf's header
}

// A pytree spec node ({"type", "context", "children_spec"}) as chute's schema tree; leaf
// names (paths) are appended to `names` in leaf order.
Result<json::Value> Tree(const json::Value& node, const std::string& path, std::vector<std::string>* names,
                         const std::string& where) {
  const json::Value* type = node.get("type");
  const json::Value* children = node.get("children_spec");
  if (!type || !children || !children->array()) return Status::Corrupt(where + ": a data_spec node is malformed");
  if (type->is_null()) {
    names->push_back(path);
    return json::Value("*");
  }
  const std::string* kind = type->string();
  std::vector<std::string> keys;
  if (kind && (*kind == "builtins.dict" || *kind == "collections.OrderedDict")) {
    const json::Value* context = node.get("context");
    Result<json::Value> parsed = context && context->string() ? json::Parse(*context->string()) : Status::Invalid("");
    if (!parsed.ok() || !parsed->array()) return Status::Corrupt(where + ": a dict node of data_spec has no keys");
    for (const json::Value& key : *parsed->array()) {
      if (!key.string()) return Status::Unsupported(where + ": data_spec has a dict key that is not a string");
      keys.push_back(*key.string());
    }
    if (keys.size() != children->array()->size()) return Status::Corrupt(where + ": a data_spec dict's keys do not match");
  } else if (!kind || (*kind != "builtins.list" && *kind != "builtins.tuple")) {
    return Status::Unsupported(where + ": samples holding " + (kind ? *kind : "?") +
                               " are not read (dict, list and tuple are)");
  }
  json::Array out;
  for (size_t i = 0; i < children->array()->size(); ++i) {
    std::string child_path = keys.empty() ? std::to_string(i) : keys[i];
    if (!path.empty()) child_path = path + "." + child_path;
    CHUTE_ASSIGN_OR_RETURN(json::Value child, Tree((*children->array())[i], child_path, names, where));
    out.push_back(keys.empty() ? std::move(child) : json::Value(json::Array{keys[i], std::move(child)}));
  }
  const char* container = keys.empty() ? (*kind == "builtins.list" ? "list" : "tuple") : "dict";
  return json::Value(json::Object{{container, std::move(out)}});
}

class LitdataSource final : public ForeignSource {
 public:
  LitdataSource(std::string index_text, std::vector<ChunkInfo> chunks, std::vector<uint64_t> raw_sizes,
                std::vector<bool> whole_file, std::shared_ptr<const Config> config, std::string schema)
      : ForeignSource("litdata", "index.json", std::move(index_text), std::move(chunks), std::move(schema)),
        raw_sizes_(std::move(raw_sizes)), whole_file_(std::move(whole_file)), config_(std::move(config)) {}

  uint64_t TablesSizeHint(uint32_t c) const override {
    const uint64_t n = chunks()[c].num_items;
    if (whole_file_[c]) return chunks()[c].num_bytes;
    if (config_->compression == Compression::kBatch)  // the framed header, offsets and frame records
      return 24 + 4 * (n + 1) + 24 * ((n + config_->batch_size - 1) / config_->batch_size);
    return 4 + 4 * (n + 1);  // the classic offsets
  }
  bool token_blocks_within_chunks() const override { return true; }  // as litdata's TokensLoader reads them
  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool, std::atomic<uint8_t>*) const override {
    return litdata::OpenChunk(config_, std::move(bytes), url, chunks()[c].num_items, raw_sizes_[c], whole_file_[c]);
  }

 private:
  std::vector<uint64_t> raw_sizes_;
  std::vector<bool> whole_file_;
  std::shared_ptr<const Config> config_;
};

const json::Value* Member(const json::Value& v, const char* key) {
  const json::Value* m = v.get(key);
  return m && !m->is_null() ? m : nullptr;
}

Result<std::shared_ptr<Source>> OpenLitdata(const SourceLocation& location, const std::string& description) {
  Storage& storage = *location.storage;
  const std::string index_path = JoinPath(location.root, "index.json");
  const std::string where = storage.Url(index_path);
  Result<std::string> text = description;
  if (description.empty()) text = storage.ReadAll(index_path);
  if (!text.ok()) return text.status();
  CHUTE_ASSIGN_OR_RETURN(json::Value index, json::Parse(*text));
  const json::Value* config = Member(index, "config");
  const json::Value* chunk_list = Member(index, "chunks");
  if (!config || !config->object() || !chunk_list || !chunk_list->array())
    return Status::Corrupt(where + ": not a litdata index (no \"config\" / \"chunks\")");
  if (Member(*config, "encryption"))
    return Status::Unsupported(where + ": the dataset is encrypted (litdata Encryption): chute does not decrypt it");
  auto cfg = std::make_shared<Config>();
  const json::Value* loader = Member(*config, "item_loader");
  std::string loader_name = loader && loader->string() ? *loader->string() : "PyTreeLoader";
  if (loader_name != "PyTreeLoader" && loader_name != "TokensLoader")
    return Status::Unsupported(where + ": litdata's " + loader_name + " datasets are not read (PyTreeLoader and "
                               "TokensLoader ones are)");
  cfg->tokens = loader_name == "TokensLoader";
  const json::Value* compression = Member(*config, "compression");
  std::string compression_name;  // as it appears in whole-file compressed chunks' names
  if (compression) {
    const std::string* spec = compression->string();
    if (!spec || (*spec != "zstd" && spec->rfind("zstd:", 0) != 0))
      return Status::Unsupported(where + ": compression '" + (spec ? *spec : "?") + "' (litdata's is zstd)");
    compression_name = *spec;
    if (const json::Value* k = Member(*config, "compression_batch_size"); k && k->integer() && *k->integer() > 0)
      cfg->batch_size = static_cast<uint64_t>(*k->integer());
    const json::Value* level = Member(*config, "compression_level");
    std::string mode = level && level->string() ? *level->string() : "chunk";
    if (mode == "chunk") cfg->compression = Compression::kWholeFile;
    else if (mode == "batch") cfg->compression = Compression::kBatch;
    else if (mode == "sample") cfg->compression = Compression::kSample;
    else return Status::Unsupported(where + ": compression_level '" + mode + "'");
  }
  // The leaves and the tree.
  const json::Value* formats = Member(*config, "data_format");
  if (!formats || !formats->array() || formats->array()->empty())
    return Status::Corrupt(where + ": config.data_format is missing");
  std::vector<json::Object> leaf_fields;
  for (const json::Value& f : *formats->array()) {
    if (!f.string()) return Status::Corrupt(where + ": a data_format entry is not a string");
    CHUTE_ASSIGN_OR_RETURN(auto parsed, ParseLeaf(*f.string(), where));
    cfg->leaves.push_back(parsed.first);
    leaf_fields.push_back(std::move(parsed.second));
  }
  if (cfg->tokens && (cfg->leaves.size() != 1 || (cfg->leaves[0].serializer != Serializer::kTensor1d &&
                                                  cfg->leaves[0].serializer != Serializer::kNumpy1d)))
    return Status::Corrupt(where + ": a TokensLoader dataset's data_format must be one no_header_tensor / numpy");
  json::Value tree("*");
  std::vector<std::string> names;
  const json::Value* spec = Member(*config, "data_spec");
  if (spec && spec->string()) {
    CHUTE_ASSIGN_OR_RETURN(json::Value parsed, json::Parse(*spec->string()));
    if (!parsed.array() || parsed.array()->size() != 2) return Status::Corrupt(where + ": config.data_spec is malformed");
    CHUTE_ASSIGN_OR_RETURN(tree, Tree((*parsed.array())[1], "", &names, where));
  } else {
    names.push_back("");
  }
  if (names.size() != cfg->leaves.size())
    return Status::Corrupt(where + ": data_spec has " + std::to_string(names.size()) + " leaves, data_format " +
                           std::to_string(cfg->leaves.size()));
  json::Array fields;
  for (size_t k = 0; k < names.size(); ++k) {
    json::Object field{{"name", names[k]}};
    field.insert(field.end(), leaf_fields[k].begin(), leaf_fields[k].end());
    fields.push_back(std::move(field));
  }
  bool flat_dict = tree.object() && tree.get("dict");
  if (flat_dict)
    for (const json::Value& entry : *tree.get("dict")->array())
      if (!(*entry.array())[1].string()) flat_dict = false;
  if (flat_dict) cfg->names = names;
  // The chunks; whole-file compressed ones (named "....<compression>.bin"; 0.2.76 leaves
  // Arrow-row chunks uncompressed) are listed for their stored sizes.
  std::map<std::string, uint64_t> stored;
  std::vector<ChunkInfo> chunks;
  std::vector<uint64_t> raw_sizes;
  std::vector<bool> whole_file;
  for (const json::Value& chunk : *chunk_list->array()) {
    const json::Value* file = Member(chunk, "filename");
    const json::Value* items = Member(chunk, "chunk_size");
    const json::Value* bytes = Member(chunk, "chunk_bytes");
    if (!file || !file->string() || !items || !items->integer() || !bytes || !bytes->integer())
      return Status::Corrupt(where + ": chunk " + std::to_string(chunks.size()) + " lacks filename / chunk_size / "
                             "chunk_bytes");
    ChunkInfo info;
    info.file = *file->string();
    info.num_items = static_cast<uint64_t>(*items->integer());
    info.num_bytes = static_cast<uint64_t>(*bytes->integer());
    info.has_checksum = false;
    whole_file.push_back(cfg->compression == Compression::kWholeFile &&
                         info.file.find("." + compression_name + ".") != std::string::npos);
    if (whole_file.back()) {
      if (stored.empty()) {
        CHUTE_ASSIGN_OR_RETURN(auto listing, storage.List(location.root));
        for (const ObjectInfo& o : listing) stored[o.path.substr(o.path.rfind('/') + 1)] = o.size;
      }
      auto found = stored.find(info.file);
      if (found == stored.end()) return Status::NotFound(storage.Url(JoinPath(location.root, info.file)) +
                                                         " does not exist (index.json lists it)");
      info.num_bytes = found->second;
    }
    if (cfg->tokens) {  // "dim": the chunk's tokens
      const json::Value* dim = Member(chunk, "dim");
      if (!dim || !dim->integer() || *dim->integer() < 0)
        return Status::Corrupt(where + ": token chunk " + info.file + " has no dim");
      info.num_tokens = *dim->integer();
    }
    raw_sizes.push_back(static_cast<uint64_t>(*bytes->integer()));
    chunks.push_back(std::move(info));
  }
  std::string schema = json::Dump(json::Object{{"tree", std::move(tree)}, {"fields", std::move(fields)}});
  return std::shared_ptr<Source>(std::make_shared<LitdataSource>(std::move(*text), std::move(chunks),
                                                                 std::move(raw_sizes), std::move(whole_file), std::move(cfg),
                                                                 std::move(schema)));
}

const bool registered = (RegisterSource("litdata", OpenLitdata), true);

}  // namespace

}  // namespace chute::litdata
