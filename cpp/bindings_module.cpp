// bindings_module.cpp: the entry point of initlab._core. It defines the module's functions with
// bind_core (cpp/bindings.cpp) of the one instruction-set path this build has (isa.hpp).
#include <pybind11/pybind11.h>

#include "initlab/isa.hpp"

namespace initlab_python {
inline namespace INITLAB_ISA {
void bind_core(pybind11::module_& m);
}  // namespace INITLAB_ISA
}  // namespace initlab_python

PYBIND11_MODULE(_core, m) { initlab_python::bind_core(m); }
