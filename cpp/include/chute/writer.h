// Writing a chute dataset: items are appended in order, packed into chunk files of at
// most `chunk_bytes` (an item larger than that gets a chunk of its own), and index.json
// is written last, so a directory with an index.json is always a complete dataset.
//
// Thread-safety: a DatasetWriter is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "chute/export.h"
#include "chute/format.h"
#include "chute/status.h"
#include "chute/storage.h"

namespace chute {

struct WriterOptions {
  uint64_t chunk_bytes = 64'000'000;  // target chunk size (uncompressed item bytes)
  uint64_t chunk_items = 0;           // max items per chunk, 0 = no limit
  // "" (none) or "zstd" / "zstd:<level>"; compression is per block of items.
  std::string compression;
  uint64_t block_bytes = 1 << 20;     // target uncompressed block size
  bool overwrite = false;             // replace an existing dataset in `dir`
  // Chunks an interrupted run already wrote (DatasetWriter::chunks() as it was then): kept
  // (each must be there with its size), and writing continues after them. The caller
  // gives the same options and resumes its items right after those chunks' last item.
  std::vector<ChunkInfo> resume_chunks;
};

class CHUTE_API DatasetWriter {
 public:
  // Writes to `url` (a local directory, created if needed, or an object-store prefix,
  // see storage.h); each chunk is written (uploaded) as soon as it is full. Fails with
  // Invalid if `url` already holds a dataset and options.overwrite is false.
  static Result<std::unique_ptr<DatasetWriter>> Create(const std::string& url, const WriterOptions& options,
                                                       const StorageOptions& storage_options = {});
  ~DatasetWriter();
  DatasetWriter(DatasetWriter&&) noexcept;
  DatasetWriter& operator=(DatasetWriter&&) noexcept;

  // Appends one item. Copies the leaves; may write a finished chunk to disk.
  Status Add(std::span<const LeafInput> leaves);
  // Writes the last chunk and index.json. `schema_json` is a JSON object stored as the
  // index's "schema"; `metadata_json` a JSON object stored as "metadata".
  Status Finish(const std::string& schema_json, const std::string& metadata_json = "{}");

  uint64_t num_items() const;
  uint64_t num_chunks() const;
  // The chunks written so far (each whole in storage).
  const std::vector<ChunkInfo>& chunks() const;

 private:
  struct Impl;
  explicit DatasetWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chute
