// bindings_init.cpp: random numbers (philox.hpp, random.hpp) and initializers (init.hpp). An array
// to fill is checked by Check::float_output; an initializer is planned (validated) before anything is
// written.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "bindings_common.hpp"
#include "initlab/init.hpp"
#include "initlab/philox.hpp"
#include "initlab/random.hpp"

namespace initlab_python {
inline namespace INITLAB_ISA {
namespace {

initlab::Layout parse_layout(const std::string& layout) {
  if (layout == "in_out") return initlab::Layout::kInOut;
  if (layout == "out_in") return initlab::Layout::kOutIn;
  throw py::value_error("layout must be 'in_out' or 'out_in', got '" + layout + "'");
}

// Calls fill(float*) or fill(double*) on out's data with the GIL released.
template <class Fill>
void fill_out(OutArray& out, Fill&& fill) {
  with_float_type(out.t, [&](auto tag) {
    using T = decltype(tag);
    T* data = out_ptr<T>(out.array);
    py::gil_scoped_release release;
    fill(data);
  });
}

// ---- random (philox.hpp, random.hpp) ------------------------------------------------------------

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
    Check("philox4x32").value_error("rounds must be in [1, 16], got " + std::to_string(rounds));
  }
  return table[rounds - 1](counter, key);
}

py::array_t<std::uint32_t> random_words(std::uint64_t seed, std::uint64_t stream,
                                        std::uint64_t first_word, std::int64_t n_words) {
  if (n_words < 0) Check("words").value_error("n must be >= 0, got " + std::to_string(n_words));
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
  const Check check(kind.c_str());
  OutArray out = check.float_output(obj);
  const std::size_t needed = kind == "truncated_normal" ? 4 : 2;
  if (kind != "uniform" && kind != "normal" && kind != "truncated_normal") {
    throw py::value_error("kind must be 'uniform', 'normal' or 'truncated_normal', got '" + kind + "'");
  }
  if (params.size() != needed) check.value_error("wrong number of parameters");
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

// ---- initializers (init.hpp) --------------------------------------------------------------------

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

// Refuses values the element type T cannot hold (variance_scaling(scale=1e308) in float32 would fill
// inf) before anything is written. Half the largest finite value leaves room for mean + std*z's
// rounding.
template <typename T>
void check_representable(const Check& check, const initlab::InitPlan& plan) {
  constexpr bool kSingle = std::is_same_v<T, float>;
  const double limit = static_cast<double>(std::numeric_limits<T>::max()) / 2;
  const double largest = initlab::plan_largest_value(plan);
  if (!(largest <= limit)) {
    char text[160];
    std::snprintf(text, sizeof text, "the parameters give values up to %.6g (plan %s), beyond what %s holds (%.3g)",
                  largest, fill_kind_name(plan.kind), kDtypeName<T>, limit);
    check.value_error(std::string(text) + "; use smaller parameters or larger fans" + (kSingle ? " or float64" : ""));
  }
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
  with_float_type(out.t, [&](auto tag) { check_representable<decltype(tag)>(check, plan); });
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
    if (d < 0) Check("fans").value_error("shape entries must be >= 0");
  }
  const initlab::Fans f = initlab::compute_fans(shape, parse_layout(layout));
  return {f.fan_in, f.fan_out};
}

}  // namespace

void bind_init(py::module_& m) {
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
}

}  // namespace INITLAB_ISA
}  // namespace initlab_python
