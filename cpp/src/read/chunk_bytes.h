// The engine's three ways of providing a chunk's bytes (chute/source.h, ChunkBytes):
//   MappedChunkBytes    a local or node-cached file, mapped in place
//   RemoteChunkBytes    a remote chunk downloaded whole into memory by parallel ranged
//                       reads (no node cache); readers wait only for the parts they need
//   NoChunkBytes, FetchedChunkBytes   for sources that read or fetch chunks themselves
//   OnDemandChunkBytes  a remote chunk of which only the ranges readers wait for are
//                       fetched (random access, items wanted before their chunk arrived)
// All are thread-safe. Remote ones time out after the storage's timeout (+5 s).
#pragma once

#include <atomic>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "chute/source.h"
#include "util/io_pool.h"
#include "util/posix_file.h"
#include "util/process_owner.h"

namespace chute {

class MappedChunkBytes final : public ChunkBytes {
 public:
  // `on_release` runs when the last user of the bytes is gone (a cache reference).
  explicit MappedChunkBytes(std::shared_ptr<MappedFile> file, std::function<void()> on_release = {})
      : file_(std::move(file)), on_release_(std::move(on_release)) {}
  ~MappedChunkBytes() override;
  const std::byte* data() const override { return file_->data(); }
  size_t size() const override { return file_->size(); }
  Status Wait(uint64_t, uint64_t) override { return Status::OK(); }
  std::span<const std::byte> mapping() const override { return {file_->data(), file_->size()}; }
  void WillNeed(uint64_t from, uint64_t to) const override { file_->WillNeed(from, to); }

 private:
  std::shared_ptr<MappedFile> file_;
  std::function<void()> on_release_;
};

// Chunks a source reads in place itself (ChunkSourcing::kInPlace): no bytes.
class NoChunkBytes final : public ChunkBytes {
 public:
  const std::byte* data() const override { return nullptr; }
  size_t size() const override { return 0; }
  Status Wait(uint64_t offset, uint64_t length) override {
    return offset == 0 && length == 0 ? Status::OK() : Status::Corrupt("read from a chunk that has no bytes");
  }
};

// Chunk c of a source that fetches its chunks itself (ChunkSourcing::kFetched), without
// a node cache: fetched into an anonymous memory file and mapped.
Result<std::shared_ptr<ChunkBytes>> FetchedChunkBytes(const Source& source, uint32_t c);

// Parts of `part_size` bytes, all requested at once on `pool` by Start(). When the last
// part lands, the whole chunk's checksum is checked (with `verify`); after a failure
// every wait fails.
class RemoteChunkBytes final : public ChunkBytes, public std::enable_shared_from_this<RemoteChunkBytes> {
 public:
  RemoteChunkBytes(std::shared_ptr<Storage> storage, std::string path, const ChunkInfo& info, uint64_t part_size,
                   bool verify);
  ~RemoteChunkBytes() override;
  void Start(IoPool& pool);

  const std::byte* data() const override { return buffer_.get(); }
  size_t size() const override { return info_.num_bytes; }
  Status Wait(uint64_t offset, uint64_t length) override;

 private:
  void FetchPart(size_t k);

  ProcessOwner owner_;
  std::shared_ptr<Storage> storage_;
  std::string path_;
  ChunkInfo info_;
  uint64_t part_size_;
  bool verify_;
  std::shared_ptr<std::byte> buffer_;
  std::mutex mu_;
  std::unique_ptr<std::condition_variable> cv_ = std::make_unique<std::condition_variable>();
  std::vector<uint8_t> done_;
  size_t num_arrived_ = 0;
  Status error_;
};

// A chunk-sized buffer whose untouched pages the OS never commits. Readers of different
// ranges read in parallel; a reader of a range being read by another waits for it.
// Until AllowAnyWait(), a wait for more than half the chunk not read yet (a layout read whole, such as
// litdata's Arrow rows or a compressed shard) fails at once and sets wanted_whole(): the
// engine reads such a chunk whole, once per node, rather than by ranges in every process.
class OnDemandChunkBytes final : public ChunkBytes {
 public:
  // `tables_hint`: the likely size of the header and tables, read in one request with the
  // header.
  OnDemandChunkBytes(std::shared_ptr<Storage> storage, std::string path, uint64_t size, uint64_t tables_hint);
  ~OnDemandChunkBytes() override;

  const std::byte* data() const override { return buffer_.get(); }
  size_t size() const override { return size_; }
  Status Wait(uint64_t offset, uint64_t length) override;
  bool wanted_whole() const { return wanted_whole_.load(); }
  void AllowAnyWait() { max_wait_.store(UINT64_MAX); }

 private:
  struct Range {
    uint64_t end;
    bool done;  // false while being read
  };
  std::map<uint64_t, Range>::iterator First(uint64_t pos);
  std::vector<std::pair<uint64_t, uint64_t>> ClaimGaps(uint64_t offset, uint64_t end, bool claim);

  ProcessOwner owner_;
  std::shared_ptr<Storage> storage_;
  std::string path_;
  uint64_t size_;
  uint64_t tables_hint_;
  std::shared_ptr<std::byte> buffer_;
  std::mutex mu_;
  std::unique_ptr<std::condition_variable> cv_ = std::make_unique<std::condition_variable>();
  std::map<uint64_t, Range> ranges_;  // start -> range read or being read
  std::atomic<uint64_t> max_wait_;
  std::atomic<bool> wanted_whole_{false};
};

}  // namespace chute
