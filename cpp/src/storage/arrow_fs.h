// Storage on top of an arrow::fs::FileSystem (S3, GCS, Azure) and/or an ObjectReader
// (chute's own HTTP reads: S3 over plain http, http(s):// objects): retries, error
// classification, and release of every client at shutdown.
#pragma once

#include <arrow/filesystem/filesystem.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chute/storage.h"
#include "storage/options.h"

namespace chute::storage {

// Hints that turn an Arrow error into a message with the likely fix.
struct ErrorHints {
  std::string endpoint;     // what the client connects to, for "cannot connect" errors
  std::string credentials;  // how credentials are configured for this backend
};

// Reads objects in place of `fs` (see s3_http.h), with the same retries and error
// classification.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  virtual arrow::Status ReadRange(const std::string& path, uint64_t offset, uint64_t length,
                                  std::byte* out) = 0;
  virtual arrow::Status ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                        uint64_t file_offset) = 0;
  virtual arrow::Status ReadAll(const std::string& path, std::string* out) = 0;
  // Storage::ReadPrefix in one request.
  virtual arrow::Status ReadPrefix(const std::string& path, uint64_t limit, std::string* out, uint64_t* size) = 0;
  // The object's size; only a reader without a file system (read_only) is asked.
  virtual arrow::Status Size(const std::string& path, uint64_t* size) {
    (void)path, (void)size;
    return arrow::Status::NotImplemented("size");
  }
  // One page of ListObjectsV2 (up to 1,000 keys) under `prefix` after `start_after`, its
  // paths as "bucket/key", appended to `out`; NotImplemented where the reader cannot
  // list (then Arrow lists, one page after another).
  virtual arrow::Status ListPage(const std::string& bucket, const std::string& prefix, const std::string& start_after,
                                 std::vector<ObjectInfo>* out, bool* truncated) {
    (void)bucket, (void)prefix, (void)start_after, (void)out, (void)truncated;
    return arrow::Status::NotImplemented("listing");
  }
};

// `fs` null: a read-only store that only `reader` serves (listing, writing, deleting are
// Unsupported).
std::shared_ptr<Storage> MakeArrowStorage(std::shared_ptr<arrow::fs::FileSystem> fs, std::string scheme,
                                          CommonOptions options, ErrorHints hints,
                                          std::shared_ptr<ObjectReader> reader = nullptr);

}  // namespace chute::storage
