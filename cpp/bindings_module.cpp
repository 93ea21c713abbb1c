// bindings_module.cpp: the entry point of initlab._core. It chooses the instruction-set path
// (isa.hpp) and defines the module's functions with that path's bind_core (cpp/bindings.cpp).
//
// A native build has one path, "native". A portable x86-64 build (INITLAB_PORTABLE_PATHS) has
// "baseline", "avx2" and "avx512" and takes the best one this CPU runs (CPUID, with the operating
// system's support for the wider registers: libgcc's __builtin_cpu_supports checks both). The
// environment variable INITLAB_SIMD names a path instead; a path this build lacks or this CPU cannot
// run fails the import with a message that says which.
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <string>

#include "initlab/isa.hpp"

namespace py = pybind11;

#if INITLAB_PORTABLE_PATHS
// Declared as the definitions name them (their inline namespace is part of the symbol).
namespace initlab_python {
namespace baseline {
void bind_core(py::module_& m);
}
namespace avx2 {
void bind_core(py::module_& m);
}
namespace avx512 {
void bind_core(py::module_& m);
}
}  // namespace initlab_python
#else
namespace initlab_python {
inline namespace INITLAB_ISA {
void bind_core(py::module_& m);
}  // namespace INITLAB_ISA
}  // namespace initlab_python
#endif

namespace {

struct SimdPath {
  const char* name;
  bool (*runs_here)();
  void (*bind)(py::module_&);
};

#if INITLAB_PORTABLE_PATHS
// Best first. x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE; v4 adds AVX-512 F, BW, CD, DQ, VL.
const SimdPath kPaths[] = {
    {"avx512", [] { return __builtin_cpu_supports("x86-64-v4") > 0; }, &initlab_python::avx512::bind_core},
    {"avx2", [] { return __builtin_cpu_supports("x86-64-v3") > 0; }, &initlab_python::avx2::bind_core},
    {"baseline", [] { return true; }, &initlab_python::baseline::bind_core},
};
#else
const SimdPath kPaths[] = {{"native", [] { return true; }, &initlab_python::bind_core}};
#endif

std::string path_names(bool runnable_only) {
  std::string names;
  for (const SimdPath& p : kPaths) {
    if (runnable_only && !p.runs_here()) continue;
    names += std::string(names.empty() ? "" : ", ") + "'" + p.name + "'";
  }
  return names;
}

// The path INITLAB_SIMD names, else the best this CPU runs.
const SimdPath& choose_path() {
  __builtin_cpu_init();
  const char* env = std::getenv("INITLAB_SIMD");
  const std::string wanted = env == nullptr ? "" : env;
  for (const SimdPath& p : kPaths) {
    if (wanted.empty() ? p.runs_here() : wanted == p.name) {
      if (!p.runs_here()) {
        throw std::runtime_error("INITLAB_SIMD='" + wanted + "': this CPU cannot run that path (it runs " +
                                 path_names(true) + ")");
      }
      return p;
    }
  }
  throw std::runtime_error("INITLAB_SIMD='" + wanted + "' is not a path of this build of initlab (it has " +
                           path_names(false) +
                           (INITLAB_PORTABLE_PATHS ? std::string(")")
                                                   : std::string("; the portable build, cmake -DINITLAB_NATIVE=OFF, "
                                                                 "has 'baseline', 'avx2' and 'avx512')")));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  const SimdPath& path = choose_path();
  path.bind(m);
  m.attr("SIMD_PATH") = path.name;
  py::list runnable;
  for (const SimdPath& p : kPaths) {
    if (p.runs_here()) runnable.append(p.name);
  }
  m.attr("SIMD_PATHS") = py::tuple(runnable);
}
