// Scanning WebDataset shards (webdataset_source.cpp): each shard's member headers walked
// through windows read ahead of the walk (gzip shards inflated as a stream), grouped into
// samples; a scan that read a whole remote shard keeps it for the node cache.
#pragma once

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "chute/source.h"
#include "chute/status.h"
#include "chute/storage.h"

namespace chute::webdataset {

bool EndsWith(const std::string& s, const char* suffix);
bool IsGzipShard(const std::string& path);  // .tar.gz, .tgz

// A sample: its key and its byte range in the shard (in the tar: inflated for gzip).
struct Sample {
  std::string key;
  uint64_t begin = 0, end = 0;
};

// Where a scan of `location` is kept (empty without a cache directory).
std::string ScanPath(const SourceLocation& location);
// Where that scan keeps whole shards (remote datasets only; else empty).
std::string CopiesDir(const SourceLocation& location);
// A shard's copy in `dir`: its name, with '/' as '%'.
std::string CopyPath(const std::string& dir, std::string name);

// The samples of one shard, from its headers, and the union of its extensions; a gzip
// shard's inflated size in *inflated_size. With `copy`, the shard is kept there if the
// scan read all of it, within `budget` bytes (shared by the shards scanned together).
Status ScanShard(Storage& storage, const std::string& path, uint64_t size, std::vector<Sample>* samples,
                 std::set<std::string>* fields, uint64_t* inflated_size, const std::string& copy,
                 std::atomic<int64_t>* budget);

}  // namespace chute::webdataset
