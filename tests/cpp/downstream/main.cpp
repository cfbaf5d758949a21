// downstream DATASET: prints the item count, the sum of every int leaf and the sum of
// every int64 array element, read in batches through chute's public C++ API (with the
// engine's look-ahead, as a native loader would).
#include <chute/chute.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto ds = chute::Dataset::Open(argv[1]);
  if (!ds.ok()) {
    std::fprintf(stderr, "%s\n", ds.status().ToString().c_str());
    return 1;
  }
  long long int_sum = 0, array_sum = 0;
  chute::Lookahead lookahead(*ds, 1 << 20);
  const uint64_t n = (*ds)->num_items(), batch = 32;
  for (uint64_t first = 0; first < n; first += batch) {
    std::vector<uint64_t> ids;
    for (uint64_t i = first; i < std::min(n, first + batch); ++i) ids.push_back(i);
    lookahead.Add({(*ds)->Locate(first).first, (*ds)->Locate(ids.back()).first});
    lookahead.Next();
    auto items = (*ds)->GetItems(ids);
    if (!items.ok()) {
      std::fprintf(stderr, "%s\n", items.status().ToString().c_str());
      return 1;
    }
    for (const chute::Item& item : *items) {
      for (const chute::LeafView& leaf : item.leaves) {
        if (leaf.kind == chute::LeafKind::kInt) int_sum += leaf.as_int();
        if (leaf.kind != chute::LeafKind::kArray || leaf.dtype != chute::DType{chute::DType::kInt, 64}) continue;
        for (size_t k = 0; k < leaf.size / 8; ++k) {
          int64_t v;
          std::memcpy(&v, leaf.data + 8 * k, 8);
          array_sum += v;
        }
      }
    }
  }
  std::printf("items=%llu int_sum=%lld array_sum=%lld\n",
              static_cast<unsigned long long>((*ds)->num_items()), int_sum, array_sum);
  return 0;
}
