// Where datasets live: a small object-store interface with one backend per URL scheme.
//
//   local paths and file://  local files (reads are mmap'ed by the Dataset, not copied)
//   s3://bucket/key          Arrow's S3FileSystem (AWS SDK credential chain); reads from
//                            a plain-http endpoint with static credentials go through
//                            chute's own HTTP client (src/storage/s3_http.h)
//   gs://bucket/key          Arrow's GcsFileSystem (Google application default credentials)
//   az://, abfs://           Arrow's AzureFileSystem (URL and credentials per Arrow)
//   http://, https://host/p  objects read with GET (ranged) by chute's HTTP client, TLS
//                            through OpenSSL; read-only, not listable (src/storage/http.cpp)
//
// Backends register a factory by scheme (RegisterStorage); OpenStorage picks one.
// Options are strings (from Python's storage_options=), validated by the backend:
//   common:  timeout (seconds an operation may take, retries included; default 60),
//            max_attempts (default 6), connect_timeout, request_timeout (seconds)
//   s3:      endpoint_url, region, access_key_id, secret_access_key, session_token,
//            anonymous ("true"/"false"); environment: AWS_* as the AWS SDK reads them,
//            AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
//   gs:      endpoint_url, anonymous, project_id; environment: STORAGE_EMULATOR_HOST,
//            GOOGLE_APPLICATION_CREDENTIALS
//   az:      anonymous (other settings come from the URL and the environment, per Arrow)
//   http(s): ca_file (PEM authorities to trust instead of the system's; SSL_CERT_FILE too)
// Transient failures (connection errors, timeouts, 5xx, throttling) are retried with
// exponential backoff and full jitter until `timeout`; permanent ones (no such
// bucket/object, access denied, bad credentials) fail at once. Every error names the URL.
//
// Thread-safety: Storage methods may be called concurrently.
// Fork: a Storage must not be used in a child process; open a new one there.
// Exit: ShutdownStorage() detaches this process from the node-local chunk caches
// (dataset.h), releases every remote client and then finalizes Arrow's S3 support,
// which Arrow requires before a process that used S3 exits. Call it once, at
// the end (the Python package does at interpreter exit); no store may be used after.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "chute/export.h"
#include "chute/status.h"

namespace chute {

using StorageOptions = std::map<std::string, std::string>;

struct ObjectInfo {
  std::string path;  // in the storage's namespace (as passed to the other methods)
  uint64_t size = 0;
};

struct ObjectPrefix {
  std::string bytes;  // the object's first bytes
  uint64_t size = 0;  // the whole object's
};

// A stream into one object (a checkpoint, say): written in order, the object appears
// whole on Close(), or not at all (Abort(), or destruction without Close()).
// Thread-safety: used by one thread at a time.
class CHUTE_API ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // Copies `data` (or sends it); may block while earlier parts upload, so that memory
  // stays bounded.
  virtual Status Write(std::span<const std::byte> data) = 0;
  virtual Status Close() = 0;
  virtual Status Abort() = 0;
};

// How a local file is written (object stores ignore it).
enum class WriteMode {
  // fsync()ed, then its directory: on disk once Write returns (indexes, records, map's
  // files).
  kDurable,
  // Bulk data written once and read later (chunk files): straight to the device,
  // bypassing the page cache where the file system allows (O_DIRECT), then fsync()ed;
  // its directory is not (a later kDurable write in it covers its name). Copying
  // gigabytes into fresh page-cache pages was most of a conversion's CPU time.
  kBulk,
};

class CHUTE_API Storage {
 public:
  virtual ~Storage() = default;

  // True for local files (a Dataset maps them instead of reading them).
  virtual bool is_local() const = 0;
  // "s3://bucket/key" etc. for messages and for joining.
  virtual std::string Url(const std::string& path) const = 0;
  // The storage's `timeout` option in seconds.
  virtual double timeout() const = 0;

  virtual Result<uint64_t> Size(const std::string& path) = 0;
  // Objects whose path starts with `dir` + "/" (not recursive).
  virtual Result<std::vector<ObjectInfo>> List(const std::string& dir) = 0;
  // Every object under `dir` + "/", recursively (a prefix of raw objects), in no order.
  virtual Result<std::vector<ObjectInfo>> ListTree(const std::string& dir);
  // Reads exactly `length` bytes at `offset`; a short object is Corrupt (truncated).
  virtual Status ReadRange(const std::string& path, uint64_t offset, uint64_t length, std::byte* out) = 0;
  // The same, into the open file `fd` at `file_offset` (a download into a cache file),
  // without holding the bytes in this process's memory. The default maps that region of
  // the file writable for ReadRange; a backend that receives in pieces writes them.
  virtual Status ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                 uint64_t file_offset);
  virtual Result<std::string> ReadAll(const std::string& path) = 0;
  // The first min(limit, size) bytes of the object, and its size: in one request where the
  // backend can (a ranged GET tells the size too), so that a caller reads a small object
  // whole at once and learns whether a large one is worth more ranges in parallel. The
  // default asks Size() then ReadRange().
  virtual Result<ObjectPrefix> ReadPrefix(const std::string& path, uint64_t limit);
  // Writes the object in one go: it becomes visible complete or not at all. An object
  // store has it durably once this returns; a local file as `mode` says.
  virtual Status Write(const std::string& path, std::span<const std::span<const std::byte>> parts,
                       WriteMode mode = WriteMode::kDurable) = 0;
  // A stream into object `path` (see ObjectWriter); it must not outlive this storage.
  // The default holds the bytes in memory and writes them on Close(); backends stream
  // them (local files, multipart uploads).
  virtual Result<std::unique_ptr<ObjectWriter>> OpenWriter(const std::string& path);
  virtual Status Delete(const std::string& path) = 0;
};

// A storage for `url` and the path of `url` inside it.
struct StorageLocation {
  std::shared_ptr<Storage> storage;
  std::string path;
};

// Makes the storage for `url`; `path` is the part after "scheme://" (the factory may
// derive another path from the URL, e.g. Azure's container@account form).
using StorageFactory = std::function<Result<StorageLocation>(const std::string& url, const std::string& path,
                                                             const StorageOptions& options)>;

CHUTE_API void RegisterStorage(const std::string& scheme, StorageFactory factory);
CHUTE_API Result<StorageLocation> OpenStorage(const std::string& url, const StorageOptions& options = {});
// Joins a path inside a storage with a relative name.
CHUTE_API std::string JoinPath(const std::string& dir, const std::string& name);
CHUTE_API void ShutdownStorage();

}  // namespace chute
