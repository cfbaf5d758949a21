// The layout of a node cache's shared-memory segment (cache/shm_index.h) and the small
// helpers both halves of ShmIndex use: shm_index.cpp (chunk states, references,
// eviction) and shm_attach.cpp (attach, detach, orphan removal).
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>

#include "cache/shm_index.h"

namespace chute {

namespace shm {

constexpr uint64_t kMagic = 0x32584544494d4843ull;  // "CHMIDEX2"
constexpr size_t kMaxDir = 4096;
constexpr size_t kMaxProcs = 1024;
constexpr size_t kMaxRefs = 8192;

enum State : uint32_t { kAbsent = 0, kFetching = 1, kReady = 2 };

struct Entry {
  uint32_t state;
  int32_t owner;  // fetching pid
  uint32_t refs;
  uint32_t reserved;
  uint64_t size;
  uint64_t last_use;
};

struct RefSlot {
  int32_t pid;
  uint32_t chunk;
  uint32_t count;
  uint32_t reserved;
};

inline bool Alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// flock on <dir>/.chute-lock: serializes attach, detach and removal (released by the
// kernel if the holder dies). Not ok() when the directory was removed (renamed away by
// ShmIndex::Remove) while this waited for the lock: the lock file it holds is no longer
// the directory's.
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    if (dir.empty()) return;
    const std::string path = dir + "/.chute-lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return;
    ::flock(fd_, LOCK_EX);
    struct stat held, now;
    if (::fstat(fd_, &held) != 0 || ::stat(path.c_str(), &now) != 0 || held.st_ino != now.st_ino ||
        held.st_dev != now.st_dev) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  DirLock& operator=(DirLock&& other) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

struct Segment {
  std::atomic<uint64_t> magic;
  uint32_t num_chunks;
  uint32_t reserved;
  uint64_t capacity;
  uint64_t used;
  uint64_t clock;
  pthread_mutex_t mu;
  // Bumped when a fetch ends; waiters sleep on it with a futex. (Not a process-shared
  // pthread condvar: a waiter killed inside pthread_cond_wait can block later
  // broadcasts forever in glibc; a futex keeps no per-waiter state.)
  std::atomic<uint32_t> fetch_seq;
  char dir[kMaxDir];  // the cache directory (its flock serializes attach and detach)
  int32_t procs[kMaxProcs];
  RefSlot refs[kMaxRefs];

  Entry* entries() { return reinterpret_cast<Entry*>(this + 1); }
  static size_t Bytes(uint32_t n) { return sizeof(Segment) + n * sizeof(Entry); }
};

}  // namespace shm

}  // namespace chute
