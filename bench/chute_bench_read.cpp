// chute_bench_read DATASET [THREADS] [--concurrency N] [--part-size BYTES]
// Reads every item of a chute dataset (a directory or an s3:// / gs:// URL, configured
// through the environment as storage.h describes) with THREADS threads, each a
// chute::Reader of one worker's share of the epoch (in order, batches of 64), touching
// every payload byte, and prints items/s and GB/s.
// --concurrency / --part-size set the ranged GETs of remote reads.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "chute/chute.h"

namespace {

// Sums the payload as 64-bit words so the compiler vectorizes it; the result is printed
// so the reads cannot be optimized away.
uint64_t Touch(const std::byte* p, size_t n) {
  uint64_t sum = 0;
  size_t words = n / 8;
  for (size_t k = 0; k < words; ++k) {
    uint64_t w;
    std::memcpy(&w, p + 8 * k, 8);
    sum += w;
  }
  for (size_t k = words * 8; k < n; ++k) sum += static_cast<uint8_t>(p[k]);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  chute::DatasetOptions options;
  std::vector<std::string> positional;
  for (int k = 1; k < argc; ++k) {
    std::string arg = argv[k];
    if ((arg == "--concurrency" || arg == "--part-size") && k + 1 < argc) {
      uint64_t v = std::strtoull(argv[++k], nullptr, 10);
      if (arg == "--concurrency") options.concurrency = v;
      else options.part_size = v;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.empty() || positional.size() > 2) {
    std::fprintf(stderr, "usage: %s DATASET [THREADS] [--concurrency N] [--part-size BYTES]\n", argv[0]);
    return 2;
  }
  int threads = positional.size() == 2 ? std::atoi(positional[1].c_str())
                                       : static_cast<int>(std::thread::hardware_concurrency());
  if (threads < 1) threads = 1;

  auto start = std::chrono::steady_clock::now();
  auto opened = chute::Dataset::Open(positional[0], options);
  if (!opened.ok()) {
    std::fprintf(stderr, "error: %s\n", opened.status().ToString().c_str());
    chute::ShutdownStorage();
    return 1;
  }
  std::shared_ptr<chute::Dataset> ds = *opened;
  std::atomic<uint64_t> items{0}, bytes{0}, checksum{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      chute::ReaderOptions reader_options;
      reader_options.order.shuffle = false;
      reader_options.batch_size = 64;
      reader_options.share.worker = static_cast<uint32_t>(t);
      reader_options.share.num_workers = static_cast<uint32_t>(threads);
      auto reader = chute::Reader::Make(ds, reader_options);
      uint64_t my_items = 0, my_bytes = 0, my_sum = 0;
      chute::Batch batch;
      for (;;) {
        auto more = reader.ok() ? (*reader)->Next(&batch) : chute::Result<bool>(reader.status());
        if (!more.ok()) {
          std::fprintf(stderr, "error: %s\n", more.status().ToString().c_str());
          failed = true;
          return;
        }
        if (!*more || failed) break;
        for (const auto& item : batch.items) {
          for (const auto& leaf : item.leaves) {
            my_sum += Touch(leaf.data, leaf.size);
            my_bytes += leaf.size;
          }
          ++my_items;
        }
      }
      items += my_items;
      bytes += my_bytes;
      checksum += my_sum;
    });
  }
  for (auto& t : pool) t.join();
  ds.reset();
  chute::ShutdownStorage();
  if (failed) return 1;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("dataset=%s threads=%d items=%llu bytes=%llu seconds=%.3f items_per_s=%.0f GB_per_s=%.3f checksum=%llx\n",
              positional[0].c_str(), threads, static_cast<unsigned long long>(items.load()),
              static_cast<unsigned long long>(bytes.load()), secs, items / secs, bytes / secs / 1e9,
              static_cast<unsigned long long>(checksum.load()));
  return 0;
}
