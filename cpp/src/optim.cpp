// optim.cpp: parameter updates, clipping and dropout (contracts and formulas in optim.hpp).
// Every array is a flat run of `count` elements.
#include "initlab/optim.hpp"

#include <algorithm>
#include <cmath>

#include "chunked.hpp"
#include "initlab/philox.hpp"

namespace initlab {

template <typename T>
void sgd_step(std::int64_t count, T* param, const T* grad, T* momentum_buffer, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov, bool first_step) {
  const T lr_t = static_cast<T>(lr), mu = static_cast<T>(momentum), wd = static_cast<T>(weight_decay);
  const T one_minus_dampening = static_cast<T>(1.0 - dampening);
  const bool has_momentum = momentum != 0.0;
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t e = begin; e < end; ++e) {
      T g = weight_decay != 0.0 ? grad[e] + wd * param[e] : grad[e];
      if (has_momentum) {
        const T buf = first_step ? g : mu * momentum_buffer[e] + one_minus_dampening * g;
        momentum_buffer[e] = buf;
        g = nesterov ? g + mu * buf : buf;
      }
      param[e] -= lr_t * g;
    }
  });
}

template <typename T>
void adam_step(std::int64_t count, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, double lr,
               double beta1, double beta2, double eps, double weight_decay, std::int64_t step,
               bool decoupled) {
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const T step_size = static_cast<T>(lr / bias_correction1);
  const T bias_correction2_sqrt = static_cast<T>(std::sqrt(bias_correction2));
  const T weight1 = static_cast<T>(1.0 - beta1);  // torch's lerp weight for exp_avg
  const T b2 = static_cast<T>(beta2), one_minus_b2 = static_cast<T>(1.0 - beta2);
  const T eps_t = static_cast<T>(eps), wd = static_cast<T>(weight_decay);
  const T decay = static_cast<T>(1.0 - lr * weight_decay);  // AdamW's decoupled shrink
  const bool l2 = weight_decay != 0.0 && !decoupled;
  const bool shrink = weight_decay != 0.0 && decoupled;
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t e = begin; e < end; ++e) {
      T w = param[e];
      if (shrink) w *= decay;
      const T g = l2 ? grad[e] + wd * w : grad[e];
      // torch.lerp(m, g, weight): m + weight*(g - m) for weight < 0.5, else g - (g - m)*(1 - weight)
      const T m = weight1 < T(0.5) ? exp_avg[e] + weight1 * (g - exp_avg[e])
                                   : g - (g - exp_avg[e]) * (T(1) - weight1);
      const T v = b2 * exp_avg_sq[e] + one_minus_b2 * g * g;
      exp_avg[e] = m;
      exp_avg_sq[e] = v;
      const T denom = std::sqrt(v) / bias_correction2_sqrt + eps_t;
      param[e] = w - step_size * (m / denom);
    }
  });
}

template <typename T>
void rmsprop_step(std::int64_t count, T* param, const T* grad, T* square_avg, T* momentum_buffer,
                  double lr, double alpha, double eps, double weight_decay, double momentum) {
  const T lr_t = static_cast<T>(lr), a = static_cast<T>(alpha), one_minus_a = static_cast<T>(1.0 - alpha);
  const T eps_t = static_cast<T>(eps), wd = static_cast<T>(weight_decay), mu = static_cast<T>(momentum);
  const bool has_momentum = momentum > 0.0;
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t e = begin; e < end; ++e) {
      const T g = weight_decay != 0.0 ? grad[e] + wd * param[e] : grad[e];
      const T v = a * square_avg[e] + one_minus_a * g * g;
      square_avg[e] = v;
      const T avg = std::sqrt(v) + eps_t;
      if (has_momentum) {
        const T buf = mu * momentum_buffer[e] + g / avg;
        momentum_buffer[e] = buf;
        param[e] -= lr_t * buf;
      } else {
        param[e] -= lr_t * (g / avg);
      }
    }
  });
}

template <typename T>
void clip_by_value(std::int64_t count, T* grad, T clip_value) {
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t e = begin; e < end; ++e) {
      const T g = grad[e];
      // comparisons are false for NaN, so NaN passes through unchanged
      grad[e] = g > clip_value ? clip_value : (g < -clip_value ? -clip_value : g);
    }
  });
}

template <typename T>
void dropout_forward(std::int64_t count, T* a, T* mask, double p, std::uint64_t seed,
                     std::uint32_t stream, std::uint32_t step) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  const Philox4x32Key key{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  constexpr double kTwoPowMinus32 = 1.0 / 4294967296.0;
  // Chunks are whole Philox blocks (kChunk is a multiple of 4), so every block is drawn once.
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t block = begin / 4; block * 4 < end; ++block) {
      const Philox4x32Counter words =
          philox4x32<10>({static_cast<std::uint32_t>(block), step, stream, kDropoutTag}, key);
      for (std::int64_t w = 0; w < 4; ++w) {
        const std::int64_t e = block * 4 + w;
        if (e >= end) break;
        const bool keep = (static_cast<double>(words[w]) + 0.5) * kTwoPowMinus32 >= p;
        const T m = keep ? keep_scale : T(0);
        mask[e] = m;
        a[e] *= m;
      }
    }
  });
}

template <typename T>
void dropout_backward(std::int64_t count, T* da, const T* mask) {
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t e = begin; e < end; ++e) da[e] *= mask[e];
  });
}

template void sgd_step<float>(std::int64_t, float*, const float*, float*, double, double, double,
                              double, bool, bool);
template void sgd_step<double>(std::int64_t, double*, const double*, double*, double, double, double,
                               double, bool, bool);
template void adam_step<float>(std::int64_t, float*, const float*, float*, float*, double, double,
                               double, double, double, std::int64_t, bool);
template void adam_step<double>(std::int64_t, double*, const double*, double*, double*, double,
                                double, double, double, double, std::int64_t, bool);
template void rmsprop_step<float>(std::int64_t, float*, const float*, float*, float*, double, double,
                                  double, double, double);
template void rmsprop_step<double>(std::int64_t, double*, const double*, double*, double*, double,
                                   double, double, double, double);
template void clip_by_value<float>(std::int64_t, float*, float);
template void clip_by_value<double>(std::int64_t, double*, double);
template void dropout_forward<float>(std::int64_t, float*, float*, double, std::uint64_t,
                                     std::uint32_t, std::uint32_t);
template void dropout_forward<double>(std::int64_t, double*, double*, double, std::uint64_t,
                                      std::uint32_t, std::uint32_t);
template void dropout_backward<float>(std::int64_t, float*, const float*);
template void dropout_backward<double>(std::int64_t, double*, const double*);

}  // namespace initlab
