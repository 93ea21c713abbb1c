// parallel.hpp: the one thread count every kernel uses, and the fixed chunking that keeps
// results independent of it.
//
// Contract
// - num_threads() is the team size of every OpenMP region in the core. It is process-wide (an
//   atomic, not OpenMP's per-thread ICV), so a kernel called from any Python thread obeys
//   set_num_threads(). Default: OMP_NUM_THREADS if set, else all cores.
// - Determinism: kernels split work into chunks whose size is a constant of the kernel, never a
//   function of the thread count, and each thread owns the writes of its chunks. Reductions
//   combine per-chunk partials in chunk order. Hence bitwise-identical results on any team size.
#pragma once
#include "initlab/isa.hpp"
#include <cstdint>

INITLAB_NAMESPACE_BEGIN

// The largest team: asking the OpenMP runtime for far more threads than this (OMP_NUM_THREADS=1000000,
// set_num_threads(10**6)) crashes it at the next region when thread creation fails.
constexpr int kMaxThreads = 1024;

int num_threads();
void set_num_threads(int n);  // clamped to [1, kMaxThreads] (the bindings reject values outside)
int hardware_threads();       // what the OpenMP runtime reports as available
bool has_openmp();

// Elements per chunk for elementwise kernels and for the per-chunk partials of reductions.
constexpr std::int64_t kChunk = 1 << 14;

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
