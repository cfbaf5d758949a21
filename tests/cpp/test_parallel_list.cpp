// The parallel listing of a prefix (cpp/src/storage/parallel_list.h) against an in-memory
// "bucket" served in pages of 1,000 keys, like ListObjectsV2:
//  1. flat keys of digits, nested "directories", and keys with characters outside ASCII
//     are each listed exactly once, with many ranges listed at once (the page calls are
//     counted: more than one in flight at some time);
//  2. KeyMidpoint lies strictly between its bounds;
//  3. a failing page fails the listing (no hang); a store that ignores start-after is
//     reported as Unsupported (the caller lists one page after another), not looped on.
// Built with CHUTE_SANITIZE=thread by tests/python/test_native.py; prints "ok" and exits 0
// on success.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storage/parallel_list.h"

namespace {

using chute::ObjectInfo;
using chute::Status;

bool ListTest(const char* name, std::vector<std::string> keys, const std::string& prefix) {
  std::sort(keys.begin(), keys.end());
  std::atomic<int> in_flight{0}, most{0}, calls{0};
  auto page = [&](const std::string& after, std::vector<ObjectInfo>* out, bool* truncated) {
    int now = ++in_flight;
    for (int m = most.load(); now > m && !most.compare_exchange_weak(m, now);) {
    }
    calls++;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a round trip
    auto it = std::upper_bound(keys.begin(), keys.end(), after);
    it = std::max(it, std::lower_bound(keys.begin(), keys.end(), prefix));
    for (; it != keys.end() && it->compare(0, prefix.size(), prefix) == 0 && out->size() < 1000; ++it)
      out->push_back({"bucket/" + *it, it->size()});
    *truncated = it != keys.end() && it->compare(0, prefix.size(), prefix) == 0;
    --in_flight;
    return Status::OK();
  };
  auto listed = chute::storage::ListInParallel(page, prefix, 7, 16);
  if (!listed.ok()) {
    std::printf("%s: %s\n", name, listed.status().message().c_str());
    return false;
  }
  std::multiset<std::string> got;
  for (auto& o : *listed) got.insert(o.path.substr(7));
  std::multiset<std::string> want;
  for (auto& k : keys)
    if (k.compare(0, prefix.size(), prefix) == 0) want.insert(k);
  bool ok = got == want && most.load() > 1;
  std::printf("%s: keys=%zu listed=%zu calls=%d most_in_flight=%d %s\n", name, want.size(), got.size(), calls.load(),
              most.load(), ok ? "ok" : "WRONG");
  return ok;
}

bool MidpointTest() {
  using chute::storage::KeyMidpoint;
  const std::string digits = "0123456789";
  bool ok = true;
  for (auto [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"img/000123.jpg", "img/\xff"}, {"img/000123.jpg", "img/000124"}, {"a", "b"}, {"img/0", "img/00"}}) {
    std::string m = KeyMidpoint(a, b, digits + "./agijmp");
    bool good = m.empty() || (a < m && m < b);
    if (!good) std::printf("midpoint(%s, %s) = %s\n", a.c_str(), b.c_str(), m.c_str());
    ok = ok && good;
  }
  ok = ok && !KeyMidpoint("img/000123.jpg", "img/\xff", digits + "./agijmp").empty();  // splits the digits
  std::printf("midpoint: %s\n", ok ? "ok" : "WRONG");
  return ok;
}

bool FailureTest() {
  std::atomic<int> calls{0};
  auto page = [&](const std::string& after, std::vector<ObjectInfo>* out, bool* truncated) {
    if (++calls > 3) return Status::IOError("the store went away");
    for (int k = 0; k < 1000; ++k) out->push_back({"bucket/p/" + after + std::to_string(1000 + k), 1});
    *truncated = true;
    return Status::OK();
  };
  auto listed = chute::storage::ListInParallel(page, "p/", 7, 8);
  bool ok = !listed.ok() && listed.status().message() == "the store went away";
  auto same_page = [&](const std::string&, std::vector<ObjectInfo>* out, bool* truncated) {
    for (int k = 0; k < 1000; ++k) out->push_back({"bucket/p/" + std::to_string(10000 + k), 1});
    *truncated = true;  // and start-after ignored: the same page every time
    return Status::OK();
  };
  auto ignored = chute::storage::ListInParallel(same_page, "p/", 7, 8);
  ok = ok && ignored.status().code() == chute::StatusCode::kUnsupported;
  std::printf("failure: %s\n", ok ? "ok" : "WRONG");
  return ok;
}

}  // namespace

int main() {
  std::vector<std::string> flat, nested, wide;
  for (int i = 0; i < 25000; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "img/%06d.jpg", i * 7);
    flat.push_back(key);
    std::snprintf(key, sizeof key, "d/%02d/%04d/x.png", i % 37, i);
    nested.push_back(key);
    wide.push_back("w/" + std::string(i % 3 ? "\xc3\xa9" : "z") + std::to_string(i));
  }
  flat.push_back("other/outside.jpg");  // not under the prefix
  bool ok = ListTest("flat", flat, "img/");
  ok = ListTest("nested", nested, "d/") && ok;
  ok = ListTest("non-ascii", wide, "w/") && ok;
  ok = MidpointTest() && ok;
  ok = FailureTest() && ok;
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
