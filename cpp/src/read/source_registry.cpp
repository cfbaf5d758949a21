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

// WebDataset has no index: a directory of tar files.
bool HasTarShards(Storage& storage, const std::string& root) {
  Result<std::vector<ObjectInfo>> listing = storage.List(root);
  if (!listing.ok()) return false;
  return std::any_of(listing->begin(), listing->end(), [](const ObjectInfo& o) {
    for (const char* suffix : {".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"}) {
      size_t n = std::strlen(suffix);
      if (o.path.size() > n && o.path.compare(o.path.size() - n, n, suffix) == 0) return true;
    }
    return false;
  });
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
        format = HasTarShards(*location.storage, location.root) ? "webdataset" : "chute";  // chute's says what is missing
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
  return (*factory)(location, index);
}

}  // namespace chute
