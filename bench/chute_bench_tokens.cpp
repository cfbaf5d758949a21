// chute_bench_tokens [TOKENS] [SRC_DTYPE] [REPEATS]
// GB/s of chute's token conversion kernel (SIMD and portable) widening TOKENS tokens of
// SRC_DTYPE (uint16 | uint32 | int32) to int64, beside memcpy of the same output bytes.
// GB/s counts bytes written; the best of REPEATS runs is reported.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "chute/tokens.h"

namespace {

template <typename F>
double BestSeconds(int repeats, F&& f) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : size_t{32} << 20;
  std::string src_name = argc > 2 ? argv[2] : "uint16";
  int repeats = argc > 3 ? std::atoi(argv[3]) : 10;
  chute::DType src{chute::DType::kUInt, 16};
  if (src_name == "uint32") src = {chute::DType::kUInt, 32};
  else if (src_name == "int32") src = {chute::DType::kInt, 32};
  else if (src_name != "uint16") {
    std::fprintf(stderr, "SRC_DTYPE must be uint16, uint32 or int32\n");
    return 2;
  }
  const chute::DType dst{chute::DType::kInt, 64};
  std::vector<std::byte> in(n * src.itemsize()), out(n * 8), copy_src(n * 8);
  for (size_t k = 0; k < in.size(); ++k) in[k] = static_cast<std::byte>(k * 131);
  std::memset(out.data(), 1, out.size());        // fault the pages in before timing
  std::memset(copy_src.data(), 2, copy_src.size());

  double simd = BestSeconds(repeats, [&] { (void)chute::ConvertTokens(in.data(), src, out.data(), dst, n, true); });
  double portable = BestSeconds(repeats, [&] { (void)chute::ConvertTokens(in.data(), src, out.data(), dst, n, false); });
  double memcpy_s = BestSeconds(repeats, [&] { std::memcpy(out.data(), copy_src.data(), out.size()); });
  double gb = out.size() / 1e9;
  std::printf("tokens=%zu src=%s avx2=%d simd_GB_per_s=%.2f portable_GB_per_s=%.2f memcpy_GB_per_s=%.2f "
              "simd_vs_memcpy=%.2f simd_tokens_per_s=%.3g\n",
              n, src_name.c_str(), chute::TokensSimdAvailable() ? 1 : 0, gb / simd, gb / portable, gb / memcpy_s,
              memcpy_s / simd, n / simd);
  return 0;
}
