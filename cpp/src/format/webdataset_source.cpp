// WebDataset shards as a source (chute/source.h): the *.tar (and *.tar.gz) files of a
// directory (local or in a bucket; POSIX ustar, PAX and GNU long names), no index.
// Opening scans each shard's member headers (webdataset_scan.h: windows read ahead of the
// walk, kScanThreads shards at once; a remote shard read whole is kept for the node cache,
// Source::LocalCopy), groups consecutive members sharing a key (the path up to the first
// dot of its basename) into samples, and keeps each sample's byte range; the scan is the
// source's description, so worker processes do not scan again, and it is kept in the
// cache directory (SourceLocation::cache_dir) for the next runs, reused while the shards'
// names and sizes are those it was made from. A sample is one ranged read; its fields are
// its members' bytes keyed by (lower-cased) extension, plus "__key__" and "__url__" (its
// shard's URL) as WebDataset gives them; fields a sample lacks are null leaves (the Python
// layer drops them).
// Gzip shards (.tar.gz, .tgz) have no random access inside: the scan inflates each as a
// stream (memory bounded), and a chunk is inflated whole when it is opened (like a
// compressed MDS shard); ds[i] of one reads its whole shard. Other compressions
// (.tar.bz2, .tar.xz, .tar.zst) and GNU sparse members are refused.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <tuple>

#include "chute/source.h"
#include "format/foreign_source.h"
#include "format/tar.h"
#include "format/webdataset_scan.h"
#include "util/inflater.h"
#include "util/json.h"
#include "util/posix_file.h"

namespace chute {

namespace {

using namespace webdataset;
using namespace tar;

constexpr size_t kScanThreads = 32;

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;  // each sample's [begin, end) in its shard

class TarSampleReader final : public ChunkReader {
 public:
  TarSampleReader(std::shared_ptr<ChunkBytes> bytes, std::string url, std::shared_ptr<const Ranges> ranges,
                  std::shared_ptr<const std::vector<std::string>> fields)
      : bytes_(std::move(bytes)), url_(std::make_shared<const std::string>(std::move(url))),
        ranges_(std::move(ranges)), fields_(std::move(fields)) {}

  Result<Item> GetItem(uint64_t j) override {
    const std::string& url = *url_;
    auto [begin, end] = (*ranges_)[j];
    if (begin > end || end > bytes_->size())
      return Status::Corrupt(url + ": sample " + std::to_string(j) + " runs past the shard");
    CHUTE_RETURN_NOT_OK(bytes_->Wait(begin, end - begin));
    const std::byte* base = bytes_->data();
    Item item;
    const std::vector<std::string>& fields = *fields_;
    item.leaves.resize(fields.size() + 2);  // "__key__", "__url__", then the fields; kNull where missing
    auto key_text = std::make_shared<std::string>();
    auto get = [&](uint64_t offset, uint64_t) -> Result<const std::byte*> { return base + offset; };
    CHUTE_RETURN_NOT_OK(Walk(get, begin, end, url, [&](Member m) -> Status {
      std::string key, ext;
      if (!m.regular || !KeyAndExtension(m.name, &key, &ext)) return Status::OK();
      *key_text = key;
      auto at = std::lower_bound(fields.begin(), fields.end(), ext);
      if (at == fields.end() || *at != ext) return Status::Corrupt(url + ": member " + m.name + " was not there when "
                                                                   "the dataset was opened (the shard changed)");
      LeafView& leaf = item.leaves[2 + (at - fields.begin())];
      leaf.kind = LeafKind::kBytes;
      leaf.data = base + m.data;
      leaf.size = m.size;
      return Status::OK();
    }));
    item.leaves[0].kind = LeafKind::kString;
    item.leaves[0].data = reinterpret_cast<const std::byte*>(key_text->data());
    item.leaves[0].size = key_text->size();
    item.leaves[1].kind = LeafKind::kString;
    item.leaves[1].data = reinterpret_cast<const std::byte*>(url.data());
    item.leaves[1].size = url.size();
    item.owner = std::shared_ptr<const void>(
        std::make_shared<std::tuple<std::shared_ptr<ChunkBytes>, std::shared_ptr<std::string>,
                                    std::shared_ptr<const std::string>>>(bytes_, key_text, url_));
    return item;
  }

 private:
  std::shared_ptr<ChunkBytes> bytes_;
  std::shared_ptr<const std::string> url_;
  std::shared_ptr<const Ranges> ranges_;
  std::shared_ptr<const std::vector<std::string>> fields_;
};

// The schema: "__key__" and "__url__" (str), then each extension (bytes).
std::string TarSchema(const std::vector<std::string>& fields) {
  json::Array tree{json::Array{"__key__", "*"}, json::Array{"__url__", "*"}};
  json::Array schema_fields{json::Object{{"name", "__key__"}, {"type", "str"}},
                            json::Object{{"name", "__url__"}, {"type", "str"}}};
  for (const std::string& f : fields) {
    tree.push_back(json::Array{f, "*"});
    schema_fields.push_back(json::Object{{"name", f}, {"type", "bytes"}});
  }
  return json::Dump(json::Object{{"tree", json::Object{{"dict", std::move(tree)}}}, {"fields", std::move(schema_fields)}});
}

// A gzip shard's tar, inflated in memory.
class InflatedBytes final : public ChunkBytes {
 public:
  explicit InflatedBytes(std::vector<std::byte> bytes) : bytes_(std::move(bytes)) {}
  const std::byte* data() const override { return bytes_.data(); }
  size_t size() const override { return bytes_.size(); }
  Status Wait(uint64_t offset, uint64_t length) override {
    return offset + length <= bytes_.size() ? Status::OK() : Status::Corrupt("a range past the inflated shard");
  }

 private:
  std::vector<std::byte> bytes_;
};

class WebDatasetSource final : public ForeignSource {
 public:
  WebDatasetSource(std::string description, std::vector<ChunkInfo> chunks,
                   std::vector<std::shared_ptr<const Ranges>> ranges, std::vector<uint64_t> inflated_sizes,
                   std::vector<std::string> fields, std::string copies)
      : ForeignSource("webdataset", "*.tar", std::move(description), std::move(chunks), TarSchema(fields)),
        ranges_(std::move(ranges)), inflated_sizes_(std::move(inflated_sizes)),
        fields_(std::make_shared<const std::vector<std::string>>(std::move(fields))), copies_(std::move(copies)) {}

  std::string LocalCopy(uint32_t c) const override {
    return copies_.empty() ? "" : CopyPath(copies_, chunks()[c].file);
  }

  uint64_t TablesSizeHint(uint32_t c) const override {
    if (IsGzipShard(chunks()[c].file)) return chunks()[c].num_bytes;  // all of it
    return ranges_[c]->empty() ? 0 : (*ranges_[c])[0].second;  // the first sample
  }
  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool, std::atomic<uint8_t>*) const override {
    if (bytes->size() != chunks()[c].num_bytes)
      return Status::Corrupt(url + ": " + std::to_string(bytes->size()) + " bytes, " +
                             std::to_string(chunks()[c].num_bytes) + " when the dataset was opened (the shard changed)");
    if (IsGzipShard(chunks()[c].file)) {  // no random access inside: inflated whole
      const uint64_t inflated_size = inflated_sizes_[c];
      CHUTE_RETURN_NOT_OK(bytes->Wait(0, bytes->size()));
      std::vector<std::byte> tar;
      bool given = false;
      Inflater inflater([&]() -> Result<std::span<const std::byte>> {
        if (std::exchange(given, true)) return std::span<const std::byte>();
        return std::span<const std::byte>(bytes->data(), bytes->size());
      }, url);
      try {
        tar.reserve(inflated_size + 1);  // one more: a longer stream is found without growing
      } catch (const std::exception&) {
        return Status::IOError(url + ": no memory for its " + std::to_string(inflated_size) + " inflated bytes");
      }
      CHUTE_RETURN_NOT_OK(inflater.Inflate(&tar, inflated_size + 1));
      if (tar.size() != inflated_size)
        return Status::Corrupt(url + ": inflates to " + std::to_string(tar.size()) + " bytes, " +
                               std::to_string(inflated_size) + " when the dataset was opened (the shard changed)");
      bytes = std::make_shared<InflatedBytes>(std::move(tar));
    }
    return std::shared_ptr<ChunkReader>(std::make_shared<TarSampleReader>(std::move(bytes), url, ranges_[c], fields_));
  }

 private:
  std::vector<std::shared_ptr<const Ranges>> ranges_;  // per shard
  std::vector<uint64_t> inflated_sizes_;  // per shard: a gzip shard's tar bytes
  std::shared_ptr<const std::vector<std::string>> fields_;  // sorted extensions
  std::string copies_;  // where the scan kept whole shards (CopiesDir), or empty
};

// The description: {"format": "webdataset", "fields": [...], "shards": [[file, size, [begin, end, ...]
// (in the tar: inflated for gzip), inflated size (gzip only)], ...]}.
Result<std::string> Describe(const SourceLocation& location) {
  Storage& storage = *location.storage;
  CHUTE_ASSIGN_OR_RETURN(auto listing, storage.List(location.root));
  std::vector<ObjectInfo> shards;
  for (ObjectInfo& o : listing) {
    if (EndsWith(o.path, ".tar") || IsGzipShard(o.path)) shards.push_back(std::move(o));
    else if (EndsWith(o.path, ".tar.bz2") || EndsWith(o.path, ".tar.xz") || EndsWith(o.path, ".tar.zst"))
      return Status::Unsupported(storage.Url(o.path) + ": tar shards compressed other than with gzip are not read; "
                                 "decompress them to .tar (or recompress them as .tar.gz)");
  }
  if (shards.empty())
    return Status::NotFound(location.url + ": no *.tar or *.tar.gz shards there (not a WebDataset dataset)");
  std::sort(shards.begin(), shards.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.path < b.path; });
  // A shard kept both plain and compressed would be read twice.
  std::set<std::string> tars;
  for (const ObjectInfo& o : shards)
    if (EndsWith(o.path, ".tar")) tars.insert(o.path);
  for (const ObjectInfo& o : shards) {
    const std::string plain = o.path.substr(0, o.path.rfind('.')) + (EndsWith(o.path, ".tgz") ? ".tar" : "");
    if (IsGzipShard(o.path) && tars.count(plain))
      return Status::Invalid(storage.Url(o.path) + " and " + storage.Url(plain) +
                             " are the same shard twice: keep one of them");
  }
  const std::string prefix = location.root.empty() ? "" : location.root + "/";
  auto relative = [&](const std::string& path) {
    return path.compare(0, prefix.size(), prefix) == 0 ? path.substr(prefix.size()) : path;
  };
  // A scan kept by an earlier run, if it was made from these shards.
  const std::string kept = ScanPath(location), copies = CopiesDir(location);
  if (!kept.empty()) {
    std::ifstream in(kept);
    std::stringstream text;
    text << in.rdbuf();
    if (Result<json::Value> scan = json::Parse(text.str()); in && scan.ok() && scan->get("shards") &&
                                                               scan->get("shards")->array()) {
      const json::Array& listed = *scan->get("shards")->array();
      bool same = listed.size() == shards.size();
      for (size_t s = 0; same && s < shards.size(); ++s) {
        const json::Array* entry = listed[s].array();
        same = entry && entry->size() >= 3 && (*entry)[0].string() && (*entry)[1].integer() &&
               *(*entry)[0].string() == relative(shards[s].path) &&
               static_cast<uint64_t>(*(*entry)[1].integer()) == shards[s].size;
      }
      if (same) {
        // Shard copies an earlier scan kept and no cache took within the hour: left over.
        std::error_code ec;
        const auto hour_ago = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
        if (!copies.empty())
          for (const auto& entry : std::filesystem::directory_iterator(copies, ec))
            if (entry.last_write_time(ec) < hour_ago) std::filesystem::remove(entry.path(), ec);
        return text.str();
      }
    }
  }
  std::vector<std::vector<Sample>> samples(shards.size());
  std::vector<std::set<std::string>> fields(shards.size());
  std::vector<Status> scanned(shards.size());
  std::vector<uint64_t> inflated(shards.size(), 0);
  // A scan that reads whole shards keeps them for the node cache, up to half the free disk.
  std::atomic<int64_t> budget{0};
  if (!copies.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(copies, ec);
    auto space = std::filesystem::space(copies, ec);
    if (!ec) budget = static_cast<int64_t>(space.available / 2);
  }
  std::atomic<size_t> next{0};
  std::vector<std::future<void>> scanners;
  for (size_t t = 0; t < std::min(kScanThreads, shards.size()); ++t)
    scanners.push_back(std::async(std::launch::async, [&] {
      for (size_t s; (s = next.fetch_add(1)) < shards.size();)
        scanned[s] = ScanShard(storage, shards[s].path, shards[s].size, &samples[s], &fields[s], &inflated[s],
                               copies.empty() ? "" : CopyPath(copies, relative(shards[s].path)), &budget);
    }));
  for (auto& scanner : scanners) scanner.get();
  for (const Status& st : scanned) CHUTE_RETURN_NOT_OK(st);
  std::set<std::string> all;
  for (auto& f : fields) all.insert(f.begin(), f.end());
  json::Array shard_list;
  for (size_t s = 0; s < shards.size(); ++s) {
    json::Array ranges;
    for (const Sample& sample : samples[s]) {
      ranges.push_back(sample.begin);
      ranges.push_back(sample.end);
    }
    json::Array entry{relative(shards[s].path), shards[s].size, std::move(ranges)};
    if (IsGzipShard(shards[s].path)) entry.push_back(inflated[s]);  // the tar's size
    shard_list.push_back(std::move(entry));
  }
  json::Array field_list(all.begin(), all.end());
  std::string scan = json::Dump(json::Object{{"format", "webdataset"}, {"fields", std::move(field_list)},
                                             {"shards", std::move(shard_list)}});
  if (!kept.empty()) {  // best effort: a cache that cannot be written only costs a scan next time
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(kept).parent_path(), ec);
    if (auto writer = AtomicFileWriter::Open(kept); writer.ok()) {
      if ((*writer)->Write(std::as_bytes(std::span(scan.data(), scan.size()))).ok()) (void)(*writer)->Close();
    }
  }
  return scan;
}

Result<std::shared_ptr<Source>> OpenWebDataset(const SourceLocation& location, const std::string& description) {
  std::string text = description;
  if (text.empty()) {
    CHUTE_ASSIGN_OR_RETURN(text, Describe(location));
  }
  CHUTE_ASSIGN_OR_RETURN(json::Value d, json::Parse(text));
  const Status malformed = Status::Corrupt(location.url + ": a malformed WebDataset scan (open the dataset again)");
  const json::Value* fields = d.get("fields");
  const json::Value* shards = d.get("shards");
  if (!fields || !fields->array() || !shards || !shards->array()) return malformed;
  std::vector<std::string> field_names;
  for (const json::Value& f : *fields->array()) {
    if (!f.string()) return malformed;
    field_names.push_back(*f.string());
  }
  std::vector<ChunkInfo> chunks;
  std::vector<std::shared_ptr<const Ranges>> ranges;
  std::vector<uint64_t> inflated_sizes;
  for (const json::Value& shard : *shards->array()) {
    const json::Array* fields_of = shard.array();
    if (!fields_of || fields_of->size() < 3 || fields_of->size() > 4 || !(*fields_of)[0].string() ||
        !(*fields_of)[1].integer() || !(*fields_of)[2].array() ||
        (fields_of->size() == 4) != IsGzipShard(*(*fields_of)[0].string()) ||
        (fields_of->size() == 4 && (!(*fields_of)[3].integer() || *(*fields_of)[3].integer() < 0)))
      return malformed;
    inflated_sizes.push_back(fields_of->size() == 4 ? static_cast<uint64_t>(*(*fields_of)[3].integer()) : 0);
    const json::Array& s = *fields_of;
    ChunkInfo info;
    info.file = *s[0].string();
    info.num_bytes = static_cast<uint64_t>(*s[1].integer());
    info.has_checksum = false;
    const json::Array& r = *s[2].array();
    auto shard_ranges = std::make_shared<Ranges>();
    for (size_t i = 0; i + 1 < r.size(); i += 2) {
      if (!r[i].integer() || !r[i + 1].integer()) return malformed;
      shard_ranges->emplace_back(static_cast<uint64_t>(*r[i].integer()), static_cast<uint64_t>(*r[i + 1].integer()));
    }
    info.num_items = shard_ranges->size();
    chunks.push_back(std::move(info));
    ranges.push_back(std::move(shard_ranges));
  }
  return std::shared_ptr<Source>(
      std::make_shared<WebDatasetSource>(std::move(text), std::move(chunks), std::move(ranges),
                                         std::move(inflated_sizes), std::move(field_names), CopiesDir(location)));
}

const bool registered = (RegisterSource("webdataset", OpenWebDataset), true);

}  // namespace

}  // namespace chute
