// bindings.cpp: the only file that includes pybind11. It converts and validates Python arguments
// (dtype, ndim, shape, contiguity, writeability), then releases the GIL around each kernel.
// No numerics here: every function forwards to the core in cpp/src.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <initializer_list>
#include <array>
#include <map>
#include <memory>
#include <type_traits>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "initlab/conv.hpp"
#include "initlab/conv_layer.hpp"
#include "initlab/dense.hpp"
#include "initlab/gemm.hpp"
#include "initlab/loss.hpp"
#include "initlab/optim.hpp"
#include "initlab/init.hpp"
#include "initlab/layer.hpp"
#include "initlab/parallel.hpp"
#include "initlab/stats.hpp"
#include "initlab/train.hpp"
#include "initlab/philox.hpp"
#include "initlab/random.hpp"

namespace py = pybind11;

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

void set_num_threads(int n) {
  if (n < 1 || n > initlab::kMaxThreads)
    throw py::value_error("set_num_threads: n must be >= 1 and <= " +
                          std::to_string(initlab::kMaxThreads) + ", got " + std::to_string(n));
  initlab::set_num_threads(n);
}


// ---- validation for the kernel bindings ------------------------------------------------------
// Every check raises before anything is written: TypeError for a wrong kind or dtype, ValueError
// for a wrong shape, layout, value or overlap; the message names the function and the argument.

enum class FloatType { kFloat32, kFloat64 };

// dtype tests by numpy's equivalence (PyArray_EquivTypes), not object identity: an array that
// crossed a pickle (a Dask worker) carries an equal but distinct float32 dtype object.
template <class T>
bool has_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T, 0>>(a);
}

// Kernels load whole elements: an unaligned buffer (a pickle-5 out-of-band view) is undefined
// behaviour for them, so it is refused rather than read.
bool is_aligned(const py::array& a) {
  return (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
}

std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (d) s += ", ";
    s += std::to_string(shape[d]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::vector<std::int64_t> shape_of(const py::array& a) {
  return std::vector<std::int64_t>(a.shape(), a.shape() + a.ndim());
}

// An output array must be a writable, C-contiguous float32/float64 ndarray: never a converted copy
// (writing into a copy would silently lose the result).
struct OutArray {
  py::array array;
  bool is_double;
  std::vector<std::int64_t> shape;
  std::int64_t size;
};

class Check {
 public:
  explicit Check(const char* fn) : fn_(fn) {}

  [[noreturn]] void type_error(const std::string& msg) const {
    throw py::type_error(std::string(fn_) + ": " + msg);
  }
  [[noreturn]] void value_error(const std::string& msg) const {
    throw py::value_error(std::string(fn_) + ": " + msg);
  }

  // An ndarray (no conversion: a list would become a temporary copy), C-contiguous, of `ndim`.
  py::array array(const py::object& obj, const char* name, int ndim) const {
    if (!py::isinstance<py::array>(obj)) {
      type_error(std::string("argument '") + name + "' must be a numpy.ndarray, got " +
                 std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (a.ndim() != ndim) {
      value_error(std::string("argument '") + name + "' must be " + std::to_string(ndim) +
                  "-dimensional, got ndim=" + std::to_string(a.ndim()) + " with shape " +
                  shape_str(shape_of(a)));
    }
    if (!(a.flags() & py::array::c_style)) {
      value_error(std::string("argument '") + name +
                  "' must be C-contiguous (use numpy.ascontiguousarray), got a strided view");
    }
    if (!is_aligned(a)) {
      value_error(std::string("argument '") + name + "' is not aligned to its dtype's " +
                  std::to_string(a.itemsize()) + " bytes (a view at an odd byte offset); pass an aligned copy");
    }
    return a;
  }

  // array() and writeable: outputs are written in place, never copied.
  py::array output(const py::object& obj, const char* name, int ndim) const {
    py::array a = array(obj, name, ndim);
    if (!a.writeable()) {
      value_error(std::string("argument '") + name + "' is written in place and must be writeable");
    }
    return a;
  }

  FloatType float_type(const py::array& a, const char* name) const {
    if (has_dtype<float>(a)) return FloatType::kFloat32;
    if (has_dtype<double>(a)) return FloatType::kFloat64;
    type_error(std::string("argument '") + name + "' must have dtype float32 or float64, got " +
               std::string(py::str(a.dtype())));
  }

  void same_type(const py::array& a, const char* name, FloatType t, const char* ref) const {
    if (float_type(a, name) != t) {
      type_error(std::string("argument '") + name + "' has dtype " + std::string(py::str(a.dtype())) +
                 " but '" + ref + "' has dtype " + (t == FloatType::kFloat32 ? "float32" : "float64") +
                 "; one dtype per call");
    }
  }

  void shape(const py::array& a, const char* name, const std::vector<std::int64_t>& expected,
             const char* dims) const {
    if (shape_of(a) != expected) {
      value_error(std::string("argument '") + name + "' must have shape " + dims + " = " +
                  shape_str(expected) + ", got " + shape_str(shape_of(a)));
    }
  }

  void nonempty(const py::array& a, const char* name) const {
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
      if (a.shape(d) == 0) {
        value_error(std::string("argument '") + name + "' has shape " + shape_str(shape_of(a)) +
                    "; empty batches and zero-width layers are not allowed");
      }
    }
  }

  // Outputs must not share memory with any other argument (C-contiguous: the byte ranges).
  void no_overlap(const py::array& out, const char* out_name, const py::array& other,
                  const char* other_name) const {
    const char* o0 = static_cast<const char*>(out.data());
    const char* o1 = o0 + out.nbytes();
    const char* t0 = static_cast<const char*>(other.data());
    const char* t1 = t0 + other.nbytes();
    if (out.nbytes() > 0 && other.nbytes() > 0 && o0 < t1 && t0 < o1) {
      value_error(std::string("argument '") + out_name + "' shares memory with '" + other_name +
                  "'; pass separate arrays");
    }
  }

  double finite(double v, const char* name) const {
    if (!std::isfinite(v)) value_error(std::string("'") + name + "' must be finite, got " + repr(v));
    return v;
  }
  double at_least(double v, double low, const char* name) const {
    if (!(v >= low)) {
      value_error(std::string("'") + name + "' must be >= " + repr(low) + ", got " + repr(v));
    }
    return finite(v, name);
  }
  double in_unit_interval(double v, const char* name) const {  // [0, 1)
    if (!(v >= 0.0 && v < 1.0)) value_error(std::string("'") + name + "' must be in [0, 1), got " + repr(v));
    return v;
  }

  // A Python int in [0, limit] (limit = 2^64 - 1 or 2^32 - 1).
  std::uint64_t uint(const py::object& obj, const char* name, std::uint64_t limit) const {
    if (!py::isinstance<py::int_>(obj) || py::isinstance<py::bool_>(obj)) {
      type_error(std::string("'") + name + "' must be an int, got " +
                 std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    if (obj < py::int_(0) || obj > py::int_(limit)) {
      value_error(std::string("'") + name + "' must be in [0, " + std::to_string(limit) + "], got " +
                  std::string(py::str(obj)));
    }
    return PyLong_AsUnsignedLongLong(obj.ptr());
  }

  static std::string repr(double v) { return std::string(py::str(py::float_(v))); }

  // An array of any shape written in place (the initializers' and random fills): an ndarray of
  // dtype float32/float64, C-contiguous, aligned and writeable; never a converted copy.
  OutArray float_output(const py::handle& obj) const {
    if (!py::isinstance<py::array>(obj)) {
      type_error("array must be a numpy.ndarray, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    auto array = py::reinterpret_borrow<py::array>(obj);
    const bool is_float = has_dtype<float>(array);
    const bool is_double = has_dtype<double>(array);
    if (!is_float && !is_double) {
      type_error("array must have dtype float32 or float64, got " + std::string(py::str(array.dtype())));
    }
    if (!(array.flags() & py::array::c_style)) {
      value_error("array must be C-contiguous (it is written in place; pass numpy.ascontiguousarray(a) "
                  "and keep the result)");
    }
    if (!is_aligned(array)) {
      value_error("array is not aligned to its dtype (a view at an odd byte offset); pass an aligned array");
    }
    if (!array.writeable()) value_error("array must be writable, it is read-only");
    std::vector<std::int64_t> shape(array.shape(), array.shape() + array.ndim());
    return {array, is_double, shape, static_cast<std::int64_t>(array.size())};
  }

 private:
  const char* fn_;
};

template <typename T>
const T* in_ptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <typename T>
T* out_ptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

// The activation by name, with its parameter (None: the PyTorch default).
std::pair<initlab::Activation, double> activation_arg(const Check& check, const std::string& name,
                                                      const py::object& param) {
  const initlab::ActivationInfo* info = initlab::find_activation(name);
  if (info == nullptr) {
    std::string names;
    for (const auto& a : initlab::kActivations) names += std::string(names.empty() ? "" : ", ") + a.name;
    check.value_error("unknown activation '" + name + "'; valid names: " + names);
  }
  double value = info->default_param;
  if (!param.is_none()) {
    // Any real number (Python or numpy scalar); strings and bools are mistakes, not numbers.
    const bool is_number = !py::isinstance<py::str>(param) && !py::isinstance<py::bool_>(param) &&
                           PyNumber_Check(param.ptr()) && !PyComplex_Check(param.ptr());
    if (!is_number) {
      check.type_error("'param' must be a float or None, got " +
                       std::string(py::str(py::type::of(param).attr("__name__"))));
    }
    value = check.finite(PyFloat_AsDouble(param.ptr()), "param");
    if (PyErr_Occurred()) throw py::error_already_set();
  }
  if (info->id == initlab::Activation::kSoftplus && !(value > 0.0)) {
    check.value_error("softplus 'param' (beta) must be > 0, got " + Check::repr(value));
  }
  return {info->id, value};
}

// ---- GEMM and dense layers --------------------------------------------------------------------

template <bool kReference>
void gemm_binding(const py::object& a_obj, const py::object& b_obj, const py::object& c_obj, double alpha,
                  double beta, bool trans_a, bool trans_b) {
  const Check check(kReference ? "gemm_reference" : "gemm");
  py::array a = check.array(a_obj, "A", 2), b = check.array(b_obj, "B", 2), c = check.output(c_obj, "C", 2);
  const FloatType t = check.float_type(a, "A");
  check.same_type(b, "B", t, "A");
  check.same_type(c, "C", t, "A");
  check.nonempty(a, "A");
  check.nonempty(b, "B");
  const std::int64_t m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
  const std::int64_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
  if (kb != k) {
    check.value_error("inner dimensions disagree: op(A) is " + shape_str({m, k}) + " and op(B) is " +
                      shape_str({kb, n}) + " (trans_a=" + (trans_a ? "True" : "False") +
                      ", trans_b=" + (trans_b ? "True" : "False") + ")");
  }
  check.shape(c, "C", {m, n}, "(M, N)");
  check.no_overlap(c, "C", a, "A");
  check.no_overlap(c, "C", b, "B");
  check.finite(alpha, "alpha");
  check.finite(beta, "beta");
  const std::int64_t lda = a.shape(1), ldb = b.shape(1);
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    auto f = kReference ? &initlab::gemm_reference<float> : &initlab::gemm<float>;
    f(trans_a, trans_b, m, n, k, static_cast<float>(alpha), in_ptr<float>(a), lda, in_ptr<float>(b), ldb,
      static_cast<float>(beta), out_ptr<float>(c), n, nullptr);
  } else {
    auto f = kReference ? &initlab::gemm_reference<double> : &initlab::gemm<double>;
    f(trans_a, trans_b, m, n, k, alpha, in_ptr<double>(a), lda, in_ptr<double>(b), ldb, beta,
      out_ptr<double>(c), n, nullptr);
  }
}

void activation_forward_binding(const py::object& z_obj, const py::object& a_obj,
                                const std::string& activation, const py::object& param) {
  const Check check("activation_forward");
  py::array z = check.array(z_obj, "Z", 2), a = check.output(a_obj, "A", 2);
  const FloatType t = check.float_type(z, "Z");
  check.same_type(a, "A", t, "Z");
  check.shape(a, "A", shape_of(z), "Z.shape");
  if (a.data() != z.data()) check.no_overlap(a, "A", z, "Z");  // A may be Z itself
  const auto [act, value] = activation_arg(check, activation, param);
  const std::int64_t count = z.size();
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::activation_forward<float>(count, in_ptr<float>(z), out_ptr<float>(a), act, static_cast<float>(value));
  } else {
    initlab::activation_forward<double>(count, in_ptr<double>(z), out_ptr<double>(a), act, value);
  }
}

void dense_forward_binding(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                           const py::object& z_obj, const py::object& a_obj,
                           const std::string& activation, const py::object& param) {
  const Check check("dense_forward");
  py::array x = check.array(x_obj, "X", 2), w = check.array(w_obj, "W", 2), b = check.array(b_obj, "b", 1);
  py::array z = check.output(z_obj, "Z", 2), a = check.output(a_obj, "A", 2);
  const FloatType t = check.float_type(x, "X");
  check.same_type(w, "W", t, "X");
  check.same_type(b, "b", t, "X");
  check.same_type(z, "Z", t, "X");
  check.same_type(a, "A", t, "X");
  check.nonempty(x, "X");
  check.nonempty(w, "W");
  const std::int64_t n = x.shape(0), i = x.shape(1), o = w.shape(1);
  check.shape(w, "W", {i, o}, "(I, O)");
  check.shape(b, "b", {o}, "(O,)");
  check.shape(z, "Z", {n, o}, "(N, O)");
  check.shape(a, "A", {n, o}, "(N, O)");
  const auto [act, value] = activation_arg(check, activation, param);
  for (const auto& [out, out_name] : {std::pair{&z, "Z"}, std::pair{&a, "A"}}) {
    check.no_overlap(*out, out_name, x, "X");
    check.no_overlap(*out, out_name, w, "W");
    check.no_overlap(*out, out_name, b, "b");
  }
  if (a.data() == z.data()) {
    if (act != initlab::Activation::kLinear) {
      check.value_error("'A' may be the same array as 'Z' only for activation 'linear' (backward needs Z), "
                        "got '" + activation + "'");
    }
  } else {
    check.no_overlap(a, "A", z, "Z");
  }
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::dense_forward<float>(n, i, o, in_ptr<float>(x), in_ptr<float>(w), in_ptr<float>(b),
                                  out_ptr<float>(z), out_ptr<float>(a), act, static_cast<float>(value));
  } else {
    initlab::dense_forward<double>(n, i, o, in_ptr<double>(x), in_ptr<double>(w), in_ptr<double>(b),
                                   out_ptr<double>(z), out_ptr<double>(a), act, value);
  }
}

void dense_backward_binding(const py::object& da_obj, const py::object& x_obj, const py::object& w_obj,
                            const py::object& z_obj, const py::object& a_obj, const std::string& activation,
                            const py::object& param, const py::object& dw_obj, const py::object& db_obj,
                            const py::object& dx_obj) {
  const Check check("dense_backward");
  py::array da = check.output(da_obj, "dA", 2);
  py::array x = check.array(x_obj, "X", 2), w = check.array(w_obj, "W", 2);
  py::array z = check.array(z_obj, "Z", 2), a = check.array(a_obj, "A", 2);
  py::array dw = check.output(dw_obj, "dW", 2), db = check.output(db_obj, "db", 1);
  const bool has_dx = !dx_obj.is_none();
  py::array dx = has_dx ? check.output(dx_obj, "dX", 2) : py::array();
  const FloatType t = check.float_type(x, "X");
  check.same_type(da, "dA", t, "X");
  check.same_type(w, "W", t, "X");
  check.same_type(z, "Z", t, "X");
  check.same_type(a, "A", t, "X");
  check.same_type(dw, "dW", t, "X");
  check.same_type(db, "db", t, "X");
  if (has_dx) check.same_type(dx, "dX", t, "X");
  check.nonempty(x, "X");
  check.nonempty(w, "W");
  const std::int64_t n = x.shape(0), i = x.shape(1), o = w.shape(1);
  check.shape(w, "W", {i, o}, "(I, O)");
  check.shape(da, "dA", {n, o}, "(N, O)");
  check.shape(z, "Z", {n, o}, "(N, O)");
  check.shape(a, "A", {n, o}, "(N, O)");
  check.shape(dw, "dW", {i, o}, "(I, O)");
  check.shape(db, "db", {o}, "(O,)");
  if (has_dx) check.shape(dx, "dX", {n, i}, "(N, I)");
  const auto [act, value] = activation_arg(check, activation, param);
  std::vector<std::pair<const py::array*, const char*>> outputs{{&da, "dA"}, {&dw, "dW"}, {&db, "db"}};
  if (has_dx) outputs.emplace_back(&dx, "dX");
  const std::pair<const py::array*, const char*> inputs[] = {{&x, "X"}, {&w, "W"}, {&z, "Z"}, {&a, "A"}};
  for (std::size_t p = 0; p < outputs.size(); ++p) {
    for (const auto& [in, in_name] : inputs) check.no_overlap(*outputs[p].first, outputs[p].second, *in, in_name);
    for (std::size_t q = p + 1; q < outputs.size(); ++q) {
      check.no_overlap(*outputs[p].first, outputs[p].second, *outputs[q].first, outputs[q].second);
    }
  }
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::dense_backward<float>(n, i, o, out_ptr<float>(da), in_ptr<float>(x), in_ptr<float>(w),
                                   in_ptr<float>(z), in_ptr<float>(a), act, static_cast<float>(value),
                                   out_ptr<float>(dw), out_ptr<float>(db), has_dx ? out_ptr<float>(dx) : nullptr);
  } else {
    initlab::dense_backward<double>(n, i, o, out_ptr<double>(da), in_ptr<double>(x), in_ptr<double>(w),
                                    in_ptr<double>(z), in_ptr<double>(a), act, value, out_ptr<double>(dw),
                                    out_ptr<double>(db), has_dx ? out_ptr<double>(dx) : nullptr);
  }
}

// Every activation of the registry (dense.hpp) with its init gain at the default parameter.
py::list activation_registry_binding() {
  py::list out;
  for (const auto& info : initlab::kActivations) {
    const bool has_param = info.param_name[0] != '\0';
    py::dict d;
    d["name"] = info.name;
    d["id"] = static_cast<int>(info.id);
    d["param_name"] = has_param ? py::object(py::str(info.param_name)) : py::object(py::none());
    d["default_param"] = has_param ? py::object(py::float_(info.default_param)) : py::object(py::none());
    d["gain"] = initlab::gain(info.name, has_param ? std::optional<double>(info.default_param) : std::nullopt);
    d["derivative_from_output"] = info.derivative_from_output;
    d["saturates"] = info.saturates;
    d["zero_derivative_interval"] = info.zero_derivative_interval;
    out.append(d);
  }
  return out;
}

py::list activations_binding() {
  py::list out;
  for (const auto& info : initlab::kActivations) {
    out.append(py::make_tuple(info.name, info.param_name, info.default_param));
  }
  return out;
}

// ---- losses -----------------------------------------------------------------------------------

// The shared checks of the three losses: Z (N, K) logits, P and dZ outputs of the same shape.
struct LossArgs {
  py::array z, p, dz;
  bool has_p = false, has_dz = false;
  FloatType t = FloatType::kFloat32;
};

LossArgs loss_args(const Check& check, const py::object& z_obj, const py::object* p_obj,
                   const py::object& dz_obj) {
  LossArgs args;
  args.z = check.array(z_obj, "Z", 2);
  args.t = check.float_type(args.z, "Z");
  check.nonempty(args.z, "Z");
  if (p_obj != nullptr) {
    args.p = check.output(*p_obj, "P", 2);
    args.has_p = true;
    check.same_type(args.p, "P", args.t, "Z");
    check.shape(args.p, "P", shape_of(args.z), "Z.shape");
    check.no_overlap(args.p, "P", args.z, "Z");
  }
  if (!dz_obj.is_none()) {
    args.dz = check.output(dz_obj, "dZ", 2);
    args.has_dz = true;
    check.same_type(args.dz, "dZ", args.t, "Z");
    check.shape(args.dz, "dZ", shape_of(args.z), "Z.shape");
    check.no_overlap(args.dz, "dZ", args.z, "Z");
    if (args.has_p) check.no_overlap(args.dz, "dZ", args.p, "P");
  }
  return args;
}

// y: float targets of Z's shape and dtype, not overlapping the outputs.
py::array float_targets(const Check& check, const LossArgs& args, const py::object& y_obj) {
  py::array y = check.array(y_obj, "y", 2);
  check.same_type(y, "y", args.t, "Z");
  check.shape(y, "y", shape_of(args.z), "Z.shape");
  if (args.has_p) check.no_overlap(args.p, "P", y, "y");
  if (args.has_dz) check.no_overlap(args.dz, "dZ", y, "y");
  return y;
}

// Optional row weights: None, or (N,) of Z's dtype, finite and >= 0, not overlapping the outputs.
// Returns the checked array, or None; weights_ptr gives the kernel's `weights` (null for None).
template <typename T>
const T* weights_ptr(const py::object& w) {
  return w.is_none() ? nullptr : in_ptr<T>(py::reinterpret_borrow<py::array>(w));
}
py::object row_weights(const Check& check, const LossArgs& args, const py::object& w_obj) {
  if (w_obj.is_none()) return py::none();
  py::array w = check.array(w_obj, "weights", 1);
  check.same_type(w, "weights", args.t, "Z");
  check.shape(w, "weights", {static_cast<std::int64_t>(args.z.shape(0))}, "(N,)");
  if (args.has_p) check.no_overlap(args.p, "P", w, "weights");
  if (args.has_dz) check.no_overlap(args.dz, "dZ", w, "weights");
  auto first_bad = [&](auto* values) -> std::int64_t {
    for (std::int64_t r = 0; r < w.shape(0); ++r) {
      if (!(values[r] >= 0 && std::isfinite(static_cast<double>(values[r])))) return r;
    }
    return -1;
  };
  const std::int64_t bad = args.t == FloatType::kFloat32 ? first_bad(in_ptr<float>(w)) : first_bad(in_ptr<double>(w));
  if (bad >= 0) {
    const double v = args.t == FloatType::kFloat32 ? in_ptr<float>(w)[bad] : in_ptr<double>(w)[bad];
    check.value_error("row 'weights' must be finite and >= 0, got " + Check::repr(v) + " at index " +
                      std::to_string(bad));
  }
  return w;
}

// labels_checked: the caller has checked every label once (fit, before its loop), so the O(N) range
// scan is skipped; an out-of-range label would then read outside its row (undefined behaviour).
double softmax_cross_entropy_binding(const py::object& z_obj, const py::object& y_obj,
                                     const py::object& p_obj, const py::object& dz_obj,
                                     const py::object& w_obj, bool labels_checked) {
  const Check check("softmax_cross_entropy");
  LossArgs args = loss_args(check, z_obj, &p_obj, dz_obj);
  const std::int64_t n = args.z.shape(0), k = args.z.shape(1);
  if (!py::isinstance<py::array>(y_obj)) {
    check.type_error("argument 'y' must be a numpy.ndarray of int64 labels (N,) or float targets (N, K)");
  }
  py::array y_any = py::reinterpret_borrow<py::array>(y_obj);
  const bool integer_labels = y_any.ndim() == 1;
  py::array y;
  if (integer_labels) {
    y = check.array(y_obj, "y", 1);
    if (!has_dtype<std::int64_t>(y)) {
      check.type_error("integer labels 'y' must have dtype int64, got " + std::string(py::str(y.dtype())));
    }
    check.shape(y, "y", {n}, "(N,)");
    const std::int64_t* labels = in_ptr<std::int64_t>(y);
    for (std::int64_t r = 0; r < (labels_checked ? 0 : n); ++r) {
      if (labels[r] < 0 || labels[r] >= k) {
        check.value_error("label y[" + std::to_string(r) + "] = " + std::to_string(labels[r]) +
                          " is out of range [0, " + std::to_string(k) + ")");
      }
    }
    if (args.has_dz) check.no_overlap(args.dz, "dZ", y, "y");
    check.no_overlap(args.p, "P", y, "y");
  } else {
    y = float_targets(check, args, y_obj);
    // Float targets must be distributions (entries in [0, 1], rows summing to 1 within 1e-3, as
    // Network checks): only then is the fused dZ = (P - Y)/N the gradient of the returned loss.
    auto first_bad_row = [&](auto* values) -> std::int64_t {
      for (std::int64_t r = 0; r < n; ++r) {
        double row_sum = 0.0;
        for (std::int64_t c = 0; c < k; ++c) {
          const double v = values[r * k + c];
          if (!(v >= 0.0 && v <= 1.0)) return r;
          row_sum += v;
        }
        if (!(std::abs(row_sum - 1.0) <= 1e-3)) return r;
      }
      return -1;
    };
    const std::int64_t bad = args.t == FloatType::kFloat32 ? first_bad_row(in_ptr<float>(y))
                                                           : first_bad_row(in_ptr<double>(y));
    if (bad >= 0) {
      check.value_error("float targets 'y' must be distributions (entries in [0, 1], each row summing to 1); "
                        "row " + std::to_string(bad) + " is not");
    }
  }
  const py::object w = row_weights(check, args, w_obj);
  py::gil_scoped_release release;
  if (args.t == FloatType::kFloat32) {
    return initlab::softmax_cross_entropy<float>(
        n, k, in_ptr<float>(args.z), integer_labels ? in_ptr<std::int64_t>(y) : nullptr,
        integer_labels ? nullptr : in_ptr<float>(y), out_ptr<float>(args.p),
        args.has_dz ? out_ptr<float>(args.dz) : nullptr, weights_ptr<float>(w));
  }
  return initlab::softmax_cross_entropy<double>(
      n, k, in_ptr<double>(args.z), integer_labels ? in_ptr<std::int64_t>(y) : nullptr,
      integer_labels ? nullptr : in_ptr<double>(y), out_ptr<double>(args.p),
      args.has_dz ? out_ptr<double>(args.dz) : nullptr, weights_ptr<double>(w));
}

double sigmoid_binary_cross_entropy_binding(const py::object& z_obj, const py::object& y_obj,
                                            const py::object& p_obj, const py::object& dz_obj,
                                            const py::object& w_obj) {
  const Check check("sigmoid_binary_cross_entropy");
  LossArgs args = loss_args(check, z_obj, &p_obj, dz_obj);
  py::array y = float_targets(check, args, y_obj);
  const std::int64_t n = args.z.shape(0), k = args.z.shape(1);
  // Labels must be probabilities: a NaN or a value outside [0, 1] is a caller's error.
  auto first_bad = [&](auto* values) -> std::int64_t {
    for (std::int64_t e = 0; e < n * k; ++e) {
      if (!(values[e] >= 0 && values[e] <= 1)) return e;
    }
    return -1;
  };
  const std::int64_t bad = args.t == FloatType::kFloat32 ? first_bad(in_ptr<float>(y)) : first_bad(in_ptr<double>(y));
  if (bad >= 0) {
    const double v = args.t == FloatType::kFloat32 ? in_ptr<float>(y)[bad] : in_ptr<double>(y)[bad];
    check.value_error("labels 'y' must be in [0, 1], got " + Check::repr(v) + " at flat index " +
                      std::to_string(bad));
  }
  const py::object w = row_weights(check, args, w_obj);
  py::gil_scoped_release release;
  if (args.t == FloatType::kFloat32) {
    return initlab::sigmoid_binary_cross_entropy<float>(n, k, in_ptr<float>(args.z), in_ptr<float>(y),
                                                        out_ptr<float>(args.p),
                                                        args.has_dz ? out_ptr<float>(args.dz) : nullptr,
                                                        weights_ptr<float>(w));
  }
  return initlab::sigmoid_binary_cross_entropy<double>(n, k, in_ptr<double>(args.z), in_ptr<double>(y),
                                                       out_ptr<double>(args.p),
                                                       args.has_dz ? out_ptr<double>(args.dz) : nullptr,
                                                       weights_ptr<double>(w));
}

double mean_squared_error_binding(const py::object& z_obj, const py::object& y_obj, const py::object& dz_obj,
                                  const py::object& w_obj) {
  const Check check("mean_squared_error");
  LossArgs args = loss_args(check, z_obj, nullptr, dz_obj);
  py::array y = float_targets(check, args, y_obj);
  const std::int64_t n = args.z.shape(0), k = args.z.shape(1);
  const py::object w = row_weights(check, args, w_obj);
  py::gil_scoped_release release;
  if (args.t == FloatType::kFloat32) {
    return initlab::mean_squared_error<float>(n, k, in_ptr<float>(args.z), in_ptr<float>(y),
                                              args.has_dz ? out_ptr<float>(args.dz) : nullptr,
                                              weights_ptr<float>(w));
  }
  return initlab::mean_squared_error<double>(n, k, in_ptr<double>(args.z), in_ptr<double>(y),
                                             args.has_dz ? out_ptr<double>(args.dz) : nullptr,
                                             weights_ptr<double>(w));
}

// ---- optimizers, clipping, dropout ------------------------------------------------------------

// A flat parameter group: `first` (any ndim, C-contiguous, float) and the arrays that must match it.
struct Group {
  std::vector<py::array> arrays;  // in the order given; null entries (None) are empty arrays
  FloatType t = FloatType::kFloat32;
  std::int64_t count = 0;
};

// names[0] is the reference array; `writeable[j]` marks outputs; None is allowed where `optional[j]`.
Group group_args(const Check& check, std::initializer_list<const py::object*> objs,
                 std::initializer_list<const char*> names, std::initializer_list<bool> writeable,
                 std::initializer_list<bool> optional) {
  Group g;
  const auto* obj = objs.begin();
  const auto* name = names.begin();
  const auto* out = writeable.begin();
  const auto* opt = optional.begin();
  std::vector<const char*> kept_names;
  for (; obj != objs.end(); ++obj, ++name, ++out, ++opt) {
    if ((*obj)->is_none()) {
      if (!*opt) check.type_error(std::string("argument '") + *name + "' must be a numpy.ndarray, got None");
      g.arrays.emplace_back();
      kept_names.push_back(*name);
      continue;
    }
    if (!py::isinstance<py::array>(**obj)) {
      check.type_error(std::string("argument '") + *name + "' must be a numpy.ndarray, got " +
                       std::string(py::str(py::type::of(**obj).attr("__name__"))));
    }
    const int ndim = static_cast<int>(py::reinterpret_borrow<py::array>(**obj).ndim());
    py::array a = *out ? check.output(**obj, *name, ndim) : check.array(**obj, *name, ndim);
    if (g.arrays.empty()) {
      g.t = check.float_type(a, *name);
      g.count = a.size();
    } else {
      check.same_type(a, *name, g.t, names.begin()[0]);
      check.shape(a, *name, shape_of(py::reinterpret_borrow<py::array>(*objs.begin()[0])),
                  (std::string(names.begin()[0]) + ".shape").c_str());
    }
    g.arrays.push_back(a);
    kept_names.push_back(*name);
  }
  // Outputs may not share memory with any other argument.
  const bool* outs = writeable.begin();
  for (std::size_t p = 0; p < g.arrays.size(); ++p) {
    if (!outs[p] || !g.arrays[p]) continue;
    for (std::size_t q = 0; q < g.arrays.size(); ++q) {
      if (q != p && g.arrays[q]) check.no_overlap(g.arrays[p], kept_names[p], g.arrays[q], kept_names[q]);
    }
  }
  return g;
}

template <typename T>
T* opt_ptr(py::array& a) {
  return a ? out_ptr<T>(a) : nullptr;
}

void sgd_step_binding(const py::object& param, const py::object& grad, const py::object& momentum_buffer,
                      double lr, double momentum, double dampening, double weight_decay, bool nesterov,
                      bool first_step) {
  const Check check("sgd_step");
  check.at_least(lr, 0.0, "lr");
  check.at_least(momentum, 0.0, "momentum");
  check.finite(dampening, "dampening");
  check.at_least(weight_decay, 0.0, "weight_decay");
  if (nesterov && (momentum <= 0.0 || dampening != 0.0)) {
    check.value_error("nesterov momentum requires momentum > 0 and dampening == 0 (as torch.optim.SGD)");
  }
  Group g = group_args(check, {&param, &grad, &momentum_buffer}, {"param", "grad", "momentum_buffer"},
                       {true, false, true}, {false, false, momentum == 0.0});
  py::gil_scoped_release release;
  if (g.t == FloatType::kFloat32) {
    initlab::sgd_step<float>(g.count, out_ptr<float>(g.arrays[0]), in_ptr<float>(g.arrays[1]),
                             opt_ptr<float>(g.arrays[2]), lr, momentum, dampening, weight_decay, nesterov,
                             first_step);
  } else {
    initlab::sgd_step<double>(g.count, out_ptr<double>(g.arrays[0]), in_ptr<double>(g.arrays[1]),
                              opt_ptr<double>(g.arrays[2]), lr, momentum, dampening, weight_decay, nesterov,
                              first_step);
  }
}

void adam_step_binding(const py::object& param, const py::object& grad, const py::object& exp_avg,
                       const py::object& exp_avg_sq, double lr, double beta1, double beta2, double eps,
                       double weight_decay, std::int64_t step, bool decoupled) {
  const Check check(decoupled ? "adam_step (AdamW)" : "adam_step");
  check.at_least(lr, 0.0, "lr");
  check.in_unit_interval(beta1, "beta1");
  check.in_unit_interval(beta2, "beta2");
  check.at_least(eps, 0.0, "eps");
  check.at_least(weight_decay, 0.0, "weight_decay");
  if (step < 1) check.value_error("'step' is 1-based and must be >= 1, got " + std::to_string(step));
  Group g = group_args(check, {&param, &grad, &exp_avg, &exp_avg_sq}, {"param", "grad", "exp_avg", "exp_avg_sq"},
                       {true, false, true, true}, {false, false, false, false});
  py::gil_scoped_release release;
  if (g.t == FloatType::kFloat32) {
    initlab::adam_step<float>(g.count, out_ptr<float>(g.arrays[0]), in_ptr<float>(g.arrays[1]),
                              out_ptr<float>(g.arrays[2]), out_ptr<float>(g.arrays[3]), lr, beta1, beta2, eps,
                              weight_decay, step, decoupled);
  } else {
    initlab::adam_step<double>(g.count, out_ptr<double>(g.arrays[0]), in_ptr<double>(g.arrays[1]),
                               out_ptr<double>(g.arrays[2]), out_ptr<double>(g.arrays[3]), lr, beta1, beta2,
                               eps, weight_decay, step, decoupled);
  }
}

void rmsprop_step_binding(const py::object& param, const py::object& grad, const py::object& square_avg,
                          const py::object& momentum_buffer, double lr, double alpha, double eps,
                          double weight_decay, double momentum) {
  const Check check("rmsprop_step");
  check.at_least(lr, 0.0, "lr");
  if (!(alpha >= 0.0 && alpha <= 1.0)) check.value_error("'alpha' must be in [0, 1], got " + Check::repr(alpha));
  check.at_least(eps, 0.0, "eps");
  check.at_least(weight_decay, 0.0, "weight_decay");
  check.at_least(momentum, 0.0, "momentum");
  Group g = group_args(check, {&param, &grad, &square_avg, &momentum_buffer},
                       {"param", "grad", "square_avg", "momentum_buffer"}, {true, false, true, true},
                       {false, false, false, momentum == 0.0});
  py::gil_scoped_release release;
  if (g.t == FloatType::kFloat32) {
    initlab::rmsprop_step<float>(g.count, out_ptr<float>(g.arrays[0]), in_ptr<float>(g.arrays[1]),
                                 out_ptr<float>(g.arrays[2]), opt_ptr<float>(g.arrays[3]), lr, alpha, eps,
                                 weight_decay, momentum);
  } else {
    initlab::rmsprop_step<double>(g.count, out_ptr<double>(g.arrays[0]), in_ptr<double>(g.arrays[1]),
                                  out_ptr<double>(g.arrays[2]), opt_ptr<double>(g.arrays[3]), lr, alpha, eps,
                                  weight_decay, momentum);
  }
}

// ---- the fused multi-tensor optimizer step (optim.hpp: optimizer_step) --------------------------
// params, grads: lists of arrays; states: a list with one tuple of state arrays per parameter
// (sgd: (momentum_buffer or None,); adam/adamw: (exp_avg, exp_avg_sq); rmsprop: (square_avg,
// momentum_buffer or None)). Every array is validated as the per-tensor kernels validate theirs,
// and no output may share memory with any other array of the call. Returns
// {"grad_norm": float or None, "clipped": bool, "written": bool (False only when guard=True refused
// the step), "nonfinite": [indexes of params holding (or, refused, that would hold) inf/NaN]}.
// The fused step's arguments, validated (optimizer_step's and train_batches' shared part).
struct OptimizerArgs {
  initlab::OptimizerConfig c;
  std::vector<Group> groups;  // per tensor: param, grad, state0, state1
  FloatType t = FloatType::kFloat32;
  std::size_t n = 0;
};

OptimizerArgs optimizer_args(const Check& check, const py::object& params_obj, const py::object& grads_obj,
                                const py::object& states_obj, const std::string& optimizer, double lr,
                                double momentum, double dampening, bool nesterov, bool first_step,
                                double beta1, double beta2, double eps, double alpha, double weight_decay,
                                std::int64_t step, const py::object& clip_value, const py::object& clip_norm,
                                bool guard) {
  OptimizerArgs args;
  initlab::OptimizerConfig& c = args.c;
  // The name, the state layout and which optimizers take momentum: the registry (optim.hpp).
  const initlab::OptimizerInfo* info = initlab::find_optimizer(optimizer);
  std::string all_names;
  std::vector<std::string> with_momentum;
  for (const auto& o : initlab::kOptimizers) {
    all_names += std::string(all_names.empty() ? "" : ", ") + o.name;
    if (o.uses_momentum) with_momentum.emplace_back(o.name);
  }
  std::string momentum_names;  // "sgd and rmsprop"
  for (std::size_t k = 0; k < with_momentum.size(); ++k) {
    momentum_names += (k == 0 ? "" : k + 1 == with_momentum.size() ? " and " : ", ") + with_momentum[k];
  }
  if (info == nullptr) check.value_error("'optimizer' must be one of " + all_names + ", got '" + optimizer + "'");
  c.kind = info->kind;
  c.lr = check.at_least(lr, 0.0, "lr");
  c.momentum = check.at_least(momentum, 0.0, "momentum");
  c.dampening = check.finite(dampening, "dampening");
  c.nesterov = nesterov;
  c.first_step = first_step;
  c.beta1 = check.in_unit_interval(beta1, "beta1");
  c.beta2 = check.in_unit_interval(beta2, "beta2");
  c.eps = check.at_least(eps, 0.0, "eps");
  if (!(alpha >= 0.0 && alpha <= 1.0)) check.value_error("'alpha' must be in [0, 1], got " + Check::repr(alpha));
  c.alpha = alpha;
  c.weight_decay = check.at_least(weight_decay, 0.0, "weight_decay");
  if (step < 1) check.value_error("'step' is 1-based and must be >= 1, got " + std::to_string(step));
  c.step = step;
  c.guard = guard;
  if (!info->uses_momentum && c.momentum != 0.0) {
    check.value_error("'momentum' applies to " + momentum_names + " only, got momentum=" + Check::repr(momentum));
  }
  if (nesterov && (c.kind != initlab::OptimizerKind::kSgd || momentum <= 0.0 || dampening != 0.0)) {
    check.value_error("nesterov momentum requires sgd, momentum > 0 and dampening == 0 (as torch.optim.SGD)");
  }
  if (!clip_value.is_none()) {
    c.has_clip_value = true;
    c.clip_value = check.at_least(clip_value.cast<double>(), 0.0, "clip_value");
  }
  if (!clip_norm.is_none()) {
    c.has_clip_norm = true;
    c.clip_norm = check.at_least(clip_norm.cast<double>(), 0.0, "clip_norm");
  }
  for (const auto* obj : {&params_obj, &grads_obj, &states_obj}) {
    if (!py::isinstance<py::list>(*obj) && !py::isinstance<py::tuple>(*obj)) {
      check.type_error("'params', 'grads' and 'states' must be lists, got " +
                       std::string(py::str(py::type::of(*obj).attr("__name__"))));
    }
  }
  const py::sequence params = py::reinterpret_borrow<py::sequence>(params_obj);
  const py::sequence grads = py::reinterpret_borrow<py::sequence>(grads_obj);
  const py::sequence states = py::reinterpret_borrow<py::sequence>(states_obj);
  const std::size_t n = params.size();
  if (grads.size() != n || states.size() != n) {
    check.value_error("'params', 'grads' and 'states' must have the same length, got " + std::to_string(n) +
                      ", " + std::to_string(grads.size()) + ", " + std::to_string(states.size()));
  }
  const bool needs_buffer = c.momentum != 0.0 && info->uses_momentum;
  const std::size_t n_states = static_cast<std::size_t>(info->n_states);
  // the momentum buffer (the last state array of an optimizer that uses momentum) may be None
  const bool buffer_optional = info->uses_momentum && !needs_buffer;
  // Validated per tensor as the per-tensor bindings do; names like "params[2]" in the messages.
  std::vector<Group>& groups = args.groups;
  std::vector<std::string> names;  // 4 per tensor
  FloatType& t = args.t;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string at = "[" + std::to_string(i) + "]";
    const std::string names_i[4] = {"params" + at, "grads" + at, "states" + at + "[0]", "states" + at + "[1]"};
    py::object state_i = states[i];
    if (!py::isinstance<py::tuple>(state_i) && !py::isinstance<py::list>(state_i)) {
      check.type_error("'" + ("states" + at) + "' must be a tuple of state arrays, got " +
                       std::string(py::str(py::type::of(state_i).attr("__name__"))));
    }
    const py::sequence st = py::reinterpret_borrow<py::sequence>(state_i);
    if (st.size() != n_states) {
      check.value_error("'" + ("states" + at) + "' must hold " + std::to_string(n_states) + " arrays for " +
                        optimizer + ", got " + std::to_string(st.size()));
    }
    const py::object param = params[i], grad = grads[i];
    const py::object s0 = st[0], s1 = n_states > 1 ? py::object(st[1]) : py::object(py::none());
    const bool s0_optional = n_states == 1 && buffer_optional;
    const bool s1_optional = n_states == 1 || buffer_optional;
    Group g = group_args(check, {&param, &grad, &s0, &s1},
                         {names_i[0].c_str(), names_i[1].c_str(), names_i[2].c_str(), names_i[3].c_str()},
                         {true, c.has_clip_value || c.has_clip_norm, true, true},
                         {false, false, s0_optional, s1_optional});
    if (i == 0) {
      t = g.t;
    } else if (g.t != t) {
      check.type_error("'" + names_i[0] + "' has a different dtype than 'params[0]'; one dtype per call");
    }
    groups.push_back(std::move(g));
    for (const auto& name : names_i) names.push_back(name);
  }
  // No output may share memory with an array of another tensor either.
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t a = 0; a < 4; ++a) {
      py::array& out = groups[i].arrays[a];
      const bool written = a != 1 || c.has_clip_value || c.has_clip_norm;
      if (!out || !written) continue;
      for (std::size_t j = 0; j < n; ++j) {
        if (j == i) continue;
        for (std::size_t b = 0; b < 4; ++b) {
          if (groups[j].arrays[b]) {
            check.no_overlap(out, names[4 * i + a].c_str(), groups[j].arrays[b], names[4 * j + b].c_str());
          }
        }
      }
    }
  }
  args.n = n;
  return args;
}

py::dict optimizer_step_binding(const py::object& params_obj, const py::object& grads_obj,
                                const py::object& states_obj, const std::string& optimizer, double lr,
                                double momentum, double dampening, bool nesterov, bool first_step,
                                double beta1, double beta2, double eps, double alpha, double weight_decay,
                                std::int64_t step, const py::object& clip_value, const py::object& clip_norm,
                                bool guard) {
  const Check check("optimizer_step");
  OptimizerArgs args = optimizer_args(check, params_obj, grads_obj, states_obj, optimizer, lr, momentum, dampening,
                                      nesterov, first_step, beta1, beta2, eps, alpha, weight_decay, step,
                                      clip_value, clip_norm, guard);
  const initlab::OptimizerConfig& c = args.c;
  std::vector<Group>& groups = args.groups;
  const FloatType t = args.t;
  const std::size_t n = args.n;
  std::vector<std::uint8_t> nonfinite(n, 0);
  initlab::OptimizerStepResult result;
  {
    auto run = [&](auto zero) {
      using T = decltype(zero);
      std::vector<initlab::ParamTensor<T>> list(n);
      for (std::size_t i = 0; i < n; ++i) {
        list[i].count = groups[i].count;
        list[i].param = out_ptr<T>(groups[i].arrays[0]);
        list[i].grad = static_cast<T*>(const_cast<void*>(groups[i].arrays[1].data()));
        list[i].state0 = opt_ptr<T>(groups[i].arrays[2]);
        list[i].state1 = opt_ptr<T>(groups[i].arrays[3]);
      }
      py::gil_scoped_release release;
      return initlab::optimizer_step<T>(static_cast<std::int64_t>(n), list.data(), c, nonfinite.data());
    };
    result = t == FloatType::kFloat32 ? run(0.0f) : run(0.0);
  }
  py::dict out;
  out["grad_norm"] = c.has_clip_norm ? py::object(py::float_(result.grad_norm)) : py::object(py::none());
  out["clipped"] = result.clipped;
  out["written"] = result.written;
  py::list bad;
  for (std::size_t i = 0; i < n; ++i) {
    if (nonfinite[i]) bad.append(static_cast<py::ssize_t>(i));
  }
  out["nonfinite"] = bad;
  return out;
}

void def_optimizer_step(py::module_& m) {
  m.def("optimizer_step", &optimizer_step_binding, py::arg("params"), py::arg("grads"), py::arg("states"),
        py::kw_only(), py::arg("optimizer"), py::arg("lr"), py::arg("momentum") = 0.0,
        py::arg("dampening") = 0.0, py::arg("nesterov") = false, py::arg("first_step") = false,
        py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("alpha") = 0.99,
        py::arg("weight_decay") = 0.0, py::arg("step") = 1, py::arg("clip_value") = py::none(),
        py::arg("clip_norm") = py::none(), py::arg("guard") = false,
        "one fused step of every parameter: clip_value, clip_norm (global), then the update, bitwise as the "
        "per-tensor kernels in that order; guard=True writes nothing unless every updated parameter is finite; "
        "returns {grad_norm, clipped, written, nonfinite}");
}

void clip_by_value_binding(const py::object& grad, double clip_value) {
  const Check check("clip_by_value");
  check.at_least(clip_value, 0.0, "clip_value");
  Group g = group_args(check, {&grad}, {"grad"}, {true}, {false});
  py::gil_scoped_release release;
  if (g.t == FloatType::kFloat32) {
    initlab::clip_by_value<float>(g.count, out_ptr<float>(g.arrays[0]), static_cast<float>(clip_value));
  } else {
    initlab::clip_by_value<double>(g.count, out_ptr<double>(g.arrays[0]), clip_value);
  }
}

void dropout_forward_binding(const py::object& a, const py::object& mask, double p, const py::object& seed,
                             const py::object& stream, const py::object& step) {
  const Check check("dropout_forward");
  check.in_unit_interval(p, "p");
  const std::uint64_t seed_v = check.uint(seed, "seed", ~std::uint64_t{0});
  const auto stream_v = static_cast<std::uint32_t>(check.uint(stream, "stream", 0xFFFFFFFFu));
  const auto step_v = static_cast<std::uint32_t>(check.uint(step, "step", 0xFFFFFFFFu));
  Group g = group_args(check, {&a, &mask}, {"A", "mask"}, {true, true}, {false, false});
  if (g.count >= (std::int64_t{1} << 34)) check.value_error("'A' has more than 2^34 elements");
  py::gil_scoped_release release;
  if (g.t == FloatType::kFloat32) {
    initlab::dropout_forward<float>(g.count, out_ptr<float>(g.arrays[0]), out_ptr<float>(g.arrays[1]), p, seed_v,
                                    stream_v, step_v);
  } else {
    initlab::dropout_forward<double>(g.count, out_ptr<double>(g.arrays[0]), out_ptr<double>(g.arrays[1]), p,
                                     seed_v, stream_v, step_v);
  }
}

void dropout_backward_binding(const py::object& da, const py::object& mask) {
  const Check check("dropout_backward");
  Group g = group_args(check, {&da, &mask}, {"dA", "mask"}, {true, false}, {false, false});
  py::gil_scoped_release release;
  if (g.t == FloatType::kFloat32) {
    initlab::dropout_backward<float>(g.count, out_ptr<float>(g.arrays[0]), in_ptr<float>(g.arrays[1]));
  } else {
    initlab::dropout_backward<double>(g.count, out_ptr<double>(g.arrays[0]), in_ptr<double>(g.arrays[1]));
  }
}

// ---- statistics -------------------------------------------------------------------------------

double sum_of_squares_binding(const py::object& x) {
  const Check check("sum_of_squares");
  Group g = group_args(check, {&x}, {"x"}, {false}, {false});
  py::gil_scoped_release release;
  return g.t == FloatType::kFloat32 ? initlab::sum_of_squares<float>(g.count, in_ptr<float>(g.arrays[0]))
                                    : initlab::sum_of_squares<double>(g.count, in_ptr<double>(g.arrays[0]));
}

void scale_binding(const py::object& x, double factor) {
  const Check check("scale");
  check.finite(factor, "factor");
  Group g = group_args(check, {&x}, {"x"}, {true}, {false});
  py::gil_scoped_release release;
  if (g.t == FloatType::kFloat32) {
    initlab::scale<float>(g.count, out_ptr<float>(g.arrays[0]), static_cast<float>(factor));
  } else {
    initlab::scale<double>(g.count, out_ptr<double>(g.arrays[0]), factor);
  }
}

double diff_norm_binding(const py::object& a, const py::object& b) {
  const Check check("diff_norm");
  Group g = group_args(check, {&a, &b}, {"a", "b"}, {false, false}, {false, false});
  py::gil_scoped_release release;
  return g.t == FloatType::kFloat32
             ? initlab::diff_norm<float>(g.count, in_ptr<float>(g.arrays[0]), in_ptr<float>(g.arrays[1]))
             : initlab::diff_norm<double>(g.count, in_ptr<double>(g.arrays[0]), in_ptr<double>(g.arrays[1]));
}

double weight_sum_binding(const py::object& w_obj) {
  const Check check("weight_sum");
  py::array w = check.array(w_obj, "w", 1);
  const FloatType t = check.float_type(w, "w");
  py::gil_scoped_release release;
  return t == FloatType::kFloat32 ? initlab::weight_sum<float>(w.shape(0), in_ptr<float>(w))
                                  : initlab::weight_sum<double>(w.shape(0), in_ptr<double>(w));
}

bool all_finite_binding(const py::object& x) {
  const Check check("all_finite");
  Group g = group_args(check, {&x}, {"x"}, {false}, {false});
  py::gil_scoped_release release;
  return g.t == FloatType::kFloat32 ? initlab::all_finite<float>(g.count, in_ptr<float>(g.arrays[0]))
                                    : initlab::all_finite<double>(g.count, in_ptr<double>(g.arrays[0]));
}

py::dict layer_stats_binding(const py::object& z_obj, const py::object& a_obj, const std::string& activation,
                             const py::object& param) {
  const Check check("layer_stats");
  py::array z = check.array(z_obj, "Z", 2), a = check.array(a_obj, "A", 2);
  const FloatType t = check.float_type(z, "Z");
  check.same_type(a, "A", t, "Z");
  check.nonempty(z, "Z");
  check.shape(a, "A", shape_of(z), "Z.shape");
  const auto act = activation_arg(check, activation, param).first;
  const std::int64_t n = z.shape(0), o = z.shape(1);
  initlab::LayerStats s{};
  {
    py::gil_scoped_release release;
    s = t == FloatType::kFloat32 ? initlab::layer_stats<float>(n, o, in_ptr<float>(z), in_ptr<float>(a), act)
                                 : initlab::layer_stats<double>(n, o, in_ptr<double>(z), in_ptr<double>(a), act);
  }
  py::dict d;
  d["pre_mean"] = s.pre_mean;
  d["pre_std"] = s.pre_std;
  d["act_mean"] = s.act_mean;
  d["act_std"] = s.act_std;
  d["saturated"] = s.saturated;
  d["dead"] = s.dead;
  return d;
}


// ---- random and initializers: argument checks ---------------------------------------------------
initlab::Layout parse_layout(const std::string& layout) {
  if (layout == "in_out") return initlab::Layout::kInOut;
  if (layout == "out_in") return initlab::Layout::kOutIn;
  throw py::value_error("layout must be 'in_out' or 'out_in', got '" + layout + "'");
}

// Calls fill(float*) or fill(double*) on out's data with the GIL released.
template <class Fill>
void fill_out(OutArray& out, Fill&& fill) {
  if (out.is_double) {
    double* data = static_cast<double*>(out.array.mutable_data());
    py::gil_scoped_release release;
    fill(data);
  } else {
    float* data = static_cast<float*>(out.array.mutable_data());
    py::gil_scoped_release release;
    fill(data);
  }
}

template <int R>
std::array<std::uint32_t, 4> philox_rounds(const std::array<std::uint32_t, 4>& c,
                                           const std::array<std::uint32_t, 2>& k) {
  return initlab::philox4x32<R>(c, k);
}

std::array<std::uint32_t, 4> philox4x32(const std::array<std::uint32_t, 4>& counter,
                                        const std::array<std::uint32_t, 2>& key, int rounds) {
  using Fn = std::array<std::uint32_t, 4> (*)(const std::array<std::uint32_t, 4>&,
                                              const std::array<std::uint32_t, 2>&);
  static constexpr Fn table[] = {philox_rounds<1>,  philox_rounds<2>,  philox_rounds<3>,
                                 philox_rounds<4>,  philox_rounds<5>,  philox_rounds<6>,
                                 philox_rounds<7>,  philox_rounds<8>,  philox_rounds<9>,
                                 philox_rounds<10>, philox_rounds<11>, philox_rounds<12>,
                                 philox_rounds<13>, philox_rounds<14>, philox_rounds<15>,
                                 philox_rounds<16>};
  if (rounds < 1 || rounds > 16) {
    throw py::value_error("philox4x32: rounds must be in [1, 16], got " + std::to_string(rounds));
  }
  return table[rounds - 1](counter, key);
}

py::array_t<std::uint32_t> random_words(std::uint64_t seed, std::uint64_t stream,
                                        std::uint64_t first_word, std::int64_t n_words) {
  if (n_words < 0) throw py::value_error("words: n must be >= 0, got " + std::to_string(n_words));
  py::array_t<std::uint32_t> out(n_words);
  std::uint32_t* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    initlab::fill_words(data, n_words, seed, stream, first_word);
  }
  return out;
}

// The three raw fills; kind in uniform / normal / truncated_normal, params as random.hpp orders them.
void random_fill(const py::handle& obj, const std::string& kind, std::uint64_t seed,
                 std::uint64_t stream, const std::vector<double>& params, bool naive) {
  OutArray out = Check(kind.c_str()).float_output(obj);
  const std::size_t needed = kind == "truncated_normal" ? 4 : 2;
  if (kind != "uniform" && kind != "normal" && kind != "truncated_normal") {
    throw py::value_error("kind must be 'uniform', 'normal' or 'truncated_normal', got '" + kind + "'");
  }
  if (params.size() != needed) throw py::value_error(kind + ": wrong number of parameters");
  const std::int64_t n = out.size;
  fill_out(out, [&](auto* data) {
    using T = std::remove_pointer_t<decltype(data)>;
    if (kind == "uniform") {
      (naive ? initlab::fill_uniform_naive<T> : initlab::fill_uniform<T>)(data, n, seed, stream,
                                                                        params[0], params[1]);
    } else if (kind == "normal") {
      (naive ? initlab::fill_normal_naive<T> : initlab::fill_normal<T>)(data, n, seed, stream,
                                                                      params[0], params[1]);
    } else {
      (naive ? initlab::fill_truncated_normal_naive<T> : initlab::fill_truncated_normal<T>)(
          data, n, seed, stream, params[0], params[1], params[2], params[3]);
    }
  });
}

initlab::InitRequest make_request(const std::string& scheme, std::vector<std::int64_t> shape,
                                  const std::string& layout, std::optional<double> fan_in,
                                  std::optional<double> fan_out,
                                  std::map<std::string, double> numbers,
                                  std::map<std::string, std::string> words, std::uint64_t seed,
                                  std::uint64_t stream) {
  initlab::InitRequest request;
  request.scheme = scheme;
  request.shape = std::move(shape);
  request.layout = parse_layout(layout);
  request.fan_in = fan_in;
  request.fan_out = fan_out;
  request.numbers = std::move(numbers);
  request.words = std::move(words);
  request.seed = seed;
  request.stream = stream;
  return request;
}

const char* fill_kind_name(initlab::FillKind kind) {
  switch (kind) {
    case initlab::FillKind::kConstant: return "constant";
    case initlab::FillKind::kUniform: return "uniform";
    case initlab::FillKind::kNormal: return "normal";
    case initlab::FillKind::kTruncatedNormal: return "truncated_normal";
    case initlab::FillKind::kIdentity: return "identity";
    case initlab::FillKind::kDirac: return "dirac";
    case initlab::FillKind::kSparse: return "sparse";
    case initlab::FillKind::kOrthogonal: return "orthogonal";
    case initlab::FillKind::kDeltaOrthogonal: return "delta_orthogonal";
  }
  return "unknown";
}

py::dict plan_as_dict(const initlab::InitPlan& plan) {
  py::dict d;
  d["kind"] = fill_kind_name(plan.kind);
  d["value"] = plan.value;
  d["low"] = plan.low;
  d["high"] = plan.high;
  d["mean"] = plan.mean;
  d["std"] = plan.std;
  d["a"] = plan.a;
  d["b"] = plan.b;
  d["gain"] = plan.gain;
  d["sparsity"] = plan.sparsity;
  d["groups"] = plan.groups;
  if (plan.fans) {
    d["fan_in"] = plan.fans->fan_in;
    d["fan_out"] = plan.fans->fan_out;
  } else {
    d["fan_in"] = py::none();
    d["fan_out"] = py::none();
  }
  return d;
}

py::dict init_plan(const std::string& scheme, std::vector<std::int64_t> shape,
                   const std::string& layout, std::optional<double> fan_in,
                   std::optional<double> fan_out, std::map<std::string, double> numbers,
                   std::map<std::string, std::string> words) {
  return plan_as_dict(initlab::plan_init(
      make_request(scheme, std::move(shape), layout, fan_in, fan_out, std::move(numbers),
                   std::move(words), 0, 0)));
}

// Validates and plans before anything is written; returns the plan (Python finishes orthogonal).
py::dict init_fill(const py::handle& obj, const std::string& scheme, const std::string& layout,
                   std::optional<double> fan_in, std::optional<double> fan_out,
                   std::map<std::string, double> numbers, std::map<std::string, std::string> words,
                   std::uint64_t seed, std::uint64_t stream, bool naive, std::optional<std::string> who) {
  const std::string name = who ? *who : scheme + "_";
  const Check check(name.c_str());
  OutArray out = check.float_output(obj);
  const initlab::InitPlan plan = initlab::plan_init(make_request(
      scheme, out.shape, layout, fan_in, fan_out, std::move(numbers), std::move(words), seed, stream));
  // Values the dtype cannot hold (variance_scaling(scale=1e308) in float32 would fill inf): refused
  // before anything is written. Half the largest finite value leaves room for mean + std*z's rounding.
  const bool f32 = !out.is_double;
  const double limit = (f32 ? static_cast<double>(std::numeric_limits<float>::max())
                            : std::numeric_limits<double>::max()) / 2;
  const double largest = initlab::plan_largest_value(plan);
  if (!(largest <= limit)) {
    char text[160];
    std::snprintf(text, sizeof text, "the parameters give values up to %.6g (plan %s), beyond what %s holds (%.3g)",
                  largest, fill_kind_name(plan.kind), f32 ? "float32" : "float64", limit);
    check.value_error(std::string(text) + "; use smaller parameters or larger fans" + (f32 ? " or float64" : ""));
  }
  fill_out(out, [&](auto* data) {
    if (naive) {
      initlab::execute_plan_naive(plan, data);
    } else {
      initlab::execute_plan(plan, data);
    }
  });
  return plan_as_dict(plan);
}

std::pair<double, double> fans(const std::vector<std::int64_t>& shape, const std::string& layout) {
  for (std::int64_t d : shape) {
    if (d < 0) throw py::value_error("fans: shape entries must be >= 0");
  }
  const initlab::Fans f = initlab::compute_fans(shape, parse_layout(layout));
  return {f.fan_in, f.fan_out};
}

// ---- layers (layer.hpp) -----------------------------------------------------------------------
// A native layer, either precision, with the arrays it points into kept alive.
struct NativeLayer {
  FloatType t = FloatType::kFloat32;
  std::shared_ptr<initlab::Layer<float>> f32;
  std::shared_ptr<initlab::Layer<double>> f64;
  std::vector<py::object> arrays;  // parameters and gradients the layer points into

  std::int64_t in_size() const { return t == FloatType::kFloat32 ? f32->in_size() : f64->in_size(); }
  std::int64_t out_size() const { return t == FloatType::kFloat32 ? f32->out_size() : f64->out_size(); }
  std::vector<std::int64_t> cache_sizes() const {
    return t == FloatType::kFloat32 ? f32->cache_sizes() : f64->cache_sizes();
  }
  bool out_may_alias_cache(std::size_t k) const {
    return t == FloatType::kFloat32 ? f32->out_may_alias_cache(k) : f64->out_may_alias_cache(k);
  }
  std::string type() const { return t == FloatType::kFloat32 ? f32->type() : f64->type(); }
};

// W is (I, O), b is (O), dW is (I, O), db is (O).
std::shared_ptr<NativeLayer> dense_layer_binding(const py::object& w_obj, const py::object& b_obj,
                                                 const py::object& dw_obj, const py::object& db_obj,
                                                 const std::string& activation, const py::object& param,
                                                 double dropout, const py::object& stream) {
  const Check check("dense_layer");
  py::array w = check.array(w_obj, "W", 2), b = check.array(b_obj, "b", 1);
  py::array dw = check.output(dw_obj, "dW", 2), db = check.output(db_obj, "db", 1);
  const FloatType t = check.float_type(w, "W");
  check.same_type(b, "b", t, "W");
  check.same_type(dw, "dW", t, "W");
  check.same_type(db, "db", t, "W");
  check.nonempty(w, "W");
  const std::int64_t i = w.shape(0), o = w.shape(1);
  check.shape(b, "b", {o}, "(O,)");
  check.shape(dw, "dW", {i, o}, "(I, O)");
  check.shape(db, "db", {o}, "(O,)");
  check.no_overlap(dw, "dW", db, "db");
  for (const auto& [in, in_name] : {std::pair{&w, "W"}, std::pair{&b, "b"}}) {
    check.no_overlap(dw, "dW", *in, in_name);
    check.no_overlap(db, "db", *in, in_name);
  }
  check.in_unit_interval(dropout, "dropout");
  const auto stream_v = static_cast<std::uint32_t>(check.uint(stream, "stream", 0xFFFFFFFFu));
  const auto [act, value] = activation_arg(check, activation, param);
  auto layer = std::make_shared<NativeLayer>();
  layer->t = t;
  if (t == FloatType::kFloat32) {
    layer->f32 = std::make_shared<initlab::DenseLayer<float>>(
        i, o, in_ptr<float>(w), in_ptr<float>(b), out_ptr<float>(dw), out_ptr<float>(db), act,
        static_cast<float>(value), dropout, stream_v);
  } else {
    layer->f64 = std::make_shared<initlab::DenseLayer<double>>(
        i, o, in_ptr<double>(w), in_ptr<double>(b), out_ptr<double>(dw), out_ptr<double>(db), act, value,
        dropout, stream_v);
  }
  layer->arrays = {w, b, dw, db};
  return layer;
}

// A sequence of native layers bound to one batch size's buffers: forward or backward over the whole
// sequence in one call, validated once here (at construction) and only X/dX per call.
class NativeSequence {
 public:
  // buffers[k] = (out, dout, [cache...]) of layer k, each (rows, ...) with the layer's row sizes.
  NativeSequence(std::vector<std::shared_ptr<NativeLayer>> layers, const py::list& buffers, std::int64_t rows)
      : layers_(std::move(layers)), rows_(rows) {
    const Check check("LayerSequence");
    if (layers_.empty()) check.value_error("'layers' must hold at least one layer");
    if (static_cast<std::size_t>(py::len(buffers)) != layers_.size()) {
      check.value_error("'buffers' must hold one (out, dout, caches) entry per layer: got " +
                        std::to_string(py::len(buffers)) + " for " + std::to_string(layers_.size()) + " layers");
    }
    if (rows_ < 1) check.value_error("'rows' must be >= 1");
    t_ = layers_[0]->t;
    std::vector<std::pair<py::array, std::string>> all;
    for (std::size_t k = 0; k < layers_.size(); ++k) {
      const NativeLayer& layer = *layers_[k];
      const std::string where = "layer " + std::to_string(k) + " (" + layer.type() + ")";
      if (layer.t != t_) check.type_error(where + " has another dtype than layer 0; one dtype per sequence");
      if (k > 0 && layer.in_size() != layers_[k - 1]->out_size()) {
        check.value_error(where + " reads rows of " + std::to_string(layer.in_size()) +
                          " values but the layer before writes " + std::to_string(layers_[k - 1]->out_size()));
      }
      py::tuple entry = py::reinterpret_borrow<py::tuple>(buffers[k]);
      if (!py::isinstance<py::tuple>(buffers[k]) || py::len(entry) != 3) {
        check.type_error("buffers[" + std::to_string(k) + "] must be a tuple (out, dout, caches)");
      }
      py::array out = buffer(check, entry[0], where + " out", layer.out_size());
      py::array dout = buffer(check, entry[1], where + " dout", layer.out_size());
      const std::vector<std::int64_t> sizes = layer.cache_sizes();
      py::list caches = py::list(entry[2]);
      if (py::len(caches) != sizes.size()) {
        check.value_error(where + " needs " + std::to_string(sizes.size()) + " cache buffers, got " +
                          std::to_string(py::len(caches)));
      }
      std::vector<py::array> cache_arrays;
      for (std::size_t c = 0; c < sizes.size(); ++c) {
        py::array a = buffer(check, caches[c], where + " cache[" + std::to_string(c) + "]", sizes[c]);
        if (a.data() == out.data() && !layer.out_may_alias_cache(c)) {
          check.value_error(where + " out may not be the same buffer as cache[" + std::to_string(c) + "]");
        }
        cache_arrays.push_back(a);
      }
      all.emplace_back(out, where + " out");
      all.emplace_back(dout, where + " dout");
      for (std::size_t c = 0; c < cache_arrays.size(); ++c) {
        if (cache_arrays[c].data() != out.data()) {
          all.emplace_back(cache_arrays[c], where + " cache[" + std::to_string(c) + "]");
        }
      }
      if (t_ == FloatType::kFloat32) {
        bufs32_.push_back(make_buffers<float>(out, dout, cache_arrays));
        ptrs32_.push_back(layer.f32.get());
      } else {
        bufs64_.push_back(make_buffers<double>(out, dout, cache_arrays));
        ptrs64_.push_back(layer.f64.get());
      }
      keep_.push_back(entry);
    }
    for (std::size_t p = 0; p < all.size(); ++p) {
      for (std::size_t q = p + 1; q < all.size(); ++q) {
        check.no_overlap(all[p].first, all[p].second.c_str(), all[q].first, all[q].second.c_str());
      }
      buffers_.push_back(all[p].first);
    }
  }

  // X is (rows, in_size of layer 0) (any trailing shape with that many values per row).
  void forward(const py::object& x_obj, bool training, const py::object& seed, const py::object& step) {
    const Check check("LayerSequence.forward");
    py::array x = input(check, x_obj, "X", layers_.front()->in_size(), false);
    const initlab::PassContext pass = context(check, training, seed, step);
    py::gil_scoped_release release;
    if (t_ == FloatType::kFloat32) {
      initlab::sequence_forward<float>(rows_, in_ptr<float>(x), ptrs32_, bufs32_, pass);
    } else {
      initlab::sequence_forward<double>(rows_, in_ptr<double>(x), ptrs64_, bufs64_, pass);
    }
  }

  // From the last layer's dout; X as given to forward; dX (rows, in_size of layer 0) or None.
  void backward(const py::object& x_obj, const py::object& dx_obj, bool training, const py::object& seed,
                const py::object& step) {
    const Check check("LayerSequence.backward");
    py::array x = input(check, x_obj, "X", layers_.front()->in_size(), false);
    const bool has_dx = !dx_obj.is_none();
    py::array dx = has_dx ? input(check, dx_obj, "dX", layers_.front()->in_size(), true) : py::array();
    if (has_dx) check.no_overlap(dx, "dX", x, "X");
    const initlab::PassContext pass = context(check, training, seed, step);
    py::gil_scoped_release release;
    if (t_ == FloatType::kFloat32) {
      initlab::sequence_backward<float>(rows_, in_ptr<float>(x), ptrs32_, bufs32_,
                                        has_dx ? out_ptr<float>(dx) : nullptr, pass);
    } else {
      initlab::sequence_backward<double>(rows_, in_ptr<double>(x), ptrs64_, bufs64_,
                                         has_dx ? out_ptr<double>(dx) : nullptr, pass);
    }
  }

  std::int64_t rows() const { return rows_; }
  FloatType dtype() const { return t_; }
  std::int64_t in_size() const { return layers_.front()->in_size(); }
  std::int64_t out_size() const { return layers_.back()->out_size(); }
  // The native loop (train_batches) runs the sequence on its own: the layers and their buffers.
  template <typename T>
  std::vector<initlab::Layer<T>*>& layer_ptrs() {
    if constexpr (std::is_same_v<T, float>) return ptrs32_; else return ptrs64_;
  }
  template <typename T>
  std::vector<initlab::LayerBuffers<T>>& layer_buffers() {
    if constexpr (std::is_same_v<T, float>) return bufs32_; else return bufs64_;
  }
  // An input of `size` values per row (not overlapping any layer buffer), writeable when asked.
  py::array checked_input(const Check& check, const py::object& obj, const std::string& name, std::int64_t size,
                          bool writeable) const {
    py::array a = input(check, obj, name, size, false);
    return writeable ? check.output(a, name.c_str(), static_cast<int>(a.ndim())) : a;
  }

 private:
  template <typename T>
  static initlab::LayerBuffers<T> make_buffers(py::array& out, py::array& dout, std::vector<py::array>& caches) {
    initlab::LayerBuffers<T> b;
    b.out = out_ptr<T>(out);
    b.dout = out_ptr<T>(dout);
    for (py::array& c : caches) b.cache.push_back(out_ptr<T>(c));
    return b;
  }

  // A writeable, C-contiguous, aligned array of this sequence's dtype with `rows` rows of `size` values.
  py::array buffer(const Check& check, const py::handle& obj, const std::string& name, std::int64_t size) const {
    return input(check, py::reinterpret_borrow<py::object>(obj), name, size, true);
  }

  py::array input(const Check& check, const py::object& obj, const std::string& name, std::int64_t size,
                  bool writeable) const {
    if (!py::isinstance<py::array>(obj)) {
      check.type_error("'" + name + "' must be a numpy.ndarray, got " +
                       std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    py::array a = py::reinterpret_borrow<py::array>(obj);
    a = writeable ? check.output(a, name.c_str(), static_cast<int>(a.ndim()))
                  : check.array(a, name.c_str(), static_cast<int>(a.ndim()));
    check.same_type(a, name.c_str(), t_, "layer 0's parameters");
    if (a.ndim() < 1 || a.shape(0) != rows_ || a.size() != rows_ * size) {
      check.value_error("'" + name + "' must have " + std::to_string(rows_) + " rows of " + std::to_string(size) +
                        " values, got shape " + shape_str(shape_of(a)));
    }
    if (!writeable) {
      for (const py::array& b : buffers_) check.no_overlap(b, "a layer buffer", a, name.c_str());
    }
    return a;
  }

  static initlab::PassContext context(const Check& check, bool training, const py::object& seed,
                                      const py::object& step) {
    initlab::PassContext pass;
    pass.training = training;
    pass.seed = check.uint(seed, "seed", ~std::uint64_t{0});
    pass.step = static_cast<std::uint32_t>(check.uint(step, "step", 0xFFFFFFFFu));
    return pass;
  }

  std::vector<std::shared_ptr<NativeLayer>> layers_;
  std::int64_t rows_;
  FloatType t_ = FloatType::kFloat32;
  std::vector<initlab::Layer<float>*> ptrs32_;
  std::vector<initlab::Layer<double>*> ptrs64_;
  std::vector<initlab::LayerBuffers<float>> bufs32_;
  std::vector<initlab::LayerBuffers<double>> bufs64_;
  std::vector<py::array> buffers_;  // every distinct buffer (for the X overlap check)
  std::vector<py::object> keep_;    // the buffer tuples, alive as long as the sequence
};

// ---- the native batch loop (train.hpp: train_batches) -------------------------------------------
// train_batches(sequence, workspace=(X, y, w, P), data=(X, y, w, order), ...): batches [first, end) of
// one epoch, each of sequence.rows rows, with the GIL released. workspace arrays are (rows, ...):
// X (rows, in_size), y int64 (rows,) labels or (rows, K) targets, w (rows,) or None, P (rows, K);
// data: X (n, in_size), y (n,) int64 or (n, K), w (n,) or None, order int64 (n,). The optimizer
// arguments are optimizer_step's (without step, first_step, guard: the loop keeps them). Between
// batches, pending signal handlers run (the GIL taken for a moment) and stop_flag[0] != 0 (an int32
// (1,) array the SIGINT handler sets) stops the call at that batch boundary; an exception a handler
// raises (a second Ctrl-C) also stops it and comes back as "raised". Returns {status: "done" |
// "stopped" | "diverged", next, step, optimizer_step, started, sums: (loss, correct, weight), loss,
// in_update, bad_layers, raised}.
py::dict train_batches_binding(NativeSequence& seq, const py::tuple& workspace, const py::tuple& data,
                               std::int64_t first, std::int64_t end, std::int64_t batch_size,
                               const std::string& loss, const py::object& params, const py::object& grads,
                               const py::object& states, const std::string& optimizer, double lr,
                               double momentum, double dampening, bool nesterov, double beta1, double beta2,
                               double eps, double alpha, double weight_decay, const py::object& clip_value,
                               const py::object& clip_norm, bool check_divergence, const py::object& seed,
                               std::int64_t step, std::int64_t optimizer_step, bool started,
                               const py::tuple& sums, const py::object& stop_flag) {
  const Check check("train_batches");
  const FloatType t = seq.dtype();
  const std::int64_t rows = seq.rows(), in = seq.in_size(), k = seq.out_size();
  initlab::TrainLoopConfig cfg;
  if (loss == "softmax") {
    cfg.loss = initlab::OutputLoss::kSoftmax;
  } else if (loss == "sigmoid") {
    cfg.loss = initlab::OutputLoss::kSigmoid;
  } else if (loss == "linear") {
    cfg.loss = initlab::OutputLoss::kMse;
  } else {
    check.value_error("'loss' must be one of softmax, sigmoid, linear, got '" + loss + "'");
  }
  if (py::len(workspace) != 4 || py::len(data) != 4) {
    check.value_error("'workspace' must be (X, y, w, P) and 'data' (X, y, w, order)");
  }
  // The data.
  py::array x_all = check.array(data[0], "data X", static_cast<int>(py::reinterpret_borrow<py::array>(data[0]).ndim()));
  check.same_type(x_all, "data X", t, "the sequence");
  if (x_all.ndim() < 1 || x_all.size() != x_all.shape(0) * in) {
    check.value_error("'data X' must have rows of " + std::to_string(in) + " values, got shape " +
                      shape_str(shape_of(x_all)));
  }
  const std::int64_t n = x_all.shape(0);
  py::array order = check.array(data[3], "order", 1);
  if (!has_dtype<std::int64_t>(order)) check.type_error("'order' must have dtype int64");
  check.shape(order, "order", {n}, "(n,)");
  const std::int64_t* order_p = in_ptr<std::int64_t>(order);
  for (std::int64_t r = 0; r < n; ++r) {
    if (order_p[r] < 0 || order_p[r] >= n) check.value_error("'order' must hold row indexes in [0, n)");
  }
  py::array y_all = py::reinterpret_borrow<py::array>(data[1]);
  const bool labels = py::isinstance<py::array>(data[1]) && y_all.ndim() == 1;
  if (labels) {
    if (cfg.loss != initlab::OutputLoss::kSoftmax) check.value_error("integer labels are for a softmax output");
    y_all = check.array(data[1], "data y", 1);
    if (!has_dtype<std::int64_t>(y_all)) check.type_error("integer labels 'data y' must have dtype int64");
    check.shape(y_all, "data y", {n}, "(n,)");
    const std::int64_t* lab = in_ptr<std::int64_t>(y_all);
    for (std::int64_t r = 0; r < n; ++r) {
      if (lab[r] < 0 || lab[r] >= k) check.value_error("label data y[" + std::to_string(r) + "] is out of range");
    }
  } else {
    y_all = check.array(data[1], "data y", 2);
    check.same_type(y_all, "data y", t, "the sequence");
    check.shape(y_all, "data y", {n, k}, "(n, K)");
  }
  const bool weighted = !data[2].is_none();
  py::array w_all;
  if (weighted) {
    w_all = check.array(data[2], "data w", 1);
    check.same_type(w_all, "data w", t, "the sequence");
    check.shape(w_all, "data w", {n}, "(n,)");
  }
  if (batch_size < 1 || first < 0 || end < first || (end > first && (end - 1) * batch_size + rows > n) ||
      rows > batch_size) {
    check.value_error("batches [" + std::to_string(first) + ", " + std::to_string(end) + ") of " +
                      std::to_string(rows) + " rows (batch_size " + std::to_string(batch_size) +
                      ") do not fit " + std::to_string(n) + " rows");
  }
  // The workspace: what the loop writes.
  py::array x_ws = seq.checked_input(check, workspace[0], "workspace X", in, true);
  py::array y_ws, w_ws;
  if (labels) {
    y_ws = check.output(workspace[1], "workspace y", 1);
    if (!has_dtype<std::int64_t>(y_ws)) check.type_error("'workspace y' must have dtype int64");
    check.shape(y_ws, "workspace y", {rows}, "(rows,)");
  } else {
    y_ws = seq.checked_input(check, workspace[1], "workspace y", k, true);
  }
  if (weighted) w_ws = seq.checked_input(check, workspace[2], "workspace w", 1, true);
  py::array p_ws = seq.checked_input(check, workspace[3], "workspace P", k, true);
  std::vector<std::pair<py::array, const char*>> written = {{x_ws, "workspace X"}, {y_ws, "workspace y"},
                                                            {p_ws, "workspace P"}};
  if (weighted) written.emplace_back(w_ws, "workspace w");
  for (std::size_t a = 0; a < written.size(); ++a) {
    for (std::size_t b = a + 1; b < written.size(); ++b) {
      check.no_overlap(written[a].first, written[a].second, written[b].first, written[b].second);
    }
    check.no_overlap(written[a].first, written[a].second, x_all, "data X");
    check.no_overlap(written[a].first, written[a].second, y_all, "data y");
    check.no_overlap(written[a].first, written[a].second, order, "order");
    if (weighted) check.no_overlap(written[a].first, written[a].second, w_all, "data w");
  }
  // The optimizer, validated as optimizer_step validates it; its tensors must be the layers' own.
  OptimizerArgs opt = optimizer_args(check, params, grads, states, optimizer, lr, momentum, dampening, nesterov,
                                     false, beta1, beta2, eps, alpha, weight_decay, 1, clip_value, clip_norm,
                                     check_divergence);
  if (opt.t != t) check.type_error("'params' have another dtype than the sequence");
  if (step < 0 || optimizer_step < 0) check.value_error("'step' and 'optimizer_step' must be >= 0");
  cfg.batch_size = batch_size;
  cfg.first = first;
  cfg.end = end;
  cfg.check_divergence = check_divergence;
  cfg.seed = check.uint(seed, "seed", ~std::uint64_t{0});
  cfg.optimizer = opt.c;
  initlab::TrainLoopState state;
  state.step = step;
  state.optimizer_step = optimizer_step;
  state.started = started;
  if (py::len(sums) != 3) check.value_error("'sums' must be (loss_sum, correct_sum, weight_sum)");
  state.loss_sum = sums[0].cast<double>();
  state.correct_sum = sums[1].cast<double>();
  state.weight_sum = sums[2].cast<double>();
  const std::int32_t* flag = nullptr;
  py::array flag_array;
  if (!stop_flag.is_none()) {
    flag_array = check.array(stop_flag, "stop_flag", 1);
    if (!has_dtype<std::int32_t>(flag_array) || flag_array.size() != 1) {
      check.type_error("'stop_flag' must be an int32 array of shape (1,)");
    }
    flag = in_ptr<std::int32_t>(flag_array);
  }
  PyObject* raised_type = nullptr;
  PyObject* raised_value = nullptr;
  PyObject* raised_tb = nullptr;
  // Between batches: run pending signal handlers (Ctrl-C), then read the flag they set.
  std::function<bool()> should_stop = [&]() -> bool {
    py::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Fetch(&raised_type, &raised_value, &raised_tb);
      return true;
    }
    return flag != nullptr && *static_cast<const volatile std::int32_t*>(flag) != 0;
  };
  initlab::TrainLoopResult result;
  auto run = [&](auto zero) {
    using T = decltype(zero);
    initlab::TrainData<T> d;
    d.n = n;
    d.in_size = in;
    d.k = k;
    d.x = in_ptr<T>(x_all);
    d.labels = labels ? in_ptr<std::int64_t>(y_all) : nullptr;
    d.targets = labels ? nullptr : in_ptr<T>(y_all);
    d.weights = weighted ? in_ptr<T>(w_all) : nullptr;
    d.order = order_p;
    initlab::TrainWorkspace<T> ws;
    ws.rows = rows;
    ws.x = out_ptr<T>(x_ws);
    ws.labels = labels ? static_cast<std::int64_t*>(y_ws.mutable_data()) : nullptr;
    ws.targets = labels ? nullptr : out_ptr<T>(y_ws);
    ws.weights = weighted ? out_ptr<T>(w_ws) : nullptr;
    ws.p = out_ptr<T>(p_ws);
    ws.layers = seq.layer_ptrs<T>();
    ws.buffers = &seq.layer_buffers<T>();
    std::size_t i = 0;
    for (initlab::Layer<T>* layer : ws.layers) {
      for (const initlab::ParameterView<T>& v : layer->parameters()) {
        if (i >= opt.n || out_ptr<T>(opt.groups[i].arrays[0]) != v.param ||
            static_cast<const void*>(opt.groups[i].arrays[1].data()) != static_cast<const void*>(v.grad) ||
            opt.groups[i].count != v.count) {
          check.value_error("'params' and 'grads' must be the sequence's parameters and gradients, in layer order");
        }
        initlab::ParamTensor<T> pt;
        pt.count = v.count;
        pt.param = v.param;
        pt.grad = v.grad;
        pt.state0 = opt_ptr<T>(opt.groups[i].arrays[2]);
        pt.state1 = opt_ptr<T>(opt.groups[i].arrays[3]);
        ws.tensors.push_back(pt);
        ++i;
      }
    }
    if (i != opt.n) check.value_error("'params' must be the sequence's parameters, in layer order");
    py::gil_scoped_release release;
    result = initlab::train_batches<T>(d, ws, cfg, state, should_stop);
  };
  if (t == FloatType::kFloat32) {
    run(0.0f);
  } else {
    run(0.0);
  }
  py::dict out;
  out["status"] = result.status == initlab::TrainStatus::kDone      ? "done"
                  : result.status == initlab::TrainStatus::kStopped ? "stopped"
                                                                    : "diverged";
  out["next"] = result.next;
  out["step"] = state.step;
  out["optimizer_step"] = state.optimizer_step;
  out["started"] = state.started;
  out["sums"] = py::make_tuple(state.loss_sum, state.correct_sum, state.weight_sum);
  out["loss"] = result.loss;
  out["in_update"] = result.in_update;
  out["bad_layers"] = py::cast(result.bad_layers);
  if (raised_type != nullptr) {
    PyErr_NormalizeException(&raised_type, &raised_value, &raised_tb);
    if (raised_tb != nullptr && raised_value != nullptr) PyException_SetTraceback(raised_value, raised_tb);
    out["raised"] = raised_value ? py::reinterpret_steal<py::object>(raised_value) : py::object(py::none());
    Py_XDECREF(raised_type);
    Py_XDECREF(raised_tb);
  } else {
    out["raised"] = py::none();
  }
  return out;
}

// ---- convolution and pooling (conv.hpp) --------------------------------------------------------
// Geometry arguments arrive normalized by the Python layers: stride and dilation as (h, w) pairs,
// padding as (top, bottom, left, right), pool windows as pairs. Shapes are validated here so the
// kernels never read or write outside an array.

// Bounds that keep every index product far from int64 overflow.
constexpr std::int64_t kMaxGeometry = std::int64_t{1} << 30;

std::vector<std::int64_t> int_tuple(const Check& check, const py::object& obj, const char* name,
                                    std::size_t size, std::int64_t low) {
  const std::string what = size == 2 ? "a pair of ints" : "a tuple of " + std::to_string(size) + " ints";
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj)) {
    check.type_error(std::string("'") + name + "' must be " + what + ", got " +
                     std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != size) {
    check.value_error(std::string("'") + name + "' must be " + what + ", got " + std::string(py::repr(obj)));
  }
  std::vector<std::int64_t> out;
  for (const py::handle item : seq) {
    if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item)) {
      check.type_error(std::string("'") + name + "' must be " + what + ", got " + std::string(py::repr(obj)));
    }
    const py::int_ value = py::reinterpret_borrow<py::int_>(item);
    if (value < py::int_(low) || value > py::int_(kMaxGeometry)) {
      check.value_error(std::string("'") + name + "' entries must be in [" + std::to_string(low) + ", " +
                        std::to_string(kMaxGeometry) + "], got " + std::string(py::repr(obj)));
    }
    out.push_back(value.cast<std::int64_t>());
  }
  return out;
}

// The geometry of X (N, H, W, C) and W (KH, KW, C, O) shapes, checked: channels agree, the
// dilated kernel fits the padded input.
initlab::Conv2dGeometry conv_geometry(const Check& check, const std::vector<std::int64_t>& x_shape,
                                      const std::vector<std::int64_t>& w_shape, const py::object& stride,
                                      const py::object& dilation, const py::object& padding) {
  if (x_shape.size() != 4) {
    check.value_error("'X' must be (N, H, W, C), got shape " + shape_str(x_shape));
  }
  if (w_shape.size() != 4) {
    check.value_error("'W' must be (KH, KW, C, O), got shape " + shape_str(w_shape));
  }
  for (std::size_t d = 0; d < 4; ++d) {
    if (x_shape[d] <= 0 || w_shape[d] <= 0) {
      check.value_error("'X' " + shape_str(x_shape) + " and 'W' " + shape_str(w_shape) +
                        " must have no empty axis");
    }
  }
  if (w_shape[2] != x_shape[3]) {
    check.value_error("'W' " + shape_str(w_shape) + " expects C=" + std::to_string(w_shape[2]) +
                      " input channels but 'X' " + shape_str(x_shape) + " has " + std::to_string(x_shape[3]));
  }
  const auto s = int_tuple(check, stride, "stride", 2, 1);
  const auto d = int_tuple(check, dilation, "dilation", 2, 1);
  const auto p = int_tuple(check, padding, "padding", 4, 0);
  initlab::Conv2dGeometry g{x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0], w_shape[1], w_shape[3]};
  g.stride_h = s[0];
  g.stride_w = s[1];
  g.dilation_h = d[0];
  g.dilation_w = d[1];
  g.pad_top = p[0];
  g.pad_bottom = p[1];
  g.pad_left = p[2];
  g.pad_right = p[3];
  const std::int64_t span_h = g.dilation_h * (g.kh - 1) + 1, span_w = g.dilation_w * (g.kw - 1) + 1;
  if (span_h > g.h + g.pad_top + g.pad_bottom || span_w > g.w + g.pad_left + g.pad_right) {
    check.value_error("the kernel " + shape_str({g.kh, g.kw}) + " with dilation " +
                      shape_str({g.dilation_h, g.dilation_w}) + " spans " + shape_str({span_h, span_w}) +
                      " pixels, more than the padded input " +
                      shape_str({g.h + g.pad_top + g.pad_bottom, g.w + g.pad_left + g.pad_right}) +
                      " ('X' " + shape_str(x_shape) + ", padding " + std::string(py::repr(padding)) + ")");
  }
  return g;
}

std::vector<std::int64_t> conv_out_shape(const initlab::Conv2dGeometry& g) {
  return {g.n, g.out_h(), g.out_w(), g.o};
}

// The workspace: None when none is needed, else a writeable 1-D array of X's dtype holding at
// least conv2d_workspace_size elements.
py::array conv_workspace(const Check& check, const py::object& obj, const initlab::Conv2dGeometry& g,
                         FloatType t) {
  const std::int64_t need = initlab::conv2d_workspace_size(g);
  if (obj.is_none()) {
    if (need > 0) {
      check.value_error("'workspace' is required: this geometry lowers X into " + std::to_string(need) +
                        " elements (conv2d_workspace_size)");
    }
    return py::array();
  }
  py::array ws = check.output(obj, "workspace", 1);
  check.same_type(ws, "workspace", t, "X");
  if (ws.size() < need) {
    check.value_error("'workspace' holds " + std::to_string(ws.size()) + " elements, needs at least " +
                      std::to_string(need) + " (conv2d_workspace_size)");
  }
  return ws;
}

std::int64_t conv2d_workspace_size_binding(const std::vector<std::int64_t>& x_shape,
                                           const std::vector<std::int64_t>& w_shape, const py::object& stride,
                                           const py::object& dilation, const py::object& padding) {
  const Check check("conv2d_workspace_size");
  return initlab::conv2d_workspace_size(conv_geometry(check, x_shape, w_shape, stride, dilation, padding));
}

bool conv2d_forward_lowers_binding(const std::vector<std::int64_t>& x_shape, const std::vector<std::int64_t>& w_shape,
                                   const py::object& stride, const py::object& dilation, const py::object& padding) {
  const Check check("conv2d_forward_lowers");
  return initlab::conv2d_forward_lowers(conv_geometry(check, x_shape, w_shape, stride, dilation, padding));
}

std::vector<std::int64_t> conv2d_output_shape_binding(const std::vector<std::int64_t>& x_shape,
                                                      const std::vector<std::int64_t>& w_shape,
                                                      const py::object& stride, const py::object& dilation,
                                                      const py::object& padding) {
  const Check check("conv2d_output_shape");
  return conv_out_shape(conv_geometry(check, x_shape, w_shape, stride, dilation, padding));
}

// Every output against every input and every other output (null arrays are skipped).
void no_overlaps(const Check& check, const std::vector<std::pair<const py::array*, const char*>>& outputs,
                 const std::vector<std::pair<const py::array*, const char*>>& inputs) {
  for (std::size_t p = 0; p < outputs.size(); ++p) {
    if (!outputs[p].first->ptr() || outputs[p].first->size() == 0) continue;
    for (const auto& [in, in_name] : inputs) {
      if (in->ptr() && in->size() > 0) check.no_overlap(*outputs[p].first, outputs[p].second, *in, in_name);
    }
    for (std::size_t q = p + 1; q < outputs.size(); ++q) {
      if (outputs[q].first->ptr() && outputs[q].first->size() > 0) {
        check.no_overlap(*outputs[p].first, outputs[p].second, *outputs[q].first, outputs[q].second);
      }
    }
  }
}

template <bool kReference>
void conv2d_forward_binding(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                            const py::object& z_obj, const py::object& a_obj, const std::string& activation,
                            const py::object& param, const py::object& stride, const py::object& dilation,
                            const py::object& padding, const py::object& ws_obj) {
  const Check check(kReference ? "conv2d_forward_reference" : "conv2d_forward");
  py::array x = check.array(x_obj, "X", 4), w = check.array(w_obj, "W", 4), b = check.array(b_obj, "b", 1);
  py::array z = check.output(z_obj, "Z", 4), a = check.output(a_obj, "A", 4);
  const FloatType t = check.float_type(x, "X");
  check.same_type(w, "W", t, "X");
  check.same_type(b, "b", t, "X");
  check.same_type(z, "Z", t, "X");
  check.same_type(a, "A", t, "X");
  const initlab::Conv2dGeometry g = conv_geometry(check, shape_of(x), shape_of(w), stride, dilation, padding);
  check.shape(b, "b", {g.o}, "(O,)");
  check.shape(z, "Z", conv_out_shape(g), "(N, OH, OW, O)");
  check.shape(a, "A", conv_out_shape(g), "(N, OH, OW, O)");
  const auto [act, value] = activation_arg(check, activation, param);
  py::array ws = kReference ? py::array() : conv_workspace(check, ws_obj, g, t);
  std::vector<std::pair<const py::array*, const char*>> outputs{{&z, "Z"}, {&ws, "workspace"}};
  if (a.data() == z.data()) {
    if (act != initlab::Activation::kLinear) {
      check.value_error("'A' may be the same array as 'Z' only for activation 'linear' (backward needs Z), "
                        "got '" + activation + "'");
    }
  } else {
    outputs.emplace_back(&a, "A");
  }
  no_overlaps(check, outputs, {{&x, "X"}, {&w, "W"}, {&b, "b"}});
  if (a.data() == z.data()) no_overlaps(check, {{&ws, "workspace"}}, {{&a, "A"}});
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    if (kReference) {
      initlab::conv2d_forward_reference<float>(g, in_ptr<float>(x), in_ptr<float>(w), in_ptr<float>(b),
                                               out_ptr<float>(z), out_ptr<float>(a), act, static_cast<float>(value));
    } else {
      initlab::conv2d_forward<float>(g, in_ptr<float>(x), in_ptr<float>(w), in_ptr<float>(b), out_ptr<float>(z),
                                     out_ptr<float>(a), act, static_cast<float>(value),
                                     ws.size() ? out_ptr<float>(ws) : nullptr);
    }
  } else {
    if (kReference) {
      initlab::conv2d_forward_reference<double>(g, in_ptr<double>(x), in_ptr<double>(w), in_ptr<double>(b),
                                                out_ptr<double>(z), out_ptr<double>(a), act, value);
    } else {
      initlab::conv2d_forward<double>(g, in_ptr<double>(x), in_ptr<double>(w), in_ptr<double>(b),
                                      out_ptr<double>(z), out_ptr<double>(a), act, value,
                                      ws.size() ? out_ptr<double>(ws) : nullptr);
    }
  }
}

template <bool kReference>
void conv2d_backward_binding(const py::object& da_obj, const py::object& x_obj, const py::object& w_obj,
                             const py::object& z_obj, const py::object& a_obj, const std::string& activation,
                             const py::object& param, const py::object& dw_obj, const py::object& db_obj,
                             const py::object& dx_obj, const py::object& stride, const py::object& dilation,
                             const py::object& padding, const py::object& ws_obj, const py::object& cols_obj) {
  const Check check(kReference ? "conv2d_backward_reference" : "conv2d_backward");
  py::array da = check.output(da_obj, "dA", 4);
  py::array x = check.array(x_obj, "X", 4), w = check.array(w_obj, "W", 4);
  py::array z = check.array(z_obj, "Z", 4), a = check.array(a_obj, "A", 4);
  py::array dw = check.output(dw_obj, "dW", 4), db = check.output(db_obj, "db", 1);
  const bool has_dx = !dx_obj.is_none();
  py::array dx = has_dx ? check.output(dx_obj, "dX", 4) : py::array();
  const FloatType t = check.float_type(x, "X");
  check.same_type(da, "dA", t, "X");
  check.same_type(w, "W", t, "X");
  check.same_type(z, "Z", t, "X");
  check.same_type(a, "A", t, "X");
  check.same_type(dw, "dW", t, "X");
  check.same_type(db, "db", t, "X");
  if (has_dx) check.same_type(dx, "dX", t, "X");
  const initlab::Conv2dGeometry g = conv_geometry(check, shape_of(x), shape_of(w), stride, dilation, padding);
  check.shape(da, "dA", conv_out_shape(g), "(N, OH, OW, O)");
  check.shape(z, "Z", conv_out_shape(g), "(N, OH, OW, O)");
  check.shape(a, "A", conv_out_shape(g), "(N, OH, OW, O)");
  check.shape(dw, "dW", shape_of(w), "(KH, KW, C, O)");
  check.shape(db, "db", {g.o}, "(O,)");
  if (has_dx) check.shape(dx, "dX", shape_of(x), "(N, H, W, C)");
  const auto [act, value] = activation_arg(check, activation, param);
  // columns: the forward's im2col(X) (P, K), kept by the caller (ignored when pointwise: X is the columns).
  const bool has_cols = !kReference && !cols_obj.is_none() && !g.pointwise();
  py::array cols = has_cols ? check.array(cols_obj, "columns", 2) : py::array();
  if (has_cols) {
    check.same_type(cols, "columns", t, "X");
    check.shape(cols, "columns", {g.positions(), g.taps()}, "(N*OH*OW, KH*KW*C)");
  }
  py::array ws = (kReference || (has_cols && !has_dx)) ? py::array() : conv_workspace(check, ws_obj, g, t);
  no_overlaps(check, {{&da, "dA"}, {&dw, "dW"}, {&db, "db"}, {&dx, "dX"}, {&ws, "workspace"}},
              {{&x, "X"}, {&w, "W"}, {&z, "Z"}, {&a, "A"}, {&cols, "columns"}});
  py::gil_scoped_release release;
  if (has_cols) {
    if (t == FloatType::kFloat32) {
      initlab::conv2d_backward_lowered<float>(g, out_ptr<float>(da), in_ptr<float>(cols), in_ptr<float>(w),
                                              in_ptr<float>(z), in_ptr<float>(a), act, static_cast<float>(value),
                                              out_ptr<float>(dw), out_ptr<float>(db),
                                              has_dx ? out_ptr<float>(dx) : nullptr,
                                              has_dx ? out_ptr<float>(ws) : nullptr);
    } else {
      initlab::conv2d_backward_lowered<double>(g, out_ptr<double>(da), in_ptr<double>(cols), in_ptr<double>(w),
                                               in_ptr<double>(z), in_ptr<double>(a), act, value,
                                               out_ptr<double>(dw), out_ptr<double>(db),
                                               has_dx ? out_ptr<double>(dx) : nullptr,
                                               has_dx ? out_ptr<double>(ws) : nullptr);
    }
    return;
  }
  if (t == FloatType::kFloat32) {
    float* dx_ptr = has_dx ? out_ptr<float>(dx) : nullptr;
    if (kReference) {
      initlab::conv2d_backward_reference<float>(g, out_ptr<float>(da), in_ptr<float>(x), in_ptr<float>(w),
                                                in_ptr<float>(z), in_ptr<float>(a), act, static_cast<float>(value),
                                                out_ptr<float>(dw), out_ptr<float>(db), dx_ptr);
    } else {
      initlab::conv2d_backward<float>(g, out_ptr<float>(da), in_ptr<float>(x), in_ptr<float>(w), in_ptr<float>(z),
                                      in_ptr<float>(a), act, static_cast<float>(value), out_ptr<float>(dw),
                                      out_ptr<float>(db), dx_ptr, ws.size() ? out_ptr<float>(ws) : nullptr);
    }
  } else {
    double* dx_ptr = has_dx ? out_ptr<double>(dx) : nullptr;
    if (kReference) {
      initlab::conv2d_backward_reference<double>(g, out_ptr<double>(da), in_ptr<double>(x), in_ptr<double>(w),
                                                 in_ptr<double>(z), in_ptr<double>(a), act, value,
                                                 out_ptr<double>(dw), out_ptr<double>(db), dx_ptr);
    } else {
      initlab::conv2d_backward<double>(g, out_ptr<double>(da), in_ptr<double>(x), in_ptr<double>(w),
                                       in_ptr<double>(z), in_ptr<double>(a), act, value, out_ptr<double>(dw),
                                       out_ptr<double>(db), dx_ptr, ws.size() ? out_ptr<double>(ws) : nullptr);
    }
  }
}

// The pooling geometry of X (N, H, W, C): the window fits the input.
initlab::Pool2dGeometry pool_geometry(const Check& check, const py::array& x, const char* x_name,
                                      const py::object& pool, const py::object& stride) {
  check.nonempty(x, x_name);
  const auto p = int_tuple(check, pool, "pool", 2, 1);
  const auto s = int_tuple(check, stride, "stride", 2, 1);
  initlab::Pool2dGeometry g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), p[0], p[1], s[0], s[1]};
  if (g.h * g.w >= (std::int64_t{1} << 31)) {  // max pooling keeps in-image indices in 32 bits
    check.value_error("'" + std::string(x_name) + "' " + shape_str(shape_of(x)) +
                      " has 2^31 or more pixels per image; pooling takes fewer");
  }
  if (g.ph > g.h || g.pw > g.w) {
    check.value_error("the pool window " + shape_str({g.ph, g.pw}) + " is larger than the input pixels " +
                      shape_str({g.h, g.w}) + " of '" + x_name + "' " + shape_str(shape_of(x)));
  }
  return g;
}

std::vector<std::int64_t> pool_out_shape(const initlab::Pool2dGeometry& g) {
  return {g.n, g.out_h(), g.out_w(), g.c};
}

void max_pool2d_forward_binding(const py::object& x_obj, const py::object& y_obj, const py::object& idx_obj,
                                const py::object& pool, const py::object& stride) {
  const Check check("max_pool2d_forward");
  py::array x = check.array(x_obj, "X", 4), y = check.output(y_obj, "Y", 4);
  py::array idx = check.output(idx_obj, "argmax", 4);
  const FloatType t = check.float_type(x, "X");
  check.same_type(y, "Y", t, "X");
  if (!has_dtype<std::int64_t>(idx)) {
    check.type_error("argument 'argmax' must have dtype int64, got " + std::string(py::str(idx.dtype())));
  }
  const initlab::Pool2dGeometry g = pool_geometry(check, x, "X", pool, stride);
  check.shape(y, "Y", pool_out_shape(g), "(N, OH, OW, C)");
  check.shape(idx, "argmax", pool_out_shape(g), "(N, OH, OW, C)");
  no_overlaps(check, {{&y, "Y"}, {&idx, "argmax"}}, {{&x, "X"}});
  auto* idx_ptr = static_cast<std::int64_t*>(idx.mutable_data());
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::max_pool2d_forward<float>(g, in_ptr<float>(x), out_ptr<float>(y), idx_ptr);
  } else {
    initlab::max_pool2d_forward<double>(g, in_ptr<double>(x), out_ptr<double>(y), idx_ptr);
  }
}

template <bool kReference>
void max_pool2d_backward_binding(const py::object& dy_obj, const py::object& idx_obj, const py::object& dx_obj,
                                 const py::object& pool, const py::object& stride) {
  const Check check(kReference ? "max_pool2d_backward_reference" : "max_pool2d_backward");
  py::array dy = check.array(dy_obj, "dY", 4), idx = check.array(idx_obj, "argmax", 4);
  py::array dx = check.output(dx_obj, "dX", 4);
  const FloatType t = check.float_type(dy, "dY");
  check.same_type(dx, "dX", t, "dY");
  if (!has_dtype<std::int64_t>(idx)) {
    check.type_error("argument 'argmax' must have dtype int64, got " + std::string(py::str(idx.dtype())));
  }
  const initlab::Pool2dGeometry g = pool_geometry(check, dx, "dX", pool, stride);
  check.shape(dy, "dY", pool_out_shape(g), "(N, OH, OW, C)");
  check.shape(idx, "argmax", pool_out_shape(g), "(N, OH, OW, C)");
  no_overlaps(check, {{&dx, "dX"}}, {{&dy, "dY"}, {&idx, "argmax"}});
  // Every index must address a pixel of its image (a wrong one would write outside dX) inside its
  // own window (the fast kernel gathers from the windows that contain a pixel).
  const std::int64_t pixels = g.h * g.w;
  const auto* idx_ptr = static_cast<const std::int64_t*>(idx.data());
  const std::int64_t ow_count = g.out_w(), oh_count = g.out_h();
  for (std::int64_t e = 0; e < idx.size(); ++e) {
    const std::int64_t v = idx_ptr[e];
    if (v < 0 || v >= pixels) {
      check.value_error("'argmax' holds " + std::to_string(v) + " at flat position " + std::to_string(e) +
                        "; indices must be in [0, H*W) = [0, " + std::to_string(pixels) + ")");
    }
    const std::int64_t ow = (e / g.c) % ow_count, oh = (e / (g.c * ow_count)) % oh_count;
    const std::int64_t ih = v / g.w, iw = v % g.w;
    if (ih < oh * g.stride_h || ih >= oh * g.stride_h + g.ph || iw < ow * g.stride_w || iw >= ow * g.stride_w + g.pw) {
      check.value_error("'argmax' holds " + std::to_string(v) + " at flat position " + std::to_string(e) +
                        ", pixel (" + std::to_string(ih) + ", " + std::to_string(iw) + "), outside its window (" +
                        std::to_string(oh) + ", " + std::to_string(ow) + "): indices must be as max_pool2d_forward "
                        "writes them");
    }
  }
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    (kReference ? initlab::max_pool2d_backward_reference<float> : initlab::max_pool2d_backward<float>)(
        g, in_ptr<float>(dy), idx_ptr, out_ptr<float>(dx));
  } else {
    (kReference ? initlab::max_pool2d_backward_reference<double> : initlab::max_pool2d_backward<double>)(
        g, in_ptr<double>(dy), idx_ptr, out_ptr<double>(dx));
  }
}

void avg_pool2d_forward_binding(const py::object& x_obj, const py::object& y_obj, const py::object& pool,
                                const py::object& stride) {
  const Check check("avg_pool2d_forward");
  py::array x = check.array(x_obj, "X", 4), y = check.output(y_obj, "Y", 4);
  const FloatType t = check.float_type(x, "X");
  check.same_type(y, "Y", t, "X");
  const initlab::Pool2dGeometry g = pool_geometry(check, x, "X", pool, stride);
  check.shape(y, "Y", pool_out_shape(g), "(N, OH, OW, C)");
  no_overlaps(check, {{&y, "Y"}}, {{&x, "X"}});
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::avg_pool2d_forward<float>(g, in_ptr<float>(x), out_ptr<float>(y));
  } else {
    initlab::avg_pool2d_forward<double>(g, in_ptr<double>(x), out_ptr<double>(y));
  }
}

void avg_pool2d_backward_binding(const py::object& dy_obj, const py::object& dx_obj, const py::object& pool,
                                 const py::object& stride) {
  const Check check("avg_pool2d_backward");
  py::array dy = check.array(dy_obj, "dY", 4), dx = check.output(dx_obj, "dX", 4);
  const FloatType t = check.float_type(dy, "dY");
  check.same_type(dx, "dX", t, "dY");
  const initlab::Pool2dGeometry g = pool_geometry(check, dx, "dX", pool, stride);
  check.shape(dy, "dY", pool_out_shape(g), "(N, OH, OW, C)");
  no_overlaps(check, {{&dx, "dX"}}, {{&dy, "dY"}});
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::avg_pool2d_backward<float>(g, in_ptr<float>(dy), out_ptr<float>(dx));
  } else {
    initlab::avg_pool2d_backward<double>(g, in_ptr<double>(dy), out_ptr<double>(dx));
  }
}

void global_avg_pool2d_forward_binding(const py::object& x_obj, const py::object& y_obj) {
  const Check check("global_avg_pool2d_forward");
  py::array x = check.array(x_obj, "X", 4), y = check.output(y_obj, "Y", 2);
  const FloatType t = check.float_type(x, "X");
  check.same_type(y, "Y", t, "X");
  check.nonempty(x, "X");
  const std::int64_t n = x.shape(0), hw = x.shape(1) * x.shape(2), c = x.shape(3);
  check.shape(y, "Y", {n, c}, "(N, C)");
  no_overlaps(check, {{&y, "Y"}}, {{&x, "X"}});
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::global_avg_pool2d_forward<float>(n, hw, c, in_ptr<float>(x), out_ptr<float>(y));
  } else {
    initlab::global_avg_pool2d_forward<double>(n, hw, c, in_ptr<double>(x), out_ptr<double>(y));
  }
}

void global_avg_pool2d_backward_binding(const py::object& dy_obj, const py::object& dx_obj) {
  const Check check("global_avg_pool2d_backward");
  py::array dy = check.array(dy_obj, "dY", 2), dx = check.output(dx_obj, "dX", 4);
  const FloatType t = check.float_type(dy, "dY");
  check.same_type(dx, "dX", t, "dY");
  check.nonempty(dx, "dX");
  const std::int64_t n = dx.shape(0), hw = dx.shape(1) * dx.shape(2), c = dx.shape(3);
  check.shape(dy, "dY", {n, c}, "(N, C)");
  no_overlaps(check, {{&dx, "dX"}}, {{&dy, "dY"}});
  py::gil_scoped_release release;
  if (t == FloatType::kFloat32) {
    initlab::global_avg_pool2d_backward<float>(n, hw, c, in_ptr<float>(dy), out_ptr<float>(dx));
  } else {
    initlab::global_avg_pool2d_backward<double>(n, hw, c, in_ptr<double>(dy), out_ptr<double>(dx));
  }
}

// ---- native convolutional layers (conv_layer.hpp) -----------------------------------------------
FloatType native_dtype(const Check& check, const std::string& dtype) {
  if (dtype == "float32") return FloatType::kFloat32;
  if (dtype == "float64") return FloatType::kFloat64;
  check.value_error("'dtype' must be 'float32' or 'float64', got '" + dtype + "'");
}

// The per-image input shape (H, W, C) as a validated vector.
std::vector<std::int64_t> image_shape(const Check& check, const std::vector<std::int64_t>& shape) {
  if (shape.size() != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
    check.value_error("'input_shape' must be (H, W, C) with every entry >= 1, got " + shape_str(shape));
  }
  return shape;
}

// W is (KH, KW, C, O), b is (O), dW, db alike; input_shape is (H, W, C).
std::shared_ptr<NativeLayer> conv2d_layer_binding(const py::object& w_obj, const py::object& b_obj,
                                                  const py::object& dw_obj, const py::object& db_obj,
                                                  const std::vector<std::int64_t>& input_shape,
                                                  const std::string& activation, const py::object& param,
                                                  const py::object& stride, const py::object& dilation,
                                                  const py::object& padding, double dropout, const py::object& stream,
                                                  bool keep_columns) {
  const Check check("conv2d_layer");
  py::array w = check.array(w_obj, "W", 4), b = check.array(b_obj, "b", 1);
  py::array dw = check.output(dw_obj, "dW", 4), db = check.output(db_obj, "db", 1);
  const FloatType t = check.float_type(w, "W");
  check.same_type(b, "b", t, "W");
  check.same_type(dw, "dW", t, "W");
  check.same_type(db, "db", t, "W");
  std::vector<std::int64_t> x_shape{1};
  for (std::int64_t v : image_shape(check, input_shape)) x_shape.push_back(v);
  const initlab::Conv2dGeometry g = conv_geometry(check, x_shape, shape_of(w), stride, dilation, padding);
  check.shape(b, "b", {g.o}, "(O,)");
  check.shape(dw, "dW", shape_of(w), "(KH, KW, C, O)");
  check.shape(db, "db", {g.o}, "(O,)");
  no_overlaps(check, {{&dw, "dW"}, {&db, "db"}}, {{&w, "W"}, {&b, "b"}});
  check.in_unit_interval(dropout, "dropout");
  const auto stream_v = static_cast<std::uint32_t>(check.uint(stream, "stream", 0xFFFFFFFFu));
  const auto [act, value] = activation_arg(check, activation, param);
  auto layer = std::make_shared<NativeLayer>();
  layer->t = t;
  if (t == FloatType::kFloat32) {
    layer->f32 = std::make_shared<initlab::Conv2dLayer<float>>(g, in_ptr<float>(w), in_ptr<float>(b), out_ptr<float>(dw),
                                                               out_ptr<float>(db), act, static_cast<float>(value),
                                                               dropout, stream_v, keep_columns);
  } else {
    layer->f64 = std::make_shared<initlab::Conv2dLayer<double>>(g, in_ptr<double>(w), in_ptr<double>(b),
                                                                out_ptr<double>(dw), out_ptr<double>(db), act, value,
                                                                dropout, stream_v, keep_columns);
  }
  layer->arrays = {w, b, dw, db};
  return layer;
}

template <bool kMax>
std::shared_ptr<NativeLayer> pool2d_layer_binding(const std::vector<std::int64_t>& input_shape, const py::object& pool,
                                                  const py::object& stride, const std::string& dtype) {
  const Check check(kMax ? "max_pool2d_layer" : "avg_pool2d_layer");
  const auto shape = image_shape(check, input_shape);
  const auto p = int_tuple(check, pool, "pool", 2, 1);
  const auto s = int_tuple(check, stride, "stride", 2, 1);
  const initlab::Pool2dGeometry g{1, shape[0], shape[1], shape[2], p[0], p[1], s[0], s[1]};
  if (g.ph > g.h || g.pw > g.w || g.h * g.w >= (std::int64_t{1} << 31)) {
    check.value_error("the pool window " + shape_str({g.ph, g.pw}) + " does not fit the input " + shape_str(shape));
  }
  auto layer = std::make_shared<NativeLayer>();
  layer->t = native_dtype(check, dtype);
  if (layer->t == FloatType::kFloat32) {
    layer->f32 = std::make_shared<initlab::Pool2dLayer<float>>(g, kMax);
  } else {
    layer->f64 = std::make_shared<initlab::Pool2dLayer<double>>(g, kMax);
  }
  return layer;
}

template <bool kFlatten>
std::shared_ptr<NativeLayer> reshape_layer_binding(const std::vector<std::int64_t>& input_shape,
                                                   const std::string& dtype) {
  const Check check(kFlatten ? "flatten_layer" : "global_avg_pool2d_layer");
  std::int64_t pixels = 1, channels = 1;
  if (kFlatten) {
    for (std::int64_t v : input_shape) {
      if (v < 1) check.value_error("'input_shape' entries must be >= 1, got " + shape_str(input_shape));
      pixels *= v;
    }
  } else {
    const auto shape = image_shape(check, input_shape);
    pixels = shape[0] * shape[1];
    channels = shape[2];
  }
  const auto kind = kFlatten ? initlab::ReshapeKind::kFlatten : initlab::ReshapeKind::kGlobalAvgPool2d;
  auto layer = std::make_shared<NativeLayer>();
  layer->t = native_dtype(check, dtype);
  if (layer->t == FloatType::kFloat32) {
    layer->f32 = std::make_shared<initlab::ReshapeLayer<float>>(kind, pixels, channels);
  } else {
    layer->f64 = std::make_shared<initlab::ReshapeLayer<double>>(kind, pixels, channels);
  }
  return layer;
}

}  // namespace

// Defines every function of initlab._core on m (called by the module's entry point,
// cpp/bindings_module.cpp, for the instruction-set path it chose). Outside namespace initlab, so that
// the binding functions above are found by their plain names.
namespace initlab_python {
inline namespace INITLAB_ISA {
void bind_core(py::module_& m) {
  m.doc() = "initlab's native core (private: use the initlab package)";
  m.attr("__version__") = INITLAB_VERSION;

  // ---- package level -----------------------------------------------------------------------
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.attr("MAX_THREADS") = initlab::kMaxThreads;
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
  m.def("philox4x32", &philox4x32, py::arg("counter"), py::arg("key"), py::arg("rounds") = 10);
  m.def("random_words", &random_words, py::arg("seed"), py::arg("stream"), py::arg("first_word"),
        py::arg("n"));
  m.def("random_fill", &random_fill, py::arg("out"), py::arg("kind"), py::arg("seed"),
        py::arg("stream"), py::arg("params"), py::arg("naive") = false);
  m.def("normal_cdf", &initlab::normal_cdf, py::arg("x"));

  // ---- initializers (init.hpp) -------------------------------------------------------------
  m.def("init_plan", &init_plan, py::arg("scheme"), py::arg("shape"), py::arg("layout"),
        py::arg("fan_in"), py::arg("fan_out"), py::arg("numbers"), py::arg("words"));
  m.def("init_fill", &init_fill, py::arg("out"), py::arg("scheme"), py::arg("layout"),
        py::arg("fan_in"), py::arg("fan_out"), py::arg("numbers"), py::arg("words"),
        py::arg("seed"), py::arg("stream"), py::arg("naive") = false, py::arg("who") = py::none());
  m.def("gain", &initlab::gain, py::arg("nonlinearity"), py::arg("param") = py::none());
  m.def("gain_names", &initlab::gain_names);
  m.def("fans", &fans, py::arg("shape"), py::arg("layout"));

  // ---- GEMM and dense layers (gemm.hpp, dense.hpp) ------------------------------------------
  m.def("gemm", &gemm_binding<false>, py::arg("A"), py::arg("B"), py::arg("C"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("trans_a") = false, py::arg("trans_b") = false,
        "C (M, N) := beta*C + alpha*op(A)*op(B) in place; beta == 0 never reads C");
  m.def("gemm_reference", &gemm_binding<true>, py::arg("A"), py::arg("B"), py::arg("C"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("trans_a") = false, py::arg("trans_b") = false,
        "the triple-loop twin of gemm (test oracle)");
  m.def("gemm_workspace_allocations", &initlab::gemm_workspace_allocations,
        "how many times a GEMM packing buffer was (re)allocated; constant in a steady state");
  m.def("activation_registry", &activation_registry_binding,
        "every activation: dicts of name, id, param_name, default_param, gain, derivative_from_output, "
        "saturates, zero_derivative_interval");
  m.def("activations", &activations_binding,
        "the activation registry: [(name, param_name, default_param)] in the core's order");
  m.def("activation_forward", &activation_forward_binding, py::arg("Z"), py::arg("A"), py::arg("activation"),
        py::arg("param") = py::none(), "A := act(Z) elementwise (A may be Z)");
  m.def("dense_forward", &dense_forward_binding, py::arg("X"), py::arg("W"), py::arg("b"), py::arg("Z"),
        py::arg("A"), py::arg("activation"), py::arg("param") = py::none(),
        "Z (N, O) := X (N, I) @ W (I, O) + b; A := act(Z)");
  m.def("dense_backward", &dense_backward_binding, py::arg("dA"), py::arg("X"), py::arg("W"), py::arg("Z"),
        py::arg("A"), py::arg("activation"), py::arg("param"), py::arg("dW"), py::arg("db"),
        py::arg("dX") = py::none(),
        "dA := dZ = dA*act'; dW := X^T dZ; db := column sums of dZ; dX := dZ W^T (skipped when None)");

  // ---- losses (loss.hpp) ---------------------------------------------------------------------
  // weights (N,) or None: loss := sum w_n l_n / sum w (l_n: row n's loss), dZ its gradient; sum w = 0: 0, 0.
  m.def("softmax_cross_entropy", &softmax_cross_entropy_binding, py::arg("Z"), py::arg("y"), py::arg("P"),
        py::arg("dZ") = py::none(), py::arg("weights") = py::none(), py::kw_only(),
        py::arg("labels_checked") = false,
        "P := softmax(Z); dZ := (P - Y)/N (weighted: w_n (P - Y)/sum w); returns the (weighted) mean loss");
  m.def("sigmoid_binary_cross_entropy", &sigmoid_binary_cross_entropy_binding, py::arg("Z"), py::arg("y"),
        py::arg("P"), py::arg("dZ") = py::none(), py::arg("weights") = py::none(),
        "P := sigmoid(Z); dZ := (P - y)/(N*K) (weighted: w_n (P - y)/(K sum w)); returns the (weighted) mean loss");
  m.def("mean_squared_error", &mean_squared_error_binding, py::arg("Z"), py::arg("y"), py::arg("dZ") = py::none(),
        py::arg("weights") = py::none(),
        "dZ := 2(Z - y)/(N*K) (weighted: 2 w_n (Z - y)/(K sum w)); returns the (weighted) mean of (Z - y)^2");

  // ---- optimizers, clipping, dropout (optim.hpp) --------------------------------------------
  m.def("sgd_step", &sgd_step_binding, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"),
        py::kw_only(), py::arg("lr"), py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
        py::arg("weight_decay") = 0.0, py::arg("nesterov") = false, py::arg("first_step") = false,
        "one torch.optim.SGD step in place");
  m.def("adam_step", &adam_step_binding, py::arg("param"), py::arg("grad"), py::arg("exp_avg"),
        py::arg("exp_avg_sq"), py::kw_only(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("step"), py::arg("decoupled") = false,
        "one torch.optim.Adam (decoupled=False) or AdamW (decoupled=True) step in place; step is 1-based");
  m.def("rmsprop_step", &rmsprop_step_binding, py::arg("param"), py::arg("grad"), py::arg("square_avg"),
        py::arg("momentum_buffer"), py::kw_only(), py::arg("lr"), py::arg("alpha") = 0.99, py::arg("eps") = 1e-8,
        py::arg("weight_decay") = 0.0, py::arg("momentum") = 0.0, "one torch.optim.RMSprop step in place");
  def_optimizer_step(m);
  m.def("clip_by_value", &clip_by_value_binding, py::arg("grad"), py::arg("clip_value"),
        "grad := clamp(grad, -clip_value, clip_value) in place");
  m.def("dropout_forward", &dropout_forward_binding, py::arg("A"), py::arg("mask"), py::kw_only(), py::arg("p"),
        py::arg("seed"), py::arg("stream"), py::arg("step"),
        "mask := 0 or 1/(1-p) from Philox(seed, stream, step); A *= mask");
  m.def("dropout_backward", &dropout_backward_binding, py::arg("dA"), py::arg("mask"), "dA *= mask");

  // ---- statistics (stats.hpp) ----------------------------------------------------------------
  m.def("sum_of_squares", &sum_of_squares_binding, py::arg("x"), "sum of x^2, in double, fixed order");
  m.def("scale", &scale_binding, py::arg("x"), py::arg("factor"), "x *= factor in place");
  m.def("diff_norm", &diff_norm_binding, py::arg("a"), py::arg("b"), "||a - b||_2");
  m.def("all_finite", &all_finite_binding, py::arg("x"), "True when x has no NaN or Inf");
  m.def("layer_stats", &layer_stats_binding, py::arg("Z"), py::arg("A"), py::arg("activation"),
        py::arg("param") = py::none(),
        "{pre_mean, pre_std, act_mean, act_std, saturated, dead} over the whole batch");

  // ---- layers (layer.hpp) -----------------------------------------------------------------------
  py::class_<NativeLayer, std::shared_ptr<NativeLayer>>(m, "Layer",
      "A native layer (layer.hpp) pointing into its parameter and gradient arrays")
      .def_property_readonly("type", &NativeLayer::type)
      .def_property_readonly("in_size", &NativeLayer::in_size)
      .def_property_readonly("out_size", &NativeLayer::out_size)
      .def_property_readonly("cache_sizes", &NativeLayer::cache_sizes);
  m.def("dense_layer", &dense_layer_binding, py::arg("W"), py::arg("b"), py::arg("dW"), py::arg("db"),
        py::arg("activation"), py::arg("param") = py::none(), py::kw_only(), py::arg("dropout") = 0.0,
        py::arg("stream") = 0, "A native Dense layer reading W, b and writing dW, db");
  py::class_<NativeSequence>(m, "LayerSequence",
      "Native layers bound to one batch size's buffers: forward or backward over all of them in one call")
      .def(py::init<std::vector<std::shared_ptr<NativeLayer>>, const py::list&, std::int64_t>(),
           py::arg("layers"), py::arg("buffers"), py::arg("rows"))
      .def_property_readonly("rows", &NativeSequence::rows)
      .def("forward", &NativeSequence::forward, py::arg("X"), py::arg("training") = false,
           py::arg("seed") = 0, py::arg("step") = 0)
      .def("backward", &NativeSequence::backward, py::arg("X"), py::arg("dX") = py::none(), py::kw_only(),
           py::arg("training") = false, py::arg("seed") = 0, py::arg("step") = 0);
  m.def("train_batches", &train_batches_binding, py::arg("sequence"), py::arg("workspace"), py::arg("data"),
        py::kw_only(), py::arg("first"), py::arg("end"), py::arg("batch_size"), py::arg("loss"), py::arg("params"),
        py::arg("grads"), py::arg("states"), py::arg("optimizer"), py::arg("lr"), py::arg("momentum") = 0.0,
        py::arg("dampening") = 0.0, py::arg("nesterov") = false, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
        py::arg("eps") = 1e-8, py::arg("alpha") = 0.99, py::arg("weight_decay") = 0.0,
        py::arg("clip_value") = py::none(), py::arg("clip_norm") = py::none(), py::arg("check_divergence") = true,
        py::arg("seed") = 0, py::arg("step") = 0, py::arg("optimizer_step") = 0, py::arg("started") = false,
        py::arg("sums") = py::make_tuple(0.0, 0.0, 0.0), py::arg("stop_flag") = py::none(),
        "the native batch loop (train.hpp): batches [first, end) of one epoch with the GIL released");
  m.def("weight_sum", &weight_sum_binding, py::arg("w"),
        "sum of row weights in double, in the weighted losses' fixed chunk order (loss.hpp)");

  // ---- convolution and pooling (conv.hpp) ------------------------------------------------------
  m.def("conv2d_workspace_size", &conv2d_workspace_size_binding, py::arg("x_shape"), py::arg("w_shape"),
        py::kw_only(), py::arg("stride"), py::arg("dilation"), py::arg("padding"),
        "elements the conv2d workspace must hold (P*K; 0 for a pointwise kernel)");
  m.def("conv2d_forward_lowers", &conv2d_forward_lowers_binding, py::arg("x_shape"), py::arg("w_shape"),
        py::kw_only(), py::arg("stride"), py::arg("dilation"), py::arg("padding"),
        "whether conv2d_forward leaves im2col(X) (the columns) in its workspace: not when pointwise or K <= 32");
  m.def("conv2d_output_shape", &conv2d_output_shape_binding, py::arg("x_shape"), py::arg("w_shape"),
        py::kw_only(), py::arg("stride"), py::arg("dilation"), py::arg("padding"), "(N, OH, OW, O)");
  m.def("conv2d_forward", &conv2d_forward_binding<false>, py::arg("X"), py::arg("W"), py::arg("b"), py::arg("Z"),
        py::arg("A"), py::arg("activation"), py::arg("param") = py::none(), py::kw_only(), py::arg("stride"),
        py::arg("dilation"), py::arg("padding"), py::arg("workspace") = py::none(),
        "Z (N, OH, OW, O) := conv(X (N, H, W, C), W (KH, KW, C, O)) + b; A := act(Z); padding is "
        "(top, bottom, left, right)");
  m.def("conv2d_forward_reference", &conv2d_forward_binding<true>, py::arg("X"), py::arg("W"), py::arg("b"),
        py::arg("Z"), py::arg("A"), py::arg("activation"), py::arg("param") = py::none(), py::kw_only(),
        py::arg("stride"), py::arg("dilation"), py::arg("padding"), py::arg("workspace") = py::none(),
        "the direct-loop twin of conv2d_forward (test oracle; workspace ignored)");
  m.def("conv2d_backward", &conv2d_backward_binding<false>, py::arg("dA"), py::arg("X"), py::arg("W"), py::arg("Z"),
        py::arg("A"), py::arg("activation"), py::arg("param"), py::arg("dW"), py::arg("db"),
        py::arg("dX") = py::none(), py::kw_only(), py::arg("stride"), py::arg("dilation"), py::arg("padding"),
        py::arg("workspace") = py::none(), py::arg("columns") = py::none(),
        "dA := dZ = dA*act'; dW := cols^T dZ; db := sums of dZ; dX := col2im(dZ W^T) (skipped when None); "
        "columns (N*OH*OW, KH*KW*C): the forward's im2col(X), kept by the caller, so X is not lowered again "
        "(the workspace is then needed only for dX)");
  m.def("conv2d_backward_reference", &conv2d_backward_binding<true>, py::arg("dA"), py::arg("X"), py::arg("W"),
        py::arg("Z"), py::arg("A"), py::arg("activation"), py::arg("param"), py::arg("dW"), py::arg("db"),
        py::arg("dX") = py::none(), py::kw_only(), py::arg("stride"), py::arg("dilation"), py::arg("padding"),
        py::arg("workspace") = py::none(), py::arg("columns") = py::none(),
        "the direct-loop twin of conv2d_backward (test oracle; workspace and columns ignored)");
  m.def("max_pool2d_forward", &max_pool2d_forward_binding, py::arg("X"), py::arg("Y"), py::arg("argmax"),
        py::kw_only(), py::arg("pool"), py::arg("stride"),
        "Y := window max; argmax := flat index ih*W + iw (first on ties, NaN wins)");
  m.def("max_pool2d_backward", &max_pool2d_backward_binding<false>, py::arg("dY"), py::arg("argmax"), py::arg("dX"),
        py::kw_only(), py::arg("pool"), py::arg("stride"),
        "dX := 0; dX[argmax] += dY (each argmax inside its own window; computed as a gather)");
  m.def("max_pool2d_backward_reference", &max_pool2d_backward_binding<true>, py::arg("dY"), py::arg("argmax"),
        py::arg("dX"), py::kw_only(), py::arg("pool"), py::arg("stride"),
        "the naive twin of max_pool2d_backward: the scatter, one thread");
  m.def("avg_pool2d_forward", &avg_pool2d_forward_binding, py::arg("X"), py::arg("Y"), py::kw_only(),
        py::arg("pool"), py::arg("stride"), "Y := window mean (no padding, floor output size)");
  m.def("avg_pool2d_backward", &avg_pool2d_backward_binding, py::arg("dY"), py::arg("dX"), py::kw_only(),
        py::arg("pool"), py::arg("stride"), "dX := sum over the windows holding each pixel of dY/(PH*PW)");
  m.def("global_avg_pool2d_forward", &global_avg_pool2d_forward_binding, py::arg("X"), py::arg("Y"),
        "Y (N, C) := mean of X (N, H, W, C) over the pixels");
  m.def("global_avg_pool2d_backward", &global_avg_pool2d_backward_binding, py::arg("dY"), py::arg("dX"),
        "dX (N, H, W, C) := dY / (H*W)");
  m.def("conv2d_layer", &conv2d_layer_binding, py::arg("W"), py::arg("b"), py::arg("dW"), py::arg("db"),
        py::arg("input_shape"), py::arg("activation"), py::arg("param") = py::none(), py::kw_only(),
        py::arg("stride"), py::arg("dilation"), py::arg("padding"), py::arg("dropout") = 0.0, py::arg("stream") = 0,
        py::arg("keep_columns") = false,
        "A native Conv2d layer on (H, W, C) images reading W, b and writing dW, db; with keep_columns its "
        "last cache buffer holds the forward's im2col columns (OH*OW*KH*KW*C per row; not for a pointwise "
        "kernel), which the backward reads instead of lowering X again");
  m.def("max_pool2d_layer", &pool2d_layer_binding<true>,
        py::arg("input_shape"), py::kw_only(), py::arg("pool"), py::arg("stride"), py::arg("dtype"),
        "A native MaxPool2d layer");
  m.def("avg_pool2d_layer", &pool2d_layer_binding<false>,
        py::arg("input_shape"), py::kw_only(), py::arg("pool"), py::arg("stride"), py::arg("dtype"),
        "A native AvgPool2d layer");
  m.def("global_avg_pool2d_layer", &reshape_layer_binding<false>, py::arg("input_shape"), py::kw_only(),
        py::arg("dtype"), "A native GlobalAvgPool2d layer");
  m.def("flatten_layer", &reshape_layer_binding<true>, py::arg("input_shape"), py::kw_only(), py::arg("dtype"),
        "A native Flatten layer");
}

}  // namespace INITLAB_ISA
}  // namespace initlab_python
