// Source registry (chute/source.h), like the storage registry: a factory per format name.
#include <map>
#include <mutex>

#include "chute/source.h"

namespace chute {

namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, SourceFactory>& Registry() {
  static std::map<std::string, SourceFactory> factories;
  return factories;
}

}  // namespace

void RegisterSource(const std::string& format, SourceFactory factory) {
  std::lock_guard lock(RegistryMutex());
  Registry()[format] = std::move(factory);
}

Result<std::shared_ptr<Source>> OpenSource(const std::string& format, const SourceLocation& location,
                                           const std::string& description) {
  SourceFactory factory;
  {
    std::lock_guard lock(RegistryMutex());
    auto it = Registry().find(format);
    if (it == Registry().end()) {
      std::string known;
      for (auto& [name, _] : Registry()) known += (known.empty() ? "" : ", ") + name;
      return Status::Invalid(location.url + ": unknown dataset format '" + format + "' (known: " + known + ")");
    }
    factory = it->second;
  }
  return factory(location, description);
}

}  // namespace chute
