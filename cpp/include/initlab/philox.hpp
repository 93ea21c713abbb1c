// philox.hpp: the Philox4x32 block function (Salmon, Moraes, Dror, Shaw, "Parallel random numbers:
// as easy as 1, 2, 3", SC'11), exactly as Random123 defines it.
//
// Contract
// - philox4x32<R>(counter, key) is a pure function of a 4-word counter and a 2-word key (32-bit
//   words): no state, no side effects, the same answer on every platform and compiler.
// - R = 10 is the standard Philox4x32-10; R = 7 is offered for the known-answer tests.
// - Each round: (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2 (64-bit products),
//   c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); then the key is bumped by the Weyl constants
//   (k0 += W0, k1 += W1) before the next round.
#pragma once
#include "initlab/isa.hpp"
#include <array>
#include <cstdint>

INITLAB_NAMESPACE_BEGIN

using Philox4x32Counter = std::array<std::uint32_t, 4>;
using Philox4x32Key = std::array<std::uint32_t, 2>;

constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;  // multipliers (Salmon et al., Table 2)
constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;  // Weyl key increments: golden ratio,
constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;  // and sqrt(3) - 1, as 32-bit fractions

template <int Rounds>
inline Philox4x32Counter philox4x32(Philox4x32Counter c, Philox4x32Key k) {
  static_assert(Rounds >= 1 && Rounds <= 16, "Philox4x32 takes 1 to 16 rounds");
  for (int r = 0; r < Rounds; ++r) {
    if (r > 0) {
      k[0] += kPhiloxW0;
      k[1] += kPhiloxW1;
    }
    const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c[2];
    c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
         static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
  }
  return c;
}

// Philox4x32-10 with the project's mapping of (seed, stream, block) to counter and key:
// key = (seed low word, seed high word), counter = (block low, block high, stream low, stream high).
inline Philox4x32Counter philox_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block) {
  return philox4x32<10>(
      {static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
       static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)},
      {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
}

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
