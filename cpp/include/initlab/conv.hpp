// conv.hpp: 2-D convolution and pooling forward/backward pairs, channels last.
//
// Vocabulary: N images, H x W input pixels, C input channels, O output channels (filters),
// KH x KW kernel taps, OH x OW output pixels, P = N*OH*OW output positions, K = KH*KW*C.
//   X is (N, H, W, C) (NHWC), W is (KH, KW, C, O) (HWIO: the in_out layout, W flattened is (K, O)),
//   b is (O); Z, A, dA are (N, OH, OW, O), i.e. (P, O); dW is (KH, KW, C, O), db is (O),
//   dX is (N, H, W, C). All row-major and contiguous.
//
// Geometry: stride (SH, SW) >= 1, dilation (DH, DW) >= 1, zero padding per side (top, bottom,
// left, right) >= 0. Output pixel (oh, ow), tap (i, j) reads input pixel
//   ih = oh*SH - top + i*DH,  iw = ow*SW - left + j*DW        (zero when outside the image)
//   OH = (H + top + bottom - DH*(KH-1) - 1) / SH + 1, and the same for OW.
// The caller guarantees H + top + bottom >= DH*(KH-1) + 1 (and the same for W), so OH, OW >= 1.
// "valid" and "same" (TensorFlow: OH = ceil(H/SH), the odd extra padding row at the bottom) are
// the Python layer's business: they become these four numbers.
//
// Forward:  Z := conv(X, W) + b; A := act(Z) (act and param as in dense.hpp). Lowered onto the
//           GEMM: cols (P, K) := im2col(X) in a caller-provided workspace, then
//           Z (P, O) := cols * W (K, O) with bias and activation in the GEMM epilogue: it is
//           dense_forward on the lowered matrix. A 1x1 kernel with unit stride and no padding
//           needs no lowering (cols is X) and no workspace. Few taps (K <= 32: a first layer on
//           gray or RGB images) run conv2d_forward_direct instead, straight on X, with the very
//           bits of the lowered path. Cached for backward: Z and A.
// Backward: dZ := dA * act'(.) written over dA (in place); db := column sums of dZ (in double,
//           rows in order); dW := cols^T * dZ, where the backward lowers X again, transposed, into
//           the workspace: cols^T (K, P) (conv2d_im2col_transposed; it does not trust the workspace
//           to still hold the forward's columns, and a (K, P) operand is what the GEMM reads fastest
//           for this product: the same dot products in the same order as cols^T read from cols);
//           conv2d_backward_lowered takes columns (P, K) the caller kept from the forward instead
//           (and conv2d_backward itself lowers to (P, K) and takes that path for products dW of
//           fewer than 2^23 multiply-adds: both paths give the same bits at every size).
//           dX (skipped when dX is null; conv2d_backward_input): per chunk of whole images
//           (256 output positions, at least one image), dcols := dZ * W^T into a per-thread
//           scratch that stays in cache, then dX := col2im(dcols) of those images.
//           dW, db, dX are overwritten, never accumulated. Outputs must not overlap inputs.
// Determinism: im2col threads own rows of cols (output rows (n, oh)), the transposed lowering rows
//           of cols^T (taps); col2im threads own rows of dX (input rows (n, ih)) and gather every
//           contribution to them in a fixed order (tap row, output column, tap column), so no two
//           threads write one element and no atomics are needed; the backward's dX threads own
//           chunks of images of a fixed size; the GEMMs split output tiles only. Bitwise the same
//           on any thread count.
// NaN/Inf propagate as in the GEMM (a NaN in X reaches every output position that reads it).
//
// Pooling (no padding; OH = (H - PH) / SH + 1, floor, as PyTorch; the caller guarantees
// PH <= H and PW <= W). Y, dY are (N, OH, OW, C); X, dX are (N, H, W, C).
//   max:  Y = max over the window; argmax (N, OH, OW, C), int64, holds the flat index ih*W + iw
//         of the chosen input pixel in its image (PyTorch's return_indices). Windows are scanned
//         row by row; an element replaces the running maximum when it is greater or NaN, so ties
//         go to the first index and a NaN wins (as PyTorch's CPU kernel). Backward:
//         dX := 0, then dX[n, argmax, c] += dY for every output in order (overlapping windows
//         add up), computed as a gather: threads own input rows, each pixel sums the windows that
//         contain it in that order.
//   avg:  Y = sum over the window (in double) / (PH*PW); backward dX[window] += dY / (PH*PW),
//         gathered per input row in a fixed order.
//   global average: Y (N, C) = mean over the H*W pixels (in double, in order); backward
//         dX (N, H, W, C) := dY / (H*W) broadcast.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>

#include "initlab/dense.hpp"

INITLAB_NAMESPACE_BEGIN

struct Conv2dGeometry {
  std::int64_t n, h, w, c;  // input (N, H, W, C)
  std::int64_t kh, kw, o;   // kernel (KH, KW, C, O)
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  std::int64_t out_h() const { return (h + pad_top + pad_bottom - dilation_h * (kh - 1) - 1) / stride_h + 1; }
  std::int64_t out_w() const { return (w + pad_left + pad_right - dilation_w * (kw - 1) - 1) / stride_w + 1; }
  std::int64_t positions() const { return n * out_h() * out_w(); }  // P
  std::int64_t taps() const { return kh * kw * c; }                 // K
  // True when the lowering is the identity (1x1 kernel, unit stride, no padding): cols is X.
  bool pointwise() const {
    return kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 && pad_bottom == 0 &&
           pad_left == 0 && pad_right == 0;
  }
};

// Elements the workspace of conv2d_forward / conv2d_backward must hold: P*K, or 0 when pointwise.
std::int64_t conv2d_workspace_size(const Conv2dGeometry& g);

// Whether conv2d_forward lowers X into its workspace (then it holds im2col(X), the columns that
// conv2d_backward_lowered takes, after the call): not for a pointwise kernel (cols is X) and not
// for few taps (K <= 32: the direct kernel reads X in place and leaves the workspace alone).
bool conv2d_forward_lowers(const Conv2dGeometry& g);

// X is (N, H, W, C); cols is (P, K): row (n, oh, ow), column (i, j, c) = X[n, ih, iw, c] or 0.
template <typename T>
void conv2d_im2col(const Conv2dGeometry& g, const T* x, T* cols);

// cols is (P, K); dX is (N, H, W, C) := the sum of every column entry into the pixel it was read
// from (the adjoint of im2col). Overwrites dX.
template <typename T>
void conv2d_col2im(const Conv2dGeometry& g, const T* cols, T* dx);

// The direct forward for few taps: X (N, H, W, C), W (KH, KW, C, O), b (O); Z, A (N, OH, OW, O).
// Each Z element is 0, then one multiply-add per tap (i, j, c) in order (a tap outside the image
// multiplies 0, as the lowered columns hold it), then + b: bitwise the im2col + GEMM result when
// K = KH*KW*C fits one K slice of the GEMM (K <= 32 here). Vectorized over output channels, R output
// positions of a row at a time; threads own output rows. A may be Z only for activation linear.
template <typename T>
void conv2d_forward_direct(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* z, T* a,
                           Activation act, T param);

// X is (N, H, W, C); cols_t is (K, P): the transpose of im2col's cols. Uses a per-thread scratch of
// N*C*H*W elements (the channel planes) when C > 1.
template <typename T>
void conv2d_im2col_transposed(const Conv2dGeometry& g, const T* x, T* cols_t);

// dZ is (N, OH, OW, O), W is (KH, KW, C, O); dX (N, H, W, C) := col2im(dZ * W^T), chunk by chunk of
// images through a per-thread scratch (min(N, max(1, 256 / (OH*OW))) * OH*OW*K elements).
template <typename T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* dz, const T* w, T* dx);

// X is (N, H, W, C), W is (KH, KW, C, O), b is (O); Z, A are (N, OH, OW, O);
// workspace holds conv2d_workspace_size(g) elements (unused and may be null when pointwise).
template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* z, T* a,
                    Activation act, T param, T* workspace);

// dA is (N, OH, OW, O) in, overwritten with dZ; X is (N, H, W, C), W is (KH, KW, C, O);
// Z, A are (N, OH, OW, O); dW is (KH, KW, C, O), db is (O), dX is (N, H, W, C) or null;
// workspace as for the forward.
template <typename T>
void conv2d_backward(const Conv2dGeometry& g, T* da, const T* x, const T* w, const T* z, const T* a,
                     Activation act, T param, T* dw, T* db, T* dx, T* workspace);

// As conv2d_backward, but cols (P, K) already holds im2col(X) (the forward's lowering,
// kept by the caller; X itself when pointwise), so X is not lowered again: the same dot products
// in the same order, bitwise the same results. cols is only read; the workspace is not used (it may
// be null): dX goes through conv2d_backward_input's per-thread scratch.
template <typename T>
void conv2d_backward_lowered(const Conv2dGeometry& g, T* da, const T* cols, const T* w, const T* z, const T* a,
                             Activation act, T param, T* dw, T* db, T* dx, T* workspace);

// The naive twins: direct loops over (n, oh, ow, o) and the taps, one thread, accumulation in T
// over (i, j, c) in order; the same contracts without a workspace. Test oracles.
template <typename T>
void conv2d_forward_reference(const Conv2dGeometry& g, const T* x, const T* w, const T* b, T* z, T* a,
                              Activation act, T param);
template <typename T>
void conv2d_backward_reference(const Conv2dGeometry& g, T* da, const T* x, const T* w, const T* z,
                               const T* a, Activation act, T param, T* dw, T* db, T* dx);

struct Pool2dGeometry {
  std::int64_t n, h, w, c;  // input (N, H, W, C)
  std::int64_t ph, pw;      // window
  std::int64_t stride_h, stride_w;

  std::int64_t out_h() const { return (h - ph) / stride_h + 1; }
  std::int64_t out_w() const { return (w - pw) / stride_w + 1; }
};

// X is (N, H, W, C); Y, argmax are (N, OH, OW, C).
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax);

// dY, argmax are (N, OH, OW, C); dX is (N, H, W, C). Every argmax must be the flat index of a pixel
// inside its own window (as max_pool2d_forward writes it): the fast kernel gathers, per input pixel,
// from the windows that contain it (bitwise the scatter of the twin below).
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* dy, const std::int64_t* argmax, T* dx);
// The naive twin: dX := 0, then dX[n, argmax, c] += dY for every output in order (one thread).
template <typename T>
void max_pool2d_backward_reference(const Pool2dGeometry& g, const T* dy, const std::int64_t* argmax, T* dx);

// X is (N, H, W, C); Y is (N, OH, OW, C).
template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y);

// dY is (N, OH, OW, C); dX is (N, H, W, C).
template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* dy, T* dx);

// X is (N, HW, C) (the H*W pixels of each image in order); Y is (N, C).
template <typename T>
void global_avg_pool2d_forward(std::int64_t n, std::int64_t hw, std::int64_t c, const T* x, T* y);

// dY is (N, C); dX is (N, HW, C).
template <typename T>
void global_avg_pool2d_backward(std::int64_t n, std::int64_t hw, std::int64_t c, const T* dy, T* dx);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
