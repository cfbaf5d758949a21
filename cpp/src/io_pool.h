// A fixed pool of I/O threads, started on first use (so a Dataset made in a parent
// process starts no thread before a DataLoader forks its workers).
//
// Thread-safety: Submit may be called from any thread.
// Fork: a pool inherited by a child process is never used or joined there (its threads
// do not exist in the child); the child makes its own.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace chute {

class IoPool {
 public:
  // `nice`: added to the threads' nice value, so that background work (prefetching)
  // yields the CPU to the threads that consume its results.
  explicit IoPool(size_t threads, int nice = 0) : size_(threads ? threads : 1), nice_(nice) {}
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  void Submit(std::function<void()> task);

 private:
  void Run();

  size_t size_;
  int nice_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  pid_t pid_ = 0;  // process that started the threads
  bool stop_ = false;
};

}  // namespace chute
