// init.hpp: fans, gains, variance scaling and the named initialization schemes.
//
// Vocabulary: shape is the array's shape, n = prod(shape) its element count, receptive = the product
// of the kernel (spatial) dimensions.
//   layout kInOut: shape = (*receptive, fan_in_units, fan_out_units)  (Keras/JAX kernels, Dense.W)
//   layout kOutIn: shape = (fan_out_units, fan_in_units, *receptive)  (PyTorch weights)
//   fan_in = fan_in_units * receptive, fan_out = fan_out_units * receptive (needs ndim >= 2).
//
// Contract
// - plan_init(request) turns a scheme name and its parameters into an InitPlan: which fill, with the
//   bound / standard deviation already computed. Every formula of API.md's table lives here. It
//   validates everything (shape, fans, parameter ranges, names) and throws std::invalid_argument with
//   a message naming the argument, the value given and what is allowed; it writes nothing.
// - execute_plan(plan, out) fills out (C-contiguous, n elements) and never throws. Random kinds use
//   random.hpp's fills with the request's (seed, stream): element i depends only on (seed, stream, i,
//   params). kOrthogonal and kDeltaOrthogonal are not executed here: the caller draws a standard normal
//   matrix (fill_normal with mean 0, std 1), takes its QR factorization and scales by plan.gain (QR is
//   numpy's job, per DESIGN.md); execute_plan leaves out untouched for them.
// - Sparse (Martens 2010): out is (rows, cols); first every element is N(0, std^2) as fill_normal
//   gives it; then in each column c the num_zeros = ceil(sparsity * rows) rows with the smallest keys
//   are set to 0, where the key of element (r, c) is word r * cols + c of (seed, stream XOR 2^63)
//   (random.hpp's word numbering), ties broken by the smaller r. Hence a uniformly random set of zeros
//   per column, independent of the normal values.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

INITLAB_NAMESPACE_BEGIN

enum class Layout { kInOut, kOutIn };

struct Fans {
  double fan_in;
  double fan_out;
};

// shape has ndim >= 2 (throws std::invalid_argument otherwise).
Fans compute_fans(const std::vector<std::int64_t>& shape, Layout layout);

// The recommended gain of a nonlinearity (PyTorch's calculate_gain, extended):
//   linear, identity, conv1d/2d/3d, conv_transpose1d/2d/3d, sigmoid: 1;  tanh: 5/3;  relu: sqrt 2;
//   leaky_relu: sqrt(2 / (1 + slope^2)), slope = param or 0.01;  selu: 3/4;
//   elu (alpha = param or 1): 1 / sqrt(E[elu(z)^2]) in closed form,
//     E = 1/2 + alpha^2 (e^2 Phi(-2) - 2 e^(1/2) Phi(-1) + 1/2), z ~ N(0, 1);
//   gelu, softplus (beta 1), silu: 1 / sqrt(E[phi(z)^2]) (the variance-preserving gain, computed by
//   quadrature to 30 digits; initlab.init.estimate_gain reproduces them).
// An activation's gain is its registry entry's (kActivations in dense.hpp, at param or the entry's
// default_param); init.cpp adds only the names that are not activations (conv*, identity, silu).
// Throws std::invalid_argument for an unknown name (the message lists the valid ones).
double gain(const std::string& nonlinearity, std::optional<double> param);
std::vector<std::string> gain_names();

enum class FillKind {
  kConstant,         // every element = value
  kUniform,          // U(low, high)
  kNormal,           // N(mean, std^2)
  kTruncatedNormal,  // N(mean, std^2) restricted to [mean + a std, mean + b std]
  kIdentity,         // value on the diagonal of a 2-D array, 0 elsewhere
  kDirac,            // PyTorch's dirac_ with `groups`
  kSparse,           // see the contract above
  kOrthogonal,       // caller: QR of a normal matrix, times gain
  kDeltaOrthogonal,  // caller: orthogonal (in, out) matrix at the centre tap, zeros elsewhere
};

struct InitRequest {
  std::string scheme;  // canonical name (initlab.init.names())
  std::vector<std::int64_t> shape;
  Layout layout = Layout::kInOut;
  std::optional<double> fan_in, fan_out;     // explicit overrides (> 0)
  std::map<std::string, double> numbers;     // numeric parameters, defaults filled in by the caller
  std::map<std::string, std::string> words;  // mode, nonlinearity, distribution
  std::uint64_t seed = 0, stream = 0;
};

struct InitPlan {
  FillKind kind = FillKind::kConstant;
  double value = 0.0;              // kConstant, kIdentity
  double low = 0.0, high = 0.0;    // kUniform
  double mean = 0.0, std = 0.0;    // kNormal, kTruncatedNormal, kSparse
  double a = -2.0, b = 2.0;        // kTruncatedNormal, in units of std
  double gain = 1.0;               // kOrthogonal, kDeltaOrthogonal
  double sparsity = 0.0;           // kSparse
  std::int64_t groups = 1;         // kDirac
  std::optional<Fans> fans;        // the fans the formula used, if any
  std::vector<std::int64_t> shape;
  Layout layout = Layout::kInOut;
  std::uint64_t seed = 0, stream = 0;
};

InitPlan plan_init(const InitRequest& request);

// An upper bound of |x| over everything `plan` can draw, intermediates included (a normal draw is
// at most kMaxAbsNormal standard deviations from its mean: Box-Muller's sqrt(-2 log u) with
// u >= 2^-53 is 8.57). The caller refuses plans whose bound a dtype cannot hold.
constexpr double kMaxAbsNormal = 9.0;
double plan_largest_value(const InitPlan& plan);

// out has prod(plan.shape) elements.
template <class T>
void execute_plan(const InitPlan& plan, T* out);

// Naive twin of the sparse fill's zero selection (a full sort per column), for the tests.
template <class T>
void execute_plan_naive(const InitPlan& plan, T* out);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
