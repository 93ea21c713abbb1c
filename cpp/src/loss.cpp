// loss.cpp: the fused output losses (contracts in loss.hpp).
// Z, P, dZ, Y are (N, K); labels are (N).
#include "initlab/loss.hpp"

#include <algorithm>
#include <cmath>

#include "chunked.hpp"

namespace initlab {

namespace {
// Rows per chunk for the row-wise losses: about kChunk elements, never fewer than one row.
std::int64_t rows_per_chunk(std::int64_t k) { return std::max<std::int64_t>(1, kChunk / k); }
}  // namespace

template <typename T>
double softmax_cross_entropy(std::int64_t n, std::int64_t k, const T* z, const std::int64_t* labels,
                             const T* targets, T* p, T* dz) {
  const T inv_n = static_cast<T>(1.0 / static_cast<double>(n));
  const double total = detail::sum_chunks(n, rows_per_chunk(k), [&](std::int64_t r0, std::int64_t r1) {
    double chunk_loss = 0.0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* z_row = z + r * k;
      T* p_row = p + r * k;
      T row_max = z_row[0];
      for (std::int64_t j = 1; j < k; ++j) row_max = z_row[j] > row_max ? z_row[j] : row_max;
      double exp_sum = 0.0;
      for (std::int64_t j = 0; j < k; ++j) {
        const T e = std::exp(z_row[j] - row_max);
        p_row[j] = e;
        exp_sum += static_cast<double>(e);
      }
      const double log_sum_exp = static_cast<double>(row_max) + std::log(exp_sum);
      const T inv_sum = static_cast<T>(1.0 / exp_sum);
      for (std::int64_t j = 0; j < k; ++j) p_row[j] *= inv_sum;
      if (labels != nullptr) {
        const std::int64_t label = labels[r];
        chunk_loss += log_sum_exp - static_cast<double>(z_row[label]);
        if (dz != nullptr) {
          T* dz_row = dz + r * k;
          for (std::int64_t j = 0; j < k; ++j) dz_row[j] = p_row[j] * inv_n;
          dz_row[label] = (p_row[label] - T(1)) * inv_n;
        }
      } else {
        const T* y_row = targets + r * k;
        for (std::int64_t j = 0; j < k; ++j) {
          if (y_row[j] != T(0)) {
            chunk_loss += static_cast<double>(y_row[j]) * (log_sum_exp - static_cast<double>(z_row[j]));
          }
        }
        if (dz != nullptr) {
          T* dz_row = dz + r * k;
          for (std::int64_t j = 0; j < k; ++j) dz_row[j] = (p_row[j] - y_row[j]) * inv_n;
        }
      }
    }
    return chunk_loss;
  });
  return total / static_cast<double>(n);
}

template <typename T>
double sigmoid_binary_cross_entropy(std::int64_t n, std::int64_t k, const T* z, const T* y, T* p, T* dz) {
  const std::int64_t count = n * k;
  const T inv_count = static_cast<T>(1.0 / static_cast<double>(count));
  const double total = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_loss = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const T ze = z[e];
      // max(z, 0) - z*y + log1p(exp(-|z|)): finite for every finite z (z = 200, y = 0 gives 200)
      const T loss = std::max(ze, T(0)) - ze * y[e] + std::log1p(std::exp(-std::abs(ze)));
      chunk_loss += static_cast<double>(loss);
      const T pe = T(1) / (T(1) + std::exp(-ze));
      p[e] = pe;
      if (dz != nullptr) dz[e] = (pe - y[e]) * inv_count;
    }
    return chunk_loss;
  });
  if (!std::isinf(total)) return total / static_cast<double>(count);
  // The sum of squares overflowed double, yet the mean may be finite (float64 diffs near 1e154 and
  // above: y = 6e153 over 5 columns has mean 3.6e307). Sum again with every difference scaled by
  // 2^-600 (exact: a power of two; no square of a finite double can then overflow, and differences
  // small enough to underflow are negligible beside the one that overflowed), then undo the scaling
  // after the division: the mean is inf only when it truly exceeds the largest double.
  constexpr double kDown = 0x1p-600, kUp = 0x1p600;
  const double scaled = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_loss = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const double diff = static_cast<double>(z[e] - y[e]) * kDown;
      chunk_loss += diff * diff;
    }
    return chunk_loss;
  });
  return scaled / static_cast<double>(count) * kUp * kUp;
}

template <typename T>
double mean_squared_error(std::int64_t n, std::int64_t k, const T* z, const T* y, T* dz) {
  const std::int64_t count = n * k;
  const T two_over_count = static_cast<T>(2.0 / static_cast<double>(count));
  const double total = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_loss = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const T diff = z[e] - y[e];
      chunk_loss += static_cast<double>(diff) * static_cast<double>(diff);
      if (dz != nullptr) dz[e] = diff * two_over_count;
    }
    return chunk_loss;
  });
  if (!std::isinf(total)) return total / static_cast<double>(count);
  // The sum of squares overflowed double, yet the mean may be finite (float64 diffs near 1e154 and
  // above: y = 6e153 over 5 columns has mean 3.6e307). Sum again with every difference scaled by
  // 2^-600 (exact: a power of two; no square of a finite double can then overflow, and differences
  // small enough to underflow are negligible beside the one that overflowed), then undo the scaling
  // after the division: the mean is inf only when it truly exceeds the largest double.
  constexpr double kDown = 0x1p-600, kUp = 0x1p600;
  const double scaled = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_loss = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const double diff = static_cast<double>(z[e] - y[e]) * kDown;
      chunk_loss += diff * diff;
    }
    return chunk_loss;
  });
  return scaled / static_cast<double>(count) * kUp * kUp;
}

template double softmax_cross_entropy<float>(std::int64_t, std::int64_t, const float*,
                                             const std::int64_t*, const float*, float*, float*);
template double softmax_cross_entropy<double>(std::int64_t, std::int64_t, const double*,
                                              const std::int64_t*, const double*, double*, double*);
template double sigmoid_binary_cross_entropy<float>(std::int64_t, std::int64_t, const float*,
                                                    const float*, float*, float*);
template double sigmoid_binary_cross_entropy<double>(std::int64_t, std::int64_t, const double*,
                                                     const double*, double*, double*);
template double mean_squared_error<float>(std::int64_t, std::int64_t, const float*, const float*, float*);
template double mean_squared_error<double>(std::int64_t, std::int64_t, const double*, const double*,
                                           double*);

}  // namespace initlab
