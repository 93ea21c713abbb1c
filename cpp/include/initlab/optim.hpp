// optim.hpp: parameter updates, gradient clipping and dropout masks, elementwise over flat arrays.
//
// Vocabulary: every array here is a flat run of `count` elements (a W or a b); param, grad and the
// state buffers have the same length. Updates happen in place; no array may overlap another.
// Each update is exactly the per-element arithmetic of torch.optim (single-tensor path), with the
// scalar factors (bias corrections, step sizes) computed in double and rounded to T once:
//   SGD (torch.optim.SGD):  g = grad + wd*param
//                           buf = first_step ? g : momentum*buf + (1 - dampening)*g   (momentum != 0)
//                           g = nesterov ? g + momentum*buf : buf                     (momentum != 0)
//                           param -= lr*g
//   Adam / AdamW (torch.optim.Adam, AdamW), t = step (1-based):
//                           Adam: g = grad + wd*param;  AdamW: param *= 1 - lr*wd, g = grad
//                           m = m + (1 - beta1)*(g - m)          (torch's lerp)
//                           v = beta2*v + (1 - beta2)*g*g
//                           param -= (lr/(1 - beta1^t)) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)
//   RMSprop (torch.optim.RMSprop, centered=False):
//                           g = grad + wd*param; v = alpha*v + (1 - alpha)*g*g; d = sqrt(v) + eps
//                           momentum > 0: buf = momentum*buf + g/d; param -= lr*buf
//                           else:         param -= lr*g/d
// Clipping: clip_by_value clamps to [-c, c] (NaN stays NaN). Clipping by global norm is composed by
// the caller: sqrt(sum of sum_of_squares over all gradients), then scale (stats.hpp) each by
// clip_norm/(norm + 1e-6) when that is < 1, as torch.nn.utils.clip_grad_norm_.
//
// Dropout (inverted): mask := keep ? 1/(1-p) : 0, A := A*mask; backward dA := dA*mask.
// keep is drawn from Philox4x32-10 (philox.hpp) with
//   key     = (seed low word, seed high word)
//   counter = (element index / 4, step, stream, kDropoutTag)
// and element e uses word e % 4 of its block: keep iff (word + 0.5) * 2^-32 >= p. The constant tag in
// the last counter word keeps dropout's counters apart from the initializers' (whose last word is the
// high half of a stream, 0 for any stream below 2^32). step and stream must be below 2^32 and
// count below 2^34. The mask depends only on (seed, stream, step, element index).
#pragma once
#include <cstdint>

namespace initlab {

constexpr std::uint32_t kDropoutTag = 0x44524F50u;  // "DROP"

// param, grad, momentum_buffer (null when momentum == 0) are (count).
template <typename T>
void sgd_step(std::int64_t count, T* param, const T* grad, T* momentum_buffer, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov, bool first_step);

// param, grad, exp_avg, exp_avg_sq are (count); step >= 1.
template <typename T>
void adam_step(std::int64_t count, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, double lr,
               double beta1, double beta2, double eps, double weight_decay, std::int64_t step,
               bool decoupled);

// param, grad, square_avg, momentum_buffer (null when momentum == 0) are (count).
template <typename T>
void rmsprop_step(std::int64_t count, T* param, const T* grad, T* square_avg, T* momentum_buffer,
                  double lr, double alpha, double eps, double weight_decay, double momentum);

// grad is (count); grad := clamp(grad, -clip_value, clip_value).
template <typename T>
void clip_by_value(std::int64_t count, T* grad, T clip_value);

// a, mask are (count); mask := keep ? 1/(1-p) : 0; a := a*mask. 0 <= p < 1.
template <typename T>
void dropout_forward(std::int64_t count, T* a, T* mask, double p, std::uint64_t seed,
                     std::uint32_t stream, std::uint32_t step);

// da, mask are (count); da := da*mask.
template <typename T>
void dropout_backward(std::int64_t count, T* da, const T* mask);

}  // namespace initlab
