// optim.cpp: parameter updates, clipping and dropout (contracts and formulas in optim.hpp).
// Every array is a flat run of `count` elements.
#include "initlab/optim.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "chunked.hpp"
#include "initlab/philox.hpp"

INITLAB_NAMESPACE_BEGIN

namespace {

// ---- per-element updates ------------------------------------------------------------------------
// One range function per optimizer, shared by the per-tensor kernels and the fused multi-tensor
// step, so both compute the same bits by construction. The modes are template parameters (the loops
// have no branches and GCC vectorizes them: sqrt and division are single vector instructions under
// -fno-math-errno); the pointers are __restrict (no array may overlap another, optim.hpp), and the
// factors arrive by value, so no store can alias them.
//
// Each range returns nonzero when a parameter it wrote is not finite (the divergence check of the
// fused step; the per-tensor kernels ignore it).

template <typename T>
struct GradPrep {
  T clip;    // clamp bound
  T factor;  // global-norm factor
};

template <typename T>
inline unsigned not_finite(T w) {
  return !(std::abs(w) <= std::numeric_limits<T>::max());
}

template <typename T>
struct SgdFactors {
  T lr, mu, wd, one_minus_dampening;
};

template <typename T>
SgdFactors<T> sgd_factors(double lr, double momentum, double dampening, double weight_decay) {
  return {static_cast<T>(lr), static_cast<T>(momentum), static_cast<T>(weight_decay),
          static_cast<T>(1.0 - dampening)};
}

// param, grad, momentum_buffer are (count).
// kTrack: also the largest magnitudes written, into peak[0..2] (param, state0, state1; inf when one
// is not finite), for UpdateBounds: integer maxima of the bits (detail::magnitude_bits), so the loop
// stays vectorized; the stored values are the same.

template <typename T, bool kStore, bool kWeightDecay, bool kMomentum, bool kFirst, bool kNesterov, bool kTrack>
unsigned sgd_range(std::int64_t count, T* __restrict param, const T* __restrict grad, T* __restrict momentum_buffer,
                   const SgdFactors<T> f, double* __restrict peak) {
  unsigned bad = 0;
  typename detail::MagnitudeBits<T>::type peak_w = 0, peak_buf = 0;
  for (std::int64_t e = 0; e < count; ++e) {
    T g = grad[e];
    if (kWeightDecay) g = g + f.wd * param[e];
    if (kMomentum) {
      const T buf = kFirst ? g : f.mu * momentum_buffer[e] + f.one_minus_dampening * g;
      if (kStore) momentum_buffer[e] = buf;
      if (kTrack) peak_buf = std::max(peak_buf, detail::magnitude_bits(buf));
      g = kNesterov ? g + f.mu * buf : buf;
    }
    const T w = param[e] - f.lr * g;
    if (kStore) param[e] = w;
    if (kTrack) peak_w = std::max(peak_w, detail::magnitude_bits(w));
    bad |= not_finite(w);
  }
  if (kTrack) {
    peak[0] = detail::magnitude_of<T>(peak_w);
    peak[1] = detail::magnitude_of<T>(peak_buf);
    peak[2] = 0.0;
  }
  return bad;
}

template <typename T>
struct AdamFactors {
  T step_size, bias_correction2_sqrt, weight1, b2, one_minus_b2, eps, wd, decay;
};

template <typename T>
AdamFactors<T> adam_factors(double lr, double beta1, double beta2, double eps, double weight_decay,
                            std::int64_t step) {
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  return {static_cast<T>(lr / bias_correction1),
          static_cast<T>(std::sqrt(bias_correction2)),
          static_cast<T>(1.0 - beta1),  // torch's lerp weight for exp_avg
          static_cast<T>(beta2),
          static_cast<T>(1.0 - beta2),
          static_cast<T>(eps),
          static_cast<T>(weight_decay),
          static_cast<T>(1.0 - lr * weight_decay)};  // AdamW's decoupled shrink
}

// param, grad, exp_avg, exp_avg_sq are (count). kL2: Adam's g += wd*param; kShrink: AdamW's
// param *= 1 - lr*wd; kLerpLow: weight1 < 0.5 (torch.lerp's two formulas).
template <typename T, bool kStore, bool kL2, bool kShrink, bool kLerpLow, bool kTrack>
unsigned adam_range(std::int64_t count, T* __restrict param, const T* __restrict grad, T* __restrict exp_avg,
                    T* __restrict exp_avg_sq, const AdamFactors<T> f, double* __restrict peak) {
  unsigned bad = 0;
  typename detail::MagnitudeBits<T>::type peak_w = 0, peak_m = 0, peak_v = 0;
  for (std::int64_t e = 0; e < count; ++e) {
    T g = grad[e];
    T w = param[e];
    if (kShrink) w *= f.decay;
    if (kL2) g = g + f.wd * w;
    // torch.lerp(m, g, weight): m + weight*(g - m) for weight < 0.5, else g - (g - m)*(1 - weight)
    const T m = kLerpLow ? exp_avg[e] + f.weight1 * (g - exp_avg[e])
                         : g - (g - exp_avg[e]) * (T(1) - f.weight1);
    const T v = f.b2 * exp_avg_sq[e] + f.one_minus_b2 * g * g;
    if (kStore) exp_avg[e] = m;
    if (kStore) exp_avg_sq[e] = v;
    const T denom = std::sqrt(v) / f.bias_correction2_sqrt + f.eps;
    w = w - f.step_size * (m / denom);
    if (kStore) param[e] = w;
    if (kTrack) {
      peak_w = std::max(peak_w, detail::magnitude_bits(w));
      peak_m = std::max(peak_m, detail::magnitude_bits(m));
      peak_v = std::max(peak_v, detail::magnitude_bits(v));
    }
    bad |= not_finite(w);
  }
  if (kTrack) {
    peak[0] = detail::magnitude_of<T>(peak_w);
    peak[1] = detail::magnitude_of<T>(peak_m);
    peak[2] = detail::magnitude_of<T>(peak_v);
  }
  return bad;
}

template <typename T>
struct RmspropFactors {
  T lr, a, one_minus_a, eps, wd, mu;
};

template <typename T>
RmspropFactors<T> rmsprop_factors(double lr, double alpha, double eps, double weight_decay, double momentum) {
  return {static_cast<T>(lr), static_cast<T>(alpha), static_cast<T>(1.0 - alpha), static_cast<T>(eps),
          static_cast<T>(weight_decay), static_cast<T>(momentum)};
}

// param, grad, square_avg, momentum_buffer are (count).
template <typename T, bool kStore, bool kWeightDecay, bool kMomentum>
unsigned rmsprop_range(std::int64_t count, T* __restrict param, const T* __restrict grad, T* __restrict square_avg,
                       T* __restrict momentum_buffer, const RmspropFactors<T> f) {
  unsigned bad = 0;
  for (std::int64_t e = 0; e < count; ++e) {
    T g = grad[e];
    if (kWeightDecay) g = g + f.wd * param[e];
    const T v = f.a * square_avg[e] + f.one_minus_a * g * g;
    if (kStore) square_avg[e] = v;
    const T avg = std::sqrt(v) + f.eps;
    T w;
    if (kMomentum) {
      const T buf = f.mu * momentum_buffer[e] + g / avg;
      if (kStore) momentum_buffer[e] = buf;
      w = param[e] - f.lr * buf;
    } else {
      w = param[e] - f.lr * (g / avg);
    }
    if (kStore) param[e] = w;
    bad |= not_finite(w);
  }
  return bad;
}

// body(std::true_type or std::false_type): a runtime flag as a compile-time one.
template <typename Body>
auto with_flag(bool flag, Body&& body) {
  return flag ? body(std::true_type{}) : body(std::false_type{});
}

// The range function of one configuration. The returned callable takes
// (count, param, grad, state0, state1) and returns the non-finite flag.
template <typename T>
struct RangeRunner {
  OptimizerKind kind;
  bool flags[4];  // sgd: wd, momentum, first, nesterov; adam: l2, shrink, lerp_low; rmsprop: wd, momentum
  SgdFactors<T> sgd;
  AdamFactors<T> adam;
  RmspropFactors<T> rmsprop;

  // kStore false: computes and checks the update without writing anything (the guard's dry run).
  // kTrack (sgd, adam, adamw): the largest magnitudes written go to peak[0..2].
  template <bool kStore = true, bool kTrack = false>
  unsigned operator()(std::int64_t count, T* param, const T* grad, T* state0, T* state1,
                      double* peak = nullptr) const {
    switch (kind) {
      case OptimizerKind::kSgd:
        return with_flag(flags[0], [&](auto wd) {
          return with_flag(flags[1], [&](auto mom) {
            return with_flag(flags[2], [&](auto first) {
              return with_flag(flags[3], [&](auto nesterov) {
                return sgd_range<T, kStore, decltype(wd)::value, decltype(mom)::value,
                                 decltype(first)::value, decltype(nesterov)::value, kTrack>(count, param, grad,
                                                                                            state0, sgd, peak);
              });
            });
          });
        });
      case OptimizerKind::kAdam:
      case OptimizerKind::kAdamW:
        return with_flag(flags[0], [&](auto l2) {
          return with_flag(flags[1], [&](auto shrink) {
            return with_flag(flags[2], [&](auto lerp_low) {
              return adam_range<T, kStore, decltype(l2)::value, decltype(shrink)::value,
                                decltype(lerp_low)::value, kTrack>(count, param, grad, state0, state1, adam,
                                                                   peak);
            });
          });
        });
      case OptimizerKind::kRmsprop:
        return with_flag(flags[0], [&](auto wd) {
          return with_flag(flags[1], [&](auto mom) {
            return rmsprop_range<T, kStore, decltype(wd)::value, decltype(mom)::value>(
                count, param, grad, state0, state1, rmsprop);
          });
        });
    }
    return 0;
  }
};

template <typename T>
RangeRunner<T> make_runner(const OptimizerConfig& c) {
  RangeRunner<T> r{};
  r.kind = c.kind;
  if (c.kind == OptimizerKind::kSgd) {
    r.flags[0] = c.weight_decay != 0.0;
    r.flags[1] = c.momentum != 0.0;
    r.flags[2] = c.first_step;
    r.flags[3] = c.nesterov;
    r.sgd = sgd_factors<T>(c.lr, c.momentum, c.dampening, c.weight_decay);
  } else if (c.kind == OptimizerKind::kRmsprop) {
    r.flags[0] = c.weight_decay != 0.0;
    r.flags[1] = c.momentum > 0.0;
    r.rmsprop = rmsprop_factors<T>(c.lr, c.alpha, c.eps, c.weight_decay, c.momentum);
  } else {
    const bool decoupled = c.kind == OptimizerKind::kAdamW;
    r.adam = adam_factors<T>(c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.step);
    r.flags[0] = c.weight_decay != 0.0 && !decoupled;
    r.flags[1] = c.weight_decay != 0.0 && decoupled;
    r.flags[2] = r.adam.weight1 < T(0.5);
  }
  return r;
}

// Runs one configuration over a single tensor in kChunk pieces (the per-tensor kernels).
template <typename T>
void run_single(const OptimizerConfig& c, std::int64_t count, T* param, const T* grad, T* state0, T* state1) {
  const RangeRunner<T> run = make_runner<T>(c);
  detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
    run(end - begin, param + begin, grad + begin, state0 ? state0 + begin : nullptr,
        state1 ? state1 + begin : nullptr);
  });
}

// grad is (count): grad := clamp(grad, -clip, clip) * factor, stored (rounded) before the update
// reads it, exactly as clip_by_value and scale leave it. (Folding it into the update's expression
// would let the compiler contract g*factor + wd*param into one FMA and change the last bit.)
// out may be grad itself (in place) or a scratch chunk (the guard's dry run).
template <typename T, bool kClip, bool kScale>
void prepare_range(std::int64_t count, const T* grad, const GradPrep<T> prep, T* out) {
  for (std::int64_t e = 0; e < count; ++e) {
    T g = grad[e];
    if (kClip) g = g > prep.clip ? prep.clip : (g < -prep.clip ? -prep.clip : g);
    if (kScale) g = g * prep.factor;
    out[e] = g;
  }
}

}  // namespace

template <typename T>
void sgd_step(std::int64_t count, T* param, const T* grad, T* momentum_buffer, double lr,
              double momentum, double dampening, double weight_decay, bool nesterov, bool first_step) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kSgd;
  c.lr = lr;
  c.momentum = momentum;
  c.dampening = dampening;
  c.weight_decay = weight_decay;
  c.nesterov = nesterov;
  c.first_step = first_step;
  run_single<T>(c, count, param, grad, momentum_buffer, nullptr);
}

template <typename T>
void adam_step(std::int64_t count, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, double lr,
               double beta1, double beta2, double eps, double weight_decay, std::int64_t step,
               bool decoupled) {
  OptimizerConfig c;
  c.kind = decoupled ? OptimizerKind::kAdamW : OptimizerKind::kAdam;
  c.lr = lr;
  c.beta1 = beta1;
  c.beta2 = beta2;
  c.eps = eps;
  c.weight_decay = weight_decay;
  c.step = step;
  run_single<T>(c, count, param, grad, exp_avg, exp_avg_sq);
}

template <typename T>
void rmsprop_step(std::int64_t count, T* param, const T* grad, T* square_avg, T* momentum_buffer,
                  double lr, double alpha, double eps, double weight_decay, double momentum) {
  OptimizerConfig c;
  c.kind = OptimizerKind::kRmsprop;
  c.lr = lr;
  c.alpha = alpha;
  c.eps = eps;
  c.weight_decay = weight_decay;
  c.momentum = momentum;
  run_single<T>(c, count, param, grad, square_avg, momentum_buffer);
}

// Whether the guarded update is certainly finite, from UpdateBounds alone: each bound over-estimates
// a magnitude the update computes (clipping and norm scaling only shrink a finite gradient), and
// all must stay 2^20 below T's largest value, far beyond any rounding. False when unsure (then the
// dry run decides), and always for rmsprop.
template <typename T>
bool update_certainly_finite(const OptimizerConfig& c, const UpdateBounds& b) {
  const double limit = std::ldexp(static_cast<double>(std::numeric_limits<T>::max()), -20);
  auto small = [limit](double x) { return x < limit; };  // false for inf and NaN
  if (!b.valid || !small(b.param) || !small(b.grad) || !small(b.state0) || !small(b.state1)) return false;
  const double w = b.param;
  if (c.kind == OptimizerKind::kSgd) {
    const double g = b.grad + c.weight_decay * w;
    double step = g;
    if (c.momentum != 0.0) {
      const double buf = c.first_step ? g : c.momentum * b.state0 + std::abs(1.0 - c.dampening) * g;
      step = c.nesterov ? g + c.momentum * buf : buf;
    }
    return small(g) && small(step) && small(w + 2.0 * c.lr * step);
  }
  if (c.kind == OptimizerKind::kAdam || c.kind == OptimizerKind::kAdamW) {
    const AdamFactors<T> f = adam_factors<T>(c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.step);
    const double eps = static_cast<double>(f.eps);
    if (!(eps > 0.0)) return false;  // sqrt(v)/bc2 + eps may be 0
    const bool decoupled = c.kind == OptimizerKind::kAdamW;
    const double shrunk = decoupled ? w * std::abs(static_cast<double>(f.decay)) : w;
    const double g = decoupled ? b.grad : b.grad + c.weight_decay * w;
    const double m = 3.0 * std::max(b.state0, g);  // |m + a(g - m)| <= 2|m| + |g|, either lerp form
    const double v = b.state1 + g * g;               // finite v >= 0: the denominator is >= eps
    return small(g) && small(m) && small(v) &&
           small(shrunk + 2.0 * std::abs(static_cast<double>(f.step_size)) * m / eps);
  }
  return false;
}

template <typename T>
OptimizerStepResult optimizer_step(std::int64_t tensors, const ParamTensor<T>* list, const OptimizerConfig& c,
                                   std::uint8_t* nonfinite, UpdateBounds* bounds) {
  // The work is a list of chunks: every tensor cut into kChunk pieces (as the per-tensor kernels
  // cut it), chunk k of tensor t at global index first_chunk[t] + k. Each chunk is one thread's.
  std::vector<std::int64_t> first_chunk(static_cast<std::size_t>(tensors) + 1, 0);
  std::int64_t total = 0;
  for (std::int64_t t = 0; t < tensors; ++t) {
    first_chunk[t + 1] = first_chunk[t] + (list[t].count + kChunk - 1) / kChunk;
    total += list[t].count;
  }
  const std::int64_t chunks = first_chunk[tensors];
  // An update reads 2-4 arrays and (adam, rmsprop) takes a square root and divides per element:
  // a second thread pays from kParallelMinUpdates elements on, a quarter of the memory-bound loops'
  // kParallelMinElements (the digits net's 84k parameters: 2 x 18 us serial per guarded adam step).
  // Chunks differ in size (a tensor's last one, biases), so threads take them one by one (dynamic).
  constexpr std::int64_t kParallelMinUpdates = detail::kParallelMinElements / 4;
  const bool parallel = chunks > 1 && total >= kParallelMinUpdates;
  // tensor of global chunk k (first_chunk is sorted; empty tensors own no chunk)
  auto tensor_of = [&](std::int64_t k) {
    return static_cast<std::int64_t>(std::upper_bound(first_chunk.begin(), first_chunk.end(), k) -
                                     first_chunk.begin()) - 1;
  };

  OptimizerStepResult result;
  GradPrep<T> prep{static_cast<T>(c.clip_value), T(1)};
  bool clip_in_update = c.has_clip_value;  // clip by value in pass 2 (no clip_norm)
  bool scale = false;
  if (c.has_clip_norm) {
    // Pass 1: clip by value (in place, unless guarded: then in pass 2, after the check) and the
    // global sum of squares: partials per chunk, added in chunk order within a tensor
    // (sum_of_squares), then tensor by tensor.
    std::vector<double> partial(static_cast<std::size_t>(chunks));
    const T clip = prep.clip;
    const bool clip_value = c.has_clip_value;
    const bool store = !c.guard;
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads()) if (parallel)
    for (std::int64_t k = 0; k < chunks; ++k) {
      const std::int64_t t = tensor_of(k);
      const std::int64_t begin = (k - first_chunk[t]) * kChunk;
      const std::int64_t n = std::min(kChunk, list[t].count - begin);
      T* g = list[t].grad + begin;
      partial[k] = !clip_value ? detail::sum_of_squares_chunk<T, false>(n, g)
                   : store     ? detail::sum_of_squares_chunk<T, true, true>(n, g, clip)
                               : detail::sum_of_squares_chunk<T, true, false>(n, g, clip);
    }
    double sum = 0.0;
    for (std::int64_t t = 0; t < tensors; ++t) {
      double tensor_sum = 0.0;
      for (std::int64_t k = first_chunk[t]; k < first_chunk[t + 1]; ++k) tensor_sum += partial[k];
      sum += tensor_sum;
    }
    result.grad_norm = std::sqrt(sum);
    const double coef = c.clip_norm / (result.grad_norm + 1e-6);  // torch.nn.utils.clip_grad_norm_
    result.clipped = coef < 1.0;
    clip_in_update = c.guard && c.has_clip_value;  // otherwise done in pass 1
    scale = result.clipped;
    prep.factor = static_cast<T>(coef);
  }

  // Pass 2, chunk by chunk: the gradient's clipping or scaling (stored), then the update, while
  // the chunk is in cache. Guarded: first the same computation without a single store (the
  // prepared gradient goes to a per-thread scratch chunk), and the real pass only if every
  // parameter it would write is finite.
  const RangeRunner<T> run = make_runner<T>(c);
  std::vector<std::uint8_t> chunk_bad(static_cast<std::size_t>(chunks), 0);
  // With the loop's bounds, the writing pass measures what it writes (per chunk, then the largest).
  const bool track = bounds != nullptr && c.guard && c.kind != OptimizerKind::kRmsprop;
  std::vector<double> peaks(track ? 3 * static_cast<std::size_t>(chunks) : 0);
  auto update_pass = [&](auto store) {
    constexpr bool kStore = decltype(store)::value;
#pragma omp parallel num_threads(num_threads()) if (parallel)
    {
      thread_local std::vector<T> scratch;  // grown once per thread: a steady state allocates nothing
      if (!kStore && scratch.size() < static_cast<std::size_t>(kChunk)) scratch.resize(kChunk);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t k = 0; k < chunks; ++k) {
        const std::int64_t t = tensor_of(k);
        const ParamTensor<T>& p = list[t];
        const std::int64_t begin = (k - first_chunk[t]) * kChunk;
        const std::int64_t n = std::min(kChunk, p.count - begin);
        T* g = kStore || !(clip_in_update || scale) ? p.grad + begin : scratch.data();
        if (clip_in_update && scale) {
          prepare_range<T, true, false>(n, p.grad + begin, prep, g);
          prepare_range<T, false, true>(n, g, prep, g);
        } else if (clip_in_update) {
          prepare_range<T, true, false>(n, p.grad + begin, prep, g);
        } else if (scale) {
          prepare_range<T, false, true>(n, p.grad + begin, prep, g);
        }
        T* s0 = p.state0 ? p.state0 + begin : nullptr;
        T* s1 = p.state1 ? p.state1 + begin : nullptr;
        chunk_bad[k] = (kStore && track ? run.template operator()<kStore, true>(n, p.param + begin, g, s0, s1,
                                                                                 peaks.data() + 3 * k)
                                        : run.template operator()<kStore, false>(n, p.param + begin, g, s0, s1)) != 0;
      }
    }
  };
  if (c.guard && track && update_certainly_finite<T>(c, *bounds)) {
    update_pass(std::true_type{});  // proven finite: the dry run could only have said "write"
    bounds->dry_runs_skipped += 1;
  } else if (c.guard) {
    update_pass(std::false_type{});
    result.written = std::none_of(chunk_bad.begin(), chunk_bad.end(), [](std::uint8_t b) { return b != 0; });
    if (result.written) update_pass(std::true_type{});
  } else {
    update_pass(std::true_type{});
  }
  if (track && result.written) {  // what this step wrote is what the next one starts from
    double peak[3] = {0.0, 0.0, 0.0};
    for (std::int64_t k = 0; k < chunks; ++k) {
      for (int q = 0; q < 3; ++q) peak[q] = std::max(peak[q], peaks[3 * k + q]);
    }
    bounds->param = peak[0];
    bounds->state0 = peak[1];
    bounds->state1 = peak[2];
    bounds->valid = true;
  }
  for (std::int64_t t = 0; t < tensors; ++t) {
    bool bad = false;
    for (std::int64_t k = first_chunk[t]; k < first_chunk[t + 1]; ++k) bad = bad || chunk_bad[k];
    if (nonfinite != nullptr) nonfinite[t] = bad;
    if (bad && result.first_nonfinite < 0) result.first_nonfinite = t;
  }
  return result;
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
template OptimizerStepResult optimizer_step<float>(std::int64_t, const ParamTensor<float>*,
                                                   const OptimizerConfig&, std::uint8_t*, UpdateBounds*);
template OptimizerStepResult optimizer_step<double>(std::int64_t, const ParamTensor<double>*,
                                                    const OptimizerConfig&, std::uint8_t*, UpdateBounds*);
template void clip_by_value<float>(std::int64_t, float*, float);
template void clip_by_value<double>(std::int64_t, double*, double);
template void dropout_forward<float>(std::int64_t, float*, float*, double, std::uint64_t,
                                     std::uint32_t, std::uint32_t);
template void dropout_forward<double>(std::int64_t, double*, double*, double, std::uint64_t,
                                      std::uint32_t, std::uint32_t);
template void dropout_backward<float>(std::int64_t, float*, const float*);
template void dropout_backward<double>(std::int64_t, double*, const double*);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
