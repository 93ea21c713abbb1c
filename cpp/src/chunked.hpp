// chunked.hpp (private): the two parallel patterns every elementwise kernel and reduction uses.
// Both split [0, count) into chunks whose size is fixed by the caller (never by the thread count), so
// each thread owns the writes of whole chunks and reductions combine partials in chunk order.
#pragma once
#include "initlab/isa.hpp"
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "initlab/parallel.hpp"

INITLAB_NAMESPACE_BEGIN
namespace detail {

// Below this many elements a memory-bound loop runs on the calling thread: the fork/join of a
// parallel region costs more than a second core saves (and far more when cores are shared).
// It decides only who runs a chunk, never the chunking, so results do not change.
constexpr std::int64_t kParallelMinElements = std::int64_t{1} << 17;

// body(begin, end) for every chunk; chunks run in parallel when there is more than one.
template <typename Body>
void for_chunks(std::int64_t count, std::int64_t chunk, Body&& body) {
  const std::int64_t chunks = (count + chunk - 1) / chunk;
  if (chunks <= 1) {
    if (count > 0) body(std::int64_t{0}, count);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (count >= kParallelMinElements)
  for (std::int64_t c = 0; c < chunks; ++c) {
    body(c * chunk, std::min(count, (c + 1) * chunk));
  }
}

// sum over chunks of partial(begin, end) -> double, added in chunk order: ((p0 + p1) + p2) + ...
// Partials live in a fixed stack array, filled kGroup chunks at a time: nothing is allocated.
template <typename Partial>
double sum_chunks(std::int64_t count, std::int64_t chunk, Partial&& partial) {
  constexpr std::int64_t kGroup = 256;
  const std::int64_t chunks = (count + chunk - 1) / chunk;
  double total = 0.0;
  double partials[kGroup];
  for (std::int64_t g0 = 0; g0 < chunks; g0 += kGroup) {
    const std::int64_t g = std::min(kGroup, chunks - g0);
#pragma omp parallel for schedule(static) num_threads(num_threads()) if (g > 1 && count >= kParallelMinElements)
    for (std::int64_t c = 0; c < g; ++c) {
      const std::int64_t begin = (g0 + c) * chunk;
      partials[c] = partial(begin, std::min(count, begin + chunk));
    }
    for (std::int64_t c = 0; c < g; ++c) total += partials[c];
  }
  return total;
}

// Sum of x[e]^2 over one chunk in double, in a fixed order that vectorizes: 8 lane partials
// (lane l sums elements e with e % 8 == l, in order), combined as a balanced tree, then the tail in
// order. The order depends only on count, never on threads. x is (count). kClip first clamps each
// element to [-clip, clip] (the fused optimizer step's clip_value) and, when kStore, stores it.
// Sum of (x[e] - shift) (kSquare false) or of (x[e] - shift)^2 (kSquare true) over count elements, in
// double, in 8 fixed lanes combined in a fixed order, so it vectorizes and its bits depend only on
// count (as sum_of_squares_chunk): the moments of layer_stats.
template <bool kSquare, typename T>
double shifted_sum_chunk(std::int64_t count, const T* __restrict x, double shift) {
  constexpr int kLanes = 8;
  double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  const std::int64_t body = count - count % kLanes;
  for (std::int64_t e = 0; e < body; e += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double d = static_cast<double>(x[e + l]) - shift;
      lane[l] += kSquare ? d * d : d;
    }
  }
  double s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  for (std::int64_t e = body; e < count; ++e) {
    const double d = static_cast<double>(x[e]) - shift;
    s += kSquare ? d * d : d;
  }
  return s;
}

template <typename T, bool kClip = false, bool kStore = kClip>
double sum_of_squares_chunk(std::int64_t count, T* __restrict x, T clip = T(0)) {
  constexpr int kLanes = 8;
  double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  const std::int64_t body = count - count % kLanes;
  for (std::int64_t e = 0; e < body; e += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      T v = x[e + l];
      if (kClip) {
        v = v > clip ? clip : (v < -clip ? -clip : v);  // NaN passes through (clip_by_value)
        if (kStore) x[e + l] = v;
      }
      const double d = static_cast<double>(v);
      lane[l] += d * d;
    }
  }
  double s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  for (std::int64_t e = body; e < count; ++e) {
    T v = x[e];
    if (kClip) {
      v = v > clip ? clip : (v < -clip ? -clip : v);
      if (kStore) x[e] = v;
    }
    const double d = static_cast<double>(v);
    s += d * d;
  }
  return s;
}

// The magnitude of x as an unsigned integer: its bits without the sign. For every finite x these
// are ordered as |x|, and inf and NaN lie above every finite value, so the largest magnitude over
// an array (inf when it holds inf or NaN) is an integer max: a reduction GCC vectorizes, where a
// float max with NaN's semantics stays scalar without -ffast-math.
template <typename T>
struct MagnitudeBits;
template <>
struct MagnitudeBits<float> {
  using type = std::uint32_t;
  static constexpr type kMask = 0x7FFFFFFFu, kInf = 0x7F800000u;
};
template <>
struct MagnitudeBits<double> {
  using type = std::uint64_t;
  static constexpr type kMask = 0x7FFFFFFFFFFFFFFFull, kInf = 0x7FF0000000000000ull;
};

template <typename T>
inline typename MagnitudeBits<T>::type magnitude_bits(T x) {
  typename MagnitudeBits<T>::type u;
  std::memcpy(&u, &x, sizeof u);
  return u & MagnitudeBits<T>::kMask;
}

// The magnitude such bits stand for: inf for inf and NaN.
template <typename T>
inline double magnitude_of(typename MagnitudeBits<T>::type u) {
  if (u >= MagnitudeBits<T>::kInf) return std::numeric_limits<double>::infinity();
  T x;
  std::memcpy(&x, &u, sizeof x);
  return static_cast<double>(x);
}

}  // namespace detail
INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
