#include "format/raw_fetch.h"

#include <cstdlib>

#include "storage/options.h"

namespace chute {

ObjectFetcher::ObjectFetcher(StorageOptions options, size_t concurrency)
    : options_(std::move(options)),
      timeout_(options_.count("timeout") ? std::atof(options_.at("timeout").c_str()) : storage::CommonOptions{}.timeout),
      pool_("chute-objects", std::max<size_t>(1, concurrency), kBackgroundNice) {}

void ObjectFetcher::Submit(std::function<void()> task) {
  pool_.Submit([this, task = std::move(task)] {
    task();
    done_.fetch_add(1, std::memory_order_relaxed);
  });
}

Result<ObjectFetcher::Object> ObjectFetcher::First(const std::string& url) {
  const size_t sep = url.find("://");
  const bool local = sep == std::string::npos || url.compare(0, sep, "file") == 0;
  std::string key = "file";
  Object object;
  if (local) {
    object.path = sep == std::string::npos ? url : url.substr(sep + 3);
  } else {
    size_t slash = url.find('/', sep + 3);
    if (slash == std::string::npos || slash + 1 == url.size())
      return Status::Invalid(url + ": not an object URL (expected scheme://bucket/key)");
    key = url.substr(0, slash);
    object.path = url.substr(slash + 1);
  }
  {
    std::lock_guard lock(stores_mu_);
    auto it = stores_.find(key);
    if (it == stores_.end()) {
      // The options without a scheme, and those for this scheme ("s3.endpoint_url").
      const std::string scheme = key.substr(0, key.find("://")) + ".";
      StorageOptions options;
      for (const auto& [name, value] : options_) {
        if (name.find('.') == std::string::npos) options[name] = value;
        else if (name.compare(0, scheme.size(), scheme) == 0) options[name.substr(scheme.size())] = value;
      }
      Result<StorageLocation> store = OpenStorage(local ? "/" : key, options);
      if (!store.ok() && store.status().message().find("unknown storage option") != std::string::npos)
        return Status(store.status().code(), store.status().message() +
                                                 " (objects in several kinds of stores: give each kind its options "
                                                 "under its scheme, storage_options={\"s3\": {...}, \"https\": {...}})");
      CHUTE_RETURN_NOT_OK(store.status());
      it = stores_.emplace(key, std::move(*store)).first;
    }
    object.storage = it->second.storage;
    if (!local) object.path = JoinPath(it->second.path, object.path);
  }
  Result<ObjectPrefix> prefix = object.storage->ReadPrefix(object.path, kPart);
  if (!prefix.ok()) {
    const std::string& m = prefix.status().message();
    // A missing bucket is a mistake, not missing objects (which allow_missing would skip).
    if (prefix.status().code() == StatusCode::kNotFound &&
        (m.find("NoSuchBucket") != std::string::npos || m.find("NO_SUCH_BUCKET") != std::string::npos))
      return Status::IOError(m + " (the bucket does not exist)");
    return prefix.status();
  }
  object.prefix = std::move(*prefix);
  return object;
}

Status ObjectFetcher::WaitWhileArriving(TaskGroup& group, const std::string& what) const {
  for (uint64_t done = done_.load();;) {
    if (group.Wait(kProgressSeconds)) return Status::OK();
    if (done_.load() == done)
      return Status::IOError(what + ": no object arrived for " + std::to_string(int(kProgressSeconds)) +
                             " s (storage_options timeout)");
    done = done_.load();
  }
}

}  // namespace chute
