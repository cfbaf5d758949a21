// WebDataset shards as a source (chute/source.h): the *.tar files of a directory (local or
// in a bucket; POSIX ustar, PAX and GNU long names), no index. Opening scans each shard's
// 512-byte member headers only (ranged reads of 1 MiB windows for remote shards, up to
// kScanThreads shards at once), groups consecutive members sharing a key (the path up to
// the first dot of its basename) into samples, and keeps each sample's byte range; the scan
// is the source's description, so worker processes do not scan again, and it is kept in
// the cache directory (SourceLocation::cache_dir) for the next runs, reused while the
// shards' names and sizes are those it was made from. A sample is one
// ranged read; its fields are its members' bytes keyed by (lower-cased) extension, plus
// "__key__" (str); fields a sample lacks are null leaves (the Python layer drops them).
// Compressed shards (.tar.gz, ...) and GNU sparse members are refused.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <set>

#include <fstream>
#include <sstream>

#include "chute/source.h"
#include "format/foreign_source.h"
#include "util/checksum.h"
#include "util/json.h"
#include "util/posix_file.h"

namespace chute {

namespace {

constexpr uint64_t kBlock = 512;
constexpr uint64_t kWindow = uint64_t{1} << 20;
constexpr size_t kScanThreads = 32;
constexpr uint64_t kMaxMemberSize = uint64_t{1} << 50;  // sizes past this are damage, not data

uint64_t Padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// An octal field (NUL/space terminated) or GNU base-256.
bool ParseNumber(const std::byte* p, size_t n, uint64_t* out) {
  auto b = reinterpret_cast<const uint8_t*>(p);
  uint64_t v = 0;
  if (b[0] & 0x80) {  // base-256 (0xff: negative)
    if (b[0] == 0xff) return false;
    for (size_t i = 1; i < n; ++i) v = (v << 8) | b[i];
    *out = v;
    return v <= kMaxMemberSize;
  }
  size_t i = 0;
  while (i < n && b[i] == ' ') ++i;
  for (; i < n && b[i] >= '0' && b[i] <= '7'; ++i) v = v * 8 + (b[i] - '0');
  if (i < n && b[i] != 0 && b[i] != ' ') return false;
  *out = v;
  return v <= kMaxMemberSize;
}

std::string Field(const std::byte* p, size_t n) {
  auto c = reinterpret_cast<const char*>(p);
  return std::string(c, strnlen(c, n));
}

struct Member {
  std::string name;
  uint64_t header = 0;  // offset of its first header (PAX / long-name ones included)
  uint64_t data = 0, size = 0;
  bool regular = false;
};

// Walks the members of a tar through `get(offset, length)` (bytes that stay valid until
// the next call) from `pos` until `end` or the archive's end.
template <typename Get>
Status Walk(Get&& get, uint64_t pos, uint64_t end, const std::string& url, const std::function<Status(Member)>& visit) {
  std::string long_name;
  uint64_t long_size = UINT64_MAX;
  uint64_t first = pos;
  while (pos + kBlock <= end) {
    CHUTE_ASSIGN_OR_RETURN(const std::byte* h, get(pos, kBlock));
    if (std::all_of(h, h + kBlock, [](std::byte b) { return b == std::byte{0}; })) break;
    uint64_t sum = 0, stored = 0;
    int64_t signed_sum = 0;
    for (uint64_t i = 0; i < kBlock; ++i) {
      auto v = (i >= 148 && i < 156) ? uint8_t{' '} : static_cast<uint8_t>(h[i]);
      sum += v;
      signed_sum += (i >= 148 && i < 156) ? ' ' : static_cast<int8_t>(h[i]);
    }
    if (!ParseNumber(h + 148, 8, &stored) || (stored != sum && static_cast<int64_t>(stored) != signed_sum))
      return Status::Corrupt(url + ": bad tar header checksum at offset " + std::to_string(pos) +
                             " (not a tar file, or a damaged one)");
    uint64_t size = 0;
    if (!ParseNumber(h + 124, 12, &size)) return Status::Corrupt(url + ": bad member size at offset " + std::to_string(pos));
    char type = static_cast<char>(h[156]);
    std::string name = Field(h, 100);
    if (std::memcmp(h + 257, "ustar", 5) == 0) {
      std::string prefix = Field(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    uint64_t data = pos + kBlock;
    if (type == 'S') return Status::Unsupported(url + ": member " + name + " is a GNU sparse file, which is not read");
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {  // PAX attributes, GNU long name / link name
      if (data > end || size > end - data) return Status::Corrupt(url + ": a tar header runs past the end of the file");
      CHUTE_ASSIGN_OR_RETURN(const std::byte* d, get(data, size));
      std::string text(reinterpret_cast<const char*>(d), size);
      if (type == 'L') long_name = text.substr(0, text.find('\0'));
      // "<len> <key>=<value>\n" records; a global header ('g') applies to no member here.
      for (size_t at = 0; type == 'x' && at < text.size();) {
        size_t space = text.find(' ', at);
        if (space == std::string::npos) break;
        size_t len = std::strtoull(text.c_str() + at, nullptr, 10);
        if (len < space - at + 2 || at + len > text.size()) break;
        std::string record = text.substr(space + 1, at + len - space - 2);
        size_t eq = record.find('=');
        if (eq != std::string::npos) {
          if (record.compare(0, eq, "path") == 0) long_name = record.substr(eq + 1);
          if (record.compare(0, eq, "size") == 0) long_size = std::strtoull(record.c_str() + eq + 1, nullptr, 10);
        }
        at += len;
      }
      pos = data + Padded(size);
      continue;
    }
    if (!long_name.empty()) name = std::exchange(long_name, "");
    if (long_size != UINT64_MAX) size = std::exchange(long_size, UINT64_MAX);
    if (data > end || size > end - data)
      return Status::Corrupt(url + ": member " + name + " runs past the end of the file");
    bool regular = (type == '0' || type == '\0' || type == '7') && !name.empty() && name.back() != '/';
    CHUTE_RETURN_NOT_OK(visit(Member{name, first, data, size, regular}));
    pos = data + Padded(size);
    first = pos;
  }
  return Status::OK();
}

// A member's key and extension (WebDataset's rule: the path up to the first dot of the
// basename, the rest lower-cased); false for members that are not sample files.
bool KeyAndExtension(const std::string& name, std::string* key, std::string* ext) {
  size_t slash = name.rfind('/');
  std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
  if (base.empty() || base[0] == '.') return false;  // hidden files, AppleDouble "._*"
  if (name.size() >= 4 && name.compare(0, 2, "__") == 0) {  // metadata: "__*__" at the top level
    size_t end = name.find('/');
    std::string top = name.substr(0, end);
    if (top.size() >= 4 && top.compare(top.size() - 2, 2, "__") == 0) return false;
  }
  size_t dot = base.find('.');
  if (dot == std::string::npos || dot == 0) return false;
  *key = name.substr(0, name.size() - base.size() + dot);
  *ext = base.substr(dot + 1);
  std::transform(ext->begin(), ext->end(), ext->begin(), [](unsigned char c) { return std::tolower(c); });
  return !ext->empty();
}

struct Sample {
  std::string key;
  uint64_t begin = 0, end = 0;
};

// The samples of one shard, from its headers.
Status ScanShard(Storage& storage, const std::string& path, uint64_t size, std::vector<Sample>* samples,
                 std::set<std::string>* fields) {
  const std::string url = storage.Url(path);
  std::vector<std::byte> window;
  uint64_t window_at = 0;
  auto get = [&](uint64_t offset, uint64_t length) -> Result<const std::byte*> {
    if (offset < window_at || offset + length > window_at + window.size()) {
      uint64_t n = std::min(std::max(kWindow, length), size - offset);
      if (n < length) return Status::Corrupt(url + ": truncated at offset " + std::to_string(offset));
      window.resize(n);
      CHUTE_RETURN_NOT_OK(storage.ReadRange(path, offset, n, window.data()));
      window_at = offset;
    }
    return window.data() + (offset - window_at);
  };
  std::set<std::string> exts;
  return Walk(get, 0, size, url, [&](Member m) -> Status {
    std::string key, ext;
    if (!m.regular || !KeyAndExtension(m.name, &key, &ext)) return Status::OK();
    if (samples->empty() || samples->back().key != key) {
      samples->push_back(Sample{key, m.header, 0});
      exts.clear();
    }
    if (!exts.insert(ext).second)
      return Status::Corrupt(url + ": sample '" + key + "' has two members with extension '" + ext + "'");
    fields->insert(ext);
    samples->back().end = m.data + m.size;
    return Status::OK();
  });
}

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;  // each sample's [begin, end) in its shard

class TarSampleReader final : public ChunkReader {
 public:
  TarSampleReader(std::shared_ptr<ChunkBytes> bytes, std::string url, std::shared_ptr<const Ranges> ranges,
                  std::shared_ptr<const std::vector<std::string>> fields)
      : bytes_(std::move(bytes)), url_(std::move(url)), ranges_(std::move(ranges)), fields_(std::move(fields)) {}

  Result<Item> GetItem(uint64_t j) override {
    auto [begin, end] = (*ranges_)[j];
    if (begin > end || end > bytes_->size())
      return Status::Corrupt(url_ + ": sample " + std::to_string(j) + " runs past the shard");
    CHUTE_RETURN_NOT_OK(bytes_->Wait(begin, end - begin));
    const std::byte* base = bytes_->data();
    Item item;
    const std::vector<std::string>& fields = *fields_;
    item.leaves.resize(fields.size() + 1);  // "__key__", then the fields; kNull where missing
    auto key_text = std::make_shared<std::string>();
    auto get = [&](uint64_t offset, uint64_t) -> Result<const std::byte*> { return base + offset; };
    CHUTE_RETURN_NOT_OK(Walk(get, begin, end, url_, [&](Member m) -> Status {
      std::string key, ext;
      if (!m.regular || !KeyAndExtension(m.name, &key, &ext)) return Status::OK();
      *key_text = key;
      auto at = std::lower_bound(fields.begin(), fields.end(), ext);
      if (at == fields.end() || *at != ext) return Status::Corrupt(url_ + ": member " + m.name + " was not there when "
                                                                    "the dataset was opened (the shard changed)");
      LeafView& leaf = item.leaves[1 + (at - fields.begin())];
      leaf.kind = LeafKind::kBytes;
      leaf.data = base + m.data;
      leaf.size = m.size;
      return Status::OK();
    }));
    item.leaves[0].kind = LeafKind::kString;
    item.leaves[0].data = reinterpret_cast<const std::byte*>(key_text->data());
    item.leaves[0].size = key_text->size();
    item.owner = std::shared_ptr<const void>(std::make_shared<std::pair<std::shared_ptr<ChunkBytes>,
                                                                        std::shared_ptr<std::string>>>(bytes_, key_text));
    return item;
  }

 private:
  std::shared_ptr<ChunkBytes> bytes_;
  std::string url_;
  std::shared_ptr<const Ranges> ranges_;
  std::shared_ptr<const std::vector<std::string>> fields_;
};

// The schema: "__key__" (str), then each extension (bytes).
std::string TarSchema(const std::vector<std::string>& fields) {
  json::Array tree{json::Array{"__key__", "*"}}, schema_fields{json::Object{{"name", "__key__"}, {"type", "str"}}};
  for (const std::string& f : fields) {
    tree.push_back(json::Array{f, "*"});
    schema_fields.push_back(json::Object{{"name", f}, {"type", "bytes"}});
  }
  return json::Dump(json::Object{{"tree", json::Object{{"dict", std::move(tree)}}}, {"fields", std::move(schema_fields)}});
}

class WebDatasetSource final : public ForeignSource {
 public:
  WebDatasetSource(std::string description, std::vector<ChunkInfo> chunks,
                   std::vector<std::shared_ptr<const Ranges>> ranges, std::vector<std::string> fields)
      : ForeignSource("webdataset", "*.tar", std::move(description), std::move(chunks), TarSchema(fields)),
        ranges_(std::move(ranges)), fields_(std::make_shared<const std::vector<std::string>>(std::move(fields))) {}

  uint64_t TablesSizeHint(uint32_t c) const override {
    return ranges_[c]->empty() ? 0 : (*ranges_[c])[0].second;  // the first sample
  }
  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool, std::atomic<uint8_t>*) const override {
    if (bytes->size() != chunks()[c].num_bytes)
      return Status::Corrupt(url + ": " + std::to_string(bytes->size()) + " bytes, " +
                             std::to_string(chunks()[c].num_bytes) + " when the dataset was opened (the shard changed)");
    return std::shared_ptr<ChunkReader>(std::make_shared<TarSampleReader>(std::move(bytes), url, ranges_[c], fields_));
  }

 private:
  std::vector<std::shared_ptr<const Ranges>> ranges_;  // per shard
  std::shared_ptr<const std::vector<std::string>> fields_;  // sorted extensions
};

bool EndsWith(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// The description: {"format": "webdataset", "fields": [...], "shards": [[file, size, [begin, end, ...]], ...]}.
Result<std::string> Describe(const SourceLocation& location) {
  Storage& storage = *location.storage;
  CHUTE_ASSIGN_OR_RETURN(auto listing, storage.List(location.root));
  std::vector<ObjectInfo> shards;
  for (ObjectInfo& o : listing) {
    if (EndsWith(o.path, ".tar")) shards.push_back(std::move(o));
    else if (EndsWith(o.path, ".tar.gz") || EndsWith(o.path, ".tgz") || EndsWith(o.path, ".tar.bz2") ||
             EndsWith(o.path, ".tar.xz"))
      return Status::Unsupported(storage.Url(o.path) + ": compressed tar shards are not read yet (no random access "
                                 "inside them); decompress them to .tar");
  }
  if (shards.empty()) return Status::NotFound(location.url + ": no *.tar shards there (not a WebDataset dataset)");
  std::sort(shards.begin(), shards.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.path < b.path; });
  const std::string prefix = location.root.empty() ? "" : location.root + "/";
  auto relative = [&](const std::string& path) {
    return path.compare(0, prefix.size(), prefix) == 0 ? path.substr(prefix.size()) : path;
  };
  // A scan kept by an earlier run, if it was made from these shards.
  std::string kept;
  if (!location.cache_dir.empty()) {
    kept = JoinPath(JoinPath(location.cache_dir, "webdataset-scans"),
                    ChecksumToHex(Checksum(location.url.data(), location.url.size())) + ".json");
    std::ifstream in(kept);
    std::stringstream text;
    text << in.rdbuf();
    if (Result<json::Value> scan = json::Parse(text.str()); in && scan.ok() && scan->get("shards") &&
                                                               scan->get("shards")->array()) {
      const json::Array& listed = *scan->get("shards")->array();
      bool same = listed.size() == shards.size();
      for (size_t s = 0; same && s < shards.size(); ++s) {
        const json::Array* entry = listed[s].array();
        same = entry && entry->size() == 3 && (*entry)[0].string() && (*entry)[1].integer() &&
               *(*entry)[0].string() == relative(shards[s].path) &&
               static_cast<uint64_t>(*(*entry)[1].integer()) == shards[s].size;
      }
      if (same) return text.str();
    }
  }
  std::vector<std::vector<Sample>> samples(shards.size());
  std::vector<std::set<std::string>> fields(shards.size());
  std::vector<Status> scanned(shards.size());
  std::atomic<size_t> next{0};
  std::vector<std::future<void>> scanners;
  for (size_t t = 0; t < std::min(kScanThreads, shards.size()); ++t)
    scanners.push_back(std::async(std::launch::async, [&] {
      for (size_t s; (s = next.fetch_add(1)) < shards.size();)
        scanned[s] = ScanShard(storage, shards[s].path, shards[s].size, &samples[s], &fields[s]);
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
    shard_list.push_back(json::Array{relative(shards[s].path), shards[s].size, std::move(ranges)});
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
  for (const json::Value& shard : *shards->array()) {
    const json::Array* fields_of = shard.array();
    if (!fields_of || fields_of->size() != 3 || !(*fields_of)[0].string() || !(*fields_of)[1].integer() ||
        !(*fields_of)[2].array())
      return malformed;
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
      std::make_shared<WebDatasetSource>(std::move(text), std::move(chunks), std::move(ranges), std::move(field_names)));
}

const bool registered = (RegisterSource("webdataset", OpenWebDataset), true);

}  // namespace

}  // namespace chute
