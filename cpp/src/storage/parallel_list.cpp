#include "storage/parallel_list.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace chute::storage {

namespace {

// Digits of a key after the common prefix, in base |alphabet| + 2: 0 ends the key,
// 1..|alphabet| are its characters, |alphabet| + 1 anything above them.
constexpr size_t kDigits = 6;

}  // namespace

std::string KeyMidpoint(const std::string& a, const std::string& b, const std::string& alphabet) {
  if (alphabet.empty() || !(a < b)) return "";
  size_t common = 0;
  while (common < a.size() && common < b.size() && a[common] == b[common]) ++common;
  const uint64_t base = alphabet.size() + 2;
  auto digit = [&](const std::string& s, size_t i) -> uint64_t {
    if (i >= s.size()) return 0;
    auto c = static_cast<unsigned char>(s[i]);
    size_t at = static_cast<size_t>(std::lower_bound(alphabet.begin(), alphabet.end(), static_cast<char>(c),
                                                     [](char x, char y) {
                                                       return static_cast<unsigned char>(x) <
                                                              static_cast<unsigned char>(y);
                                                     }) -
                                    alphabet.begin());
    return at + 1;  // c itself, or the next character above it in the alphabet
  };
  uint64_t va = 0, vb = 0;
  for (size_t i = 0; i < kDigits; ++i) {
    va = va * base + digit(a, common + i);
    vb = vb * base + digit(b, common + i);
  }
  if (va >= vb) return "";  // b's characters above the alphabet: no midpoint this way
  uint64_t mid = va + (vb - va) / 2;
  std::string digits(kDigits, '\0');
  for (size_t i = kDigits; i-- > 0; mid /= base) digits[i] = static_cast<char>(mid % base);
  std::string m = b.substr(0, common);
  for (char d : digits) {
    auto v = static_cast<uint64_t>(static_cast<unsigned char>(d));
    if (v == 0) break;
    m += alphabet[std::min<uint64_t>(v, alphabet.size()) - 1];
  }
  return a < m && m < b ? m : "";
}

Result<std::vector<ObjectInfo>> ListInParallel(const ListPageFn& page, const std::string& prefix, size_t key_offset,
                                               size_t threads) {
  struct Range {
    std::string after;  // keys > after ...
    std::string upto;   // ... and <= upto
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Range> ranges{{"", prefix + '\xff'}};  // above every key under the prefix
  size_t busy = 0;
  bool alphabet_seen[128] = {};
  std::string alphabet;
  std::vector<ObjectInfo> out;
  Status failure;

  auto work = [&] {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return !ranges.empty() || busy == 0 || !failure.ok(); });
      if (ranges.empty() || !failure.ok()) return;  // all done, or given up
      Range range = std::move(ranges.front());
      ranges.pop_front();
      ++busy;
      for (std::string cursor = range.after; failure.ok();) {
        lock.unlock();
        std::vector<ObjectInfo> got;
        bool truncated = false;
        Status st = page(cursor, &got, &truncated);
        lock.lock();
        if (!st.ok()) {
          if (failure.ok()) failure = st;
          break;
        }
        if (got.empty() && truncated) {
          failure = Status::IOError("listing " + prefix + ": an empty page said more keys follow");
          break;
        }
        bool past = false;
        for (ObjectInfo& o : got) {
          std::string key = o.path.substr(std::min(key_offset, o.path.size()));
          if (key <= cursor) {  // the store ignores start-after, or does not list in order
            failure = Status::Unsupported("listing " + prefix + ": the store returned '" + key + "' after '" +
                                          cursor + "' (keys out of order): it cannot be listed in parallel");
            break;
          }
          if (key > range.upto) {
            past = true;
            break;
          }
          for (unsigned char c : key.substr(std::min(prefix.size(), key.size())))
            if (c < 128 && !alphabet_seen[c]) alphabet_seen[c] = true, alphabet += static_cast<char>(c);
          cursor = std::move(key);
          out.push_back(std::move(o));
        }
        if (!failure.ok() || past || !truncated) break;
        // More follow: give the upper part of the rest to an idle thread.
        if (ranges.empty() && busy < threads) {
          std::sort(alphabet.begin(), alphabet.end());
          std::string mid = KeyMidpoint(cursor, range.upto, alphabet);
          if (!mid.empty()) {
            ranges.push_back({mid, range.upto});
            range.upto = mid;
            cv.notify_one();
          }
        }
      }
      --busy;
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < std::max<size_t>(1, threads); ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (!failure.ok()) return failure;
  return out;
}

}  // namespace chute::storage
