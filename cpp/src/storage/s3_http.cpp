#include "storage/s3_http.h"

#include <cstdlib>
#include <ctime>

#include "storage/s3_xml.h"

namespace chute::storage {

S3HttpReader::S3HttpReader(S3HttpConfig config) : config_(std::move(config)) {
  // Plain HTTP: making the client cannot fail.
  client_ = *HttpClient::Make({config_.endpoint, false, "", config_.connect_timeout, config_.request_timeout});
}

arrow::Status S3HttpReader::ReadRange(const std::string& path, uint64_t offset, uint64_t length,
                                      std::byte* out) {
  if (length == 0) return arrow::Status::OK();
  return Get(path, ByteRange(offset, length), *MemorySink(offset, length, out));
}

arrow::Status S3HttpReader::ReadRangeToFile(const std::string& path, uint64_t offset, uint64_t length, int fd,
                                            uint64_t file_offset) {
  if (length == 0) return arrow::Status::OK();
  return Get(path, ByteRange(offset, length), *FileSink(offset, length, fd, file_offset));
}

arrow::Status S3HttpReader::ReadAll(const std::string& path, std::string* out) {
  return Get(path, "", *StringSink(out));
}

arrow::Status S3HttpReader::ReadPrefix(const std::string& path, uint64_t limit, std::string* out, uint64_t* size) {
  arrow::Status st = Get(path, ByteRange(0, limit), *StringSink(out, limit), "", size);
  if (!st.IsInvalid() || st.message().find("HTTP 416") == std::string::npos) return st;
  // An empty object has no byte 0: S3 answers 416 to any range of it.
  return Get(path, "", *StringSink(out), "", size);
}

arrow::Status S3HttpReader::ListPage(const std::string& bucket, const std::string& prefix,
                                    const std::string& start_after, std::vector<ObjectInfo>* out, bool* truncated) {
  std::string query = "list-type=2&max-keys=1000&prefix=" + UriEncode(prefix, false);
  if (!start_after.empty()) query += "&start-after=" + UriEncode(start_after, false);
  std::string body;
  ARROW_RETURN_NOT_OK(Get(bucket, "", *StringSink(&body), query));
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
                                const std::string& query, uint64_t* size) {
  const std::string uri = "/" + UriEncode(path);
  HttpHeaders signed_headers;
  if (!range.empty()) signed_headers.emplace_back("range", range);
  HttpHeaders headers;
  if (!config_.credentials.access_key.empty())
    headers = SignS3Get(config_.credentials, config_.region, config_.endpoint, uri, query, signed_headers,
                        ::time(nullptr));
  HttpReply reply;
  ARROW_RETURN_NOT_OK(client_->Request("GET", query.empty() ? uri : uri + "?" + query, range, headers, &sink, &reply));
  if (reply.status == 200 || reply.status == 206) {
    if (size) *size = reply.object_size;
    return arrow::Status::OK();
  }
  // An error: S3 explains it in a small XML body.
  const std::string& body = reply.error_body;
  std::string code = XmlField(body, "Code"), message = XmlField(body, "Message");
  std::string detail = "GET " + client_->origin() + uri + ": HTTP " + std::to_string(reply.status) +
                       (code.empty() ? "" : " " + code) + (message.empty() ? "" : ": " + message);
  return HttpErrorStatus(reply.status, detail, range);
}

}  // namespace chute::storage
