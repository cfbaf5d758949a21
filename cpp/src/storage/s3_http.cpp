#include "storage/s3_http.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>

#include "storage/http_wire.h"
#include "storage/s3_xml.h"
#include "util/posix_file.h"

namespace chute::storage {

namespace {

constexpr size_t kMaxIdle = 64;
constexpr size_t kMaxHeader = 16 << 10;
constexpr size_t kMaxErrorBody = 64 << 10;

}  // namespace

S3HttpReader::S3HttpReader(S3HttpConfig config) : config_(std::move(config)) {
  const std::string& e = config_.endpoint;
  if (!e.empty() && e.front() == '[') {  // [v6]:port
    auto close = e.find(']');
    host_ = e.substr(1, close - 1);
    port_ = close + 1 < e.size() && e[close + 1] == ':' ? e.substr(close + 2) : "80";
  } else if (auto colon = e.rfind(':'); colon != std::string::npos) {
    host_ = e.substr(0, colon);
    port_ = e.substr(colon + 1);
  } else {
    host_ = e;
    port_ = "80";
  }
}

S3HttpReader::~S3HttpReader() {
  if (!owner_.InOwner()) return;  // the parent's connections
  for (int fd : idle_) ::close(fd);
}

arrow::Status S3HttpReader::Connect(int* out) const {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found); rc != 0)
    return arrow::Status::IOError("cannot resolve ", host_, ": ", ::gai_strerror(rc));
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      error = ErrnoMessage("socket");
      continue;
    }
    // Non-blocking connect, so that connect_timeout bounds it.
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(config_.connect_timeout * 1000));
      int so_error = 0;
      socklen_t len = sizeof so_error;
      if (rc == 0) {
        errno = ETIMEDOUT;
        rc = -1;
      } else if (rc > 0) {
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
        errno = so_error;
        rc = so_error ? -1 : 0;
      }
    }
    if (rc < 0) {
      error = ErrnoMessage("connect");
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) return arrow::Status::IOError("cannot connect to ", config_.endpoint, ": ", error);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{static_cast<time_t>(config_.request_timeout),
             static_cast<suseconds_t>((config_.request_timeout - static_cast<time_t>(config_.request_timeout)) * 1e6)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  *out = fd;
  return arrow::Status::OK();
}

// Where a response body goes: Start() learns its length, then Window() and Filled()
// alternate until the bytes wanted have arrived.
class S3HttpReader::BodySink {
 public:
  virtual ~BodySink() = default;
  // The body is `available` bytes long: how many of them are wanted (from its start), or
  // why it will not do.
  virtual arrow::Result<uint64_t> Start(uint64_t available) = 0;
  // Where the bytes from `done` on go: at most *capacity of them.
  virtual std::byte* Window(uint64_t done, size_t* capacity) = 0;
  // `n` bytes were written at Window(done).
  virtual arrow::Status Filled(uint64_t done, size_t n) = 0;
};

namespace {

// Bytes [offset, offset + length) of an object.
class RangeSink : public S3HttpReader::BodySink {
 public:
  RangeSink(uint64_t offset, uint64_t length) : offset_(offset), length_(length) {}
  arrow::Result<uint64_t> Start(uint64_t available) override {
    if (available < length_)
      return arrow::Status::Invalid("truncated: ", offset_ + available, " bytes, needed ", offset_ + length_);
    return length_;
  }

 protected:
  uint64_t offset_, length_;
};

// Straight into the caller's buffer, as much per recv() as the socket holds.
class MemorySink final : public RangeSink {
 public:
  MemorySink(uint64_t offset, uint64_t length, std::byte* out) : RangeSink(offset, length), out_(out) {}
  std::byte* Window(uint64_t done, size_t* capacity) override {
    *capacity = static_cast<size_t>(length_ - done);
    return out_ + done;
  }
  arrow::Status Filled(uint64_t, size_t) override { return arrow::Status::OK(); }

 private:
  std::byte* out_;
};

// Into a file through a small buffer of this thread: one pwrite() per 256 KiB, and neither
// the page faults nor the resident pages of writing through a mapping.
class FileSink final : public RangeSink {
 public:
  FileSink(uint64_t offset, uint64_t length, int fd, uint64_t file_offset)
      : RangeSink(offset, length), fd_(fd), file_offset_(file_offset) {}
  std::byte* Window(uint64_t done, size_t* capacity) override {
    *capacity = static_cast<size_t>(std::min<uint64_t>(kBuffer - fill_, length_ - done));
    return Buffer() + fill_;
  }
  arrow::Status Filled(uint64_t done, size_t n) override {
    fill_ += n;
    if (fill_ < kBuffer && done + n < length_) return arrow::Status::OK();
    uint64_t at = file_offset_ + done + n - fill_;
    for (size_t written = 0; written < fill_;) {
      ssize_t w = ::pwrite(fd_, Buffer() + written, fill_ - written, static_cast<off_t>(at + written));
      if (w < 0 && errno == EINTR) continue;
      // Not retried: a full or failing disk does not get better in a second.
      if (w <= 0) return arrow::Status::Invalid(ErrnoMessage("writing the downloaded bytes to the cache file"));
      written += static_cast<size_t>(w);
    }
    fill_ = 0;
    return arrow::Status::OK();
  }

 private:
  static constexpr size_t kBuffer = 256 << 10;
  static std::byte* Buffer() {
    thread_local std::unique_ptr<std::byte[]> buffer(new std::byte[kBuffer]);
    return buffer.get();
  }
  int fd_;
  uint64_t file_offset_;
  size_t fill_ = 0;
};

// A whole object.
class StringSink final : public S3HttpReader::BodySink {
 public:
  explicit StringSink(std::string* out) : out_(out) {}
  arrow::Result<uint64_t> Start(uint64_t available) override {
    out_->resize(available);
    return available;
  }
  std::byte* Window(uint64_t done, size_t* capacity) override {
    *capacity = out_->size() - done;
    return reinterpret_cast<std::byte*>(out_->data()) + done;
  }
  arrow::Status Filled(uint64_t, size_t) override { return arrow::Status::OK(); }

 private:
  std::string* out_;
};

std::string Range(uint64_t offset, uint64_t length) {
  return "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
}

}  // namespace

arrow::Status S3HttpReader::ReadRange(const std::string& path, uint64_t offset, uint64_t length,
                                      std::byte* out) {
  if (length == 0) return arrow::Status::OK();
  MemorySink sink(offset, length, out);
  return Get(path, Range(offset, length), sink);
}

arrow::Status S3HttpReader::ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                            uint64_t file_offset) {
  if (length == 0) return arrow::Status::OK();
  FileSink sink(offset, length, fd, file_offset);
  return Get(path, Range(offset, length), sink);
}

arrow::Status S3HttpReader::ReadAll(const std::string& path, std::string* out) {
  StringSink sink(out);
  return Get(path, "", sink);
}

arrow::Status S3HttpReader::ListPage(const std::string& bucket, const std::string& prefix,
                                    const std::string& start_after, std::vector<ObjectInfo>* out, bool* truncated) {
  std::string query = "list-type=2&max-keys=1000&prefix=" + UriEncode(prefix, false);
  if (!start_after.empty()) query += "&start-after=" + UriEncode(start_after, false);
  std::string body;
  StringSink sink(&body);
  ARROW_RETURN_NOT_OK(Get(bucket, "", sink, query));
  if (body.find("<ListBucketResult") == std::string::npos)
    return arrow::Status::IOError("listing ", bucket, "/", prefix, ": not a ListObjectsV2 response");
  for (size_t at = 0; (at = body.find("<Contents>", at)) != std::string::npos;) {
    size_t end = body.find("</Contents>", at);
    if (end == std::string::npos) return arrow::Status::IOError("listing ", bucket, "/", prefix, ": truncated XML");
    const std::string entry = body.substr(at, end - at);
    const std::string size = XmlField(entry, "Size");
    out->push_back({bucket + "/" + XmlText(XmlField(entry, "Key")), std::strtoull(size.c_str(), nullptr, 10)});
    at = end;
  }
  *truncated = XmlField(body, "IsTruncated") == "true";
  return arrow::Status::OK();
}

arrow::Status S3HttpReader::Get(const std::string& path, const std::string& range, BodySink& sink,
                                const std::string& query) {
  for (;;) {
    int fd = -1;
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        fd = idle_.back();
        idle_.pop_back();
      }
    }
    const bool reused = fd >= 0;
    if (!reused) ARROW_RETURN_NOT_OK(Connect(&fd));
    bool reusable = false, nothing_received = false;
    arrow::Status st = Exchange(fd, path, query, range, sink, &reusable, &nothing_received);
    if (st.ok() && reusable) {
      std::lock_guard lock(mu_);
      if (idle_.size() < kMaxIdle) {
        idle_.push_back(fd);
        fd = -1;
      }
    }
    if (fd >= 0) ::close(fd);
    // The server closed an idle kept-alive connection before it saw the request: that
    // is not a failure of the request, send it again on a new connection.
    if (!st.ok() && reused && nothing_received) continue;
    return st;
  }
}

arrow::Status S3HttpReader::Exchange(int fd, const std::string& path, const std::string& query,
                                     const std::string& range, BodySink& sink, bool* reusable,
                                     bool* nothing_received) const {
  const std::string uri = "/" + UriEncode(path);
  std::string request =
      "GET " + uri + (query.empty() ? "" : "?" + query) + " HTTP/1.1\r\nHost: " + config_.endpoint + "\r\n";
  std::vector<std::pair<std::string, std::string>> signed_headers;
  if (!range.empty()) {
    request += "Range: " + range + "\r\n";
    signed_headers.emplace_back("range", range);
  }
  if (!config_.credentials.access_key.empty()) {
    for (auto& [name, value] :
         SignS3Get(config_.credentials, config_.region, config_.endpoint, uri, query, signed_headers, ::time(nullptr)))
      request += name + ": " + value + "\r\n";
  }
  request += "\r\n";
  const std::string where = config_.endpoint + uri;
  if (!SendAll(fd, request)) {
    *nothing_received = true;
    return arrow::Status::IOError(ErrnoMessage("sending GET " + where));
  }

  // The head, and whatever part of the body came with it.
  std::string head(kMaxHeader, '\0');
  size_t got = 0, head_end = std::string::npos;
  while (head_end == std::string::npos) {
    if (got == head.size()) return arrow::Status::IOError("GET ", where, ": response head over 16 KiB");
    ssize_t n = RecvSome(fd, head.data() + got, head.size() - got);
    if (n <= 0) {
      *nothing_received = got == 0;
      return arrow::Status::IOError("GET ", where, ": ",
                                    n == 0 ? std::string("connection closed by the server") : ErrnoMessage("recv"));
    }
    size_t from = got >= 3 ? got - 3 : 0;
    got += static_cast<size_t>(n);
    head_end = head.find("\r\n\r\n", from);
    if (head_end >= got) head_end = std::string::npos;
  }
  HttpResponse r;
  if (!ParseHead(std::string_view(head).substr(0, head_end), &r))
    return arrow::Status::IOError("GET ", where, ": not an HTTP response");
  const size_t body_start = head_end + 4;
  const size_t early = got - body_start;  // body bytes already read

  // 206 for a range; 200 for a whole object, or from a server that ignores Range (then
  // the body starts at 0, fine for a range starting there).
  const bool whole = r.status == 200 && (range.empty() || range.compare(0, 8, "bytes=0-") == 0);
  if (r.status == 206 || whole) {
    if (r.content_length < 0) return arrow::Status::IOError("GET ", where, ": response without Content-Length");
    const uint64_t available = static_cast<uint64_t>(r.content_length);
    ARROW_ASSIGN_OR_RAISE(const uint64_t want, sink.Start(available));
    const std::byte* early_bytes = reinterpret_cast<const std::byte*>(head.data()) + body_start;
    uint64_t done = 0;
    while (done < want) {
      size_t capacity = 0;
      std::byte* window = sink.Window(done, &capacity);
      size_t n;
      if (done < early) {
        n = static_cast<size_t>(std::min<uint64_t>(capacity, std::min<uint64_t>(early, want) - done));
        std::memcpy(window, early_bytes + done, n);
      } else {
        ssize_t got_now = RecvSome(fd, window, capacity);
        if (got_now <= 0)
          return arrow::Status::IOError("GET ", where, ": ",
                                        got_now == 0 ? std::string("connection closed mid-body") : ErrnoMessage("recv"),
                                        " after ", done, " of ", want, " bytes");
        n = static_cast<size_t>(got_now);
      }
      ARROW_RETURN_NOT_OK(sink.Filled(done, n));
      done += n;
    }
    *reusable = r.keep_alive && available == want && early <= want;
    return arrow::Status::OK();
  }

  // An error: S3 explains it in a small XML body.
  std::string body = head.substr(body_start, early);
  size_t limit = r.content_length >= 0 ? static_cast<size_t>(std::min<int64_t>(r.content_length, kMaxErrorBody))
                                       : kMaxErrorBody;
  while (body.size() < limit) {
    char buf[4096];
    ssize_t n = RecvSome(fd, buf, std::min(sizeof buf, limit - body.size()));
    if (n <= 0) break;
    body.append(buf, static_cast<size_t>(n));
  }
  std::string code = XmlField(body, "Code"), message = XmlField(body, "Message");
  std::string detail = "GET " + where + ": HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) +
                       (message.empty() ? "" : ": " + message);
  if (r.status == 404) return arrow::Status::KeyError(detail);
  if (r.status == 416) return arrow::Status::Invalid("truncated: the object ends before the range ", range, " (",
                                                     detail, ")");
  if (r.status == 401 || r.status == 403) return arrow::Status::IOError(detail, " (AccessDenied)");
  if (r.status == 408 || r.status == 429 || r.status >= 500) return arrow::Status::IOError(detail);
  return arrow::Status::Invalid(detail);
}

}  // namespace chute::storage
