// activation_math.hpp (private): the scalar activation functions and derivatives of dense.hpp,
// one `if constexpr` branch per activation, and the dispatcher that turns the runtime enum into a
// compile-time constant so that every loop is specialized for one activation.
#pragma once
#include "initlab/isa.hpp"
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "initlab/dense.hpp"

INITLAB_NAMESPACE_BEGIN
namespace detail {

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSoftplusThreshold = 20.0;  // PyTorch's default: beta*z above it gives z
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/sqrt(2*pi), the normal density at 0

// ---- branch-free float32 exp and tanh -----------------------------------------------------------
// glibc's expf/tanhf are scalar calls, which keep every loop that uses them scalar (tanh alone cost
// more than the GEMM of a tanh layer; expm1f/erff/log1pf cost elu, selu, gelu and softplus 20-50x
// a vectorized loop). These are straight-line code that GCC vectorizes: Cephes single-precision
// polynomials (exp, tanh, log: about 2 ulp), Taylor expm1 near 0, Goldberg's log1p, and Numerical
// Recipes' erfcc for the normal cdf. The error bounds of each activation are in dense.hpp and
// asserted by tests/test_activation_accuracy.py. float64 keeps the C library's.

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

inline float float_from_bits(std::uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}
inline std::uint32_t bits_of_float(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

// expm1(x): |x| < 0.35: x + x^2 (1/2! + x/3! + ... + x^6/8!) (Taylor; the first omitted term is
// below 2^-27 relative); otherwise exp_f32(x) - 1 (the subtraction magnifies exp_f32's error by
// at most e^x/|e^x - 1| <= 3.4 there). -inf gives -1, NaN gives NaN.
inline float expm1_f32(float x) {
  float poly = 1.0f / 40320.0f;
  poly = poly * x + 1.0f / 5040.0f;
  poly = poly * x + 1.0f / 720.0f;
  poly = poly * x + 1.0f / 120.0f;
  poly = poly * x + 1.0f / 24.0f;
  poly = poly * x + 1.0f / 6.0f;
  poly = poly * x + 0.5f;
  const float small = x + x * (x * poly);
  const float large = exp_f32(x) - 1.0f;
  return std::fabs(x) < 0.35f ? small : large;
}

// log(x) for finite x >= FLT_MIN (Cephes logf, as random.cpp's): x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), log x = e log 2 + log1p(m - 1) by a degree-9 polynomial.
inline float log_f32(float x) {
  const std::uint32_t bits = bits_of_float(x);
  const std::uint32_t offset = bits - 0x3F3504F3u;  // the bits of float(sqrt(1/2))
  const std::int32_t e = static_cast<std::int32_t>(offset) >> 23;
  const float m = float_from_bits(bits - (offset & 0xFF800000u));
  const float f = m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = (y * f) * z;
  const float ef = static_cast<float>(e);
  y = y + (-2.12194440e-4f) * ef;
  y = y + (-0.5f) * z;
  return (f + y) + 0.693359375f * ef;
}

// log1p(u) for finite u >= 0: v = 1 + u rounded, log1p(u) = log(v) * u/(v - 1) (Goldberg 1991: the
// factor corrects the rounding of v), u itself when v == 1.
inline float log1p_f32(float u) {
  const float v = 1.0f + u;
  const float d = v - 1.0f;
  const float corrected = log_f32(v) * (u / (d == 0.0f ? 1.0f : d));
  return d == 0.0f ? u : corrected;
}

// exp(-z^2/2) without the error of rounding z^2: z = zh + zl with zh the top 12 significant bits,
// so zh^2 is exact and z^2 - zh^2 = zl (z + zh) is small; exp(-a - b) = exp(-a) exp(-b).
inline float exp_minus_half_square_f32(float z) {
  const float zh = float_from_bits(bits_of_float(z) & 0xFFFFF000u);
  const float zl = z - zh;  // exact
  const float hi = 0.5f * (zh * zh);
  const float lo = 0.5f * (zl * (z + zh));
  return exp_f32(-hi) * exp_f32(-lo);
}

// The standard normal cdf Phi(z) and density phi(z) in float32. Phi from erfc(x), x = |z|/sqrt(2),
// by the Chebyshev fit of Numerical Recipes' erfcc (Press et al., 2nd ed., 6.2; fractional error
// below 1.2e-7 for every x >= 0): erfc(x) = t exp(-x^2 - 1.26551223 + t P(t)), t = 1/(1 + x/2),
// with exp(-x^2) = exp(-z^2/2) from exp_minus_half_square_f32. Phi(z) = erfc(x)/2 for z < 0 (full
// relative accuracy in the tail, unlike 1 + erf), 1 - erfc(x)/2 otherwise.
inline void normal_cdf_pdf_f32(float z, float* cdf, float* pdf) {
  const float x = std::fabs(z) * static_cast<float>(kInvSqrt2);
  const float t = 1.0f / (1.0f + 0.5f * x);
  float poly = 0.17087277f;
  poly = poly * t - 0.82215223f;
  poly = poly * t + 1.48851587f;
  poly = poly * t - 1.13520398f;
  poly = poly * t + 0.27886807f;
  poly = poly * t - 0.18628806f;
  poly = poly * t + 0.09678418f;
  poly = poly * t + 0.37409196f;
  poly = poly * t + 1.00002368f;
  const float gauss = exp_minus_half_square_f32(z);
  const float half_erfc = 0.5f * (t * gauss * exp_f32(t * poly - 1.26551223f));
  // above z = 10, 1 - erfc/2 rounds to 1 (and z = +inf, whose exp(-z^2/2) is NaN here, gets 1)
  *cdf = z < 0.0f ? half_erfc : (z > 10.0f ? 1.0f : 1.0f - half_erfc);
  *pdf = static_cast<float>(kInvSqrt2Pi) * gauss;
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
    if constexpr (std::is_same_v<T, float>) return z > 0.0f ? z : param * expm1_f32(z);
    return z > T(0) ? z : param * std::expm1(z);
  } else if constexpr (kAct == Activation::kSelu) {
    if constexpr (std::is_same_v<T, float>) {
      return z > 0.0f ? float(kSeluScale) * z : float(kSeluScale * kSeluAlpha) * expm1_f32(z);
    }
    return z > T(0) ? T(kSeluScale) * z : T(kSeluScale * kSeluAlpha) * std::expm1(z);
  } else if constexpr (kAct == Activation::kGelu) {
    if constexpr (std::is_same_v<T, float>) {
      float cdf, pdf;
      normal_cdf_pdf_f32(z, &cdf, &pdf);
      return z * cdf;
    }
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
    if constexpr (std::is_same_v<T, float>) {
      return bz > float(kSoftplusThreshold) ? z : log1p_f32(exp_f32(bz)) / param;
    }
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
    if constexpr (std::is_same_v<T, float>) return z > 0.0f ? 1.0f : param * exp_f32(z);
    return z > T(0) ? T(1) : param * std::exp(z);
  } else if constexpr (kAct == Activation::kSelu) {
    if constexpr (std::is_same_v<T, float>) {
      return z > 0.0f ? float(kSeluScale) : float(kSeluScale * kSeluAlpha) * exp_f32(z);
    }
    return z > T(0) ? T(kSeluScale) : T(kSeluScale * kSeluAlpha) * std::exp(z);
  } else if constexpr (kAct == Activation::kGelu) {
    if constexpr (std::is_same_v<T, float>) {
      float cdf, pdf;
      normal_cdf_pdf_f32(z, &cdf, &pdf);
      return cdf + z * pdf;
    }
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
    if constexpr (std::is_same_v<T, float>) {
      const float e = exp_f32(bz);
      return bz > float(kSoftplusThreshold) ? 1.0f : e / (e + 1.0f);
    }
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
INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
