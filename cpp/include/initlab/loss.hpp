// loss.hpp: the output losses, each fused with its output activation and its gradient.
//
// Vocabulary: N batch rows, K classes (or outputs). Z (logits), P (probabilities), dZ, Y are (N, K);
// labels are (N) int64 in [0, K) (the caller checks the range).
//
// softmax_cross_entropy: P := softmax(Z) row by row; loss := mean over rows of
//   sum_k Y_nk * (lse_n - z_nk), lse_n = m_n + log(sum_k exp(z_nk - m_n)), m_n = max_k z_nk
//   (log-sum-exp: no overflow for any finite logit). With integer labels Y is one-hot.
//   dZ := (P - Y)/N when dZ is not null.
// sigmoid_binary_cross_entropy: P := sigmoid(Z); loss := mean over all N*K elements of
//   max(z, 0) - z*y + log1p(exp(-|z|))  (logits form: z = 200, y = 0 gives 200, not inf);
//   dZ := (P - Y)/(N*K). Finite whenever that mean is (an overflowing sum is redone scaled, as MSE's).
// mean_squared_error: loss := mean over all N*K elements of (z - y)^2; dZ := 2*(Z - Y)/(N*K).
//   Finite whenever that mean is: a sum of squares that overflows is redone with scaled differences.
//
// Row weights (optional; null = every row weighs 1 and the formulas above hold bit for bit):
//   W is (N), finite and >= 0 (the caller checks). Each row's loss l_n is its term above before the
//   mean over rows (softmax: the row's cross-entropy; sigmoid and MSE: the mean over the row's K
//   columns), and loss := sum_n w_n l_n / sum_n w_n, as torch.nn.CrossEntropyLoss(weight=...) with
//   w_n = weight[label_n]. dZ is its gradient: row n of the unweighted dZ times N w_n / sum w
//   (softmax: w_n (P - Y)/sum w; sigmoid: w_n (P - Y)/(K sum w); MSE: 2 w_n (Z - Y)/(K sum w)).
//   sum w = 0 defines loss := 0 and dZ := 0 (P is still written): the caller makes no update.
//
// Reductions: per-row (or per-chunk) partial losses in double, combined in a fixed chunk order, so
// the loss is bitwise identical on any thread count. NaN/Inf in Z or Y give a non-finite loss (and
// P, dZ), never a trap. Outputs must not overlap inputs; dZ may be null.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>

INITLAB_NAMESPACE_BEGIN

// Z, P, dZ are (N, K); exactly one of labels (N) and targets (N, K) is non-null; weights (N) or null.
template <typename T>
double softmax_cross_entropy(std::int64_t n, std::int64_t k, const T* z, const std::int64_t* labels,
                             const T* targets, T* p, T* dz, const T* weights = nullptr);

// Z, Y, P, dZ are (N, K); weights (N) or null.
template <typename T>
double sigmoid_binary_cross_entropy(std::int64_t n, std::int64_t k, const T* z, const T* y, T* p, T* dz,
                                    const T* weights = nullptr);

// Z, Y, dZ are (N, K); weights (N) or null.
template <typename T>
double mean_squared_error(std::int64_t n, std::int64_t k, const T* z, const T* y, T* dz,
                          const T* weights = nullptr);

// sum_n w_n in double, in the fixed chunk order the weighted losses use (W is (N)).
template <typename T>
double weight_sum(std::int64_t n, const T* weights);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
