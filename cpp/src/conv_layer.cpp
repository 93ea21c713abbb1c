// conv_layer.cpp: the native convolutional layers on the conv.hpp kernels (contracts in conv_layer.hpp).
#include "initlab/conv_layer.hpp"

#include <algorithm>

#include "initlab/optim.hpp"

INITLAB_NAMESPACE_BEGIN

template <typename T>
Conv2dLayer<T>::Conv2dLayer(const Conv2dGeometry& geometry, const T* w, const T* b, T* dw, T* db, Activation act,
                            T param, double dropout, std::uint32_t stream, bool keep_columns)
    : g_(geometry), w_(w), b_(b), dw_(dw), db_(db), act_(act), param_(param), dropout_(dropout), stream_(stream),
      keep_columns_(keep_columns && conv2d_forward_lowers(geometry)) {}

template <typename T>
std::vector<std::int64_t> Conv2dLayer<T>::cache_sizes() const {
  const std::int64_t out = out_size();
  std::vector<std::int64_t> sizes{out};                       // Z
  if (dropout_ > 0.0) sizes.insert(sizes.end(), {out, out});  // A before dropout, mask
  if (keep_columns_) sizes.push_back(g_.out_h() * g_.out_w() * g_.taps());  // the columns
  return sizes;
}

template <typename T>
T* Conv2dLayer<T>::workspace(std::int64_t n) {
  thread_local std::vector<T> scratch;  // one per thread and precision, shared by every Conv2dLayer
  Conv2dGeometry g = g_;
  g.n = n;
  const auto size = static_cast<std::size_t>(conv2d_workspace_size(g));
  if (scratch.size() < size) scratch.resize(size);
  return scratch.data();
}

template <typename T>
void Conv2dLayer<T>::forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext& pass) {
  // X is (N, H, W, C); Z, A, out, mask are (N, OH, OW, O).
  Conv2dGeometry g = g_;
  g.n = n;
  T* z = buf.cache[0];
  T* cols = keep_columns_ ? buf.cache.back() : workspace(n);  // (N*OH*OW, K)
  if (pass.training && dropout_ > 0.0) {
    T* a = buf.cache[1];
    conv2d_forward<T>(g, x, w_, b_, z, a, act_, param_, cols);
    std::copy(a, a + n * out_size(), buf.out);  // A stays intact: backward needs act' from it
    dropout_forward<T>(n * out_size(), buf.out, buf.cache[2], dropout_, pass.seed, stream_, pass.step);
  } else {
    conv2d_forward<T>(g, x, w_, b_, z, buf.out, act_, param_, cols);
  }
}

template <typename T>
void Conv2dLayer<T>::backward(std::int64_t n, const T* x, LayerBuffers<T>& buf, T* dx, const PassContext& pass) {
  // dout is (N, OH, OW, O), overwritten with dZ; X and dX are (N, H, W, C).
  Conv2dGeometry g = g_;
  g.n = n;
  const T* a = buf.out;
  if (pass.training && dropout_ > 0.0) {
    dropout_backward<T>(n * out_size(), buf.dout, buf.cache[2]);
    a = buf.cache[1];
  }
  if (keep_columns_) {  // the forward's columns: no second lowering, no workspace
    conv2d_backward_lowered<T>(g, buf.dout, buf.cache.back(), w_, buf.cache[0], a, act_, param_, dw_, db_, dx,
                               nullptr);
  } else {
    conv2d_backward<T>(g, buf.dout, x, w_, buf.cache[0], a, act_, param_, dw_, db_, dx, workspace(n));
  }
}

template <typename T>
std::vector<ParameterView<T>> Conv2dLayer<T>::parameters() {
  return {{const_cast<T*>(w_), dw_, g_.kh * g_.kw * g_.c * g_.o}, {const_cast<T*>(b_), db_, g_.o}};
}

template <typename T>
Pool2dLayer<T>::Pool2dLayer(const Pool2dGeometry& geometry, bool max) : g_(geometry), max_(max) {}

template <typename T>
std::vector<std::int64_t> Pool2dLayer<T>::cache_sizes() const {
  static_assert(sizeof(std::int64_t) % sizeof(T) == 0, "an int64 index spans whole T elements");
  if (max_) return {out_size() * static_cast<std::int64_t>(sizeof(std::int64_t) / sizeof(T))};  // arg-max
  return {};
}

template <typename T>
void Pool2dLayer<T>::forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext&) {
  Pool2dGeometry g = g_;
  g.n = n;
  if (max_) {
    max_pool2d_forward<T>(g, x, buf.out, reinterpret_cast<std::int64_t*>(buf.cache[0]));
  } else {
    avg_pool2d_forward<T>(g, x, buf.out);
  }
}

template <typename T>
void Pool2dLayer<T>::backward(std::int64_t n, const T*, LayerBuffers<T>& buf, T* dx, const PassContext&) {
  if (dx == nullptr) return;
  Pool2dGeometry g = g_;
  g.n = n;
  if (max_) {
    max_pool2d_backward<T>(g, buf.dout, reinterpret_cast<const std::int64_t*>(buf.cache[0]), dx);
  } else {
    avg_pool2d_backward<T>(g, buf.dout, dx);
  }
}

template <typename T>
ReshapeLayer<T>::ReshapeLayer(Kind kind, std::int64_t pixels, std::int64_t channels)
    : kind_(kind), pixels_(pixels), channels_(channels) {}

template <typename T>
void ReshapeLayer<T>::forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext&) {
  if (kind_ == Kind::kFlatten) {
    std::copy(x, x + n * in_size(), buf.out);
  } else {
    global_avg_pool2d_forward<T>(n, pixels_, channels_, x, buf.out);
  }
}

template <typename T>
void ReshapeLayer<T>::backward(std::int64_t n, const T*, LayerBuffers<T>& buf, T* dx, const PassContext&) {
  if (dx == nullptr) return;
  if (kind_ == Kind::kFlatten) {
    std::copy(buf.dout, buf.dout + n * in_size(), dx);
  } else {
    global_avg_pool2d_backward<T>(n, pixels_, channels_, buf.dout, dx);
  }
}

template class Conv2dLayer<float>;
template class Conv2dLayer<double>;
template class Pool2dLayer<float>;
template class Pool2dLayer<double>;
template class ReshapeLayer<float>;
template class ReshapeLayer<double>;

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
