// train.hpp: the native batch loop: a range of batches of one epoch, every step in C++.
//
// Vocabulary: n training rows of in_size values, K outputs, an epoch's row order `order` (n) (the
// permutation the caller drew), batches of batch_size rows: batch b is rows order[b*bs .. b*bs+rows).
// One call runs batches [first, end) that all have the same number of rows `rows` (the caller makes a
// second call, with the workspace of its own size, for a partial last batch).
//
// Each batch is exactly what the Python loop (python/initlab/nn/training.py, _train_step: the naive
// twin and the oracle, one _core call per pass) does, with the same kernels in the same order:
//   0. stop check: should_stop() before every batch (the Ctrl-C flag); true ends the call there.
//   1. gather: X, labels (int64) or targets (K floats), and row weights of the batch's rows.
//   2. weights: w = weight_sum (loss.hpp); w == 0: forward (not training), the loss without gradient,
//      the correct count, and no step (loss 0, weight 0); otherwise w = rows without weights.
//   3. step += 1; forward (training, dropout counters (seed, step mod 2^32)), the loss with dZ,
//      backward over the sequence (sequence_forward / sequence_backward, layer.hpp).
//   4. check_divergence: the layers whose gradients hold inf/NaN, in backward order (all_finite,
//      stats.hpp); any, or a non-finite loss: step -= 1, diverged (nothing written), stop.
//   5. optimizer_step (optim.hpp) over every parameter of the layers, in layer order, with the
//      optimizer state; guard = check_divergence: an update that would overflow writes nothing,
//      step -= 1, diverged in the update, naming the layers owning the tensors, stop. Otherwise the
//      optimizer's step counter += 1 (Adam's t) and SGD's momentum buffer counts as started.
//   6. sums: loss_sum += loss * w, weight_sum += w, correct_sum += correct (argmax of P against the
//      label or argmax of the target row, numpy's first-maximum/first-NaN rule; sigmoid: (P > 0.5) ==
//      (Y > 0.5) per element; linear: 0), all in double, in batch order, continuing the sums given.
// The result is bitwise the Python loop's on the same batches (same kernels, same order), on any
// thread count (every kernel is).
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>
#include <functional>
#include <vector>

#include "initlab/layer.hpp"
#include "initlab/optim.hpp"

INITLAB_NAMESPACE_BEGIN

enum class OutputLoss { kSoftmax, kSigmoid, kMse };

// The epoch's data. x (n, in_size); exactly one of labels (n) int64 in [0, K) (softmax, checked by
// the caller) and targets (n, K); weights (n) or null; order (n), a permutation of 0..n-1.
template <typename T>
struct TrainData {
  std::int64_t n = 0, in_size = 0, k = 0;
  const T* x = nullptr;
  const std::int64_t* labels = nullptr;
  const T* targets = nullptr;
  const T* weights = nullptr;
  const std::int64_t* order = nullptr;
};

// The workspace of one batch size: x (rows, in_size), labels (rows) or targets (rows, K) (as the
// data has), weights (rows) when the data has weights, p (rows, K) the probabilities; the layers and
// their buffers (layer.hpp) bound to `rows` rows; the optimizer's tensors (optim.hpp) in layer order,
// params and grads those of the layers' parameters() (state pointers as optimizer_step wants them).
template <typename T>
struct TrainWorkspace {
  std::int64_t rows = 0;
  T* x = nullptr;
  std::int64_t* labels = nullptr;
  T* targets = nullptr;
  T* weights = nullptr;
  T* p = nullptr;
  std::vector<Layer<T>*> layers;
  std::vector<LayerBuffers<T>>* buffers = nullptr;
  std::vector<ParamTensor<T>> tensors;
};

struct TrainLoopConfig {
  OutputLoss loss = OutputLoss::kSoftmax;
  std::int64_t batch_size = 1;
  std::int64_t first = 0, end = 0;   // batches [first, end), each of `rows` rows
  bool check_divergence = true;      // on_divergence != "ignore"
  std::uint64_t seed = 0;            // the network's seed (dropout)
  OptimizerConfig optimizer;         // lr, hyperparameters, clipping of this epoch (guard is set here)
};

// What the loop carries: the caller's values in, the values after the last batch run out.
struct TrainLoopState {
  std::int64_t step = 0;             // the network's optimizer steps (dropout's step counter)
  std::int64_t optimizer_step = 0;   // the optimizer state's step (Adam's t): += 1 per update
  bool started = false;              // SGD: the momentum buffer exists
  double loss_sum = 0.0, correct_sum = 0.0, weight_sum = 0.0;
};

enum class TrainStatus { kDone, kStopped, kDiverged };

struct TrainLoopResult {
  TrainStatus status = TrainStatus::kDone;
  std::int64_t next = 0;             // the first batch not run (end when kDone)
  // kDiverged: at batch `next`, its loss; bad_layers as the Python loop lists them (gradients: the
  // layers with non-finite gradients in backward order; in_update: the layers whose update would
  // overflow, ascending).
  double loss = 0.0;
  bool in_update = false;
  std::vector<std::int64_t> bad_layers;
  std::int64_t dry_runs_skipped = 0;  // guarded updates proven finite without a dry run (optim.hpp)
};

template <typename T>
TrainLoopResult train_batches(const TrainData<T>& data, TrainWorkspace<T>& ws, const TrainLoopConfig& config,
                              TrainLoopState& state, const std::function<bool()>& should_stop);

// P, and labels (N) or targets Y (N, K): the correct decisions of a batch as the Python loop counts
// them (network.py _count_correct). P, Y are (N, K).
template <typename T>
double count_correct(OutputLoss loss, std::int64_t n, std::int64_t k, const T* p, const std::int64_t* labels,
                     const T* targets);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
