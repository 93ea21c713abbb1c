// conv_layer.hpp: the native twins of the convolutional layer types (layer.hpp's interface), so that
// a CNN's whole forward or backward pass is one call. Each wraps the kernels of conv.hpp.
//
// Rows: a row is one image, its H*W*C values in channels-last order (layer.hpp). Shapes per image:
// input (H, W, C), output (OH, OW, O or C). Buffers as in layer.hpp; the layer-owned scratch:
//   Conv2dLayer: the im2col workspace, one per thread (thread_local), grown to the largest need and
//     reused: safe to share between layers because conv2d_backward lowers its input again.
//   With keep_columns (and a forward that lowers: conv2d_forward_lowers), the forward lowers X into its own last
//     cache buffer (OH*OW*K per row: the columns) instead, and the backward reads them from there
//     (conv2d_backward_lowered) rather than lowering X again; only dX's dcols use the workspace.
// Pool2dLayer (max): cache[0] holds the arg-max (N, OH, OW, C) as int64 values in a buffer of the
//   network's float type, 8/sizeof(T) elements per index (the caller allocates it as int64, so it is
//   aligned for them), so that the Python layer's forward/backward and this twin share it.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>
#include <vector>

#include "initlab/conv.hpp"
#include "initlab/layer.hpp"

INITLAB_NAMESPACE_BEGIN

// Z := conv(X, W) + b, A := act(Z), then inverted dropout in training (as DenseLayer).
// Cache: Z (OH*OW*O per row); with dropout > 0 also A before dropout and the mask; with keep_columns
// (not pointwise) last the columns im2col(X) (OH*OW*KH*KW*C per row), written by every forward.
// W is (KH, KW, C, O), b is (O), dW, db alike. `geometry.n` is ignored (the batch comes per call).
template <typename T>
class Conv2dLayer final : public Layer<T> {
 public:
  Conv2dLayer(const Conv2dGeometry& geometry, const T* w, const T* b, T* dw, T* db, Activation act, T param,
              double dropout, std::uint32_t stream, bool keep_columns = false);
  // Whether the last cache buffer holds the forward's columns.
  bool keeps_columns() const { return keep_columns_; }
  const char* type() const override { return "Conv2d"; }
  std::int64_t in_size() const override { return g_.h * g_.w * g_.c; }
  std::int64_t out_size() const override { return g_.out_h() * g_.out_w() * g_.o; }
  std::vector<std::int64_t> cache_sizes() const override;
  void forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext& pass) override;
  void backward(std::int64_t n, const T* x, LayerBuffers<T>& buf, T* dx, const PassContext& pass) override;
  std::vector<ParameterView<T>> parameters() override;

 private:
  T* workspace(std::int64_t n);
  Conv2dGeometry g_;
  const T* w_;
  const T* b_;
  T* dw_;
  T* db_;
  Activation act_;
  T param_;
  double dropout_;
  std::uint32_t stream_;
  bool keep_columns_;
};

// Max or average pooling (conv.hpp). Max: cache[0] is the arg-max (see above); average: no cache.
template <typename T>
class Pool2dLayer final : public Layer<T> {
 public:
  Pool2dLayer(const Pool2dGeometry& geometry, bool max);
  const char* type() const override { return max_ ? "MaxPool2d" : "AvgPool2d"; }
  std::int64_t in_size() const override { return g_.h * g_.w * g_.c; }
  std::int64_t out_size() const override { return g_.out_h() * g_.out_w() * g_.c; }
  std::vector<std::int64_t> cache_sizes() const override;
  void forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext& pass) override;
  void backward(std::int64_t n, const T* x, LayerBuffers<T>& buf, T* dx, const PassContext& pass) override;
  std::vector<ParameterView<T>> parameters() override { return {}; }

 private:
  Pool2dGeometry g_;
  bool max_;
};

enum class ReshapeKind { kGlobalAvgPool2d, kFlatten };

// Global average pooling (H, W, C) -> (C), or Flatten (a copy: (H, W, C) -> (H*W*C)).
template <typename T>
class ReshapeLayer final : public Layer<T> {
 public:
  using Kind = ReshapeKind;
  ReshapeLayer(Kind kind, std::int64_t pixels, std::int64_t channels);
  const char* type() const override { return kind_ == Kind::kFlatten ? "Flatten" : "GlobalAvgPool2d"; }
  std::int64_t in_size() const override { return pixels_ * channels_; }
  std::int64_t out_size() const override { return kind_ == Kind::kFlatten ? pixels_ * channels_ : channels_; }
  std::vector<std::int64_t> cache_sizes() const override { return {}; }
  void forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext& pass) override;
  void backward(std::int64_t n, const T* x, LayerBuffers<T>& buf, T* dx, const PassContext& pass) override;
  std::vector<ParameterView<T>> parameters() override { return {}; }

 private:
  Kind kind_;
  std::int64_t pixels_, channels_;
};

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
