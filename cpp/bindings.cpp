// bindings.cpp: the only file that includes pybind11. It converts and validates Python arguments
// (dtype, ndim, shape, contiguity, writeability), then releases the GIL around each kernel.
// No numerics here: every function forwards to the core in cpp/src.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "initlab/parallel.hpp"

namespace py = pybind11;

namespace {

// The instruction set the compiler was allowed to use for this build.
std::string simd_name() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "AVX2+FMA";
#elif defined(__AVX2__)
  return "AVX2";
#elif defined(__AVX__)
  return "AVX";
#elif defined(__SSE4_2__)
  return "SSE4.2";
#elif defined(__SSE2__)
  return "SSE2";
#elif defined(__ARM_NEON)
  return "NEON";
#else
  return "scalar";
#endif
}

std::string compiler_name() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
  return "msvc " + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

void set_num_threads(int n) {
  if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
  initlab::set_num_threads(n);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "initlab's native core (private: use the initlab package)";
  m.attr("__version__") = INITLAB_VERSION;

  // ---- package level -----------------------------------------------------------------------
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &initlab::num_threads);
  m.def("build_info", [] {
    py::dict d;
    d["compiler"] = compiler_name();
    d["simd"] = simd_name();
    d["openmp"] = initlab::has_openmp();
    d["hardware_threads"] = initlab::hardware_threads();
    return d;
  });

  // ---- random (philox.hpp, random.hpp) -------------------------------------------------------

  // ---- initializers (init.hpp) -------------------------------------------------------------

  // ---- GEMM and dense layers (gemm.hpp, dense.hpp) ------------------------------------------

  // ---- losses (loss.hpp) ---------------------------------------------------------------------

  // ---- optimizers, clipping, dropout (optim.hpp) --------------------------------------------

  // ---- statistics (stats.hpp) ----------------------------------------------------------------
}
