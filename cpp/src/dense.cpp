// dense.cpp: activations and the dense-layer forward/backward pair (contracts in dense.hpp).
// X is (N, I), W is (I, O), b is (O); Z, A, dA are (N, O); dW is (I, O), db is (O), dX is (N, I).
#include "initlab/dense.hpp"

#include <algorithm>

#include "activation_math.hpp"
#include "chunked.hpp"
#include "initlab/gemm.hpp"

INITLAB_NAMESPACE_BEGIN

const ActivationInfo* find_activation(const std::string& name) {
  for (const ActivationInfo& info : kActivations) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

template <typename T>
void activation_forward(std::int64_t count, const T* z, T* a, Activation act, T param) {
  detail::dispatch_activation(act, [&](auto kind) {
    constexpr Activation kAct = decltype(kind)::value;
    detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t e = begin; e < end; ++e) a[e] = detail::activate<kAct>(z[e], param);
    });
  });
}

template <typename T>
void activation_backward(std::int64_t count, T* da, const T* z, const T* a, Activation act, T param) {
  if (act == Activation::kLinear) return;  // act' = 1: dZ is dA already
  detail::dispatch_activation(act, [&](auto kind) {
    constexpr Activation kAct = decltype(kind)::value;
    constexpr bool from_output = derivative_uses_output(kAct);
    detail::for_chunks(count, kChunk, [&](std::int64_t begin, std::int64_t end) {
      if (from_output) {
        for (std::int64_t e = begin; e < end; ++e) da[e] *= detail::derivative<kAct>(T(0), a[e], param);
      } else {
        for (std::int64_t e = begin; e < end; ++e) da[e] *= detail::derivative<kAct>(z[e], T(0), param);
      }
    });
  });
}

namespace {

template <typename T>
struct BiasActivation {
  const T* b;     // (O)
  T* a;           // (N, O)
  std::int64_t o;
  Activation act;
  T param;
};

// The forward epilogue: on an m x n block of Z at (i0, j0), z += b[j]; a = act(z).
template <typename T>
void bias_activation_epilogue(const void* ctx_ptr, T* z_block, std::int64_t ldz, std::int64_t i0,
                              std::int64_t j0, std::int64_t m, std::int64_t n) {
  const auto& ctx = *static_cast<const BiasActivation<T>*>(ctx_ptr);
  const T* bias = ctx.b + j0;
  detail::dispatch_activation(ctx.act, [&](auto kind) {
    constexpr Activation kAct = decltype(kind)::value;
    for (std::int64_t r = 0; r < m; ++r) {
      T* z_row = z_block + r * ldz;
      T* a_row = ctx.a + (i0 + r) * ctx.o + j0;
      for (std::int64_t j = 0; j < n; ++j) {
        const T z = z_row[j] + bias[j];
        z_row[j] = z;
        a_row[j] = detail::activate<kAct>(z, ctx.param);
      }
    }
  });
}

// db (O) := column sums of dZ (N, O), each column over rows 0..N-1 in order, in double.
// Threads own blocks of kColumns columns.
template <typename T>
void column_sums(std::int64_t n, std::int64_t o, const T* dz, T* db) {
  constexpr std::int64_t kColumns = 64;
  const std::int64_t blocks = (o + kColumns - 1) / kColumns;
#pragma omp parallel for schedule(static) num_threads(num_threads()) \
    if (blocks > 1 && n * o >= detail::kParallelMinElements)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t j0 = blk * kColumns;
    const std::int64_t width = std::min(kColumns, o - j0);
    double acc[kColumns] = {};
    for (std::int64_t r = 0; r < n; ++r) {
      const T* row = dz + r * o + j0;
      for (std::int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(row[j]);
    }
    for (std::int64_t j = 0; j < width; ++j) db[j0 + j] = static_cast<T>(acc[j]);
  }
}

}  // namespace

template <typename T>
void dense_forward(std::int64_t n, std::int64_t i, std::int64_t o, const T* x, const T* w, const T* b,
                   T* z, T* a, Activation act, T param) {
  const BiasActivation<T> ctx{b, a, o, act, param};
  GemmEpilogue<T> epilogue;
  epilogue.apply = &bias_activation_epilogue<T>;
  epilogue.ctx = &ctx;
  // Z (N, O) := X (N, I) * W (I, O), then the epilogue per finished tile.
  gemm<T>(false, false, n, o, i, T(1), x, i, w, o, T(0), z, o, &epilogue);
}

template <typename T>
void dense_backward(std::int64_t n, std::int64_t i, std::int64_t o, T* da, const T* x, const T* w,
                    const T* z, const T* a, Activation act, T param, T* dw, T* db, T* dx) {
  activation_backward(n * o, da, z, a, act, param);  // dA becomes dZ
  const T* dz = da;
  // dW (I, O) := X^T (I, N) * dZ (N, O)
  gemm<T>(true, false, i, o, n, T(1), x, i, dz, o, T(0), dw, o);
  column_sums(n, o, dz, db);
  // dX (N, I) := dZ (N, O) * W^T (O, I)
  if (dx != nullptr) gemm<T>(false, true, n, i, o, T(1), dz, o, w, o, T(0), dx, i);
}

template void activation_forward<float>(std::int64_t, const float*, float*, Activation, float);
template void activation_forward<double>(std::int64_t, const double*, double*, Activation, double);
template void activation_backward<float>(std::int64_t, float*, const float*, const float*, Activation, float);
template void activation_backward<double>(std::int64_t, double*, const double*, const double*, Activation,
                                          double);
template void dense_forward<float>(std::int64_t, std::int64_t, std::int64_t, const float*, const float*,
                                   const float*, float*, float*, Activation, float);
template void dense_forward<double>(std::int64_t, std::int64_t, std::int64_t, const double*, const double*,
                                    const double*, double*, double*, Activation, double);
template void dense_backward<float>(std::int64_t, std::int64_t, std::int64_t, float*, const float*,
                                    const float*, const float*, const float*, Activation, float, float*,
                                    float*, float*);
template void dense_backward<double>(std::int64_t, std::int64_t, std::int64_t, double*, const double*,
                                     const double*, const double*, const double*, Activation, double,
                                     double*, double*, double*);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
