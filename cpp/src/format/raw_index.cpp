// The description of a raw-objects index (format/raw.h): its Parquet footer and settings.
#include <arrow/util/key_value_metadata.h>
#include <parquet/arrow/schema.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>
#include <arrow/io/file.h>

#include <algorithm>

#include "format/arrow_rows.h"
#include "format/raw.h"
#include "util/json.h"

namespace chute {

namespace {

// Object bytes a block is assumed to hold per download column and row when the index
// does not say (a URL index): for the prefetch budget and the cache's reservation, which
// the real size replaces once the block is fetched.
constexpr uint64_t kAssumedObjectBytes = 128 << 10;

}  // namespace

Result<std::string> DescribeRawIndex(const std::string& index_path) {
  std::shared_ptr<parquet::FileMetaData> metadata;
  std::shared_ptr<arrow::Schema> schema;
  try {
    auto file = arrow::io::ReadableFile::Open(index_path);
    if (!file.ok())
      return Status::NotFound(index_path + ": " + file.status().message() +
                              " (chute.StreamingRawDataset builds this index)");
    metadata = parquet::ReadMetaData(*file);
    if (auto st = parquet::arrow::FromParquetSchema(metadata->schema(), &schema); !st.ok())
      return Status::Corrupt(index_path + ": " + st.message());
  } catch (const std::exception& e) {  // Parquet's footer reader throws
    return Status::Corrupt(index_path + ": not a readable Parquet file: " + e.what());
  }
  auto kv = metadata->key_value_metadata();
  auto settings_text = kv ? kv->Get("chute.raw") : arrow::Result<std::string>(arrow::Status::KeyError(""));
  if (!settings_text.ok()) return Status::Corrupt(index_path + ": no chute.raw settings (not an index chute built)");
  CHUTE_ASSIGN_OR_RETURN(json::Value settings, json::Parse(*settings_text));
  const json::Value* download = settings.get("download");
  // (No download column: every object column is read by byte range, in Python.)
  if (!download || !download->array()) return Status::Corrupt(index_path + ": chute.raw has no download list");
  std::vector<std::string> names;
  for (const json::Value& d : *download->array()) {
    if (!d.string()) return Status::Corrupt(index_path + ": a download column that is not a name");
    const auto& field = schema->GetFieldByName(*d.string());
    if (!field || (field->type()->id() != arrow::Type::STRING && field->type()->id() != arrow::Type::LARGE_STRING))
      return Status::Corrupt(index_path + ": download column '" + *d.string() + "' is not a string column");
    names.push_back(*d.string());
  }
  json::Array tree, fields, columns;
  for (const auto& field : schema->fields()) {
    json::Object entry;
    if (std::find(names.begin(), names.end(), field->name()) != names.end()) {
      entry = json::Object{{"name", field->name()}, {"type", "bytes"}};
    } else {
      CHUTE_ASSIGN_OR_RETURN(entry, ArrowColumnSchema(field->name(), *field->type(), index_path));
    }
    tree.push_back(json::Array{field->name(), "*"});
    fields.push_back(std::move(entry));
    columns.push_back(field->name());
  }
  const json::Value* block_bytes = settings.get("block_bytes");
  json::Array blocks;
  for (int g = 0; g < metadata->num_row_groups(); ++g) {
    int64_t rows = metadata->RowGroup(g)->num_rows();
    int64_t bytes = rows * static_cast<int64_t>(names.size() * kAssumedObjectBytes);
    if (block_bytes && block_bytes->array() && static_cast<size_t>(g) < block_bytes->array()->size() &&
        (*block_bytes->array())[static_cast<size_t>(g)].integer())
      bytes = *(*block_bytes->array())[static_cast<size_t>(g)].integer();
    bytes += rows * static_cast<int64_t>(names.size() * sizeof(RawSlot)) + 16;  // the slots and trailer
    blocks.push_back(json::Array{rows, bytes});
  }
  const json::Value* local = settings.get("local");
  const json::Value* digest = settings.get("digest");
  const json::Value* source = settings.get("source");
  const json::Value* index_col = settings.get("index_col");
  json::Value schema_json(json::Object{{"tree", json::Object{{"dict", std::move(tree)}}}, {"fields", std::move(fields)}});
  return json::Dump(json::Object{
      {"format", "raw"}, {"digest", digest && digest->string() ? *digest->string() : ""},
      {"source", source && source->string() ? *source->string() : index_path},
      {"columns", std::move(columns)}, {"download", *download},
      {"local", local && local->boolean() && *local->boolean()},
      {"index_col", index_col && index_col->string() ? json::Value(*index_col->string()) : json::Value()},
      {"blocks", std::move(blocks)}, {"schema", std::move(schema_json)}});
}

Result<RawIndex> ParseRawDescription(const std::string& text, const std::string& url) {
  CHUTE_ASSIGN_OR_RETURN(json::Value d, json::Parse(text));
  const Status malformed = Status::Corrupt(url + ": a malformed description of raw objects");
  const json::Value *columns = d.get("columns"), *download = d.get("download"), *source = d.get("source"),
                    *blocks = d.get("blocks"), *schema = d.get("schema"), *local = d.get("local"),
                    *index_col = d.get("index_col");
  if (!source || !source->string() || !columns || !columns->array() || !download || !download->array() || !blocks ||
      !blocks->array() || !schema || !local || !local->boolean() || !index_col)
    return malformed;
  std::vector<std::string> names;
  for (const json::Value& c : *columns->array()) {
    if (!c.string()) return malformed;
    names.push_back(*c.string());
  }
  auto position = [&](const std::string& name) {
    auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? -1 : static_cast<int>(it - names.begin());
  };
  RawIndex index;
  for (const json::Value& c : *download->array()) {
    if (!c.string() || position(*c.string()) < 0) return malformed;
    index.download.push_back(position(*c.string()));
    index.download_names.push_back(*c.string());
  }
  index.index_col = index_col->string() ? position(*index_col->string()) : -1;
  for (const json::Value& b : *blocks->array()) {
    const json::Array* block = b.array();
    if (!block || block->size() != 2 || !(*block)[0].integer() || !(*block)[1].integer()) return malformed;
    ChunkInfo info;
    info.file = "block-" + std::to_string(index.chunks.size());
    info.num_items = static_cast<uint64_t>(*(*block)[0].integer());
    info.num_bytes = static_cast<uint64_t>(*(*block)[1].integer());
    info.has_checksum = false;
    index.chunks.push_back(std::move(info));
  }
  index.schema = json::Dump(*schema);
  index.source = *source->string();
  index.local = *local->boolean();
  return index;
}

}  // namespace chute
