// loss.cpp: the fused output losses (contracts in loss.hpp).
// Z, P, dZ, Y are (N, K); labels are (N).
#include "initlab/loss.hpp"

#include <algorithm>
#include <cmath>

#include "chunked.hpp"

INITLAB_NAMESPACE_BEGIN

namespace {
// Rows per chunk for the row-wise losses: about kChunk elements, never fewer than one row.
std::int64_t rows_per_chunk(std::int64_t k) { return std::max<std::int64_t>(1, kChunk / k); }
}  // namespace

template <typename T>
double weight_sum(std::int64_t n, const T* weights) {
  return detail::sum_chunks(n, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_sum = 0.0;
    for (std::int64_t r = begin; r < end; ++r) chunk_sum += static_cast<double>(weights[r]);
    return chunk_sum;
  });
}

namespace {
// 1 / (columns * sum w) for weighted losses; 0 when sum w = 0 (then loss and dZ are 0: no update).
template <typename T>
double inv_weighted_count(std::int64_t n, std::int64_t columns, const T* weights) {
  if (weights == nullptr) return 0.0;
  const double sum_w = weight_sum(n, weights);
  return sum_w > 0.0 ? 1.0 / (static_cast<double>(columns) * sum_w) : 0.0;
}
}  // namespace

// Unweighted (weights == nullptr): the row scale of dZ is 1/N and the loss is the plain mean; these
// expressions are kept exactly as they were before weights existed, so the results are bitwise the same.
template <typename T>
double softmax_cross_entropy(std::int64_t n, std::int64_t k, const T* z, const std::int64_t* labels,
                             const T* targets, T* p, T* dz, const T* weights) {
  const T inv_n = static_cast<T>(1.0 / static_cast<double>(n));
  const double inv_sum_w = inv_weighted_count(n, 1, weights);
  const double total = detail::sum_chunks(n, rows_per_chunk(k), [&](std::int64_t r0, std::int64_t r1) {
    double chunk_loss = 0.0;
    for (std::int64_t r = r0; r < r1; ++r) {
      const T* z_row = z + r * k;
      T* p_row = p + r * k;
      // dZ row scale: 1/N, or w_r / sum w
      const T row_scale = weights == nullptr ? inv_n : static_cast<T>(static_cast<double>(weights[r]) * inv_sum_w);
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
        const double row_loss = log_sum_exp - static_cast<double>(z_row[label]);
        chunk_loss += weights == nullptr ? row_loss : static_cast<double>(weights[r]) * row_loss;
        if (dz != nullptr) {
          T* dz_row = dz + r * k;
          for (std::int64_t j = 0; j < k; ++j) dz_row[j] = p_row[j] * row_scale;
          dz_row[label] = (p_row[label] - T(1)) * row_scale;
        }
      } else {
        const T* y_row = targets + r * k;
        double row_loss = 0.0;  // weighted only: the row's loss before its weight
        for (std::int64_t j = 0; j < k; ++j) {
          if (y_row[j] != T(0)) {
            const double term = static_cast<double>(y_row[j]) * (log_sum_exp - static_cast<double>(z_row[j]));
            if (weights == nullptr) chunk_loss += term; else row_loss += term;
          }
        }
        if (weights != nullptr) chunk_loss += static_cast<double>(weights[r]) * row_loss;
        if (dz != nullptr) {
          T* dz_row = dz + r * k;
          for (std::int64_t j = 0; j < k; ++j) dz_row[j] = (p_row[j] - y_row[j]) * row_scale;
        }
      }
    }
    return chunk_loss;
  });
  if (weights == nullptr) return total / static_cast<double>(n);
  return inv_sum_w > 0.0 ? total * inv_sum_w : 0.0;
}

template <typename T>
double sigmoid_binary_cross_entropy(std::int64_t n, std::int64_t k, const T* z, const T* y, T* p, T* dz,
                                    const T* weights) {
  const std::int64_t count = n * k;
  const T inv_count = static_cast<T>(1.0 / static_cast<double>(count));
  const double inv_weighted = inv_weighted_count(n, k, weights);  // 1 / (K sum w)
  const double total = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_loss = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const T ze = z[e];
      // max(z, 0) - z*y + log1p(exp(-|z|)): finite for every finite z (z = 200, y = 0 gives 200)
      const T loss = std::max(ze, T(0)) - ze * y[e] + std::log1p(std::exp(-std::abs(ze)));
      const double row_weight = weights == nullptr ? 1.0 : static_cast<double>(weights[e / k]);
      chunk_loss += weights == nullptr ? static_cast<double>(loss) : row_weight * static_cast<double>(loss);
      const T pe = T(1) / (T(1) + std::exp(-ze));
      p[e] = pe;
      if (dz != nullptr) {
        // 1/(N K), or w_row / (K sum w)
        const T scale = weights == nullptr ? inv_count : static_cast<T>(row_weight * inv_weighted);
        dz[e] = (pe - y[e]) * scale;
      }
    }
    return chunk_loss;
  });
  if (!std::isinf(total)) {
    if (weights == nullptr) return total / static_cast<double>(count);
    return inv_weighted > 0.0 ? total * inv_weighted : 0.0;
  }
  // The sum overflowed double, yet the mean may be finite (float64 logits near 1e308 with y = 0 lose
  // about z each). Sum again with every term scaled by 2^-600 (exact: a power of two), then undo the
  // scaling after the division: the mean is inf only when it truly exceeds the largest double.
  constexpr double kDown = 0x1p-600, kUp = 0x1p600;
  const double scaled = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_loss = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const T ze = z[e];
      const T loss = std::max(ze, T(0)) - ze * y[e] + std::log1p(std::exp(-std::abs(ze)));
      const double row_weight = weights == nullptr ? 1.0 : static_cast<double>(weights[e / k]);
      chunk_loss += row_weight * (static_cast<double>(loss) * kDown);
    }
    return chunk_loss;
  });
  if (weights == nullptr) return scaled / static_cast<double>(count) * kUp;
  return inv_weighted > 0.0 ? scaled * inv_weighted * kUp : 0.0;
}

template <typename T>
double mean_squared_error(std::int64_t n, std::int64_t k, const T* z, const T* y, T* dz, const T* weights) {
  const std::int64_t count = n * k;
  const T two_over_count = static_cast<T>(2.0 / static_cast<double>(count));
  const double inv_weighted = inv_weighted_count(n, k, weights);  // 1 / (K sum w)
  const double total = detail::sum_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    double chunk_loss = 0.0;
    for (std::int64_t e = begin; e < end; ++e) {
      const T diff = z[e] - y[e];
      const double square = static_cast<double>(diff) * static_cast<double>(diff);
      const double row_weight = weights == nullptr ? 1.0 : static_cast<double>(weights[e / k]);
      chunk_loss += weights == nullptr ? square : row_weight * square;
      if (dz != nullptr) {
        // 2/(N K), or 2 w_row / (K sum w)
        const T scale = weights == nullptr ? two_over_count : static_cast<T>(2.0 * row_weight * inv_weighted);
        dz[e] = diff * scale;
      }
    }
    return chunk_loss;
  });
  if (!std::isinf(total)) {
    if (weights == nullptr) return total / static_cast<double>(count);
    return inv_weighted > 0.0 ? total * inv_weighted : 0.0;
  }
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
      const double row_weight = weights == nullptr ? 1.0 : static_cast<double>(weights[e / k]);
      chunk_loss += weights == nullptr ? diff * diff : row_weight * (diff * diff);
    }
    return chunk_loss;
  });
  if (weights == nullptr) return scaled / static_cast<double>(count) * kUp * kUp;
  return inv_weighted > 0.0 ? scaled * inv_weighted * kUp * kUp : 0.0;
}

template double softmax_cross_entropy<float>(std::int64_t, std::int64_t, const float*,
                                             const std::int64_t*, const float*, float*, float*, const float*);
template double softmax_cross_entropy<double>(std::int64_t, std::int64_t, const double*,
                                              const std::int64_t*, const double*, double*, double*,
                                              const double*);
template double sigmoid_binary_cross_entropy<float>(std::int64_t, std::int64_t, const float*,
                                                    const float*, float*, float*, const float*);
template double sigmoid_binary_cross_entropy<double>(std::int64_t, std::int64_t, const double*,
                                                     const double*, double*, double*, const double*);
template double mean_squared_error<float>(std::int64_t, std::int64_t, const float*, const float*, float*,
                                          const float*);
template double mean_squared_error<double>(std::int64_t, std::int64_t, const double*, const double*,
                                           double*, const double*);
template double weight_sum<float>(std::int64_t, const float*);
template double weight_sum<double>(std::int64_t, const double*);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
