// The raw-objects source (format/raw.h): the index's row groups, the objects' stores, and
// fetching blocks and single rows.
#include <arrow/array.h>
#include <arrow/io/file.h>
#include <arrow/scalar.h>
#include <arrow/table.h>
#include <arrow/util/key_value_metadata.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>

#include "format/arrow_rows.h"
#include "format/foreign_source.h"
#include "format/raw.h"
#include "storage/options.h"
#include "util/io_pool.h"
#include "util/bytes.h"
#include "util/json.h"
#include "util/lru_map.h"
#include "util/posix_file.h"
#include "util/task_group.h"

namespace chute {

namespace {

// Object bytes a block is assumed to hold per download column and row when the index
// does not say (a URL index): for the prefetch budget and the cache's reservation, which
// the real size replaces once the block is fetched.
constexpr uint64_t kAssumedObjectBytes = 128 << 10;
// Row groups a process keeps decoded (the readers of open chunks keep theirs too).
constexpr size_t kBlocksKept = 8;

std::string_view UrlAt(const arrow::Array& column, int64_t row) {
  if (column.IsNull(row)) return {};
  if (column.type_id() == arrow::Type::LARGE_STRING)
    return static_cast<const arrow::LargeStringArray&>(column).GetView(row);
  return static_cast<const arrow::StringArray&>(column).GetView(row);
}

class RawSource;

// The items of one block: from the fetched chunk's slots, or (in place) from the files.
class RawChunkReader final : public ChunkReader {
 public:
  RawChunkReader(const RawSource& source, uint32_t c, std::shared_ptr<arrow::RecordBatch> rows,
                 std::shared_ptr<ChunkBytes> bytes, std::span<const RawSlot> slots)
      : source_(source), c_(c), rows_(std::move(rows)), bytes_(std::move(bytes)), slots_(slots) {}
  Result<Item> GetItem(uint64_t j) override;

 private:
  const RawSource& source_;
  uint32_t c_;
  std::shared_ptr<arrow::RecordBatch> rows_;
  std::shared_ptr<ChunkBytes> bytes_;  // null in place
  std::span<const RawSlot> slots_;
};

class RawSource final : public ForeignSource {
 public:
  RawSource(std::string description, std::vector<ChunkInfo> chunks, std::string schema, std::string index_path,
            std::string source_name, std::vector<int> download, std::vector<std::string> download_names, bool local, int index_col,
            const SourceLocation& location)
      : ForeignSource("raw", "index.parquet", std::move(description), std::move(chunks), std::move(schema)),
        index_path_(std::move(index_path)), source_name_(std::move(source_name)), download_(std::move(download)),
        download_names_(std::move(download_names)), local_(local), index_col_(index_col),
        storage_options_(location.storage_options), allow_missing_(location.allow_missing),
        pool_("chute-objects", std::max<size_t>(1, location.concurrency), kBackgroundNice) {
    for (uint64_t start = 0; const ChunkInfo& c : this->chunks()) {
      starts_.push_back(start);
      start += c.num_items;
    }
  }

  ChunkSourcing sourcing() const override { return local_ ? ChunkSourcing::kInPlace : ChunkSourcing::kFetched; }
  // A row's objects are fetched one after another, each within its store's timeout.
  double FetchTimeout() const override {
    auto it = storage_options_.find("timeout");
    double per_object = it == storage_options_.end() ? storage::CommonOptions{}.timeout : std::atof(it->second.c_str());
    return per_object * static_cast<double>(download_.size());
  }
  uint64_t TablesSizeHint(uint32_t) const override { return 0; }

  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool, std::atomic<uint8_t>*) const override {
    CHUTE_ASSIGN_OR_RETURN(auto rows, Block(c));
    if (local_) return std::shared_ptr<ChunkReader>(std::make_shared<RawChunkReader>(*this, c, rows, nullptr,
                                                                                      std::span<const RawSlot>{}));
    const uint64_t want = static_cast<uint64_t>(rows->num_rows()) * download_.size();
    const uint64_t size = bytes->size();
    if (Status st = bytes->Wait(0, size); !st.ok()) return st;
    uint64_t count = size >= 16 ? LoadU64(bytes->data() + size - 16) : 0;
    if (size < 16 || LoadU64(bytes->data() + size - 8) != kRawMagic || count != want ||
        count > (size - 16) / sizeof(RawSlot))
      return Status::Corrupt(url + ": not a block of raw objects fetched by this version (remove the cache)");
    const uint64_t table = size - 16 - count * sizeof(RawSlot);  // where the object bytes end
    if (table % alignof(RawSlot) != 0) return Status::Corrupt(url + ": misaligned slot table (remove the cache)");
    auto* slots = reinterpret_cast<const RawSlot*>(bytes->data() + table);
    for (uint64_t k = 0; k < count; ++k) {
      const RawSlot& s = slots[k];
      if (s.state > RawSlotState::kMissing || (s.state == RawSlotState::kFetched && !InRange(s.offset, s.size, table)))
        return Status::Corrupt(url + ": slot " + std::to_string(k) + " is invalid (remove the cache)");
    }
    return std::shared_ptr<ChunkReader>(
        std::make_shared<RawChunkReader>(*this, c, std::move(rows), std::move(bytes), std::span(slots, count)));
  }

  Status FetchChunk(uint32_t c, int fd) const override {
    CHUTE_ASSIGN_OR_RETURN(auto rows, Block(c));
    struct Fetch : TaskGroup {
      int fd = -1;  // its own descriptor: requests given up on may still write after the wait
      std::atomic<bool> abandoned{false};  // the wait gave up: requests not started are not made
      std::atomic<uint64_t> end{0};
      std::vector<RawSlot> slots;
      ~Fetch() {
        if (fd >= 0) ::close(fd);
      }
    };
    auto fetch = std::make_shared<Fetch>();
    fetch->fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (fetch->fd < 0) return Status::IOError(ErrnoMessage("a block of raw objects in the cache"));
    const size_t width = download_.size();
    fetch->slots.resize(static_cast<size_t>(rows->num_rows()) * width);
    std::vector<std::pair<size_t, std::string>> wanted;  // (slot, URL)
    for (int64_t r = 0; r < rows->num_rows(); ++r)
      for (size_t d = 0; d < width; ++d) {
        std::string_view url = Url(*rows, d, r);
        if (!url.empty()) wanted.emplace_back(r * width + d, std::string(url));
      }
    fetch->left = wanted.size();
    for (auto& [k, url] : wanted) {
      pool_.Submit([this, fetch, rows, c, k = k, url = std::move(url), width] {
        if (fetch->abandoned || fetch->failed()) return fetch->Done(Status::OK());
        std::string bytes;
        Status st = FetchObject(url, &bytes);
        objects_done_.fetch_add(1, std::memory_order_relaxed);
        RawSlot& slot = fetch->slots[k];
        if (st.code() == StatusCode::kNotFound) {
          slot.state = RawSlotState::kMissing;
          st = Status::OK();
        } else if (st.ok()) {
          slot = {fetch->end.fetch_add(bytes.size()), bytes.size(), RawSlotState::kFetched};
          if (!WriteAll(fetch->fd, reinterpret_cast<const std::byte*>(bytes.data()), bytes.size(), slot.offset))
            st = Status::IOError(ErrnoMessage("a block of raw objects in the cache"));
        } else {
          st = Status(st.code(), RowLabel(*rows, c, static_cast<int64_t>(k / width)) + ", column '" +
                                     ColumnName(k % width) + "': " + st.message());
        }
        fetch->Done(st);
      });
    }
    // Waits while objects keep arriving, for this block or for the others ahead of it on
    // the pool: each request is bounded by its store's timeout.
    for (uint64_t done = objects_done_.load();;) {
      if (fetch->Wait(kProgressSeconds)) break;
      if (objects_done_.load() == done) {
        fetch->abandoned = true;
        return Status::IOError(BlockName(c) + ": no object arrived for " + std::to_string(int(kProgressSeconds)) +
                               " s (storage_options timeout)");
      }
      done = objects_done_.load();
    }
    CHUTE_RETURN_NOT_OK(fetch->status);
    // The slots start 8-byte aligned (they are read in place).
    uint64_t end = (fetch->end.load() + 7) & ~uint64_t{7};
    uint64_t trailer[2] = {fetch->slots.size(), kRawMagic};
    if (!WriteAll(fd, reinterpret_cast<const std::byte*>(fetch->slots.data()), fetch->slots.size() * sizeof(RawSlot),
                  end) ||
        !WriteAll(fd, reinterpret_cast<const std::byte*>(trailer), sizeof trailer,
                  end + fetch->slots.size() * sizeof(RawSlot)))
      return Status::IOError(ErrnoMessage("a block of raw objects in the cache"));
    return Status::OK();
  }

  Result<Item> FetchItem(uint32_t c, uint64_t j) const override {
    CHUTE_ASSIGN_OR_RETURN(auto rows, Block(c));
    auto objects = std::make_shared<std::vector<std::string>>(download_.size());
    std::vector<RawSlot> slots(download_.size());
    for (size_t d = 0; d < download_.size(); ++d) {
      std::string_view url = Url(*rows, d, static_cast<int64_t>(j));
      if (url.empty()) continue;
      Status st = FetchObject(std::string(url), &(*objects)[d]);
      if (st.code() == StatusCode::kNotFound) {
        slots[d].state = RawSlotState::kMissing;
        continue;
      }
      if (!st.ok())
        return Status(st.code(), RowLabel(*rows, c, static_cast<int64_t>(j)) + ", column '" + ColumnName(d) + "': " +
                                     st.message());
      slots[d] = {0, (*objects)[d].size(), RawSlotState::kFetched};
    }
    return MakeItem(*rows, rows, c, j, [&](size_t d) -> Result<std::span<const std::byte>> {
      return std::span(reinterpret_cast<const std::byte*>((*objects)[d].data()), (*objects)[d].size());
    }, slots, objects);
  }

  // Item j of block c (whose rows are `rows`): the row's leaves with each download column
  // d replaced by object(d) as `slots[d]` says; `owner` keeps the objects' memory.
  template <typename Object>
  Result<Item> MakeItem(const arrow::RecordBatch& rows, const std::shared_ptr<arrow::RecordBatch>& rows_owner,
                        uint32_t c, uint64_t j, Object object, std::span<const RawSlot> slots,
                        std::shared_ptr<const void> owner) const {
    CHUTE_ASSIGN_OR_RETURN(Item item, ArrowRowItem(rows_owner, static_cast<int64_t>(j), all_columns(rows),
                                                   index_path_));
    for (size_t d = 0; d < download_.size(); ++d) {
      LeafView& leaf = item.leaves[static_cast<size_t>(download_[d])];
      if (slots[d].state == RawSlotState::kNoUrl) continue;  // a null leaf already
      if (slots[d].state == RawSlotState::kMissing) {
        if (allow_missing_) {
          Item skipped;
          skipped.missing = true;
          return skipped;
        }
        return Status::NotFound(RowLabel(rows, c, static_cast<int64_t>(j)) + ", column '" + ColumnName(d) + "': " +
                                std::string(Url(rows, d, static_cast<int64_t>(j))) +
                                ": no such object (allow_missing=True skips such samples)");
      }
      CHUTE_ASSIGN_OR_RETURN(std::span<const std::byte> bytes, object(d));
      leaf = LeafView{};
      leaf.kind = LeafKind::kBytes;
      leaf.data = bytes.data();
      leaf.size = bytes.size();
    }
    item.owner = std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<const void>>>(
        std::move(item.owner), std::move(owner));
    return item;
  }

  // "row 12 of <the prefix or index files>" (with the index column's value when there is
  // one): the row's position in the index as filtered.
  std::string RowLabel(const arrow::RecordBatch& rows, uint32_t c, int64_t r) const {
    std::string label = "row " + std::to_string(starts_[c] + static_cast<uint64_t>(r));
    if (index_col_ >= 0) {
      auto value = rows.column(index_col_)->GetScalar(r);
      label += " (" + rows.schema()->field(index_col_)->name() + "=" + (value.ok() ? (*value)->ToString() : "?") + ")";
    }
    return label + " of " + source_name_;
  }
  const std::string& ColumnName(size_t d) const { return download_names_[d]; }
  size_t width() const { return download_.size(); }
  // The URL of download column d in row r (empty: null).
  std::string_view Url(const arrow::RecordBatch& rows, size_t d, int64_t r) const {
    return UrlAt(*rows.column(download_[d]), r);
  }

 private:
  static constexpr double kProgressSeconds = 120;

  std::string BlockName(uint32_t c) const { return index_path_ + " block " + std::to_string(c); }
  static std::vector<int> all_columns(const arrow::RecordBatch& rows) {
    std::vector<int> columns(static_cast<size_t>(rows.num_columns()));
    for (size_t k = 0; k < columns.size(); ++k) columns[k] = static_cast<int>(k);
    return columns;
  }

  // Row group c of the index, decoded (kept among the last kBlocksKept).
  Result<std::shared_ptr<arrow::RecordBatch>> Block(uint32_t c) const;
  // The whole object at `url` into `out`; NotFound when the store says it does not exist.
  Status FetchObject(const std::string& url, std::string* out) const;

  std::string index_path_;
  std::string source_name_;  // what the user gave: a prefix, an index file
  std::vector<int> download_;  // column indices
  std::vector<std::string> download_names_;
  bool local_;
  int index_col_;  // or -1
  StorageOptions storage_options_;
  bool allow_missing_;
  std::vector<uint64_t> starts_;  // first row of each block

  mutable std::mutex index_mu_;
  mutable std::unique_ptr<parquet::arrow::FileReader> index_;
  mutable LruMap<uint32_t, std::shared_ptr<arrow::RecordBatch>> blocks_{kBlocksKept};
  mutable std::mutex stores_mu_;
  mutable std::map<std::string, StorageLocation> stores_;  // by "scheme://bucket"
  mutable std::atomic<uint64_t> objects_done_{0};  // requests finished on the pool, for progress
  mutable IoPool pool_;  // declared last: destroyed first, before what its tasks use
};

Result<std::shared_ptr<arrow::RecordBatch>> RawSource::Block(uint32_t c) const {
  std::lock_guard lock(index_mu_);
  if (auto* rows = blocks_.Find(c)) return *rows;
  if (!index_) {
    auto file = arrow::io::ReadableFile::Open(index_path_);
    if (!file.ok())
      return Status::NotFound(index_path_ + ": " + file.status().message() +
                              " (the index of raw objects is gone: open the dataset again)");
    auto reader = parquet::arrow::OpenFile(*file, arrow::default_memory_pool());
    if (!reader.ok()) return Status::Corrupt(index_path_ + ": " + reader.status().message());
    index_ = std::move(*reader);
  }
  std::shared_ptr<arrow::Table> table;
  arrow::Status st = index_->ReadRowGroup(static_cast<int>(c), &table);
  auto rows = st.ok() ? table->CombineChunksToBatch() : arrow::Result<std::shared_ptr<arrow::RecordBatch>>(st);
  if (!rows.ok()) return Status::Corrupt(BlockName(c) + ": " + rows.status().message());
  if (static_cast<uint64_t>((*rows)->num_rows()) != chunks()[c].num_items)
    return Status::Corrupt(BlockName(c) + ": the index changed since it was described (open the dataset again)");
  return blocks_.Insert(c, std::move(*rows));
}

Status RawSource::FetchObject(const std::string& url, std::string* out) const {
  const size_t sep = url.find("://");
  const bool local = sep == std::string::npos || url.compare(0, sep, "file") == 0;
  std::string key = "file", path;
  if (local) {
    path = sep == std::string::npos ? url : url.substr(sep + 3);
  } else {
    size_t slash = url.find('/', sep + 3);
    if (slash == std::string::npos || slash + 1 == url.size())
      return Status::Invalid(url + ": not an object URL (expected scheme://bucket/key)");
    key = url.substr(0, slash);
    path = url.substr(slash + 1);
  }
  std::shared_ptr<Storage> storage;
  {
    std::lock_guard lock(stores_mu_);
    auto it = stores_.find(key);
    if (it == stores_.end()) {
      CHUTE_ASSIGN_OR_RETURN(StorageLocation store, OpenStorage(local ? "/" : key, storage_options_));
      it = stores_.emplace(key, std::move(store)).first;
    }
    storage = it->second.storage;
    if (!local) path = JoinPath(it->second.path, path);
  }
  Result<std::string> bytes = storage->ReadAll(path);
  if (!bytes.ok()) {
    const std::string& m = bytes.status().message();
    // A missing bucket is a mistake, not missing objects (which allow_missing would skip).
    if (bytes.status().code() == StatusCode::kNotFound &&
        (m.find("NoSuchBucket") != std::string::npos || m.find("NO_SUCH_BUCKET") != std::string::npos))
      return Status::IOError(m + " (the bucket does not exist)");
    return bytes.status();
  }
  *out = std::move(*bytes);
  return Status::OK();
}

Result<Item> RawChunkReader::GetItem(uint64_t j) {
  if (j >= static_cast<uint64_t>(rows_->num_rows()))
    return Status::Corrupt("item " + std::to_string(j) + " past the rows of block " + std::to_string(c_));
  const size_t width = source_.width();
  if (bytes_) {
    std::span<const RawSlot> slots = slots_.subspan(j * width, width);
    return source_.MakeItem(*rows_, rows_, c_, j, [&](size_t d) -> Result<std::span<const std::byte>> {
      return std::span(bytes_->data() + slots[d].offset, slots[d].size);
    }, slots, bytes_);
  }
  // In place: each object mapped.
  std::vector<RawSlot> slots(width);
  auto files = std::make_shared<std::vector<std::shared_ptr<MappedFile>>>(width);
  for (size_t d = 0; d < width; ++d) {
    std::string_view url = source_.Url(*rows_, d, static_cast<int64_t>(j));
    if (url.empty()) continue;
    if (url.starts_with("file://")) url.remove_prefix(7);
    auto file = MappedFile::Open(std::string(url));
    if (file.status().code() == StatusCode::kNotFound) {
      slots[d].state = RawSlotState::kMissing;
      continue;
    }
    if (!file.ok())
      return Status(file.status().code(), source_.RowLabel(*rows_, c_, static_cast<int64_t>(j)) + ", column '" +
                                              source_.ColumnName(d) + "': " + file.status().message());
    (*files)[d] = *file;
    slots[d] = {0, (*file)->size(), RawSlotState::kFetched};
  }
  return source_.MakeItem(*rows_, rows_, c_, j, [&](size_t d) -> Result<std::span<const std::byte>> {
    return std::span((*files)[d]->data(), (*files)[d]->size());
  }, slots, files);
}

// The description of the index at `index_path`: {"format": "raw", "digest" (of what the
// index was built from), "columns", "download", "local", "index_col", "blocks": [[rows,
// estimated bytes], ...], "schema"}. Not where the index is: the dataset's fingerprint
// (a digest of this) is the same in every node's cache.
Result<std::string> Describe(const std::string& index_path) {
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
  if (!download || !download->array() || download->array()->empty())
    return Status::Corrupt(index_path + ": chute.raw names no download column");
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

Result<std::shared_ptr<Source>> OpenRaw(const SourceLocation& location, const std::string& description) {
  if (!location.storage->is_local())
    return Status::Invalid(location.url + ": an index of raw objects is a local directory that "
                                          "chute.StreamingRawDataset builds (in its cache_dir)");
  std::string text = description;
  if (text.empty()) {
    CHUTE_ASSIGN_OR_RETURN(text, Describe(JoinPath(location.root, "index.parquet")));
  }
  CHUTE_ASSIGN_OR_RETURN(json::Value d, json::Parse(text));
  const Status malformed = Status::Corrupt(location.url + ": a malformed description of raw objects");
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
  std::vector<int> download_columns;
  std::vector<std::string> download_names;
  for (const json::Value& c : *download->array()) {
    if (!c.string() || position(*c.string()) < 0) return malformed;
    download_columns.push_back(position(*c.string()));
    download_names.push_back(*c.string());
  }
  int index_column = index_col->string() ? position(*index_col->string()) : -1;
  std::vector<ChunkInfo> chunks;
  for (const json::Value& b : *blocks->array()) {
    const json::Array* block = b.array();
    if (!block || block->size() != 2 || !(*block)[0].integer() || !(*block)[1].integer()) return malformed;
    ChunkInfo info;
    info.file = "block-" + std::to_string(chunks.size());
    info.num_items = static_cast<uint64_t>(*(*block)[0].integer());
    info.num_bytes = static_cast<uint64_t>(*(*block)[1].integer());
    info.has_checksum = false;
    chunks.push_back(std::move(info));
  }
  std::string index_path = JoinPath(location.root, "index.parquet");
  bool is_local = *local->boolean();
  std::string schema_text = json::Dump(*schema);
  std::string source_name = *source->string();
  return std::shared_ptr<Source>(std::make_shared<RawSource>(std::move(text), std::move(chunks),
                                                             std::move(schema_text), std::move(index_path),
                                                             std::move(source_name),
                                                             std::move(download_columns), std::move(download_names),
                                                             is_local, index_column, location));
}

const bool registered = (RegisterSource("raw", OpenRaw), true);

}  // namespace
}  // namespace chute
