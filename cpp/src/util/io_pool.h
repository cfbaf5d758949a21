// A fixed pool of I/O threads, started on first use (so a Dataset made in a parent
// process starts no thread before a DataLoader forks its workers). Tasks are handed over
// through a lock-free queue (mpmc_queue.h); idle threads sleep on a semaphore (semaphore.h),
// waking at least every second to notice the pool's end. When the queue is full, Submit
// runs the task in the calling thread: nothing is dropped and nobody waits for room.
//
// Thread-safety: Submit may be called from any thread, also from the pool's own tasks.
// Destruction drops the tasks not started and waits for the running ones.
// Fork: a pool inherited by a child process is never used or joined there (its threads
// do not exist in the child); the child makes its own.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "util/mpmc_queue.h"
#include "util/process_owner.h"
#include "util/semaphore.h"

namespace chute {

// Added to the nice value of background work (downloads, prefetching), so that it
// yields the CPU to the threads that consume its results.
inline constexpr int kBackgroundNice = 10;

class IoPool {
 public:
  // `name`: the threads' name (at most 15 characters: "chute-download"), as shown by
  // top -H, py-spy and /proc. `nice`: added to the threads' nice value (kBackgroundNice
  // for background work).
  IoPool(const char* name, size_t threads, int nice = 0, size_t capacity = 4096)
      : name_(name), size_(threads ? threads : 1), nice_(nice), queue_(capacity) {}
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  void Submit(std::function<void()> task);

 private:
  void Start();
  void Run();

  const char* name_;
  size_t size_;
  int nice_;
  MpmcQueue<std::function<void()>> queue_;
  Semaphore queued_;  // one per task pushed (and one per thread at the end)
  std::atomic<bool> stop_{false};
  std::atomic<bool> started_{false};
  std::mutex start_mu_;  // only to start the threads once
  std::vector<std::thread> threads_;
  ProcessOwner owner_;  // the process that started the threads (set by Start)
};

}  // namespace chute
