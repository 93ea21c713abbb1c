"""Fuzzing every public function of API.md, and the _core bindings directly, with hypothesis.

The property, for every target: a call either works, and then its result passes sanity checks
(shape, dtype, finiteness where it must be, agreement with a numpy oracle where one is cheap), or it
raises ValueError, TypeError or MemoryError with a non-empty message. Anything else (another
exception type, a crash of the interpreter, a hang, an input array changed by a call that failed)
fails the test. Arrays come in random shapes (0-sized and 1-element included), dtypes (bool, ints,
float16/32/64, complex, object), memory orders, strided/reversed/transposed views, read-only and
misaligned buffers, with NaN/Inf and extreme values; scalars come as huge, negative, NaN or of the
wrong Python type.

Profiles (HYPOTHESIS_PROFILE): "ci" (default) runs 200 examples per target, derandomized so CI is
reproducible; "long" runs 5000 per target with fresh randomness:

    HYPOTHESIS_PROFILE=long PYTHONPATH=python python3 -m pytest -q tests/test_fuzz.py
"""
from __future__ import annotations

import faulthandler
import io
import os
import sys
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import initlab as il
from initlab import _core

sys.path.insert(0, os.path.dirname(__file__))
import reference  # noqa: E402

# ---- profiles -----------------------------------------------------------------------------------
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.function_scoped_fixture]
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True,
                          suppress_health_check=_QUIET, database=None, print_blob=True)
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=_QUIET,
                          print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings.get_profile(PROFILE if PROFILE in ("ci", "long") else "ci")

ALLOWED = (ValueError, TypeError, MemoryError)


@pytest.fixture(autouse=True)
def _no_hang():
    """A hang fails (with every thread's traceback) instead of blocking CI: 20 min per target
    is far above the slowest one under AddressSanitizer."""
    faulthandler.dump_traceback_later(1200 if PROFILE == "ci" else 6 * 3600, exit=True,
                                      file=sys.__stderr__)  # sys.stderr may be pytest's capture
    yield
    faulthandler.cancel_dump_traceback_later()


def attempt(fn, *args, **kwargs):
    """(True, result) or (False, exception) for an allowed exception with a message."""
    try:
        return True, fn(*args, **kwargs)
    except ALLOWED as e:
        assert str(e).strip(), f"{type(e).__name__} raised without a message by {fn!r}"
        return False, e


# ---- strategies -----------------------------------------------------------------------------------
ALL_DTYPES = [np.bool_, np.int8, np.int32, np.int64, np.uint64, np.float16, np.float32, np.float64,
              np.complex64, np.complex128, np.dtype(">f4"), np.dtype(">f8"), object]
FLOAT_DTYPES = [np.float32, np.float64]
LAYOUTS = ["C", "C", "C", "F", "strided", "reversed", "transposed", "readonly", "misaligned"]


def misaligned_copy(arr: np.ndarray) -> np.ndarray:
    """A C-contiguous, writeable copy whose data pointer is 1 byte off the dtype's alignment."""
    buf = np.zeros(arr.nbytes + arr.itemsize + 1, np.uint8)
    out = buf[1:1 + arr.nbytes].view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def relayout(arr: np.ndarray, layout: str) -> np.ndarray:
    if layout == "F":
        return np.asfortranarray(arr)
    if layout == "strided" and arr.ndim:
        return np.repeat(arr, 2, axis=-1)[..., ::2]
    if layout == "reversed" and arr.ndim:
        return arr[::-1]
    if layout == "transposed":
        return arr.T
    if layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
        return arr
    if layout == "misaligned" and arr.dtype != object and arr.itemsize > 1:
        return misaligned_copy(arr)
    return arr


def values_for(dtype, shape, draw):
    dtype = np.dtype(dtype)
    if dtype == object:
        arr = np.empty(shape, dtype=object)
        arr[...] = draw(st.sampled_from([None, 1.5, "x", [1]]))
        return arr
    if dtype.byteorder == ">":
        return draw(hnp.arrays(dtype.newbyteorder("="), shape)).astype(dtype)
    return draw(hnp.arrays(dtype, shape))


@st.composite
def arrays(draw, dtypes=ALL_DTYPES, shape=None, min_dims=0, max_dims=4, max_side=5, layouts=LAYOUTS):
    """Any ndarray: dtype, shape (0-sized included), values (NaN/Inf/extremes), layout."""
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side))
    dtype = draw(st.sampled_from(dtypes))
    return relayout(values_for(dtype, shape, draw), draw(st.sampled_from(layouts)))


@st.composite
def finite_arrays(draw, shape, dtype, scale=10.0):
    """A plain C-contiguous array of moderate finite values (the 'correct argument')."""
    elements = st.floats(-scale, scale, allow_nan=False, width=np.dtype(dtype).itemsize * 8)
    return draw(hnp.arrays(dtype, shape, elements=elements))


JUNK = st.sampled_from([None, "x", b"x", [1, 2], (), {}, object(), 1j, float("nan"), -1, 2**70,
                        np.float32(1.5), True])
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-10, 10),
    st.integers(-2**70, 2**70),
    st.sampled_from([0, 1, -1, 0.5, 1e308, -1e308, 1e-320, 2**63, 2**64, np.float64(2.0), np.int64(3)]),
)
SEEDS = st.one_of(st.integers(0, 2**64 - 1), st.integers(-2**70, 2**70), JUNK, st.just(None))


def snapshot(*objs):
    return [(o, o.copy()) for o in objs if isinstance(o, np.ndarray)]


def assert_untouched(snap):
    for arr, before in snap:
        if arr.dtype == object:  # copy() keeps the same element objects
            same = all(a is b for a, b in zip(arr.flat, before.flat))
        else:
            same = arr.tobytes() == before.tobytes()
        assert same, "a call that raised modified one of its input arrays"


# =====================================================================================================
# il.init
# =====================================================================================================
SCHEME_NAMES = il.init.names()
WORDS = {"mode": ["fan_in", "fan_out", "fan_avg", "fan_geo_avg", "FAN_IN", ""],
         "nonlinearity": ["relu", "tanh", "leaky_relu", "linear", "selu", "nope"],
         "distribution": ["normal", "truncated_normal", "uniform", "untruncated_normal", "x"]}


@st.composite
def scheme_params(draw, name):
    sch = il.init.scheme(name)
    params = {}
    for pname, default in sch.params:
        choice = draw(st.integers(0, 9))
        if choice == 0 and default is not il.init.REQUIRED:
            continue  # keep the default
        if pname in WORDS:
            params[pname] = draw(st.sampled_from(WORDS[pname]) if choice else JUNK)
        elif pname == "sparsity":
            params[pname] = draw(st.floats(0, 1) if choice > 2 else NUMBERS)
        elif pname == "groups":
            params[pname] = draw(st.integers(1, 4) if choice > 2 else NUMBERS)
        elif choice <= 6:
            params[pname] = draw(st.floats(-3, 3))
        elif choice <= 8:
            params[pname] = draw(NUMBERS)
        else:
            params[pname] = draw(JUNK)
    # a fixed order that makes the working calls common: low <= high, a < b, std >= 0
    for lo, hi in (("low", "high"), ("a", "b")):
        if isinstance(params.get(lo), float) and isinstance(params.get(hi), float) and draw(st.booleans()):
            params[lo], params[hi] = sorted((params[lo], params[hi]))
    if draw(st.integers(0, 15)) == 0:
        params["not_a_param"] = 1.0
    return params


@st.composite
def shapes(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        # (no mid-size entries: a shape of 2**28 elements would fill a gigabyte, slowly under ASan)
        entry = st.one_of(st.integers(-2, 6), st.sampled_from([2**63, 2**64, 2**70]))
        return draw(st.one_of(JUNK, st.integers(-3, 5), st.lists(entry, max_size=3)))
    if kind == 1:  # huge: overflow int64 element counts, or need terabytes (never a size that a
        # big CI machine could actually allocate: that would fill gigabytes, slowly)
        huge = draw(st.sampled_from([2**40, 2**62, 2**63 - 1, 2**63, 2**64]))
        rest = draw(st.lists(st.sampled_from([1, 3, 2**32, 2**40, 2**63 - 1]), max_size=3))
        shape = rest + [huge]
        return tuple(draw(st.permutations(shape)))
    return draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5))


def common_kwargs(draw):
    kw = {}
    if draw(st.integers(0, 4)):
        kw["seed"] = draw(SEEDS) if draw(st.integers(0, 4)) == 0 else draw(st.integers(0, 2**64 - 1))
    if draw(st.integers(0, 5)) == 0:
        kw["stream"] = draw(SEEDS)
    if draw(st.integers(0, 3)) == 0:
        kw["layout"] = draw(st.sampled_from(["in_out", "out_in", "OUT_IN", None, 3]))
    for fan in ("fan_in", "fan_out"):
        if draw(st.integers(0, 5)) == 0:
            kw[fan] = draw(st.one_of(st.integers(-2, 100), NUMBERS, JUNK))
    return kw


def check_init_result(out, shape, dtype):
    assert isinstance(out, np.ndarray)
    assert out.shape == tuple(shape) and out.dtype == dtype and out.flags.c_contiguous
    assert np.isfinite(out).all(), "an initializer returned NaN or Inf for finite parameters"


@pytest.mark.parametrize("name", SCHEME_NAMES)
@FUZZ
@given(data=st.data())
def test_init(name, data):
    """Both forms of one scheme per example: NAME(shape, ...) and NAME_(array, ...)."""
    create, fill_ = getattr(il.init, name), getattr(il.init, name + "_")
    shape = data.draw(shapes(), "shape")
    dtype = data.draw(st.sampled_from(["float32", "float64", np.float64, "float16", "int32", None, 3]),
                      "dtype")
    kw = common_kwargs(data.draw)
    params = data.draw(scheme_params(name), "params")
    ok, out = attempt(create, shape, dtype=dtype, **kw, **params)
    if ok:
        dt = np.dtype(dtype)
        shp = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        check_init_result(out, shp, dt)
        if kw.get("seed") is not None:
            # Same call, same bits; the in-place form on a fresh array agrees with the new-array form.
            assert np.array_equal(out, create(shape, dtype=dtype, **kw, **params))
            target = np.full(shp, 7, dtype=dt)
            assert fill_(target, **kw, **params) is target and np.array_equal(out, target)

    if data.draw(st.integers(0, 9)) == 0:
        array = data.draw(JUNK)
    else:
        array = data.draw(arrays(dtypes=ALL_DTYPES + FLOAT_DTYPES * 3, max_dims=5), "array")
    snap = snapshot(array)
    ok, out = attempt(fill_, array, **kw, **params)
    if not ok:
        assert_untouched(snap)
        return
    assert out is array
    assert array.dtype in (np.float32, np.float64) and array.flags.c_contiguous and array.flags.writeable
    assert array.flags.aligned, "a misaligned array was filled"
    check_init_result(array, array.shape, array.dtype)


@FUZZ
@given(shape=shapes(), layout=st.one_of(st.sampled_from(["in_out", "out_in"]), JUNK))
def test_fans(shape, layout):
    ok, out = attempt(il.init.fans, shape, layout)
    if ok:
        fan_in, fan_out = out
        assert isinstance(fan_in, int) and isinstance(fan_out, int) and fan_in >= 0 and fan_out >= 0
        shp = tuple(shape)
        receptive = int(np.prod(shp[:-2] if layout == "in_out" else shp[2:], dtype=object))
        i, o = (shp[-2], shp[-1]) if layout == "in_out" else (shp[1], shp[0])
        if receptive * max(i, o) < 2**53:  # exact in the double arithmetic of the core
            assert (fan_in, fan_out) == (i * receptive, o * receptive)


@FUZZ
@given(nonlinearity=st.one_of(st.sampled_from(["linear", "relu", "tanh", "leaky_relu", "selu", "elu",
                                                "gelu", "softplus", "sigmoid", "conv2d", "RELU"]),
                              JUNK, st.text(max_size=5)),
       param=st.one_of(st.none(), NUMBERS, JUNK))
def test_gain(nonlinearity, param):
    ok, g = attempt(il.init.gain, nonlinearity, param)
    if ok:
        assert isinstance(g, float) and np.isfinite(g) and g > 0


ODD_ACTIVATIONS = [
    lambda z: z, np.tanh, lambda z: z * 0, lambda z: z * np.nan, lambda z: z * np.inf,
    lambda z: 1.0, lambda z: z[:3], lambda z: z.astype(np.complex128), lambda z: z.astype(object),
    lambda z: z.astype(np.float16), lambda z: z > 0, lambda z: z.reshape(-1, 1), lambda z: "x",
    lambda z: [float(v) for v in z], lambda z: 1 / z, lambda z: np.exp(z * 100),
]


@FUZZ
@given(activation=st.one_of(st.sampled_from(ODD_ACTIVATIONS), st.sampled_from(
    ["relu", "linear", "identity", "tanh", "gelu", "silu", "nope"]), JUNK))
def test_estimate_gain(activation):
    with np.errstate(all="ignore"):
        ok, g = attempt(il.init.estimate_gain, activation)
    if ok:
        assert isinstance(g, float) and np.isfinite(g) and g > 0


@FUZZ
@given(name=st.one_of(st.sampled_from(SCHEME_NAMES + [n + "_" for n in SCHEME_NAMES]
                                      + ["glorot_uniform", "kaiming_normal", "eye", "lsuv", "", "_"]),
                      JUNK, st.text(max_size=6)))
def test_get(name):
    ok, fn = attempt(il.init.get, name)
    if ok:
        assert callable(fn)
        if isinstance(name, str):
            assert fn is getattr(il.init, name)


# =====================================================================================================
# il.random
# =====================================================================================================
WORD = st.one_of(st.integers(0, 2**32 - 1), st.integers(-2**40, 2**40), st.just(np.uint32(7)), JUNK)


@FUZZ
@given(counter=st.one_of(st.lists(WORD, min_size=0, max_size=5), st.lists(st.integers(0, 2**32 - 1),
                                                                           min_size=4, max_size=4), JUNK),
       key=st.one_of(st.lists(WORD, min_size=0, max_size=3), st.lists(st.integers(0, 2**32 - 1),
                                                                       min_size=2, max_size=2), JUNK),
       rounds=st.one_of(st.integers(-2, 20), st.just(10), JUNK))
def test_philox4x32(counter, key, rounds):
    ok, out = attempt(il.random.philox4x32, counter, key, rounds)
    if ok:
        assert isinstance(out, tuple) and len(out) == 4
        expected = reference.philox4x32_numpy([[int(c)] for c in counter], [int(k) for k in key],
                                              int(rounds))
        assert out == tuple(int(e[0]) for e in expected)


@FUZZ
@given(n=st.one_of(st.integers(-3, 50), st.sampled_from([2**62, 2**63, 2**64]), JUNK),
       seed=SEEDS, stream=SEEDS, start=st.one_of(st.integers(0, 2**64 - 1), JUNK))
def test_random_words(n, seed, stream, start):
    ok, out = attempt(il.random.words, n, seed=seed, stream=stream, start=start)
    if ok:
        assert out.dtype == np.uint32 and out.shape == (n,)
        if seed is not None and n and start < 1000:
            words = reference.philox_words(seed, stream, start + n)[start:]
            assert np.array_equal(out, words)


# =====================================================================================================
# _core bindings, directly
# =====================================================================================================
# Each binding is described by its arguments: ("in"/"out", name, shape over the dims n, i, o, k).
# A drawn call either passes the right array for an argument, or a wrong one (dtype, shape,
# layout, read-only, misaligned, the same buffer as another argument, not an array at all).
MUTATIONS = ["ok"] * 10 + ["dtype", "shape", "F", "strided", "readonly", "misaligned", "alias",
                           "junk", "nan", "empty"]


@st.composite
def arg_array(draw, shape, dtype, others, role):
    how = draw(st.sampled_from(MUTATIONS))
    base = draw(finite_arrays(shape, dtype))
    if how == "ok":
        return base
    if how == "dtype":
        return relayout(values_for(draw(st.sampled_from(ALL_DTYPES)), shape, draw), "C")
    if how == "shape":
        return draw(finite_arrays(draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
                                  dtype))
    if how in ("F", "strided", "readonly", "misaligned"):
        return relayout(base, how)
    if how == "alias" and others:
        return draw(st.sampled_from(others))
    if how == "junk":
        return draw(JUNK)
    if how == "nan" and base.size:
        base.flat[draw(st.integers(0, base.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        return base
    if how == "empty":
        return np.empty((0,) * max(len(shape), 1), dtype)
    return base


BINDINGS = {
    # name: (array arguments, scalar arguments as strategies)
    "gemm": ([("in", "A", "mk"), ("in", "B", "kn"), ("out", "C", "mn")],
             {"alpha": NUMBERS, "beta": NUMBERS, "trans_a": st.booleans(), "trans_b": st.booleans()}),
    "gemm_reference": ([("in", "A", "mk"), ("in", "B", "kn"), ("out", "C", "mn")],
                       {"alpha": st.floats(-2, 2), "beta": st.floats(-2, 2), "trans_a": st.booleans(),
                        "trans_b": st.booleans()}),
    "activation_forward": ([("in", "Z", "no"), ("out", "A", "no")], {"activation": None, "param": None}),
    "dense_forward": ([("in", "X", "ni"), ("in", "W", "io"), ("in", "b", "o"), ("out", "Z", "no"),
                       ("out", "A", "no")], {"activation": None, "param": None}),
    "dense_backward": ([("out", "dA", "no"), ("in", "X", "ni"), ("in", "W", "io"), ("in", "Z", "no"),
                        ("in", "A", "no"), ("out", "dW", "io"), ("out", "db", "o"), ("out", "dX", "ni")],
                       {"activation": None, "param": None}),
    "softmax_cross_entropy": ([("in", "Z", "no"), ("in", "y", "labels"), ("out", "P", "no"),
                               ("out", "dZ", "no")], {}),
    "sigmoid_binary_cross_entropy": ([("in", "Z", "no"), ("in", "y", "prob"), ("out", "P", "no"),
                                      ("out", "dZ", "no")], {}),
    "mean_squared_error": ([("in", "Z", "no"), ("in", "y", "no"), ("out", "dZ", "no")], {}),
    "sgd_step": ([("out", "param", "no"), ("in", "grad", "no"), ("out", "momentum_buffer", "no")],
                 {"lr": NUMBERS, "momentum": st.one_of(st.floats(0, 1), NUMBERS),
                  "dampening": st.floats(0, 1), "weight_decay": st.floats(0, 1), "nesterov": st.booleans(),
                  "first_step": st.booleans()}),
    "adam_step": ([("out", "param", "no"), ("in", "grad", "no"), ("out", "exp_avg", "no"),
                   ("out", "exp_avg_sq", "sq")],
                  {"lr": st.one_of(st.floats(0, 1), NUMBERS), "beta1": st.floats(0, 1),
                   "beta2": st.floats(0, 1), "eps": st.one_of(st.floats(0, 1), NUMBERS),
                   "weight_decay": st.floats(0, 1), "step": st.one_of(st.integers(-2, 10), st.just(2**62)),
                   "decoupled": st.booleans()}),
    "rmsprop_step": ([("out", "param", "no"), ("in", "grad", "no"), ("out", "square_avg", "sq"),
                      ("out", "momentum_buffer", "no")],
                     {"lr": st.floats(0, 1), "alpha": st.one_of(st.floats(0, 1), NUMBERS),
                      "eps": st.floats(0, 1), "weight_decay": st.floats(0, 1),
                      "momentum": st.one_of(st.floats(0, 1), NUMBERS)}),
    "clip_by_value": ([("out", "grad", "no")], {"clip_value": NUMBERS}),
    "dropout_forward": ([("out", "A", "no"), ("out", "mask", "no")],
                        {"p": st.one_of(st.floats(0, 1), NUMBERS), "seed": SEEDS, "stream": SEEDS,
                         "step": SEEDS}),
    "dropout_backward": ([("out", "dA", "no"), ("in", "mask", "no")], {}),
    "sum_of_squares": ([("in", "x", "no")], {}),
    "scale": ([("out", "x", "no")], {"factor": NUMBERS}),
    "diff_norm": ([("in", "a", "no"), ("in", "b", "no")], {}),
    "all_finite": ([("in", "x", "no")], {}),
    "layer_stats": ([("in", "Z", "no"), ("in", "A", "no")], {"activation": None, "param": None}),
}
ACTIVATION_NAMES = [a[0] for a in _core.activations()]


@st.composite
def binding_call(draw, name):
    array_specs, scalar_specs = BINDINGS[name]
    dims = {d: draw(st.integers(0, 5)) for d in "mknio"}
    dims["n"] = max(dims["n"], draw(st.integers(0, 1)))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    trans_a = draw(st.booleans()) if "trans_a" in scalar_specs else False
    trans_b = draw(st.booleans()) if "trans_b" in scalar_specs else False
    args, built = {}, []
    for role, arg, dimspec in array_specs:
        if dimspec == "labels":
            shape = (dims["n"],)
            base = np.array(draw(st.lists(st.integers(-1, dims["o"]), min_size=dims["n"], max_size=dims["n"])),
                            dtype=np.int64).reshape(shape)
            value = base if draw(st.integers(0, 3)) else draw(arg_array((dims["n"], dims["o"]), dtype, built, role))
        elif dimspec == "prob":
            value = draw(arg_array((dims["n"], dims["o"]), dtype, built, role))
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and draw(st.booleans()):
                with np.errstate(all="ignore"):
                    value = np.abs(value) / (1 + np.abs(value))
        else:
            shape = tuple(dims[c] for c in dimspec.replace("sq", "no"))
            if arg == "A" and name == "gemm" or arg == "A" and name == "gemm_reference":
                shape = shape[::-1] if trans_a else shape
            if arg == "B" and name.startswith("gemm"):
                shape = shape[::-1] if trans_b else shape
            value = draw(arg_array(shape, dtype, built, role))
            if dimspec == "sq" and isinstance(value, np.ndarray) and value.dtype.kind == "f":
                with np.errstate(all="ignore"):
                    value = np.abs(value)
        if arg in ("dX", "momentum_buffer") and draw(st.integers(0, 3)) == 0:
            value = None
        args[arg] = value
        if isinstance(value, np.ndarray):
            built.append(value)
    for key, strategy in scalar_specs.items():
        if key == "activation":
            args[key] = draw(st.one_of(st.sampled_from(ACTIVATION_NAMES), st.sampled_from(["softmax", ""])))
        elif key == "param":
            args[key] = draw(st.one_of(st.none(), st.floats(-2, 2), NUMBERS, JUNK))
        elif key == "trans_a":
            args[key] = trans_a
        elif key == "trans_b":
            args[key] = trans_b
        else:
            args[key] = draw(strategy)
    return args


@pytest.mark.parametrize("name", sorted(BINDINGS))
@FUZZ
@given(data=st.data())
def test_core_binding(name, data):
    args = data.draw(binding_call(name), "args")
    arrays_in = [v for v in args.values() if isinstance(v, np.ndarray)]
    snap = snapshot(*arrays_in)
    if name in ("gemm", "gemm_reference"):
        C0 = args["C"].copy() if isinstance(args["C"], np.ndarray) else None
    with np.errstate(all="ignore"):
        ok, out = attempt(getattr(_core, name), **args)
    if not ok:
        assert_untouched(snap)
        return
    for a in arrays_in:  # what the kernels accepted is what the contract allows
        assert a.dtype in (np.float32, np.float64, np.int64) and a.flags.c_contiguous and a.flags.aligned
    written = [a for a in arrays_in if any(a is b for b, _ in snap)]
    for arr, before in snap:
        if not arr.flags.writeable:
            assert arr.tobytes() == before.tobytes(), "a read-only array was written"
    if name in ("gemm", "gemm_reference"):
        A, B = args["A"], args["B"]
        assert args["C"] is not A and args["C"] is not B
        finite = all(np.isfinite(x).all() for x in (A, B, C0)) and abs(args["alpha"]) < 1e3 \
            and abs(args["beta"]) < 1e3
        if finite:
            expected = reference.gemm(A, B, C0, args["alpha"], args["beta"], args["trans_a"], args["trans_b"])
            tol = 1e-4 if A.dtype == np.float32 else 1e-10
            np.testing.assert_allclose(args["C"], expected, rtol=tol, atol=tol * (1 + np.abs(expected).max(
                initial=0)) * 10 * max(1, abs(args["alpha"])))
    if name == "dense_forward" and all(np.isfinite(args[k]).all() for k in ("X", "W", "b")):
        Z = reference.gemm(args["X"], args["W"]) + args["b"]
        tol = 1e-4 if args["X"].dtype == np.float32 else 1e-10
        np.testing.assert_allclose(args["Z"], Z, rtol=tol, atol=tol * 100)
    if name in ("softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mean_squared_error"):
        assert isinstance(out, float)
        Z, y = args["Z"], args["y"]
        if np.isfinite(Z).all() and np.isfinite(y).all():
            # Finite inputs give a loss >= 0, never NaN. It is +inf only where the true loss lies beyond
            # the largest double (test_loss_beyond_the_largest_double_is_inf); inputs of moderate size,
            # whose squares and differences the dtype holds, give a finite loss.
            assert out >= 0
            moderate = np.sqrt(np.finfo(Z.dtype).max) / 4
            if np.abs(Z).max(initial=0) <= moderate and np.abs(y).max(initial=0) <= moderate:
                assert np.isfinite(out)
    del written


def test_loss_beyond_the_largest_double_is_inf():
    """Found by the long fuzz profile (test_core_binding[mean_squared_error], Z = 0, y = the double after
    sqrt(DBL_MAX)): the true mean of (Z - y)^2 lies beyond the largest double, so +inf is the correctly
    rounded loss (not NaN, not an error), while one double lower the loss is finite and exact."""
    edge = np.sqrt(np.finfo(np.float64).max)
    past = np.nextafter(edge, np.inf)
    Z, dZ = np.zeros((1, 1)), np.empty((1, 1))
    assert _core.mean_squared_error(Z, np.array([[edge]]), dZ) == edge * edge < np.inf
    assert _core.mean_squared_error(Z, np.array([[past]]), dZ) == np.inf
    np.testing.assert_array_equal(dZ, [[-2 * past]])  # the gradient 2 (Z - y) / 1 is still finite
    # Logits 2e308 apart: the cross-entropy log(sum exp z) - z_y is 2e308, beyond the largest double too.
    P = np.empty((1, 2))
    assert _core.softmax_cross_entropy(np.array([[1e308, -1e308]]), np.array([1]), P) == np.inf


@FUZZ
@given(out=arrays(dtypes=ALL_DTYPES + FLOAT_DTYPES * 3),
       kind=st.one_of(st.sampled_from(["uniform", "normal", "truncated_normal", "gamma"]), JUNK),
       seed=SEEDS, stream=SEEDS,
       params=st.one_of(st.lists(st.floats(-3, 3), min_size=0, max_size=5), st.lists(NUMBERS, max_size=4), JUNK),
       naive=st.booleans())
def test_core_random_fill(out, kind, seed, stream, params, naive):
    snap = snapshot(out)
    ok, _ = attempt(_core.random_fill, out, kind, seed, stream, params, naive)
    if not ok:
        assert_untouched(snap)
    else:
        assert out.dtype in (np.float32, np.float64) and out.flags.c_contiguous and out.flags.aligned


@FUZZ
@given(scheme=st.sampled_from(SCHEME_NAMES + ["nope"]), shape=shapes(),
       layout=st.one_of(st.sampled_from(["in_out", "out_in"]), JUNK),
       fan_in=st.one_of(st.none(), NUMBERS), fan_out=st.one_of(st.none(), NUMBERS),
       numbers=st.dictionaries(st.sampled_from(["gain", "std", "mean", "a", "b", "low", "high", "value",
                                                "scale", "sparsity", "groups", "zzz"]), NUMBERS, max_size=5),
       words=st.dictionaries(st.sampled_from(["mode", "nonlinearity", "distribution", "zzz"]),
                             st.sampled_from(["fan_in", "relu", "normal", "x", ""]), max_size=3))
def test_core_init_plan(scheme, shape, layout, fan_in, fan_out, numbers, words):
    ok, plan = attempt(_core.init_plan, scheme, shape, layout, fan_in, fan_out, numbers, words)
    if ok:
        assert isinstance(plan, dict) and "kind" in plan


@FUZZ
@given(n=st.one_of(st.integers(-5, 64), st.sampled_from([0, 2**31, 2**32 + 1]), JUNK))
def test_set_num_threads(n):
    before = il.get_num_threads()
    try:
        ok, _ = attempt(il.set_num_threads, n)
        if ok:
            assert il.get_num_threads() == n
        else:
            assert il.get_num_threads() == before
    finally:
        il.set_num_threads(before)


# =====================================================================================================
# Networks
# =====================================================================================================
def bad_init(kind):
    def init(shape, seed, stream):
        return {"shape": np.zeros(tuple(s + 1 for s in shape)), "nan": np.full(shape, np.nan),
                "complex": np.zeros(shape, np.complex128), "object": np.empty(shape, object),
                "list": np.zeros(shape).tolist(), "none": None, "int8": np.ones(shape, np.int8),
                "str": "weights"}[kind]
    return init


INIT_SPECS = st.one_of(
    st.sampled_from(SCHEME_NAMES + ["lsuv", "glorot_uniform", "nope", ""]),
    st.tuples(st.sampled_from(["normal", "uniform", "orthogonal", "sparse", "lsuv"]),
              st.dictionaries(st.sampled_from(["std", "low", "gain", "sparsity", "zzz"]), NUMBERS, max_size=2)),
    st.sampled_from(["shape", "nan", "complex", "object", "list", "none", "int8", "str"]).map(bad_init),
    JUNK)
WIDTH = st.one_of(st.integers(1, 6), st.integers(-2, 0), st.sampled_from([2**40, 2**62, 2**63, 2**64]), JUNK)
ACTS = st.one_of(st.sampled_from(list(il.nn.network.ACTIVATIONS) + ["softmax", "nope"]), JUNK)


@FUZZ
@given(layers=st.one_of(st.lists(WIDTH, min_size=0, max_size=4), st.lists(st.integers(1, 5), min_size=2,
                                                                          max_size=4), JUNK),
       activation=ACTS, output=st.one_of(st.none(), st.sampled_from(["softmax", "sigmoid", "linear", "relu"]), JUNK),
       init=INIT_SPECS, bias_init=INIT_SPECS, seed=SEEDS,
       dtype=st.one_of(st.sampled_from(["float32", "float64", np.float64, "float16", "int64"]), JUNK),
       dropout=st.one_of(st.just(0.0), st.floats(0, 1), NUMBERS))
def test_network_construction(layers, activation, output, init, bias_init, seed, dtype, dropout):
    ok, net = attempt(il.Network, layers, activation=activation, output=output, init=init,
                      bias_init=bias_init, seed=seed, dtype=dtype, dropout=dropout)
    if ok:
        assert net.widths == [int(w) for w in layers]
        for layer, (n_in, n_out) in zip(net.layers, zip(layers[:-1], layers[1:])):
            assert layer.W.shape == (n_in, n_out) and layer.b.shape == (n_out,)
            assert layer.W.dtype == np.dtype(net.dtype) and np.isfinite(layer.W).all()


@FUZZ
@given(specs=st.lists(st.builds(lambda u, a, d: (u, a, d), WIDTH, st.one_of(st.none(), ACTS),
                                st.one_of(st.none(), st.floats(0, 1), NUMBERS)), min_size=0, max_size=3),
       input_dim=st.one_of(st.none(), WIDTH))
def test_network_dense_specs(specs, input_dim):
    def build():
        return il.Network([il.Dense(u, a, dropout=d) for u, a, d in specs], input_dim=input_dim, seed=0)
    ok, net = attempt(build)
    if ok:
        assert net.widths == [input_dim] + [u for u, _, _ in specs]


NETS = {}


def small_net(output, dtype, width=3):
    key = (output, dtype)
    if key not in NETS:
        NETS[key] = il.Network([width, 4, 3 if output == "softmax" else 2], activation="tanh",
                               output=output, seed=1, dtype=dtype)
    return NETS[key]


@st.composite
def net_and_data(draw):
    output = draw(st.sampled_from(["softmax", "sigmoid", "linear"]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    net = small_net(output, dtype)
    n = draw(st.integers(0, 6))
    if draw(st.integers(0, 2)):
        X = relayout(draw(hnp.arrays(np.float64, (n, 3), elements=st.floats(-5, 5, width=16))).astype(
            draw(st.sampled_from([np.float32, np.float64, np.int32, np.float16]))), draw(st.sampled_from(LAYOUTS)))
    else:
        X = draw(st.one_of(arrays(), JUNK, st.lists(st.lists(st.floats(-1, 1), min_size=3, max_size=3),
                                                    max_size=3)))
    K = net.output_dim
    choice = draw(st.integers(0, 3))
    if choice == 0:
        y = draw(st.one_of(arrays(), JUNK))
    elif output == "softmax":
        y = np.array(draw(st.lists(st.integers(-1, K), min_size=n, max_size=n)), dtype=np.int64).astype(
            draw(st.sampled_from([np.int64, np.int32, np.float64, np.uint8])))
        if choice == 1 and n:
            y = np.eye(K)[np.clip(y.astype(np.int64), 0, K - 1)]
    else:
        y = draw(hnp.arrays(draw(st.sampled_from([np.float32, np.float64, np.int64, np.bool_])), (n, K),
                            elements=st.integers(0, 1) if choice == 1 else None))
    return net, X, y


def test_network_accepts_misaligned_inputs():
    """Arrays rebuilt from network frames (Dask, pickle protocol 5) can sit at odd byte offsets:
    the bindings refuse those, so the network copies its inputs to aligned memory first."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    Xm, ym = misaligned_copy(X), misaligned_copy(y)
    assert not Xm.flags.aligned and not ym.flags.aligned
    a, b = il.Network([3, 4, 3], seed=0), il.Network([3, 4, 3], seed=0)
    np.testing.assert_array_equal(a.forward(Xm), b.forward(X))
    a.fit(Xm, ym, epochs=2, batch_size=8, progress=False)
    b.fit(X, y, epochs=2, batch_size=8, progress=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def check_net_unchanged(net, weights):
    for layer, (W, b) in zip(net.layers, weights):
        assert np.array_equal(layer.W, W) and np.array_equal(layer.b, b), "a pass changed the weights"


@pytest.mark.parametrize("method", ["forward", "predict", "evaluate", "loss", "gradients", "diagnose"])
@FUZZ
@given(case=net_and_data())
def test_network_passes(method, case):
    net, X, y = case
    weights = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    snap = snapshot(X, y)
    args = (X,) if method in ("forward", "predict") else (X, y)
    with np.errstate(all="ignore"):
        ok, out = attempt(getattr(net, method), *args)
    assert_untouched(snap)
    check_net_unchanged(net, weights)
    if not ok:
        return
    n, K = np.shape(X)[0], net.output_dim
    # (Z - y)^2 of targets near the dtype's limit overflows: a true inf, not a bug.
    huge_targets = np.asarray(y).dtype.kind in "fiu" and np.asarray(y).size and np.abs(
        np.asarray(y, dtype=np.float64)).max() > 1e15
    if method == "forward":
        assert out.shape == (n, K) and np.isfinite(out).all()
        if net.output == "softmax":
            np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
        if net.output in ("softmax", "sigmoid"):
            assert (out >= 0).all() and (out <= 1).all()
    elif method == "predict":
        assert out.shape[0] == n
        if net.output == "softmax":
            assert out.shape == (n,) and ((out >= 0) & (out < K)).all()
    elif method == "evaluate":
        assert (np.isfinite(out["loss"]) or huge_targets) and out["loss"] >= 0
    elif method == "loss":
        assert isinstance(out, float) and (np.isfinite(out) or huge_targets) and out >= 0
    elif method == "gradients":
        assert len(out) == len(net.layers)
        for (dW, db), layer in zip(out, net.layers):
            assert dW.shape == layer.W.shape and db.shape == layer.b.shape
            assert huge_targets or (np.isfinite(dW).all() and np.isfinite(db).all())
    else:
        assert out.verdict in ("healthy", "vanishing", "exploding", "saturated", "dead")


FIT_KWARGS = {
    "epochs": st.one_of(st.integers(0, 2), st.integers(-2, 0), JUNK),
    "batch_size": st.one_of(st.integers(1, 8), st.integers(-1, 0), st.just(2**62), JUNK),
    "optimizer": st.one_of(st.sampled_from(["sgd", "adam", "adamw", "rmsprop", "lbfgs"]), JUNK),
    "lr": st.one_of(st.floats(0, 0.5), NUMBERS),
    "momentum": st.one_of(st.floats(0, 0.99), NUMBERS),
    "nesterov": st.one_of(st.booleans(), JUNK),
    "betas": st.one_of(st.tuples(st.floats(0, 1), st.floats(0, 1)), JUNK),
    "eps": st.one_of(st.floats(0, 1), NUMBERS),
    "weight_decay": st.one_of(st.floats(0, 0.1), NUMBERS),
    "clip_value": st.one_of(st.none(), st.floats(0, 5), NUMBERS),
    "clip_norm": st.one_of(st.none(), st.floats(0, 5), NUMBERS),
    "validation_split": st.one_of(st.floats(0, 0.9), NUMBERS),
    "shuffle": st.one_of(st.booleans(), JUNK),
    "stats_every": st.one_of(st.integers(0, 2), JUNK),
    "on_divergence": st.one_of(st.sampled_from(["stop", "ignore", "raise"]), JUNK),
}


@FUZZ
@given(case=net_and_data(), kwargs=st.fixed_dictionaries({}, optional=FIT_KWARGS),
       fresh_seed=st.integers(0, 3))
def test_network_fit(case, kwargs, fresh_seed):
    template, X, y = case
    net = il.Network(template.widths, activation="tanh", output=template.output, seed=fresh_seed,
                     dtype=template.dtype)
    snap = snapshot(X, y)
    with np.errstate(all="ignore"):
        try:
            ok, report = attempt(net.fit, X, y, progress=False, **kwargs)
        except il.DivergenceError as e:  # on_divergence="raise": documented
            assert kwargs.get("on_divergence") == "raise" and str(e)
            ok, report = False, None
    assert_untouched(snap)
    for layer in net.layers:
        assert np.isfinite(layer.W).all() or kwargs.get("on_divergence") == "ignore"
    if ok:
        assert isinstance(report, il.Report)
        assert len(report.history) <= kwargs.get("epochs", 10)
        if not report.diverged:
            assert all(np.isfinite(h["loss"]) for h in report.history)


@FUZZ
@given(case=net_and_data(), tol=st.one_of(st.floats(0.01, 1), NUMBERS),
       max_iter=st.one_of(st.integers(0, 5), st.integers(-1, 0), JUNK))
def test_lsuv(case, tol, max_iter):
    template, X, _ = case
    net = il.Network(template.widths, activation="tanh", output=template.output, seed=0,
                     dtype=template.dtype)
    with np.errstate(all="ignore"):
        ok, out = attempt(il.lsuv, net, X, tol, max_iter)
    for layer in net.layers:
        assert np.isfinite(layer.W).all()


@pytest.fixture(scope="module")
def saved_net(tmp_path_factory):
    net = il.Network([3, 4, 2], output="sigmoid", seed=3)
    path = tmp_path_factory.mktemp("fuzz") / "net.npz"
    net.save(path)
    return net, path.read_bytes()


def mutate(blob: bytes, draw) -> bytes:
    how = draw(st.integers(0, 4))
    if how == 0:
        return draw(st.binary(max_size=200))
    if how == 1:
        return blob[:draw(st.integers(0, len(blob)))]
    if how == 2:
        b = bytearray(blob)
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        return bytes(b)
    if how == 3:
        return b"PK\x03\x04" + draw(st.binary(max_size=100))
    return blob


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, value in arrays.items():
            with zf.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=True)
    return buf.getvalue()


@FUZZ
@given(data=st.data())
def test_network_load(saved_net, data):
    net, blob = saved_net
    kind = data.draw(st.integers(0, 4))
    if kind == 0:
        content = npz_bytes(**{k: np.array([{"evil": 1}], dtype=object) if data.draw(st.booleans()) else v
                               for k, v in np.load(io.BytesIO(blob)).items()})
    elif kind == 1:
        content = npz_bytes(**{k: data.draw(arrays(max_dims=2)) if data.draw(st.integers(0, 5)) == 0 else v
                               for k, v in np.load(io.BytesIO(blob)).items()})
    else:
        content = mutate(blob, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npz")
        with open(path, "wb") as f:
            f.write(content)
        ok, loaded = attempt(il.Network.load, path)
    if ok:
        X = np.linspace(-1, 1, 9, dtype=np.float32).reshape(3, 3)
        assert loaded.widths == net.widths
        if content == blob:
            np.testing.assert_array_equal(loaded.forward(X), net.forward(X))


@FUZZ
@given(path=st.one_of(JUNK, st.sampled_from(["", "/nonexistent-dir/x.npz", "/", "."]), st.just(b"x")))
def test_network_save_bad_paths(path):
    net = small_net("softmax", "float32")
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # relative paths ("x", b"x") land here, not in the checkout
        try:
            ok, _ = attempt_os(net.save, path)
            assert not ok or isinstance(path, (str, bytes))
            assert not [f for f in os.listdir(".") if f.startswith(".initlab-")], \
                "a failed save left a temporary file"
        finally:
            os.chdir(cwd)


def attempt_os(fn, *args):
    """As attempt(), OSError (a path that cannot be written) allowed too."""
    try:
        return True, fn(*args)
    except ALLOWED + (OSError,) as e:
        assert str(e).strip()
        return False, e


# =====================================================================================================
# il.datasets
# =====================================================================================================
def check_dataset(out, *, string_labels=False):
    """float32 features and int64 labels >= 0; with string_labels (load_csv: a label column that is
    not all numbers is kept as strings, as scikit-learn takes them) a str array is allowed too."""
    X, y = out
    assert X.dtype == np.float32 and X.ndim == 2 and y.shape == (X.shape[0],)
    assert np.isfinite(X).all()
    if string_labels and y.dtype.kind == "U":
        return
    assert y.dtype == np.int64 and (y >= 0).all()


COUNTS = st.one_of(st.integers(-2, 40), st.sampled_from([2**40, 2**62, 2**64]), JUNK)
SCALES = st.one_of(st.floats(0, 2), NUMBERS, JUNK)


@FUZZ
@given(n=COUNTS, classes=COUNTS, seed=SEEDS, noise=SCALES, turns=SCALES)
def test_make_spirals(n, classes, seed, noise, turns):
    ok, out = attempt(il.datasets.make_spirals, n, classes, seed, noise=noise, turns=turns)
    if ok:
        check_dataset(out)
        assert out[0].shape == (n, 2) and out[1].max() < classes


@FUZZ
@given(n=COUNTS, noise=SCALES, seed=SEEDS)
def test_make_moons(n, noise, seed):
    ok, out = attempt(il.datasets.make_moons, n, noise, seed)
    if ok:
        check_dataset(out)
        assert out[0].shape == (n, 2)


@FUZZ
@given(n=COUNTS, centers=st.one_of(COUNTS, arrays(max_dims=2), JUNK), seed=SEEDS,
       features=COUNTS, std=SCALES,
       box=st.one_of(st.tuples(st.floats(-20, 20), st.floats(-20, 20)), st.tuples(NUMBERS, NUMBERS), JUNK))
def test_make_blobs(n, centers, seed, features, std, box):
    ok, out = attempt(il.datasets.make_blobs, n, centers, seed, features=features, std=std, box=box)
    if ok:
        check_dataset(out)
        assert out[0].shape[0] == n


def _write(tmp, name, content):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(content)
    return path


@FUZZ
@given(data=st.data())
def test_load_npz(data):
    kind = data.draw(st.integers(0, 2))
    if kind == 0:
        content = npz_bytes(X=data.draw(arrays(max_dims=3)), y=data.draw(arrays(max_dims=2)))
    elif kind == 1:
        good = npz_bytes(X=np.ones((3, 2)), y=np.array([0, 1, 2]))
        content = mutate(good, data.draw)
    else:
        content = npz_bytes(**{data.draw(st.sampled_from(["X", "y", "Z"])): data.draw(arrays(max_dims=2))})
    with tempfile.TemporaryDirectory() as tmp:
        ok, out = attempt(il.datasets.load_npz, _write(tmp, "d.npz", content))
    if ok:
        check_dataset(out)


@FUZZ
@given(data=st.data())
def test_load_csv(data):
    cell = st.one_of(st.integers(-3, 9).map(str), st.floats(allow_nan=True).map(repr),
                     st.sampled_from(["", "x", "nan", "inf", "1e400", " 2 ", "0x1", "1_0", "\x00"]))
    rows = data.draw(st.lists(st.lists(cell, min_size=0, max_size=4), min_size=0, max_size=5))
    text = "\n".join(",".join(r) for r in rows).encode() if data.draw(st.integers(0, 5)) else \
        data.draw(st.binary(max_size=60))
    label_column = data.draw(st.one_of(st.integers(-5, 5), st.sampled_from(["x", "label"]), JUNK))
    with tempfile.TemporaryDirectory() as tmp:
        ok, out = attempt(il.datasets.load_csv, _write(tmp, "d.csv", text), label_column)
    if ok:
        check_dataset(out, string_labels=True)


@FUZZ
@given(data=st.data())
def test_load_idx(data):
    import gzip
    import struct

    kind = data.draw(st.integers(0, 2))
    if kind == 0:
        dims = data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
        dtype_code = data.draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07, 0xFF]))
        ndim = data.draw(st.sampled_from([len(dims), len(dims) + 1, 0, 255]))
        header = struct.pack(">BBBB", 0, 0, dtype_code, ndim % 256) + b"".join(struct.pack(">I", d) for d in dims)
        body = data.draw(st.binary(max_size=80))
        content = header + body
    elif kind == 1:
        dims = data.draw(st.lists(st.sampled_from([2**31, 2**32 - 1, 1, 7]), min_size=1, max_size=3))
        content = struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    else:
        content = data.draw(st.binary(max_size=40))
    if data.draw(st.booleans()):
        content = gzip.compress(content)
        name = "images-idx3-ubyte.gz"
    else:
        name = "images-idx3-ubyte"
    with tempfile.TemporaryDirectory() as tmp:
        images = _write(tmp, name, content)
        labels = _write(tmp, "labels-idx1-ubyte", struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([0, 1, 2]))
        ok, out = attempt(il.datasets.load_idx, images, labels)
    if ok:
        check_dataset(out)


def test_load_digits():
    X, y = il.datasets.load_digits()
    check_dataset((X, y))
    assert X.shape == (1797, 64)


# =====================================================================================================
# Falsifying examples of the long profile (HYPOTHESIS_PROFILE=long), kept as regressions
# =====================================================================================================
def test_regression_mean_squared_error_finite_mean_of_huge_differences():
    # The sum of squares (5 * 3.6e307) overflowed double although the mean is finite.
    Z = np.zeros((1, 5))
    y = np.full((1, 5), 6.0e153)
    dZ = np.empty_like(Z)
    loss = _core.mean_squared_error(Z, y, dZ)
    assert np.isfinite(loss)
    assert loss == pytest.approx(6.0e153 ** 2, rel=1e-12)
    np.testing.assert_array_equal(dZ, 2 * (Z - y) / 5)
    # A mean beyond the largest double stays inf; ordinary sums are untouched.
    assert _core.mean_squared_error(np.zeros((1, 2)), np.full((1, 2), 1.5e154)) == np.inf
    assert _core.mean_squared_error(np.zeros((1, 2)), np.array([[3.0, 4.0]])) == 12.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["xavier_normal", "xavier_uniform"])
def test_regression_negative_gain_is_range_checked(name, dtype):
    # xavier_normal(gain=-1e38) passed the range check (its largest value -6e38 <= the limit) and
    # drew inf in float32.
    huge = -1e38 if dtype == "float32" else -1e308
    with pytest.raises(ValueError, match="beyond what"):
        il.init.get(name)((2, 2), dtype=dtype, seed=0, gain=huge)
    small = il.init.get(name)((2, 2), dtype=dtype, seed=0, gain=-1.0)
    assert np.isfinite(small).all()


def test_regression_generators_refuse_parameters_without_finite_data():
    with pytest.raises(ValueError, match="turns"):
        il.datasets.make_spirals(1, 1, turns=2.87e307)
    with pytest.raises(ValueError, match="turns"):
        il.datasets.make_spirals(5, 1, turns=1e308)
    with pytest.raises(ValueError, match="noise"):
        il.datasets.make_moons(7, noise=1.46e38 * 10, seed=0)
    with pytest.raises(ValueError, match="noise"):
        il.datasets.make_moons(7, noise=1e300, seed=0)
    with pytest.raises(ValueError, match="centers"):
        il.datasets.make_blobs(1, centers=[[3.4028236e38]], std=0.0)
    with pytest.raises(ValueError, match="std"):
        il.datasets.make_blobs(3, centers=[[0.0]], std=1e300, seed=0)
    X, _ = il.datasets.make_blobs(1, centers=[[3.4e38]], std=0.0)  # the largest float32s still work
    assert np.isfinite(X).all()


def test_regression_load_csv_carriage_return_in_unquoted_field(tmp_path):
    path = tmp_path / "cr.csv"
    path.write_bytes(b"1,2\n3\r4,5\n")
    with pytest.raises(ValueError, match=r"cr\.csv: line 2"):
        il.datasets.load_csv(path)


def test_regression_load_npz_uint64_label_beyond_int64(tmp_path):
    # A uint64 label 2**63 became -2**63 in int64 (found at the CI profile by tests/test_fuzz.py).
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((1, 0), bool), y=np.array([2**63], np.uint64))
    with pytest.raises(ValueError, match="2\\*\\*63"):
        il.datasets.load_npz(path)


def test_regression_update_overflow_is_divergence_with_last_finite_weights():
    # Loss and gradients were finite when checked; the update (weight decay multiplying W by
    # 1 - lr*wd = -6605) overflowed W to inf, and fit returned diverged=False.
    def fit(epochs, **kw):
        net = il.Network([3, 4, 3], activation="tanh", seed=0)
        report = net.fit(np.zeros((1, 3), np.float32), np.array([[1.0, 0.0, 0.0]]), lr=1.0,
                         weight_decay=6606.0, epochs=epochs, progress=False, **kw)
        return net, report

    net, report = fit(10)
    assert report.diverged and report.divergence["layer"] == 0
    assert "update would make the parameters of layer 0 non-finite" in report.stop_reason
    assert all(np.isfinite(layer.W).all() and np.isfinite(layer.b).all() for layer in net.layers)
    steps_done = report.divergence["global_step"] - 1
    kept, _ = fit(steps_done)  # the last finite step's weights, bitwise
    for a, b in zip(net.layers, kept.layers):
        assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    with pytest.raises(il.DivergenceError):
        fit(10, on_divergence="raise")
    net, report = fit(12, on_divergence="ignore")
    assert not report.diverged and not np.isfinite(net.layers[0].W).all()


# ---- convolution kernels: the fast paths against their twins ----------------------------------------

@st.composite
def conv_cases(draw):
    """A small geometry whose kernel fits (direct, lowered, pointwise and transposed-lowering paths)."""
    n, c, o = draw(st.integers(1, 4)), draw(st.integers(1, 9)), draw(st.integers(1, 40))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - padding[0] - padding[1]), 16))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - padding[2] - padding[3]), 16))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    act = draw(st.sampled_from(["relu", "tanh", "linear", "elu"]))
    return (n, h, w, c), (kh, kw, c, o), stride, dilation, padding, dtype, act, draw(st.integers(0, 2**32 - 1))


@FUZZ
@given(case=conv_cases(), threads=st.sampled_from([1, 2]))
def test_conv_kernels_fast_paths_match_their_twins(case, threads):
    x_shape, w_shape, stride, dilation, padding, dtype, act, seed = case
    gen = np.random.default_rng(seed)
    X = gen.standard_normal(x_shape).astype(dtype)
    W = (gen.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(dtype)
    b = gen.standard_normal(w_shape[3]).astype(dtype)
    geo = dict(stride=stride, dilation=dilation, padding=padding)
    shape = tuple(_core.conv2d_output_shape(x_shape, w_shape, **geo))
    size = _core.conv2d_workspace_size(x_shape, w_shape, **geo)
    R = gen.standard_normal(shape).astype(dtype)
    outs = []
    before = il.get_num_threads()
    try:
        il.set_num_threads(threads)
        for twin in (False, True):
            Z, A = np.empty(shape, dtype), np.empty(shape, dtype)
            fwd = _core.conv2d_forward_reference if twin else _core.conv2d_forward
            bwd = _core.conv2d_backward_reference if twin else _core.conv2d_backward
            ws = None if twin or not size else np.empty(size, dtype)
            fwd(X, W, b, Z, A, act, workspace=ws, **geo)
            dA, dW, db, dX = R.copy(), np.empty_like(W), np.empty_like(b), np.empty_like(X)
            bwd(dA, X, W, Z, A, act, None, dW, db, dX, workspace=ws, **geo)
            outs.append((Z, A, dA, dW, db, dX))
    finally:
        il.set_num_threads(before)
    tol = 3e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(*outs):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max(initial=0))))
    if x_shape[1] >= 2 and x_shape[2] >= 2:  # max pooling: the gather backward is the scatter's bits
        pool = (min(2, x_shape[1]), min(3, x_shape[2]))
        out = (x_shape[0], (x_shape[1] - pool[0]) // stride[0] + 1, (x_shape[2] - pool[1]) // stride[1] + 1, x_shape[3])
        Y, idx = np.empty(out, dtype), np.empty(out, np.int64)
        _core.max_pool2d_forward(X, Y, idx, pool=pool, stride=stride)
        fast, twin = np.empty_like(X), np.empty_like(X)
        _core.max_pool2d_backward(Y, idx, fast, pool=pool, stride=stride)
        _core.max_pool2d_backward_reference(Y, idx, twin, pool=pool, stride=stride)
        assert fast.tobytes() == twin.tobytes()
