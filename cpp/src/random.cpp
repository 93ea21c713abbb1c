// random.cpp: the fills of random.hpp. Compiled with -ffp-contract=off (CMakeLists.txt): every
// value below is a fixed sequence of IEEE-754 operations that tests/reference.py repeats in numpy.
//
// Structure of a fast fill: n elements -> chunks of kChunk elements (OpenMP, each thread owns its
// chunks) -> batches of kBatchBlocks Philox blocks. philox_batch computes a batch's words with the
// blocks as the vector lanes (structure of arrays), then a transform turns the words into values in
// element order with loops over contiguous arrays that the compiler vectorizes (check with
// -fopt-info-vec). A batch that runs past n is computed whole into scratch and copied, so every
// element is computed by exactly the same code whatever n is.
#include "initlab/random.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "initlab/parallel.hpp"

#if INITLAB_SIMD_LEVEL >= 2
#include <immintrin.h>
#endif

INITLAB_NAMESPACE_BEGIN
namespace {

// Philox blocks per batch: 4 x 64 words = 1 KiB of words, L1-resident with its scratch values.
constexpr int kBatchBlocks = 64;
constexpr int kBatchWords = 4 * kBatchBlocks;

template <class To, class From>
inline To bits_as(From x) {
  static_assert(sizeof(To) == sizeof(From), "bit cast between types of one size");
  To y;
  std::memcpy(&y, &x, sizeof(To));
  return y;
}

// ---- scalar approximations (inline so the transform loops vectorize) --------------------------------

constexpr std::uint32_t kSqrtHalfBitsF = 0x3F3504F3u;      // float(sqrt(1/2))
constexpr std::uint32_t kSqrtHalfHighBitsD = 0x3FE6A09Eu;  // high word of double(sqrt(1/2))

// Cephes logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log x = e log 2 + log1p(m - 1) by a
// degree-9 polynomial; log 2 split as 0.693359375 - 2.12194440e-4 so e * log 2 adds exactly.
inline float log_approx_impl(float x) {
  // Reduction by integer arithmetic only (no compare, no branch: loops vectorize): subtracting the
  // bits of sqrt(1/2) makes the exponent field e and leaves m = x 2^-e in [sqrt(1/2), sqrt(2)).
  const std::uint32_t bits = bits_as<std::uint32_t>(x);
  const std::uint32_t offset = bits - kSqrtHalfBitsF;
  const std::int32_t e = static_cast<std::int32_t>(offset) >> 23;  // arithmetic shift
  const float m = bits_as<float>(static_cast<std::uint32_t>(bits - (offset & 0xFF800000u)));
  const float f = m - 1.0f;  // exact
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = (y * f) * z;
  const float ef = static_cast<float>(e);
  y = y + (-2.12194440e-4f) * ef;
  y = y + (-0.5f) * z;
  float r = f + y;
  r = r + 0.693359375f * ef;
  return r;
}

// fdlibm's log: the same reduction, then log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)), s = f/(2 + f).
inline double log_approx_impl(double x) {
  // The same reduction on the high word (m in [0x3FE6A09E00000000, twice that): about sqrt(1/2)).
  const std::uint64_t bits = bits_as<std::uint64_t>(x);
  const std::uint32_t offset = static_cast<std::uint32_t>(bits >> 32) - kSqrtHalfHighBitsD;
  const std::int32_t e = static_cast<std::int32_t>(offset) >> 20;  // arithmetic shift
  const double m = bits_as<double>(bits - (static_cast<std::uint64_t>(offset & 0xFFF00000u) << 32));
  const double f = m - 1.0;  // exact
  const double s = f / (2.0 + f);
  const double z = s * s, w = z * z;
  const double t1 = w * (3.999999999940941908e-01 +
                         w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  const double t2 =
      z * (6.666666666666735130e-01 +
           w * (2.857142874366239149e-01 +
                w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  const double big_r = t2 + t1;
  const double hfsq = (0.5 * f) * f;
  const double dk = static_cast<double>(e);
  return dk * 6.93147180369123816490e-01 -
         ((hfsq - (s * (hfsq + big_r) + dk * 1.90821492927058770002e-10)) - f);
}

// Cephes sinf/cosf on [-pi/4, pi/4].
inline float sin_approx_impl(float x) {
  const float z = x * x;
  return ((((-1.9515295891e-4f * z) + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z) * x + x;
}
inline float cos_approx_impl(float x) {
  const float z = x * x;
  const float y =
      ((((2.443315711809948e-5f * z) - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z) * z;
  return (y - 0.5f * z) + 1.0f;
}

// Cephes sin/cos (double) on [-pi/4, pi/4].
inline double sin_approx_impl(double x) {
  const double z = x * x;
  double p = 1.58962301576546568060e-10;
  p = p * z - 2.50507477628578072866e-8;
  p = p * z + 2.75573136213857245213e-6;
  p = p * z - 1.98412698295895385996e-4;
  p = p * z + 8.33333333332211858878e-3;
  p = p * z - 1.66666666666666307295e-1;
  return x + (x * z) * p;
}
inline double cos_approx_impl(double x) {
  const double z = x * x;
  double p = -1.13585365213876817300e-11;
  p = p * z + 2.08757008419747316778e-9;
  p = p * z - 2.75573141792967388112e-7;
  p = p * z + 2.48015872888517045348e-5;
  p = p * z - 1.38888888888730564116e-3;
  p = p * z + 4.16666666666665929218e-2;
  return (1.0 - 0.5 * z) + (z * z) * p;
}


// Words [4 * first_block, 4 * (first_block + kBatchBlocks)) of (seed, stream), in word order.
// The inner loops run over the blocks of the batch: the lanes of the vectorized Philox.
// philox_batch_portable is the plain-C++ form (the compiler vectorizes it); with AVX2 the same
// arithmetic is written with intrinsics (32-bit words, so the bits are identical by construction;
// the tests compare both paths against philox_block and numpy).
[[maybe_unused]] void philox_batch_portable(std::uint64_t seed, std::uint64_t stream,
                                            std::uint64_t first_block, std::uint32_t* words) {
  alignas(64) std::uint32_t c0[kBatchBlocks], c1[kBatchBlocks], c2[kBatchBlocks], c3[kBatchBlocks];
  for (int j = 0; j < kBatchBlocks; ++j) {
    const std::uint64_t block = first_block + static_cast<std::uint64_t>(j);
    c0[j] = static_cast<std::uint32_t>(block);
    c1[j] = static_cast<std::uint32_t>(block >> 32);
    c2[j] = static_cast<std::uint32_t>(stream);
    c3[j] = static_cast<std::uint32_t>(stream >> 32);
  }
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int j = 0; j < kBatchBlocks; ++j) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c0[j];
      const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c2[j];
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = static_cast<std::uint32_t>(p1);
      c3[j] = static_cast<std::uint32_t>(p0);
      c0[j] = n0;
      c2[j] = n2;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  for (int j = 0; j < kBatchBlocks; ++j) {
    words[4 * j + 0] = c0[j];
    words[4 * j + 1] = c1[j];
    words[4 * j + 2] = c2[j];
    words[4 * j + 3] = c3[j];
  }
}

#if INITLAB_SIMD_LEVEL >= 2
// (hi, lo) halves of the 32x32 -> 64-bit products m * x for 8 lanes of x.
inline void mul_hi_lo(__m256i x, __m256i m, __m256i& hi, __m256i& lo) {
  // 32-bit shuffles where 64-bit shifts would do: shifts have fewer execution ports.
  const __m256i even = _mm256_mul_epu32(x, m);                              // lanes 0, 2, 4, 6
  const __m256i odd = _mm256_mul_epu32(_mm256_shuffle_epi32(x, 0xF5), m);  // lanes 1, 3, 5, 7
  hi = _mm256_blend_epi32(_mm256_shuffle_epi32(even, 0xF5), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_shuffle_epi32(odd, 0xA0), 0xAA);
}

void philox_batch_avx2(std::uint64_t seed, std::uint64_t stream, std::uint64_t first_block,
                       std::uint32_t* words) {
  const __m256i m0 = _mm256_set1_epi64x(kPhiloxM0), m1 = _mm256_set1_epi64x(kPhiloxM1);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  // The round keys, broadcast once per batch rather than once per group.
  __m256i round_key0[10], round_key1[10];
  {
    std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      round_key0[round] = _mm256_set1_epi32(static_cast<int>(k0));
      round_key1[round] = _mm256_set1_epi32(static_cast<int>(k1));
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
  }
  for (int g = 0; g < kBatchBlocks; g += 8) {  // 8 blocks per group, one per 32-bit lane
    const std::uint64_t block0 = first_block + static_cast<std::uint64_t>(g);
    // The low words of 8 consecutive blocks; the high word is per lane where the low word wraps.
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(block0))), lane);
    const __m256i wrapped = _mm256_cmpgt_epi32(
        _mm256_xor_si256(_mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(block0))), _mm256_set1_epi32(INT32_MIN)),
        _mm256_xor_si256(c0, _mm256_set1_epi32(INT32_MIN)));  // unsigned block0 > c0: carried
    __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(block0 >> 32))), wrapped);
    __m256i c2 = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(stream)));
    __m256i c3 = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(stream >> 32)));
    for (int round = 0; round < 10; ++round) {
      __m256i hi0, lo0, hi1, lo1;
      mul_hi_lo(c0, m0, hi0, lo0);
      mul_hi_lo(c2, m1, hi1, lo1);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), round_key0[round]);
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), round_key1[round]);
      c1 = lo1;
      c3 = lo0;
    }
    // Transpose the 4 x 8 (word, block) tile to word order: block j's words 4j .. 4j+3.
    const __m256i t0 = _mm256_unpacklo_epi32(c0, c1);  // b0w0 b0w1 b1w0 b1w1 | b4.. b5..
    const __m256i t1 = _mm256_unpackhi_epi32(c0, c1);  // b2w0 b2w1 b3w0 b3w1 | b6.. b7..
    const __m256i t2 = _mm256_unpacklo_epi32(c2, c3);  // b0w2 b0w3 b1w2 b1w3 | ...
    const __m256i t3 = _mm256_unpackhi_epi32(c2, c3);
    const __m256i b01 = _mm256_unpacklo_epi64(t0, t2);  // block 0 | block 4
    const __m256i b11 = _mm256_unpackhi_epi64(t0, t2);  // block 1 | block 5
    const __m256i b22 = _mm256_unpacklo_epi64(t1, t3);  // block 2 | block 6
    const __m256i b33 = _mm256_unpackhi_epi64(t1, t3);  // block 3 | block 7
    __m256i* out = reinterpret_cast<__m256i*>(words + 4 * g);
    _mm256_storeu_si256(out + 0, _mm256_permute2x128_si256(b01, b11, 0x20));  // blocks 0, 1
    _mm256_storeu_si256(out + 1, _mm256_permute2x128_si256(b22, b33, 0x20));  // blocks 2, 3
    _mm256_storeu_si256(out + 2, _mm256_permute2x128_si256(b01, b11, 0x31));  // blocks 4, 5
    _mm256_storeu_si256(out + 3, _mm256_permute2x128_si256(b22, b33, 0x31));  // blocks 6, 7
  }
}
#endif

inline void philox_batch(std::uint64_t seed, std::uint64_t stream, std::uint64_t first_block,
                         std::uint32_t* words) {
#if INITLAB_SIMD_LEVEL >= 2
  philox_batch_avx2(seed, stream, first_block, words);
#else
  philox_batch_portable(seed, stream, first_block, words);
#endif
}

// ---- per-type constants and the exact uniform ----------------------------------------------------
template <class T>
struct Real;
template <>
struct Real<float> {
  using Word = std::uint32_t;  // the integer that one element draws
  static constexpr int kBits = 23;  // k = word >> (32 - 23)
  static constexpr Word kOne = 0x3F800000u;  // bits of 1.0f
  static constexpr float kHalfUlp = 0x1p-24f;
  static constexpr float kPiOver2 = 1.57079632679489661923f;
  static constexpr float kSqrt2 = 1.41421356237309504880f;
  static Word element_word(const std::uint32_t* words, std::int64_t i) { return words[i]; }
};
template <>
struct Real<double> {
  using Word = std::uint64_t;
  static constexpr int kBits = 52;  // k = W >> (64 - 52)
  static constexpr Word kOne = 0x3FF0000000000000ull;
  static constexpr double kHalfUlp = 0x1p-53;
  static constexpr double kPiOver2 = 1.57079632679489661923;
  static constexpr double kSqrt2 = 1.41421356237309504880;
  static Word element_word(const std::uint32_t* words, std::int64_t i) {
    return static_cast<std::uint64_t>(words[2 * i]) |
           (static_cast<std::uint64_t>(words[2 * i + 1]) << 32);
  }
};

// u = (2k + 1) * 2^-(kBits + 1), k = the top kBits bits of the word.
template <class T>
inline T uniform_from_word(typename Real<T>::Word w) {
  using R = Real<T>;
  constexpr int shift = 8 * static_cast<int>(sizeof(w)) - R::kBits;
  const T one_plus = bits_as<T>(static_cast<typename Real<T>::Word>(R::kOne | (w >> shift)));
  return (one_plus - T(1)) + R::kHalfUlp;
}

// (cos theta, sin theta) with theta = 2 pi v - pi/4 from the word of v (random.hpp).
template <class T>
inline void cos_sin_from_word(typename Real<T>::Word w, T& cos_theta, T& sin_theta) {
  using R = Real<T>;
  using Word = typename Real<T>::Word;
  constexpr int width = 8 * static_cast<int>(sizeof(Word));
  const Word quadrant = w >> (width - 2);
  const Word rest = (w << 2) >> (width - R::kBits + 2);  // the next kBits - 2 bits
  const T one_plus = bits_as<T>(static_cast<Word>(R::kOne | (rest << 2)));
  const T y = (one_plus - T(1.5)) + T(4) * R::kHalfUlp;  // (2 rest + 1) 2^-(kBits-1) - 1/2
  const T phi = y * R::kPiOver2;
  const T c = cos_approx_impl(phi), s = sin_approx_impl(phi);
  // Branch-free so that the loops around it vectorize: odd quadrants swap, q in {1, 2} negates the
  // cosine ((q + 1) & 2), q in {2, 3} negates the sine (q & 2).
  const bool odd = (quadrant & 1) != 0;
  const T ca = odd ? s : c, sa = odd ? c : s;
  cos_theta = ((quadrant + 1) & 2) != 0 ? -ca : ca;
  sin_theta = (quadrant & 2) != 0 ? -sa : sa;
}

template <class T>
inline T box_muller_radius(T u1) {
  return std::sqrt(T(-2) * log_approx_impl(u1));
}

// The constants of a truncated-normal fill (random.hpp), in double then rounded to T.
template <class T>
struct TruncatedNormalConstants {
  T pa, qa, d, a, b, mean, std;
  TruncatedNormalConstants(double mean_, double std_, double a_, double b_) {
    const double phi_a = normal_cdf(a_), phi_minus_a = normal_cdf(-a_);
    const double mass = a_ >= 0 ? phi_minus_a - normal_cdf(-b_) : normal_cdf(b_) - phi_a;
    pa = static_cast<T>(phi_a);
    qa = static_cast<T>(phi_minus_a);
    d = static_cast<T>(mass);
    a = static_cast<T>(a_);
    b = static_cast<T>(b_);
    mean = static_cast<T>(mean_);
    std = static_cast<T>(std_);
  }
};

// Giles' central branch and the tail branches, selected by w.
inline bool erfinv_is_central(float w) { return w < 5.0f; }
inline bool erfinv_is_central(double w) { return w < 6.25; }

template <class T>
inline T erfinv_central(T w);
template <>
inline float erfinv_central(float w) {
  w = w - 2.5f;
  float p = 2.81022636e-08f;
  p = 3.43273939e-07f + p * w;
  p = -3.5233877e-06f + p * w;
  p = -4.39150654e-06f + p * w;
  p = 0.00021858087f + p * w;
  p = -0.00125372503f + p * w;
  p = -0.00417768164f + p * w;
  p = 0.246640727f + p * w;
  p = 1.50140941f + p * w;
  return p;
}
template <>
inline double erfinv_central(double w) {
  w = w - 3.125;
  double p = -3.6444120640178196996e-21;
  p = -1.685059138182016589e-19 + p * w;
  p = 1.2858480715256400167e-18 + p * w;
  p = 1.115787767802518096e-17 + p * w;
  p = -1.333171662854620906e-16 + p * w;
  p = 2.0972767875968561637e-17 + p * w;
  p = 6.6376381343583238325e-15 + p * w;
  p = -4.0545662729752068639e-14 + p * w;
  p = -8.1519341976054721522e-14 + p * w;
  p = 2.6335093153082322977e-12 + p * w;
  p = -1.2975133253453532498e-11 + p * w;
  p = -5.4154120542946279317e-11 + p * w;
  p = 1.051212273321532285e-09 + p * w;
  p = -4.1126339803469836976e-09 + p * w;
  p = -2.9070369957882005086e-08 + p * w;
  p = 4.2347877827932403518e-07 + p * w;
  p = -1.3654692000834678645e-06 + p * w;
  p = -1.3882523362786468719e-05 + p * w;
  p = 0.0001867342080340571352 + p * w;
  p = -0.00074070253416626697512 + p * w;
  p = -0.0060336708714301490533 + p * w;
  p = 0.24015818242558961693 + p * w;
  p = 1.6536545626831027356 + p * w;
  return p;
}

float erfinv_tail(float w) {
  w = std::sqrt(w) - 3.0f;
  float p = -0.000200214257f;
  p = 0.000100950558f + p * w;
  p = 0.00134934322f + p * w;
  p = -0.00367342844f + p * w;
  p = 0.00573950773f + p * w;
  p = -0.0076224613f + p * w;
  p = 0.00943887047f + p * w;
  p = 1.00167406f + p * w;
  p = 2.83297682f + p * w;
  return p;
}
double erfinv_tail(double w) {
  double p;
  if (w < 16.0) {
    w = std::sqrt(w) - 3.25;
    p = 2.2137376921775787049e-09;
    p = 9.0756561938885390979e-08 + p * w;
    p = -2.7517406297064545428e-07 + p * w;
    p = 1.8239629214389227755e-08 + p * w;
    p = 1.5027403968909827627e-06 + p * w;
    p = -4.013867526981545969e-06 + p * w;
    p = 2.9234449089955446044e-06 + p * w;
    p = 1.2475304481671778723e-05 + p * w;
    p = -4.7318229009055733981e-05 + p * w;
    p = 6.8284851459573175448e-05 + p * w;
    p = 2.4031110387097893999e-05 + p * w;
    p = -0.0003550375203628474796 + p * w;
    p = 0.00095328937973738049703 + p * w;
    p = -0.0016882755560235047313 + p * w;
    p = 0.0024914420961078508066 + p * w;
    p = -0.0037512085075692412107 + p * w;
    p = 0.005370914553590063617 + p * w;
    p = 1.0052589676941592334 + p * w;
    p = 3.0838856104922207635 + p * w;
  } else {
    w = std::sqrt(w) - 5.0;
    p = -2.7109920616438573243e-11;
    p = -2.5556418169965252055e-10 + p * w;
    p = 1.5076572693500548083e-09 + p * w;
    p = -3.7894654401267369937e-09 + p * w;
    p = 7.6157012080783393804e-09 + p * w;
    p = -1.4960026627149240478e-08 + p * w;
    p = 2.9147953450901080826e-08 + p * w;
    p = -6.7711997758452339498e-08 + p * w;
    p = 2.2900482228026654717e-07 + p * w;
    p = -9.9298272942317002539e-07 + p * w;
    p = 4.5260625972231537039e-06 + p * w;
    p = -1.9681778105531670567e-05 + p * w;
    p = 7.5995277030017761139e-05 + p * w;
    p = -0.00021503011930044477347 + p * w;
    p = -0.00013871931833623122026 + p * w;
    p = 1.0103004648645343977 + p * w;
    p = 4.8499064014085844221 + p * w;
  }
  return p;
}

// ---- transforms: words of one batch -> values in element order -----------------------------------
// Each writes kValues = kBatchWords / words-per-element values; n_out <= kValues of them to out.
template <class T>
constexpr int batch_values() {
  return kBatchWords / static_cast<int>(sizeof(T) / sizeof(std::uint32_t));
}

template <class T>
struct UniformTransform {
  T lo, width, hi;
  void operator()(const std::uint32_t* words, T* out) const {
    for (int i = 0; i < batch_values<T>(); ++i) {
      const T u = uniform_from_word<T>(Real<T>::element_word(words, i));
      out[i] = std::min(lo + width * u, hi);
    }
  }
};

// The work is split in short loops over the batch (log, then sqrt, then the angle): each loop body is
// short enough for the out-of-order core to overlap many iterations of the long polynomial chains.
template <class T>
struct NormalTransform {
  T mean, std;
  void operator()(const std::uint32_t* words, T* out) const {
    constexpr int kPairs = batch_values<T>() / 2;
    alignas(64) T radius[kPairs];
    for (int m = 0; m < kPairs; ++m) {
      radius[m] = log_approx_impl(uniform_from_word<T>(Real<T>::element_word(words, 2 * m)));
    }
    for (int m = 0; m < kPairs; ++m) radius[m] = std::sqrt(T(-2) * radius[m]);
    for (int m = 0; m < kPairs; ++m) {
      T c, s;
      cos_sin_from_word<T>(Real<T>::element_word(words, 2 * m + 1), c, s);
      out[2 * m] = mean + std * (radius[m] * c);
      out[2 * m + 1] = mean + std * (radius[m] * s);
    }
  }
};

template <class T>
struct TruncatedNormalTransform {
  TruncatedNormalConstants<T> k;
  T finish(T erfinv_over_t, T t) const {  // z = erfinv(t) sqrt 2, clipped to [a, b], then scaled
    T z = (erfinv_over_t * t) * Real<T>::kSqrt2;
    z = z < k.a ? k.a : z;
    z = z > k.b ? k.b : z;
    return k.mean + k.std * z;
  }
  void operator()(const std::uint32_t* words, T* out) const {
    alignas(64) T t[batch_values<T>()], w[batch_values<T>()];
    for (int i = 0; i < batch_values<T>(); ++i) {
      const T u = uniform_from_word<T>(Real<T>::element_word(words, i));
      const T p = k.pa + k.d * u, q = k.qa - k.d * u;
      t[i] = p - q;
      w[i] = (T(4) * p) * q;
    }
    for (int i = 0; i < batch_values<T>(); ++i) w[i] = -log_approx_impl(w[i]);
    int tails = 0;
    for (int i = 0; i < batch_values<T>(); ++i) {
      tails += erfinv_is_central(w[i]) ? 0 : 1;
      out[i] = finish(erfinv_central(w[i]), t[i]);
    }
    // Giles' tail branch is rare (|z| > 2.9 in float, > 3.3 in double): fix those elements up.
    if (tails > 0) {
      for (int i = 0; i < batch_values<T>(); ++i) {
        if (!erfinv_is_central(w[i])) out[i] = finish(erfinv_tail(w[i]), t[i]);
      }
    }
  }
};

// The fast driver: chunks over threads, batches within a chunk.
template <class T, class Transform>
void fill_batched(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                  const Transform& transform) {
  constexpr std::int64_t values_per_batch = batch_values<T>();
  constexpr std::int64_t values_per_block = values_per_batch / kBatchBlocks;
  static_assert(kChunk % values_per_batch == 0, "chunks hold whole batches");
  const std::int64_t n_chunks = (n + kChunk - 1) / kChunk;
  // Chunks are handed out dynamically (a few at a time): a chunk's values do not depend on which
  // thread computes it, and a thread that the OS preempts does not hold the others back.
#pragma omp parallel for schedule(dynamic, 4) num_threads(num_threads()) if (n_chunks > 1)
  for (std::int64_t chunk = 0; chunk < n_chunks; ++chunk) {
    alignas(64) std::uint32_t words[kBatchWords];
    alignas(64) T scratch[values_per_batch];
    const std::int64_t end = std::min(n, (chunk + 1) * kChunk);
    for (std::int64_t first = chunk * kChunk; first < end; first += values_per_batch) {
      philox_batch(seed, stream, static_cast<std::uint64_t>(first / values_per_block), words);
      if (end - first >= values_per_batch) {
        transform(words, out + first);
      } else {
        transform(words, scratch);
        std::copy(scratch, scratch + (end - first), out + first);
      }
    }
  }
}

// Word j of (seed, stream), straight from the definition.
inline std::uint32_t word_at(std::uint64_t seed, std::uint64_t stream, std::uint64_t j) {
  return philox_block(seed, stream, j / 4)[j % 4];
}

template <class T>
typename Real<T>::Word element_word_naive(std::uint64_t seed, std::uint64_t stream,
                                          std::int64_t i) {
  const auto j = static_cast<std::uint64_t>(i);
  if constexpr (sizeof(T) == 4) {
    return word_at(seed, stream, j);
  } else {
    return static_cast<std::uint64_t>(word_at(seed, stream, 2 * j)) |
           (static_cast<std::uint64_t>(word_at(seed, stream, 2 * j + 1)) << 32);
  }
}

}  // namespace

// ---- public scalar functions -----------------------------------------------------------------------
double normal_cdf(double x) { return 0.5 * std::erfc(-x * 0.70710678118654752440); }
float log_approx(float x) { return log_approx_impl(x); }
double log_approx(double x) { return log_approx_impl(x); }
float sin_approx(float x) { return sin_approx_impl(x); }
double sin_approx(double x) { return sin_approx_impl(x); }
float cos_approx(float x) { return cos_approx_impl(x); }
double cos_approx(double x) { return cos_approx_impl(x); }
float erfinv_poly(float w) { return erfinv_is_central(w) ? erfinv_central(w) : erfinv_tail(w); }
double erfinv_poly(double w) { return erfinv_is_central(w) ? erfinv_central(w) : erfinv_tail(w); }

// ---- fast fills ----------------------------------------------------------------------------------
template <class T>
void fill_uniform(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, double low,
                  double high) {
  // out is (n,)
  const UniformTransform<T> transform{static_cast<T>(low), static_cast<T>(high - low),
                                      static_cast<T>(high)};
  fill_batched(out, n, seed, stream, transform);
}

template <class T>
void fill_normal(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream, double mean,
                 double std) {
  // out is (n,)
  const NormalTransform<T> transform{static_cast<T>(mean), static_cast<T>(std)};
  fill_batched(out, n, seed, stream, transform);
}

template <class T>
void fill_truncated_normal(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                           double mean, double std, double a, double b) {
  // out is (n,)
  const TruncatedNormalTransform<T> transform{TruncatedNormalConstants<T>(mean, std, a, b)};
  fill_batched(out, n, seed, stream, transform);
}

// ---- naive twins: one element at a time, from the formulas of random.hpp ---------------------------
template <class T>
void fill_uniform_naive(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                        double low, double high) {
  const T lo = static_cast<T>(low), width = static_cast<T>(high - low), hi = static_cast<T>(high);
  for (std::int64_t i = 0; i < n; ++i) {
    const T u = uniform_from_word<T>(element_word_naive<T>(seed, stream, i));
    out[i] = std::min(lo + width * u, hi);
  }
}

template <class T>
void fill_normal_naive(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                       double mean, double std) {
  const T mean_t = static_cast<T>(mean), std_t = static_cast<T>(std);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t first = i - (i % 2);  // the pair (first, first + 1)
    const T u1 = uniform_from_word<T>(element_word_naive<T>(seed, stream, first));
    T c, s;
    cos_sin_from_word<T>(element_word_naive<T>(seed, stream, first + 1), c, s);
    const T r = box_muller_radius(u1);
    out[i] = mean_t + std_t * (r * (i % 2 == 0 ? c : s));
  }
}

template <class T>
void fill_truncated_normal_naive(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t stream,
                                 double mean, double std, double a, double b) {
  const TruncatedNormalConstants<T> k(mean, std, a, b);
  for (std::int64_t i = 0; i < n; ++i) {
    const T u = uniform_from_word<T>(element_word_naive<T>(seed, stream, i));
    const T p = k.pa + k.d * u, q = k.qa - k.d * u;
    const T t = p - q;
    const T w = -log_approx_impl((T(4) * p) * q);
    T z = (erfinv_poly(w) * t) * Real<T>::kSqrt2;
    z = std::min(std::max(z, k.a), k.b);
    out[i] = k.mean + k.std * z;
  }
}

void fill_words(std::uint32_t* out, std::int64_t n_words, std::uint64_t seed, std::uint64_t stream,
                std::uint64_t first_word) {
  // out is (n_words,)
  for (std::int64_t j = 0; j < n_words; ++j) {
    out[j] = word_at(seed, stream, first_word + static_cast<std::uint64_t>(j));
  }
}

template void fill_uniform<float>(float*, std::int64_t, std::uint64_t, std::uint64_t, double, double);
template void fill_normal<float>(float*, std::int64_t, std::uint64_t, std::uint64_t, double, double);
template void fill_truncated_normal<float>(float*, std::int64_t, std::uint64_t, std::uint64_t, double,
                                            double, double, double);
template void fill_uniform_naive<float>(float*, std::int64_t, std::uint64_t, std::uint64_t, double,
                                         double);
template void fill_normal_naive<float>(float*, std::int64_t, std::uint64_t, std::uint64_t, double,
                                        double);
template void fill_truncated_normal_naive<float>(float*, std::int64_t, std::uint64_t, std::uint64_t,
                                                  double, double, double, double);
template void fill_uniform<double>(double*, std::int64_t, std::uint64_t, std::uint64_t, double, double);
template void fill_normal<double>(double*, std::int64_t, std::uint64_t, std::uint64_t, double, double);
template void fill_truncated_normal<double>(double*, std::int64_t, std::uint64_t, std::uint64_t, double,
                                            double, double, double);
template void fill_uniform_naive<double>(double*, std::int64_t, std::uint64_t, std::uint64_t, double,
                                         double);
template void fill_normal_naive<double>(double*, std::int64_t, std::uint64_t, std::uint64_t, double,
                                        double);
template void fill_truncated_normal_naive<double>(double*, std::int64_t, std::uint64_t, std::uint64_t,
                                                  double, double, double, double);

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
