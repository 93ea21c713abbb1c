// random.hpp: uniform, normal and truncated-normal fills on top of philox_block (philox.hpp).
//
// Vocabulary: n is the number of output elements, i an element index in [0, n), T the output type
// (float or double). Word j of a (seed, stream) pair is lane j % 4 of philox_block(seed, stream, j / 4).
//
// Contract (the mapping a user can re-derive in plain numpy; initlab.random's docstring repeats it)
// - Words of element i. float: word i. double: words 2i (low half) and 2i+1 (high half) of the
//   64-bit integer W = w[2i] | w[2i+1] << 32.
// - Uniform on the open unit interval, exact (every step below is exact in T):
//     float:  k = w >> 9  (23 bits),  u = (2k + 1) * 2^-24   in [2^-24, 1 - 2^-24]
//     double: k = W >> 12 (52 bits),  u = (2k + 1) * 2^-53   in [2^-53, 1 - 2^-53]
//   u is never 0 or 1, so log(u) and log(1 - u) are finite; the grid is symmetric about 1/2.
//   Computed as bits(1 + k * 2^-m) - 1 + 2^-(m+1), m = 23 or 52.
// - uniform(low, high): x = min(lo + width * u, hi) in T, with lo = T(low), hi = T(high) and
//   width = T(high - low) (the difference taken in double, rounded once). Hence x in [low, high].
// - normal(mean, std), Box-Muller with exactly two draws per pair of elements: elements 2m and 2m+1
//   take the uniforms of words (of elements) 2m and 2m+1 as u1 and v:
//     r = sqrt(-2 * log_approx(u1))
//     v's bits give a quadrant q (the top 2 of the k bits) and y = (2 * rest + 1) * 2^-(m-1) - 1/2
//     in (-1/2, 1/2) (rest = the other m - 2 bits of k), so that theta = 2 pi v - pi/4 = (pi/2)(q + y);
//     phi = y * T(pi/2); (c, s) = (cos_approx(phi), sin_approx(phi)) rotated by q quarter turns:
//     q = 0: (c, s), 1: (-s, c), 2: (-c, -s), 3: (s, -c) = (cos theta, sin theta);
//     z[2m] = r * cos theta, z[2m+1] = r * sin theta; x = T(mean) + T(std) * z.
//   With n odd, the last element is z[n-1] = r * cos theta of its pair (the sine is not used).
// - truncated_normal(mean, std, a, b) by the inverse CDF (no rejection): in double, pa = Phi(a),
//   qa = Phi(-a) and d = Phi(b) - Phi(a) (as qa - Phi(-b) when a >= 0) with Phi = normal_cdf; then in T
//     p = T(pa) + T(d) * u,  q = T(qa) - T(d) * u    (q = 1 - p, computed without cancellation)
//     t = p - q,  w = -log_approx((4 * p) * q)
//     z = (erfinv_poly(w) * t) * T(sqrt 2),  z = min(max(z, T(a)), T(b)),  x = T(mean) + T(std) * z
//   erfinv_poly is Giles' approximation ("Approximating the erfinv function", GPU Computing Gems 2,
//   2010): float 2 branches (w < 5), double 3 branches (w < 6.25, w < 16).
// - log_approx: x = m 2^e with m in [sqrt(1/2), sqrt(2)) found by integer arithmetic on the bits
//   (subtract the bits of sqrt(1/2), the exponent field is e, add the rest back), then Cephes' logf
//   polynomial (float) or fdlibm's log (double) in f = m - 1. sin_approx, cos_approx: Cephes'
//   sinf/cosf (float) and sin/cos (double) on [-pi/4, pi/4]. All evaluated in the exact operation
//   order of random.cpp with no
//   fused multiply-add (random.cpp is compiled with -ffp-contract=off), so every value is a fixed
//   IEEE-754 computation, independent of the C library and of vectorization.
// - Element i depends only on (seed, stream, i, params): fills split n into chunks of kChunk elements
//   (parallel.hpp) and each thread owns the writes of its chunks, so results are bitwise identical on
//   any thread count. The *_naive twins compute each element alone, straight from the formulas above;
//   the tests require identical bits from both.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>

#include "initlab/philox.hpp"

INITLAB_NAMESPACE_BEGIN

// Phi(x) = erfc(-x / sqrt 2) / 2 in double (the C library's erfc; only used for the constants of a
// truncated-normal fill, which initlab.random.normal_cdf exposes for re-derivation).
double normal_cdf(double x);

// Scalar building blocks, exposed for the tests (they are what the fills use).
float log_approx(float x);    // x > 0 normal
double log_approx(double x);  // x > 0 normal
float sin_approx(float x);    // |x| <= pi/4
double sin_approx(double x);
float cos_approx(float x);
double cos_approx(double x);
float erfinv_poly(float w);  // erfinv(t) = t * erfinv_poly(-log((1-t)(1+t)))
double erfinv_poly(double w);

// out is (n,). Fills element i of out for i in [0, n); valid for n == 0.
// Preconditions (checked by the callers): low <= high, std >= 0, a < b.
template <class T>
void fill_uniform(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, double low,
                  double high);
template <class T>
void fill_normal(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, double mean,
                 double std);
template <class T>
void fill_truncated_normal(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                           double mean, double std, double a, double b);

// Naive twins: one element at a time, scalar, serial. The oracle of the fills above.
template <class T>
void fill_uniform_naive(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                        double low, double high);
template <class T>
void fill_normal_naive(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                       double mean, double std);
template <class T>
void fill_truncated_normal_naive(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                                 double mean, double std, double a, double b);

// Raw words: out is (n_words,), word j of (seed, stream) for j in [first_word, first_word + n_words).
void fill_words(std::uint32_t* out, std::int64_t n_words, std::uint64_t seed, std::uint64_t stream,
                std::uint64_t first_word);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
