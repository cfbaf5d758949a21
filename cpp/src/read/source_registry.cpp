// Source registry (chute/source.h): a factory per format name, like storage backends.
#include "chute/source.h"

#include <algorithm>
#include <cstring>

#include "util/json.h"
#include "util/registry.h"

namespace chute {

void RegisterSource(const std::string& format, SourceFactory factory) {
  Registry<SourceFactory>::Get().Add(format, std::move(factory));
}

Status Source::FetchChunk(uint32_t, int) const {
  return Status::Unsupported(format() + " sources do not fetch their chunks themselves");
}

Result<Item> Source::FetchItem(uint32_t, uint64_t) const {
  return Status::Unsupported(format() + " sources do not fetch their items themselves");
}

namespace {

// The format of the dataset whose index.json (or description) reads `text`: the one it
// names ("format": chute's index, a WebDataset scan), MDS if it lists "shards", litdata if
// it has "config" and "chunks", else chute (whose parser then says what is wrong).
std::string DetectFormat(const std::string& text) {
  Result<json::Value> index = json::Parse(text);
  if (!index.ok() || !index->object()) return "chute";  // whose parser says what is wrong
  if (const json::Value* named = index->get("format"); named && named->string()) return *named->string();
  if (index->get("shards")) return "mds";
  if (index->get("config") && index->get("chunks")) return "litdata";
  return "chute";
}

bool EndsWith(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() > n && s.compare(s.size() - n, n, suffix) == 0;
}

// Formats without an index: tar shards (WebDataset) or Parquet files (there or in data/);
// else chute, whose error says that index.json is missing.
std::string NoIndexFormat(Storage& storage, const std::string& root) {
  for (const std::string& dir : {root, JoinPath(root, "data")}) {
    Result<std::vector<ObjectInfo>> listing = storage.List(dir);
    if (!listing.ok()) continue;
    for (const ObjectInfo& o : *listing) {
      if (dir == root)
        for (const char* suffix : {".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"})
          if (EndsWith(o.path, suffix)) return "webdataset";
      if (EndsWith(o.path, ".parquet")) return "parquet";
    }
  }
  return "chute";
}

}  // namespace

Result<std::shared_ptr<Source>> OpenSource(const std::string& requested, const SourceLocation& location,
                                           const std::string& description) {
  auto& registry = Registry<SourceFactory>::Get();
  std::string format = requested, index = description;
  if (format.empty()) {  // recognized from index.json, which the source then needs not read again
    const std::string path = JoinPath(location.root, "index.json");
    if (index.empty()) {
      Result<std::string> text = location.storage->ReadAll(path);
      if (!text.ok()) {
        if (text.status().code() != StatusCode::kNotFound) return text.status();
        format = NoIndexFormat(*location.storage, location.root);
      } else {
        index = std::move(*text);
      }
    }
    if (format.empty()) format = DetectFormat(index);
  }
  std::optional<SourceFactory> factory = registry.Find(format);
  if (!factory)
    return Status::Invalid(location.url + ": unknown dataset format '" + format + "' (known: " + registry.Names() +
                           ")");
  if (!location.split.empty() && format != "parquet")
    return Status::Invalid(location.url + ": split= selects files of Parquet datasets only (this one is " + format +
                           ")");
  if (!location.columns.empty() && format != "parquet")
    return Status::Invalid(location.url + ": columns= selects columns of Parquet datasets only (this one is " + format +
                           "): select fields in a transform");
  return (*factory)(location, index);
}

}  // namespace chute
