// Profiling: spans of the engine's work for a Chrome / Perfetto trace, and counters of
// what it read and waited for (StreamingDataLoader(profile_batches=...), loader.stats()).
//
// Spans are recorded only between StartTrace() and StopTrace(): when off, a Span costs
// one relaxed atomic load. Times are CLOCK_MONOTONIC (std::chrono::steady_clock on
// Linux), the clock of Python's time.monotonic_ns(), so spans recorded in Python and in
// other processes line up with these.
//
// Counters count always (relaxed atomic adds), for this process since it started.
//
// Thread-safety: everything here may be called from any thread.
// Fork: a child starts with no events, recording off and its counters at zero.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "chute/export.h"

namespace chute::trace {

// What one span covered. `name` is a string literal.
struct Event {
  const char* name;
  int64_t start_ns;
  int64_t duration_ns;
  uint64_t thread_id;        // the kernel's thread id (gettid)
  std::string thread_name;   // as set by pthread_setname_np ("chute-fetch", ...)
};

CHUTE_API extern std::atomic<bool> recording;

CHUTE_API void StartTrace();
// The events recorded since StartTrace(); recording stops.
CHUTE_API std::vector<Event> StopTrace();

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

CHUTE_API void Record(const char* name, int64_t start_ns, int64_t end_ns);

// Records [construction, destruction) as `name` when a trace is on.
class Span {
 public:
  explicit Span(const char* name) : name_(name), start_(recording.load(std::memory_order_relaxed) ? NowNs() : 0) {}
  ~Span() {
    if (start_) Record(name_, start_, NowNs());
  }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

 private:
  const char* name_;
  int64_t start_;
};

// The counters (docs/profiling.md).
struct Counters {
  std::atomic<uint64_t> bytes_fetched{0};        // read from remote storage (downloads, ranged reads)
  std::atomic<uint64_t> chunks_downloaded{0};    // chunks this process downloaded into the node cache
  std::atomic<uint64_t> chunk_cache_hits{0};     // chunks a reader found in the node cache
  std::atomic<uint64_t> chunk_cache_misses{0};   // chunks a reader had to wait for (download)
  std::atomic<uint64_t> data_wait_ns{0};         // readers blocked waiting for chunk bytes

  // Calls f(name, counter) for each counter (the one list of them).
  template <typename F>
  void ForEach(F&& f) {
    f("bytes_fetched", bytes_fetched);
    f("chunks_downloaded", chunks_downloaded);
    f("chunk_cache_hits", chunk_cache_hits);
    f("chunk_cache_misses", chunk_cache_misses);
    f("data_wait_ns", data_wait_ns);
  }
};
CHUTE_API Counters& counters();

// Adds the time from construction to destruction to a counter (in ns).
class WaitTimer {
 public:
  explicit WaitTimer(std::atomic<uint64_t>& counter) : counter_(counter), start_(NowNs()) {}
  ~WaitTimer() { counter_.fetch_add(static_cast<uint64_t>(NowNs() - start_), std::memory_order_relaxed); }
  WaitTimer(const WaitTimer&) = delete;
  WaitTimer& operator=(const WaitTimer&) = delete;

 private:
  std::atomic<uint64_t>& counter_;
  int64_t start_;
};

}  // namespace chute::trace
