// layer.hpp: the abstract layer, so that a batch loop (in Python today, native later) runs any
// sequence of layers without knowing their types.
//
// Vocabulary: N batch rows. A layer maps rows of in_size() elements to rows of out_size() elements
// (a row of an NHWC image is its H*W*C values in channels-last order). Every buffer is row-major,
// contiguous and owned by the caller; the layer only holds pointers to its parameters and their
// gradients (which it does not own either) and its configuration.
//
// For one batch the caller gives each layer a LayerBuffers:
//   out   (N, out_size)  what the next layer reads: written by forward
//   dout  (N, out_size)  dL/d(out): read by backward, which may overwrite it (Dense turns it into dZ)
//   cache (N, cache_sizes()[k]) for each k: what forward keeps for backward (Dense: Z, and with
//         dropout the activations before dropout and the dropout mask)
// forward(x -> out) and backward(dout -> parameter gradients, dx) must be given the same x; backward
// overwrites (never accumulates) the gradients and writes dx unless it is null. Buffers must not
// overlap, except that a layer may document an allowed alias (Dense: out may be cache[0] when its
// activation is linear and it has no dropout).
//
// PassContext carries what is not data: training (dropout on), and the dropout counters
// (seed, step); a layer's own random stream is part of its configuration.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>
#include <memory>
#include <vector>

#include "initlab/dense.hpp"

INITLAB_NAMESPACE_BEGIN

struct PassContext {
  bool training = false;
  std::uint64_t seed = 0;
  std::uint32_t step = 0;
};

// One parameter and its gradient, both (count): what an optimizer updates.
template <typename T>
struct ParameterView {
  T* param;
  T* grad;
  std::int64_t count;
};

template <typename T>
struct LayerBuffers {
  T* out = nullptr;
  T* dout = nullptr;
  std::vector<T*> cache;
};

template <typename T>
class Layer {
 public:
  virtual ~Layer() = default;
  virtual const char* type() const = 0;
  virtual std::int64_t in_size() const = 0;
  virtual std::int64_t out_size() const = 0;
  // Elements per row of each cache buffer forward needs.
  virtual std::vector<std::int64_t> cache_sizes() const = 0;
  // x is (N, in_size); writes buf.out and buf.cache.
  virtual void forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext& pass) = 0;
  // x is (N, in_size) (as given to forward), buf.dout (N, out_size) in (may be overwritten);
  // writes the parameter gradients and dx (N, in_size) unless dx is null.
  virtual void backward(std::int64_t n, const T* x, LayerBuffers<T>& buf, T* dx,
                        const PassContext& pass) = 0;
  // Empty for a layer without parameters (pooling, flatten).
  virtual std::vector<ParameterView<T>> parameters() = 0;
  // Whether out may be the very same buffer as cache[k] (an allowed alias, see above).
  virtual bool out_may_alias_cache(std::size_t k) const { (void)k; return false; }
};

// Dense: Z := X*W + b, A := act(Z) (dense.hpp), then inverted dropout in training:
//   out := A * mask, mask drawn by dropout_forward (optim.hpp) with this layer's stream and the
//   pass's (seed, step). Without dropout (or not training) out := A directly.
// Cache: Z (N, O); with dropout > 0 also A (N, O) before dropout and mask (N, O).
// W is (I, O), b is (O), dW is (I, O), db is (O).
template <typename T>
class DenseLayer final : public Layer<T> {
 public:
  DenseLayer(std::int64_t in, std::int64_t out, const T* w, const T* b, T* dw, T* db, Activation act,
             T param, double dropout, std::uint32_t stream);
  const char* type() const override { return "Dense"; }
  std::int64_t in_size() const override { return in_; }
  std::int64_t out_size() const override { return out_; }
  std::vector<std::int64_t> cache_sizes() const override;
  void forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext& pass) override;
  void backward(std::int64_t n, const T* x, LayerBuffers<T>& buf, T* dx, const PassContext& pass) override;
  std::vector<ParameterView<T>> parameters() override;
  bool out_may_alias_cache(std::size_t k) const override {
    return k == 0 && act_ == Activation::kLinear && !(dropout_ > 0.0);
  }

 private:
  std::int64_t in_, out_;
  const T* w_;
  const T* b_;
  T* dw_;
  T* db_;
  Activation act_;
  T param_;
  double dropout_;
  std::uint32_t stream_;
};

// The whole sequence, layer by layer. layers[k] reads x (k = 0) or bufs[k-1].out and writes bufs[k].
template <typename T>
void sequence_forward(std::int64_t n, const T* x, const std::vector<Layer<T>*>& layers,
                      std::vector<LayerBuffers<T>>& bufs, const PassContext& pass);

// From bufs.back().dout (dL/d(output of the last layer)) down to layer 0: every layer's parameter
// gradients; bufs[k].dout of the layers below are overwritten with their gradients; dx (N, in_size
// of layer 0) is written unless null. pass must be the one the forward ran with.
template <typename T>
void sequence_backward(std::int64_t n, const T* x, const std::vector<Layer<T>*>& layers,
                       std::vector<LayerBuffers<T>>& bufs, T* dx, const PassContext& pass);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
