// init.cpp: the scheme formulas (plan_init) and their execution (execute_plan). See init.hpp.
#include "initlab/init.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "initlab/dense.hpp"
#include "initlab/parallel.hpp"
#include "initlab/random.hpp"

INITLAB_NAMESPACE_BEGIN
namespace {

// Keras' constant: the standard deviation of N(0, 1) truncated to [-2, 2], so that dividing by it
// restores the requested variance after truncation.
constexpr double kTruncatedStdOf2Sigma = 0.87962566103423978;

std::string format_number(double x) {
  std::ostringstream s;
  s.precision(17);
  s << x;
  return s.str();
}

std::string format_shape(const std::vector<std::int64_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (std::size_t d = 0; d < shape.size(); ++d) s << (d ? ", " : "") << shape[d];
  s << (shape.size() == 1 ? ",)" : ")");
  return s.str();
}

[[noreturn]] void fail(const std::string& scheme, const std::string& message) {
  throw std::invalid_argument(scheme + ": " + message);
}

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

struct Params {
  const InitRequest& request;
  double number(const std::string& name) const {
    auto it = request.numbers.find(name);
    if (it == request.numbers.end()) fail(request.scheme, "missing parameter " + name);
    if (!std::isfinite(it->second)) {
      fail(request.scheme, name + " must be a finite number, got " + format_number(it->second));
    }
    return it->second;
  }
  std::optional<double> optional_number(const std::string& name) const {
    if (request.numbers.count(name) == 0) return std::nullopt;
    return number(name);
  }
  std::string word(const std::string& name) const {
    auto it = request.words.find(name);
    if (it == request.words.end()) fail(request.scheme, "missing parameter " + name);
    return it->second;
  }
};

// The fans a formula uses: the explicit overrides where given, else compute_fans(shape). needed
// lists which fans the formula reads, so that a bias (1-D) with fan_in= alone works for lecun_*.
Fans resolve_fans(const InitRequest& request, bool need_fan_in, bool need_fan_out) {
  for (const auto& [name, value] : {std::pair{"fan_in", request.fan_in},
                                    std::pair{"fan_out", request.fan_out}}) {
    if (value && !(std::isfinite(*value) && *value > 0)) {
      fail(request.scheme, std::string(name) + " must be a finite number > 0, got " +
                               format_number(*value));
    }
  }
  const bool have_in = request.fan_in.has_value() || !need_fan_in;
  const bool have_out = request.fan_out.has_value() || !need_fan_out;
  Fans fans{0.0, 0.0};
  if (!(have_in && have_out)) {
    if (request.shape.size() < 2) {
      std::string missing = !have_in && !have_out ? "fan_in= and fan_out=" : !have_in ? "fan_in=" : "fan_out=";
      fail(request.scheme, "needs the fans of a weight: shape " + format_shape(request.shape) +
                               " has fewer than 2 dimensions; pass " + missing + " explicitly");
    }
    fans = compute_fans(request.shape, request.layout);
  }
  if (request.fan_in) fans.fan_in = *request.fan_in;
  if (request.fan_out) fans.fan_out = *request.fan_out;
  return fans;
}

enum class FanMode { kFanIn, kFanOut, kFanAvg, kFanGeoAvg };

FanMode parse_mode(const std::string& scheme, const std::string& mode, bool allow_averages) {
  if (mode == "fan_in") return FanMode::kFanIn;
  if (mode == "fan_out") return FanMode::kFanOut;
  if (allow_averages && mode == "fan_avg") return FanMode::kFanAvg;
  if (allow_averages && mode == "fan_geo_avg") return FanMode::kFanGeoAvg;
  fail(scheme, "mode must be one of " +
                   std::string(allow_averages ? "'fan_in', 'fan_out', 'fan_avg', 'fan_geo_avg'"
                                              : "'fan_in', 'fan_out'") +
                   ", got '" + mode + "'");
}

double select_fan(Fans fans, FanMode mode) {
  switch (mode) {
    case FanMode::kFanIn: return fans.fan_in;
    case FanMode::kFanOut: return fans.fan_out;
    case FanMode::kFanAvg: return (fans.fan_in + fans.fan_out) / 2.0;
    case FanMode::kFanGeoAvg: return std::sqrt(fans.fan_in * fans.fan_out);
  }
  return fans.fan_in;
}

bool mode_needs_fan_in(FanMode mode) { return mode != FanMode::kFanOut; }
bool mode_needs_fan_out(FanMode mode) { return mode != FanMode::kFanIn; }

InitPlan uniform_plan(double bound) {
  InitPlan plan;
  plan.kind = FillKind::kUniform;
  plan.low = -bound;
  plan.high = bound;
  return plan;
}

InitPlan normal_plan(double mean, double std) {
  InitPlan plan;
  plan.kind = FillKind::kNormal;
  plan.mean = mean;
  plan.std = std;
  return plan;
}

InitPlan truncated_normal_plan(double mean, double std, double a, double b) {
  InitPlan plan;
  plan.kind = FillKind::kTruncatedNormal;
  plan.mean = mean;
  plan.std = std;
  plan.a = a;
  plan.b = b;
  return plan;
}

void require_ndim(const InitRequest& r, std::size_t lo, std::size_t hi) {
  if (r.shape.size() < lo || r.shape.size() > hi) {
    std::string allowed = lo == hi ? std::to_string(lo) + "-D"
                                   : std::to_string(lo) + "-D to " + std::to_string(hi) + "-D";
    if (hi > 64) allowed = "at least " + std::to_string(lo) + "-D";
    fail(r.scheme, "shape must be " + allowed + ", got " + format_shape(r.shape));
  }
}

void require_nonnegative(const InitRequest& r, const std::string& name, double value) {
  if (value < 0) fail(r.scheme, name + " must be >= 0, got " + format_number(value));
}

// variance_scaling's core, shared by the named schemes: variance = scale / fan.
InitPlan variance_scaling_plan(const InitRequest& r, double scale, FanMode mode,
                               const std::string& distribution) {
  const Fans fans = resolve_fans(r, mode_needs_fan_in(mode), mode_needs_fan_out(mode));
  // Keras: scale / max(1, fan), so a zero fan (an empty weight) gives no division by zero.
  const double variance = scale / std::max(1.0, select_fan(fans, mode));
  InitPlan plan;
  if (distribution == "truncated_normal") {
    plan = truncated_normal_plan(0.0, std::sqrt(variance) / kTruncatedStdOf2Sigma, -2.0, 2.0);
  } else if (distribution == "normal" || distribution == "untruncated_normal") {
    plan = normal_plan(0.0, std::sqrt(variance));
  } else if (distribution == "uniform") {
    plan = uniform_plan(std::sqrt(3.0 * variance));
  } else {
    fail(r.scheme, "distribution must be one of 'normal', 'truncated_normal', 'uniform', got '" +
                       distribution + "'");
  }
  plan.fans = fans;
  return plan;
}

// he_* / lecun_*: std = gain / sqrt(fan), bound = sqrt(3) std, as torch.nn.init computes them.
InitPlan scaled_plan(const InitRequest& r, double gain_value, FanMode mode, bool uniform) {
  const Fans fans = resolve_fans(r, mode_needs_fan_in(mode), mode_needs_fan_out(mode));
  const double fan = select_fan(fans, mode);
  const double std = fan > 0 ? gain_value / std::sqrt(fan) : 0.0;  // fan 0: an empty weight
  InitPlan plan = uniform ? uniform_plan(std::sqrt(3.0) * std) : normal_plan(0.0, std);
  plan.fans = fans;
  return plan;
}

// xavier_*: std = gain sqrt(2 / (fan_in + fan_out)), bound = sqrt(3) std (torch.nn.init's order).
InitPlan xavier_plan(const InitRequest& r, double gain_value, bool uniform) {
  const Fans fans = resolve_fans(r, true, true);
  const double fan_sum = fans.fan_in + fans.fan_out;
  const double std = fan_sum > 0 ? gain_value * std::sqrt(2.0 / fan_sum) : 0.0;
  InitPlan plan = uniform ? uniform_plan(std::sqrt(3.0) * std) : normal_plan(0.0, std);
  plan.fans = fans;
  return plan;
}

}  // namespace

Fans compute_fans(const std::vector<std::int64_t>& shape, Layout layout) {
  const std::size_t ndim = shape.size();
  if (ndim < 2) {
    throw std::invalid_argument("fans: shape must have at least 2 dimensions, got " +
                                format_shape(shape));
  }
  double receptive = 1.0;
  Fans fans{};
  if (layout == Layout::kInOut) {  // (*receptive, fan_in_units, fan_out_units)
    for (std::size_t d = 0; d + 2 < ndim; ++d) receptive *= static_cast<double>(shape[d]);
    fans = {static_cast<double>(shape[ndim - 2]), static_cast<double>(shape[ndim - 1])};
  } else {  // (fan_out_units, fan_in_units, *receptive)
    for (std::size_t d = 2; d < ndim; ++d) receptive *= static_cast<double>(shape[d]);
    fans = {static_cast<double>(shape[1]), static_cast<double>(shape[0])};
  }
  return {fans.fan_in * receptive, fans.fan_out * receptive};
}

double plan_largest_value(const InitPlan& plan) {
  switch (plan.kind) {
    case FillKind::kConstant:
    case FillKind::kIdentity:
      return std::abs(plan.value);
    case FillKind::kDirac:
      return 1.0;
    case FillKind::kUniform:
      return std::abs(plan.low) + std::abs(plan.high);  // also bounds high - low
    case FillKind::kNormal:
    case FillKind::kTruncatedNormal:
    case FillKind::kSparse:
      // abs: a negative gain gives a negative std (xavier_normal(gain=-1e38) drew inf in float32)
      return std::abs(plan.mean) + kMaxAbsNormal * std::abs(plan.std);
    case FillKind::kOrthogonal:
    case FillKind::kDeltaOrthogonal:
      return std::abs(plan.gain);  // entries of an orthonormal matrix are <= 1
  }
  return 0.0;
}

namespace {
// calculate_gain's names that are not activations of a network (those are kActivations, dense.hpp,
// each with its own gain): PyTorch's linear-like layer names, and silu.
struct GainOnlyName {
  const char* name;
  double gain;
};
constexpr GainOnlyName kGainOnlyNames[] = {
    {"conv1d", 1.0}, {"conv2d", 1.0}, {"conv3d", 1.0}, {"conv_transpose1d", 1.0}, {"conv_transpose2d", 1.0},
    {"conv_transpose3d", 1.0}, {"identity", 1.0},
    {"silu", 1.67653247033109115860425754366},  // 1 / sqrt(E[silu(z)^2]), 30-digit quadrature (mpmath)
};
}  // namespace

std::vector<std::string> gain_names() {
  std::vector<std::string> names;
  for (const ActivationInfo& info : kActivations) names.emplace_back(info.name);
  for (const GainOnlyName& entry : kGainOnlyNames) names.emplace_back(entry.name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());  // an activation named here too
  return names;
}

double gain(const std::string& nonlinearity, std::optional<double> param) {
  const ActivationInfo* activation = find_activation(nonlinearity);
  const GainOnlyName* other = nullptr;  // read only when the name is not an activation's
  for (const GainOnlyName& entry : kGainOnlyNames) {
    if (nonlinearity == entry.name) other = &entry;
  }
  if (activation == nullptr && other == nullptr) {
    std::string valid;
    for (const auto& name : gain_names()) valid += (valid.empty() ? "" : ", ") + name;
    throw std::invalid_argument("gain: unknown nonlinearity '" + nonlinearity +
                                "'; valid: " + valid);
  }
  if (param && !std::isfinite(*param)) {
    throw std::invalid_argument("gain: param must be a finite number, got " +
                                format_number(*param));
  }
  if (activation != nullptr) return activation->gain(param.value_or(activation->default_param));
  return other->gain;
}

InitPlan plan_init(const InitRequest& r) {
  for (std::int64_t d : r.shape) {
    if (d < 0) fail(r.scheme, "shape entries must be >= 0, got " + format_shape(r.shape));
  }
  const Params p{r};
  const std::string& s = r.scheme;
  InitPlan plan;
  if (s == "zeros" || s == "ones" || s == "constant") {
    plan.kind = FillKind::kConstant;
    plan.value = s == "zeros" ? 0.0 : s == "ones" ? 1.0 : p.number("value");
  } else if (s == "uniform") {
    const double low = p.number("low"), high = p.number("high");
    if (low > high) {
      fail(s, "low must be <= high, got low=" + format_number(low) + ", high=" + format_number(high));
    }
    plan.kind = FillKind::kUniform;
    plan.low = low;
    plan.high = high;
  } else if (s == "normal") {
    require_nonnegative(r, "std", p.number("std"));
    plan = normal_plan(p.number("mean"), p.number("std"));
  } else if (s == "truncated_normal") {
    require_nonnegative(r, "std", p.number("std"));
    const double a = p.number("a"), b = p.number("b");
    if (!(a < b)) {
      fail(s, "a must be < b (bounds in units of std), got a=" + format_number(a) +
                  ", b=" + format_number(b));
    }
    // The inverse CDF needs Phi(b) - Phi(a) > 0 in double (|a|, |b| up to about 37).
    const double mass = a >= 0 ? normal_cdf(-a) - normal_cdf(-b) : normal_cdf(b) - normal_cdf(a);
    if (!(mass > 0)) {
      fail(s, "the interval [a, b] = [" + format_number(a) + ", " + format_number(b) +
                  "] (in units of std) has no probability mass representable in double");
    }
    plan = truncated_normal_plan(p.number("mean"), p.number("std"), a, b);
  } else if (s == "small_random") {
    require_nonnegative(r, "scale", p.number("scale"));
    plan = normal_plan(0.0, p.number("scale"));
  } else if (s == "xavier_uniform" || s == "xavier_normal") {
    // Glorot & Bengio 2010: Var = gain^2 * 2 / (fan_in + fan_out).
    plan = xavier_plan(r, p.number("gain"), s == "xavier_uniform");
  } else if (s == "he_uniform" || s == "he_normal") {
    // He et al. 2015: Var = gain^2 / fan, gain from the nonlinearity and its negative slope a.
    const FanMode mode = parse_mode(s, p.word("mode"), false);
    const std::string nonlinearity = p.word("nonlinearity");
    double g = 0.0;
    try {
      g = gain(nonlinearity, p.number("a"));
    } catch (const std::invalid_argument& error) {
      fail(s, std::string("nonlinearity: ") + error.what());
    }
    plan = scaled_plan(r, g, mode, s == "he_uniform");
  } else if (s == "lecun_uniform" || s == "lecun_normal") {
    // LeCun et al. 1998: Var = 1 / fan_in.
    plan = scaled_plan(r, 1.0, FanMode::kFanIn, s == "lecun_uniform");
  } else if (s == "torch_default") {
    // PyTorch's nn.Linear default, kaiming_uniform_(a=sqrt 5): bound = 1 / sqrt(fan_in).
    const Fans fans = resolve_fans(r, true, false);
    plan = uniform_plan(fans.fan_in > 0 ? 1.0 / std::sqrt(fans.fan_in) : 0.0);
    plan.fans = fans;
  } else if (s == "variance_scaling") {
    const double scale = p.number("scale");
    if (!(scale > 0)) fail(s, "scale must be > 0, got " + format_number(scale));
    plan = variance_scaling_plan(r, scale, parse_mode(s, p.word("mode"), true),
                                 p.word("distribution"));
  } else if (s == "orthogonal") {
    require_ndim(r, 2, 1000);
    plan.kind = FillKind::kOrthogonal;
    plan.gain = p.number("gain");
  } else if (s == "identity") {
    require_ndim(r, 2, 2);
    plan.kind = FillKind::kIdentity;
    plan.value = p.number("gain");
  } else if (s == "dirac") {
    require_ndim(r, 3, 5);
    const double groups = p.number("groups");
    const std::int64_t out_channels = r.layout == Layout::kOutIn ? r.shape[0] : r.shape.back();
    // The upper bound keeps the cast to int64 below defined (1e300 would be undefined behaviour).
    if (!(groups >= 1 && groups <= 0x1p53 && groups == std::floor(groups))) {
      fail(s, "groups must be an integer in [1, 2^53], got " + format_number(groups));
    }
    if (out_channels % static_cast<std::int64_t>(groups) != 0) {
      fail(s, "groups must divide the output channels (" + std::to_string(out_channels) +
                  "), got groups=" + format_number(groups));
    }
    plan.kind = FillKind::kDirac;
    plan.groups = static_cast<std::int64_t>(groups);
  } else if (s == "delta_orthogonal") {
    require_ndim(r, 3, 5);
    const std::size_t nd = r.shape.size();
    const std::int64_t in_channels = r.layout == Layout::kOutIn ? r.shape[1] : r.shape[nd - 2];
    const std::int64_t out_channels = r.layout == Layout::kOutIn ? r.shape[0] : r.shape[nd - 1];
    if (in_channels > out_channels) {
      fail(s, "needs in_channels <= out_channels, got " + std::to_string(in_channels) + " > " +
                  std::to_string(out_channels) + " for shape " + format_shape(r.shape));
    }
    plan.kind = FillKind::kDeltaOrthogonal;
    plan.gain = p.number("gain");
  } else if (s == "sparse") {
    require_ndim(r, 2, 2);
    const double sparsity = p.number("sparsity");
    if (!(sparsity >= 0 && sparsity < 1)) {
      fail(s, "sparsity must be in [0, 1), got " + format_number(sparsity));
    }
    require_nonnegative(r, "std", p.number("std"));
    plan.kind = FillKind::kSparse;
    plan.sparsity = sparsity;
    plan.std = p.number("std");
  } else {
    fail(s, "unknown scheme");
  }
  plan.shape = r.shape;
  plan.layout = r.layout;
  plan.seed = r.seed;
  plan.stream = r.stream;
  return plan;
}

namespace {

// Dirac and identity: zeros, then ones (value) at the chosen positions.
template <class T>
void fill_constant(T* out, std::int64_t n, T value) {
  const std::int64_t n_chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (n_chunks > 1)
  for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk) {
    std::fill(out + chunk * kChunk, out + std::min(n, (chunk + 1) * kChunk), value);
  }
}

template <class T>
void fill_dirac(const InitPlan& plan, T* out) {
  const auto& shape = plan.shape;
  const std::size_t nd = shape.size();
  fill_constant(out, element_count(shape), T(0));
  // Strides of the C-contiguous array; the centre tap of each spatial dimension is size / 2.
  std::vector<std::int64_t> stride(nd, 1);
  for (std::size_t d = nd - 1; d-- > 0;) stride[d] = stride[d + 1] * shape[d + 1];
  const bool out_in = plan.layout == Layout::kOutIn;
  const std::size_t out_axis = out_in ? 0 : nd - 1, in_axis = out_in ? 1 : nd - 2;
  std::int64_t centre = 0;
  for (std::size_t d = 0; d < nd; ++d) {
    if (d != out_axis && d != in_axis) centre += (shape[d] / 2) * stride[d];
  }
  const std::int64_t out_per_group = shape[out_axis] / plan.groups;
  const std::int64_t diagonal = std::min(out_per_group, shape[in_axis]);
  for (std::int64_t g = 0; g < plan.groups; ++g) {
    for (std::int64_t k = 0; k < diagonal; ++k) {
      out[(g * out_per_group + k) * stride[out_axis] + k * stride[in_axis] + centre] = T(1);
    }
  }
}

template <class T>
void fill_identity(const InitPlan& plan, T* out) {
  const std::int64_t rows = plan.shape[0], cols = plan.shape[1];
  fill_constant(out, rows * cols, T(0));
  for (std::int64_t k = 0; k < std::min(rows, cols); ++k) out[k * cols + k] = T(plan.value);
}

constexpr std::uint64_t kSparseKeyStream = std::uint64_t{1} << 63;

// Sparse: the zero rows of column c are the num_zeros smallest (key, row) pairs.
// out is (rows, cols); keys is scratch of rows entries.
template <class T>
void zero_sparse_column(const InitPlan& plan, std::int64_t c, std::int64_t num_zeros, T* out,
                        std::vector<std::pair<std::uint32_t, std::int64_t>>& keys, bool naive) {
  const std::int64_t rows = plan.shape[0], cols = plan.shape[1];
  const std::uint64_t key_stream = plan.stream ^ kSparseKeyStream;
  keys.resize(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    std::uint32_t word;
    fill_words(&word, 1, plan.seed, key_stream, static_cast<std::uint64_t>(r * cols + c));
    keys[static_cast<std::size_t>(r)] = {word, r};
  }
  if (naive) {
    std::sort(keys.begin(), keys.end());
  } else if (num_zeros > 0 && num_zeros < rows) {
    std::nth_element(keys.begin(), keys.begin() + (num_zeros - 1), keys.end());
  }
  for (std::int64_t k = 0; k < num_zeros; ++k) out[keys[static_cast<std::size_t>(k)].second * cols + c] = T(0);
}

template <class T>
void fill_sparse(const InitPlan& plan, T* out, bool naive) {
  const std::int64_t rows = plan.shape[0], cols = plan.shape[1];
  if (naive) {
    fill_normal_naive(out, rows * cols, plan.seed, plan.stream, 0.0, plan.std);
  } else {
    fill_normal(out, rows * cols, plan.seed, plan.stream, 0.0, plan.std);
  }
  const auto num_zeros = static_cast<std::int64_t>(std::ceil(plan.sparsity * static_cast<double>(rows)));
  // Each thread owns whole columns (its writes); keys are per thread.
#pragma omp parallel num_threads(num_threads()) if (cols > 16 && !naive)
  {
    std::vector<std::pair<std::uint32_t, std::int64_t>> keys;
#pragma omp for schedule(static)
    for (std::int64_t c = 0; c < cols; ++c) zero_sparse_column(plan, c, num_zeros, out, keys, naive);
  }
}

template <class T>
void execute(const InitPlan& plan, T* out, bool naive) {
  const std::int64_t n = element_count(plan.shape);
  if (n == 0) return;
  switch (plan.kind) {
    case FillKind::kConstant:
      fill_constant(out, n, static_cast<T>(plan.value));
      break;
    case FillKind::kUniform:
      (naive ? fill_uniform_naive<T> : fill_uniform<T>)(out, n, plan.seed, plan.stream, plan.low,
                                                        plan.high);
      break;
    case FillKind::kNormal:
      (naive ? fill_normal_naive<T> : fill_normal<T>)(out, n, plan.seed, plan.stream, plan.mean,
                                                      plan.std);
      break;
    case FillKind::kTruncatedNormal:
      (naive ? fill_truncated_normal_naive<T> : fill_truncated_normal<T>)(
          out, n, plan.seed, plan.stream, plan.mean, plan.std, plan.a, plan.b);
      break;
    case FillKind::kIdentity:
      fill_identity(plan, out);
      break;
    case FillKind::kDirac:
      fill_dirac(plan, out);
      break;
    case FillKind::kSparse:
      fill_sparse(plan, out, naive);
      break;
    case FillKind::kOrthogonal:
    case FillKind::kDeltaOrthogonal:
      break;  // the caller's job (QR), see init.hpp
  }
}

}  // namespace

template <class T>
void execute_plan(const InitPlan& plan, T* out) {
  execute(plan, out, false);
}

template <class T>
void execute_plan_naive(const InitPlan& plan, T* out) {
  execute(plan, out, true);
}

template void execute_plan<float>(const InitPlan&, float*);
template void execute_plan<double>(const InitPlan&, double*);
template void execute_plan_naive<float>(const InitPlan&, float*);
template void execute_plan_naive<double>(const InitPlan&, double*);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
