// bindings_common.hpp: what the binding files (cpp/bindings*.cpp) share. The one validation helper
// (Check), the one dtype dispatch (with_float_type), the array pointers, the activation argument and
// the native layer handle. Everything here is inline or a template inside
// initlab_python::INITLAB_ISA, so each instruction-set path's copy links beside the others.
//
// Every check raises before anything is written: TypeError for a wrong kind or dtype, ValueError for
// a wrong shape, layout, value or overlap; the message names the function and the argument.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "initlab/dense.hpp"
#include "initlab/isa.hpp"
#include "initlab/layer.hpp"

namespace initlab_python {
inline namespace INITLAB_ISA {

namespace py = pybind11;

// Each binding file defines the functions of one concern on m; bind_core (bindings.cpp) calls them.
void bind_init(py::module_& m);
void bind_nn(py::module_& m);
void bind_conv(py::module_& m);

// ---- the dtype dispatch ---------------------------------------------------------------------------

enum class FloatType { kFloat32, kFloat64 };

// The one float32/float64 branch of the bindings: calls f(float{}) or f(double{}). f is a generic
// lambda that names its element type `using T = decltype(tag);`; both calls return the same type.
template <class F>
decltype(auto) with_float_type(FloatType t, F&& f) {
  if (t == FloatType::kFloat32) return std::forward<F>(f)(float{});
  return std::forward<F>(f)(double{});
}

// The other direction: the FloatType of the element type T (float or double).
template <class T>
inline constexpr FloatType kFloatTypeOf = std::is_same_v<T, float> ? FloatType::kFloat32 : FloatType::kFloat64;

template <class T>
inline constexpr const char* kDtypeName = std::is_same_v<T, float> ? "float32" : "float64";

inline const char* dtype_name(FloatType t) {
  return with_float_type(t, [](auto tag) { return kDtypeName<decltype(tag)>; });
}

// dtype tests by numpy's equivalence (PyArray_EquivTypes), not object identity: an array that
// crossed a pickle (a Dask worker) carries an equal but distinct float32 dtype object.
template <class T>
bool has_dtype(const py::array& a) {
  return py::isinstance<py::array_t<T, 0>>(a);
}

// ---- shapes and pointers --------------------------------------------------------------------------

// Kernels load whole elements: an unaligned buffer (a pickle-5 out-of-band view) is undefined
// behaviour for them, so it is refused rather than read.
inline bool is_aligned(const py::array& a) {
  return (a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
}

inline std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (d) s += ", ";
    s += std::to_string(shape[d]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

inline std::vector<std::int64_t> shape_of(const py::array& a) {
  return std::vector<std::int64_t>(a.shape(), a.shape() + a.ndim());
}

template <typename T>
const T* in_ptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <typename T>
T* out_ptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}
// The array of an absent (None) optional argument: a null handle, not numpy's empty array, so that
// opt_ptr gives the kernel nullptr and Check::no_overlaps skips it.
inline py::array absent_array() { return py::reinterpret_steal<py::array>(py::handle()); }

// An optional output: null for an absent (None) array.
template <typename T>
T* opt_ptr(py::array& a) {
  return a ? out_ptr<T>(a) : nullptr;
}

// ---- the validation helper ------------------------------------------------------------------------

// An array of any shape written in place (the initializers' and random fills): a writable,
// C-contiguous float32/float64 ndarray, never a converted copy (writing into a copy would silently
// lose the result).
struct OutArray {
  py::array array;
  FloatType t;
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
      type_error(std::string("argument '") + name + "' must be a numpy.ndarray, got " + type_name(obj));
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

  // float32 or float64 (by numpy's equivalence); nullopt for any other dtype.
  static std::optional<FloatType> float_type_of(const py::array& a) {
    if (has_dtype<float>(a)) return FloatType::kFloat32;
    if (has_dtype<double>(a)) return FloatType::kFloat64;
    return std::nullopt;
  }

  FloatType float_type(const py::array& a, const char* name) const {
    if (const std::optional<FloatType> t = float_type_of(a)) return *t;
    type_error(std::string("argument '") + name + "' must have dtype float32 or float64, got " +
               std::string(py::str(a.dtype())));
  }

  void same_type(const py::array& a, const char* name, FloatType t, const char* ref) const {
    if (float_type(a, name) != t) {
      type_error(std::string("argument '") + name + "' has dtype " + std::string(py::str(a.dtype())) +
                 " but '" + ref + "' has dtype " + dtype_name(t) + "; one dtype per call");
    }
  }

  void shape(const py::array& a, const char* name, const std::vector<std::int64_t>& expected,
             const char* dims) const {
    if (!same_shape(a, expected.data(), expected.size())) {
      value_error(std::string("argument '") + name + "' must have shape " + dims + " = " +
                  shape_str(expected) + ", got " + shape_str(shape_of(a)));
    }
  }
  // The same for a braced list: no vector is built unless the shape is wrong (a kernel call checks
  // a dozen shapes; their allocations were a visible part of a small layer's call).
  void shape(const py::array& a, const char* name, std::initializer_list<std::int64_t> expected,
             const char* dims) const {
    if (!same_shape(a, expected.begin(), expected.size())) shape(a, name, std::vector<std::int64_t>(expected), dims);
  }
  static bool same_shape(const py::array& a, const std::int64_t* expected, std::size_t ndim) {
    if (static_cast<std::size_t>(a.ndim()) != ndim) return false;
    for (std::size_t d = 0; d < ndim; ++d) {
      if (a.shape(static_cast<py::ssize_t>(d)) != expected[d]) return false;
    }
    return true;
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

  // Every output against every input and every other output (null and empty arrays are skipped).
  void no_overlaps(const std::vector<std::pair<const py::array*, const char*>>& outputs,
                   const std::vector<std::pair<const py::array*, const char*>>& inputs) const {
    for (std::size_t p = 0; p < outputs.size(); ++p) {
      if (!outputs[p].first->ptr() || outputs[p].first->size() == 0) continue;
      for (const auto& [in, in_name] : inputs) {
        if (in->ptr() && in->size() > 0) no_overlap(*outputs[p].first, outputs[p].second, *in, in_name);
      }
      for (std::size_t q = p + 1; q < outputs.size(); ++q) {
        if (outputs[q].first->ptr() && outputs[q].first->size() > 0) {
          no_overlap(*outputs[p].first, outputs[p].second, *outputs[q].first, outputs[q].second);
        }
      }
    }
  }

  // The byte range [begin, end) of an argument and whether the call writes it (any_overlap).
  struct Span {
    const char* begin;
    const char* end;
    bool written;
  };
  static Span span(const py::array& a, bool written) {
    const char* b = static_cast<const char*>(a.data());
    return {b, b + a.nbytes(), written};
  }
  // Whether any two non-empty spans overlap where at least one is written: one sort and one sweep,
  // O(n log n) instead of no_overlap over every pair. It only says whether a conflict exists; the
  // caller then runs its pairwise no_overlap checks, which raise with the names (the error path).
  static bool any_overlap(std::vector<Span>& spans) {
    spans.erase(std::remove_if(spans.begin(), spans.end(), [](const Span& x) { return x.begin == x.end; }),
                spans.end());
    std::sort(spans.begin(), spans.end(), [](const Span& x, const Span& y) { return x.begin < y.begin; });
    const char* end_any = nullptr;      // the furthest end of the spans before this one
    const char* end_written = nullptr;  // ... of the written ones
    for (const Span& x : spans) {
      // A span overlaps an earlier one (begin <= x.begin) exactly when that one ends after x.begin.
      if (end_written && x.begin < end_written) return true;
      if (x.written && end_any && x.begin < end_any) return true;
      if (!end_any || x.end > end_any) end_any = x.end;
      if (x.written && (!end_written || x.end > end_written)) end_written = x.end;
    }
    return false;
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
      type_error(std::string("'") + name + "' must be an int, got " + type_name(obj));
    }
    if (obj < py::int_(0) || obj > py::int_(limit)) {
      value_error(std::string("'") + name + "' must be in [0, " + std::to_string(limit) + "], got " +
                  std::string(py::str(obj)));
    }
    return PyLong_AsUnsignedLongLong(obj.ptr());
  }

  // An array of any shape written in place (OutArray).
  OutArray float_output(const py::handle& obj) const {
    if (!py::isinstance<py::array>(obj)) type_error("array must be a numpy.ndarray, got " + type_name(obj));
    auto array = py::reinterpret_borrow<py::array>(obj);
    const std::optional<FloatType> t = float_type_of(array);
    if (!t) type_error("array must have dtype float32 or float64, got " + std::string(py::str(array.dtype())));
    if (!(array.flags() & py::array::c_style)) {
      value_error("array must be C-contiguous (it is written in place; pass numpy.ascontiguousarray(a) "
                  "and keep the result)");
    }
    if (!is_aligned(array)) {
      value_error("array is not aligned to its dtype (a view at an odd byte offset); pass an aligned array");
    }
    if (!array.writeable()) value_error("array must be writable, it is read-only");
    return {array, *t, shape_of(array), static_cast<std::int64_t>(array.size())};
  }

  static std::string repr(double v) { return std::string(py::str(py::float_(v))); }
  static std::string type_name(const py::handle& obj) {
    return std::string(py::str(py::type::of(obj).attr("__name__")));
  }

 private:
  const char* fn_;
};

// The activation by name, with its parameter (None: the PyTorch default).
inline std::pair<initlab::Activation, double> activation_arg(const Check& check, const std::string& name,
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
    if (!is_number) check.type_error("'param' must be a float or None, got " + Check::type_name(param));
    value = check.finite(PyFloat_AsDouble(param.ptr()), "param");
    if (PyErr_Occurred()) throw py::error_already_set();
  }
  if (info->id == initlab::Activation::kSoftplus && !(value > 0.0)) {
    check.value_error("softplus 'param' (beta) must be > 0, got " + Check::repr(value));
  }
  return {info->id, value};
}

// ---- native layers (layer.hpp) --------------------------------------------------------------------

// A native layer of either precision, with the arrays it points into (parameters and gradients)
// kept alive. Made by the *_layer bindings, run by LayerSequence and train_batches.
class NativeLayer {
 public:
  template <typename T>
  explicit NativeLayer(std::shared_ptr<initlab::Layer<T>> layer, std::vector<py::object> arrays = {})
      : t_(kFloatTypeOf<T>), layer_(std::move(layer)), arrays_(std::move(arrays)) {}

  FloatType dtype() const { return t_; }
  // The layer as its own type; T must be the layer's element type.
  template <typename T>
  initlab::Layer<T>* get() const {
    return std::get<std::shared_ptr<initlab::Layer<T>>>(layer_).get();
  }

  // f(layer) with the layer as its own type (deduced return types must be defined before use).
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit([&f](const auto& layer) -> decltype(auto) { return f(*layer); }, layer_);
  }

  std::string type() const { return visit([](const auto& layer) { return std::string(layer.type()); }); }
  std::int64_t in_size() const { return visit([](const auto& layer) { return layer.in_size(); }); }
  std::int64_t out_size() const { return visit([](const auto& layer) { return layer.out_size(); }); }
  std::vector<std::int64_t> cache_sizes() const {
    return visit([](const auto& layer) { return layer.cache_sizes(); });
  }
  bool out_may_alias_cache(std::size_t k) const {
    return visit([k](const auto& layer) { return layer.out_may_alias_cache(k); });
  }

 private:
  FloatType t_;
  std::variant<std::shared_ptr<initlab::Layer<float>>, std::shared_ptr<initlab::Layer<double>>> layer_;
  std::vector<py::object> arrays_;
};

// A NativeLayer owning a new core layer L<T>(args...), keeping `arrays` (what it points into) alive.
template <template <typename> class L, typename T, class... Args>
std::shared_ptr<NativeLayer> make_native_layer(std::vector<py::object> arrays, Args&&... args) {
  std::shared_ptr<initlab::Layer<T>> layer = std::make_shared<L<T>>(std::forward<Args>(args)...);
  return std::make_shared<NativeLayer>(std::move(layer), std::move(arrays));
}

}  // namespace INITLAB_ISA
}  // namespace initlab_python
