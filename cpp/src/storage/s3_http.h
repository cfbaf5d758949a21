// GETs of S3 objects over plain HTTP/1.1: the read path of s3:// when the endpoint
// is http:// (MinIO, Ceph and other S3-compatible stores inside a cluster) and the
// credentials are static (storage_options, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or
// anonymous. Everything else about S3 goes through Arrow (s3.cpp).
//
// Why: the AWS SDK reads a response body through curl 16 KiB at a time, one recv() per
// 16 KiB, which made the receive path most of chute's CPU time when downloading a dataset
// (measured: a socket drained with 16 KiB reads costs 2.7x the CPU of 1 MiB reads here).
// This client receives straight into the caller's buffer, as much per call as the socket
// holds, signs requests with SigV4 (sigv4.h) and keeps connections alive for reuse.
//
// Errors come back as arrow::Status so that ArrowStorage's retry and classification apply
// unchanged: no such key/bucket -> KeyError, access denied -> a message with S3's error
// code, a short object -> Invalid("truncated ..."), the rest (connection errors, 5xx,
// throttling, timeouts) -> IOError, retried by the caller.
// Thread-safety: the reads may be called concurrently (each call uses its own connection).
// Fork: an object made before fork() must not be used in the child; the child leaves its
// connections alone.
#pragma once

#include <arrow/status.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "storage/arrow_fs.h"
#include "storage/sigv4.h"
#include "util/process_owner.h"

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
  ~S3HttpReader() override;
  S3HttpReader(const S3HttpReader&) = delete;
  S3HttpReader& operator=(const S3HttpReader&) = delete;

  // `path`: "bucket/key".
  arrow::Status ReadRange(const std::string& path, uint64_t offset, uint64_t length, std::byte* out) override;
  // Receives into a small buffer and writes it to `fd` as it fills.
  arrow::Status ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                uint64_t file_offset) override;
  arrow::Status ReadAll(const std::string& path, std::string* out) override;
  arrow::Status ListPage(const std::string& bucket, const std::string& prefix, const std::string& start_after,
                         std::vector<ObjectInfo>* out, bool* truncated) override;

  class BodySink;  // where a response body goes (s3_http.cpp)

 private:
  // One GET of `range` ("bytes=a-b", or the whole object if empty) on a kept-alive or a
  // new connection; a kept-alive one that the server has closed meanwhile is replaced.
  // `query`: URI-encoded parameters sorted by name, or empty.
  arrow::Status Get(const std::string& path, const std::string& range, BodySink& sink, const std::string& query = "");
  arrow::Status Connect(int* fd) const;
  arrow::Status Exchange(int fd, const std::string& path, const std::string& query, const std::string& range,
                         BodySink& sink, bool* reusable, bool* nothing_received) const;

  S3HttpConfig config_;
  std::string host_, port_;  // for getaddrinfo
  std::mutex mu_;
  std::vector<int> idle_;  // kept-alive connections
  ProcessOwner owner_;
};

}  // namespace chute::storage
