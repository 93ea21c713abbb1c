// bench_native: GFLOP/s of initlab's GEMM without Python, next to the measured peak of its
// micro-kernel on L1-resident packed panels (the roofline figure for this machine).
//
//   cmake -S . -B build-bench -DINITLAB_BENCH=ON -DINITLAB_PYTHON=OFF
//   cmake --build build-bench -j2 && OMP_NUM_THREADS=2 ./build-bench/bench_native [--quick] [--cpu-time]
//
// Each figure is the median of several timed calls after a warm-up; 2*M*N*K flops per product.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <ctime>
#include <string>
#include <vector>

#include "initlab/gemm.hpp"
#include "initlab/parallel.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// --cpu-time: time by the process's CPU clock instead of the wall clock. On a shared machine this
// ignores the time the process waits while others run; it is only meaningful with one thread.
bool g_cpu_time = false;

double now_seconds() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
  }
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

template <typename F>
double median_seconds(F&& f, int repeats) {
  f();  // warm-up: page faults, packing buffers, OpenMP team
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_seconds();
    f();
    times.push_back(now_seconds() - t0);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

template <typename T>
std::vector<T> random_matrix(std::int64_t count, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(static_cast<std::size_t>(count));
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

// The micro-kernel alone, one thread, its panels in L1: the most this GEMM can reach per core.
template <typename T>
double microkernel_peak_gflops() {
  const int mr = initlab::gemm_mr<T>(), nr = initlab::gemm_nr<T>();
  const std::int64_t kc = 256, repeats = 2000;
  std::vector<T> a = random_matrix<T>(kc * mr, 1);
  // The packed B panel is read with aligned vector loads: a 64-byte aligned copy.
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  const std::size_t b_bytes = (sizeof(T) * kc * nr + 63) / 64 * 64, c_bytes = (sizeof(T) * mr * nr + 63) / 64 * 64;
  std::unique_ptr<T, Free> b_store(static_cast<T*>(std::aligned_alloc(64, b_bytes)));
  std::unique_ptr<T, Free> c(static_cast<T*>(std::aligned_alloc(64, c_bytes)));
  std::vector<T> b_src = random_matrix<T>(kc * nr, 2);
  std::memcpy(b_store.get(), b_src.data(), sizeof(T) * kc * nr);
  std::memset(c.get(), 0, sizeof(T) * mr * nr);
  const double seconds = median_seconds(
      [&] { initlab::gemm_microkernel_bench<T>(kc, a.data(), b_store.get(), c.get(), repeats); }, 9);
  return 2.0 * mr * nr * kc * repeats / seconds / 1e9;
}

struct Shape {
  const char* label;
  std::int64_t m, n, k;
};

template <typename T>
void run_gemm(const char* type_name, const std::vector<Shape>& shapes, int repeats) {
  std::printf("\n%s GEMM, %d thread(s), GFLOP/s (median of %d)\n", type_name, initlab::num_threads(), repeats);
  std::printf("%-28s %10s %10s %10s\n", "shape (M x N x K)", "X*W", "dZ*W^T", "X^T*dZ");
  for (const Shape& s : shapes) {
    // X*W: A (M, K), B (K, N). dZ*W^T: B stored (N, K). X^T*dZ: A stored (K, M).
    std::vector<T> a = random_matrix<T>(s.m * s.k, 3), b = random_matrix<T>(s.k * s.n, 4);
    std::vector<T> c(static_cast<std::size_t>(s.m * s.n));
    const double flops = 2.0 * s.m * s.n * s.k;
    double gflops[3];
    for (int variant = 0; variant < 3; ++variant) {
      const bool trans_a = variant == 2, trans_b = variant == 1;
      const std::int64_t lda = trans_a ? s.m : s.k, ldb = trans_b ? s.k : s.n;
      const double t = median_seconds(
          [&] {
            initlab::gemm<T>(trans_a, trans_b, s.m, s.n, s.k, T(1), a.data(), lda, b.data(), ldb, T(0),
                             c.data(), s.n);
          },
          repeats);
      gflops[variant] = flops / t / 1e9;
    }
    char label[64];
    std::snprintf(label, sizeof label, "%s %lldx%lldx%lld", s.label, static_cast<long long>(s.m),
                  static_cast<long long>(s.n), static_cast<long long>(s.k));
    std::printf("%-28s %10.1f %10.1f %10.1f\n", label, gflops[0], gflops[1], gflops[2]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg == "--cpu-time") {
      g_cpu_time = true;
    } else {
      std::fprintf(stderr, "usage: bench_native [--quick] [--cpu-time]\n");
      return 2;
    }
  }
  const int repeats = quick ? 3 : 7;
  std::vector<Shape> shapes;
  for (std::int64_t n : {128, 256, 512, 1024, 2048}) {
    if (quick && n > 1024) continue;
    shapes.push_back({"square", n, n, n});
  }
  // The MLP shapes of the Python benchmark: batch x fan_out x fan_in for the forward product.
  const Shape mlp[] = {{"tiny", 32, 64, 64},      {"mnist-in", 128, 512, 784}, {"mnist-hid", 128, 512, 512},
                       {"wide-in", 256, 2048, 784}, {"wide-hid", 256, 2048, 2048}, {"deep30", 128, 256, 256},
                       {"tanh5-in", 64, 1000, 784}, {"tanh5-hid", 64, 1000, 1000}};
  for (const Shape& s : mlp) shapes.push_back(s);

  const double peak32 = microkernel_peak_gflops<float>();
  const double peak64 = microkernel_peak_gflops<double>();
  std::printf("micro-kernel peak, one core, L1-resident panels: float32 %.1f GFLOP/s (%dx%d), "
              "float64 %.1f GFLOP/s (%dx%d)\n",
              peak32, initlab::gemm_mr<float>(), initlab::gemm_nr<float>(), peak64, initlab::gemm_mr<double>(),
              initlab::gemm_nr<double>());
  std::printf("roofline for %d thread(s): float32 %.1f GFLOP/s, float64 %.1f GFLOP/s\n", initlab::num_threads(),
              peak32 * initlab::num_threads(), peak64 * initlab::num_threads());
  run_gemm<float>("float32", shapes, repeats);
  if (!quick) run_gemm<double>("float64", shapes, repeats);
  return 0;
}
