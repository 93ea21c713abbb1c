// layer.cpp: the Dense layer on the dense kernels, and the sequence loops (contracts in layer.hpp).
#include "initlab/layer.hpp"

#include <algorithm>

#include "initlab/optim.hpp"

INITLAB_NAMESPACE_BEGIN

template <typename T>
DenseLayer<T>::DenseLayer(std::int64_t in, std::int64_t out, const T* w, const T* b, T* dw, T* db,
                          Activation act, T param, double dropout, std::uint32_t stream)
    : in_(in), out_(out), w_(w), b_(b), dw_(dw), db_(db), act_(act), param_(param), dropout_(dropout),
      stream_(stream) {}

template <typename T>
std::vector<std::int64_t> DenseLayer<T>::cache_sizes() const {
  if (dropout_ > 0.0) return {out_, out_, out_};  // Z, A before dropout, mask
  return {out_};                                  // Z
}

template <typename T>
void DenseLayer<T>::forward(std::int64_t n, const T* x, LayerBuffers<T>& buf, const PassContext& pass) {
  // X is (N, I); Z, A, out, mask are (N, O).
  T* z = buf.cache[0];
  if (pass.training && dropout_ > 0.0) {
    T* a = buf.cache[1];
    T* mask = buf.cache[2];
    dense_forward<T>(n, in_, out_, x, w_, b_, z, a, act_, param_);
    std::copy(a, a + n * out_, buf.out);  // A stays intact: backward needs act' from it
    dropout_forward<T>(n * out_, buf.out, mask, dropout_, pass.seed, stream_, pass.step);
  } else {
    dense_forward<T>(n, in_, out_, x, w_, b_, z, buf.out, act_, param_);
  }
}

template <typename T>
void DenseLayer<T>::backward(std::int64_t n, const T* x, LayerBuffers<T>& buf, T* dx,
                             const PassContext& pass) {
  // dout is (N, O), overwritten with dZ; X is (N, I); dX is (N, I) or null.
  const T* a = buf.out;
  if (pass.training && dropout_ > 0.0) {
    dropout_backward<T>(n * out_, buf.dout, buf.cache[2]);
    a = buf.cache[1];
  }
  dense_backward<T>(n, in_, out_, buf.dout, x, w_, buf.cache[0], a, act_, param_, dw_, db_, dx);
}

template <typename T>
std::vector<ParameterView<T>> DenseLayer<T>::parameters() {
  // The optimizer writes the parameters; the layer itself only reads them.
  return {{const_cast<T*>(w_), dw_, in_ * out_}, {const_cast<T*>(b_), db_, out_}};
}

template <typename T>
void sequence_forward(std::int64_t n, const T* x, const std::vector<Layer<T>*>& layers,
                      std::vector<LayerBuffers<T>>& bufs, const PassContext& pass) {
  const T* input = x;
  for (std::size_t k = 0; k < layers.size(); ++k) {
    layers[k]->forward(n, input, bufs[k], pass);
    input = bufs[k].out;
  }
}

template <typename T>
void sequence_backward(std::int64_t n, const T* x, const std::vector<Layer<T>*>& layers,
                       std::vector<LayerBuffers<T>>& bufs, T* dx, const PassContext& pass) {
  for (std::size_t k = layers.size(); k-- > 0;) {
    const T* input = k == 0 ? x : bufs[k - 1].out;
    T* dinput = k == 0 ? dx : bufs[k - 1].dout;
    layers[k]->backward(n, input, bufs[k], dinput, pass);
  }
}

template class DenseLayer<float>;
template class DenseLayer<double>;
template void sequence_forward<float>(std::int64_t, const float*, const std::vector<Layer<float>*>&,
                                      std::vector<LayerBuffers<float>>&, const PassContext&);
template void sequence_forward<double>(std::int64_t, const double*, const std::vector<Layer<double>*>&,
                                       std::vector<LayerBuffers<double>>&, const PassContext&);
template void sequence_backward<float>(std::int64_t, const float*, const std::vector<Layer<float>*>&,
                                       std::vector<LayerBuffers<float>>&, float*, const PassContext&);
template void sequence_backward<double>(std::int64_t, const double*, const std::vector<Layer<double>*>&,
                                        std::vector<LayerBuffers<double>>&, double*, const PassContext&);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
