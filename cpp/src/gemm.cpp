// gemm.cpp: C := beta*C + alpha*op(A)*op(B) (contract and loop structure in gemm.hpp).
// op(A) is (M, K), op(B) is (K, N), C is (M, N); row-major with leading dimensions lda, ldb, ldc.
#include "initlab/gemm.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "initlab/parallel.hpp"

namespace initlab {

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
// MR x NR: the register tile (AVX2: 16 ymm registers; MR*NR/L accumulators + NR/L B vectors + one
// broadcast A value). KC: depth of a packed slice, so that a KC x NR panel of B (16 KiB) and a KC x MR
// panel of A stay in the 32 KiB L1. MC: rows of the packed A block, KC x MC (264 KiB float/double)
// kept in the 512 KiB L2, and tall enough that a batch of 256 rows is one block. NC: columns of the
// packed B block, KC x NC (4 MiB float) in L3.
template <typename T>
struct Blocking;
template <>
struct Blocking<float> {
  static constexpr int kMR = 6, kNR = 16;
  static constexpr std::int64_t kKC = 256, kMC = 264, kNC = 4080;
};
template <>
struct Blocking<double> {
  static constexpr int kMR = 6, kNR = 8;
  static constexpr std::int64_t kKC = 256, kMC = 132, kNC = 4080;
};

// Products with M*N*K below this go to the triple loop: packing would cost more than it saves.
constexpr std::int64_t kGemmSmall = 2048;
// Multiply-adds per thread below which adding a thread costs more (fork/join) than it saves.
constexpr std::int64_t kMinMacsPerThread = 1 << 18;

template <typename T>
int gemm_mr() {
  return Blocking<T>::kMR;
}
template <typename T>
int gemm_nr() {
  return Blocking<T>::kNR;
}

namespace {

// A 256-bit vector of T (GCC/Clang vector extension): 8 floats or 4 doubles.
template <typename T>
struct Simd {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int kLanes = 32 / sizeof(T);
};

// ---- the micro-kernel ----------------------------------------------------------------------------
// c (MR x NR, row stride ldc) := beta*c + alpha * a_panel * b_panel, where a_panel is KC x MR
// (MR values per p) and b_panel is KC x NR (NR values per p, 32-byte aligned). beta == 0 never reads
// c. Each of the MR x NR dot products is accumulated over p = 0..kc-1 in order: one vector FMA per
// (row, vector) per p, MR*NR/L accumulators held in registers (the loops over r and v are fully
// unrolled by the compiler, so acc[r][v] are scalar-replaced into ymm registers).
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
      const T a_r = a_panel[r];
#pragma GCC unroll 4
      for (int v = 0; v < kNV; ++v) acc[r][v] += a_r * b_vec[v];
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
      if (beta != T(0)) {
        V old;
        std::memcpy(&old, c_rv, sizeof(V));
        out += beta * old;
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
  } else {  // B is (N, K): read each of the NR rows contiguously, write with stride NR
    for (int j = 0; j < kNR; ++j) {
      if (j < cols) {
        const T* src = b + (j0 + j) * ldb + p0;
        for (std::int64_t p = 0; p < kc; ++p) dst[p * kNR + j] = src[p];
      } else {
        for (std::int64_t p = 0; p < kc; ++p) dst[p * kNR + j] = T(0);
      }
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
    }
    return data;
  }
};

template <typename T>
struct PackBuffers {
  PackBuffer<T> a, b;  // the calling thread's packed A block and B block
  PackBuffer<T> b_panel;  // each team thread's own B panel (single row-block path)
};

template <typename T>
PackBuffers<T>& pack_buffers() {
  thread_local PackBuffers<T> buffers;
  return buffers;
}

// One MR x NR tile of C at (row, col) with mr x nr valid elements; edge tiles go through a local
// buffer so that the micro-kernel always writes a whole tile.
template <typename T>
inline void compute_tile(std::int64_t kc, const T* a_panel, const T* b_panel, T alpha, T beta, T* c,
                         std::int64_t ldc, std::int64_t mr, std::int64_t nr) {
  constexpr int kMR = Blocking<T>::kMR, kNR = Blocking<T>::kNR;
  if (mr == kMR && nr == kNR) {
    micro_kernel<T>(kc, a_panel, b_panel, alpha, beta, c, ldc);
    return;
  }
  alignas(64) T tile[kMR * kNR];
  micro_kernel<T>(kc, a_panel, b_panel, T(1), T(0), tile, kNR);
  for (std::int64_t r = 0; r < mr; ++r) {
    for (std::int64_t j = 0; j < nr; ++j) {
      const T ab = alpha * tile[r * kNR + j];
      T& c_rj = c[r * ldc + j];
      c_rj = beta == T(0) ? ab : beta * c_rj + ab;
    }
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

  PackBuffers<T>& buffers = pack_buffers<T>();
  const std::int64_t nc_max = std::min<std::int64_t>(B::kNC, (n + kNR - 1) / kNR * kNR);
  const std::int64_t mc_max = std::min<std::int64_t>(B::kMC, (m + kMR - 1) / kMR * kMR);
  const std::int64_t kc_max = std::min<std::int64_t>(B::kKC, k);
  T* const packed_a = buffers.a.reserve(kc_max * mc_max);
  T* const packed_b = m <= B::kMC ? nullptr : buffers.b.reserve(kc_max * nc_max);

  // The team size only changes who computes a tile, never what a tile computes.
  const std::int64_t useful = std::max<std::int64_t>(1, m * n * k / kMinMacsPerThread);
  const int threads = static_cast<int>(std::min<std::int64_t>(num_threads(), useful));

  if (m <= B::kMC) {
    // One row block: A is packed once per K slice and shared; each thread packs the B panels of
    // its own jr range into a small thread-local buffer that stays in L1, so B is never written to
    // (and read back from) a large packed block. This is the shape of every product of a training
    // step whose M is the batch size.
    const std::int64_t m_panels = (m + kMR - 1) / kMR;
    const std::int64_t n_panels = (n + kNR - 1) / kNR;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      T* const b_panel = pack_buffers<T>().b_panel.reserve(kc_max * kNR);
      for (std::int64_t pc = 0; pc < k; pc += B::kKC) {  // the pc loop
        const std::int64_t kc = std::min(B::kKC, k - pc);
        const T beta_block = pc == 0 ? beta : T(1);  // later K slices accumulate into C
        const bool last_slice = pc + kc >= k;
#pragma omp for schedule(static)
        for (std::int64_t ip = 0; ip < m_panels; ++ip) {
          pack_a_panel(trans_a, a, lda, ip * kMR, pc, std::min<std::int64_t>(kMR, m - ip * kMR), kc,
                       packed_a + ip * kc * kMR);
        }
#pragma omp for schedule(static)
        for (std::int64_t jp = 0; jp < n_panels; ++jp) {  // the jr loop
          const std::int64_t col = jp * kNR;
          const std::int64_t nr = std::min<std::int64_t>(kNR, n - col);
          pack_b_panel(trans_b, b, ldb, pc, col, nr, kc, b_panel);
          for (std::int64_t ip = 0; ip < m_panels; ++ip) {  // the ir loop
            const std::int64_t row = ip * kMR;
            const std::int64_t mr = std::min<std::int64_t>(kMR, m - row);
            T* c_tile = c + row * ldc + col;
            compute_tile<T>(kc, packed_a + ip * kc * kMR, b_panel, alpha, beta_block, c_tile, ldc, mr, nr);
            if (last_slice && has_epilogue) epilogue->apply(epilogue->ctx, c_tile, ldc, row, col, mr, nr);
          }
        }
      }
    }
    return;
  }

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    for (std::int64_t jc = 0; jc < n; jc += B::kNC) {  // the jc loop
      const std::int64_t nc = std::min(B::kNC, n - jc);
      const std::int64_t n_panels = (nc + kNR - 1) / kNR;
      for (std::int64_t pc = 0; pc < k; pc += B::kKC) {  // the pc loop
        const std::int64_t kc = std::min(B::kKC, k - pc);
        const T beta_block = pc == 0 ? beta : T(1);  // later K slices accumulate into C
        const bool last_slice = pc + kc >= k;
#pragma omp for schedule(static)
        for (std::int64_t jp = 0; jp < n_panels; ++jp) {
          pack_b_panel(trans_b, b, ldb, pc, jc + jp * kNR, std::min<std::int64_t>(kNR, nc - jp * kNR), kc,
                       packed_b + jp * kc * kNR);
        }
        for (std::int64_t ic = 0; ic < m; ic += B::kMC) {  // the ic loop
          const std::int64_t mc = std::min(B::kMC, m - ic);
          const std::int64_t m_panels = (mc + kMR - 1) / kMR;
#pragma omp for schedule(static)
          for (std::int64_t ip = 0; ip < m_panels; ++ip) {
            pack_a_panel(trans_a, a, lda, ic + ip * kMR, pc, std::min<std::int64_t>(kMR, mc - ip * kMR), kc,
                         packed_a + ip * kc * kMR);
          }
          // The jr and ir loops, flattened: tile t is (jr = t / m_panels, ir = t % m_panels), so a
          // thread's contiguous range of tiles reuses each B panel across consecutive A panels.
#pragma omp for schedule(static)
          for (std::int64_t t = 0; t < n_panels * m_panels; ++t) {
            const std::int64_t jp = t / m_panels, ip = t % m_panels;
            const std::int64_t row = ic + ip * kMR, col = jc + jp * kNR;
            const std::int64_t mr = std::min<std::int64_t>(kMR, m - row);
            const std::int64_t nr = std::min<std::int64_t>(kNR, n - col);
            T* c_tile = c + row * ldc + col;
            compute_tile<T>(kc, packed_a + ip * kc * kMR, packed_b + jp * kc * kNR, alpha, beta_block,
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

}  // namespace initlab
