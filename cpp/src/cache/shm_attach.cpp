// ShmIndex, part 2: attaching to a node cache's segment, detaching from it, and removing
// the segments of jobs killed whole (see cache/shm_index.h).
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

#include "cache/shm_segment.h"
#include "chute/dataset.h"
#include "util/checksum.h"
#include "util/posix_file.h"

namespace chute {

using namespace shm;

namespace {
std::mutex& LiveMutex() {
  static std::mutex mu;
  return mu;
}
std::vector<std::weak_ptr<ShmIndex>>& Live() {
  static auto* live = new std::vector<std::weak_ptr<ShmIndex>>();  // used at exit: never destroyed
  return *live;
}
// The segment /dev/shm/<name> mapped (its header), or null.
Segment* MapSegment(const std::string& name) {
  int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return nullptr;
  struct stat st;
  void* p = ::fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(Segment)
                ? ::mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                : MAP_FAILED;
  ::close(fd);
  if (p == MAP_FAILED) return nullptr;
  auto* seg = static_cast<Segment*>(p);
  if (seg->magic.load(std::memory_order_acquire) != kMagic) {
    ::munmap(p, sizeof(Segment));
    return nullptr;
  }
  return seg;
}

bool AnyAlive(const Segment& seg) {
  for (int32_t pid : seg.procs)
    if (Alive(pid)) return true;
  return false;
}

std::string SegmentName(const std::string& real_dir) {
  return "/chute-" + std::to_string(::getuid()) + "-" + ChecksumToHex(Checksum(real_dir.data(), real_dir.size()));
}

}  // namespace

Result<std::shared_ptr<ShmIndex>> ShmIndex::Attach(const std::string& dir, uint32_t num_chunks,
                                                   uint64_t capacity_bytes) {
  std::error_code ec;
  std::string real;
  DirLock lock("");
  // A directory removed (chute cache clear) while this waited for its lock is made again.
  for (int attempt = 0; attempt < 3 && !lock.ok(); ++attempt) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IOError(dir + ": cannot create the cache directory: " + ec.message());
    real = std::filesystem::canonical(dir, ec).string();
    if (ec) return Status::IOError(dir + ": " + ec.message());
    lock = DirLock(real);
  }
  if (!lock.ok()) return Status::IOError(ErrnoMessage(real + "/.chute-lock"));

  auto index = std::shared_ptr<ShmIndex>(new ShmIndex());
  index->dir_ = real;
  index->name_ = SegmentName(real);
  size_t bytes = Segment::Bytes(num_chunks);

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
      if (name.starts_with(".chute-")) continue;  // the lock, the dataset's URL
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
      p = index->owner_.pid();
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
    Segment* seg = MapSegment(name);
    if (!seg) continue;
    std::string dir(seg->dir, strnlen(seg->dir, kMaxDir));
    {
      // Under the directory's lock nobody is attaching or detaching; a directory that is
      // gone has nobody to attach through it.
      DirLock dir_lock(dir);
      if (!AnyAlive(*seg)) ::shm_unlink(("/" + name).c_str());
    }
    ::munmap(seg, sizeof(Segment));
  }
}

Status ShmIndex::Remove(const std::string& dir) {
  std::error_code ec;
  std::string real = std::filesystem::canonical(dir, ec).string();
  if (ec) return Status::NotFound(dir + ": no such cache directory");
  DirLock lock(real);  // nobody attaches or detaches meanwhile
  if (!lock.ok()) return Status::IOError(ErrnoMessage(real + "/.chute-lock"));
  std::string name = SegmentName(real);
  if (Segment* seg = MapSegment(name.substr(1))) {
    bool in_use = AnyAlive(*seg);
    ::munmap(seg, sizeof(Segment));
    if (in_use) return Status::Invalid(dir + ": in use by a running process; stop it first");
    ::shm_unlink(name.c_str());
  }
  // Renamed away first, still under the lock: a process waiting for the lock then finds
  // that its lock file is no longer the directory's and makes the directory again.
  const std::string removing = real + ".removing-" + std::to_string(::getpid());
  std::filesystem::rename(real, removing, ec);
  if (ec) return Status::IOError(dir + ": " + ec.message());
  std::filesystem::remove_all(removing, ec);
  if (ec) return Status::IOError(removing + ": " + ec.message());
  return Status::OK();
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
    if (p == owner_.pid()) p = 0;
  }
  for (auto& r : seg_->refs) {  // references this process still holds
    if (r.pid == owner_.pid()) {
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

}  // namespace chute
