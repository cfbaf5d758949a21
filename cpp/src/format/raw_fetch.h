// Fetching raw objects by URL for the raw source (raw.h): a store per "scheme://bucket"
// (opened once, with the dataset's storage options: those named "<scheme>.<option>" only
// for stores of that scheme, the others for all), a pool of `concurrency` threads,
// one request for an object up to kPart bytes (most objects: its first range also tells
// the size) and the rest of a larger one in kPart ranges in parallel.
//
// Thread-safety: every method may be called concurrently. Lifetime: destroying the
// fetcher stops its pool first (tasks queued then are dropped, running ones finish), so
// whatever the tasks use must outlive it (declare it last).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "chute/storage.h"
#include "util/io_pool.h"
#include "util/task_group.h"

namespace chute {

class ObjectFetcher {
 public:
  // Objects larger than this are read in ranges of this size, in parallel.
  static constexpr uint64_t kPart = 8 << 20;

  ObjectFetcher(StorageOptions options, size_t concurrency);

  // Seconds one object may take (the stores' `timeout` option).
  double timeout() const { return timeout_; }

  // An object's first kPart bytes (all of a small one), its size, and where it is.
  struct Object {
    ObjectPrefix prefix;
    std::shared_ptr<Storage> storage;
    std::string path;
  };
  // The first request for the object at `url` (a local path or a URL of any store).
  // NotFound when the store says it does not exist; a missing bucket is an IOError.
  Result<Object> First(const std::string& url);

  // Runs `task` on the pool; it counts as one request finished when it returns.
  void Submit(std::function<void()> task);
  // Submits read(offset, length) on the pool for each kPart range of an object of `size`
  // bytes past its `first`, counted in `group` (which the caller has not finished yet).
  template <typename Read>
  void SubmitRest(const std::shared_ptr<TaskGroup>& group, uint64_t first, uint64_t size, Read read) {
    if (size <= first) return;
    group->Add((size - first + kPart - 1) / kPart);
    for (uint64_t offset = first; offset < size; offset += kPart) {
      const uint64_t length = std::min(kPart, size - offset);
      Submit([group, read, offset, length] { group->Done(read(offset, length)); });
    }
  }
  // Waits for `group` while requests keep finishing on the pool (its own, or those ahead
  // of them; each is bounded by its store's timeout). IOError naming `what` if none
  // finished for kProgressSeconds.
  Status WaitWhileArriving(TaskGroup& group, const std::string& what) const;

 private:
  static constexpr double kProgressSeconds = 120;

  StorageOptions options_;
  double timeout_;
  std::mutex stores_mu_;
  std::map<std::string, StorageLocation> stores_;  // by "scheme://bucket"
  std::atomic<uint64_t> done_{0};  // requests finished on the pool, for progress
  IoPool pool_;  // declared last: stopped first, before what its tasks use
};

}  // namespace chute
