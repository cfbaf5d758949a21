#include "storage/http_wire.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <string>

namespace chute::storage {

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

}  // namespace

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

ssize_t RecvSome(int fd, void* buf, size_t size) {
  for (;;) {
    ssize_t n = ::recv(fd, buf, size, 0);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

bool ParseHead(std::string_view head, HttpResponse* r) {
  auto eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12) return false;
  if (status_line.substr(0, 8) == "HTTP/1.0") r->keep_alive = false;
  r->status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (IEquals(name, "content-length")) {
      r->content_length = std::strtoll(std::string(value).c_str(), nullptr, 10);
    } else if (IEquals(name, "content-range")) {  // "bytes a-b/N"
      if (value.substr(0, 6) == "bytes ") r->range_start = std::strtoll(std::string(value.substr(6)).c_str(), nullptr, 10);
      if (auto slash = value.rfind('/'); slash != std::string_view::npos && value.substr(slash + 1) != "*")
        r->range_total = std::strtoll(std::string(value.substr(slash + 1)).c_str(), nullptr, 10);
    } else if (IEquals(name, "location")) {
      r->location = value;
    } else if (IEquals(name, "connection")) {
      if (IEquals(value, "close")) r->keep_alive = false;
    } else if (IEquals(name, "transfer-encoding")) {
      r->keep_alive = false;  // only error bodies would be chunked: read them to the end of the stream
    }
  }
  return r->status >= 100;
}

}  // namespace chute::storage
