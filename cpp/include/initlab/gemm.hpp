// gemm.hpp: C := beta*C + alpha*op(A)*op(B), row-major, float and double, with an epilogue.
//
// Contract
// - Dimensions: op(A) is (M, K), op(B) is (K, N), C is (M, N). Row-major with leading dimensions
//   lda, ldb, ldc (elements between consecutive rows). trans_a: A is stored (K, M) and op(A) = A^T;
//   trans_b: B is stored (N, K) and op(B) = B^T. The three products of a dense layer are
//   X*W (no transposes), dZ*W^T (trans_b) and X^T*dZ (trans_a).
// - beta == 0 never reads C: NaN or Inf already in C do not propagate (BLAS convention).
// - Aliasing: C must not overlap A or B.
// - NaN/Inf in A or B propagate by IEEE arithmetic (0 * Inf = NaN); nothing traps or loops.
// - Determinism: each element of C is one dot product accumulated over K in a fixed order (K blocks
//   of kKC in order, then the micro-kernel's sequential p loop), and threads split only the output
//   tiles (the jr and ic loops), never K. The result is bitwise identical for any thread count.
// - The epilogue, when given, is called exactly once for every element of C, after its final value
//   is stored, by the thread that owns that tile: apply(ctx, C + i0*ldc + j0, ldc, i0, j0, m, n)
//   hands over the m x n block of C at rows [i0, i0+m) and columns [j0, j0+n). Dense layers use it
//   to add the bias and apply the activation while the tile is still in cache.
//
// Structure (BLIS, Goto & van de Geijn 2008; Van Zee & van de Geijn 2015):
//   jc loop: NC-wide column blocks of C and B
//     pc loop: KC-deep slices of K; op(B)[pc:pc+KC, jc:jc+NC] is packed into NR-wide panels
//       ic loop: MC-tall row blocks; op(A)[ic:ic+MC, pc:pc+KC] is packed into MR-tall panels
//         jr loop: NR-wide panels of packed B       (parallel with the ic loop: output tiles)
//           ir loop: MR-tall panels of packed A
//             micro-kernel: an MR x NR tile of C += packed A panel * packed B panel over KC
// When M fits one row block (M <= MC: every product of a training step whose M is the batch),
// the ic loop disappears: op(A) is packed once per K slice and shared, and each thread packs the B
// panels of its own jr range into an L1-sized buffer just before using them.
// Packed panels are zero-padded to whole MR / NR, so the micro-kernel never branches on edges; edge
// tiles are computed into a local MR x NR buffer and copied out. Transposed operands are packed
// with L x L register transposes. Packing buffers are per thread, grown once and reused, so a
// steady-state call allocates nothing (gemm_workspace_allocations() counts the growths).
// The direct path (no packing of A; a transposed B packed into NR panels): products of at most 2^18
// multiply-adds, and any product whose K slice of op(B) (min(K, KC) x N) fits in 256 KiB (L2), run
// register tiles of 8 rows x 2 vectors (512-bit on AVX-512 builds) straight on the operands, K in
// the same KC slices, threads over row blocks: bitwise the packed path's results.
// Tiny products (M*N*K < 2048) go to gemm_reference, the triple-loop twin; products too small to
// pay for a fork/join (M*N*K < 2^18 per thread) use fewer threads. Neither choice depends on the
// thread count in a way that changes results: a tile is computed the same way by any thread.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>

INITLAB_NAMESPACE_BEGIN

template <typename T>
struct GemmEpilogue {
  void (*apply)(const void* ctx, T* c_block, std::int64_t ldc, std::int64_t i0, std::int64_t j0,
                std::int64_t m, std::int64_t n) = nullptr;
  const void* ctx = nullptr;
};

// The fast path (packed panels, register-tiled micro-kernel, OpenMP over output tiles).
template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
          const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const GemmEpilogue<T>* epilogue = nullptr);

// The naive twin: for each (i, j), a sequential dot product over p. Test oracle and the fallback
// for tiny shapes. Same contract (beta == 0 never reads C; the epilogue sees all of C once).
template <typename T>
void gemm_reference(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                    T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
                    std::int64_t ldc, const GemmEpilogue<T>* epilogue = nullptr);

// How many times a packing buffer was (re)allocated since the process started: constant across
// repeated calls with the same shapes (the buffers only grow), which the tests check.
std::int64_t gemm_workspace_allocations();

// The micro-kernel alone on packed panels, for the native benchmark's roofline figure:
// c (MR x NR, row stride ldc) := packed_a (KC x MR) * packed_b (KC x NR), repeated `repeats` times.
template <typename T>
void gemm_microkernel_bench(std::int64_t kc, const T* packed_a, const T* packed_b, T* c,
                            std::int64_t repeats);
template <typename T>
int gemm_mr();
template <typename T>
int gemm_nr();

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
