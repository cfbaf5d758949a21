#include "chute/trace.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>
#include <new>

namespace chute::trace {

std::atomic<bool> recording{false};

namespace {

// One buffer for the process: spans are coarse (a chunk, a batch), so one lock is cheap.
std::mutex mu;
std::vector<Event> events;

// A forked child starts afresh (as a DataLoader worker must: its counters are its own,
// and the lock may have been held by a thread that does not exist in the child).
void ResetInChild() {
  new (&mu) std::mutex();
  new (&events) std::vector<Event>();
  recording.store(false, std::memory_order_relaxed);
  counters().ForEach([](const char*, std::atomic<uint64_t>& counter) { counter.store(0, std::memory_order_relaxed); });
}

const bool at_fork_registered = (::pthread_atfork(nullptr, nullptr, ResetInChild), true);

struct ThreadInfo {
  uint64_t id = static_cast<uint64_t>(::syscall(SYS_gettid));
  std::string name = [] {
    char buf[32] = {};
    ::pthread_getname_np(::pthread_self(), buf, sizeof buf);
    return std::string(buf);
  }();
};

}  // namespace

void StartTrace() {
  std::lock_guard lock(mu);
  events.clear();
  recording.store(true, std::memory_order_relaxed);
}

std::vector<Event> StopTrace() {
  std::lock_guard lock(mu);
  recording.store(false, std::memory_order_relaxed);
  return std::move(events);
}

void Record(const char* name, int64_t start_ns, int64_t end_ns) {
  // Per thread, read once: the thread's name is set when it starts, before any span.
  // The thread that forked goes on in the child under another id: read again there.
  thread_local ThreadInfo info;
  thread_local pid_t pid = ::getpid();
  if (pid != ::getpid()) {
    info = ThreadInfo{};
    pid = ::getpid();
  }
  std::lock_guard lock(mu);
  if (recording.load(std::memory_order_relaxed)) events.push_back({name, start_ns, end_ns - start_ns, info.id, info.name});
}

Counters& counters() {
  static Counters c;
  return c;
}

}  // namespace chute::trace
