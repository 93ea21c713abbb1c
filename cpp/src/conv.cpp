// conv.cpp: convolution (im2col + GEMM) and pooling, channels last (contracts in conv.hpp).
// X is (N, H, W, C), W is (KH, KW, C, O), b is (O); Z, A, dA are (N, OH, OW, O) = (P, O);
// cols is (P, K) with K = KH*KW*C; pooling Y is (N, OH, OW, C).
#include "initlab/conv.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "activation_math.hpp"
#include "chunked.hpp"
#include "initlab/gemm.hpp"

INITLAB_NAMESPACE_BEGIN

std::int64_t conv2d_workspace_size(const Conv2dGeometry& g) {
  return g.pointwise() ? 0 : g.positions() * g.taps();
}

// ---- the lowering and its inverse -------------------------------------------------------------

template <typename T>
void conv2d_im2col(const Conv2dGeometry& g, const T* x, T* cols) {
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w(), k = g.taps();
  const std::int64_t rows = g.n * oh_count;  // output rows (n, oh): each thread owns whole rows
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && rows * ow_count * k >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t n = row / oh_count, oh = row % oh_count;
    const T* image = x + n * g.h * g.w * g.c;
    for (std::int64_t ow = 0; ow < ow_count; ++ow) {
      T* dst = cols + (row * ow_count + ow) * k;  // the K entries of position (n, oh, ow)
      const std::int64_t iw0 = ow * g.stride_w - g.pad_left;
      // Undilated taps of one kernel row inside the image read KW*C consecutive input values.
      const bool row_inside = g.dilation_w == 1 && iw0 >= 0 && iw0 + g.kw <= g.w;
      for (std::int64_t i = 0; i < g.kh; ++i) {
        const std::int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
        T* taps = dst + i * g.kw * g.c;
        if (ih < 0 || ih >= g.h) {
          std::fill(taps, taps + g.kw * g.c, T(0));
        } else if (row_inside) {
          const T* src = image + (ih * g.w + iw0) * g.c;
          for (std::int64_t e = 0; e < g.kw * g.c; ++e) taps[e] = src[e];
        } else {
          for (std::int64_t j = 0; j < g.kw; ++j) {
            const std::int64_t iw = iw0 + j * g.dilation_w;
            T* tap = taps + j * g.c;
            if (iw < 0 || iw >= g.w) {
              std::fill(tap, tap + g.c, T(0));
            } else {
              const T* src = image + (ih * g.w + iw) * g.c;
              for (std::int64_t c = 0; c < g.c; ++c) tap[c] = src[c];
            }
          }
        }
      }
    }
  }
}

template <typename T>
void conv2d_col2im(const Conv2dGeometry& g, const T* cols, T* dx) {
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w(), k = g.taps();
  const std::int64_t rows = g.n * g.h;  // input rows (n, ih): each thread owns whole rows of dX
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && g.positions() * k >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t n = row / g.h, ih = row % g.h;
    T* dx_row = dx + row * g.w * g.c;
    std::fill(dx_row, dx_row + g.w * g.c, T(0));
    // Gather: tap row i reads input row ih from output row oh = (ih + top - i*DH) / SH when that
    // division is exact and oh is in range. Order: i, then ow, then j (fixed for any team size).
    for (std::int64_t i = 0; i < g.kh; ++i) {
      const std::int64_t t = ih + g.pad_top - i * g.dilation_h;
      if (t < 0 || t % g.stride_h != 0) continue;
      const std::int64_t oh = t / g.stride_h;
      if (oh >= oh_count) continue;
      const T* src_row = cols + ((n * oh_count + oh) * ow_count) * k + i * g.kw * g.c;
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        const T* src = src_row + ow * k;
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const std::int64_t iw = ow * g.stride_w - g.pad_left + j * g.dilation_w;
          if (iw < 0 || iw >= g.w) continue;
          T* dst = dx_row + iw * g.c;
          const T* tap = src + j * g.c;
          for (std::int64_t c = 0; c < g.c; ++c) dst[c] += tap[c];
        }
      }
    }
  }
}

// ---- convolution --------------------------------------------------------------------------------

template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* z, T* a,
                    Activation act, T param, T* workspace) {
  const T* cols = x;  // pointwise: X (N, H, W, C) is already (P, K)
  if (!g.pointwise()) {
    conv2d_im2col(g, x, workspace);
    cols = workspace;
  }
  // Z (P, O) := cols (P, K) * W (K, O) + b, A := act(Z): the dense layer on the lowered input.
  dense_forward<T>(g.positions(), g.taps(), g.o, cols, w, b, z, a, act, param);
}

template <typename T>
void conv2d_backward(const Conv2dGeometry& g, T* da, const T* x, const T* w, const T* z, const T* a,
                     Activation act, T param, T* dw, T* db, T* dx, T* workspace) {
  const std::int64_t p = g.positions(), k = g.taps();
  if (g.pointwise()) {
    // dZ, dW (C, O) := X^T dZ, db, and dX (P, C) := dZ W^T straight into dX.
    dense_backward<T>(p, k, g.o, da, x, w, z, a, act, param, dw, db, dx);
    return;
  }
  conv2d_im2col(g, x, workspace);
  // cols is spent after dW: dcols goes over it.
  conv2d_backward_lowered<T>(g, da, workspace, w, z, a, act, param, dw, db, dx, workspace);
}

template <typename T>
void conv2d_backward_lowered(const Conv2dGeometry& g, T* da, const T* cols, const T* w, const T* z, const T* a,
                             Activation act, T param, T* dw, T* db, T* dx, T* workspace) {
  // cols (P, K) = im2col(X); dA, Z, A (P, O); W, dW (K, O); workspace (P, K) for dcols, may be cols.
  const std::int64_t p = g.positions(), k = g.taps();
  if (g.pointwise()) {  // cols is X: as conv2d_backward, dX (P, C) straight from the dense backward
    dense_backward<T>(p, k, g.o, da, cols, w, z, a, act, param, dw, db, dx);
    return;
  }
  // dA := dZ; dW (K, O) := cols^T (K, P) * dZ (P, O); db := column sums of dZ.
  dense_backward<T>(p, k, g.o, da, cols, w, z, a, act, param, dw, db, nullptr);
  if (dx == nullptr) return;
  // dcols (P, K) := dZ (P, O) * W^T (O, K) into the workspace, then dX := col2im(dcols).
  gemm<T>(false, true, p, k, g.o, T(1), da, g.o, w, g.o, T(0), workspace, k);
  conv2d_col2im(g, workspace, dx);
}

template <typename T>
void conv2d_forward_reference(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* z, T* a,
                              Activation act, T param) {
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w();
  detail::dispatch_activation(act, [&](auto kind) {
    constexpr Activation kAct = decltype(kind)::value;
    for (std::int64_t n = 0; n < g.n; ++n)
      for (std::int64_t oh = 0; oh < oh_count; ++oh)
        for (std::int64_t ow = 0; ow < ow_count; ++ow)
          for (std::int64_t o = 0; o < g.o; ++o) {
            T acc = T(0);
            for (std::int64_t i = 0; i < g.kh; ++i) {
              const std::int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
              if (ih < 0 || ih >= g.h) continue;
              for (std::int64_t j = 0; j < g.kw; ++j) {
                const std::int64_t iw = ow * g.stride_w - g.pad_left + j * g.dilation_w;
                if (iw < 0 || iw >= g.w) continue;
                for (std::int64_t c = 0; c < g.c; ++c) {
                  acc += x[((n * g.h + ih) * g.w + iw) * g.c + c] * w[((i * g.kw + j) * g.c + c) * g.o + o];
                }
              }
            }
            const std::int64_t e = ((n * oh_count + oh) * ow_count + ow) * g.o + o;
            z[e] = acc + b[o];
            a[e] = detail::activate<kAct>(z[e], param);
          }
  });
}

template <typename T>
void conv2d_backward_reference(const Conv2dGeometry& g, T* da, const T* x, const T* w, const T* z,
                               const T* a, Activation act, T param, T* dw, T* db, T* dx) {
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w(), p = g.positions();
  detail::dispatch_activation(act, [&](auto kind) {
    constexpr Activation kAct = decltype(kind)::value;
    for (std::int64_t e = 0; e < p * g.o; ++e) da[e] *= detail::derivative<kAct>(z[e], a[e], param);
  });
  const T* dz = da;
  std::fill(dw, dw + g.kh * g.kw * g.c * g.o, T(0));
  if (dx != nullptr) std::fill(dx, dx + g.n * g.h * g.w * g.c, T(0));
  for (std::int64_t o = 0; o < g.o; ++o) {
    double acc = 0.0;
    for (std::int64_t r = 0; r < p; ++r) acc += static_cast<double>(dz[r * g.o + o]);
    db[o] = static_cast<T>(acc);
  }
  // dW[i, j, c, o] += X[n, ih, iw, c] * dZ[n, oh, ow, o]; dX[n, ih, iw, c] += W[i, j, c, o] * dZ[...]
  for (std::int64_t n = 0; n < g.n; ++n)
    for (std::int64_t oh = 0; oh < oh_count; ++oh)
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        const T* dz_row = dz + ((n * oh_count + oh) * ow_count + ow) * g.o;
        for (std::int64_t i = 0; i < g.kh; ++i) {
          const std::int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
          if (ih < 0 || ih >= g.h) continue;
          for (std::int64_t j = 0; j < g.kw; ++j) {
            const std::int64_t iw = ow * g.stride_w - g.pad_left + j * g.dilation_w;
            if (iw < 0 || iw >= g.w) continue;
            for (std::int64_t c = 0; c < g.c; ++c) {
              const std::int64_t xe = ((n * g.h + ih) * g.w + iw) * g.c + c;
              const T* w_row = w + ((i * g.kw + j) * g.c + c) * g.o;
              T* dw_row = dw + ((i * g.kw + j) * g.c + c) * g.o;
              T acc = T(0);
              for (std::int64_t o = 0; o < g.o; ++o) {
                dw_row[o] += x[xe] * dz_row[o];
                acc += w_row[o] * dz_row[o];
              }
              if (dx != nullptr) dx[xe] += acc;
            }
          }
        }
      }
}

// ---- pooling --------------------------------------------------------------------------------

template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax) {
  // The running maximum and its index for a block of channels, in lanes of one width (int32 beside
  // float: the caller guarantees H*W < 2^31), so the selects vectorize: the outcome of a comparison
  // is data-dependent, and a branch on it would be mispredicted half the time.
  using Index = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  constexpr std::int64_t kChannels = 64;
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w();
  const std::int64_t rows = g.n * oh_count;
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && rows * ow_count * g.c * g.ph * g.pw >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t n = row / oh_count, oh = row % oh_count;
    const T* image = x + n * g.h * g.w * g.c;
    for (std::int64_t ow = 0; ow < ow_count; ++ow) {
      const std::int64_t ih0 = oh * g.stride_h, iw0 = ow * g.stride_w;
      for (std::int64_t c0 = 0; c0 < g.c; c0 += kChannels) {
        const std::int64_t width = std::min(kChannels, g.c - c0);
        T best[kChannels];
        Index arg[kChannels];
        std::fill(best, best + width, -std::numeric_limits<T>::infinity());
        std::fill(arg, arg + width, static_cast<Index>(ih0 * g.w + iw0));
        for (std::int64_t ih = ih0; ih < ih0 + g.ph; ++ih) {
          for (std::int64_t iw = iw0; iw < iw0 + g.pw; ++iw) {
            const T* px = image + (ih * g.w + iw) * g.c + c0;
            const Index flat = static_cast<Index>(ih * g.w + iw);
            for (std::int64_t c = 0; c < width; ++c) {
              const T v = px[c];
              const bool take = (v > best[c]) | (v != v);  // greater, or NaN
              best[c] = take ? v : best[c];
              arg[c] = take ? flat : arg[c];
            }
          }
        }
        T* y_px = y + (row * ow_count + ow) * g.c + c0;
        std::int64_t* idx_px = argmax + (row * ow_count + ow) * g.c + c0;
        for (std::int64_t c = 0; c < width; ++c) {
          y_px[c] = best[c];
          idx_px[c] = arg[c];
        }
      }
    }
  }
}

template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* dy, const std::int64_t* argmax, T* dx) {
  const std::int64_t out_per_image = g.out_h() * g.out_w() * g.c, in_per_image = g.h * g.w * g.c;
  // Threads own whole images: overlapping windows add into one image in output order.
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (g.n > 1 && g.n * (out_per_image + in_per_image) >= detail::kParallelMinElements)
  for (std::int64_t n = 0; n < g.n; ++n) {
    T* image = dx + n * in_per_image;
    std::fill(image, image + in_per_image, T(0));
    const T* dy_image = dy + n * out_per_image;
    const std::int64_t* idx_image = argmax + n * out_per_image;
    for (std::int64_t e = 0; e < out_per_image; ++e) {
      const std::int64_t c = e % g.c;
      image[idx_image[e] * g.c + c] += dy_image[e];
    }
  }
}

template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  constexpr std::int64_t kChannels = 64;  // channels summed together in a stack buffer of doubles
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w();
  const std::int64_t rows = g.n * oh_count;
  const double inv_count = 1.0 / static_cast<double>(g.ph * g.pw);
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && rows * ow_count * g.c * g.ph * g.pw >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t n = row / oh_count, oh = row % oh_count;
    const T* image = x + n * g.h * g.w * g.c;
    for (std::int64_t ow = 0; ow < ow_count; ++ow) {
      T* y_px = y + (row * ow_count + ow) * g.c;
      for (std::int64_t c0 = 0; c0 < g.c; c0 += kChannels) {
        const std::int64_t width = std::min(kChannels, g.c - c0);
        double acc[kChannels] = {};
        for (std::int64_t ih = oh * g.stride_h; ih < oh * g.stride_h + g.ph; ++ih) {
          for (std::int64_t iw = ow * g.stride_w; iw < ow * g.stride_w + g.pw; ++iw) {
            const T* px = image + (ih * g.w + iw) * g.c + c0;
            for (std::int64_t c = 0; c < width; ++c) acc[c] += static_cast<double>(px[c]);
          }
        }
        for (std::int64_t c = 0; c < width; ++c) y_px[c0 + c] = static_cast<T>(acc[c] * inv_count);
      }
    }
  }
}

template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx) {
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w();
  const T count = static_cast<T>(g.ph * g.pw);
  const std::int64_t rows = g.n * g.h;  // input rows (n, ih): each thread owns whole rows of dX
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && rows * g.w * g.c >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t n = row / g.h, ih = row % g.h;
    T* dx_row = dx + row * g.w * g.c;
    std::fill(dx_row, dx_row + g.w * g.c, T(0));
    // Windows oh with oh*SH <= ih < oh*SH + PH, in increasing oh, then ow.
    const std::int64_t oh_lo = ih >= g.ph ? (ih - g.ph) / g.stride_h + 1 : 0;
    const std::int64_t oh_hi = std::min(oh_count - 1, ih / g.stride_h);
    for (std::int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
      const T* dy_row = dy + (n * oh_count + oh) * ow_count * g.c;
      for (std::int64_t ow = 0; ow < ow_count; ++ow) {
        const T* src = dy_row + ow * g.c;
        for (std::int64_t iw = ow * g.stride_w; iw < ow * g.stride_w + g.pw; ++iw) {
          T* dst = dx_row + iw * g.c;
          for (std::int64_t c = 0; c < g.c; ++c) dst[c] += src[c] / count;
        }
      }
    }
  }
}

template <typename T>
void global_avg_pool2d_forward(std::int64_t n, std::int64_t hw, std::int64_t c, const T* x, T* y) {
  constexpr std::int64_t kChannels = 64;
  const double inv_count = 1.0 / static_cast<double>(hw);
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (n > 1 && n * hw * c >= detail::kParallelMinElements)
  for (std::int64_t img = 0; img < n; ++img) {
    const T* image = x + img * hw * c;
    for (std::int64_t c0 = 0; c0 < c; c0 += kChannels) {
      const std::int64_t width = std::min(kChannels, c - c0);
      double acc[kChannels] = {};
      for (std::int64_t px = 0; px < hw; ++px) {
        const T* src = image + px * c + c0;
        for (std::int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(src[j]);
      }
      for (std::int64_t j = 0; j < width; ++j) y[img * c + c0 + j] = static_cast<T>(acc[j] * inv_count);
    }
  }
}

template <typename T>
void global_avg_pool2d_backward(std::int64_t n, std::int64_t hw, std::int64_t c, const T* dy, T* dx) {
  const T count = static_cast<T>(hw);
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (n > 1 && n * hw * c >= detail::kParallelMinElements)
  for (std::int64_t img = 0; img < n; ++img) {
    const T* src = dy + img * c;
    for (std::int64_t px = 0; px < hw; ++px) {
      T* dst = dx + (img * hw + px) * c;
      for (std::int64_t j = 0; j < c; ++j) dst[j] = src[j] / count;
    }
  }
}

#define INITLAB_CONV_INSTANTIATE(T)                                                                   \
  template void conv2d_im2col<T>(const Conv2dGeometry&, const T*, T*);                                \
  template void conv2d_col2im<T>(const Conv2dGeometry&, const T*, T*);                                \
  template void conv2d_forward<T>(const Conv2dGeometry&, const T*, const T*, const T*, T*, T*,         \
                                  Activation, T, T*);                                                 \
  template void conv2d_backward<T>(const Conv2dGeometry&, T*, const T*, const T*, const T*, const T*,  \
                                   Activation, T, T*, T*, T*, T*);                                    \
  template void conv2d_backward_lowered<T>(const Conv2dGeometry&, T*, const T*, const T*, const T*,          \
                                           const T*, Activation, T, T*, T*, T*, T*);                   \
  template void conv2d_forward_reference<T>(const Conv2dGeometry&, const T*, const T*, const T*, T*,   \
                                            T*, Activation, T);                                       \
  template void conv2d_backward_reference<T>(const Conv2dGeometry&, T*, const T*, const T*, const T*,  \
                                             const T*, Activation, T, T*, T*, T*);                    \
  template void max_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*, std::int64_t*);             \
  template void max_pool2d_backward<T>(const Pool2dGeometry&, const T*, const std::int64_t*, T*);      \
  template void avg_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*);                           \
  template void avg_pool2d_backward<T>(const Pool2dGeometry&, const T*, T*);                          \
  template void global_avg_pool2d_forward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*); \
  template void global_avg_pool2d_backward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*);

INITLAB_CONV_INSTANTIATE(float)
INITLAB_CONV_INSTANTIATE(double)
#undef INITLAB_CONV_INSTANTIATE

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
