// bindings_conv.cpp: convolution and pooling (conv.hpp) and their native layers (conv_layer.hpp).
// Geometry arguments arrive normalized by the Python layers: stride and dilation as (h, w) pairs,
// padding as (top, bottom, left, right), pool windows as pairs. Shapes are validated here so the
// kernels never read or write outside an array.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings_common.hpp"
#include "initlab/conv.hpp"
#include "initlab/conv_layer.hpp"

namespace initlab_python {
inline namespace INITLAB_ISA {
namespace {

// Bounds that keep every index product far from int64 overflow.
constexpr std::int64_t kMaxGeometry = std::int64_t{1} << 30;

std::vector<std::int64_t> int_tuple(const Check& check, const py::object& obj, const char* name,
                                    std::size_t size, std::int64_t low) {
  const std::string what = size == 2 ? "a pair of ints" : "a tuple of " + std::to_string(size) + " ints";
  if (!py::isinstance<py::tuple>(obj) && !py::isinstance<py::list>(obj)) {
    check.type_error(std::string("'") + name + "' must be " + what + ", got " + Check::type_name(obj));
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
  // Every extent the kernels compute must fit int64 (shapes arrive as plain integers in
  // conv2d_output_shape): the arrays' element counts, the padded input, the dilated kernel's span,
  // the output Z and the lowered columns P*K.
  auto too_large = [&](const char* what) {
    check.value_error("'X' " + shape_str(x_shape) + " and 'W' " + shape_str(w_shape) + " with stride " +
                      std::string(py::repr(stride)) + ", dilation " + std::string(py::repr(dilation)) +
                      " and padding " + std::string(py::repr(padding)) + ": " + what +
                      " would have 2^63 or more elements");
  };
  auto product = [&](std::initializer_list<std::int64_t> factors, const char* what) {
    std::int64_t out = 1;
    for (const std::int64_t f : factors) {
      if (__builtin_mul_overflow(out, f, &out)) too_large(what);
    }
    return out;
  };
  product({g.n, g.h, g.w, g.c}, "X");
  product({g.kh, g.kw, g.c, g.o}, "W");
  std::int64_t padded_h = 0, padded_w = 0, span_h = 0, span_w = 0;
  if (__builtin_add_overflow(g.h, g.pad_top + g.pad_bottom, &padded_h) ||
      __builtin_add_overflow(g.w, g.pad_left + g.pad_right, &padded_w)) {
    too_large("the padded input");
  }
  if (__builtin_mul_overflow(g.dilation_h, g.kh - 1, &span_h) || __builtin_mul_overflow(g.dilation_w, g.kw - 1, &span_w)) {
    too_large("the dilated kernel");
  }
  span_h += 1;
  span_w += 1;
  if (span_h > padded_h || span_w > padded_w) {
    check.value_error("the kernel " + shape_str({g.kh, g.kw}) + " with dilation " +
                      shape_str({g.dilation_h, g.dilation_w}) + " spans " + shape_str({span_h, span_w}) +
                      " pixels, more than the padded input " +
                      shape_str({g.h + g.pad_top + g.pad_bottom, g.w + g.pad_left + g.pad_right}) +
                      " ('X' " + shape_str(x_shape) + ", padding " + std::string(py::repr(padding)) + ")");
  }
  product({g.n, g.out_h(), g.out_w(), g.o}, "the output Z");
  product({g.n, g.out_h(), g.out_w(), g.kh, g.kw, g.c}, "the lowered columns (conv2d_workspace_size)");
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
    return absent_array();
  }
  py::array ws = check.output(obj, "workspace", 1);
  check.same_type(ws, "workspace", t, "X");
  if (ws.size() < need) {
    check.value_error("'workspace' holds " + std::to_string(ws.size()) + " elements, needs at least " +
                      std::to_string(need) + " (conv2d_workspace_size)");
  }
  return ws;
}

// The workspace's data, null when none is needed (absent or empty).
template <typename T>
T* workspace_ptr(py::array& ws) {
  return ws && ws.size() ? out_ptr<T>(ws) : nullptr;
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
  py::array ws = kReference ? absent_array() : conv_workspace(check, ws_obj, g, t);
  std::vector<std::pair<const py::array*, const char*>> outputs{{&z, "Z"}, {&ws, "workspace"}};
  if (a.data() == z.data()) {
    if (act != initlab::Activation::kLinear) {
      check.value_error("'A' may be the same array as 'Z' only for activation 'linear' (backward needs Z), "
                        "got '" + activation + "'");
    }
  } else {
    outputs.emplace_back(&a, "A");
  }
  check.no_overlaps(outputs, {{&x, "X"}, {&w, "W"}, {&b, "b"}});
  if (a.data() == z.data()) check.no_overlaps({{&ws, "workspace"}}, {{&a, "A"}});
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (kReference) {
      initlab::conv2d_forward_reference<T>(g, in_ptr<T>(x), in_ptr<T>(w), in_ptr<T>(b), out_ptr<T>(z), out_ptr<T>(a),
                                           act, static_cast<T>(value));
    } else {
      initlab::conv2d_forward<T>(g, in_ptr<T>(x), in_ptr<T>(w), in_ptr<T>(b), out_ptr<T>(z), out_ptr<T>(a), act,
                                 static_cast<T>(value), workspace_ptr<T>(ws));
    }
  });
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
  py::array dx = has_dx ? check.output(dx_obj, "dX", 4) : absent_array();
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
  py::array cols = has_cols ? check.array(cols_obj, "columns", 2) : absent_array();
  if (has_cols) {
    check.same_type(cols, "columns", t, "X");
    check.shape(cols, "columns", {g.positions(), g.taps()}, "(N*OH*OW, KH*KW*C)");
  }
  py::array ws = (kReference || (has_cols && !has_dx)) ? absent_array() : conv_workspace(check, ws_obj, g, t);
  check.no_overlaps({{&da, "dA"}, {&dw, "dW"}, {&db, "db"}, {&dx, "dX"}, {&ws, "workspace"}},
              {{&x, "X"}, {&w, "W"}, {&z, "Z"}, {&a, "A"}, {&cols, "columns"}});
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    T* dx_ptr = opt_ptr<T>(dx);
    if (has_cols) {
      initlab::conv2d_backward_lowered<T>(g, out_ptr<T>(da), in_ptr<T>(cols), in_ptr<T>(w), in_ptr<T>(z),
                                          in_ptr<T>(a), act, static_cast<T>(value), out_ptr<T>(dw), out_ptr<T>(db),
                                          dx_ptr, has_dx ? workspace_ptr<T>(ws) : nullptr);
    } else if constexpr (kReference) {
      initlab::conv2d_backward_reference<T>(g, out_ptr<T>(da), in_ptr<T>(x), in_ptr<T>(w), in_ptr<T>(z),
                                            in_ptr<T>(a), act, static_cast<T>(value), out_ptr<T>(dw), out_ptr<T>(db),
                                            dx_ptr);
    } else {
      initlab::conv2d_backward<T>(g, out_ptr<T>(da), in_ptr<T>(x), in_ptr<T>(w), in_ptr<T>(z), in_ptr<T>(a), act,
                                  static_cast<T>(value), out_ptr<T>(dw), out_ptr<T>(db), dx_ptr, workspace_ptr<T>(ws));
    }
  });
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
  check.no_overlaps({{&y, "Y"}, {&idx, "argmax"}}, {{&x, "X"}});
  auto* idx_ptr = static_cast<std::int64_t*>(idx.mutable_data());
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::max_pool2d_forward<T>(g, in_ptr<T>(x), out_ptr<T>(y), idx_ptr);
  });
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
  check.no_overlaps({{&dx, "dX"}}, {{&dy, "dY"}, {&idx, "argmax"}});
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
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    if (kReference) {
      initlab::max_pool2d_backward_reference<T>(g, in_ptr<T>(dy), idx_ptr, out_ptr<T>(dx));
    } else {
      initlab::max_pool2d_backward<T>(g, in_ptr<T>(dy), idx_ptr, out_ptr<T>(dx));
    }
  });
}

void avg_pool2d_forward_binding(const py::object& x_obj, const py::object& y_obj, const py::object& pool,
                                const py::object& stride) {
  const Check check("avg_pool2d_forward");
  py::array x = check.array(x_obj, "X", 4), y = check.output(y_obj, "Y", 4);
  const FloatType t = check.float_type(x, "X");
  check.same_type(y, "Y", t, "X");
  const initlab::Pool2dGeometry g = pool_geometry(check, x, "X", pool, stride);
  check.shape(y, "Y", pool_out_shape(g), "(N, OH, OW, C)");
  check.no_overlaps({{&y, "Y"}}, {{&x, "X"}});
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::avg_pool2d_forward<T>(g, in_ptr<T>(x), out_ptr<T>(y));
  });
}

void avg_pool2d_backward_binding(const py::object& dy_obj, const py::object& dx_obj, const py::object& pool,
                                 const py::object& stride) {
  const Check check("avg_pool2d_backward");
  py::array dy = check.array(dy_obj, "dY", 4), dx = check.output(dx_obj, "dX", 4);
  const FloatType t = check.float_type(dy, "dY");
  check.same_type(dx, "dX", t, "dY");
  const initlab::Pool2dGeometry g = pool_geometry(check, dx, "dX", pool, stride);
  check.shape(dy, "dY", pool_out_shape(g), "(N, OH, OW, C)");
  check.no_overlaps({{&dx, "dX"}}, {{&dy, "dY"}});
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::avg_pool2d_backward<T>(g, in_ptr<T>(dy), out_ptr<T>(dx));
  });
}

void global_avg_pool2d_forward_binding(const py::object& x_obj, const py::object& y_obj) {
  const Check check("global_avg_pool2d_forward");
  py::array x = check.array(x_obj, "X", 4), y = check.output(y_obj, "Y", 2);
  const FloatType t = check.float_type(x, "X");
  check.same_type(y, "Y", t, "X");
  check.nonempty(x, "X");
  const std::int64_t n = x.shape(0), hw = x.shape(1) * x.shape(2), c = x.shape(3);
  check.shape(y, "Y", {n, c}, "(N, C)");
  check.no_overlaps({{&y, "Y"}}, {{&x, "X"}});
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::global_avg_pool2d_forward<T>(n, hw, c, in_ptr<T>(x), out_ptr<T>(y));
  });
}

void global_avg_pool2d_backward_binding(const py::object& dy_obj, const py::object& dx_obj) {
  const Check check("global_avg_pool2d_backward");
  py::array dy = check.array(dy_obj, "dY", 2), dx = check.output(dx_obj, "dX", 4);
  const FloatType t = check.float_type(dy, "dY");
  check.same_type(dx, "dX", t, "dY");
  check.nonempty(dx, "dX");
  const std::int64_t n = dx.shape(0), hw = dx.shape(1) * dx.shape(2), c = dx.shape(3);
  check.shape(dy, "dY", {n, c}, "(N, C)");
  check.no_overlaps({{&dx, "dX"}}, {{&dy, "dY"}});
  py::gil_scoped_release release;
  with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    initlab::global_avg_pool2d_backward<T>(n, hw, c, in_ptr<T>(dy), out_ptr<T>(dx));
  });
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
  std::int64_t size = 0;  // the layer's in_size H*W*C (and every product of fewer entries) fits int64
  if (__builtin_mul_overflow(shape[0], shape[1], &size) || __builtin_mul_overflow(size, shape[2], &size)) {
    check.value_error("'input_shape' " + shape_str(shape) + " has 2^63 or more elements per sample");
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
  check.no_overlaps({{&dw, "dW"}, {&db, "db"}}, {{&w, "W"}, {&b, "b"}});
  check.in_unit_interval(dropout, "dropout");
  const auto stream_v = static_cast<std::uint32_t>(check.uint(stream, "stream", 0xFFFFFFFFu));
  const auto [act, value] = activation_arg(check, activation, param);
  return with_float_type(t, [&](auto tag) {
    using T = decltype(tag);
    return make_native_layer<initlab::Conv2dLayer, T>({w, b, dw, db}, g, in_ptr<T>(w), in_ptr<T>(b), out_ptr<T>(dw),
                                                       out_ptr<T>(db), act, static_cast<T>(value), dropout, stream_v,
                                                       keep_columns);
  });
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
  return with_float_type(native_dtype(check, dtype), [&](auto tag) {
    return make_native_layer<initlab::Pool2dLayer, decltype(tag)>({}, g, kMax);
  });
}

template <bool kFlatten>
std::shared_ptr<NativeLayer> reshape_layer_binding(const std::vector<std::int64_t>& input_shape,
                                                   const std::string& dtype) {
  const Check check(kFlatten ? "flatten_layer" : "global_avg_pool2d_layer");
  std::int64_t pixels = 1, channels = 1;
  if (kFlatten) {
    for (std::int64_t v : input_shape) {
      if (v < 1) check.value_error("'input_shape' entries must be >= 1, got " + shape_str(input_shape));
      if (__builtin_mul_overflow(pixels, v, &pixels)) {
        check.value_error("'input_shape' " + shape_str(input_shape) + " has 2^63 or more elements per sample");
      }
    }
  } else {
    const auto shape = image_shape(check, input_shape);
    pixels = shape[0] * shape[1];
    channels = shape[2];
  }
  const auto kind = kFlatten ? initlab::ReshapeKind::kFlatten : initlab::ReshapeKind::kGlobalAvgPool2d;
  return with_float_type(native_dtype(check, dtype), [&](auto tag) {
    return make_native_layer<initlab::ReshapeLayer, decltype(tag)>({}, kind, pixels, channels);
  });
}

}  // namespace

void bind_conv(py::module_& m) {
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
