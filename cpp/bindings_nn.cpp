// bindings_nn.cpp: the dense network's kernels and their native loop: GEMM (gemm.hpp), activations and
// dense layers (dense.hpp), losses (loss.hpp), optimizers, clipping and dropout (optim.hpp), statistics
// (stats.hpp), native layers in a sequence (layer.hpp) and the batch loop (train.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "bindings_common.hpp"
#include "initlab/dense.hpp"
#include "initlab/gemm.hpp"
#include "initlab/init.hpp"
#include "initlab/layer.hpp"
#include "initlab/loss.hpp"
#include "initlab/optim.hpp"
#include "initlab/stats.hpp"
#include "initlab/train.hpp"

namespace initlab_python {
inline namespace INITLAB_ISA {
namespace {

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
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    auto kernel = kReference ? &initlab::gemm_reference<T> : &initlab::gemm<T>;
    kernel(trans_a, trans_b, m, n, k, static_cast<T>(alpha), in_ptr<T>(a), lda, in_ptr<T>(b), ldb,
           static_cast<T>(beta), out_ptr<T>(c), n, nullptr);
  });
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
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::activation_forward<T>(count, in_ptr<T>(z), out_ptr<T>(a), act, static_cast<T>(value));
  });
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
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::dense_forward<T>(n, i, o, in_ptr<T>(x), in_ptr<T>(w), in_ptr<T>(b), out_ptr<T>(z), out_ptr<T>(a), act,
                              static_cast<T>(value));
  });
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
  py::array dx = has_dx ? check.output(dx_obj, "dX", 2) : absent_array();
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
  check.no_overlaps({{&da, "dA"}, {&dw, "dW"}, {&db, "db"}, {&dx, "dX"}}, {{&x, "X"}, {&w, "W"}, {&z, "Z"}, {&a, "A"}});
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::dense_backward<T>(n, i, o, out_ptr<T>(da), in_ptr<T>(x), in_ptr<T>(w), in_ptr<T>(z), in_ptr<T>(a), act,
                               static_cast<T>(value), out_ptr<T>(dw), out_ptr<T>(db), opt_ptr<T>(dx));
  });
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
  py::array z;
  FloatType t;
  py::array p = absent_array(), dz = absent_array();  // null unless given
};

LossArgs loss_args(const Check& check, const py::object& z_obj, const py::object* p_obj,
                   const py::object& dz_obj) {
  py::array z = check.array(z_obj, "Z", 2);
  LossArgs args{z, check.float_type(z, "Z")};
  check.nonempty(args.z, "Z");
  if (p_obj != nullptr) {
    args.p = check.output(*p_obj, "P", 2);
    check.same_type(args.p, "P", args.t, "Z");
    check.shape(args.p, "P", shape_of(args.z), "Z.shape");
    check.no_overlap(args.p, "P", args.z, "Z");
  }
  if (!dz_obj.is_none()) {
    args.dz = check.output(dz_obj, "dZ", 2);
    check.same_type(args.dz, "dZ", args.t, "Z");
    check.shape(args.dz, "dZ", shape_of(args.z), "Z.shape");
    check.no_overlap(args.dz, "dZ", args.z, "Z");
    if (args.p) check.no_overlap(args.dz, "dZ", args.p, "P");
  }
  return args;
}

// y: float targets of Z's shape and dtype, not overlapping the outputs.
py::array float_targets(const Check& check, const LossArgs& args, const py::object& y_obj) {
  py::array y = check.array(y_obj, "y", 2);
  check.same_type(y, "y", args.t, "Z");
  check.shape(y, "y", shape_of(args.z), "Z.shape");
  if (args.p) check.no_overlap(args.p, "P", y, "y");
  if (args.dz) check.no_overlap(args.dz, "dZ", y, "y");
  return y;
}

// The first of the `count` values of `a` (of dtype t) for which ok(value) is false: its flat index and
// its value; index -1 when every value passes.
template <class Ok>
std::pair<std::int64_t, double> first_failing(const py::array& a, FloatType t, std::int64_t count, Ok ok) {
  return with_float_type(t, [&](auto tag) -> std::pair<std::int64_t, double> {
    const auto* values = in_ptr<decltype(tag)>(a);
    for (std::int64_t e = 0; e < count; ++e) {
      if (!ok(values[e])) return {e, static_cast<double>(values[e])};
    }
    return {-1, 0.0};
  });
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
  if (args.p) check.no_overlap(args.p, "P", w, "weights");
  if (args.dz) check.no_overlap(args.dz, "dZ", w, "weights");
  const auto [bad, v] = first_failing(w, args.t, w.shape(0), [](auto value) {
    return value >= 0 && std::isfinite(static_cast<double>(value));
  });
  if (bad >= 0) {
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
    if (args.dz) check.no_overlap(args.dz, "dZ", y, "y");
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
    const std::int64_t bad =
        with_float_type(args.t, [&](auto tag) { return first_bad_row(in_ptr<decltype(tag)>(y)); });
    if (bad >= 0) {
      check.value_error("float targets 'y' must be distributions (entries in [0, 1], each row summing to 1); "
                        "row " + std::to_string(bad) + " is not");
    }
  }
  const py::object w = row_weights(check, args, w_obj);
  py::gil_scoped_release release;
  return with_float_type(args.t, [&](auto tag) {
    using T = decltype(tag);
    return initlab::softmax_cross_entropy<T>(n, k, in_ptr<T>(args.z), integer_labels ? in_ptr<std::int64_t>(y) : nullptr,
                                             integer_labels ? nullptr : in_ptr<T>(y), out_ptr<T>(args.p),
                                             opt_ptr<T>(args.dz), weights_ptr<T>(w));
  });
}

double sigmoid_binary_cross_entropy_binding(const py::object& z_obj, const py::object& y_obj,
                                            const py::object& p_obj, const py::object& dz_obj,
                                            const py::object& w_obj) {
  const Check check("sigmoid_binary_cross_entropy");
  LossArgs args = loss_args(check, z_obj, &p_obj, dz_obj);
  py::array y = float_targets(check, args, y_obj);
  const std::int64_t n = args.z.shape(0), k = args.z.shape(1);
  // Labels must be probabilities: a NaN or a value outside [0, 1] is a caller's error.
  const auto [bad, v] = first_failing(y, args.t, n * k, [](auto value) { return value >= 0 && value <= 1; });
  if (bad >= 0) {
    check.value_error("labels 'y' must be in [0, 1], got " + Check::repr(v) + " at flat index " +
                      std::to_string(bad));
  }
  const py::object w = row_weights(check, args, w_obj);
  py::gil_scoped_release release;
  return with_float_type(args.t, [&](auto tag) {
    using T = decltype(tag);
    return initlab::sigmoid_binary_cross_entropy<T>(n, k, in_ptr<T>(args.z), in_ptr<T>(y), out_ptr<T>(args.p),
                                                    opt_ptr<T>(args.dz), weights_ptr<T>(w));
  });
}

double mean_squared_error_binding(const py::object& z_obj, const py::object& y_obj, const py::object& dz_obj,
                                  const py::object& w_obj) {
  const Check check("mean_squared_error");
  LossArgs args = loss_args(check, z_obj, nullptr, dz_obj);
  py::array y = float_targets(check, args, y_obj);
  const std::int64_t n = args.z.shape(0), k = args.z.shape(1);
  const py::object w = row_weights(check, args, w_obj);
  py::gil_scoped_release release;
  return with_float_type(args.t, [&](auto tag) {
    using T = decltype(tag);
    return initlab::mean_squared_error<T>(n, k, in_ptr<T>(args.z), in_ptr<T>(y),
                                          opt_ptr<T>(args.dz), weights_ptr<T>(w));
  });
}

double weight_sum_binding(const py::object& w_obj) {
  const Check check("weight_sum");
  py::array w = check.array(w_obj, "w", 1);
  const FloatType t = check.float_type(w, "w");
  py::gil_scoped_release release;
  return with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    return initlab::weight_sum<T>(w.shape(0), in_ptr<T>(w));
  });
}

// ---- optimizers, clipping, dropout ------------------------------------------------------------

// A flat parameter group: `first` (any ndim, C-contiguous, float) and the arrays that must match it.
struct Group {
  std::vector<py::array> arrays;  // in the order given; None gives a null array (absent_array)
  FloatType t;                    // the first array's (never None), as its count
  std::int64_t count;
};

// names[0] is the reference array; `writeable[j]` marks outputs; None is allowed where `optional[j]`.
Group group_args(const Check& check, std::initializer_list<const py::object*> objs,
                 std::initializer_list<const char*> names, std::initializer_list<bool> writeable,
                 std::initializer_list<bool> optional) {
  Group g{};
  const auto* obj = objs.begin();
  const auto* name = names.begin();
  const auto* out = writeable.begin();
  const auto* opt = optional.begin();
  std::vector<const char*> kept_names;
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t first = kNone;  // index of the first array given
  for (; obj != objs.end(); ++obj, ++name, ++out, ++opt) {
    if ((*obj)->is_none()) {
      if (!*opt) check.type_error(std::string("argument '") + *name + "' must be a numpy.ndarray, got None");
      g.arrays.push_back(absent_array());
      kept_names.push_back(*name);
      continue;
    }
    if (!py::isinstance<py::array>(**obj)) {
      check.type_error(std::string("argument '") + *name + "' must be a numpy.ndarray, got " +
                       Check::type_name(**obj));
    }
    const int ndim = static_cast<int>(py::reinterpret_borrow<py::array>(**obj).ndim());
    py::array a = *out ? check.output(**obj, *name, ndim) : check.array(**obj, *name, ndim);
    if (first == kNone) {  // the reference array: names[0] unless that one was None
      first = g.arrays.size();
      g.t = check.float_type(a, *name);
      g.count = a.size();
    } else {
      check.same_type(a, *name, g.t, kept_names[first]);
      const py::array& ref = g.arrays[first];
      if (!Check::same_shape(a, ref.shape(), static_cast<std::size_t>(ref.ndim()))) {
        check.shape(a, *name, shape_of(ref), (std::string(kept_names[first]) + ".shape").c_str());
      }
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
  with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    initlab::sgd_step<T>(g.count, out_ptr<T>(g.arrays[0]), in_ptr<T>(g.arrays[1]), opt_ptr<T>(g.arrays[2]), lr,
                         momentum, dampening, weight_decay, nesterov, first_step);
  });
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
  with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    initlab::adam_step<T>(g.count, out_ptr<T>(g.arrays[0]), in_ptr<T>(g.arrays[1]), out_ptr<T>(g.arrays[2]),
                          out_ptr<T>(g.arrays[3]), lr, beta1, beta2, eps, weight_decay, step, decoupled);
  });
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
  with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    initlab::rmsprop_step<T>(g.count, out_ptr<T>(g.arrays[0]), in_ptr<T>(g.arrays[1]), out_ptr<T>(g.arrays[2]),
                             opt_ptr<T>(g.arrays[3]), lr, alpha, eps, weight_decay, momentum);
  });
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
  FloatType t = FloatType::kFloat32;  // params[0]'s; float32 for an empty list
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
      check.type_error("'params', 'grads' and 'states' must be lists, got " + Check::type_name(*obj));
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
  names.reserve(4 * n);
  groups.reserve(n);
  FloatType& t = args.t;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string at = "[" + std::to_string(i) + "]";
    const std::string names_i[4] = {"params" + at, "grads" + at, "states" + at + "[0]", "states" + at + "[1]"};
    py::object state_i = states[i];
    if (!py::isinstance<py::tuple>(state_i) && !py::isinstance<py::list>(state_i)) {
      check.type_error("'" + ("states" + at) + "' must be a tuple of state arrays, got " +
                       Check::type_name(state_i));
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
  // No output may share memory with an array of another tensor either: one sweep over all of them
  // (every tensor's own arrays passed group_args' checks), and the pairwise checks, which name the
  // two arguments, only when it finds a conflict.
  std::vector<Check::Span> spans;
  spans.reserve(4 * n);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t a = 0; a < 4; ++a) {
      if (groups[i].arrays[a]) spans.push_back(Check::span(groups[i].arrays[a], a != 1 || c.has_clip_value || c.has_clip_norm));
    }
  }
  const bool conflict = Check::any_overlap(spans);
  for (std::size_t i = 0; conflict && i < n; ++i) {
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

// The core's view of one validated tensor (param, grad, state0, state1; an absent state is null).
template <typename T>
initlab::ParamTensor<T> param_tensor(Group& g) {
  initlab::ParamTensor<T> tensor;
  tensor.count = g.count;
  tensor.param = out_ptr<T>(g.arrays[0]);
  tensor.grad = static_cast<T*>(const_cast<void*>(g.arrays[1].data()));
  tensor.state0 = opt_ptr<T>(g.arrays[2]);
  tensor.state1 = opt_ptr<T>(g.arrays[3]);
  return tensor;
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
  const std::size_t n = args.n;
  std::vector<std::uint8_t> nonfinite(n, 0);
  const initlab::OptimizerStepResult result = with_float_type(args.t, [&](auto tag) {
    using T = decltype(tag);
    std::vector<initlab::ParamTensor<T>> list;
    for (Group& g : args.groups) list.push_back(param_tensor<T>(g));
    py::gil_scoped_release release;
    return initlab::optimizer_step<T>(static_cast<std::int64_t>(n), list.data(), c, nonfinite.data());
  });
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

void clip_by_value_binding(const py::object& grad, double clip_value) {
  const Check check("clip_by_value");
  check.at_least(clip_value, 0.0, "clip_value");
  Group g = group_args(check, {&grad}, {"grad"}, {true}, {false});
  py::gil_scoped_release release;
  with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    initlab::clip_by_value<T>(g.count, out_ptr<T>(g.arrays[0]), static_cast<T>(clip_value));
  });
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
  with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    initlab::dropout_forward<T>(g.count, out_ptr<T>(g.arrays[0]), out_ptr<T>(g.arrays[1]), p, seed_v, stream_v,
                                step_v);
  });
}

void dropout_backward_binding(const py::object& da, const py::object& mask) {
  const Check check("dropout_backward");
  Group g = group_args(check, {&da, &mask}, {"dA", "mask"}, {true, false}, {false, false});
  py::gil_scoped_release release;
  with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    initlab::dropout_backward<T>(g.count, out_ptr<T>(g.arrays[0]), in_ptr<T>(g.arrays[1]));
  });
}

// ---- statistics -------------------------------------------------------------------------------

double sum_of_squares_binding(const py::object& x) {
  const Check check("sum_of_squares");
  Group g = group_args(check, {&x}, {"x"}, {false}, {false});
  py::gil_scoped_release release;
  return with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    return initlab::sum_of_squares<T>(g.count, in_ptr<T>(g.arrays[0]));
  });
}

void scale_binding(const py::object& x, double factor) {
  const Check check("scale");
  check.finite(factor, "factor");
  Group g = group_args(check, {&x}, {"x"}, {true}, {false});
  py::gil_scoped_release release;
  with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    initlab::scale<T>(g.count, out_ptr<T>(g.arrays[0]), static_cast<T>(factor));
  });
}

double diff_norm_binding(const py::object& a, const py::object& b) {
  const Check check("diff_norm");
  Group g = group_args(check, {&a, &b}, {"a", "b"}, {false, false}, {false, false});
  py::gil_scoped_release release;
  return with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    return initlab::diff_norm<T>(g.count, in_ptr<T>(g.arrays[0]), in_ptr<T>(g.arrays[1]));
  });
}

bool all_finite_binding(const py::object& x) {
  const Check check("all_finite");
  Group g = group_args(check, {&x}, {"x"}, {false}, {false});
  py::gil_scoped_release release;
  return with_float_type(g.t, [&](auto tag) {
    using T = decltype(tag);
    return initlab::all_finite<T>(g.count, in_ptr<T>(g.arrays[0]));
  });
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
  const initlab::LayerStats s = with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    py::gil_scoped_release release;
    return initlab::layer_stats<T>(n, o, in_ptr<T>(z), in_ptr<T>(a), act);
  });
  py::dict d;
  d["pre_mean"] = s.pre_mean;
  d["pre_std"] = s.pre_std;
  d["act_mean"] = s.act_mean;
  d["act_std"] = s.act_std;
  d["saturated"] = s.saturated;
  d["dead"] = s.dead;
  return d;
}

// ---- layers (layer.hpp) -----------------------------------------------------------------------
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
  return with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    return make_native_layer<initlab::DenseLayer, T>({w, b, dw, db}, i, o, in_ptr<T>(w), in_ptr<T>(b), out_ptr<T>(dw),
                                                      out_ptr<T>(db), act, static_cast<T>(value), dropout, stream_v);
  });
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
    t_ = layers_[0]->dtype();
    with_float_type(t_, [&](auto tag) { core_.emplace<Core<decltype(tag)>>(); });
    std::vector<std::pair<py::array, std::string>> all;
    for (std::size_t k = 0; k < layers_.size(); ++k) {
      const NativeLayer& layer = *layers_[k];
      const std::string where = "layer " + std::to_string(k) + " (" + layer.type() + ")";
      if (layer.dtype() != t_) check.type_error(where + " has another dtype than layer 0; one dtype per sequence");
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
      with_float_type(t_, [&](auto tag) {
        using T = decltype(tag);
        core<T>().layers.push_back(layer.get<T>());
        core<T>().buffers.push_back(make_buffers<T>(out, dout, cache_arrays));
      });
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
    with_float_type(t_, [&](auto tag) {
      using T = decltype(tag);
      initlab::sequence_forward<T>(rows_, in_ptr<T>(x), core<T>().layers, core<T>().buffers, pass);
    });
  }

  // From the last layer's dout; X as given to forward; dX (rows, in_size of layer 0) or None.
  void backward(const py::object& x_obj, const py::object& dx_obj, bool training, const py::object& seed,
                const py::object& step) {
    const Check check("LayerSequence.backward");
    py::array x = input(check, x_obj, "X", layers_.front()->in_size(), false);
    const bool has_dx = !dx_obj.is_none();
    py::array dx = has_dx ? input(check, dx_obj, "dX", layers_.front()->in_size(), true) : absent_array();
    if (has_dx) check.no_overlap(dx, "dX", x, "X");
    const initlab::PassContext pass = context(check, training, seed, step);
    py::gil_scoped_release release;
    with_float_type(t_, [&](auto tag) {
      using T = decltype(tag);
      initlab::sequence_backward<T>(rows_, in_ptr<T>(x), core<T>().layers, core<T>().buffers, opt_ptr<T>(dx), pass);
    });
  }

  std::int64_t rows() const { return rows_; }
  FloatType dtype() const { return t_; }
  std::int64_t in_size() const { return layers_.front()->in_size(); }
  std::int64_t out_size() const { return layers_.back()->out_size(); }
  // The layers and their buffers as the core's sequence functions (and the native loop,
  // train_batches) take them; T is the sequence's element type.
  template <typename T>
  struct Core {
    std::vector<initlab::Layer<T>*> layers;
    std::vector<initlab::LayerBuffers<T>> buffers;
  };
  template <typename T>
  Core<T>& core() {
    return std::get<Core<T>>(core_);
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
      check.type_error("'" + name + "' must be a numpy.ndarray, got " + Check::type_name(obj));
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
  FloatType t_;
  std::variant<Core<float>, Core<double>> core_;  // the one of t_
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
  const initlab::TrainLoopResult result = with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
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
    ws.layers = seq.core<T>().layers;
    ws.buffers = &seq.core<T>().buffers;
    std::size_t i = 0;
    for (initlab::Layer<T>* layer : ws.layers) {
      for (const initlab::ParameterView<T>& v : layer->parameters()) {
        if (i >= opt.n || out_ptr<T>(opt.groups[i].arrays[0]) != v.param ||
            static_cast<const void*>(opt.groups[i].arrays[1].data()) != static_cast<const void*>(v.grad) ||
            opt.groups[i].count != v.count) {
          check.value_error("'params' and 'grads' must be the sequence's parameters and gradients, in layer order");
        }
        ws.tensors.push_back(param_tensor<T>(opt.groups[i]));
        ++i;
      }
    }
    if (i != opt.n) check.value_error("'params' must be the sequence's parameters, in layer order");
    py::gil_scoped_release release;
    return initlab::train_batches<T>(d, ws, cfg, state, should_stop);
  });
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
  out["dry_runs_skipped"] = result.dry_runs_skipped;
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

}  // namespace

void bind_nn(py::module_& m) {
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
  m.def("optimizer_step", &optimizer_step_binding, py::arg("params"), py::arg("grads"), py::arg("states"),
        py::kw_only(), py::arg("optimizer"), py::arg("lr"), py::arg("momentum") = 0.0,
        py::arg("dampening") = 0.0, py::arg("nesterov") = false, py::arg("first_step") = false,
        py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("alpha") = 0.99,
        py::arg("weight_decay") = 0.0, py::arg("step") = 1, py::arg("clip_value") = py::none(),
        py::arg("clip_norm") = py::none(), py::arg("guard") = false,
        "one fused step of every parameter: clip_value, clip_norm (global), then the update, bitwise as the "
        "per-tensor kernels in that order; guard=True writes nothing unless every updated parameter is finite; "
        "returns {grad_norm, clipped, written, nonfinite}");
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

}

}  // namespace INITLAB_ISA
}  // namespace initlab_python
