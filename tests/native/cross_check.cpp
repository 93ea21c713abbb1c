// cross_check.cpp: built for another architecture (tests/test_simd_paths.py cross-compiles it for
// aarch64 and runs it under qemu-user): the GEMM against its naive twin, each fast fill against its
// naive twin bit for bit, and hashes of the fills, which the test compares with the x86-64 build's.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>
#include "initlab/gemm.hpp"
#include "initlab/random.hpp"
static std::uint64_t fnv(const void* p, std::size_t n) {
  const unsigned char* b = static_cast<const unsigned char*>(p); std::uint64_t h = 1469598103934665603ull;
  for (std::size_t i = 0; i < n; ++i) { h ^= b[i]; h *= 1099511628211ull; } return h;
}
int main() {
  int bad = 0;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2; const std::int64_t m = 67, n = 45, k = 300;
    std::vector<float> a(m * k), b(k * n), c(m * n), r(m * n);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.37f * i);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = std::cos(0.11f * i);
    initlab::gemm<float>(ta, tb, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), tb ? k : n, 0.0f, c.data(), n);
    initlab::gemm_reference<float>(ta, tb, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), tb ? k : n, 0.0f, r.data(), n, nullptr);
    double err = 0; for (std::size_t i = 0; i < c.size(); ++i) err = std::fmax(err, std::fabs(c[i] - r[i]));
    std::printf("gemm trans_a=%d trans_b=%d max|fast-naive| %.3g\n", ta, tb, err); bad += err > 1e-3;
  }
  const std::int64_t n = 100003;
  std::vector<float> f(n), g(n); std::vector<double> d(n), e(n);
  initlab::fill_normal<float>(f.data(), n, 42, 0, 0.0, 1.0); initlab::fill_normal_naive<float>(g.data(), n, 42, 0, 0.0, 1.0);
  initlab::fill_truncated_normal<double>(d.data(), n, 42, 1, 0.0, 1.0, -2.0, 2.0);
  initlab::fill_truncated_normal_naive<double>(e.data(), n, 42, 1, 0.0, 1.0, -2.0, 2.0);
  bad += fnv(f.data(), 4 * n) != fnv(g.data(), 4 * n); bad += fnv(d.data(), 8 * n) != fnv(e.data(), 8 * n);
  std::printf("fill_normal<float> %016llx\nfill_truncated_normal<double> %016llx\n",
              (unsigned long long)fnv(f.data(), 4 * n), (unsigned long long)fnv(d.data(), 8 * n));
  std::vector<float> u(n); initlab::fill_uniform<float>(u.data(), n, 7, 3, -1.0, 1.0);
  std::printf("fill_uniform<float> %016llx\n", (unsigned long long)fnv(u.data(), 4 * n));
  std::printf("%s\n", bad ? "FAILED" : "ok");
  return bad;
}
