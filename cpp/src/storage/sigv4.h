// AWS Signature Version 4 for S3 GET requests, with the SHA-256 (FIPS 180-4) and
// HMAC-SHA256 (RFC 2104) it is built on. Used by s3_http.h; pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chute::storage {

using Digest = std::array<uint8_t, 32>;

Digest Sha256(std::string_view data);
Digest HmacSha256(std::string_view key, std::string_view data);
std::string Hex(const Digest& digest);

struct AwsCredentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty unless temporary credentials
};

// S3's encoding of an object path in a request line, or (keep_slash false) of a query
// parameter: every byte but A-Z a-z 0-9 - . _ ~ (and '/' in paths) as %XX.
std::string UriEncode(std::string_view text, bool keep_slash = true);

// The x-amz-* and Authorization headers that sign a GET of `uri_path` (URI-encoded, from
// the root: "/bucket/key") with `query` (its parameters URI-encoded and sorted by name:
// "a=1&b=2", or empty) to `host` ("host" or "host:port", as in the Host header) with the
// other signed `headers` (lower-case names, e.g. {"range", "bytes=0-9"}), at `now`.
std::vector<std::pair<std::string, std::string>> SignS3Get(
    const AwsCredentials& credentials, const std::string& region, const std::string& host,
    const std::string& uri_path, const std::string& query, std::vector<std::pair<std::string, std::string>> headers,
    std::time_t now);

}  // namespace chute::storage
