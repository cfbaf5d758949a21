// Local files: read-only mappings for chunks, whole-file reads for small files, and
// atomic writes (temp file + rename) so readers never see a partial file.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "chute/status.h"
#include "chute/storage.h"

namespace chute {

// A read-only mapping of a whole file. Thread-safe; unmapped when the last owner goes.
class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  // Asks the kernel to start reading bytes [from, to) from disk (before they are read).
  void WillNeed(uint64_t from, uint64_t to) const;

 private:
  MappedFile(const std::byte* data, size_t size) : data_(data), size_(size) {}
  const std::byte* data_;
  size_t size_;
};

// The size of a memory page.
uint64_t PageSize();

// Maps the pages of [data, data + size) writable in one call (memory or a MAP_SHARED file
// mapping), rather than one page fault at a time as they are written. Linux >= 5.14;
// earlier, a no-op.
void PopulateWritable(std::byte* data, size_t size);

// Maps bytes [offset, offset + size) of the open file `fd` writable, its pages populated:
// what is written to the memory lands in the file's page cache. Unmapped with the last
// copy of the pointer. The file must be at least that long.
Result<std::shared_ptr<std::byte>> MapFileRegion(int fd, uint64_t offset, size_t size);

Result<std::string> ReadFile(const std::string& path);
// pwrite()s all of [data, data + size) at `offset` of `fd`; false with errno set.
bool WriteAll(int fd, const std::byte* data, size_t size, uint64_t offset);
// Writes the concatenation of `parts` to `path` through `path.tmp-<pid>` and rename(),
// as `mode` says (chute/storage.h): the file is fsync()ed before the rename; kDurable
// fsync()s the directory after; kBulk writes through O_DIRECT where the file system
// takes it.
Status WriteFileAtomic(const std::string& path, std::span<const std::span<const std::byte>> parts,
                       WriteMode mode = WriteMode::kDurable);

// A file written in pieces through `path.tmp-<pid>-<n>`, fsync()ed and renamed to `path`
// on Close() (its directory fsync()ed): it appears whole or not at all. Destroyed
// without Close(), the temporary file is removed. Used by one thread at a time.
class AtomicFileWriter {
 public:
  static Result<std::unique_ptr<AtomicFileWriter>> Open(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  Status Write(std::span<const std::byte> data);
  Status Close();
  void Abort();

 private:
  AtomicFileWriter(std::string path, std::string tmp, int fd) : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  std::string path_, tmp_;
  int fd_;
};

// Unmaps the pages of `range` of `mapping` (a MAP_SHARED file mapping), widened to the
// 2 MiB around them that a page fault may map too but never past `mapping`; their contents
// stay in the page cache (also what was written through the mapping) and are mapped again
// on access. Keeps the resident memory of a process from growing with every page of a
// file it has touched.
void ReleasePages(std::span<const std::byte> mapping, std::span<const std::byte> range);

// An uninitialized buffer of `size` bytes aligned to kArrayAlignment.
std::shared_ptr<std::byte> AllocateAligned(size_t size);

// strerror(errno) with the path: "<path>: <reason>".
std::string ErrnoMessage(const std::string& path);

}  // namespace chute
