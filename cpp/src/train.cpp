// train.cpp: the native batch loop (train.hpp). Its naive twin and oracle is the Python loop
// (training.py _train_step), which calls the same kernels one by one.
#include "initlab/train.hpp"

#include <cmath>
#include <cstring>

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
  T* dz = ws.buffers->back().dout;
  for (std::int64_t b = config.first; b < config.end; ++b) {
    result.next = b;
    if (should_stop && should_stop()) {
      result.status = TrainStatus::kStopped;
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
    // 4. the gradients' divergence check, layers in backward order
    if (config.check_divergence) {
      std::vector<std::int64_t> bad;
      for (std::size_t l = ws.layers.size(); l-- > 0;) {
        for (const ParameterView<T>& v : ws.layers[l]->parameters()) {
          if (!all_finite<T>(v.count, v.grad)) {
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
        return result;
      }
    }
    // 5. the (guarded) update
    opt.step = state.optimizer_step + 1;
    opt.first_step = !state.started;
    std::fill(nonfinite.begin(), nonfinite.end(), std::uint8_t{0});
    const OptimizerStepResult step = optimizer_step<T>(n_tensors, ws.tensors.data(), opt, nonfinite.data());
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
      return result;
    }
    // 6. the epoch's sums
    state.loss_sum += loss * weight;
    state.weight_sum += weight;
    state.correct_sum += count_correct<T>(config.loss, rows, k, ws.p, ws.labels, ws.targets);
  }
  result.next = config.end;
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
