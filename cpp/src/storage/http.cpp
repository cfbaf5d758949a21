// http:// and https:// objects: a read-only store per server (host:port), read with GET
// (ranged) by chute's HTTP client (http_client.h), with ArrowStorage's retries and error
// classification. URLs are used as given (already URI-encoded, query strings included:
// pre-signed URLs work); bytes that cannot appear in a request line are percent-encoded.
// There is no listing: such objects are named by an index file.
#include <memory>
#include <string>

#include "storage/arrow_fs.h"
#include "storage/http_client.h"

namespace chute::storage {
namespace {

class HttpReader final : public ObjectReader {
 public:
  explicit HttpReader(std::shared_ptr<HttpClient> client) : client_(std::move(client)) {}

  arrow::Status ReadRange(const std::string& path, uint64_t offset, uint64_t length, std::byte* out) override {
    if (length == 0) return arrow::Status::OK();
    return Get(path, ByteRange(offset, length), *MemorySink(offset, length, out));
  }
  arrow::Status ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                uint64_t file_offset) override {
    if (length == 0) return arrow::Status::OK();
    return Get(path, ByteRange(offset, length), *FileSink(offset, length, fd, file_offset));
  }
  arrow::Status ReadAll(const std::string& path, std::string* out) override {
    return Get(path, "", *StringSink(out));
  }
  arrow::Status ReadPrefix(const std::string& path, uint64_t limit, std::string* out, uint64_t* size) override {
    int status = 0;
    arrow::Status st = Get(path, ByteRange(0, limit), *StringSink(out, limit), size, &status);
    if (st.IsInvalid() && st.message().find("HTTP 416") != std::string::npos)
      return Get(path, "", *StringSink(out), size);  // an empty object has no byte 0
    // A server without ranges sent the whole object: larger ones cannot be read in
    // ranges, so read them whole.
    if (st.ok() && status == 200 && *size > out->size()) return Get(path, "", *StringSink(out), size);
    return st;
  }
  arrow::Status Size(const std::string& path, uint64_t* size) override {
    ARROW_ASSIGN_OR_RAISE(std::string target, Target(path));
    HttpReply reply;
    ARROW_RETURN_NOT_OK(client_->Request("HEAD", target, "", {}, nullptr, &reply));
    if (reply.status != 200) return Error("HEAD", target, reply, "");
    *size = reply.object_size;
    return arrow::Status::OK();
  }

 private:
  arrow::Status Get(const std::string& path, const std::string& range, BodySink& sink, uint64_t* size = nullptr,
                    int* status = nullptr) {
    ARROW_ASSIGN_OR_RAISE(std::string target, Target(path));
    HttpReply reply;
    ARROW_RETURN_NOT_OK(client_->Request("GET", target, range, {}, &sink, &reply));
    if (reply.status != 200 && reply.status != 206) return Error("GET", target, reply, range);
    if (size) *size = reply.object_size;
    if (status) *status = reply.status;
    return arrow::Status::OK();
  }

  arrow::Status Error(const char* method, const std::string& target, const HttpReply& reply,
                      const std::string& range) const {
    return HttpErrorStatus(reply.status,
                           std::string(method) + " " + client_->origin() + target + ": HTTP " +
                               std::to_string(reply.status) + (reply.location.empty() ? "" : " to " + reply.location),
                           range);
  }

  // "host:port/a/b?q" -> "/a/b?q", with what a request line cannot carry percent-encoded.
  arrow::Result<std::string> Target(const std::string& path) const {
    const std::string& authority = client_->config().authority;
    if (path.compare(0, authority.size(), authority) != 0 ||
        (path.size() > authority.size() && path[authority.size()] != '/'))
      return arrow::Status::Invalid(client_->origin(), ": asked for ", path, ", on another server");
    std::string target = "/";
    static const char kHex[] = "0123456789ABCDEF";
    for (size_t k = authority.size() + 1; k < path.size(); ++k) {
      const unsigned char ch = static_cast<unsigned char>(path[k]);
      if (ch == '#') break;  // a fragment is not sent
      if (ch <= 0x20 || ch >= 0x7f || std::string_view("\"<>\\^`{|}").find(static_cast<char>(ch)) !=
                                          std::string_view::npos) {
        target += '%';
        target += kHex[ch >> 4];
        target += kHex[ch & 15];
      } else {
        target += static_cast<char>(ch);
      }
    }
    return target;
  }

  std::shared_ptr<HttpClient> client_;
};

Result<StorageLocation> MakeHttp(const std::string& url, const std::string& path, const StorageOptions& options) {
  const std::string scheme = url.substr(0, url.find("://"));
  CHUTE_ASSIGN_OR_RETURN(CommonOptions common, ParseCommon(scheme, options, {"ca_file"}));
  const std::string authority = path.substr(0, path.find('/'));
  if (authority.empty()) return Status::Invalid(url + ": expected " + scheme + "://HOST[:PORT]/PATH");
  auto client = HttpClient::Make(
      {authority, scheme == "https", Get(options, "ca_file"), common.connect_timeout, common.request_timeout});
  if (!client.ok())
    return client.status().IsNotImplemented() ? Status::Unsupported(client.status().message())
                                              : Status::Invalid(url + ": " + client.status().message());
  ErrorHints hints{(*client)->origin(), "a URL the server serves without credentials (public, or pre-signed)"};
  return StorageLocation{
      MakeArrowStorage(nullptr, scheme, common, std::move(hints), std::make_shared<HttpReader>(std::move(*client))),
      path};
}

const bool registered = (RegisterStorage("http", MakeHttp), RegisterStorage("https", MakeHttp), true);

}  // namespace
}  // namespace chute::storage
