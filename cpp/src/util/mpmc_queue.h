// A bounded multi-producer, multi-consumer queue without locks, after Dmitry Vyukov's
// array queue: every slot carries a sequence number saying whether it is free for the
// producer of this lap (seq == position) or holds a value for the consumer of this lap
// (seq == position + 1). Producers and consumers claim positions with one CAS each and
// never wait for one another; a claimed slot is published by a release store of its
// sequence number, which is what the other side acquires.
//
// TryPush / TryPop never block (IoPool adds the waiting). TryPop may miss a value whose
// producer has claimed its slot but not yet published it: callers that know a value is
// there retry.
//
// Thread-safety: any number of threads may push and pop concurrently.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace chute {

template <typename T>
class MpmcQueue {
 public:
  // Holds up to `capacity` values, rounded up to a power of two.
  explicit MpmcQueue(size_t capacity) {
    size_t n = 2;
    while (n < capacity) n <<= 1;
    mask_ = n - 1;
    slots_ = std::make_unique<Slot[]>(n);
    for (size_t i = 0; i < n; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
  }
  MpmcQueue(const MpmcQueue&) = delete;
  MpmcQueue& operator=(const MpmcQueue&) = delete;

  // False when full (`value` is left untouched).
  bool TryPush(T& value) {
    size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& slot = slots_[pos & mask_];
      size_t seq = slot.seq.load(std::memory_order_acquire);
      auto lap = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
      if (lap == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          slot.value = std::move(value);
          slot.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (lap < 0) {
        return false;  // the slot still holds the value of the previous lap
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // False when empty (or the next value is not yet published).
  bool TryPop(T& out) {
    size_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& slot = slots_[pos & mask_];
      size_t seq = slot.seq.load(std::memory_order_acquire);
      auto lap = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos + 1);
      if (lap == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          out = std::move(slot.value);
          slot.value = T{};  // release what the value holds now, not a lap later
          slot.seq.store(pos + mask_ + 1, std::memory_order_release);
          return true;
        }
      } else if (lap < 0) {
        return false;
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

 private:
  struct alignas(64) Slot {  // one cache line each: neighbors do not false-share
    std::atomic<size_t> seq;
    T value;
  };
  std::unique_ptr<Slot[]> slots_;
  size_t mask_ = 0;
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
};

}  // namespace chute
