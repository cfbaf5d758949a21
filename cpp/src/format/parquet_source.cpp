// Parquet datasets as a source (chute/source.h): the *.parquet files of a directory, or
// of its data/ subdirectory (the Hugging Face layout), in name order. A file is a chunk and
// its rows are the items; opening reads each file's footer (ranged reads), and a row is
// read from its row group, which the reader fetches by the byte ranges of its column
// chunks (Arrow's Parquet reader over the chunk's bytes) and keeps while rows of it are
// read. Every file must have the first one's columns. Columns: binary, string, numbers,
// bool, null, lists of numbers (numpy arrays); others are refused when opened. With
// SourceLocation::columns, only those columns are described and read (only their column
// chunks are fetched).
#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/table.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <regex>
#include <set>

#include "chute/source.h"
#include "format/arrow_rows.h"
#include "format/foreign_source.h"
#include "util/json.h"

namespace chute {

namespace {

// Arrow's view of a file: either the chunk bytes the engine provides (reads wait for their
// range and are zero-copy) or an object read by ranges from storage (footers at open).
class RangeFile final : public arrow::io::RandomAccessFile {
 public:
  explicit RangeFile(std::shared_ptr<ChunkBytes> bytes) : bytes_(std::move(bytes)), size_(bytes_->size()) {}
  RangeFile(Storage* storage, std::string path, uint64_t size) : storage_(storage), path_(std::move(path)), size_(size) {}

  arrow::Status Close() override { return arrow::Status::OK(); }
  bool closed() const override { return false; }
  arrow::Result<int64_t> Tell() const override { return position_; }
  arrow::Status Seek(int64_t position) override {
    position_ = position;
    return arrow::Status::OK();
  }
  arrow::Result<int64_t> GetSize() override { return static_cast<int64_t>(size_); }
  arrow::Result<int64_t> Read(int64_t nbytes, void* out) override {
    ARROW_ASSIGN_OR_RAISE(int64_t n, ReadAt(position_, nbytes, out));
    position_ += n;
    return n;
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t nbytes) override {
    ARROW_ASSIGN_OR_RAISE(auto buffer, ReadAt(position_, nbytes));
    position_ += buffer->size();
    return buffer;
  }
  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, bool, void* out) override {
    ARROW_ASSIGN_OR_RAISE(auto buffer, ReadAt(position, nbytes));
    std::memcpy(out, buffer->data(), static_cast<size_t>(buffer->size()));
    return buffer->size();
  }
  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, void* out) override {
    return ReadAt(position, nbytes, true, out);
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position, int64_t nbytes, bool) override {
    if (position < 0 || nbytes < 0) return arrow::Status::Invalid("negative read");
    uint64_t offset = std::min<uint64_t>(static_cast<uint64_t>(position), size_);
    uint64_t length = std::min<uint64_t>(static_cast<uint64_t>(nbytes), size_ - offset);
    if (bytes_) {
      if (Status st = bytes_->Wait(offset, length); !st.ok()) return arrow::Status::IOError(st.message());
      return std::make_shared<Owned>(bytes_->data() + offset, length, bytes_);
    }
    ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(static_cast<int64_t>(length)));
    if (Status st = storage_->ReadRange(path_, offset, length, reinterpret_cast<std::byte*>(buffer->mutable_data()));
        !st.ok())
      return arrow::Status::IOError(st.message());
    return std::shared_ptr<arrow::Buffer>(std::move(buffer));
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position, int64_t nbytes) override {
    return ReadAt(position, nbytes, true);
  }

 private:
  // Chunk memory that keeps its chunk alive.
  class Owned final : public arrow::Buffer {
   public:
    Owned(const std::byte* data, uint64_t size, std::shared_ptr<const void> owner)
        : arrow::Buffer(reinterpret_cast<const uint8_t*>(data), static_cast<int64_t>(size)), owner_(std::move(owner)) {}

   private:
    std::shared_ptr<const void> owner_;
  };

  std::shared_ptr<ChunkBytes> bytes_;
  Storage* storage_ = nullptr;
  std::string path_;
  uint64_t size_ = 0;
  int64_t position_ = 0;
};

class ParquetChunkReader final : public ChunkReader {
 public:
  // `leaves`: the Parquet leaf columns to read (those of the selected fields).
  ParquetChunkReader(std::unique_ptr<parquet::arrow::FileReader> reader, std::string url, std::vector<int> leaves,
                     size_t num_fields)
      : reader_(std::move(reader)), url_(std::move(url)), leaves_(std::move(leaves)) {
    auto metadata = reader_->parquet_reader()->metadata();
    starts_.push_back(0);
    for (int g = 0; g < metadata->num_row_groups(); ++g)
      starts_.push_back(starts_.back() + static_cast<uint64_t>(metadata->RowGroup(g)->num_rows()));
    for (size_t c = 0; c < num_fields; ++c) columns_.push_back(static_cast<int>(c));
  }

  Result<Item> GetItem(uint64_t j) override {
    if (j >= starts_.back()) return Status::Corrupt(url_ + ": row " + std::to_string(j) + " past its rows");
    int g = static_cast<int>(std::upper_bound(starts_.begin(), starts_.end(), j) - starts_.begin()) - 1;
    std::shared_ptr<arrow::RecordBatch> batch;
    {
      std::lock_guard lock(mu_);  // one row group kept: rows are mostly read in order
      if (g != cached_group_) {
        std::shared_ptr<arrow::Table> table;
        arrow::Status st = reader_->ReadRowGroup(g, leaves_, &table);
        auto combined = st.ok() ? table->CombineChunksToBatch() : arrow::Result<std::shared_ptr<arrow::RecordBatch>>(st);
        if (!combined.ok())
          return Status::Corrupt(url_ + ": row group " + std::to_string(g) + ": " + combined.status().message());
        cached_group_ = g;
        cached_ = *combined;
      }
      batch = cached_;
    }
    return ArrowRowItem(batch, static_cast<int64_t>(j - starts_[g]), columns_, url_);
  }

 private:
  std::unique_ptr<parquet::arrow::FileReader> reader_;
  std::string url_;
  std::vector<int> leaves_;
  std::vector<uint64_t> starts_;  // first row of each row group, then the rows
  std::vector<int> columns_;      // of the row group's table: all it holds
  std::mutex mu_;
  int cached_group_ = -1;
  std::shared_ptr<arrow::RecordBatch> cached_;
};

class ParquetSource final : public ForeignSource {
 public:
  ParquetSource(std::string description, std::vector<ChunkInfo> chunks, std::string schema,
                std::vector<std::string> fields)
      : ForeignSource("parquet", "*.parquet", std::move(description), std::move(chunks), std::move(schema)),
        fields_(std::move(fields)) {}

  uint64_t TablesSizeHint(uint32_t c) const override { return std::min<uint64_t>(chunks()[c].num_bytes, 64 << 10); }
  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool, std::atomic<uint8_t>*) const override {
    auto reader = parquet::arrow::OpenFile(std::make_shared<RangeFile>(std::move(bytes)), arrow::default_memory_pool());
    if (!reader.ok()) return Status::Corrupt(url + ": not a readable Parquet file: " + reader.status().message());
    std::shared_ptr<arrow::Schema> schema;
    if (auto st = (*reader)->GetSchema(&schema); !st.ok()) return Status::Corrupt(url + ": " + st.message());
    for (const std::string& name : fields_)
      if (schema->GetFieldIndex(name) < 0) return Status::Corrupt(url + ": has no column '" + name + "' (the dataset changed)");
    // The Parquet leaf columns under the selected fields (a struct or list has several).
    const parquet::SchemaDescriptor& leaf_schema = *(*reader)->parquet_reader()->metadata()->schema();
    std::vector<int> leaves;
    for (int i = 0; i < leaf_schema.num_columns(); ++i) {
      const std::string top = leaf_schema.Column(i)->path()->ToDotVector().front();
      if (std::find(fields_.begin(), fields_.end(), top) != fields_.end()) leaves.push_back(i);
    }
    return std::shared_ptr<ChunkReader>(
        std::make_shared<ParquetChunkReader>(std::move(*reader), url, std::move(leaves), fields_.size()));
  }

 private:
  std::vector<std::string> fields_;  // the columns read, in their order in the files
};

bool IsParquet(const std::string& path) {
  return path.size() > 8 && path.compare(path.size() - 8, 8, ".parquet") == 0;
}

// The split of a file named "<split>-00000-of-00003[-<hash>].parquet" (Hugging Face), else "".
std::string SplitOf(const std::string& path) {
  static const std::regex kSharded(R"(^(.+?)-\d+-of-\d+(-[0-9a-f]+)?\.parquet$)");
  std::smatch m;
  const std::string base = path.substr(path.rfind('/') + 1);
  return std::regex_match(base, m, kSharded) ? m[1].str() : "";
}

// Keeps the files of the split asked for; several splits and none asked, or a split
// that is not there, is an error naming the splits.
Status SelectSplit(const SourceLocation& location, std::vector<ObjectInfo>* files) {
  std::set<std::string> splits;
  for (const ObjectInfo& f : *files) splits.insert(SplitOf(f.path));
  std::string names;
  for (const std::string& s : splits) names += (names.empty() ? "'" : ", '") + s + "'";
  if (location.split.empty()) {
    if (splits.size() <= 1) return Status::OK();
    return Status::Invalid(location.url + ": the Parquet files are of several splits (" + names +
                           "): choose one with split=");
  }
  if (!splits.count(location.split))
    return Status::NotFound(location.url + ": no Parquet files of split '" + location.split + "' (there: " + names +
                            "; files named <split>-00000-of-00001.parquet)");
  std::erase_if(*files, [&](const ObjectInfo& f) { return SplitOf(f.path) != location.split; });
  return Status::OK();
}

// {"format": "parquet", "schema": <chute schema>, "files": [[name, bytes, rows], ...]}.
Result<std::string> Describe(const SourceLocation& location) {
  Storage& storage = *location.storage;
  std::string dir = location.root;
  CHUTE_ASSIGN_OR_RETURN(auto listing, storage.List(dir));
  if (std::none_of(listing.begin(), listing.end(), [](const ObjectInfo& o) { return IsParquet(o.path); })) {
    dir = JoinPath(location.root, "data");  // the Hugging Face layout
    Result<std::vector<ObjectInfo>> data = storage.List(dir);
    if (data.ok()) listing = std::move(*data);
  }
  std::vector<ObjectInfo> files;
  for (ObjectInfo& o : listing)
    if (IsParquet(o.path)) files.push_back(std::move(o));
  if (files.empty()) return Status::NotFound(location.url + ": no *.parquet files there or in data/");
  std::sort(files.begin(), files.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.path < b.path; });
  CHUTE_RETURN_NOT_OK(SelectSplit(location, &files));
  std::vector<int64_t> rows(files.size());
  std::vector<std::shared_ptr<arrow::Schema>> schemas(files.size());
  std::vector<Status> read(files.size());
  std::atomic<size_t> next{0};
  std::vector<std::future<void>> readers;
  for (size_t t = 0; t < std::min<size_t>(32, files.size()); ++t)
    readers.push_back(std::async(std::launch::async, [&] {
      for (size_t f; (f = next.fetch_add(1)) < files.size();) {
        const std::string url = storage.Url(files[f].path);
        try {
          auto metadata = parquet::ReadMetaData(std::make_shared<RangeFile>(&storage, files[f].path, files[f].size));
          rows[f] = metadata->num_rows();
          arrow::Status st = parquet::arrow::FromParquetSchema(metadata->schema(), &schemas[f]);
          if (!st.ok()) read[f] = Status::Unsupported(url + ": " + st.message());
        } catch (const std::exception& e) {  // Parquet's footer reader throws
          read[f] = Status::Corrupt(url + ": not a readable Parquet file: " + e.what());
        }
      }
    }));
  for (auto& r : readers) r.get();
  for (const Status& st : read) CHUTE_RETURN_NOT_OK(st);
  for (const std::string& name : location.columns)
    if (schemas[0]->GetFieldIndex(name) < 0)
      return Status::Invalid(storage.Url(files[0].path) + " has no column '" + name + "' (its columns: " +
                             schemas[0]->ToString() + ")");
  json::Array tree, fields;
  for (const auto& field : schemas[0]->fields()) {
    if (!location.columns.empty() &&
        std::find(location.columns.begin(), location.columns.end(), field->name()) == location.columns.end())
      continue;  // not selected: neither described nor read
    CHUTE_ASSIGN_OR_RETURN(json::Object entry, ArrowColumnSchema(field->name(), *field->type(),
                                                                 storage.Url(files[0].path)));
    tree.push_back(json::Array{field->name(), "*"});
    fields.push_back(std::move(entry));
  }
  json::Array list;
  const std::string prefix = location.root.empty() ? "" : location.root + "/";
  for (size_t f = 0; f < files.size(); ++f) {
    if (!schemas[f]->Equals(*schemas[0]))
      return Status::Unsupported(storage.Url(files[f].path) + " has other columns than " + storage.Url(files[0].path) +
                                 " (one schema per dataset): " + schemas[f]->ToString());
    std::string name = files[f].path.compare(0, prefix.size(), prefix) == 0 ? files[f].path.substr(prefix.size())
                                                                             : files[f].path;
    list.push_back(json::Array{name, files[f].size, rows[f]});
  }
  json::Value schema(json::Object{{"tree", json::Object{{"dict", std::move(tree)}}}, {"fields", std::move(fields)}});
  return json::Dump(json::Object{{"format", "parquet"}, {"schema", std::move(schema)}, {"files", std::move(list)}});
}

Result<std::shared_ptr<Source>> OpenParquet(const SourceLocation& location, const std::string& description) {
  std::string text = description;
  if (text.empty()) {
    CHUTE_ASSIGN_OR_RETURN(text, Describe(location));
  }
  CHUTE_ASSIGN_OR_RETURN(json::Value d, json::Parse(text));
  const Status malformed = Status::Corrupt(location.url + ": a malformed Parquet description (open the dataset again)");
  const json::Value* schema = d.get("schema");
  const json::Value* files = d.get("files");
  if (!schema || !schema->object() || !files || !files->array()) return malformed;
  std::vector<std::string> fields;  // the selected columns: the schema tree's keys
  const json::Value* tree = schema->get("tree") ? schema->get("tree")->get("dict") : nullptr;
  if (!tree || !tree->array()) return malformed;
  for (const json::Value& entry : *tree->array()) {
    if (!entry.array() || entry.array()->empty() || !(*entry.array())[0].string()) return malformed;
    fields.push_back(*(*entry.array())[0].string());
  }
  std::vector<ChunkInfo> chunks;
  for (const json::Value& file : *files->array()) {
    const json::Array* f = file.array();
    if (!f || f->size() != 3 || !(*f)[0].string() || !(*f)[1].integer() || !(*f)[2].integer()) return malformed;
    ChunkInfo info;
    info.file = *(*f)[0].string();
    info.num_bytes = static_cast<uint64_t>(*(*f)[1].integer());
    info.num_items = static_cast<uint64_t>(*(*f)[2].integer());
    info.has_checksum = false;
    chunks.push_back(std::move(info));
  }
  return std::shared_ptr<Source>(
      std::make_shared<ParquetSource>(std::move(text), std::move(chunks), json::Dump(*schema), std::move(fields)));
}

const bool registered = (RegisterSource("parquet", OpenParquet), true);

}  // namespace

}  // namespace chute
