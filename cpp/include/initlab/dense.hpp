// dense.hpp: activations and the dense-layer forward/backward pair.
//
// Vocabulary: N batch rows, I inputs, O outputs.
//   X is (N, I), W is (I, O), b is (O); Z, A are (N, O); dA, dZ are (N, O); dW is (I, O), db is (O),
//   dX is (N, I). All row-major and contiguous.
//
// Activations, as PyTorch defines them (param in brackets, with its default):
//   linear     a = z                                             a' = 1
//   relu       a = z < 0 ? 0 : z                                 a' = [z > 0]
//   leaky_relu a = z > 0 ? z : s*z                 [s = 0.01]    a' = z > 0 ? 1 : s
//   elu        a = z > 0 ? z : alpha*expm1(z)      [alpha = 1]   a' = z > 0 ? 1 : alpha*exp(z)
//   selu       a = scale*(z > 0 ? z : alpha*expm1(z)), alpha = 1.6732632423543772,
//              scale = 1.0507009873554805 (Klambauer et al. 2017)   a' = scale*(z > 0 ? 1 : alpha*exp(z))
//   gelu       a = z*Phi(z) = z/2*(1 + erf(z/sqrt2)) (exact)     a' = Phi(z) + z*phi(z)
//   sigmoid    a = 1/(1 + exp(-z))                               a' = a*(1 - a)
//   tanh       a = tanh(z)                                       a' = 1 - a^2
//   softplus   a = log1p(exp(beta*z))/beta, a = z when beta*z > 20 [beta = 1]
//                                                                a' = sigmoid(beta*z), 1 when beta*z > 20
// NaN in z gives NaN in a (relu included: NaN < 0 is false, so relu(NaN) = NaN, as in PyTorch).
// float32 uses the project's vectorizable approximations (cpp/src/activation_math.hpp), no C library
// call: sigmoid and tanh (Cephes exp/tanh, within 2 ulp; tanh saturates to +-1 exactly), and elu,
// selu, gelu, softplus with their derivatives. Measured against float64 on a dense grid of z in
// [-30, 30] (tests/test_activation_accuracy.py asserts the bounds), relative error in units of 2^-24:
//   elu, selu, elu', selu', softplus' (beta = 1) <= 4; gelu <= 10 (relative in the negative tail too,
//   where 1 + erf would round to 0); gelu' <= 10 relative to |Phi| + |z*phi| (it crosses 0 at
//   z = -0.7518); softplus <= 4 + |beta*z| (the rounding of beta*z itself, as with the C library).
// Values below about 1e-37 may flush to 0. float64 uses the C library.
//
// Forward:  Z := X*W + b; A := act(Z). Bias and activation run in the GEMM epilogue, tile by tile.
//           Cached for backward: Z and A (both are kept by the caller). A may be Z only for linear.
// Backward: dZ := dA * act'(.) written over dA (in place); act' reads A for sigmoid and tanh and Z
//           for the others. dW := X^T*dZ, db := column sums of dZ (each column summed over rows
//           0..N-1 in order, in double), dX := dZ*W^T (skipped when dX is null). dW, db, dX are
//           overwritten, never accumulated. Outputs must not overlap inputs.
#pragma once
#include "initlab/isa.hpp"
#include <cmath>
#include <cstdint>
#include <string>

#include "initlab/random.hpp"  // normal_cdf (elu's gain)

INITLAB_NAMESPACE_BEGIN

enum class Activation { kLinear, kRelu, kLeakyRelu, kElu, kSelu, kGelu, kSigmoid, kTanh, kSoftplus };

struct ActivationInfo {
  const char* name;
  Activation id;
  double default_param;     // the PyTorch default of the one parameter (0 where there is none)
  const char* param_name;   // "" where the activation takes no parameter
  bool derivative_from_output;    // act' is computed from A (sigmoid, tanh), else from Z
  bool saturates;                 // bounded on both sides: act' -> 0 at both tails (tanh, sigmoid)
  bool zero_derivative_interval;  // act' is exactly 0 on an interval (relu: z < 0), so units can die
  // The recommended init gain (PyTorch's calculate_gain, extended) at the parameter `param` (the
  // caller passes default_param when none is given): init.hpp's gain() reads it from here.
  double (*gain)(double param);
};

// The gains of the registry's entries: PyTorch's calculate_gain values where it has one, otherwise
// the variance-preserving gain 1/sqrt(E[act(z)^2]), z ~ N(0, 1) (initlab.init.estimate_gain).
namespace activation_gain {
constexpr double one(double) { return 1.0; }  // linear, sigmoid (PyTorch's choice)
constexpr double tanh(double) { return 5.0 / 3.0; }
inline double relu(double) { return std::sqrt(2.0); }
inline double leaky_relu(double slope) {  // sqrt(2 / (1 + slope^2))
  // Past 1e150, slope^2 overflows to inf and the gain would read 0; there 1 + slope^2 == slope^2
  // in double, so sqrt(2) / |slope| is the same formula without the overflow.
  if (std::abs(slope) > 1e150) return std::sqrt(2.0) / std::abs(slope);
  return std::sqrt(2.0 / (1.0 + slope * slope));
}
constexpr double selu(double) { return 3.0 / 4.0; }  // PyTorch's choice (self-normalizing nets)
// 1 / sqrt(E[elu(z)^2]) in closed form: E = 1/2 + alpha^2 (e^2 Phi(-2) - 2 e^(1/2) Phi(-1) + 1/2).
inline double elu(double alpha) {
  const double e2_phi_m2 = std::exp(2.0) * normal_cdf(-2.0);  // E[e^{2z}; z < 0]
  const double e_phi_m1 = std::exp(0.5) * normal_cdf(-1.0);   // E[e^{z}; z < 0]
  const double negative_part = e2_phi_m2 - 2.0 * e_phi_m1 + 0.5;  // E[(e^z - 1)^2; z < 0]
  if (std::abs(alpha) > 1e150) return 1.0 / (std::abs(alpha) * std::sqrt(negative_part));  // as leaky_relu
  const double second_moment = 0.5 + alpha * alpha * negative_part;
  return 1.0 / std::sqrt(second_moment);
}
// 1 / sqrt(E[act(z)^2]) by 30-digit quadrature (mpmath), at the default parameter.
constexpr double gelu(double) { return 1.53353044119553523376774550539; }
constexpr double softplus(double) { return 1.04186683553530170804396059499; }  // beta = 1
}  // namespace activation_gain

// The registry: every activation, in the order above, defined once. The kernels, the bindings
// (_core.activation_registry), init's gain(), Python's ACTIVATIONS, the CLI help, the diagnosis and
// the tests all read it. Adding an activation: its enum value and one entry here (its gain in
// activation_gain above), its math in cpp/src/activation_math.hpp (activate/derivative), its oracle
// in tests/reference.py.
inline constexpr ActivationInfo kActivations[] = {
    // name       id                          default param_name      from_A saturates zero_on_interval gain
    {"linear", Activation::kLinear, 0.0, "", false, false, false, activation_gain::one},
    {"relu", Activation::kRelu, 0.0, "", false, false, true, activation_gain::relu},
    {"leaky_relu", Activation::kLeakyRelu, 0.01, "negative_slope", false, false, false, activation_gain::leaky_relu},
    {"elu", Activation::kElu, 1.0, "alpha", false, false, false, activation_gain::elu},
    {"selu", Activation::kSelu, 0.0, "", false, false, false, activation_gain::selu},
    {"gelu", Activation::kGelu, 0.0, "", false, false, false, activation_gain::gelu},
    {"sigmoid", Activation::kSigmoid, 0.0, "", true, true, false, activation_gain::one},
    {"tanh", Activation::kTanh, 0.0, "", true, true, false, activation_gain::tanh},
    {"softplus", Activation::kSoftplus, 1.0, "beta", false, false, false, activation_gain::softplus},
};

// The registry entry of `act` (every enum value has one).
constexpr const ActivationInfo& activation_info(Activation act) {
  for (const ActivationInfo& info : kActivations) {
    if (info.id == act) return info;
  }
  return kActivations[0];
}

// Looks a name up in kActivations; nullptr when unknown.
const ActivationInfo* find_activation(const std::string& name);
// True when act' is computed from A (sigmoid, tanh); false when from Z.
constexpr bool derivative_uses_output(Activation act) { return activation_info(act).derivative_from_output; }

// Z is (N, O), A is (N, O); A := act(Z) elementwise. A may be Z.
template <typename T>
void activation_forward(std::int64_t count, const T* z, T* a, Activation act, T param);

// dA, Z, A are (N, O) flattened to `count`; dA := dA * act'(Z or A) in place.
template <typename T>
void activation_backward(std::int64_t count, T* da, const T* z, const T* a, Activation act, T param);

// X is (N, I), W is (I, O), b is (O); Z, A are (N, O).
template <typename T>
void dense_forward(std::int64_t n, std::int64_t i, std::int64_t o, const T* x, const T* w, const T* b,
                   T* z, T* a, Activation act, T param);

// dA is (N, O) in, overwritten with dZ; X is (N, I), W is (I, O), Z, A are (N, O);
// dW is (I, O), db is (O), dX is (N, I) or null.
template <typename T>
void dense_backward(std::int64_t n, std::int64_t i, std::int64_t o, T* da, const T* x, const T* w,
                    const T* z, const T* a, Activation act, T param, T* dw, T* db, T* dx);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
