// gemm.cpp: C := beta*C + alpha*op(A)*op(B) (contract and loop structure in gemm.hpp).
// op(A) is (M, K), op(B) is (K, N), C is (M, N); row-major with leading dimensions lda, ldb, ldc.
#include "initlab/gemm.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#include "initlab/parallel.hpp"

#if INITLAB_SIMD_LEVEL >= 2
#include <immintrin.h>
#endif

INITLAB_NAMESPACE_BEGIN

// ---- the naive twin ----------------------------------------------------------------------------

template <typename T>
void gemm_reference(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
                    T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
                    std::int64_t ldc, const GemmEpilogue<T>* epilogue) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      T acc = T(0);
      for (std::int64_t p = 0; p < k; ++p) {
        const T a_ip = trans_a ? a[p * lda + i] : a[i * lda + p];
        const T b_pj = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        acc += a_ip * b_pj;
      }
      T& c_ij = c[i * ldc + j];
      c_ij = beta == T(0) ? alpha * acc : alpha * acc + beta * c_ij;  // beta == 0 never reads C
    }
  }
  if (epilogue != nullptr && epilogue->apply != nullptr && m > 0 && n > 0) {
    epilogue->apply(epilogue->ctx, c, ldc, 0, 0, m, n);
  }
}

// ---- blocking constants, named once --------------------------------------------------------------
// MR x NR: the register tile, MR*NR/L accumulators + NR/L vectors of B (the A value of each row is
// broadcast straight from memory into the FMA). KC: depth of a packed slice; it also fixes how K is
// cut into FMA chains (each C element accumulates one chain per KC slice), so it is the same on every
// path and both the packed and the direct path use it: changing it changes results. MC: rows of the
// packed A block (KC x MC in L2), tall enough that a batch of 256 rows is one block. NC: columns of
// the packed B block (KC x NC in L3), a multiple of NR.
//
// AVX-512 (INITLAB_SIMD_LEVEL >= 3; 32 zmm registers): an 8 x 32 float tile (8 x 16 double) is
// 16 accumulators + 2 B vectors: 16 FMAs per 2 vector loads and 8 broadcasts. The KC x NR panel of B
// that the tile loop keeps in L1 is 32 KiB, and the A panel streamed past it 8 KiB (double 16 KiB):
// both fit the 48 KiB L1 of Zen 4/5 (Intel's is 48 KiB from Ice Lake on). Measured on Zen 5, one
// core, by CPU time: 8 rows 244-248 GFLOP/s at n = 1024 and 2048 against 12 rows' 213-238 and 14
// rows' 220 (all 280-287 on L1-resident panels: the 12- and 14-row A panels crowd B out of L1); 8 rows
// also tile a batch of 64, 128 or 256 rows with no edge. Double: 8 rows 110-117 GFLOP/s, 12 rows
// 100-110. The A block of 264 rows (float; double 136) x KC is 264 KiB (272 KiB) of the 1 MiB L2.
// AVX2 (16 ymm registers): 6 x 16 float (6 x 8 double), 12 accumulators + 2 B vectors; a KC x NR
// panel of B is 16 KiB, the A block 264 KiB (float; double 132 rows).
// Without AVX2 (the baseline x86-64 path: SSE2, 16 xmm registers; or another architecture) vectors
// are 16 bytes and the tile is 6 x 2 vectors (12 accumulators).
#if INITLAB_SIMD_LEVEL >= 3
constexpr int kPackedVectorBytes = 64;
#elif INITLAB_SIMD_LEVEL >= 2
constexpr int kPackedVectorBytes = 32;
#else
constexpr int kPackedVectorBytes = 16;
#endif
template <typename T>
struct Blocking;
#if INITLAB_SIMD_LEVEL >= 3
template <>
struct Blocking<float> {
  static constexpr int kMR = 8, kNR = 32;
  static constexpr std::int64_t kKC = 256, kMC = 264, kNC = 4096;
};
template <>
struct Blocking<double> {
  static constexpr int kMR = 8, kNR = 16;
  static constexpr std::int64_t kKC = 256, kMC = 136, kNC = 4096;
};
#else
template <>
struct Blocking<float> {
  static constexpr int kMR = 6, kNR = 2 * kPackedVectorBytes / 4;
  static constexpr std::int64_t kKC = 256, kMC = 264, kNC = 4080;
};
template <>
struct Blocking<double> {
  static constexpr int kMR = 6, kNR = 2 * kPackedVectorBytes / 8;
  static constexpr std::int64_t kKC = 256, kMC = 132, kNC = 4080;
};
#endif
static_assert(Blocking<float>::kKC == 256 && Blocking<double>::kKC == 256,
              "KC fixes the FMA chains of every C element: the same on every path");
static_assert(Blocking<float>::kNC % Blocking<float>::kNR == 0 && Blocking<double>::kNC % Blocking<double>::kNR == 0,
              "a B block is whole panels");
static_assert(Blocking<float>::kMC % Blocking<float>::kMR == 0 && Blocking<double>::kMC % Blocking<double>::kMR == 0,
              "an A block is whole panels");

// Products with M*N*K below this go to the triple loop: packing would cost more than it saves.
constexpr std::int64_t kGemmSmall = 2048;
// Multiply-adds per thread below which adding a thread costs more (fork/join) than it saves.
constexpr std::int64_t kMinMacsPerThread = 1 << 18;
// Single row-block path: B panels packed together (4 x 16 KiB: in L2, the one in use in L1).
constexpr std::int64_t kPanelsPerPack = 4;

namespace {
std::atomic<std::int64_t> g_workspace_allocations{0};
}  // namespace

std::int64_t gemm_workspace_allocations() {
  return g_workspace_allocations.load(std::memory_order_relaxed);
}

template <typename T>
int gemm_mr() {
  return Blocking<T>::kMR;
}
template <typename T>
int gemm_nr() {
  return Blocking<T>::kNR;
}

namespace {

// The micro-kernel's vector of T (GCC/Clang vector extension): 512-bit on AVX-512 builds (16 floats
// or 8 doubles), 256-bit with AVX2 (8 floats or 4 doubles), else 128-bit.
template <typename T>
struct Simd {
  typedef T type __attribute__((vector_size(kPackedVectorBytes)));
  static constexpr int kLanes = kPackedVectorBytes / static_cast<int>(sizeof(T));
};
// A 256-bit vector of T: the register transposes that pack a transposed B work on 8 x 8 floats
// (4 x 4 doubles) whatever the micro-kernel's width.
template <typename T>
struct Simd256 {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int kLanes = 32 / static_cast<int>(sizeof(T));
};

// acc := a * b + acc per lane with one rounding (a fused multiply-add), written out rather than left
// to -ffp-contract: GCC's tuning for some CPUs (avoid-fma-chains, on for Zen's 256-bit vectors) keeps
// a loop-carried chain as a multiply and an add in one kernel and fuses it in another (it did in the
// 1-row, 1-vector direct tile of the AVX2 path), and then the direct and packed paths no longer agree
// bitwise. The baseline path (no FMA instruction assumed) multiplies and adds, the same way in every
// kernel. Operands by reference: no vector-ABI question where the vectors are wider than the target's.
template <typename T, typename V>
inline void fmadd_into(V& acc, const V& a, const V& b) {
#if INITLAB_SIMD_LEVEL >= 2
  if constexpr (sizeof(V) == 32 && std::is_same_v<T, float>) {
    acc = reinterpret_cast<V>(_mm256_fmadd_ps(reinterpret_cast<__m256>(a), reinterpret_cast<__m256>(b),
                                              reinterpret_cast<__m256>(acc)));
  } else if constexpr (sizeof(V) == 32) {
    acc = reinterpret_cast<V>(_mm256_fmadd_pd(reinterpret_cast<__m256d>(a), reinterpret_cast<__m256d>(b),
                                              reinterpret_cast<__m256d>(acc)));
#if INITLAB_SIMD_LEVEL >= 3
  } else if constexpr (sizeof(V) == 64 && std::is_same_v<T, float>) {
    acc = reinterpret_cast<V>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a), reinterpret_cast<__m512>(b),
                                              reinterpret_cast<__m512>(acc)));
  } else if constexpr (sizeof(V) == 64) {
    acc = reinterpret_cast<V>(_mm512_fmadd_pd(reinterpret_cast<__m512d>(a), reinterpret_cast<__m512d>(b),
                                              reinterpret_cast<__m512d>(acc)));
#endif
  } else {
    static_assert(sizeof(V) == 0, "fmadd_into: no fused multiply-add for this vector width");
  }
#else
  acc = a * b + acc;
#endif
}

// ---- the micro-kernel ----------------------------------------------------------------------------
// c (MR x NR, row stride ldc) := beta*c + alpha * a_panel * b_panel, where a_panel is KC x MR
// (MR values per p) and b_panel is KC x NR (NR values per p, 64-byte aligned). beta == 0 never reads
// c. Each of the MR x NR dot products is accumulated over p = 0..kc-1 in order: one vector FMA per
// (row, vector) per p, MR*NR/L accumulators held in registers (the loops over r and v are fully
// unrolled by the compiler, so acc[r][v] are scalar-replaced into zmm / ymm registers), then
// alpha*acc, plus beta*C in one more FMA when beta != 0.
template <typename T>
inline void micro_kernel(std::int64_t kc, const T* __restrict a_panel, const T* __restrict b_panel,
                         T alpha, T beta, T* __restrict c, std::int64_t ldc) {
  using V = typename Simd<T>::type;
  constexpr int kMR = Blocking<T>::kMR, kL = Simd<T>::kLanes, kNV = Blocking<T>::kNR / kL;
  V acc[kMR][kNV];
#pragma GCC unroll 16
  for (int r = 0; r < kMR; ++r) {
    // C is read (beta != 0) or written at the end: start bringing its lines in now.
    __builtin_prefetch(c + r * ldc, 1);
    __builtin_prefetch(c + r * ldc + Blocking<T>::kNR - 1, 1);
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[r][v] = V{};
  }
#pragma GCC unroll 4
  for (std::int64_t p = 0; p < kc; ++p) {
    V b_vec[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) b_vec[v] = *reinterpret_cast<const V*>(b_panel + v * kL);
#pragma GCC unroll 16
    for (int r = 0; r < kMR; ++r) {
      const V a_r = a_panel[r] - V{};  // a broadcast (x - 0 is x exactly), folded into the FMA
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) fmadd_into<T>(acc[r][v], a_r, b_vec[v]);
    }
    a_panel += kMR;
    b_panel += Blocking<T>::kNR;
  }
#pragma GCC unroll 16
  for (int r = 0; r < kMR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      T* c_rv = c + r * ldc + v * kL;
      V out = alpha * acc[r][v];
      if (beta != T(0)) {  // beta*C + alpha*acc, one rounding after alpha*acc's
        V old;
        std::memcpy(&old, c_rv, sizeof(V));
        fmadd_into<T>(out, beta - V{}, old);
      }
      std::memcpy(c_rv, &out, sizeof(V));
    }
  }
}

// ---- packing ------------------------------------------------------------------------------------

// op(A)[i0 : i0+mc, p0 : p0+kc] -> panels of MR rows; panel ip holds kc groups of MR values (rows
// i0 + ip*MR + r), rows past mc zero-filled so the micro-kernel never sees an edge.
template <typename T>
void pack_a_panel(bool trans_a, const T* a, std::int64_t lda, std::int64_t i0, std::int64_t p0,
                  std::int64_t rows, std::int64_t kc, T* dst) {
  constexpr int kMR = Blocking<T>::kMR;
  if (trans_a) {  // A is (K, M): the MR values of one p are contiguous
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = a + (p0 + p) * lda + i0;
      for (int r = 0; r < kMR; ++r) dst[p * kMR + r] = r < rows ? src[r] : T(0);
    }
  } else {  // A is (M, K): read each row contiguously, write with stride MR
    for (int r = 0; r < kMR; ++r) {
      if (r < rows) {
        const T* src = a + (i0 + r) * lda + p0;
        for (std::int64_t p = 0; p < kc; ++p) dst[p * kMR + r] = src[p];
      } else {
        for (std::int64_t p = 0; p < kc; ++p) dst[p * kMR + r] = T(0);
      }
    }
  }
}

// rows[r][c] -> rows[c][r]: an L x L transpose in registers with the unpack / shuffle / 128-bit
// permute sequence (each __builtin_shuffle below is one AVX instruction). 256-bit vectors only.
#if defined(__GNUC__) && !defined(__clang__) && INITLAB_SIMD_LEVEL >= 2
template <typename T>
inline void transpose_in_registers(typename Simd256<T>::type* rows) {
  using V = typename Simd256<T>::type;
  if constexpr (std::is_same_v<T, float>) {
    using I = std::int32_t __attribute__((vector_size(32)));
    const I unpack_lo{0, 8, 1, 9, 4, 12, 5, 13}, unpack_hi{2, 10, 3, 11, 6, 14, 7, 15};
    const I pairs_lo{0, 1, 8, 9, 4, 5, 12, 13}, pairs_hi{2, 3, 10, 11, 6, 7, 14, 15};
    const I halves_lo{0, 1, 2, 3, 8, 9, 10, 11}, halves_hi{4, 5, 6, 7, 12, 13, 14, 15};
    V t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = __builtin_shuffle(rows[i], rows[i + 1], unpack_lo);
      t[i + 1] = __builtin_shuffle(rows[i], rows[i + 1], unpack_hi);
    }
    for (int i = 0; i < 8; i += 4) {
      u[i] = __builtin_shuffle(t[i], t[i + 2], pairs_lo);
      u[i + 1] = __builtin_shuffle(t[i], t[i + 2], pairs_hi);
      u[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], pairs_lo);
      u[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], pairs_hi);
    }
    for (int i = 0; i < 4; ++i) {
      rows[i] = __builtin_shuffle(u[i], u[i + 4], halves_lo);
      rows[i + 4] = __builtin_shuffle(u[i], u[i + 4], halves_hi);
    }
  } else {
    using I = std::int64_t __attribute__((vector_size(32)));
    const I unpack_lo{0, 4, 2, 6}, unpack_hi{1, 5, 3, 7};
    const I halves_lo{0, 1, 4, 5}, halves_hi{2, 3, 6, 7};
    const V t0 = __builtin_shuffle(rows[0], rows[1], unpack_lo);
    const V t1 = __builtin_shuffle(rows[0], rows[1], unpack_hi);
    const V t2 = __builtin_shuffle(rows[2], rows[3], unpack_lo);
    const V t3 = __builtin_shuffle(rows[2], rows[3], unpack_hi);
    rows[0] = __builtin_shuffle(t0, t2, halves_lo);
    rows[1] = __builtin_shuffle(t1, t3, halves_lo);
    rows[2] = __builtin_shuffle(t0, t2, halves_hi);
    rows[3] = __builtin_shuffle(t1, t3, halves_hi);
  }
}
#endif

// op(B)[p0 : p0+kc, j0 : j0+NR] -> one panel of kc groups of NR values, columns past `cols` zeroed.
template <typename T>
void pack_b_panel(bool trans_b, const T* b, std::int64_t ldb, std::int64_t p0, std::int64_t j0,
                  std::int64_t cols, std::int64_t kc, T* dst) {
  constexpr int kNR = Blocking<T>::kNR;
  if (!trans_b) {  // B is (K, N): NR contiguous values per p
    constexpr std::int64_t kAhead = 8;  // rows of B requested ahead: each row is a new cache line
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = b + (p0 + p) * ldb + j0;
      if (p + kAhead < kc) {
        __builtin_prefetch(src + kAhead * ldb);
        __builtin_prefetch(src + kAhead * ldb + kNR - 1);
      }
      T* out = dst + p * kNR;
      if (cols == kNR) {
        std::memcpy(out, src, sizeof(T) * kNR);
      } else {
        for (int j = 0; j < kNR; ++j) out[j] = j < cols ? src[j] : T(0);
      }
    }
  } else {  // B is (N, K): transpose L x L blocks in registers (L = lanes: 8 floats, 4 doubles)
    std::int64_t p = 0;
// __builtin_shuffle is GCC's; others, and the baseline path, take the scalar loop
#if defined(__GNUC__) && !defined(__clang__) && INITLAB_SIMD_LEVEL >= 2
    using V = typename Simd256<T>::type;
    constexpr int kL = Simd256<T>::kLanes;
    for (; p + kL <= kc; p += kL) {
      for (int half = 0; half < kNR / kL; ++half) {
        V rows[kL];
        for (int r = 0; r < kL; ++r) {
          const int j = half * kL + r;
          if (j < cols) {
            std::memcpy(&rows[r], b + (j0 + j) * ldb + p0 + p, sizeof(V));
          } else {
            rows[r] = V{};
          }
        }
        transpose_in_registers<T>(rows);
        for (int c = 0; c < kL; ++c) std::memcpy(dst + (p + c) * kNR + half * kL, &rows[c], sizeof(V));
      }
    }
#endif
    for (; p < kc; ++p) {  // the last kc % L values of each row
      for (int j = 0; j < kNR; ++j) dst[p * kNR + j] = j < cols ? b[(j0 + j) * ldb + p0 + p] : T(0);
    }
  }
}

// op(B)[p0 : p0+kc, j0 : j0+panels*NR] -> `panels` consecutive panels (cols valid columns in all).
// For a row-major B this reads panels*NR contiguous values per row p, several cache lines at a
// time, instead of one line per row per panel.
template <typename T>
void pack_b_panels(bool trans_b, const T* b, std::int64_t ldb, std::int64_t p0, std::int64_t j0,
                   std::int64_t cols, std::int64_t kc, std::int64_t panels, T* dst) {
  constexpr int kNR = Blocking<T>::kNR;
  if (trans_b || cols < panels * kNR) {
    for (std::int64_t q = 0; q < panels; ++q) {
      pack_b_panel(trans_b, b, ldb, p0, j0 + q * kNR, std::min<std::int64_t>(kNR, cols - q * kNR), kc,
                   dst + q * kc * kNR);
    }
    return;
  }
  constexpr std::int64_t kAhead = 8;  // rows of B requested ahead
  for (std::int64_t p = 0; p < kc; ++p) {
    const T* src = b + (p0 + p) * ldb + j0;
    if (p + kAhead < kc) {  // every cache line of the row kAhead rows on
      constexpr std::int64_t kLine = 64 / sizeof(T);
      for (std::int64_t j = 0; j < panels * kNR; j += kLine) __builtin_prefetch(src + kAhead * ldb + j);
      __builtin_prefetch(src + kAhead * ldb + panels * kNR - 1);
    }
    for (std::int64_t q = 0; q < panels; ++q) {
      std::memcpy(dst + q * kc * kNR + p * kNR, src + q * kNR, sizeof(T) * kNR);
    }
  }
}

// A 64-byte aligned buffer that only grows: one per calling thread and element type, so a
// steady-state GEMM allocates nothing.
template <typename T>
struct PackBuffer {
  T* data = nullptr;
  std::int64_t capacity = 0;
  ~PackBuffer() { std::free(data); }
  T* reserve(std::int64_t count) {
    if (count > capacity) {
      std::free(data);
      const std::size_t bytes = ((static_cast<std::size_t>(count) * sizeof(T) + 63) / 64) * 64;
      data = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (data == nullptr) throw std::bad_alloc();
      capacity = count;
      g_workspace_allocations.fetch_add(1, std::memory_order_relaxed);
    }
    return data;
  }
};

template <typename T>
struct PackBuffers {
  PackBuffer<T> b;  // blocked path: the B block, in the calling thread's buffers, shared by the team
  PackBuffer<T> a_block, b_panel;  // each team thread's own A block and (single row-block path) B panel
};

template <typename T>
PackBuffers<T>& pack_buffers() {
  thread_local PackBuffers<T> buffers;
  return buffers;
}

// One MR x NR tile of C at (row, col) with mr x nr valid elements; edge tiles go through a local
// copy of C's valid part so that the micro-kernel always works on a whole tile. An edge element gets
// the micro-kernel's own arithmetic (alpha*acc, then + beta*C), as the direct path's edges do: no
// element's bits depend on where the tile edges fall (MR and NR differ between builds).
template <typename T>
inline void compute_tile(std::int64_t kc, const T* a_panel, const T* b_panel, T alpha, T beta, T* c,
                         std::int64_t ldc, std::int64_t mr, std::int64_t nr) {
  constexpr int kMR = Blocking<T>::kMR, kNR = Blocking<T>::kNR;
  if (mr == kMR && nr == kNR) {
    micro_kernel<T>(kc, a_panel, b_panel, alpha, beta, c, ldc);
    return;
  }
  alignas(64) T tile[kMR * kNR] = {};
  if (beta != T(0)) {  // beta == 0 never reads C
    for (std::int64_t r = 0; r < mr; ++r) {
      for (std::int64_t j = 0; j < nr; ++j) tile[r * kNR + j] = c[r * ldc + j];
    }
  }
  micro_kernel<T>(kc, a_panel, b_panel, alpha, beta, tile, kNR);
  for (std::int64_t r = 0; r < mr; ++r) {
    for (std::int64_t j = 0; j < nr; ++j) c[r * ldc + j] = tile[r * kNR + j];
  }
}

// ---- the direct path -----------------------------------------------------------------------------
// Below the sizes where packing pays (a 32x64x64 product spent about as long packing as multiplying),
// and wherever a K slice of op(B) stays in L2, a register-blocked kernel reads the operands where
// they lie: op(B) rows are contiguous in B when
// B is not transposed, and op(A)'s values are broadcast straight from A either way (trans_a: the
// kRows values of one p are contiguous). A transposed B is packed into NR-wide panels first. Vectors
// are 512-bit where the build targets AVX-512 (32 vector registers: an 8 x 2-vector tile), 256-bit
// otherwise. Each C element is the same sequential FMA chain over p = 0..k-1 as the micro-kernel's,
// then alpha*acc (+ beta*C), K slice by K slice as the packed path cuts K: the results are bitwise
// those of the packed path (tested).
#if INITLAB_SIMD_LEVEL >= 3
constexpr int kSmallVectorBytes = 64;
#elif INITLAB_SIMD_LEVEL >= 2
constexpr int kSmallVectorBytes = 32;
#else
constexpr int kSmallVectorBytes = 16;
#endif
template <typename T>
struct SmallSimd {
  typedef T type __attribute__((vector_size(kSmallVectorBytes)));
  static constexpr int kLanes = kSmallVectorBytes / static_cast<int>(sizeof(T));
};
constexpr int kSmallMR = INITLAB_SIMD_LEVEL >= 2 ? 8 : 6;  // rows of a small tile (16 xmm registers: 6)
constexpr int kSmallNV = 2;   // vectors per row of a small tile
// Products up to this many multiply-adds take the direct path whatever their shape, and so does any
// product whose K slice of op(B) (min(K, KC) x N) fits in kDirectMaxSliceBytes (it stays in L2 while
// every row block reads it): measured 1.5-2.2x the packed path on the MLP shapes that qualify
// (512-bit tiles against the packed micro-kernel's 256-bit ones).
constexpr std::int64_t kSmallMaxMacs = kMinMacsPerThread;
constexpr std::int64_t kDirectMaxSliceBytes = std::int64_t{256} << 10;

// c (kRows x kNV*L, row stride ldc) := alpha * op(A)[rows] * B[:, cols] (+ beta * c). op(A)'s
// element (r, p) is a[r*a_row + p*a_p]; B is (k, >= kNV*L) with row stride ldb.
template <typename T, int kRows, int kNV>
inline void small_tile(std::int64_t k, const T* __restrict a, std::int64_t a_row, std::int64_t a_p,
                       const T* __restrict b, std::int64_t ldb, T alpha, T beta, T* __restrict c,
                       std::int64_t ldc) {
  using V = typename SmallSimd<T>::type;
  constexpr int kL = SmallSimd<T>::kLanes;
  V acc[kRows][kNV];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) acc[r][v] = V{};
  }
#pragma GCC unroll 2
  for (std::int64_t p = 0; p < k; ++p) {
    V b_vec[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) std::memcpy(&b_vec[v], b + p * ldb + v * kL, sizeof(V));
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const V a_rp = a[r * a_row + p * a_p] - V{};  // a broadcast
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) fmadd_into<T>(acc[r][v], a_rp, b_vec[v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < kNV; ++v) {
      T* c_rv = c + r * ldc + v * kL;
      V out = alpha * acc[r][v];
      if (beta != T(0)) {  // beta*C + alpha*acc, one rounding after alpha*acc's
        V old;
        std::memcpy(&old, c_rv, sizeof(V));
        fmadd_into<T>(out, beta - V{}, old);
      }
      std::memcpy(c_rv, &out, sizeof(V));
    }
  }
}

template <typename T, int kNV>
inline void small_rows(std::int64_t rows, std::int64_t k, const T* a, std::int64_t a_row, std::int64_t a_p,
                       const T* b, std::int64_t ldb, T alpha, T beta, T* c, std::int64_t ldc) {
  switch (rows) {  // kRows as a compile-time constant, so the tile lives in registers
    case 8: return small_tile<T, 8, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
    case 7: return small_tile<T, 7, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
    case 6: return small_tile<T, 6, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
    case 5: return small_tile<T, 5, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
    case 4: return small_tile<T, 4, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
    case 3: return small_tile<T, 3, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
    case 2: return small_tile<T, 2, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
    default: return small_tile<T, 1, kNV>(k, a, a_row, a_p, b, ldb, alpha, beta, c, ldc);
  }
}

// One row block (rows <= kSmallMR rows of op(A) and C) over one K slice of kc: C := alpha*op(A)*op(B)
// + beta*C on columns [0, n). op(B)'s slice is B (kc, N) with row stride ldb when not transposed
// (b_edge: its last n % L columns, zero-padded to (kc, L)), else `panels`: NR-wide packed panels.
template <typename T>
void direct_row_block(std::int64_t rows, std::int64_t n, std::int64_t kc, const T* a_rows, std::int64_t a_row,
                      std::int64_t a_p, const T* b, std::int64_t ldb, const T* b_edge, const T* panels,
                      T alpha, T beta, T* c_rows, std::int64_t ldc) {
  constexpr int kL = SmallSimd<T>::kLanes;
  if (panels == nullptr) {
    const std::int64_t wide_end = n / (kSmallNV * kL) * (kSmallNV * kL);
    const std::int64_t vec_end = n / kL * kL;
    for (std::int64_t j0 = 0; j0 < wide_end; j0 += kSmallNV * kL) {
      small_rows<T, kSmallNV>(rows, kc, a_rows, a_row, a_p, b + j0, ldb, alpha, beta, c_rows + j0, ldc);
    }
    for (std::int64_t j0 = wide_end; j0 < vec_end; j0 += kL) {
      small_rows<T, 1>(rows, kc, a_rows, a_row, a_p, b + j0, ldb, alpha, beta, c_rows + j0, ldc);
    }
    if (vec_end < n) {  // the last n - vec_end < L columns: through zero-padded copies of B and C
      const std::int64_t cols = n - vec_end;
      alignas(64) T c_edge[kSmallMR * kL] = {};
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < cols; ++j) c_edge[r * kL + j] = beta != T(0) ? c_rows[r * ldc + vec_end + j] : T(0);
      }
      small_rows<T, 1>(rows, kc, a_rows, a_row, a_p, b_edge, kL, alpha, beta, c_edge, kL);
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < cols; ++j) c_rows[r * ldc + vec_end + j] = c_edge[r * kL + j];
      }
    }
    return;
  }
  constexpr int kNR = Blocking<T>::kNR;
  static_assert(kNR % kL == 0, "a B panel is whole small vectors");
  constexpr int kNV = kNR / kL;
  const std::int64_t n_panels = (n + kNR - 1) / kNR;
  for (std::int64_t q = 0; q < n_panels; ++q) {
    const std::int64_t j0 = q * kNR, cols = std::min<std::int64_t>(kNR, n - j0);
    const T* panel = panels + q * kc * kNR;
    if (cols == kNR) {
      small_rows<T, kNV>(rows, kc, a_rows, a_row, a_p, panel, kNR, alpha, beta, c_rows + j0, ldc);
      continue;
    }
    alignas(64) T c_edge[kSmallMR * kNR] = {};
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t j = 0; j < cols; ++j) c_edge[r * kNR + j] = beta != T(0) ? c_rows[r * ldc + j0 + j] : T(0);
    }
    small_rows<T, kNV>(rows, kc, a_rows, a_row, a_p, panel, kNR, alpha, beta, c_edge, kNR);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t j = 0; j < cols; ++j) c_rows[r * ldc + j0 + j] = c_edge[r * kNR + j];
    }
  }
}

// The direct path: op(A) is (M, K), C (M, N). K in KC slices as the packed path cuts it (slice 0
// with beta, later slices accumulate with beta 1), so each C element is the same sequence of FMA
// chains as there. A transposed B is packed into NR panels per K slice first (by the calling thread);
// a plain B is read in place. Threads split the kSmallMR-row blocks of C (each owns its rows); the
// epilogue runs per row block after its last slice.
template <typename T>
void gemm_direct(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                 const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                 const GemmEpilogue<T>* epilogue, int threads) {
  constexpr int kL = SmallSimd<T>::kLanes, kNR = Blocking<T>::kNR;
  constexpr std::int64_t kKC = Blocking<T>::kKC;
  const std::int64_t a_row = trans_a ? 1 : lda, a_p = trans_a ? lda : 1;
  const bool has_epilogue = epilogue != nullptr && epilogue->apply != nullptr;
  const std::int64_t n_panels = (n + kNR - 1) / kNR;
  const std::int64_t vec_end = n / kL * kL;
  PackBuffers<T>& own = pack_buffers<T>();
  T* panels = nullptr;  // slice pc's panels start at panels + pc * n_panels * NR
  T* b_edge = nullptr;  // slice pc's edge columns start at b_edge + pc * L
  if (trans_b) {
    panels = own.b_panel.reserve(k * n_panels * kNR);
    for (std::int64_t pc = 0; pc < k; pc += kKC) {
      const std::int64_t kc = std::min(kKC, k - pc);
      for (std::int64_t q = 0; q < n_panels; ++q) {
        pack_b_panel(true, b, ldb, pc, q * kNR, std::min<std::int64_t>(kNR, n - q * kNR), kc,
                     panels + pc * n_panels * kNR + q * kc * kNR);
      }
    }
  } else if (vec_end < n) {
    b_edge = own.b.reserve(k * kL);
    for (std::int64_t p = 0; p < k; ++p) {
      for (std::int64_t j = 0; j < kL; ++j) b_edge[p * kL + j] = vec_end + j < n ? b[p * ldb + vec_end + j] : T(0);
    }
  }
  const std::int64_t row_blocks = (m + kSmallMR - 1) / kSmallMR;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (std::int64_t rb = 0; rb < row_blocks; ++rb) {
    const std::int64_t i0 = rb * kSmallMR;
    const std::int64_t rows = std::min<std::int64_t>(kSmallMR, m - i0);
    const T* a_rows = a + i0 * a_row;
    T* c_rows = c + i0 * ldc;
    for (std::int64_t pc = 0; pc < k; pc += kKC) {  // the pc loop, as in the packed path
      const std::int64_t kc = std::min(kKC, k - pc);
      const T beta_block = pc == 0 ? beta : T(1);
      direct_row_block(rows, n, kc, a_rows + pc * a_p, a_row, a_p, trans_b ? nullptr : b + pc * ldb, ldb,
                       b_edge ? b_edge + pc * kL : nullptr, trans_b ? panels + pc * n_panels * kNR : nullptr,
                       alpha, beta_block, c_rows, ldc);
    }
    if (has_epilogue) epilogue->apply(epilogue->ctx, c_rows, ldc, i0, 0, rows, n);
  }
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
          const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const GemmEpilogue<T>* epilogue) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || m * n * k < kGemmSmall) {
    gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue);
    return;
  }
  using B = Blocking<T>;
  constexpr int kMR = B::kMR, kNR = B::kNR;
  const bool has_epilogue = epilogue != nullptr && epilogue->apply != nullptr;

  // The team size only changes who computes a tile, never what a tile computes.
  const std::int64_t useful = std::max<std::int64_t>(1, m * n * k / kMinMacsPerThread);
  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads(), useful));

  if (m * n * k <= kSmallMaxMacs || n * std::min(k, B::kKC) * std::int64_t{sizeof(T)} <= kDirectMaxSliceBytes) {
    gemm_direct(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue, threads);
    return;
  }

  const std::int64_t kc_max = std::min<std::int64_t>(B::kKC, k);

  if (m <= B::kMC) {
    // One row block (every product of a training step whose M is the batch size). Each thread
    // packs all of op(A)'s K slice into its own buffer (M*KC values: cheap next to its share of
    // the tiles) and packs the B panels of its own tiles into an L1-sized buffer just before using
    // them, so B is never written to (and read back from) a large packed block. With nothing
    // shared, the threads never wait for each other: schedule(static) hands a thread the same
    // tiles in every K slice, so it accumulates into C tiles that only it touches, and the one
    // barrier is the end of the parallel region.
    const std::int64_t m_panels = (m + kMR - 1) / kMR;
    const std::int64_t n_panels = (n + kNR - 1) / kNR;
    const std::int64_t tiles = n_panels * m_panels;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      PackBuffers<T>& own = pack_buffers<T>();
      T* const a_block = own.a_block.reserve(kc_max * m_panels * kMR);
      T* const b_panels = own.b_panel.reserve(kc_max * kNR * kPanelsPerPack);
      for (std::int64_t pc = 0; pc < k; pc += B::kKC) {  // the pc loop
        const std::int64_t kc = std::min(B::kKC, k - pc);
        const T beta_block = pc == 0 ? beta : T(1);  // later K slices accumulate into C
        const bool last_slice = pc + kc >= k;
        for (std::int64_t ip = 0; ip < m_panels; ++ip) {
          pack_a_panel(trans_a, a, lda, ip * kMR, pc, std::min<std::int64_t>(kMR, m - ip * kMR), kc,
                       a_block + ip * kc * kMR);
        }
        // The jr and ir loops, flattened as in the blocked path below: a thread's contiguous range
        // of tiles walks B panels in order, packing kPanelsPerPack of them when the range reaches
        // them (a group split between two threads is packed by both).
        std::int64_t packed_group = -1;
#pragma omp for schedule(static) nowait
        for (std::int64_t t = 0; t < tiles; ++t) {
          const std::int64_t jp = t / m_panels, ip = t % m_panels;
          const std::int64_t row = ip * kMR, col = jp * kNR;
          const std::int64_t mr = std::min<std::int64_t>(kMR, m - row);
          const std::int64_t nr = std::min<std::int64_t>(kNR, n - col);
          const std::int64_t group = jp / kPanelsPerPack;
          if (group != packed_group) {
            const std::int64_t first = group * kPanelsPerPack;
            const std::int64_t panels = std::min(kPanelsPerPack, n_panels - first);
            pack_b_panels(trans_b, b, ldb, pc, first * kNR, std::min<std::int64_t>(panels * kNR, n - first * kNR),
                          kc, panels, b_panels);
            packed_group = group;
          }
          const T* b_panel = b_panels + (jp % kPanelsPerPack) * kc * kNR;
          T* c_tile = c + row * ldc + col;
          compute_tile<T>(kc, a_block + ip * kc * kMR, b_panel, alpha, beta_block, c_tile, ldc, mr, nr);
          if (last_slice && has_epilogue) epilogue->apply(epilogue->ctx, c_tile, ldc, row, col, mr, nr);
        }
      }
    }
    return;
  }

  // Blocked path (M > MC: the weight gradients X^T*dZ, large square products). op(B)'s block is
  // packed once per (jc, pc) by the whole team into the calling thread's buffer; each thread packs
  // the A block of every row block itself, so the only waits are around the shared B block.
  PackBuffers<T>& caller = pack_buffers<T>();
  const std::int64_t nc_max = std::min<std::int64_t>(B::kNC, (n + kNR - 1) / kNR * kNR);
  T* const packed_b = caller.b.reserve(kc_max * nc_max);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    T* const a_block = pack_buffers<T>().a_block.reserve(kc_max * B::kMC);
    bool first_block = true;
    for (std::int64_t jc = 0; jc < n; jc += B::kNC) {  // the jc loop
      const std::int64_t nc = std::min(B::kNC, n - jc);
      const std::int64_t n_panels = (nc + kNR - 1) / kNR;
      for (std::int64_t pc = 0; pc < k; pc += B::kKC) {  // the pc loop
        const std::int64_t kc = std::min(B::kKC, k - pc);
        const T beta_block = pc == 0 ? beta : T(1);  // later K slices accumulate into C
        const bool last_slice = pc + kc >= k;
        if (!first_block) {
#pragma omp barrier
        }  // everyone is done with the previous B block before it is overwritten
        first_block = false;
#pragma omp for schedule(static)
        for (std::int64_t jp = 0; jp < n_panels; ++jp) {
          pack_b_panel(trans_b, b, ldb, pc, jc + jp * kNR, std::min<std::int64_t>(kNR, nc - jp * kNR), kc,
                       packed_b + jp * kc * kNR);
        }  // implicit barrier: the B block is complete
        for (std::int64_t ic = 0; ic < m; ic += B::kMC) {  // the ic loop
          const std::int64_t mc = std::min(B::kMC, m - ic);
          const std::int64_t m_panels = (mc + kMR - 1) / kMR;
          for (std::int64_t ip = 0; ip < m_panels; ++ip) {
            pack_a_panel(trans_a, a, lda, ic + ip * kMR, pc, std::min<std::int64_t>(kMR, mc - ip * kMR), kc,
                         a_block + ip * kc * kMR);
          }
          // The jr and ir loops, flattened: tile t is (jr = t / m_panels, ir = t % m_panels), so a
          // thread's contiguous range of tiles reuses each B panel across consecutive A panels.
#pragma omp for schedule(static) nowait
          for (std::int64_t t = 0; t < n_panels * m_panels; ++t) {
            const std::int64_t jp = t / m_panels, ip = t % m_panels;
            const std::int64_t row = ic + ip * kMR, col = jc + jp * kNR;
            const std::int64_t mr = std::min<std::int64_t>(kMR, m - row);
            const std::int64_t nr = std::min<std::int64_t>(kNR, n - col);
            T* c_tile = c + row * ldc + col;
            compute_tile<T>(kc, a_block + ip * kc * kMR, packed_b + jp * kc * kNR, alpha, beta_block,
                            c_tile, ldc, mr, nr);
            if (last_slice && has_epilogue) epilogue->apply(epilogue->ctx, c_tile, ldc, row, col, mr, nr);
          }
        }
      }
    }
  }
}

template <typename T>
void gemm_microkernel_bench(std::int64_t kc, const T* packed_a, const T* packed_b, T* c,
                            std::int64_t repeats) {
  for (std::int64_t r = 0; r < repeats; ++r) {
    micro_kernel<T>(kc, packed_a, packed_b, T(1), T(1), c, Blocking<T>::kNR);
  }
}

template int gemm_mr<float>();
template int gemm_mr<double>();
template int gemm_nr<float>();
template int gemm_nr<double>();
template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                          std::int64_t, const float*, std::int64_t, float, float*, std::int64_t,
                          const GemmEpilogue<float>*);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double,
                           const double*, std::int64_t, const double*, std::int64_t, double, double*,
                           std::int64_t, const GemmEpilogue<double>*);
template void gemm_reference<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float,
                                    const float*, std::int64_t, const float*, std::int64_t, float,
                                    float*, std::int64_t, const GemmEpilogue<float>*);
template void gemm_reference<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double,
                                     const double*, std::int64_t, const double*, std::int64_t,
                                     double, double*, std::int64_t, const GemmEpilogue<double>*);
template void gemm_microkernel_bench<float>(std::int64_t, const float*, const float*, float*, std::int64_t);
template void gemm_microkernel_bench<double>(std::int64_t, const double*, const double*, double*,
                                             std::int64_t);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
