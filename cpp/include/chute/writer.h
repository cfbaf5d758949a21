// Writing a chute dataset. Items are appended in order and packed into chunk files of at
// most `chunk_bytes` (an item larger than that gets a chunk of its own); index.json is
// written last, so a directory with an index.json is always a complete dataset.
//
// One process: DatasetWriter. Several processes or machines (optimize's parts): the
// driver calls PrepareOutput, each part is written by its own ChunkWriter with its own
// chunk_prefix, and the driver calls WriteIndex with every part's chunks, in order.
//
// Thread-safety: a ChunkWriter or DatasetWriter is used by one thread at a time;
// writers of different parts of one dataset may run concurrently anywhere.
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
  // Chunk n is named <chunk_prefix><n as 6 digits>.bin; it must start with "chunk-" and
  // differ between the parts of one dataset.
  std::string chunk_prefix = "chunk-";
  bool overwrite = false;             // DatasetWriter: replace an existing dataset in `url`
  // Chunks an interrupted run already wrote (chunks() as it was then): the longest prefix
  // of them that is intact (there, with its size, and on local storage its checksum) is
  // kept and writing continues after it; chunks() tells how many. The caller gives the
  // same options and resumes its items right after the kept chunks' last item.
  std::vector<ChunkInfo> resume_chunks;
};

// Makes `url` (a local directory, created if needed, or an object-store prefix, see
// storage.h) ready for a new dataset: Invalid if it already holds one and `overwrite` is
// false; otherwise removes the old index.json first (a crash in between leaves no valid
// index), then every chunk-*.bin file (and chunk temp file) but those in `keep_chunks`.
CHUTE_API Status PrepareOutput(const std::string& url, bool overwrite, const std::vector<std::string>& keep_chunks,
                               const StorageOptions& storage_options = {});

// Writes index.json for the chunks listed (in dataset order). `schema_json` is a JSON
// object stored as the index's "schema", `metadata_json` one stored as "metadata".
CHUTE_API Status WriteIndex(const std::string& url, const std::vector<ChunkInfo>& chunks,
                            const std::string& schema_json, const std::string& compression,
                            const std::string& metadata_json = "{}", const StorageOptions& storage_options = {});

// Packs items into chunk files under `url`; each chunk is written (uploaded) as soon as
// it is full, the last one by Close(). Writes no index.
class CHUTE_API ChunkWriter {
 public:
  static Result<std::unique_ptr<ChunkWriter>> Create(const std::string& url, const WriterOptions& options,
                                                     const StorageOptions& storage_options = {});
  ~ChunkWriter();
  ChunkWriter(ChunkWriter&&) noexcept;
  ChunkWriter& operator=(ChunkWriter&&) noexcept;

  // Appends one item. Copies the leaves; may write a finished chunk.
  Status Add(std::span<const LeafInput> leaves);
  // Writes the last chunk, if it holds items.
  Status Close();

  uint64_t num_items() const;
  uint64_t num_chunks() const;
  // The chunks written so far (each whole in storage).
  const std::vector<ChunkInfo>& chunks() const;

 private:
  struct Impl;
  explicit ChunkWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A dataset written by one process: PrepareOutput (keeping options.resume_chunks), one
// ChunkWriter, WriteIndex.
class CHUTE_API DatasetWriter {
 public:
  // Fails with Invalid if `url` already holds a dataset and options.overwrite is false.
  static Result<std::unique_ptr<DatasetWriter>> Create(const std::string& url, const WriterOptions& options,
                                                       const StorageOptions& storage_options = {});
  ~DatasetWriter();
  DatasetWriter(DatasetWriter&&) noexcept;
  DatasetWriter& operator=(DatasetWriter&&) noexcept;

  Status Add(std::span<const LeafInput> leaves);
  // Writes the last chunk and index.json (see WriteIndex).
  Status Finish(const std::string& schema_json, const std::string& metadata_json = "{}");

 private:
  DatasetWriter(std::string url, StorageOptions storage_options, std::string compression,
                std::unique_ptr<ChunkWriter> writer);
  std::string url_;
  StorageOptions storage_options_;
  std::string compression_;
  std::unique_ptr<ChunkWriter> writer_;
};

}  // namespace chute
