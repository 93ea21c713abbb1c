// gemm.cpp: C := beta*C + alpha*op(A)*op(B) (contract in gemm.hpp).
// op(A) is (M, K), op(B) is (K, N), C is (M, N); row-major with leading dimensions lda, ldb, ldc.
#include "initlab/gemm.hpp"

namespace initlab {

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

template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
          const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const GemmEpilogue<T>* epilogue) {
  gemm_reference(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, epilogue);
}

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

}  // namespace initlab
