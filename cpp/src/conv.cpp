// conv.cpp: convolution (im2col + GEMM) and pooling, channels last (contracts in conv.hpp).
// X is (N, H, W, C), W is (KH, KW, C, O), b is (O); Z, A, dA are (N, OH, OW, O) = (P, O);
// cols is (P, K) with K = KH*KW*C; pooling Y is (N, OH, OW, C).
#include "initlab/conv.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "activation_math.hpp"
#include "chunked.hpp"
#include "initlab/gemm.hpp"

INITLAB_NAMESPACE_BEGIN

std::int64_t conv2d_workspace_size(const Conv2dGeometry& g) {
  return g.pointwise() ? 0 : g.positions() * g.taps();
}

namespace {
// Few taps: the forward's direct kernel (below) instead of im2col + GEMM.
constexpr std::int64_t kDirectMaxTaps = 32;

// The vector width of the hand-vectorized loops (GCC vector extensions; 16 bytes on the baseline).
#if INITLAB_SIMD_LEVEL >= 3
constexpr int kDirectBytes = 64;
#elif INITLAB_SIMD_LEVEL >= 2
constexpr int kDirectBytes = 32;
#else
constexpr int kDirectBytes = 16;
#endif

template <typename T>
struct DirectSimd {
  typedef T type __attribute__((vector_size(kDirectBytes)));
  static constexpr int kLanes = kDirectBytes / static_cast<int>(sizeof(T));
};
}  // namespace

bool conv2d_forward_lowers(const Conv2dGeometry& g) { return !g.pointwise() && g.taps() > kDirectMaxTaps; }

namespace {

// Products dW = cols^T dZ of fewer multiply-adds than this read the columns (P, K) as the lowered
// path does: there the transposed lowering's channel planes cost more than the transposed operand
// (the digits CNN's conv2, 2.4M: 0.037 ms against 0.008 for im2col), and the GEMM's small-product
// paths need not give a (K, P) operand the bits of a transposed (P, K) one; larger ones lower X
// transposed, which the packed GEMM reads bitwise alike (LeNet's convolutions: 20M and 321M).
constexpr std::int64_t kTransposedLoweringMacs = std::int64_t(1) << 23;

// A grow-only scratch buffer per calling thread, element type and use (kUse): the per-image dcols
// of dX and the channel planes of the transposed lowering. Never shrinks, so a steady state
// allocates nothing; each thread writes only its own.
template <typename T, int kUse>
T* thread_scratch(std::int64_t size) {
  thread_local std::vector<T> buffer;
  if (buffer.size() < static_cast<std::size_t>(size)) buffer.resize(static_cast<std::size_t>(size));
  return buffer.data();
}

// db (O) := column sums of dZ (P, O), each column over rows 0..P-1 in order, in double (as
// dense.cpp's: the same bits). Threads own blocks of kColumns columns.
template <typename T>
void column_sums(std::int64_t p, std::int64_t o, const T* dz, T* db) {
  constexpr std::int64_t kColumns = 64;
  const std::int64_t blocks = (o + kColumns - 1) / kColumns;
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (blocks > 1 && p * o >= detail::kParallelMinElements)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t j0 = blk * kColumns;
    const std::int64_t width = std::min(kColumns, o - j0);
    double acc[kColumns] = {};
    for (std::int64_t r = 0; r < p; ++r) {
      const T* row = dz + r * o + j0;
      for (std::int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(row[j]);
    }
    for (std::int64_t j = 0; j < width; ++j) db[j0 + j] = static_cast<T>(acc[j]);
  }
}

// One input row ih of one image's dX (W, C) := the sum of that image's column entries (OH*OW, K)
// read from it. Gather: tap row i reads input row ih from output row oh = (ih + top - i*DH) / SH
// when that division is exact and oh is in range. Order: i, then ow, then j (fixed).
template <typename T>
void col2im_row(const Conv2dGeometry& g, const T* cols_image, std::int64_t ih, T* dx_row) {
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w(), k = g.taps();
  std::fill(dx_row, dx_row + g.w * g.c, T(0));
  for (std::int64_t i = 0; i < g.kh; ++i) {
    const std::int64_t t = ih + g.pad_top - i * g.dilation_h;
    if (t < 0 || t % g.stride_h != 0) continue;
    const std::int64_t oh = t / g.stride_h;
    if (oh >= oh_count) continue;
    const T* src_row = cols_image + oh * ow_count * k + i * g.kw * g.c;
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

}  // namespace

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
  const std::int64_t per_image = g.out_h() * g.out_w() * g.taps();
  const std::int64_t rows = g.n * g.h;  // input rows (n, ih): each thread owns whole rows of dX
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && g.positions() * g.taps() >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t n = row / g.h, ih = row % g.h;
    col2im_row(g, cols + n * per_image, ih, dx + row * g.w * g.c);
  }
}

namespace {

// Copies len values from src to dst. With `overrun`, the last partial vector is copied whole: it
// may read up to L-1 values past src + len and write up to L-1 past dst + len (the caller promises
// both stay inside its buffers and that it writes those destination values again afterwards).
template <typename T>
inline void copy_run(const T* src, T* dst, std::int64_t len, bool overrun) {
  using V = typename DirectSimd<T>::type;
  constexpr std::int64_t kL = DirectSimd<T>::kLanes;
  std::int64_t e = 0;
  for (; e + kL <= len; e += kL) {
    V v;
    std::memcpy(&v, src + e, sizeof(V));
    std::memcpy(dst + e, &v, sizeof(V));
  }
  if (e == len) return;
  if (overrun) {
    V v;
    std::memcpy(&v, src + e, sizeof(V));
    std::memcpy(dst + e, &v, sizeof(V));
  } else {
    for (; e < len; ++e) dst[e] = src[e];
  }
}

}  // namespace

template <typename T>
void conv2d_im2col_transposed(const Conv2dGeometry& g, const T* x, T* cols_t) {
  // X (N, H, W, C) -> cols_t (K, P): row (i, j, c), column (n, oh, ow) = X[n, ih, iw, c] or 0.
  // First the zero-padded channel planes (N, C, HP, WP) (top + H + bottom rows, left + W + right
  // columns; L zeros of slack at the end), then each row of cols_t is, image by image and output
  // row by output row, a run of OW values of one plane row: no bounds checks, no zero fills.
  constexpr std::int64_t kL = DirectSimd<T>::kLanes;
  const std::int64_t hp = g.h + g.pad_top + g.pad_bottom, wp = g.w + g.pad_left + g.pad_right;
  const std::int64_t plane = hp * wp, p = g.positions(), k = g.taps();
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w();
  T* planes = thread_scratch<T, 1>(g.n * g.c * plane + kL);
  std::fill(planes + g.n * g.c * plane, planes + g.n * g.c * plane + kL, T(0));
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (g.n > 1 && g.n * g.c * plane >= detail::kParallelMinElements)
  for (std::int64_t n = 0; n < g.n; ++n) {
    const T* image = x + n * g.h * g.w * g.c;
    T* out = planes + n * g.c * plane;
    std::fill(out, out + g.c * plane, T(0));
    constexpr std::int64_t kBlock = 16;  // pixels per pass: C lines read, C runs written
    for (std::int64_t ih = 0; ih < g.h; ++ih) {
      const T* src = image + ih * g.w * g.c;
      T* dst = out + (g.pad_top + ih) * wp + g.pad_left;
      for (std::int64_t iw0 = 0; iw0 < g.w; iw0 += kBlock) {
        const std::int64_t iw1 = std::min(g.w, iw0 + kBlock);
        for (std::int64_t c = 0; c < g.c; ++c) {
          for (std::int64_t iw = iw0; iw < iw1; ++iw) dst[c * plane + iw] = src[iw * g.c + c];
        }
      }
    }
  }
  // Each thread owns whole rows of cols_t: one tap (i, j) of one channel c over every position.
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (k > 1 && p * k >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < k; ++row) {
    const std::int64_t i = row / (g.kw * g.c), j = (row / g.c) % g.kw, c = row % g.c;
    T* dst_row = cols_t + row * p;
    for (std::int64_t n = 0; n < g.n; ++n) {
      // (oh, ow) reads the padded plane at (oh*SH + i*DH, ow*SW + j*DW)
      const T* src = planes + (n * g.c + c) * plane + i * g.dilation_h * wp + j * g.dilation_w;
      T* dst = dst_row + n * oh_count * ow_count;
      for (std::int64_t oh = 0; oh < oh_count; ++oh) {
        const T* s_row = src + oh * g.stride_h * wp;
        T* d_row = dst + oh * ow_count;
        if (g.stride_w == 1) {
          // An overrun lands on later runs of this row of cols_t (written afterwards), never past it.
          const std::int64_t end = (n * oh_count + oh + 1) * ow_count;  // in the row, after this run
          copy_run(s_row, d_row, ow_count, end + kL - 1 <= p);
        } else {
          for (std::int64_t ow = 0; ow < ow_count; ++ow) d_row[ow] = s_row[ow * g.stride_w];
        }
      }
    }
  }
}

template <typename T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* dz, const T* w, T* dx) {
  // dZ (P, O), W (K, O) -> dX (N, H, W, C). Per chunk of whole images: dcols (rows, K) := dZ rows
  // (rows, O) * W^T (O, K) into a per-thread scratch (L2-sized: no P*K round trip through memory),
  // then col2im of those images. Every dcols row is the same dot products whatever the chunk (the
  // GEMM's rows are independent, K = O in one slice order), and the chunk size is fixed, not tied
  // to the thread count: bitwise the same on any thread count.
  const std::int64_t pix = g.out_h() * g.out_w(), k = g.taps(), hwc = g.h * g.w * g.c;
  constexpr std::int64_t kChunkRows = 256;  // output positions per GEMM, at least one image
  // Below the parallel threshold dcols is small: one GEMM for the batch, whose team forks once
  // (each chunk's GEMM forking its own team cost more than the products: on 2 cores the digits CNN's
  // conv2, 8 chunks of 256 x 144 x 32, made a 2-thread epoch 4-10x slower than a 1-thread one).
  const bool chunked = g.positions() * k >= detail::kParallelMinElements;
  const std::int64_t images = chunked ? std::max<std::int64_t>(1, kChunkRows / pix) : g.n;
  const std::int64_t chunks = (g.n + images - 1) / images;
  auto run_chunk = [&](std::int64_t chunk) {
    const std::int64_t n0 = chunk * images, count = std::min(images, g.n - n0);
    T* dcols = thread_scratch<T, 0>(images * pix * k);
    gemm<T>(false, true, count * pix, k, g.o, T(1), dz + n0 * pix * g.o, g.o, w, g.o, T(0), dcols, k);
    for (std::int64_t n = 0; n < count; ++n) {
      for (std::int64_t ih = 0; ih < g.h; ++ih) {
        col2im_row(g, dcols + n * pix * k, ih, dx + (n0 + n) * hwc + ih * g.w * g.c);
      }
    }
  };
  // Threads own chunks (each runs its GEMM and col2im alone: inside an active region the GEMM's own
  // region gets a team of one). One chunk runs outside any region, so that its GEMM forks the usual
  // team: a GEMM inside an inactive region (a parallel for whose `if` is false) would start a nested
  // team, whose threads come from a second pool and spin beside the first one's (on 2 cores the
  // digits CNN's 2-thread epoch took 5-15x its 1-thread time).
  if (chunks > 1 && num_threads() > 1) {
#pragma omp parallel for schedule(static) num_threads(num_threads())
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) run_chunk(chunk);
  } else {
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) run_chunk(chunk);
  }
}

// ---- direct convolution for few taps ------------------------------------------------------------
// When K = KH*KW*C is small (a first layer on gray or RGB images), the lowering costs more than the
// GEMM it feeds. The direct kernel reads X in place: for R output positions of one row and a block
// of NV vectors of output channels, each tap (i, j, c) broadcasts the R input values (0 outside the
// image) against NV vectors of W's row, accumulating in registers; bias and activation follow. Every
// Z element is the GEMM's dot product: 0, then one multiply-add per tap in the order (i, j, c) (the
// taps outside the image as 0 * w, as the lowered columns hold them), then + b: the same bits as
// the im2col + GEMM path (the GEMM's K slice is whole for K <= kDirectMaxTaps).


namespace {

// The input zero-padded: (N, top + H + bottom, left + W + right, C), so that every tap reads memory.
template <typename T>
const T* padded_input(const Conv2dGeometry& g, const T* x, std::int64_t* hp_out, std::int64_t* wp_out) {
  const std::int64_t hp = g.h + g.pad_top + g.pad_bottom, wp = g.w + g.pad_left + g.pad_right;
  *hp_out = hp;
  *wp_out = wp;
  if (hp == g.h && wp == g.w) return x;
  T* out = thread_scratch<T, 2>(g.n * hp * wp * g.c);
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (g.n > 1 && g.n * hp * wp * g.c >= detail::kParallelMinElements)
  for (std::int64_t n = 0; n < g.n; ++n) {
    T* image = out + n * hp * wp * g.c;
    const T* src = x + n * g.h * g.w * g.c;
    const std::int64_t row = wp * g.c;
    std::fill(image, image + g.pad_top * row, T(0));
    for (std::int64_t ih = 0; ih < g.h; ++ih) {
      T* dst = image + (g.pad_top + ih) * row;
      std::fill(dst, dst + g.pad_left * g.c, T(0));
      std::copy(src + ih * g.w * g.c, src + (ih + 1) * g.w * g.c, dst + g.pad_left * g.c);
      std::fill(dst + (g.pad_left + g.w) * g.c, dst + row, T(0));
    }
    std::fill(image + (g.pad_top + g.h) * row, image + hp * row, T(0));
  }
  return out;
}

// Z, A at positions ow0 .. ow0+R-1 of one output row, channels o0 .. o0 + NV*L - 1; `base` is the
// padded input at the row's first tap (oh*SH, 0).
template <typename T, int kNV, int kR, Activation kAct>
inline void direct_tile(const Conv2dGeometry& g, std::int64_t wp, const T* base, const T* w, const T* b,
                        std::int64_t ow0, std::int64_t o0, T* z_row, T* a_row, T param) {
  using V = typename DirectSimd<T>::type;
  constexpr int kL = DirectSimd<T>::kLanes;
  const std::int64_t step = g.stride_w * g.c;  // between the R positions
  V acc[kR][kNV];
  for (int r = 0; r < kR; ++r)
    for (int v = 0; v < kNV; ++v) acc[r][v] = V{};
  const T* w_tap = w + o0;
  for (std::int64_t i = 0; i < g.kh; ++i) {
    for (std::int64_t j = 0; j < g.kw; ++j) {
      const T* px = base + (i * g.dilation_h * wp + ow0 * g.stride_w + j * g.dilation_w) * g.c;
      for (std::int64_t c = 0; c < g.c; ++c, w_tap += g.o) {
        V wv[kNV];
        for (int v = 0; v < kNV; ++v) std::memcpy(&wv[v], w_tap + v * kL, sizeof(V));
        for (int r = 0; r < kR; ++r) {
          const T xv = px[r * step + c];
          for (int v = 0; v < kNV; ++v) acc[r][v] += xv * wv[v];
        }
      }
    }
  }
  for (int r = 0; r < kR; ++r) {
    T* zr = z_row + (ow0 + r) * g.o + o0;
    T* ar = a_row + (ow0 + r) * g.o + o0;
    for (int v = 0; v < kNV; ++v) {
      V bv;
      std::memcpy(&bv, b + o0 + v * kL, sizeof(V));
      const V zv = acc[r][v] + bv;
      std::memcpy(zr + v * kL, &zv, sizeof(V));
    }
    for (int e = 0; e < kNV * kL; ++e) ar[e] = detail::activate<kAct>(zr[e], param);
  }
}

// The channels past the last whole vector (O % L, fewer than L), one position at a time.
template <typename T, Activation kAct>
inline void direct_tail(const Conv2dGeometry& g, std::int64_t wp, const T* base, const T* w, const T* b,
                        std::int64_t ow, std::int64_t o0, T* z_row, T* a_row, T param) {
  constexpr std::int64_t kMax = 64;
  T acc[kMax] = {};
  const std::int64_t width = g.o - o0;
  const T* w_tap = w + o0;
  for (std::int64_t i = 0; i < g.kh; ++i) {
    for (std::int64_t j = 0; j < g.kw; ++j) {
      const T* px = base + (i * g.dilation_h * wp + ow * g.stride_w + j * g.dilation_w) * g.c;
      for (std::int64_t c = 0; c < g.c; ++c, w_tap += g.o) {
        const T xv = px[c];
        for (std::int64_t o = 0; o < width; ++o) acc[o] += xv * w_tap[o];
      }
    }
  }
  for (std::int64_t o = 0; o < width; ++o) {
    const T zv = acc[o] + b[o0 + o];
    z_row[ow * g.o + o0 + o] = zv;
    a_row[ow * g.o + o0 + o] = detail::activate<kAct>(zv, param);
  }
}

template <typename T, int kNV, Activation kAct>
inline void direct_block(const Conv2dGeometry& g, std::int64_t wp, const T* base, const T* w, const T* b,
                         std::int64_t o0, T* z_row, T* a_row, T param) {
  // R*NV accumulators + NV weight vectors in registers (32 vector registers with AVX-512, else 16).
  constexpr int kR = kDirectBytes == 64 ? (kNV <= 2 ? 8 : 4) : (kNV <= 2 ? 4 : 2);
  const std::int64_t ow_count = g.out_w();
  std::int64_t ow = 0;
  for (; ow + kR <= ow_count; ow += kR) direct_tile<T, kNV, kR, kAct>(g, wp, base, w, b, ow, o0, z_row, a_row, param);
  for (; ow < ow_count; ++ow) direct_tile<T, kNV, 1, kAct>(g, wp, base, w, b, ow, o0, z_row, a_row, param);
}

}  // namespace

template <typename T>
void conv2d_forward_direct(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* z, T* a,
                           Activation act, T param) {
  // X (N, H, W, C), W (K, O), b (O) -> Z, A (N, OH, OW, O); threads own output rows (n, oh).
  constexpr std::int64_t kL = DirectSimd<T>::kLanes;
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w();
  const std::int64_t rows = g.n * oh_count;
  std::int64_t hp, wp;
  const T* padded = padded_input(g, x, &hp, &wp);
  detail::dispatch_activation(act, [&](auto kind) {
    constexpr Activation kAct = decltype(kind)::value;
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && g.positions() * g.taps() * g.o >= 8 * detail::kParallelMinElements)
    for (std::int64_t row = 0; row < rows; ++row) {
      const std::int64_t n = row / oh_count, oh = row % oh_count;
      const T* base = padded + (n * hp + oh * g.stride_h) * wp * g.c;
      T* z_row = z + row * ow_count * g.o;
      T* a_row = a + row * ow_count * g.o;
      std::int64_t o0 = 0;
      for (; o0 + 4 * kL <= g.o; o0 += 4 * kL) direct_block<T, 4, kAct>(g, wp, base, w, b, o0, z_row, a_row, param);
      const std::int64_t vectors = (g.o - o0) / kL;
      if (vectors == 3) direct_block<T, 3, kAct>(g, wp, base, w, b, o0, z_row, a_row, param);
      if (vectors == 2) direct_block<T, 2, kAct>(g, wp, base, w, b, o0, z_row, a_row, param);
      if (vectors == 1) direct_block<T, 1, kAct>(g, wp, base, w, b, o0, z_row, a_row, param);
      o0 += vectors * kL;
      if (o0 < g.o) {
        for (std::int64_t ow = 0; ow < ow_count; ++ow) {
          direct_tail<T, kAct>(g, wp, base, w, b, ow, o0, z_row, a_row, param);
        }
      }
    }
  });
}

// ---- convolution --------------------------------------------------------------------------------

template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* z, T* a,
                    Activation act, T param, T* workspace) {
  const T* cols = x;  // pointwise: X (N, H, W, C) is already (P, K)
  if (!g.pointwise() && !conv2d_forward_lowers(g)) {  // few taps: no lowering, no workspace
    conv2d_forward_direct(g, x, w, b, z, a, act, param);
    return;
  }
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
  if (p * k * g.o < kTransposedLoweringMacs) {  // small: the lowered path's very calls
    conv2d_im2col(g, x, workspace);
    conv2d_backward_lowered<T>(g, da, workspace, w, z, a, act, param, dw, db, dx, nullptr);
    return;
  }
  activation_backward(p * g.o, da, z, a, act, param);  // dA becomes dZ
  column_sums(p, g.o, da, db);
  // dW (K, O) := cols^T (K, P) * dZ (P, O), with cols^T lowered straight from X: no transposed
  // operand for the GEMM to pack (twice as fast as reading cols (P, K) transposed), and the same
  // dot products in the same order as from cols: the packed GEMM packs both into the same panels.
  conv2d_im2col_transposed(g, x, workspace);
  gemm<T>(false, false, k, g.o, p, T(1), workspace, p, da, g.o, T(0), dw, g.o);
  if (dx != nullptr) conv2d_backward_input(g, da, w, dx);
}

template <typename T>
void conv2d_backward_lowered(const Conv2dGeometry& g, T* da, const T* cols, const T* w, const T* z, const T* a,
                             Activation act, T param, T* dw, T* db, T* dx, T*) {
  // cols (P, K) = im2col(X); dA, Z, A (P, O); W, dW (K, O).
  const std::int64_t p = g.positions(), k = g.taps();
  if (g.pointwise()) {  // cols is X: as conv2d_backward, dX (P, C) straight from the dense backward
    dense_backward<T>(p, k, g.o, da, cols, w, z, a, act, param, dw, db, dx);
    return;
  }
  // dA := dZ; dW (K, O) := cols^T (K, P) * dZ (P, O); db := column sums of dZ.
  dense_backward<T>(p, k, g.o, da, cols, w, z, a, act, param, dw, db, nullptr);
  if (dx != nullptr) conv2d_backward_input(g, da, w, dx);
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

namespace {

// acc[c] += idx[c] == flat ? d[c] : 0 for c < width (width <= 64, acc 64-byte aligned). Vectorized
// 8 channels at a time: an int64 comparison gives the lane masks, narrowed to T's width, and the
// select is a bitwise and (exact: the chosen value or +0).
template <typename T>
inline void add_where_chosen(std::int64_t width, const std::int64_t* idx, const T* d, std::int64_t flat, T* acc) {
  std::int64_t c = 0;
#if INITLAB_SIMD_LEVEL >= 2
  typedef std::int64_t I64x8 __attribute__((vector_size(64)));
  using Bits = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  typedef Bits Mask __attribute__((vector_size(8 * sizeof(T))));
  typedef T V __attribute__((vector_size(8 * sizeof(T))));
  for (; c + 8 <= width; c += 8) {
    I64x8 iv;
    std::memcpy(&iv, idx + c, sizeof(iv));
    const Mask m = __builtin_convertvector(iv == flat, Mask);
    V dv, av;
    std::memcpy(&dv, d + c, sizeof(V));
    std::memcpy(&av, acc + c, sizeof(V));
    av += reinterpret_cast<V>(reinterpret_cast<Mask>(dv) & m);
    std::memcpy(acc + c, &av, sizeof(V));
  }
#endif
  for (; c < width; ++c) acc[c] += idx[c] == flat ? d[c] : T(0);
}

}  // namespace

template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* dy, const std::int64_t* argmax, T* dx) {
  // dY, argmax (N, OH, OW, C) -> dX (N, H, W, C). Gather: each input pixel sums, channel by channel,
  // the dY of the windows that contain it and chose it (argmax == its flat index), in increasing
  // (oh, ow): the scatter's order, with +0 for the windows that chose another pixel (exact: the
  // running sum starts at +0 and is never -0), so the twin's bits. Every element written once, no
  // zero fill; threads own input rows (n, ih).
  constexpr std::int64_t kChannels = 64;
  const std::int64_t oh_count = g.out_h(), ow_count = g.out_w();
  const std::int64_t rows = g.n * g.h;
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (rows > 1 && rows * g.w * g.c >= detail::kParallelMinElements)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t n = row / g.h, ih = row % g.h;
    const std::int64_t oh_lo = ih >= g.ph ? (ih - g.ph) / g.stride_h + 1 : 0;
    const std::int64_t oh_hi = std::min(oh_count - 1, ih / g.stride_h);
    T* dx_row = dx + row * g.w * g.c;
    for (std::int64_t iw = 0; iw < g.w; ++iw) {
      const std::int64_t ow_lo = iw >= g.pw ? (iw - g.pw) / g.stride_w + 1 : 0;
      const std::int64_t ow_hi = std::min(ow_count - 1, iw / g.stride_w);
      const std::int64_t flat = ih * g.w + iw;
      for (std::int64_t c0 = 0; c0 < g.c; c0 += kChannels) {
        const std::int64_t width = std::min(kChannels, g.c - c0);
        alignas(64) T acc[kChannels] = {};
        for (std::int64_t oh = oh_lo; oh <= oh_hi; ++oh) {
          for (std::int64_t ow = ow_lo; ow <= ow_hi; ++ow) {
            const std::int64_t e = ((n * oh_count + oh) * ow_count + ow) * g.c + c0;
            add_where_chosen(width, argmax + e, dy + e, flat, acc);
          }
        }
        T* dst = dx_row + iw * g.c + c0;
        for (std::int64_t c = 0; c < width; ++c) dst[c] = acc[c];
      }
    }
  }
}

template <typename T>
void max_pool2d_backward_reference(const Pool2dGeometry& g, const T* dy, const std::int64_t* argmax, T* dx) {
  // The scatter: dX := 0, then dX[n, argmax, c] += dY in output order; one thread.
  const std::int64_t out_per_image = g.out_h() * g.out_w() * g.c, in_per_image = g.h * g.w * g.c;
  std::fill(dx, dx + g.n * in_per_image, T(0));
  for (std::int64_t n = 0; n < g.n; ++n) {
    T* image = dx + n * in_per_image;
    for (std::int64_t e = 0; e < out_per_image; ++e) {
      image[argmax[n * out_per_image + e] * g.c + e % g.c] += dy[n * out_per_image + e];
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
  template void conv2d_im2col_transposed<T>(const Conv2dGeometry&, const T*, T*);                     \
  template void conv2d_backward_input<T>(const Conv2dGeometry&, const T*, const T*, T*);              \
  template void conv2d_forward_direct<T>(const Conv2dGeometry&, const T*, const T*, const T*, T*, T*,  \
                                         Activation, T);                                              \
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
  template void max_pool2d_backward_reference<T>(const Pool2dGeometry&, const T*, const std::int64_t*, T*); \
  template void avg_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*);                           \
  template void avg_pool2d_backward<T>(const Pool2dGeometry&, const T*, T*);                          \
  template void global_avg_pool2d_forward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*); \
  template void global_avg_pool2d_backward<T>(std::int64_t, std::int64_t, std::int64_t, const T*, T*);

INITLAB_CONV_INSTANTIATE(float)
INITLAB_CONV_INSTANTIATE(double)
#undef INITLAB_CONV_INSTANTIATE

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
