// downstream DATASET: prints the item count, the sum of every int leaf and the sum of
// every int64 array element, read through chute's public C++ API.
#include <chute/chute.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto ds = chute::Dataset::Open(argv[1]);
  if (!ds.ok()) {
    std::fprintf(stderr, "%s\n", ds.status().ToString().c_str());
    return 1;
  }
  long long int_sum = 0, array_sum = 0;
  for (uint64_t i = 0; i < (*ds)->num_items(); ++i) {
    auto item = (*ds)->GetItem(i);
    if (!item.ok()) {
      std::fprintf(stderr, "%s\n", item.status().ToString().c_str());
      return 1;
    }
    for (const chute::LeafView& leaf : item->leaves) {
      if (leaf.kind == chute::LeafKind::kInt) int_sum += leaf.as_int();
      if (leaf.kind == chute::LeafKind::kArray && leaf.dtype == chute::DType{chute::DType::kInt, 64}) {
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
