// Prints SHA-256 and HMAC-SHA256 (cpp/src/storage/sigv4.h) of inputs of every length up
// to 300 bytes, one per line, for tests/python/test_native.py to compare with hashlib:
// lengths around the 55/56/64-byte padding boundaries are where an implementation slips.
#include <cstdio>
#include <string>

#include "storage/sigv4.h"

int main() {
  using namespace chute::storage;
  for (int n = 0; n <= 300; ++n) {
    std::string data;
    for (int i = 0; i < n; ++i) data += static_cast<char>((i * 37 + n) & 0xff);
    std::printf("sha256 %d %s\n", n, Hex(Sha256(data)).c_str());
    std::printf("hmac %d %s\n", n, Hex(HmacSha256(data, "chute")).c_str());  // keys longer than a block too
  }
  return 0;
}
