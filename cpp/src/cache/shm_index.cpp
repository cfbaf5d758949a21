// ShmIndex, part 1: chunk states, references and eviction (see cache/shm_index.h).
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <chrono>
#include <climits>
#include <filesystem>

#include "cache/shm_segment.h"
#include "util/posix_file.h"

namespace chute {

using namespace shm;

std::string ShmIndex::ChunkPath(uint32_t c) const { return dir_ + "/c" + std::to_string(c) + ".bin"; }
std::string ShmIndex::TempPath(uint32_t c, pid_t pid) const {
  return dir_ + "/.fetch-" + std::to_string(c) + "-" + std::to_string(pid);
}

void ShmIndex::Lock() const {
  int r = pthread_mutex_lock(&seg_->mu);
  if (r == EOWNERDEAD) {  // the previous holder died holding it: repair, then go on
    pthread_mutex_consistent(&seg_->mu);
    SweepLocked();
  }
}

void ShmIndex::Unlock() const { pthread_mutex_unlock(&seg_->mu); }

void ShmIndex::SweepLocked() const {
  for (auto& p : seg_->procs)
    if (p != 0 && !Alive(p)) p = 0;
  for (auto& r : seg_->refs) {
    if (r.pid != 0 && !Alive(r.pid)) {
      Entry& e = seg_->entries()[r.chunk];
      e.refs -= std::min(e.refs, r.count);
      r = RefSlot{};
    }
  }
  Entry* entries = seg_->entries();
  for (uint32_t c = 0; c < seg_->num_chunks; ++c) {
    if (entries[c].state == kFetching && !Alive(entries[c].owner)) {
      ::unlink(TempPath(c, entries[c].owner).c_str());
      seg_->used -= std::min(seg_->used, entries[c].size);
      entries[c].state = kAbsent;
      entries[c].owner = 0;
    }
  }
}

void ShmIndex::EvictForLocked(uint64_t size) const {
  Entry* entries = seg_->entries();
  while (seg_->used + size > seg_->capacity) {
    int64_t victim = -1;
    for (uint32_t c = 0; c < seg_->num_chunks; ++c) {
      if (entries[c].state == kReady && entries[c].refs == 0 &&
          (victim < 0 || entries[c].last_use < entries[victim].last_use))
        victim = c;
    }
    if (victim < 0) return;  // everything cached is in use: the limit is exceeded by those
    ::unlink(ChunkPath(static_cast<uint32_t>(victim)).c_str());
    seg_->used -= std::min(seg_->used, entries[victim].size);
    entries[victim].state = kAbsent;
  }
}

void ShmIndex::AddRefLocked(uint32_t c) const {
  seg_->entries()[c].refs++;
  RefSlot* free_slot = nullptr;
  for (auto& r : seg_->refs) {
    if (r.pid == owner_.pid() && r.chunk == c) {
      r.count++;
      return;
    }
    if (!free_slot && r.pid == 0) free_slot = &r;
  }
  if (free_slot) *free_slot = RefSlot{owner_.pid(), c, 1, 0};
}

Result<std::string> ShmIndex::Acquire(uint32_t c, uint64_t size, double timeout_s,
                                      const std::function<Status(const std::string&)>& fetch) {
  using Clock = std::chrono::steady_clock;
  if (!owner_.InOwner()) return Status::IOError(dir_ + ": the chunk cache belongs to the parent process");
  std::shared_lock use(use_mu_);
  if (!seg_) return Status::IOError(dir_ + ": the chunk cache was detached (interpreter exit)");
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  Entry* entries = seg_->entries();
  std::string path = ChunkPath(c);
  Lock();
  for (;;) {
    Entry& e = entries[c];
    if (e.state == kReady) {
      struct stat st;
      if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == e.size) {
        AddRefLocked(c);
        e.last_use = ++seg_->clock;
        Unlock();
        return path;
      }
      ::unlink(path.c_str());  // removed or replaced behind our back: fetch again
      seg_->used -= std::min(seg_->used, e.size);
      e.state = kAbsent;
    }
    if (e.state == kFetching) {
      if (!Alive(e.owner)) {
        ::unlink(TempPath(c, e.owner).c_str());
        seg_->used -= std::min(seg_->used, e.size);
        e.state = kAbsent;
        continue;
      }
      if (Clock::now() >= deadline) {
        Unlock();
        return Status::IOError(path + ": timed out after " + std::to_string(static_cast<int>(timeout_s)) +
                               " s waiting for process " + std::to_string(e.owner) + " to fetch this chunk");
      }
      // Sleep until a fetch ends, waking at least every second to check that the
      // fetcher is still alive.
      uint32_t seq = seg_->fetch_seq.load(std::memory_order_acquire);
      Unlock();
      struct timespec one_second = {1, 0};
      ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&seg_->fetch_seq), FUTEX_WAIT, seq, &one_second, nullptr, 0);
      if (detaching_.load()) return Status::IOError(dir_ + ": the chunk cache was detached (interpreter exit)");
      Lock();
      continue;
    }
    break;  // absent: this process fetches it
  }
  // Reserve the space now, so that concurrent fetches together stay within the limit.
  EvictForLocked(size);
  entries[c].state = kFetching;
  entries[c].owner = owner_.pid();
  entries[c].size = size;
  seg_->used += size;
  Unlock();

  std::string temp = TempPath(c, owner_.pid());
  Status st = fetch(temp);
  // The size it has: `size` was an estimate for chunks that a source fetches itself.
  struct stat fetched;
  if (st.ok() && ::stat(temp.c_str(), &fetched) != 0) st = Status::IOError(ErrnoMessage(temp));
  if (st.ok() && ::rename(temp.c_str(), path.c_str()) != 0) st = Status::IOError(ErrnoMessage(path));
  Lock();
  Entry& e = entries[c];
  if (st.ok()) {
    seg_->used = seg_->used - std::min(seg_->used, e.size) + static_cast<uint64_t>(fetched.st_size);
    e.size = static_cast<uint64_t>(fetched.st_size);
    e.state = kReady;
    AddRefLocked(c);
    EvictForLocked(0);  // it came out bigger than reserved
    e.last_use = ++seg_->clock;
  } else {
    ::unlink(temp.c_str());
    seg_->used -= std::min(seg_->used, e.size);
    e.state = kAbsent;
  }
  e.owner = 0;
  seg_->fetch_seq.fetch_add(1, std::memory_order_release);
  Unlock();
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&seg_->fetch_seq), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  if (!st.ok()) return st;
  return path;
}

void ShmIndex::Release(uint32_t c) {
  if (!owner_.InOwner()) return;  // inherited through fork()
  std::shared_lock use(use_mu_);
  if (!seg_) return;  // detached (at exit)
  Lock();
  Entry& e = seg_->entries()[c];
  if (e.refs) e.refs--;
  e.last_use = ++seg_->clock;
  for (auto& r : seg_->refs) {
    if (r.pid == owner_.pid() && r.chunk == c) {
      if (--r.count == 0) r = RefSlot{};
      break;
    }
  }
  Unlock();
}

bool ShmIndex::Peek(uint32_t c) const {
  if (!owner_.InOwner()) return true;
  std::shared_lock use(use_mu_);
  if (!seg_) return true;
  Lock();
  bool present = seg_->entries()[c].state != kAbsent;
  Unlock();
  return present;
}

bool ShmIndex::IsReady(uint32_t c) const {
  if (!owner_.InOwner()) return false;
  std::shared_lock use(use_mu_);
  if (!seg_) return false;
  Lock();
  bool ready = seg_->entries()[c].state == kReady;
  Unlock();
  return ready;
}

uint64_t ShmIndex::capacity() const {
  std::shared_lock use(use_mu_);
  return seg_ ? seg_->capacity : 0;
}

uint32_t ShmIndex::attached() const {
  std::shared_lock use(use_mu_);
  if (!seg_) return 1;
  Lock();
  uint32_t n = 0;
  for (int32_t p : seg_->procs) n += p != 0;
  Unlock();
  return std::max<uint32_t>(n, 1);
}

uint64_t ShmIndex::used_bytes() const {
  std::shared_lock use(use_mu_);
  if (!seg_) return 0;
  Lock();
  uint64_t used = seg_->used;
  Unlock();
  return used;
}

}  // namespace chute
