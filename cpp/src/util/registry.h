// Factories registered by name (storage backends by URL scheme, sources by format),
// usable from static initializers of any translation unit.
//
// Thread-safety: all functions may be called concurrently.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace chute {

template <typename Factory>
class Registry {
 public:
  // The one registry of this factory type (made on first use: safe during static init).
  static Registry& Get() {
    static Registry* registry = new Registry();  // used at exit: never destroyed
    return *registry;
  }
  void Add(const std::string& name, Factory factory) {
    std::lock_guard lock(mu_);
    factories_[name] = std::move(factory);
  }
  std::optional<Factory> Find(const std::string& name) const {
    std::lock_guard lock(mu_);
    auto it = factories_.find(name);
    if (it == factories_.end()) return std::nullopt;
    return it->second;
  }
  // The registered names joined by ", ", each with `suffix` ("://"), for messages.
  std::string Names(const std::string& suffix = "") const {
    std::lock_guard lock(mu_);
    std::string out;
    for (auto& [name, _] : factories_) out += (out.empty() ? "" : ", ") + name + suffix;
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, Factory> factories_;
};

}  // namespace chute
