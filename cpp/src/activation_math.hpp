// activation_math.hpp (private): the scalar activation functions and derivatives of dense.hpp,
// one `if constexpr` branch per activation, and the dispatcher that turns the runtime enum into a
// compile-time constant so that every loop is specialized for one activation.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "initlab/dense.hpp"

namespace initlab {
namespace detail {

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSoftplusThreshold = 20.0;  // PyTorch's default: beta*z above it gives z
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/sqrt(2*pi), the normal density at 0

// ---- branch-free float32 exp and tanh -----------------------------------------------------------
// glibc's expf/tanhf are scalar calls, which keep every loop that uses them scalar (tanh alone cost
// more than the GEMM of a tanh layer). These are straight-line code that GCC vectorizes, with the
// Cephes single-precision polynomials (relative error about 2 ulp). float64 keeps the C library's.

// exp(x) = 2^n * exp(r), n = round(x*log2(e)), r = x - n*ln2 (ln2 split in two for an exact
// product), exp(r) by Cephes expf's degree-7 polynomial on |r| <= ln2/2. Results below 2^-125
// flush to 0; x > 88.7228 gives +inf; NaN gives NaN.
inline float exp_f32(float x) {
  constexpr float kHi = 88.7228394f, kLo = -87.3365448f;  // ln(FLT_MAX), ln(FLT_MIN)
  constexpr float kRound = 12582912.0f;                   // 1.5*2^23: x + kRound rounds x to an integer
  const float xc = x != x ? 0.0f : (x > kHi ? kHi : (x < kLo ? kLo : x));
  const float n = (xc * 1.44269504088896341f + kRound) - kRound;
  float r = xc - n * 0.693359375f;  // ln2 = 0.693359375 - 2.12194440e-4 (Cody-Waite)
  r = r + n * 2.12194440e-4f;
  float poly = 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float exp_r = poly * r * r + r + 1.0f;
  // 2^n as 2^(n-1) * 2 so that n = 128 (x near ln(FLT_MAX)) stays representable.
  const std::int32_t biased = static_cast<std::int32_t>(n) + 126;
  const std::uint32_t bits = static_cast<std::uint32_t>(biased < 0 ? 0 : biased) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float result = exp_r * scale * 2.0f;
  return x != x ? x : (x > kHi ? std::numeric_limits<float>::infinity() : result);
}

// tanh(x): Cephes tanhf. |x| < 0.625: x + x^3*P(x^2); otherwise sign(x)*(1 - 2/(exp(2|x|) + 1)).
inline float tanh_f32(float x) {
  const float ax = std::fabs(x);
  const float z = x * x;
  float poly = -5.70498872745e-3f;
  poly = poly * z + 2.06390887954e-2f;
  poly = poly * z - 5.37397155531e-2f;
  poly = poly * z + 1.33314422036e-1f;
  poly = poly * z - 3.33332819422e-1f;
  const float small = poly * z * x + x;
  const float large = 1.0f - 2.0f / (exp_f32(2.0f * ax) + 1.0f);
  return ax < 0.625f ? small : std::copysign(large, x);
}

template <Activation kAct, typename T>
inline T activate(T z, T param) {
  if constexpr (kAct == Activation::kLinear) {
    return z;
  } else if constexpr (kAct == Activation::kRelu) {
    return z < T(0) ? T(0) : z;
  } else if constexpr (kAct == Activation::kLeakyRelu) {
    return z > T(0) ? z : param * z;
  } else if constexpr (kAct == Activation::kElu) {
    return z > T(0) ? z : param * std::expm1(z);
  } else if constexpr (kAct == Activation::kSelu) {
    return z > T(0) ? T(kSeluScale) * z : T(kSeluScale * kSeluAlpha) * std::expm1(z);
  } else if constexpr (kAct == Activation::kGelu) {
    return z * T(0.5) * (T(1) + std::erf(z * T(kInvSqrt2)));
  } else if constexpr (kAct == Activation::kSigmoid) {
    if constexpr (std::is_same_v<T, float>) return 1.0f / (1.0f + exp_f32(-z));
    return T(1) / (T(1) + std::exp(-z));
  } else if constexpr (kAct == Activation::kTanh) {
    if constexpr (std::is_same_v<T, float>) return tanh_f32(z);
    return std::tanh(z);
  } else {
    static_assert(kAct == Activation::kSoftplus);
    const T bz = z * param;
    return bz > T(kSoftplusThreshold) ? z : std::log1p(std::exp(bz)) / param;
  }
}

// act'(z) given z and a = act(z); the derivative reads a only for sigmoid and tanh.
template <Activation kAct, typename T>
inline T derivative(T z, T a, T param) {
  if constexpr (kAct == Activation::kLinear) {
    return T(1);
  } else if constexpr (kAct == Activation::kRelu) {
    return z > T(0) ? T(1) : T(0);
  } else if constexpr (kAct == Activation::kLeakyRelu) {
    return z > T(0) ? T(1) : param;
  } else if constexpr (kAct == Activation::kElu) {
    return z > T(0) ? T(1) : param * std::exp(z);
  } else if constexpr (kAct == Activation::kSelu) {
    return z > T(0) ? T(kSeluScale) : T(kSeluScale * kSeluAlpha) * std::exp(z);
  } else if constexpr (kAct == Activation::kGelu) {
    // d/dz [z*Phi(z)] = Phi(z) + z*phi(z)
    const T cdf = T(0.5) * (T(1) + std::erf(z * T(kInvSqrt2)));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * z * z);
    return cdf + z * pdf;
  } else if constexpr (kAct == Activation::kSigmoid) {
    return a * (T(1) - a);
  } else if constexpr (kAct == Activation::kTanh) {
    return T(1) - a * a;
  } else {
    static_assert(kAct == Activation::kSoftplus);
    // d/dz log1p(exp(beta*z))/beta = sigmoid(beta*z) = e/(1 + e), e = exp(beta*z)
    const T bz = z * param;
    if (bz > T(kSoftplusThreshold)) return T(1);
    const T e = std::exp(bz);
    return e / (e + T(1));
  }
}

// f(std::integral_constant<Activation, act>{}) with act known at compile time.
template <typename F>
inline void dispatch_activation(Activation act, F&& f) {
  using A = Activation;
  switch (act) {
    case A::kLinear: return f(std::integral_constant<A, A::kLinear>{});
    case A::kRelu: return f(std::integral_constant<A, A::kRelu>{});
    case A::kLeakyRelu: return f(std::integral_constant<A, A::kLeakyRelu>{});
    case A::kElu: return f(std::integral_constant<A, A::kElu>{});
    case A::kSelu: return f(std::integral_constant<A, A::kSelu>{});
    case A::kGelu: return f(std::integral_constant<A, A::kGelu>{});
    case A::kSigmoid: return f(std::integral_constant<A, A::kSigmoid>{});
    case A::kTanh: return f(std::integral_constant<A, A::kTanh>{});
    case A::kSoftplus: return f(std::integral_constant<A, A::kSoftplus>{});
  }
}

}  // namespace detail
}  // namespace initlab
