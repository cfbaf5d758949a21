#include "io_pool.h"

#include <sys/resource.h>
#include <unistd.h>

namespace chute {

IoPool::~IoPool() {
  if (threads_.empty()) return;
  if (::getpid() != pid_) {  // forked child: the threads are not ours; leave them be
    new std::vector<std::thread>(std::move(threads_));
    return;
  }
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    tasks_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void IoPool::Submit(std::function<void()> task) {
  std::lock_guard lock(mu_);
  if (threads_.empty()) {
    pid_ = ::getpid();
    for (size_t i = 0; i < size_; ++i) threads_.emplace_back([this] { Run(); });
  }
  tasks_.push_back(std::move(task));
  cv_.notify_one();
}

void IoPool::Run() {
  // Linux: a thread's nice value is its own (setpriority on its thread id).
  if (nice_) (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), ::getpriority(PRIO_PROCESS, 0) + nice_);
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace chute
