#include "util/posix_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "chute/format.h"

namespace chute {

std::string ErrnoMessage(const std::string& path) { return path + ": " + std::strerror(errno); }

namespace {

Status OpenError(const std::string& path) {
  if (errno == ENOENT) return Status::NotFound(ErrnoMessage(path));
  return Status::IOError(ErrnoMessage(path));
}

struct Fd {
  int fd = -1;
  ~Fd() { if (fd >= 0) ::close(fd); }
};

}  // namespace

Result<std::shared_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return OpenError(path);
  struct stat st;
  if (::fstat(f.fd, &st) != 0) return Status::IOError(ErrnoMessage(path));
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) return std::shared_ptr<MappedFile>(new MappedFile(nullptr, 0));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, f.fd, 0);
  if (p == MAP_FAILED) return Status::IOError(ErrnoMessage(path));
  return std::shared_ptr<MappedFile>(new MappedFile(static_cast<const std::byte*>(p), size));
}

uint64_t PageSize() {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

void PopulateWritable(std::byte* data, size_t size) {
  auto begin = reinterpret_cast<uintptr_t>(data) & ~(PageSize() - 1);
  auto end = reinterpret_cast<uintptr_t>(data) + size;
  if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

Result<std::shared_ptr<std::byte>> MapFileRegion(int fd, uint64_t offset, size_t size) {
  if (size == 0) return AllocateAligned(0);
  uint64_t start = offset & ~(PageSize() - 1);  // mmap offsets are page-aligned
  size_t length = size + static_cast<size_t>(offset - start);
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(start));
  if (p == MAP_FAILED) return Status::IOError(std::string("mapping a file region: ") + std::strerror(errno));
  PopulateWritable(static_cast<std::byte*>(p), length);
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p) + (offset - start),
                                    [p, length](std::byte*) { ::munmap(p, length); });
}

void ReleasePages(std::span<const std::byte> mapping, std::span<const std::byte> range) {
  // A read fault maps more than its page: fault_around_bytes (64 KiB) of cached pages, or
  // a whole large folio of the page cache (up to a PMD, 2 MiB).
  constexpr uintptr_t kFaultAround = 2 << 20;
  const uintptr_t page = PageSize();
  if (mapping.empty() || range.empty()) return;
  auto lo = reinterpret_cast<uintptr_t>(mapping.data()), hi = lo + mapping.size();  // lo is page-aligned
  auto begin = std::max(lo, reinterpret_cast<uintptr_t>(range.data()) & ~(kFaultAround - 1));
  auto range_end = reinterpret_cast<uintptr_t>(range.data()) + range.size();
  auto end = std::min((hi + page - 1) & ~(page - 1), (range_end + kFaultAround - 1) & ~(kFaultAround - 1));
  if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void MappedFile::WillNeed(uint64_t from, uint64_t to) const {
  from &= ~(PageSize() - 1);
  if (data_ && from < to) ::madvise(const_cast<std::byte*>(data_) + from, to - from, MADV_WILLNEED);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

Result<std::string> ReadFile(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return OpenError(path);
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(ErrnoMessage(path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool WriteAll(int fd, const std::byte* data, size_t size, uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

namespace {

// fsync()s the directory holding `path`, so that a new name in it is on disk.
void SyncDirectoryOf(const std::string& path) {
  auto slash = path.find_last_of('/');
  Fd dir{::open(slash == std::string::npos ? "." : path.substr(0, std::max<size_t>(slash, 1)).c_str(),
                O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd >= 0) ::fsync(dir.fd);
}

// Writes `parts` to `fd`, opened with O_DIRECT, through an aligned staging buffer of this
// thread (O_DIRECT wants block-aligned memory, offsets and lengths): the last block is
// padded with zeros, then the file is cut to its size. False with errno set on failure;
// EINVAL: the file system refuses O_DIRECT after all.
bool WriteDirect(int fd, std::span<const std::span<const std::byte>> parts) {
  constexpr size_t kBlock = 4096, kStaging = 8 << 20;
  thread_local std::unique_ptr<std::byte, decltype(&std::free)> staging(nullptr, &std::free);
  if (!staging) staging.reset(static_cast<std::byte*>(std::aligned_alloc(kBlock, kStaging)));
  if (!staging) return errno = ENOMEM, false;
  size_t filled = 0;
  uint64_t offset = 0, total = 0;
  for (auto part : parts) {
    total += part.size();
    while (!part.empty()) {
      size_t n = std::min(part.size(), kStaging - filled);
      std::memcpy(staging.get() + filled, part.data(), n);
      part = part.subspan(n);
      if ((filled += n) == kStaging) {
        if (!WriteAll(fd, staging.get(), kStaging, offset)) return false;
        offset += kStaging;
        filled = 0;
      }
    }
  }
  if (filled) {
    size_t padded = (filled + kBlock - 1) / kBlock * kBlock;
    std::memset(staging.get() + filled, 0, padded - filled);
    if (!WriteAll(fd, staging.get(), padded, offset)) return false;
  }
  return ::ftruncate(fd, static_cast<off_t>(total)) == 0;
}

}  // namespace

Status WriteFileAtomic(const std::string& path, std::span<const std::span<const std::byte>> parts, WriteMode mode) {
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  Fd f{mode == WriteMode::kBulk ? ::open(tmp.c_str(), flags | O_DIRECT, 0644) : -1};
  bool written = f.fd >= 0 && WriteDirect(f.fd, parts);
  // No O_DIRECT here (tmpfs, ...), or no staging memory: through the page cache.
  if (!written && (f.fd < 0 || errno == EINVAL || errno == ENOMEM)) {
    if (f.fd < 0) f.fd = ::open(tmp.c_str(), flags, 0644);
    else ::fcntl(f.fd, F_SETFL, ::fcntl(f.fd, F_GETFL) & ~O_DIRECT);
    if (f.fd < 0) return OpenError(tmp);
    uint64_t offset = 0;
    written = true;
    for (auto part : parts) {
      written = written && WriteAll(f.fd, part.data(), part.size(), offset);
      offset += part.size();
    }
    written = written && ::ftruncate(f.fd, static_cast<off_t>(offset)) == 0;
  }
  // On disk before it gets its name; kDurable: the name on disk too before this returns
  // (a bulk file's name is made durable by the next durable write in its directory: a
  // record of what was written never outlives the data).
  if (!written || ::fsync(f.fd) != 0 || ::close(f.fd) != 0) {
    Status st = Status::IOError(ErrnoMessage(tmp));
    f.fd = -1;
    ::unlink(tmp.c_str());
    return st;
  }
  f.fd = -1;
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::IOError(ErrnoMessage(path));
    ::unlink(tmp.c_str());
    return st;
  }
  if (mode == WriteMode::kDurable) SyncDirectoryOf(path);
  return Status::OK();
}

Result<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Open(const std::string& path) {
  static std::atomic<uint64_t> next{0};
  std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return OpenError(tmp);
  return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, std::move(tmp), fd));
}

AtomicFileWriter::~AtomicFileWriter() { Abort(); }

Status AtomicFileWriter::Write(std::span<const std::byte> data) {
  if (fd_ < 0) return Status::Invalid(path_ + ": written after it was closed");
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::IOError(ErrnoMessage(tmp_));
    data = data.subspan(static_cast<size_t>(n));
  }
  return Status::OK();
}

Status AtomicFileWriter::Close() {
  if (fd_ < 0) return Status::Invalid(path_ + ": closed twice, or after an error");
  int fd = std::exchange(fd_, -1);
  bool synced = ::fsync(fd) == 0;
  if (!(::close(fd) == 0 && synced) || ::rename(tmp_.c_str(), path_.c_str()) != 0) {
    Status st = Status::IOError(ErrnoMessage(path_));
    ::unlink(tmp_.c_str());
    return st;
  }
  SyncDirectoryOf(path_);
  return Status::OK();
}

void AtomicFileWriter::Abort() {
  if (fd_ < 0) return;
  ::close(std::exchange(fd_, -1));
  ::unlink(tmp_.c_str());
}

std::shared_ptr<std::byte> AllocateAligned(size_t size) {
  size_t rounded = (size + kArrayAlignment - 1) / kArrayAlignment * kArrayAlignment;
  if (rounded == 0) rounded = kArrayAlignment;
  void* p = std::aligned_alloc(kArrayAlignment, rounded);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

}  // namespace chute
