// train.cpp: the native batch loop (train.hpp). Its naive twin and oracle is the Python loop
// (training.py _train_step), which calls the same kernels one by one.
#include "initlab/train.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "chunked.hpp"
#include "initlab/loss.hpp"
#include "initlab/stats.hpp"

INITLAB_NAMESPACE_BEGIN

namespace {

// numpy's argmax over a row of k values: the first maximum, or the first NaN.
template <typename T>
std::int64_t argmax_row(std::int64_t k, const T* row) {
  T best = row[0];
  std::int64_t at = 0;
  if (std::isnan(best)) return 0;
  for (std::int64_t c = 1; c < k; ++c) {
    if (!(row[c] <= best)) {
      best = row[c];
      at = c;
      if (std::isnan(best)) break;
    }
  }
  return at;
}

// The batch's loss (and dZ when dz is not null) on the workspace's logits.
template <typename T>
double batch_loss(OutputLoss loss, std::int64_t rows, std::int64_t k, TrainWorkspace<T>& ws, T* dz,
                  const T* weights) {
  const T* z = ws.buffers->back().out;
  switch (loss) {
    case OutputLoss::kSoftmax:
      return softmax_cross_entropy<T>(rows, k, z, ws.labels, ws.labels ? nullptr : ws.targets, ws.p, dz, weights);
    case OutputLoss::kSigmoid:
      return sigmoid_binary_cross_entropy<T>(rows, k, z, ws.targets, ws.p, dz, weights);
    case OutputLoss::kMse:
      break;
  }
  return mean_squared_error<T>(rows, k, z, ws.targets, dz, weights);
}

// The largest |x| over x (count), or inf when x holds an inf or a NaN: all_finite's answer and the
// magnitude UpdateBounds needs, in the same one pass. Chunks run in parallel from
// kParallelMinElements on; the largest value does not depend on the order.
template <typename T>
double chunk_max_abs(std::int64_t n, const T* x) {
  typename detail::MagnitudeBits<T>::type peak = 0;  // an integer max: vectorized (chunked.hpp)
  for (std::int64_t e = 0; e < n; ++e) peak = std::max(peak, detail::magnitude_bits(x[e]));
  return detail::magnitude_of<T>(peak);
}

template <typename T>
double max_abs(std::int64_t count, const T* x) {
  const std::int64_t chunks = (count + kChunk - 1) / kChunk;
  if (count < detail::kParallelMinElements || chunks < 2) return chunk_max_abs<T>(count, x);
  std::vector<double> part(static_cast<std::size_t>(chunks));
#pragma omp parallel for schedule(static) num_threads(num_threads())
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t begin = c * kChunk;
    part[c] = chunk_max_abs<T>(std::min(kChunk, count - begin), x + begin);
  }
  return *std::max_element(part.begin(), part.end());
}

}  // namespace

template <typename T>
double count_correct(OutputLoss loss, std::int64_t n, std::int64_t k, const T* p, const std::int64_t* labels,
                     const T* targets) {
  std::int64_t hits = 0;
  if (loss == OutputLoss::kSoftmax) {
    for (std::int64_t r = 0; r < n; ++r) {
      const std::int64_t truth = labels ? labels[r] : argmax_row<T>(k, targets + r * k);
      hits += argmax_row<T>(k, p + r * k) == truth;
    }
  } else if (loss == OutputLoss::kSigmoid) {
    for (std::int64_t e = 0; e < n * k; ++e) hits += (p[e] > T(0.5)) == (targets[e] > T(0.5));
  }
  return static_cast<double>(hits);
}

template <typename T>
TrainLoopResult train_batches(const TrainData<T>& data, TrainWorkspace<T>& ws, const TrainLoopConfig& config,
                              TrainLoopState& state, const std::function<bool()>& should_stop) {
  TrainLoopResult result;
  const std::int64_t rows = ws.rows, k = data.k, in = data.in_size;
  const std::int64_t n_tensors = static_cast<std::int64_t>(ws.tensors.size());
  // The layer owning each optimizer tensor (tensors are the layers' parameters in layer order).
  std::vector<std::int64_t> owner;
  for (std::size_t l = 0; l < ws.layers.size(); ++l) {
    for (std::size_t q = 0; q < ws.layers[l]->parameters().size(); ++q) owner.push_back(static_cast<std::int64_t>(l));
  }
  std::vector<std::uint8_t> nonfinite(ws.tensors.size(), 0);
  OptimizerConfig opt = config.optimizer;
  opt.guard = config.check_divergence;
  // The arrays are this loop's from step to step: after its first step, a guarded update is proven
  // finite from magnitudes when it can be (optim.hpp UpdateBounds), skipping the dry run.
  UpdateBounds bounds;
  std::vector<double> grad_peak(ws.tensors.size(), 0.0);
  T* dz = ws.buffers->back().dout;
  for (std::int64_t b = config.first; b < config.end; ++b) {
    result.next = b;
    if (should_stop && should_stop()) {
      result.status = TrainStatus::kStopped;
      result.dry_runs_skipped = bounds.dry_runs_skipped;
      return result;
    }
    // 1. gather the batch's rows
    const std::int64_t* idx = data.order + b * config.batch_size;
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t src = idx[r];
      std::memcpy(ws.x + r * in, data.x + src * in, sizeof(T) * static_cast<std::size_t>(in));
      if (data.labels) {
        ws.labels[r] = data.labels[src];
      } else {
        std::memcpy(ws.targets + r * k, data.targets + src * k, sizeof(T) * static_cast<std::size_t>(k));
      }
      if (data.weights) ws.weights[r] = data.weights[src];
    }
    const T* w = data.weights ? ws.weights : nullptr;
    double weight = static_cast<double>(rows);
    PassContext pass;
    pass.seed = config.seed;
    if (w) {
      weight = weight_sum<T>(rows, w);
      if (weight == 0.0) {  // nothing to learn from: no step (its rows still count for accuracy)
        pass.step = static_cast<std::uint32_t>(state.step & 0xFFFFFFFF);
        sequence_forward<T>(rows, ws.x, ws.layers, *ws.buffers, pass);
        batch_loss<T>(config.loss, rows, k, ws, nullptr, w);
        state.loss_sum += 0.0 * 0.0;
        state.weight_sum += 0.0;
        state.correct_sum += count_correct<T>(config.loss, rows, k, ws.p, ws.labels, ws.targets);
        continue;
      }
    }
    // 3. forward, loss, backward
    state.step += 1;
    pass.training = true;
    pass.step = static_cast<std::uint32_t>(state.step & 0xFFFFFFFF);
    sequence_forward<T>(rows, ws.x, ws.layers, *ws.buffers, pass);
    const double loss = batch_loss<T>(config.loss, rows, k, ws, dz, w);
    sequence_backward<T>(rows, ws.x, ws.layers, *ws.buffers, nullptr, pass);
    // 4. the gradients' divergence check, layers in backward order (the largest magnitude of each
    // gradient: inf when it is not finite)
    if (config.check_divergence) {
      std::vector<std::int64_t> bad;
      for (std::int64_t t = n_tensors; t-- > 0;) {
        grad_peak[t] = max_abs<T>(ws.tensors[t].count, ws.tensors[t].grad);
      }
      bounds.grad = 0.0;
      for (std::int64_t t = 0; t < n_tensors; ++t) bounds.grad = std::max(bounds.grad, grad_peak[t]);
      for (std::size_t l = ws.layers.size(); l-- > 0;) {
        for (std::int64_t t = 0; t < n_tensors; ++t) {
          if (owner[t] == static_cast<std::int64_t>(l) && !std::isfinite(grad_peak[t])) {
            bad.push_back(static_cast<std::int64_t>(l));
            break;
          }
        }
      }
      if (!bad.empty() || !std::isfinite(loss)) {
        state.step -= 1;
        result.status = TrainStatus::kDiverged;
        result.loss = loss;
        result.bad_layers = bad;
        result.dry_runs_skipped = bounds.dry_runs_skipped;
        return result;
      }
    }
    // 5. the (guarded) update
    opt.step = state.optimizer_step + 1;
    opt.first_step = !state.started;
    std::fill(nonfinite.begin(), nonfinite.end(), std::uint8_t{0});
    const OptimizerStepResult step = optimizer_step<T>(n_tensors, ws.tensors.data(), opt, nonfinite.data(),
                                                       config.check_divergence ? &bounds : nullptr);
    if (step.written) {
      state.optimizer_step += 1;
      if (opt.kind == OptimizerKind::kSgd) state.started = state.started || opt.momentum != 0.0;
    }
    if (config.check_divergence && step.first_nonfinite >= 0) {
      state.step -= 1;
      result.status = TrainStatus::kDiverged;
      result.loss = loss;
      result.in_update = true;
      for (std::int64_t t = 0; t < n_tensors; ++t) {
        if (nonfinite[t] && (result.bad_layers.empty() || result.bad_layers.back() != owner[t])) {
          result.bad_layers.push_back(owner[t]);
        }
      }
      result.dry_runs_skipped = bounds.dry_runs_skipped;
      return result;
    }
    // 6. the epoch's sums
    state.loss_sum += loss * weight;
    state.weight_sum += weight;
    state.correct_sum += count_correct<T>(config.loss, rows, k, ws.p, ws.labels, ws.targets);
  }
  result.next = config.end;
  result.dry_runs_skipped = bounds.dry_runs_skipped;
  return result;
}

template double count_correct<float>(OutputLoss, std::int64_t, std::int64_t, const float*, const std::int64_t*,
                                     const float*);
template double count_correct<double>(OutputLoss, std::int64_t, std::int64_t, const double*,
                                      const std::int64_t*, const double*);
template TrainLoopResult train_batches<float>(const TrainData<float>&, TrainWorkspace<float>&,
                                              const TrainLoopConfig&, TrainLoopState&,
                                              const std::function<bool()>&);
template TrainLoopResult train_batches<double>(const TrainData<double>&, TrainWorkspace<double>&,
                                               const TrainLoopConfig&, TrainLoopState&,
                                               const std::function<bool()>&);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
