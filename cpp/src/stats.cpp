// stats.cpp: norms, finiteness and per-layer statistics (contracts in stats.hpp).
// Flat arrays of `count` elements; Z, A are (N, O).
#include "initlab/stats.hpp"

#include <algorithm>
#include <cmath>

#include "chunked.hpp"

INITLAB_NAMESPACE_BEGIN

template <typename T>
double sum_of_squares(std::int64_t count, const T* x) {
  return detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    return detail::sum_of_squares_chunk(end - begin, const_cast<T*>(x) + begin);  // kClip false: read only
  });
}

template <typename T>
void scale(std::int64_t count, T* x, T factor) {
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t e = begin; e < end; ++e) x[e] *= factor;
  });
}

template <typename T>
double diff_norm(std::int64_t count, const T* a, const T* b) {
  const double s = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double partial = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const double d = static_cast<double>(a[e]) - static_cast<double>(b[e]);
      partial += d * d;
    }
    return partial;
  });
  return std::sqrt(s);
}

template <typename T>
bool all_finite(std::int64_t count, const T* x) {
  const double non_finite = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    std::int64_t bad = 0;
    for (std::int64_t e = begin; e < end; ++e) bad += std::isfinite(x[e]) ? 0 : 1;
    return static_cast<double>(bad);
  });
  return non_finite == 0.0;
}

namespace {

// Population mean and standard deviation of x (count), two passes in double (no cancellation).
template <typename T>
void mean_std(std::int64_t count, const T* x, double* mean, double* std_dev) {
  // 8 fixed lanes per chunk: a single running double sum is one dependent add per element (the
  // probe statistics took 28 us per 128x128 layer, 7% of a small fit); the lanes vectorize.
  const double sum = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    return detail::shifted_sum_chunk<false>(end - begin, x + begin, 0.0);
  });
  const double mu = sum / static_cast<double>(count);
  const double squares = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    return detail::shifted_sum_chunk<true>(end - begin, x + begin, mu);
  });
  *mean = mu;
  *std_dev = std::sqrt(squares / static_cast<double>(count));
}

}  // namespace

template <typename T>
LayerStats layer_stats(std::int64_t n, std::int64_t o, const T* z, const T* a, Activation act) {
  const std::int64_t count = n * o;
  LayerStats stats{};
  mean_std(count, z, &stats.pre_mean, &stats.pre_std);
  mean_std(count, a, &stats.act_mean, &stats.act_std);

  if (act == Activation::kTanh || act == Activation::kSigmoid) {
    const bool is_tanh = act == Activation::kTanh;
    const double saturated = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
      std::int64_t hits = 0;
      for (std::int64_t e = begin; e < end; ++e) {
        const T v = a[e];
        hits += is_tanh ? (std::abs(v) > T(0.99)) : (v < T(0.01) || v > T(0.99));
      }
      return static_cast<double>(hits);
    });
    stats.saturated = saturated / static_cast<double>(count);
  }

  if (act == Activation::kRelu) {
    // A unit (column) is dead when z <= 0 on every row: relu' = 0 there, so no gradient reaches
    // its weights. Leaky/ELU/SELU units keep a nonzero slope and are never dead. Chunks are
    // column blocks.
    constexpr std::int64_t kColumns = 64;
    const double dead = detail::sum_chunks(o, kColumns, [&](std::int64_t j0, std::int64_t j1) {
      bool alive[kColumns] = {};
      for (std::int64_t r = 0; r < n; ++r) {
        const T* row = z + r * o;
        for (std::int64_t j = j0; j < j1; ++j) alive[j - j0] |= !(row[j] <= T(0));
      }
      std::int64_t dead_units = 0;
      for (std::int64_t j = j0; j < j1; ++j) dead_units += alive[j - j0] ? 0 : 1;
      return static_cast<double>(dead_units);
    });
    stats.dead = dead / static_cast<double>(o);
  }
  return stats;
}

template double sum_of_squares<float>(std::int64_t, const float*);
template double sum_of_squares<double>(std::int64_t, const double*);
template void scale<float>(std::int64_t, float*, float);
template void scale<double>(std::int64_t, double*, double);
template double diff_norm<float>(std::int64_t, const float*, const float*);
template double diff_norm<double>(std::int64_t, const double*, const double*);
template bool all_finite<float>(std::int64_t, const float*);
template bool all_finite<double>(std::int64_t, const double*);
template LayerStats layer_stats<float>(std::int64_t, std::int64_t, const float*, const float*, Activation);
template LayerStats layer_stats<double>(std::int64_t, std::int64_t, const double*, const double*,
                                         Activation);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
