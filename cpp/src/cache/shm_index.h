// The node-local chunk cache: chunk files in a cache directory, indexed by a POSIX
// shared-memory segment shared by every process on the node that uses that directory
// (DataLoader workers, ranks). Per chunk it holds the state (absent / fetching / ready),
// size, reader count, last use and fetching pid, so that a chunk is fetched once per node
// and evicted (least recently used first) only when nobody reads it.
//
// Crash safety: the segment's mutex is robust (a holder that dies is detected by the
// next locker); waiters for a fetch sleep on a futex (no per-waiter state to leak);
// readers are recorded per pid, and a fetch or a reference held by a pid
// that no longer exists is reclaimed by whoever meets it. Files are written to a temp
// name and renamed, so a partial chunk is never visible. The last process to detach
// unlinks the segment (attach and detach are serialized by a flock on the directory);
// a segment left by processes that were all killed is reused and swept by the next one,
// or removed when any process of the user attaches to any cache (RemoveOrphans).
// Names are per user and per cache directory: /dev/shm/chute-<uid>-<digest>.
//
// Thread-safety: all methods may be called from any thread of any attached process;
// Detach() waits for the calls under way in this process (waits for other processes'
// fetches end at once with an error).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>

#include "chute/status.h"
#include "util/process_owner.h"

namespace chute {

namespace shm {
struct Segment;  // the shared segment's layout (shm_segment.h)
}  // namespace shm

class ShmIndex {
 public:
  // Attaches to (or creates) the index of `dir` for `num_chunks` chunks.
  static Result<std::shared_ptr<ShmIndex>> Attach(const std::string& dir, uint32_t num_chunks,
                                                  uint64_t capacity_bytes);
  // Removes the cache directory `dir` and its segment; Invalid while a live process is
  // attached to it.
  static Status Remove(const std::string& dir);
  ~ShmIndex();  // Detach()
  // Drops this process's references and registration; the last process unlinks the
  // segment. Idempotent; a no-op in a process that inherited the index through fork().
  void Detach();

  // Makes chunk `c` (of `size` bytes, or about: the size of the file fetched is what
  // counts from then on) ready in the directory and holds a reference to it. If nobody
  // has it, `fetch(temp_path)` is called in this thread to write the file;
  // others wait for it (up to `timeout_s`, checking that the fetcher is alive). Makes
  // room first by evicting unreferenced chunks, least recently used first. Returns the
  // chunk's path.
  Result<std::string> Acquire(uint32_t c, uint64_t size, double timeout_s,
                              const std::function<Status(const std::string& temp_path)>& fetch);
  void Release(uint32_t c);
  // Whether chunk c is ready or being fetched by some process (a hint: no reference).
  bool Peek(uint32_t c) const;
  // Whether chunk c is ready in the cache (a hint: no reference).
  bool IsReady(uint32_t c) const;

  uint64_t used_bytes() const;  // cached and being fetched
  uint32_t attached() const;    // processes attached (at least 1: this one)
  uint64_t capacity() const;
  const std::string& shm_name() const { return name_; }

 private:
  ShmIndex() = default;
  void Lock() const;
  void Unlock() const;
  void SweepLocked() const;
  // Unlinks this user's segments (other than `own`) whose processes are all gone: those
  // of jobs killed whole, which no process of theirs was left to remove.
  static void RemoveOrphans(const std::string& own);
  void EvictForLocked(uint64_t size) const;
  void AddRefLocked(uint32_t c) const;
  std::string ChunkPath(uint32_t c) const;
  std::string TempPath(uint32_t c, pid_t pid) const;

  std::string dir_, name_;
  // Held shared by every call that uses the segment, exclusively by Detach().
  mutable std::shared_mutex use_mu_;
  std::atomic<bool> detaching_{false};
  shm::Segment* seg_ = nullptr;
  size_t seg_size_ = 0;
  ProcessOwner owner_;  // its pid is the one recorded in the segment
};

// DetachAllCaches() (every index of this process) is public: chute/dataset.h.

}  // namespace chute
