#include "storage/http_client.h"

#include <arpa/inet.h>
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
#include <string_view>

#if CHUTE_WITH_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#endif

#include "storage/http_wire.h"
#include "util/posix_file.h"

namespace chute::storage {

namespace {

constexpr size_t kMaxIdle = 64;
constexpr size_t kMaxHeader = 16 << 10;
constexpr size_t kMaxErrorBody = 64 << 10;

#if CHUTE_WITH_OPENSSL
std::string TlsError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return errno ? std::strerror(errno) : "connection closed";
  char text[256];
  ERR_error_string_n(e, text, sizeof text);
  return text;
}
#endif

}  // namespace

// A connected socket, with a TLS session on it for https.
class HttpClient::Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}
  ~Connection() {
#if CHUTE_WITH_OPENSSL
    if (ssl_) SSL_free(ssl_);  // no close_notify: the peer sees the socket close
#endif
    ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

#if CHUTE_WITH_OPENSSL
  arrow::Status StartTls(SSL_CTX* ctx, const std::string& host, const std::string& where) {
    ssl_ = SSL_new(ctx);
    if (!ssl_) return arrow::Status::IOError(where, ": TLS: ", TlsError());
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI
    // The certificate must name the host (or its IP address).
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    in6_addr ip;
    if (::inet_pton(AF_INET, host.c_str(), &ip) == 1 || ::inet_pton(AF_INET6, host.c_str(), &ip) == 1)
      X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
    else
      X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
    // Blocking, each step bounded by the socket's timeouts.
    if (SSL_connect(ssl_) != 1) {
      long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK)
        return arrow::Status::Invalid(where, ": TLS certificate not accepted (", X509_verify_cert_error_string(verify),
                                      "); give the CA that signed it as storage_options ca_file, or in SSL_CERT_FILE");
      return arrow::Status::IOError(where, ": TLS handshake failed: ", TlsError());
    }
    return arrow::Status::OK();
  }
#endif

  bool Send(std::string_view data) {
#if CHUTE_WITH_OPENSSL
    if (ssl_) {
      while (!data.empty()) {
        int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
        if (n <= 0) {
          if (!TlsErrno(n)) continue;  // interrupted
          return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
      }
      return true;
    }
#endif
    return SendAll(fd_, data);
  }

  // Bytes read, 0 at the end of the stream, -1 on error or timeout (errno set).
  ssize_t Recv(void* buf, size_t size) {
#if CHUTE_WITH_OPENSSL
    if (ssl_) {
      for (;;) {
        int n = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(size, 1 << 30)));
        if (n > 0) return n;
        if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) return ERR_clear_error(), 0;
        if (TlsErrno(n)) return -1;
      }
    }
#endif
    return RecvSome(fd_, buf, size);
  }

 private:
#if CHUTE_WITH_OPENSSL
  // After SSL_read/SSL_write returned `n` <= 0: sets errno like a socket call would
  // (EAGAIN for the socket's timeout, EPROTO for a TLS failure) and returns true, or
  // false if the call was interrupted (EINTR) and is to be made again.
  bool TlsErrno(int n) {
    const int e = SSL_get_error(ssl_, n);
    const int saved = errno;
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (saved == EINTR) return false;
      errno = EAGAIN;  // SO_RCVTIMEO / SO_SNDTIMEO ran out
    } else if (e == SSL_ERROR_SYSCALL && saved != 0) {
      if (saved == EINTR) return false;
      errno = saved;
    } else {
      errno = EPROTO;
    }
    return true;
  }
#endif
  int fd_;
#if CHUTE_WITH_OPENSSL
  SSL* ssl_ = nullptr;
#endif
};

HttpClient::HttpClient(HttpClientConfig config) : config_(std::move(config)) {
  const std::string& a = config_.authority;
  const std::string default_port = config_.tls ? "443" : "80";
  if (!a.empty() && a.front() == '[') {  // [v6]:port
    auto close = a.find(']');
    host_ = a.substr(1, close - 1);
    port_ = close + 1 < a.size() && a[close + 1] == ':' ? a.substr(close + 2) : default_port;
  } else if (auto colon = a.rfind(':'); colon != std::string::npos) {
    host_ = a.substr(0, colon);
    port_ = a.substr(colon + 1);
  } else {
    host_ = a;
    port_ = default_port;
  }
}

arrow::Result<std::shared_ptr<HttpClient>> HttpClient::Make(HttpClientConfig config) {
  std::shared_ptr<HttpClient> client(new HttpClient(std::move(config)));
  if (!client->config_.tls) return client;
#if CHUTE_WITH_OPENSSL
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return arrow::Status::IOError("TLS: ", TlsError());
  client->tls_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);  // a close without close_notify ends a body too
  const std::string& ca = client->config_.ca_file;
  if (ca.empty() ? SSL_CTX_set_default_verify_paths(ctx) != 1
                 : SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1)
    return arrow::Status::Invalid("TLS: cannot load the trusted authorities",
                                  ca.empty() ? std::string(" of the system") : " from ca_file " + ca, ": ", TlsError());
  return client;
#else
  return arrow::Status::NotImplemented(client->origin(),
                                       ": this build of chute has no TLS (OpenSSL was not found when it was built: "
                                       "install libssl-dev and reinstall chute)");
#endif
}

HttpClient::~HttpClient() {
  if (owner_.LeakIfInherited(idle_)) return;  // the parent's connections
  idle_.clear();
#if CHUTE_WITH_OPENSSL
  if (tls_) SSL_CTX_free(static_cast<SSL_CTX*>(tls_));
#endif
}

int64_t RangeStart(const std::string& range) {
  return range.empty() ? 0 : std::strtoll(range.c_str() + 6, nullptr, 10);  // "bytes=a-b"
}

arrow::Status HttpErrorStatus(int status, const std::string& detail, const std::string& range) {
  if (status == 404) return arrow::Status::KeyError(detail);
  if (status == 416)
    return arrow::Status::Invalid("truncated: the object ends before the range ", range, " (", detail, ")");
  if (status == 401 || status == 403) return arrow::Status::IOError(detail, " (AccessDenied)");
  if (status >= 300 && status < 400)
    return arrow::Status::Invalid(detail, " (a redirect: give the URL it points to)");
  if (status == 408 || status == 429 || status >= 500) return arrow::Status::IOError(detail);
  return arrow::Status::Invalid(detail);
}

std::string ByteRange(uint64_t offset, uint64_t length) {
  return "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
}

arrow::Result<std::unique_ptr<HttpClient::Connection>> HttpClient::Connect() const {
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
  if (fd < 0) return arrow::Status::IOError("cannot connect to ", origin(), ": ", error);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const double t = config_.request_timeout;
  timeval tv{static_cast<time_t>(t), static_cast<suseconds_t>((t - static_cast<time_t>(t)) * 1e6)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto c = std::make_unique<Connection>(fd);
#if CHUTE_WITH_OPENSSL
  if (tls_) ARROW_RETURN_NOT_OK(c->StartTls(static_cast<SSL_CTX*>(tls_), host_, origin()));
#endif
  return c;
}

arrow::Status HttpClient::Request(const char* method, const std::string& target, const std::string& range,
                                  const HttpHeaders& headers, BodySink* sink, HttpReply* reply) {
  for (;;) {
    std::unique_ptr<Connection> c;
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        c = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    const bool reused = c != nullptr;
    if (!reused) {
      ARROW_ASSIGN_OR_RAISE(c, Connect());
    }
    bool reusable = false, nothing_received = false;
    *reply = HttpReply{};
    arrow::Status st = Exchange(*c, method, target, range, headers, sink, reply, &reusable, &nothing_received);
    if (st.ok() && reusable) {
      std::lock_guard lock(mu_);
      if (idle_.size() < kMaxIdle) idle_.push_back(std::move(c));
    }
    // The server closed an idle kept-alive connection before it saw the request: that
    // is not a failure of the request, send it again on a new connection.
    if (!st.ok() && reused && nothing_received) continue;
    return st;
  }
}

arrow::Status HttpClient::Exchange(Connection& c, const char* method, const std::string& target,
                                   const std::string& range, const HttpHeaders& headers, BodySink* sink,
                                   HttpReply* reply, bool* reusable, bool* nothing_received) const {
  const bool head_only = std::strcmp(method, "HEAD") == 0;
  std::string request = std::string(method) + " " + target + " HTTP/1.1\r\nHost: " + config_.authority + "\r\n";
  if (!range.empty()) request += "Range: " + range + "\r\n";
  for (auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  request += "\r\n";
  const std::string where = std::string(method) + " " + origin() + target;
  if (!c.Send(request)) {
    *nothing_received = errno == EPIPE || errno == ECONNRESET;
    return arrow::Status::IOError(ErrnoMessage("sending " + where));
  }

  // The head, and whatever part of the body came with it.
  std::string head(kMaxHeader, '\0');
  size_t got = 0, head_end = std::string::npos;
  while (head_end == std::string::npos) {
    if (got == head.size()) return arrow::Status::IOError(where, ": response head over 16 KiB");
    ssize_t n = c.Recv(head.data() + got, head.size() - got);
    if (n <= 0) {
      // A kept-alive connection the server closed: not a timeout (that is the server's).
      *nothing_received = got == 0 && (n == 0 || errno == ECONNRESET || errno == EPIPE);
      return arrow::Status::IOError(where, ": ",
                                    n == 0 ? std::string("connection closed by the server") : ErrnoMessage("recv"));
    }
    size_t from = got >= 3 ? got - 3 : 0;
    got += static_cast<size_t>(n);
    head_end = head.find("\r\n\r\n", from);
    if (head_end >= got) head_end = std::string::npos;
  }
  HttpResponse r;
  if (!ParseHead(std::string_view(head).substr(0, head_end), &r))
    return arrow::Status::Invalid(where, ": not an HTTP response");
  reply->status = r.status;
  reply->location = r.location;
  reply->object_size = r.range_total >= 0 ? static_cast<uint64_t>(r.range_total)
                                          : static_cast<uint64_t>(std::max<int64_t>(r.content_length, 0));
  const size_t body_start = head_end + 4;
  const size_t early = got - body_start;  // body bytes already read
  if (head_only) {
    if (r.status == 200 && r.content_length < 0) return arrow::Status::Invalid(where, ": no Content-Length");
    *reusable = r.keep_alive && early == 0;
    return arrow::Status::OK();
  }

  // 206 for a range; 200 for a whole object, or from a server that ignores Range (then
  // the body starts at 0, fine for a range starting there).
  const bool whole = r.status == 200 && (range.empty() || range.compare(0, 8, "bytes=0-") == 0);
  if (r.status == 206 || whole) {
    if (r.content_length < 0) return arrow::Status::Invalid(where, ": response without Content-Length");
    if (r.status == 206 && (r.range_total < 0 || r.range_start != RangeStart(range)))
      return arrow::Status::Invalid(where, ": a partial response for another range than ", range,
                                    " or without the object's size");
    const uint64_t available = static_cast<uint64_t>(r.content_length);
    ARROW_ASSIGN_OR_RAISE(const uint64_t want, sink->Start(available));
    const std::byte* early_bytes = reinterpret_cast<const std::byte*>(head.data()) + body_start;
    uint64_t done = 0;
    while (done < want) {
      size_t capacity = 0;
      std::byte* window = sink->Window(done, &capacity);
      size_t n;
      if (done < early) {
        n = static_cast<size_t>(std::min<uint64_t>(capacity, std::min<uint64_t>(early, want) - done));
        std::memcpy(window, early_bytes + done, n);
      } else {
        ssize_t got_now = c.Recv(window, capacity);
        if (got_now <= 0)
          return arrow::Status::IOError(where, ": ",
                                        got_now == 0 ? std::string("connection closed mid-body") : ErrnoMessage("recv"),
                                        " after ", done, " of ", want, " bytes");
        n = static_cast<size_t>(got_now);
      }
      ARROW_RETURN_NOT_OK(sink->Filled(done, n));
      done += n;
    }
    *reusable = r.keep_alive && available == want && early <= want;
    return arrow::Status::OK();
  }
  if (r.status == 200)  // the whole object to a range elsewhere
    return arrow::Status::NotImplemented(where, ": the server ignored the byte range ", range,
                                         " (it does not serve ranges)");

  // Another status: keep the start of its body (an explanation) for the caller.
  std::string& body = reply->error_body;
  body = head.substr(body_start, early);
  // Without a length (chunked), only what came with the head: reading on could wait out
  // the timeout on a kept-alive connection.
  size_t limit = r.content_length >= 0 ? static_cast<size_t>(std::min<int64_t>(r.content_length, kMaxErrorBody))
                                       : body.size();
  while (body.size() < limit) {
    char buf[4096];
    ssize_t n = c.Recv(buf, std::min(sizeof buf, limit - body.size()));
    if (n <= 0) break;
    body.append(buf, static_cast<size_t>(n));
  }
  return arrow::Status::OK();
}

}  // namespace chute::storage
