// activation_math.hpp (private): the scalar activation functions and derivatives of dense.hpp,
// one `if constexpr` branch per activation, and the dispatcher that turns the runtime enum into a
// compile-time constant so that every loop is specialized for one activation.
#pragma once
#include <cmath>
#include <type_traits>

#include "initlab/dense.hpp"

namespace initlab {
namespace detail {

constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSoftplusThreshold = 20.0;  // PyTorch's default: beta*z above it gives z
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/sqrt(2*pi), the normal density at 0

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
    return T(1) / (T(1) + std::exp(-z));
  } else if constexpr (kAct == Activation::kTanh) {
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
