// A counting semaphore whose waiters sleep in the kernel at once (a futex word), with a
// timeout. Why not std::counting_semaphore: libstdc++ 12's timed acquire spins with
// sched_yield before it sleeps, and dozens of idle pool threads doing that took 12% of a
// raw-objects worker's CPU (perf: sys_sched_yield).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

namespace chute {

class Semaphore {
 public:
  void Release(int n = 1) {
    count_.fetch_add(n);  // seq_cst, like the waiters' announcement: no wake-up is lost
    if (waiters_.load() > 0) Futex(FUTEX_WAKE_PRIVATE, n, nullptr);
  }

  // Takes one unit, waiting up to `timeout` for it; false if none came.
  bool AcquireFor(std::chrono::nanoseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (TryAcquire()) return true;
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds(0)) return false;
      const auto s = std::chrono::duration_cast<std::chrono::seconds>(left);
      timespec wait{static_cast<time_t>(s.count()), static_cast<long>((left - s).count())};
      waiters_.fetch_add(1);
      if (count_.load() == 0) Futex(FUTEX_WAIT_PRIVATE, 0, &wait);  // returns at once if it changed
      waiters_.fetch_sub(1);
    }
  }

 private:
  bool TryAcquire() {
    int c = count_.load(std::memory_order_acquire);
    while (c > 0)
      if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire)) return true;
    return false;
  }
  void Futex(int op, int value, const timespec* timeout) {
    ::syscall(SYS_futex, reinterpret_cast<int*>(&count_), op, value, timeout, nullptr, 0);
  }

  static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free);
  std::atomic<int> count_{0};
  std::atomic<int> waiters_{0};
};

}  // namespace chute
