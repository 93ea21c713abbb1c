// stats.hpp: reductions for the reports: norms, finiteness and per-layer statistics.
//
// Vocabulary: flat arrays of `count` elements; Z, A are (N, O) (pre-activation, activation).
// Every reduction accumulates in double over fixed chunks of kChunk elements (parallel.hpp) and
// combines the chunk partials in chunk order: bitwise the same on any thread count.
// NaN/Inf propagate into sums (a NaN anywhere gives a NaN norm); all_finite reports them.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>

#include "initlab/dense.hpp"

INITLAB_NAMESPACE_BEGIN

// x is (count); sum of x^2 in double: within a chunk 8 lane partials (element e in lane e % 8) added
// as a balanced tree, then the tail; a fixed order that vectorizes (chunked.hpp).
template <typename T>
double sum_of_squares(std::int64_t count, const T* x);

// x is (count); x := x*factor.
template <typename T>
void scale(std::int64_t count, T* x, T factor);

// a, b are (count); ||a - b||_2 with the differences taken in double.
template <typename T>
double diff_norm(std::int64_t count, const T* a, const T* b);

// x is (count); true when no element is NaN or +-Inf.
template <typename T>
bool all_finite(std::int64_t count, const T* x);

struct LayerStats {
  double pre_mean, pre_std;  // over all N*O elements of Z (population std, ddof = 0)
  double act_mean, act_std;  // the same over A
  double saturated;  // fraction of elements with |a| > 0.99 (tanh) or a outside [0.01, 0.99]
                     // (sigmoid); 0 for other activations
  double dead;       // fraction of the O units with z <= 0 on every row (relu: its derivative
                     // is exactly 0 there, so the unit gets no gradient); 0 for every other
                     // activation (leaky_relu, elu, selu keep a nonzero slope: they cannot die)
};

// Z, A are (N, O).
template <typename T>
LayerStats layer_stats(std::int64_t n, std::int64_t o, const T* z, const T* a, Activation act);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
