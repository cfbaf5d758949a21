// GETs of S3 objects over plain HTTP/1.1: the read path of s3:// when the endpoint
// is http:// (MinIO, Ceph and other S3-compatible stores inside a cluster) and the
// credentials are static (storage_options, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or
// anonymous. Everything else about S3 goes through Arrow (s3.cpp).
//
// Why: the AWS SDK reads a response body through curl 16 KiB at a time (see
// http_client.h, the transport); this reader signs requests with SigV4 (sigv4.h) and
// receives into the caller's buffer.
//
// Errors come back as arrow::Status so that ArrowStorage's retry and classification apply
// unchanged: no such key/bucket -> KeyError, access denied -> a message with S3's error
// code, a short object -> Invalid("truncated ..."), the rest (connection errors, 5xx,
// throttling, timeouts) -> IOError, retried by the caller.
// Thread-safety: the reads may be called concurrently.
// Fork: as HttpClient.
#pragma once

#include <arrow/status.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "storage/arrow_fs.h"
#include "storage/http_client.h"
#include "storage/sigv4.h"

namespace chute::storage {

struct S3HttpConfig {
  std::string endpoint;  // "host:port" or "host" (port 80); "[v6addr]:port"
  std::string region;
  AwsCredentials credentials;  // empty access_key: anonymous, unsigned requests
  double connect_timeout = 10;
  double request_timeout = 30;  // seconds without progress on a request
};

class S3HttpReader final : public ObjectReader {
 public:
  explicit S3HttpReader(S3HttpConfig config);

  // `path`: "bucket/key".
  arrow::Status ReadRange(const std::string& path, uint64_t offset, uint64_t length, std::byte* out) override;
  arrow::Status ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                uint64_t file_offset) override;
  arrow::Status ReadAll(const std::string& path, std::string* out) override;
  arrow::Status ReadPrefix(const std::string& path, uint64_t limit, std::string* out, uint64_t* size) override;
  arrow::Status ListPage(const std::string& bucket, const std::string& prefix, const std::string& start_after,
                         std::vector<ObjectInfo>* out, bool* truncated) override;

 private:
  // One signed GET of `range` ("bytes=a-b", or the whole object if empty); `query`:
  // URI-encoded parameters sorted by name, or empty.
  arrow::Status Get(const std::string& path, const std::string& range, BodySink& sink, const std::string& query = "",
                    uint64_t* size = nullptr);

  S3HttpConfig config_;
  std::shared_ptr<HttpClient> client_;
};

}  // namespace chute::storage
