#include "util/io_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>

namespace chute {

IoPool::~IoPool() {
  if (!started_.load()) return;
  if (owner_.LeakIfInherited(threads_)) return;  // forked child: the threads are not ours
  stop_.store(true);
  queued_.Release(static_cast<int>(threads_.size()));
  for (auto& t : threads_) t.join();
}

void IoPool::Start() {
  std::lock_guard lock(start_mu_);
  if (started_.load()) return;
  owner_ = ProcessOwner();
  for (size_t i = 0; i < size_; ++i) threads_.emplace_back([this] { Run(); });
  started_.store(true);
}

void IoPool::Submit(std::function<void()> task) {
  if (!started_.load(std::memory_order_acquire)) Start();
  if (!queue_.TryPush(task)) {
    task();  // full: the caller does the work itself
    return;
  }
  queued_.Release();
}

void IoPool::Run() {
  ::pthread_setname_np(::pthread_self(), name_);
  // Linux: a thread's nice value is its own (setpriority on its thread id).
  if (nice_) (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), ::getpriority(PRIO_PROCESS, 0) + nice_);
  for (;;) {
    if (!queued_.AcquireFor(std::chrono::seconds(1))) {
      if (stop_.load()) return;
      continue;
    }
    if (stop_.load()) return;
    // A task was pushed; its producer may still be publishing it.
    std::function<void()> task;
    while (!queue_.TryPop(task)) std::this_thread::yield();
    task();
  }
}

}  // namespace chute
