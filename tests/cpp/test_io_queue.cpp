// Contention tests of the I/O engine's hand-off (cpp/src/util/mpmc_queue.h, cpp/src/util/io_pool.h):
//  1. a small lock-free queue under 4 producers x 4 consumers: every value comes out
//     exactly once, and each consumer sees each producer's values in the order pushed;
//  2. an IoPool with a tiny queue fed by 4 threads, its tasks submitting more tasks:
//     every task runs exactly once (a full queue makes the caller run it), nothing hangs.
// Built with CHUTE_SANITIZE=thread by tests/python/test_native.py; prints "ok" and
// exits 0 on success.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

#include "util/io_pool.h"
#include "util/mpmc_queue.h"

namespace {

constexpr int kProducers = 4, kConsumers = 4;
constexpr uint64_t kPerProducer = 20000;

bool QueueTest() {
  chute::MpmcQueue<uint64_t> queue(64);
  std::vector<std::atomic<uint8_t>> seen(kProducers * kPerProducer);
  std::atomic<uint64_t> popped{0};
  std::atomic<bool> ordered{true};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (uint64_t k = 0; k < kPerProducer; ++k) {
        uint64_t v = static_cast<uint64_t>(p) << 32 | k;
        while (!queue.TryPush(v)) std::this_thread::yield();
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      std::vector<int64_t> last(kProducers, -1);
      while (popped.load() < kProducers * kPerProducer) {
        uint64_t v;
        if (!queue.TryPop(v)) {
          std::this_thread::yield();
          continue;
        }
        popped.fetch_add(1);
        auto p = static_cast<int>(v >> 32);
        auto k = static_cast<int64_t>(v & 0xffffffff);
        if (k <= last[p]) ordered = false;
        last[p] = k;
        seen[static_cast<uint64_t>(p) * kPerProducer + static_cast<uint64_t>(k)].fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  uint64_t once = 0;
  for (auto& s : seen) once += s.load() == 1;
  std::printf("queue: popped=%llu exactly_once=%llu ordered=%d\n", static_cast<unsigned long long>(popped.load()),
              static_cast<unsigned long long>(once), ordered.load() ? 1 : 0);
  return once == kProducers * kPerProducer && ordered.load();
}

bool PoolTest() {
  constexpr int kSubmitters = 4, kTasks = 5000;
  std::vector<std::atomic<uint8_t>> runs(kSubmitters * kTasks * 2);
  std::atomic<int> done{0};
  {
    chute::IoPool pool("test-pool", 3, /*nice=*/0, /*capacity=*/16);
    std::vector<std::thread> submitters;
    for (int s = 0; s < kSubmitters; ++s) {
      submitters.emplace_back([&, s] {
        for (int k = 0; k < kTasks; ++k) {
          size_t id = (static_cast<size_t>(s) * kTasks + static_cast<size_t>(k)) * 2;
          pool.Submit([&, id] {
            runs[id].fetch_add(1);
            done.fetch_add(1);
            pool.Submit([&, id] {  // from a pool thread, as prefetches submit their parts
              runs[id + 1].fetch_add(1);
              done.fetch_add(1);
            });
          });
        }
      });
    }
    for (auto& t : submitters) t.join();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (done.load() < kSubmitters * kTasks * 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }  // the destructor joins the threads
  int once = 0;
  for (auto& r : runs) once += r.load() == 1;
  std::printf("pool: done=%d exactly_once=%d of %d\n", done.load(), once, kSubmitters * kTasks * 2);
  return once == kSubmitters * kTasks * 2;
}

}  // namespace

int main() {
  bool ok = QueueTest();
  ok = PoolTest() && ok;
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
