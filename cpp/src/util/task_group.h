// Tasks on a pool waited for together: counts them down and keeps the first failure.
// Shared with the tasks (make it with std::make_shared), which may outlive a timed-out
// wait; derive from it to add what the tasks fill in.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

#include "chute/status.h"

namespace chute {

struct TaskGroup {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = 0;  // set before the tasks are submitted
  Status status;

  bool failed() {
    std::lock_guard lock(mu);
    return !status.ok();
  }
  // `n` more tasks, added by a task before its own Done().
  void Add(size_t n) {
    std::lock_guard lock(mu);
    left += n;
  }
  void Done(const Status& st) {
    std::lock_guard lock(mu);
    if (!st.ok() && status.ok()) status = st;
    if (--left == 0) cv.notify_all();
  }
  // False if `seconds` passed first.
  bool Wait(double seconds) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return left == 0; });
  }
};

}  // namespace chute
