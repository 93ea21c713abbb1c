// bindings.cpp: initlab._core's table of contents. bind_core defines the package-level functions here
// and calls each concern's binding file in turn: bindings_init.cpp (random numbers, initializers),
// bindings_nn.cpp (GEMM, dense layers, losses, optimizers, statistics, native layers, the batch loop),
// bindings_conv.cpp (convolution, pooling, their native layers). Only the bindings*.cpp files include
// pybind11. They convert and validate Python arguments (dtype, ndim, shape, contiguity, writeability)
// with the one helper Check, choose float or double with the one dispatch with_float_type
// (bindings_common.hpp), then release the GIL around each kernel. No numerics here: every function
// forwards to the core in cpp/src.
#include <pybind11/pybind11.h>

#include <string>

#include "bindings_common.hpp"
#include "initlab/parallel.hpp"

namespace initlab_python {
inline namespace INITLAB_ISA {
namespace {

// The instruction set the compiler was allowed to use for this build.
std::string simd_name() {
#if INITLAB_SIMD_LEVEL >= 3
  return "AVX-512";
#elif INITLAB_SIMD_LEVEL >= 2
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

py::dict build_info() {
  py::dict d;
  d["compiler"] = compiler_name();
  d["simd"] = simd_name();
  d["openmp"] = initlab::has_openmp();
  d["hardware_threads"] = initlab::hardware_threads();
  return d;
}

void set_num_threads(int n) {
  if (n < 1 || n > initlab::kMaxThreads) {
    Check("set_num_threads").value_error("n must be >= 1 and <= " + std::to_string(initlab::kMaxThreads) +
                                         ", got " + std::to_string(n));
  }
  initlab::set_num_threads(n);
}

}  // namespace

// Defines every function of initlab._core on m (called by the module's entry point,
// cpp/bindings_module.cpp, for the instruction-set path it chose).
void bind_core(py::module_& m) {
  m.doc() = "initlab's native core (private: use the initlab package)";
  m.attr("__version__") = INITLAB_VERSION;

  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.attr("MAX_THREADS") = initlab::kMaxThreads;
  m.def("get_num_threads", &initlab::num_threads);
  m.def("build_info", &build_info);

  bind_init(m);
  bind_nn(m);
  bind_conv(m);
}

}  // namespace INITLAB_ISA
}  // namespace initlab_python
