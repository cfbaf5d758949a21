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
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "format/arrow_rows.h"
#include "format/foreign_source.h"
#include "format/raw.h"
#include "format/raw_fetch.h"
#include "util/bytes.h"
#include "util/json.h"
#include "util/lru_map.h"
#include "util/posix_file.h"
#include "util/task_group.h"

namespace chute {

namespace {

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
  RawSource(std::string description, RawIndex index, std::string index_path, const SourceLocation& location)
      : ForeignSource("raw", "index.parquet", std::move(description), std::move(index.chunks), std::move(index.schema)),
        index_path_(std::move(index_path)), source_name_(std::move(index.source)), download_(std::move(index.download)),
        download_names_(std::move(index.download_names)), local_(index.local), index_col_(index.index_col),
        allow_missing_(location.allow_missing), as_paths_(location.as_paths && index.local),
        fetcher_(location.storage_options, location.concurrency) {
    for (uint64_t start = 0; const ChunkInfo& c : this->chunks()) {
      starts_.push_back(start);
      start += c.num_items;
    }
  }

  ChunkSourcing sourcing() const override { return local_ ? ChunkSourcing::kInPlace : ChunkSourcing::kFetched; }
  // A row's objects are fetched one after another, each within its store's timeout.
  double FetchTimeout() const override { return fetcher_.timeout() * static_cast<double>(download_.size()); }
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
      fetcher_.Submit([this, fetch, rows, c, k = k, url = std::move(url), width] {
        if (fetch->abandoned || fetch->failed()) return fetch->Done(Status::OK());
        auto label = [this, rows, c, k, width](const Status& st) {
          return Status(st.code(), RowLabel(*rows, c, static_cast<int64_t>(k / width)) + ", column '" +
                                       ColumnName(k % width) + "': " + st.message());
        };
        Result<ObjectFetcher::Object> object = fetcher_.First(url);
        RawSlot& slot = fetch->slots[k];
        if (object.status().code() == StatusCode::kNotFound) {
          slot.state = RawSlotState::kMissing;
          return fetch->Done(Status::OK());
        }
        if (!object.ok()) return fetch->Done(label(object.status()));
        const std::string& first = object->prefix.bytes;
        slot = {fetch->end.fetch_add(object->prefix.size), object->prefix.size, RawSlotState::kFetched};
        if (!WriteAll(fetch->fd, reinterpret_cast<const std::byte*>(first.data()), first.size(), slot.offset))
          return fetch->Done(Status::IOError(ErrnoMessage("a block of raw objects in the cache")));
        // The rest of a large object: more ranges, straight into its place in the file.
        fetcher_.SubmitRest(fetch, first.size(), slot.size,
                   [fetch, storage = object->storage, path = object->path, at = slot.offset, label](uint64_t offset,
                                                                                                    uint64_t length) {
                     if (fetch->abandoned || fetch->failed()) return Status::OK();
                     Status st = storage->ReadRangeToFile(path, offset, length, fetch->fd, at + offset);
                     return st.ok() ? st : label(st);
                   });
        fetch->Done(Status::OK());
      });
    }
    if (Status st = fetcher_.WaitWhileArriving(*fetch, BlockName(c)); !st.ok()) {
      fetch->abandoned = true;
      return st;
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
      Result<ObjectFetcher::Object> object = fetcher_.First(std::string(url));
      Status st = object.status();
      if (st.code() == StatusCode::kNotFound) {
        slots[d].state = RawSlotState::kMissing;
        continue;
      }
      if (st.ok()) {  // the rest of a large object in ranges on the pool, waited for here
        std::string& bytes = (*objects)[d];
        const uint64_t first = object->prefix.bytes.size();
        bytes = std::move(object->prefix.bytes);
        bytes.resize(object->prefix.size);
        auto rest = std::make_shared<TaskGroup>();
        rest->left = 1;
        // The ranges own `objects`: a wait given up on leaves them writing into live memory.
        fetcher_.SubmitRest(rest, first, object->prefix.size,
                   [rest, storage = object->storage, path = object->path, objects, d](uint64_t offset, uint64_t length) {
                     if (rest->failed()) return Status::OK();
                     auto* out = reinterpret_cast<std::byte*>((*objects)[d].data()) + offset;
                     return storage->ReadRange(path, offset, length, out);
                   });
        rest->Done(Status::OK());
        st = fetcher_.WaitWhileArriving(*rest, std::string(url));
        if (st.ok()) st = rest->status;
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
      leaf.kind = as_paths_ ? LeafKind::kString : LeafKind::kBytes;
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
  bool as_paths() const { return as_paths_; }
  size_t width() const { return download_.size(); }
  // The URL of download column d in row r (empty: null).
  std::string_view Url(const arrow::RecordBatch& rows, size_t d, int64_t r) const {
    return UrlAt(*rows.column(download_[d]), r);
  }

 private:
  std::string BlockName(uint32_t c) const { return index_path_ + " block " + std::to_string(c); }
  static std::vector<int> all_columns(const arrow::RecordBatch& rows) {
    std::vector<int> columns(static_cast<size_t>(rows.num_columns()));
    for (size_t k = 0; k < columns.size(); ++k) columns[k] = static_cast<int>(k);
    return columns;
  }

  // Row group c of the index, decoded (kept among the last kBlocksKept).
  Result<std::shared_ptr<arrow::RecordBatch>> Block(uint32_t c) const;

  std::string index_path_;
  std::string source_name_;  // what the user gave: a prefix, an index file
  std::vector<int> download_;  // column indices
  std::vector<std::string> download_names_;
  bool local_;
  int index_col_;  // or -1
  bool allow_missing_;
  bool as_paths_;  // in place: objects' fields are their paths
  std::vector<uint64_t> starts_;  // first row of each block

  mutable std::mutex index_mu_;
  mutable std::unique_ptr<parquet::arrow::FileReader> index_;
  mutable LruMap<uint32_t, std::shared_ptr<arrow::RecordBatch>> blocks_{kBlocksKept};
  mutable ObjectFetcher fetcher_;  // declared last: its pool stops first, before what its tasks use
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
  // In place: each object mapped, or only checked with as_paths (its field is the path).
  std::vector<RawSlot> slots(width);
  auto files = std::make_shared<std::vector<std::shared_ptr<MappedFile>>>(width);
  std::vector<std::string_view> paths(width);
  for (size_t d = 0; d < width; ++d) {
    std::string_view url = source_.Url(*rows_, d, static_cast<int64_t>(j));
    if (url.empty()) continue;
    if (url.starts_with("file://")) url.remove_prefix(7);
    paths[d] = url;
    Status st;
    if (source_.as_paths()) {
      struct stat info;
      if (::stat(std::string(url).c_str(), &info) != 0)
        st = errno == ENOENT || errno == ENOTDIR ? Status::NotFound(std::string(url)) : Status::IOError(ErrnoMessage(std::string(url)));
      else if (!S_ISREG(info.st_mode))
        st = Status::Invalid(std::string(url) + ": not a file");
    } else {
      auto file = MappedFile::Open(std::string(url));
      st = file.status();
      if (file.ok()) (*files)[d] = *file;
    }
    if (st.code() == StatusCode::kNotFound) {
      slots[d].state = RawSlotState::kMissing;
      continue;
    }
    if (!st.ok())
      return Status(st.code(), source_.RowLabel(*rows_, c_, static_cast<int64_t>(j)) + ", column '" +
                                   source_.ColumnName(d) + "': " + st.message());
    slots[d] = {0, (*files)[d] ? (*files)[d]->size() : paths[d].size(), RawSlotState::kFetched};
  }
  return source_.MakeItem(*rows_, rows_, c_, j, [&](size_t d) -> Result<std::span<const std::byte>> {
    if (!(*files)[d]) return std::as_bytes(std::span(paths[d]));  // as_paths: the path, held by the rows
    return std::span((*files)[d]->data(), (*files)[d]->size());
  }, slots, files);
}

Result<std::shared_ptr<Source>> OpenRaw(const SourceLocation& location, const std::string& description) {
  if (!location.storage->is_local())
    return Status::Invalid(location.url + ": an index of raw objects is a local directory that "
                                          "chute.StreamingRawDataset builds (in its cache_dir)");
  const std::string index_path = JoinPath(location.root, "index.parquet");
  std::string text = description;
  if (text.empty()) {
    CHUTE_ASSIGN_OR_RETURN(text, DescribeRawIndex(index_path));
  }
  CHUTE_ASSIGN_OR_RETURN(RawIndex index, ParseRawDescription(text, location.url));
  return std::shared_ptr<Source>(std::make_shared<RawSource>(std::move(text), std::move(index), index_path, location));
}

const bool registered = (RegisterSource("raw", OpenRaw), true);

}  // namespace
}  // namespace chute
