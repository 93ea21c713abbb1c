#include "initlab/parallel.hpp"

#include <atomic>
#include <cstdlib>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

INITLAB_NAMESPACE_BEGIN
namespace {

int default_threads() {
  // omp_get_max_threads() already honours OMP_NUM_THREADS; without OpenMP there is one thread.
#ifdef _OPENMP
  int n = omp_get_max_threads();
  return n < 1 ? 1 : (n > kMaxThreads ? kMaxThreads : n);
#else
  return 1;
#endif
}

std::atomic<int>& thread_count() {
  static std::atomic<int> count{default_threads()};
  return count;
}

}  // namespace

int num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  thread_count().store(n < 1 ? 1 : (n > kMaxThreads ? kMaxThreads : n), std::memory_order_relaxed);
}

int hardware_threads() {
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
#endif
}

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

INITLAB_NAMESPACE_END  // initlab::INITLAB_ISA
