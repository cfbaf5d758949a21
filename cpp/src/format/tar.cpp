#include "format/tar.h"

#include <cctype>

namespace chute::tar {

bool ParseNumber(const std::byte* p, size_t n, uint64_t* out) {
  auto b = reinterpret_cast<const uint8_t*>(p);
  uint64_t v = 0;
  if (b[0] & 0x80) {  // base-256 (0xff: negative)
    if (b[0] == 0xff) return false;
    for (size_t i = 1; i < n; ++i) v = (v << 8) | b[i];
    *out = v;
    return v <= kMaxMemberSize;
  }
  size_t i = 0;
  while (i < n && b[i] == ' ') ++i;
  for (; i < n && b[i] >= '0' && b[i] <= '7'; ++i) v = v * 8 + (b[i] - '0');
  if (i < n && b[i] != 0 && b[i] != ' ') return false;
  *out = v;
  return v <= kMaxMemberSize;
}

std::string Field(const std::byte* p, size_t n) {
  auto c = reinterpret_cast<const char*>(p);
  return std::string(c, strnlen(c, n));
}

bool KeyAndExtension(const std::string& name, std::string* key, std::string* ext) {
  size_t slash = name.rfind('/');
  std::string base = slash == std::string::npos ? name : name.substr(slash + 1);
  if (base.empty() || base[0] == '.') return false;  // hidden files, AppleDouble "._*"
  if (name.size() >= 4 && name.compare(0, 2, "__") == 0) {  // metadata: "__*__" at the top level
    size_t end = name.find('/');
    std::string top = name.substr(0, end);
    if (top.size() >= 4 && top.compare(top.size() - 2, 2, "__") == 0) return false;
  }
  size_t dot = base.find('.');
  if (dot == std::string::npos || dot == 0) return false;
  *key = name.substr(0, name.size() - base.size() + dot);
  *ext = base.substr(dot + 1);
  std::transform(ext->begin(), ext->end(), ext->begin(), [](unsigned char c) { return std::tolower(c); });
  return !ext->empty();
}

}  // namespace chute::tar
