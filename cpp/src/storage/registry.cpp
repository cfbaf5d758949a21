// Scheme registry, URL splitting and the options every backend shares.
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "storage/options.h"
#include "util/posix_file.h"
#include "util/registry.h"

namespace chute {

Status Storage::ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                uint64_t file_offset) {
  CHUTE_ASSIGN_OR_RETURN(std::shared_ptr<std::byte> region, MapFileRegion(fd, file_offset, length));
  return ReadRange(path, offset, length, region.get());
}

Result<ObjectPrefix> Storage::ReadPrefix(const std::string& path, uint64_t limit) {
  CHUTE_ASSIGN_OR_RETURN(uint64_t size, Size(path));
  ObjectPrefix prefix;
  prefix.size = size;
  prefix.bytes.resize(static_cast<size_t>(std::min(size, limit)));
  CHUTE_RETURN_NOT_OK(ReadRange(path, 0, prefix.bytes.size(), reinterpret_cast<std::byte*>(prefix.bytes.data())));
  return prefix;
}

Result<std::vector<ObjectInfo>> Storage::ListTree(const std::string& dir) {
  return Status::Unsupported(Url(dir) + ": this storage cannot list recursively");
}

namespace {

// Storage::OpenWriter's default: the bytes in memory until Close() writes them whole.
class BufferedObjectWriter final : public ObjectWriter {
 public:
  BufferedObjectWriter(Storage& storage, std::string path) : storage_(storage), path_(std::move(path)) {}
  Status Write(std::span<const std::byte> data) override {
    if (closed_) return Status::Invalid(storage_.Url(path_) + ": written after it was closed");
    bytes_.insert(bytes_.end(), data.begin(), data.end());
    return Status::OK();
  }
  Status Close() override {
    if (closed_) return Status::Invalid(storage_.Url(path_) + ": closed twice");
    closed_ = true;
    std::span<const std::byte> part(bytes_.data(), bytes_.size());
    Status st = storage_.Write(path_, {&part, 1});
    bytes_ = {};
    return st;
  }
  Status Abort() override {
    closed_ = true;
    bytes_ = {};
    return Status::OK();
  }

 private:
  Storage& storage_;
  std::string path_;
  std::vector<std::byte> bytes_;
  bool closed_ = false;
};

}  // namespace

Result<std::unique_ptr<ObjectWriter>> Storage::OpenWriter(const std::string& path) {
  return std::unique_ptr<ObjectWriter>(new BufferedObjectWriter(*this, path));
}

void RegisterStorage(const std::string& scheme, StorageFactory factory) {
  Registry<StorageFactory>::Get().Add(scheme, std::move(factory));
}

Result<StorageLocation> OpenStorage(const std::string& url, const StorageOptions& options) {
  std::string scheme = "file", path = url;
  if (auto sep = url.find("://"); sep != std::string::npos) {
    scheme = url.substr(0, sep);
    path = url.substr(sep + 3);
  }
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto& registry = Registry<StorageFactory>::Get();
  std::optional<StorageFactory> factory = registry.Find(scheme);
  if (!factory)
    return Status::Invalid(url + ": unsupported URL scheme '" + scheme + "://' (supported: " + registry.Names("://") +
                           " and local paths)");
  if (scheme != "file" && (path.empty() || path.front() == '/'))
    return Status::Invalid(url + ": expected " + scheme + "://BUCKET/PREFIX");
  return (*factory)(url, path, options);
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

namespace storage {

std::string Get(const StorageOptions& options, const std::string& key, const std::string& fallback) {
  auto it = options.find(key);
  return it == options.end() ? fallback : it->second;
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::pair<std::string, std::string> SplitEndpoint(std::string endpoint, const std::string& default_scheme) {
  std::string scheme = default_scheme;
  if (auto sep = endpoint.find("://"); sep != std::string::npos) {
    scheme = endpoint.substr(0, sep);
    endpoint = endpoint.substr(sep + 3);
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return {scheme, endpoint};
}

Result<bool> ParseBool(const StorageOptions& options, const std::string& key, bool fallback) {
  auto it = options.find(key);
  if (it == options.end()) return fallback;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return Status::Invalid("storage option " + key + "='" + it->second + "' must be true or false");
}

namespace {
Status ParseSeconds(const StorageOptions& options, const std::string& key, double* out) {
  auto it = options.find(key);
  if (it == options.end()) return Status::OK();
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || !(v > 0))
    return Status::Invalid("storage option " + key + "='" + it->second + "' must be a positive number of seconds");
  *out = v;
  return Status::OK();
}
}  // namespace

Result<CommonOptions> ParseCommon(const std::string& scheme, const StorageOptions& options,
                                  const std::set<std::string>& backend_keys) {
  static const std::set<std::string> common = {"timeout", "max_attempts", "connect_timeout", "request_timeout"};
  for (auto& [key, _] : options) {
    if (!common.count(key) && !backend_keys.count(key)) {
      std::string allowed;
      for (auto* set : {&common, &backend_keys})
        for (auto& k : *set) allowed += (allowed.empty() ? "" : ", ") + k;
      return Status::Invalid("unknown storage option '" + key + "' for " + scheme + "://; known: " + allowed);
    }
  }
  CommonOptions c;
  CHUTE_RETURN_NOT_OK(ParseSeconds(options, "timeout", &c.timeout));
  CHUTE_RETURN_NOT_OK(ParseSeconds(options, "connect_timeout", &c.connect_timeout));
  CHUTE_RETURN_NOT_OK(ParseSeconds(options, "request_timeout", &c.request_timeout));
  c.connect_timeout = std::min(c.connect_timeout, c.timeout);
  c.request_timeout = std::min(c.request_timeout, c.timeout);
  if (auto it = options.find("max_attempts"); it != options.end()) {
    c.max_attempts = std::atoi(it->second.c_str());
    if (c.max_attempts < 1) return Status::Invalid("storage option max_attempts must be at least 1");
  }
  return c;
}

}  // namespace storage
}  // namespace chute
