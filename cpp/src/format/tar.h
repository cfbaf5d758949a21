// The tar format as WebDataset shards use it (POSIX ustar, PAX and GNU long names):
// walking a tar's member headers through any byte source, and WebDataset's sample keys.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include "chute/status.h"

namespace chute::tar {

constexpr uint64_t kBlock = 512;
constexpr uint64_t kMaxMemberSize = uint64_t{1} << 50;  // sizes past this are damage, not data

inline uint64_t Padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// An octal field (NUL/space terminated) or GNU base-256; false if neither.
bool ParseNumber(const std::byte* p, size_t n, uint64_t* out);
// A NUL-terminated (or full) text field.
std::string Field(const std::byte* p, size_t n);
// A member's key and extension (WebDataset's rule: the path up to the first dot of the
// basename, the rest lower-cased); false for members that are not sample files.
bool KeyAndExtension(const std::string& name, std::string* key, std::string* ext);

struct Member {
  std::string name;
  uint64_t header = 0;  // offset of its first header (PAX / long-name ones included)
  uint64_t data = 0, size = 0;
  bool regular = false;
};

// Walks the members of a tar through `get(offset, length)` (bytes that stay valid until
// the next call) from `pos` until `end` or the archive's end.
template <typename Get>
Status Walk(Get&& get, uint64_t pos, uint64_t end, const std::string& url, const std::function<Status(Member)>& visit) {
  std::string long_name;
  uint64_t long_size = UINT64_MAX;
  uint64_t first = pos;
  while (pos + kBlock <= end) {
    CHUTE_ASSIGN_OR_RETURN(const std::byte* h, get(pos, kBlock));
    if (std::all_of(h, h + kBlock, [](std::byte b) { return b == std::byte{0}; })) break;
    uint64_t sum = 0, stored = 0;
    int64_t signed_sum = 0;
    for (uint64_t i = 0; i < kBlock; ++i) {
      auto v = (i >= 148 && i < 156) ? uint8_t{' '} : static_cast<uint8_t>(h[i]);
      sum += v;
      signed_sum += (i >= 148 && i < 156) ? ' ' : static_cast<int8_t>(h[i]);
    }
    if (!ParseNumber(h + 148, 8, &stored) || (stored != sum && static_cast<int64_t>(stored) != signed_sum))
      return Status::Corrupt(url + ": bad tar header checksum at offset " + std::to_string(pos) +
                             " (not a tar file, or a damaged one)");
    uint64_t size = 0;
    if (!ParseNumber(h + 124, 12, &size)) return Status::Corrupt(url + ": bad member size at offset " + std::to_string(pos));
    char type = static_cast<char>(h[156]);
    std::string name = Field(h, 100);
    if (std::memcmp(h + 257, "ustar", 5) == 0) {
      std::string prefix = Field(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    uint64_t data = pos + kBlock;
    if (type == 'S') return Status::Unsupported(url + ": member " + name + " is a GNU sparse file, which is not read");
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {  // PAX attributes, GNU long name / link name
      if (data > end || size > end - data) return Status::Corrupt(url + ": a tar header runs past the end of the file");
      CHUTE_ASSIGN_OR_RETURN(const std::byte* d, get(data, size));
      std::string text(reinterpret_cast<const char*>(d), size);
      if (type == 'L') long_name = text.substr(0, text.find('\0'));
      // "<len> <key>=<value>\n" records; a global header ('g') applies to no member here.
      for (size_t at = 0; type == 'x' && at < text.size();) {
        size_t space = text.find(' ', at);
        if (space == std::string::npos) break;
        size_t len = std::strtoull(text.c_str() + at, nullptr, 10);
        if (len < space - at + 2 || at + len > text.size()) break;
        std::string record = text.substr(space + 1, at + len - space - 2);
        size_t eq = record.find('=');
        if (eq != std::string::npos) {
          if (record.compare(0, eq, "path") == 0) long_name = record.substr(eq + 1);
          if (record.compare(0, eq, "size") == 0) long_size = std::strtoull(record.c_str() + eq + 1, nullptr, 10);
        }
        at += len;
      }
      pos = data + Padded(size);
      continue;
    }
    if (!long_name.empty()) name = std::exchange(long_name, "");
    if (long_size != UINT64_MAX) size = std::exchange(long_size, UINT64_MAX);
    if (data > end || size > end - data)
      return Status::Corrupt(url + ": member " + name + " runs past the end of the file");
    bool regular = (type == '0' || type == '\0' || type == '7') && !name.empty() && name.back() != '/';
    CHUTE_RETURN_NOT_OK(visit(Member{name, first, data, size, regular}));
    pos = data + Padded(size);
    first = pos;
  }
  return Status::OK();
}

}  // namespace chute::tar
