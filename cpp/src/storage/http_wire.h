// The HTTP/1.1 wire under chute's HTTP client (http_client.h): blocking sends and
// receives on a socket whose SO_SNDTIMEO / SO_RCVTIMEO bound each wait, and the response
// head.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chute::storage {

// send() all of `data`; false on error or timeout (errno set).
bool SendAll(int fd, std::string_view data);
// recv() once: bytes read, 0 at end of stream, -1 on error or timeout (errno set).
ssize_t RecvSome(int fd, void* buf, size_t size);

struct HttpResponse {
  int status = 0;
  bool keep_alive = true;
  int64_t content_length = -1;  // -1: not given
  int64_t range_start = -1;     // a of "Content-Range: bytes a-b/N"
  int64_t range_total = -1;     // N; -1: not given or "*"
  std::string location;         // Location (redirects)
};

// Parses the status line and the headers chute needs from `head` (without the blank
// line); false if it is not an HTTP response.
bool ParseHead(std::string_view head, HttpResponse* r);

}  // namespace chute::storage
