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
#include "initlab/isa.hpp"
#include <cstdint>
#include <string>

INITLAB_NAMESPACE_BEGIN

constexpr std::uint32_t kDropoutTag = 0x44524F50u;  // "DROP"

// ---- the fused multi-tensor step -------------------------------------------------------------
// One call updates every parameter of a network: for tensors t = 0..T-1 (param, grad, state0,
// state1 each (count_t)), in this order, exactly as the per-tensor kernels called one after another:
//   1. clip_value (has_clip_value): grad := clamp(grad, -clip_value, clip_value), every tensor;
//   2. clip_norm (has_clip_norm): total = sqrt(sum over t of sum_of_squares(grad_t)) (stats.hpp's
//      chunked sum per tensor, tensors added in order), coef = clip_norm/(total + 1e-6); when
//      coef < 1 every grad := grad * T(coef) (torch.nn.utils.clip_grad_norm_);
//   3. the update of `kind` on every tensor (the formulas above) with the clipped gradients.
// The clipped gradients are written back, as the in-place clipping kernels leave them. Results are
// bitwise those of clip_by_value, sum_of_squares + scale and sgd_step / adam_step / rmsprop_step
// called in that order (the same per-element code), on any thread count: the work is cut into the
// same kChunk pieces of each tensor and each piece is one thread's.
// States: sgd: state0 = momentum_buffer (null when momentum == 0); adam/adamw: exp_avg, exp_avg_sq;
// rmsprop: square_avg, momentum_buffer (null when momentum == 0).
// Divergence check, fused into the update pass at no extra memory traffic: nonfinite[t] (when not
// null) := 1 when some parameter element written to tensor t is not finite (inf or NaN), and
// first_nonfinite is the lowest such t (-1: all finite). The state buffers are not checked: a state
// that overflows makes a later parameter non-finite (or, in Adam's denominator, its update 0).
// guard (all or nothing): the whole step is first computed without writing anything; only when every
// parameter it would write is finite is it applied (bitwise the same step). Otherwise nothing is
// written (parameters, states and gradients keep their values: the last finite step's weights),
// `written` is false and nonfinite/first_nonfinite name the tensors that would have overflowed.
// It costs a read-only pass over the update's operands (about half the step again).
enum class OptimizerKind { kSgd, kAdam, kAdamW, kRmsprop };

// The registry: every optimizer, defined once. The bindings take `optimizer=` names and the state
// layout from it (Python's OPTIMIZERS in nn/optimizers.py holds the same names and n_states).
// Adding an optimizer: its OptimizerKind and entry here (+ OptimizerConfig fields if it has new
// hyperparameters), its kernel in cpp/src/optim.cpp (the update range and its case in the
// dispatch), its Python entry, and its test.
struct OptimizerInfo {
  const char* name;
  OptimizerKind kind;
  int n_states;         // state arrays per parameter (ParamTensor's state0, state1)
  bool uses_momentum;   // takes `momentum`; its last state array is then the momentum buffer,
                        // null (None) when momentum == 0
};

inline constexpr OptimizerInfo kOptimizers[] = {
    // name      kind                     n_states uses_momentum
    {"sgd", OptimizerKind::kSgd, 1, true},          // momentum_buffer
    {"adam", OptimizerKind::kAdam, 2, false},       // exp_avg, exp_avg_sq
    {"adamw", OptimizerKind::kAdamW, 2, false},     // exp_avg, exp_avg_sq
    {"rmsprop", OptimizerKind::kRmsprop, 2, true},  // square_avg, momentum_buffer
};

// Looks a name up in kOptimizers; nullptr when unknown.
inline const OptimizerInfo* find_optimizer(const std::string& name) {
  for (const OptimizerInfo& info : kOptimizers) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 0.01;
  double momentum = 0.0;       // sgd, rmsprop
  double dampening = 0.0;      // sgd
  bool nesterov = false;       // sgd
  bool first_step = false;     // sgd: the momentum buffer is created from this gradient
  double beta1 = 0.9, beta2 = 0.999;  // adam, adamw
  double eps = 1e-8;           // adam, adamw, rmsprop
  double alpha = 0.99;         // rmsprop
  double weight_decay = 0.0;
  std::int64_t step = 1;       // adam, adamw: 1-based
  bool has_clip_value = false;
  double clip_value = 0.0;
  bool has_clip_norm = false;
  double clip_norm = 0.0;
  bool guard = false;          // all or nothing: write only a step whose parameters are all finite
};

template <typename T>
struct ParamTensor {
  std::int64_t count = 0;
  T* param = nullptr;
  T* grad = nullptr;
  T* state0 = nullptr;
  T* state1 = nullptr;
};

struct OptimizerStepResult {
  double grad_norm = -1.0;             // the global gradient norm (has_clip_norm), else -1
  bool clipped = false;                // coef < 1: the gradients were scaled
  std::int64_t first_nonfinite = -1;   // the first tensor holding a non-finite parameter, or -1
  bool written = true;                 // false only when guard found a non-finite parameter
};

// What a loop that owns the arrays from one step to the next (the native batch loop) knows about a
// guarded step's inputs. With it, optimizer_step may prove every updated parameter finite from
// magnitudes alone (sgd, adam, adamw: each bound a few products of maxima, kept 2^20 below T's
// largest value) and skip the guard's dry run: the same stores, the same bits, one pass instead of
// two. valid: param/state0/state1 are the largest magnitudes over every tensor's arrays as the
// previous step of this loop wrote them (its update measures them; inf when one held inf or NaN);
// grad: the largest gradient magnitude of this step (the caller's finiteness check measures it).
struct UpdateBounds {
  bool valid = false;
  double param = 0.0, state0 = 0.0, state1 = 0.0;
  double grad = 0.0;
  std::int64_t dry_runs_skipped = 0;  // guarded steps written without their dry run
};

// list is (tensors); nonfinite is (tensors) or null; bounds is null or the loop's (read and
// updated, guard only). No array may overlap another.
template <typename T>
OptimizerStepResult optimizer_step(std::int64_t tensors, const ParamTensor<T>* list, const OptimizerConfig& config,
                                   std::uint8_t* nonfinite, UpdateBounds* bounds = nullptr);

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

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
