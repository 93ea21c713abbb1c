// isa.hpp: the instruction-set path a translation unit is compiled for, and the namespace that
// keeps each path's code apart.
//
// A native build (INITLAB_NATIVE=ON) compiles the core once, for the CPU that builds it. A portable
// build on x86-64 (INITLAB_NATIVE=OFF, what a wheel would be) compiles the core and the bindings
// once per path (baseline x86-64, AVX2+FMA, AVX-512) and the module picks one at import by CPUID
// (cpp/bindings_module.cpp). Every declaration of the core sits in the inline namespace
// initlab::INITLAB_ISA, so the copies of each function and template link side by side without
// clashing, and code that says initlab::gemm means its own path's.
//
// Kernels choose their vector code by INITLAB_SIMD_LEVEL, never by the compiler's __AVX2__-style
// macros: a `#pragma GCC target` region (how the portable build compiles each path) does not
// define those in C++.
//   0: no wide vectors assumed (baseline x86-64: SSE2; any other architecture)
//   2: AVX2 + FMA (256-bit, fused multiply-add)
//   3: AVX-512 F, BW, DQ, VL (512-bit)
#pragma once

#ifndef INITLAB_ISA
#define INITLAB_ISA native
#endif
#ifndef INITLAB_PORTABLE_PATHS
#define INITLAB_PORTABLE_PATHS 0
#endif

#ifndef INITLAB_SIMD_LEVEL
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && \
    defined(__FMA__)
#define INITLAB_SIMD_LEVEL 3
#elif defined(__AVX2__) && defined(__FMA__)
#define INITLAB_SIMD_LEVEL 2
#else
#define INITLAB_SIMD_LEVEL 0
#endif
#endif

#define INITLAB_NAMESPACE_BEGIN \
  namespace initlab {           \
  inline namespace INITLAB_ISA {
#define INITLAB_NAMESPACE_END \
  }                           \
  }
