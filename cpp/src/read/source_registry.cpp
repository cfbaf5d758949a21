// Source registry (chute/source.h): a factory per format name, like storage backends.
#include "chute/source.h"
#include "util/json.h"
#include "util/registry.h"

namespace chute {

void RegisterSource(const std::string& format, SourceFactory factory) {
  Registry<SourceFactory>::Get().Add(format, std::move(factory));
}

namespace {

// The format of the dataset whose index.json reads `text`: MDS's lists "shards", litdata's
// has "config" and "chunks", chute's the rest.
std::string DetectFormat(const std::string& text) {
  Result<json::Value> index = json::Parse(text);
  if (!index.ok() || !index->object()) return "chute";  // whose parser says what is wrong
  if (index->get("shards")) return "mds";
  if (index->get("config") && index->get("chunks") && !index->get("format")) return "litdata";
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
        format = "chute";  // which says what is missing
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
