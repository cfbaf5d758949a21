// HTTP/1.1 GET and HEAD requests over kept-alive connections, plain or TLS (OpenSSL),
// that receive a response body straight into the caller's memory or file: the transport
// under chute's S3 reads (s3_http.h) and its http(s):// objects (http.cpp).
//
// Why not the AWS SDK's curl: it reads a body 16 KiB per recv(), which made the receive
// path most of chute's CPU time when downloading (a socket drained with 16 KiB reads
// costs 2.7x the CPU of 1 MiB reads here). Plain sockets are received as much per call
// as they hold; TLS gives at most a record (16 KiB) per read, but decrypts into place.
//
// Every wait is bounded: connect by connect_timeout, each send/receive by
// request_timeout (seconds without progress). Errors are arrow::Status so that
// ArrowStorage's retries and classification apply: transport failures are IOError
// (retried), a body shorter than asked is Invalid("truncated ..."); an HTTP status other
// than 200/206 is not an error here, it is returned in HttpReply for the caller to name.
//
// Thread-safety: Request may be called concurrently (each call takes its own connection).
// Fork: a client made before fork() must not be used in the child; the child leaves its
// connections alone.
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "util/process_owner.h"

namespace chute::storage {

struct HttpClientConfig {
  std::string authority;  // "host", "host:port" or "[v6addr]:port": where to connect, the Host header
  bool tls = false;       // https
  std::string ca_file;    // TLS: a PEM file of the authorities to trust; empty: the system's
                          // (OpenSSL's defaults, SSL_CERT_FILE / SSL_CERT_DIR)
  double connect_timeout = 10;
  double request_timeout = 30;  // seconds without progress on a request
};

// Where a response body goes: Start() learns its length, then Window() and Filled()
// alternate until the bytes wanted have arrived.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // The body is `available` bytes long: how many of them are wanted (from its start),
  // or why it will not do.
  virtual arrow::Result<uint64_t> Start(uint64_t available) = 0;
  // Where the bytes from `done` on go: at most *capacity of them.
  virtual std::byte* Window(uint64_t done, size_t* capacity) = 0;
  // `n` bytes were written at Window(done).
  virtual arrow::Status Filled(uint64_t done, size_t n) = 0;
};

// Bytes [offset, offset + length) of an object into `out`.
std::unique_ptr<BodySink> MemorySink(uint64_t offset, uint64_t length, std::byte* out);
// The same into file `fd` at `file_offset`, through a small buffer of the thread: one
// pwrite() per 256 KiB, without the page faults of writing through a mapping.
std::unique_ptr<BodySink> FileSink(uint64_t offset, uint64_t length, int fd, uint64_t file_offset);
// The first `limit` bytes of the body (all of it by default) into `out`.
std::unique_ptr<BodySink> StringSink(std::string* out, uint64_t limit = UINT64_MAX);

// "bytes=a-b" for `length` > 0 bytes at `offset`.
std::string ByteRange(uint64_t offset, uint64_t length);
// a of "bytes=a-b"; 0 for no range.
int64_t RangeStart(const std::string& range);

struct HttpReply {
  int status = 0;
  // The whole object's size: a 206's Content-Range total, else the Content-Length.
  uint64_t object_size = 0;
  std::string error_body;  // the start of the body of a status other than 200/206
  std::string location;    // of a redirect
};

// The status for an HTTP error `status` described by `detail`, classified like
// ArrowStorage's errors: 404 -> KeyError (not found), 416 -> Invalid("truncated ..."),
// 401/403 -> access denied, 408/429/5xx -> IOError (retried), redirects and other 4xx ->
// Invalid.
arrow::Status HttpErrorStatus(int status, const std::string& detail, const std::string& range);

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class HttpClient {
 public:
  // Fails if TLS is asked for and cannot be set up (no OpenSSL in this build, a bad
  // ca_file).
  static arrow::Result<std::shared_ptr<HttpClient>> Make(HttpClientConfig config);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `method` ("GET" or "HEAD") of `target` (the URI-encoded path and query), with a
  // Range header when `range` is not empty, and `headers`. A 200/206 body goes into
  // `sink` (a 200 to a range starting at 0 too: a server that ignores Range); with a
  // range that does not start at 0 only a 206 will do. A kept-alive connection the server
  // has closed meanwhile is replaced.
  arrow::Status Request(const char* method, const std::string& target, const std::string& range,
                        const HttpHeaders& headers, BodySink* sink, HttpReply* reply);

  const HttpClientConfig& config() const { return config_; }
  // "http://authority" or "https://authority", for messages.
  std::string origin() const { return (config_.tls ? "https://" : "http://") + config_.authority; }

  class Connection;  // a socket, or a TLS session on one (http_client.cpp)

 private:
  explicit HttpClient(HttpClientConfig config);
  arrow::Result<std::unique_ptr<Connection>> Connect() const;
  arrow::Status Exchange(Connection& c, const char* method, const std::string& target, const std::string& range,
                         const HttpHeaders& headers, BodySink* sink, HttpReply* reply, bool* reusable,
                         bool* nothing_received) const;

  HttpClientConfig config_;
  std::string host_, port_;  // for getaddrinfo and the TLS server name
  void* tls_ = nullptr;      // SSL_CTX*, shared by the connections
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // kept-alive connections
  ProcessOwner owner_;
};

}  // namespace chute::storage
