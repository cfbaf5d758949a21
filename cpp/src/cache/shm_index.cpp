#include "cache/shm_index.h"

#include "chute/dataset.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <utility>
#include <vector>

#include "util/checksum.h"
#include "util/posix_file.h"

namespace chute {

namespace {

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

bool Alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// flock on <dir>/.chute-lock: serializes attach and detach (released by the kernel if
// the holder dies).
class DirLock {
 public:
  explicit DirLock(const std::string& dir) {
    if (dir.empty()) return;
    fd_ = ::open((dir + "/.chute-lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
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

}  // namespace

namespace {
std::mutex& LiveMutex() {
  static std::mutex mu;
  return mu;
}
std::vector<std::weak_ptr<ShmIndex>>& Live() {
  static auto* live = new std::vector<std::weak_ptr<ShmIndex>>();  // used at exit: never destroyed
  return *live;
}
}  // namespace

struct ShmIndex::Segment {
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

std::string ShmIndex::ChunkPath(uint32_t c) const { return dir_ + "/c" + std::to_string(c) + ".bin"; }
std::string ShmIndex::TempPath(uint32_t c, pid_t pid) const {
  return dir_ + "/.fetch-" + std::to_string(c) + "-" + std::to_string(pid);
}

Result<std::shared_ptr<ShmIndex>> ShmIndex::Attach(const std::string& dir, uint32_t num_chunks,
                                                   uint64_t capacity_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError(dir + ": cannot create the cache directory: " + ec.message());
  std::string real = std::filesystem::canonical(dir, ec).string();
  if (ec) return Status::IOError(dir + ": " + ec.message());

  auto index = std::shared_ptr<ShmIndex>(new ShmIndex());
  index->dir_ = real;
  index->pid_ = index->owner_.pid();
  index->name_ = "/chute-" + std::to_string(::getuid()) + "-" + ChecksumToHex(Checksum(real.data(), real.size()));
  size_t bytes = Segment::Bytes(num_chunks);

  DirLock lock(real);
  if (!lock.ok()) return Status::IOError(ErrnoMessage(real + "/.chute-lock"));
  int fd = ::shm_open(index->name_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError(ErrnoMessage("/dev/shm" + index->name_));
  struct stat st;
  ::fstat(fd, &st);
  bool fresh = static_cast<size_t>(st.st_size) != bytes;
  if (!fresh) {  // an existing index: reuse it unless it is for another chunk count
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return Status::IOError(ErrnoMessage("/dev/shm" + index->name_));
    }
    auto* seg = static_cast<Segment*>(p);
    if (seg->magic.load(std::memory_order_acquire) != kMagic || seg->num_chunks != num_chunks) {
      ::munmap(p, bytes);
      fresh = true;
    } else {
      index->seg_ = seg;
    }
  }
  if (fresh) {  // (re)initialize: we hold the directory lock, so nobody else is attaching
    if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      ::close(fd);
      return Status::IOError(ErrnoMessage("/dev/shm" + index->name_));
    }
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return Status::IOError(ErrnoMessage("/dev/shm" + index->name_));
    }
    auto* seg = static_cast<Segment*>(p);
    std::memset(p, 0, bytes);
    seg->num_chunks = num_chunks;
    std::strncpy(seg->dir, real.c_str(), kMaxDir - 1);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&seg->mu, &ma);
    // Chunks an earlier run left (complete: they only appear by rename) are adopted;
    // partial fetches of dead processes are removed.
    for (auto& entry : std::filesystem::directory_iterator(real, ec)) {
      auto name = entry.path().filename().string();
      if (name == ".chute-lock") continue;
      char* end = nullptr;
      unsigned long c = name.size() > 5 && name[0] == 'c' ? std::strtoul(name.c_str() + 1, &end, 10) : num_chunks;
      if (c < num_chunks && end && std::strcmp(end, ".bin") == 0) {
        Entry& e = seg->entries()[c];
        e.state = kReady;
        e.size = entry.file_size(ec);
        seg->used += e.size;
      } else {
        std::filesystem::remove(entry.path(), ec);
      }
    }
    seg->magic.store(kMagic, std::memory_order_release);
    index->seg_ = seg;
  }
  ::close(fd);
  index->seg_size_ = bytes;

  index->Lock();
  index->seg_->capacity = capacity_bytes;
  index->SweepLocked();
  for (auto& p : index->seg_->procs) {
    if (p == 0) {
      p = index->pid_;
      break;
    }
  }
  index->Unlock();
  lock = DirLock("");  // released: the sweep takes other directories' locks
  RemoveOrphans(index->name_);
  std::lock_guard live_lock(LiveMutex());
  Live().push_back(index);
  return index;
}

void ShmIndex::RemoveOrphans(const std::string& own) {
  const std::string prefix = "chute-" + std::to_string(::getuid()) + "-";
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || "/" + name == own) continue;
    int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) continue;
    struct stat st;
    void* p = ::fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(Segment)
                  ? ::mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    ::close(fd);
    if (p == MAP_FAILED) continue;
    auto* seg = static_cast<Segment*>(p);
    if (seg->magic.load(std::memory_order_acquire) == kMagic) {
      std::string dir(seg->dir, strnlen(seg->dir, kMaxDir));
      // Under the directory's lock nobody is attaching or detaching; a directory that is
      // gone has nobody to attach through it.
      DirLock dir_lock(dir);
      bool alive = false;
      for (int32_t pid : seg->procs) alive = alive || Alive(pid);
      if (!alive) ::shm_unlink(("/" + name).c_str());
    }
    ::munmap(p, sizeof(Segment));
  }
}

void DetachAllCaches() {
  std::vector<std::shared_ptr<ShmIndex>> live;
  {
    std::lock_guard lock(LiveMutex());
    for (auto& w : Live())
      if (auto s = w.lock()) live.push_back(std::move(s));
    Live().clear();
  }
  for (auto& s : live) s->Detach();
}

ShmIndex::~ShmIndex() { Detach(); }

void ShmIndex::Detach() {
  if (!owner_.InOwner()) return;  // inherited through fork(): the parent's, not ours
  detaching_ = true;
  if (seg_)  // this process's waiters for fetches give up (other processes' wake, see nothing new, sleep on)
    ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&seg_->fetch_seq), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
  std::unique_lock use(use_mu_);
  if (!seg_) return;
  DirLock lock(dir_);
  Lock();
  bool others = false;
  for (auto& p : seg_->procs) {
    if (p == pid_) p = 0;
  }
  for (auto& r : seg_->refs) {  // references this process still holds
    if (r.pid == pid_) {
      Entry& e = seg_->entries()[r.chunk];
      e.refs -= std::min(e.refs, r.count);
      r = RefSlot{};
    }
  }
  SweepLocked();
  for (auto p : seg_->procs) others = others || p != 0;
  Unlock();
  ::munmap(seg_, seg_size_);
  seg_ = nullptr;
  if (!others) ::shm_unlink(name_.c_str());
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
    if (r.pid == pid_ && r.chunk == c) {
      r.count++;
      return;
    }
    if (!free_slot && r.pid == 0) free_slot = &r;
  }
  if (free_slot) *free_slot = RefSlot{pid_, c, 1, 0};
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
      if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == size) {
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
  entries[c].owner = pid_;
  entries[c].size = size;
  seg_->used += size;
  Unlock();

  std::string temp = TempPath(c, pid_);
  Status st = fetch(temp);
  if (st.ok() && ::rename(temp.c_str(), path.c_str()) != 0) st = Status::IOError(ErrnoMessage(path));
  Lock();
  Entry& e = entries[c];
  if (st.ok()) {
    e.state = kReady;
    AddRefLocked(c);
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
    if (r.pid == pid_ && r.chunk == c) {
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

uint64_t ShmIndex::used_bytes() const {
  std::shared_lock use(use_mu_);
  if (!seg_) return 0;
  Lock();
  uint64_t used = seg_->used;
  Unlock();
  return used;
}

}  // namespace chute
