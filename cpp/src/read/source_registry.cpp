// Source registry (chute/source.h): a factory per format name, like storage backends.
#include "chute/source.h"
#include "util/registry.h"

namespace chute {

void RegisterSource(const std::string& format, SourceFactory factory) {
  Registry<SourceFactory>::Get().Add(format, std::move(factory));
}

Result<std::shared_ptr<Source>> OpenSource(const std::string& format, const SourceLocation& location,
                                           const std::string& description) {
  auto& registry = Registry<SourceFactory>::Get();
  std::optional<SourceFactory> factory = registry.Find(format);
  if (!factory)
    return Status::Invalid(location.url + ": unknown dataset format '" + format + "' (known: " + registry.Names() +
                           ")");
  return (*factory)(location, description);
}

}  // namespace chute
