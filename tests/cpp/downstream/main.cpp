// downstream DATASET: prints the item count, the sum of every int leaf and the sum of
// every int64 array element, read in batches by a chute::Reader through chute's public
// C++ API, as a native loader would.
#include <chute/chute.h>

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
  chute::ReaderOptions options;
  options.order.shuffle = false;
  options.batch_size = 32;
  auto reader = chute::Reader::Make(*ds, options);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
    return 1;
  }
  chute::Batch batch;
  for (;;) {
    auto more = (*reader)->Next(&batch);
    if (!more.ok()) {
      std::fprintf(stderr, "%s\n", more.status().ToString().c_str());
      return 1;
    }
    if (!*more) break;
    for (const chute::Item& item : batch.items) {
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
