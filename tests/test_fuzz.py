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
import re
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
# Convolution and pooling: geometry, kernels and their native layers (_core conv2d_*, *_pool2d_*)
# =====================================================================================================
# A bad argument must be refused (ValueError/TypeError) by a message that names it, never a crash.
def must_name(err, *names):
    """The refused call's message names one of `names` (quoted, as the bindings write them)."""
    msg = str(err)
    assert any(re.search(rf"(?<!\w){re.escape(str(n))}(?!\w)", msg) for n in names), \
        f"{type(err).__name__} does not name any of {names}: {msg}"


def array_defect(value, shape, dtype, writes):
    """Why `value` is not a valid argument of this shape and dtype (None when it is)."""
    if not isinstance(value, np.ndarray):
        return "not an array"
    if value.dtype != dtype:
        return "dtype"
    if value.shape != tuple(shape):
        return "shape"
    if not value.flags.c_contiguous:
        return "layout"
    if not value.flags.aligned:
        return "misaligned"
    if writes and not value.flags.writeable:
        return "read-only"
    return None


GEOMETRY_INT = st.one_of(st.integers(-1, 4), st.sampled_from([2**30, 2**30 + 1, 2**31, 2**62, 2**63 - 1]))
GEOMETRY_ARG = st.one_of(st.lists(st.integers(-1, 3), min_size=0, max_size=5).map(tuple), JUNK,
                         st.lists(GEOMETRY_INT, min_size=2, max_size=4).map(tuple),
                         st.sampled_from([(1.0, 1), (True, 1), (np.int64(1), 1)]))


@st.composite
def conv_geometry(draw, big=True):
    """(x_shape, w_shape, stride, dilation, padding), mostly valid and small."""
    side = st.one_of(st.integers(1, 6), GEOMETRY_INT) if big and draw(st.integers(0, 4)) == 0 else st.integers(1, 6)
    n, h, w, c = (draw(side) for _ in range(4))
    kh, kw, o = draw(side), draw(side), draw(side)
    x_shape, w_shape = [n, h, w, c], [kh, kw, c, o]
    if draw(st.integers(0, 9)) == 0:  # channels that disagree, wrong lengths
        w_shape[2] = draw(GEOMETRY_INT)
    if draw(st.integers(0, 19)) == 0:
        x_shape = x_shape[:draw(st.integers(0, 4))] + draw(st.lists(st.integers(1, 3), max_size=1))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)) if draw(st.integers(0, 7)) else GEOMETRY_ARG)
    dilation = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)) if draw(st.integers(0, 7)) else GEOMETRY_ARG)
    padding = draw(st.tuples(*[st.integers(0, 3)] * 4) if draw(st.integers(0, 7)) else GEOMETRY_ARG)
    return x_shape, w_shape, stride, dilation, padding


def conv_out_size(size, k, s, d, p0, p1):
    span = d * (k - 1) + 1
    return None if span > size + p0 + p1 else (size + p0 + p1 - span) // s + 1


@FUZZ
@given(geom=conv_geometry())
def test_conv2d_geometry(geom):
    """conv2d_output_shape / conv2d_workspace_size on any shapes: exact (Python integers) or refused."""
    x_shape, w_shape, stride, dilation, padding = geom
    kw = dict(stride=stride, dilation=dilation, padding=padding)
    ok, shape = attempt(_core.conv2d_output_shape, x_shape, w_shape, **kw)
    ok2, size = attempt(_core.conv2d_workspace_size, x_shape, w_shape, **kw)
    assert ok == ok2
    if not ok:
        return
    n, h, w, c = x_shape
    kh, kwd, c2, o = w_shape
    assert c == c2 and min(x_shape + w_shape) >= 1
    oh = conv_out_size(h, kh, stride[0], dilation[0], padding[0], padding[1])
    ow = conv_out_size(w, kwd, stride[1], dilation[1], padding[2], padding[3])
    assert oh is not None and ow is not None, "a kernel larger than the padded input was accepted"
    assert list(shape) == [n, oh, ow, o]
    pointwise = kh == kwd == 1 and tuple(stride) == (1, 1) and not any(padding)
    assert size == (0 if pointwise else n * oh * ow * kh * kwd * c), "the workspace size overflowed"


CONV_MUTATIONS = ["ok"] * 14 + ["dtype", "shape", "F", "strided", "readonly", "misaligned", "alias", "junk",
                                "nan"]


def mutated(draw, base, others):
    how = draw(st.sampled_from(CONV_MUTATIONS))
    if how == "ok":
        return base
    if how == "dtype":
        return relayout(values_for(draw(st.sampled_from(ALL_DTYPES)), base.shape, draw), "C")
    if how == "shape":
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3))
        return draw(finite_arrays(shape, base.dtype)) if base.dtype.kind == "f" else np.zeros(shape, base.dtype)
    if how in ("F", "strided", "readonly", "misaligned"):
        return relayout(base, how)
    if how == "alias" and others:
        return draw(st.sampled_from(others))
    if how == "junk":
        return draw(JUNK)
    if how == "nan" and base.size and base.dtype.kind == "f":
        base = base.copy()
        base.flat[draw(st.integers(0, base.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return base


def conv_valid_geometry(draw):
    while True:
        n, h, w, c, o = (draw(st.integers(1, 4)) for _ in range(5))
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
        if (conv_out_size(h + 2, kh, 1, dilation[0], padding[0], padding[1]) is not None
                and conv_out_size(w, kw, 1, dilation[1], padding[2], padding[3]) is not None):
            h += 2
            return (n, h, w, c), (kh, kw, c, o), stride, dilation, padding


@pytest.mark.parametrize("kind", ["forward", "backward"])
@FUZZ
@given(data=st.data())
def test_conv2d_kernels(kind, data):
    """conv2d_forward/_backward (fast and direct twin) on random geometry, dtypes and layouts: the
    numpy oracle where every argument is right, else a refusal naming a wrong argument (inputs untouched)."""
    draw = data.draw
    x_shape, w_shape, stride, dilation, padding = conv_valid_geometry(draw)
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    act = draw(st.sampled_from(ACTIVATION_NAMES))
    param = {"leaky_relu": 0.1, "elu": 0.7, "softplus": 1.5}.get(act) if draw(st.booleans()) else None
    reference_twin = draw(st.booleans())
    geometry = dict(stride=stride, dilation=dilation, padding=padding)
    out_shape = tuple(_core.conv2d_output_shape(x_shape, w_shape, **geometry))
    need = _core.conv2d_workspace_size(x_shape, w_shape, **geometry)
    good = {"X": draw(finite_arrays(x_shape, dtype, 2.0)), "W": draw(finite_arrays(w_shape, dtype, 1.0)),
            "b": draw(finite_arrays((w_shape[3],), dtype, 1.0))}
    if kind == "forward":
        good.update(Z=np.zeros(out_shape, dtype), A=np.zeros(out_shape, dtype))
        writes = {"Z", "A", "workspace"}
    else:
        Z, A = (v.astype(dtype) for v in reference.conv2d_forward(good["X"], good["W"], good["b"], act, param,
                                                                  stride, dilation, padding))
        good.update(dA=draw(finite_arrays(out_shape, dtype, 1.0)), Z=Z, A=A, dW=np.zeros(w_shape, dtype),
                    db=np.zeros(w_shape[3], dtype), dX=np.zeros(x_shape, dtype))
        del good["b"]
        writes = {"dA", "dW", "db", "dX", "workspace"}
    good["workspace"] = np.zeros(max(need, 1), dtype) if need or draw(st.booleans()) else None
    args, built, bad = {}, [], []
    for name, base in good.items():
        if base is None:
            args[name] = None
            continue
        value = mutated(draw, base, built)
        if name == "workspace" and draw(st.integers(0, 9)) == 0:
            value = np.zeros(max(need - 1, 0), dtype)  # one element short
        args[name] = value
        defect = array_defect(value, base.shape, dtype, name in writes)
        if name == "dX" and value is None:
            defect = None  # dX is optional: the input gradient is skipped
        if name == "workspace" and isinstance(value, np.ndarray) and defect == "shape" and value.ndim == 1 \
                and value.size >= need and value.dtype == dtype:
            defect = None  # any 1-D workspace that is large enough
        if defect is None and any(value is b for b in built) and (name in writes or any(
                value is args[o] for o in writes if o in args)):
            defect = "alias"
            if kind == "forward" and name == "A" and value is args["Z"] and act == "linear":
                defect = None  # documented: A may be Z for a linear activation
        if defect is not None and not (reference_twin and name == "workspace"):
            bad.append(name)
        if isinstance(value, np.ndarray):
            built.append(value)
    fn = getattr(_core, f"conv2d_{kind}" + ("_reference" if reference_twin else ""))
    snap = snapshot(*[v for k, v in args.items() if k not in writes])
    if kind == "forward":
        call = lambda: fn(args["X"], args["W"], args["b"], args["Z"], args["A"], act, param,  # noqa: E731
                          workspace=args["workspace"], **geometry)
    else:
        call = lambda: fn(args["dA"], args["X"], args["W"], args["Z"], args["A"], act, param,  # noqa: E731
                          args["dW"], args["db"], args["dX"], workspace=args["workspace"], **geometry)
    dA0 = args["dA"].copy() if isinstance(args.get("dA"), np.ndarray) else None
    with np.errstate(all="ignore"):
        ok, err = attempt(call)
    assert_untouched(snap)
    if not ok:
        if len(bad) == 1:  # a W of another shape changes the geometry: "the kernel (KH, KW) ... 'X'"
            must_name(err, bad[0], "workspace", "columns",
                      *(("kernel", "X", "b", "dA", "Z", "A", "dW", "db") if bad[0] == "W" else ()))
        return
    assert not bad, f"wrong arguments {bad} were accepted"
    if not all(np.isfinite(v).all() for v in ((args["X"], args["W"], args["b"]) if kind == "forward" else
                                              (args["X"], args["W"], dA0, args["Z"], args["A"]))):
        return
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
    if kind == "forward":
        Z_ref, A_ref = reference.conv2d_forward(args["X"], args["W"], args["b"], act, param, stride, dilation,
                                                padding)
        np.testing.assert_allclose(args["Z"], Z_ref, **tol)
        np.testing.assert_allclose(args["A"], A_ref, **tol)
    elif all(np.array_equal(args[k], good[k]) for k in ("X", "W", "Z", "A")):  # (the derivative reads A
        # or Z: a replacement that is not act(Z) of this X and W makes another, undefined, problem)
        dZ, dW, db, dX = reference.conv2d_backward(dA0, args["X"], args["W"], args["Z"], act, param, stride,
                                                    dilation, padding)
        scale = 1 + np.abs(dZ).max(initial=0) * np.abs(args["X"]).max(initial=1) * np.prod(out_shape[:3])
        np.testing.assert_allclose(args["dA"], dZ, **tol)
        np.testing.assert_allclose(args["dW"], dW, rtol=tol["rtol"], atol=tol["atol"] * scale)
        np.testing.assert_allclose(args["db"], db, rtol=tol["rtol"], atol=tol["atol"] * scale)
        if args["dX"] is not None:
            np.testing.assert_allclose(args["dX"], dX, rtol=tol["rtol"], atol=tol["atol"] * scale)


POOL_KINDS = ["max_forward", "max_backward", "avg_forward", "avg_backward", "global_forward", "global_backward"]


@pytest.mark.parametrize("kind", POOL_KINDS)
@FUZZ
@given(data=st.data())
def test_pool2d_kernels(kind, data):
    draw = data.draw
    n, h, w, c = (draw(st.integers(1, 5)) for _ in range(4))
    pool = (draw(st.integers(1, h)), draw(st.integers(1, w)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if draw(st.integers(0, 7)) == 0:
        pool = draw(GEOMETRY_ARG)
    if draw(st.integers(0, 7)) == 0:
        stride = draw(GEOMETRY_ARG)
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    family, direction = kind.split("_")
    X = draw(finite_arrays((n, h, w, c), dtype, 5.0))
    valid = True
    if family == "global":
        out_shape = (n, c)
    else:
        valid = (isinstance(pool, (tuple, list)) and isinstance(stride, (tuple, list)) and len(pool) == len(stride) == 2
                 and all(type(v) is int for v in list(pool) + list(stride)) and 1 <= pool[0] <= h and 1 <= pool[1] <= w
                 and 1 <= min(stride) and max(list(pool) + list(stride)) <= 2**30)
        out_shape = ((h - pool[0]) // stride[0] + 1, (w - pool[1]) // stride[1] + 1) if valid else (1, 1)
        out_shape = (n,) + out_shape + (c,)
    if family != "global" and not valid:
        out_shape = (n, 1, 1, c)
    Y_ref, idx_ref = reference.max_pool2d(X, pool, stride) if family == "max" and valid else (None, None)
    if direction == "forward":
        good = {"X": X, "Y": np.zeros(out_shape, dtype)}
        if family == "max":
            good["argmax"] = np.zeros(out_shape, np.int64)
        writes = {"Y", "argmax"}
    else:
        good = {"dY": draw(finite_arrays(out_shape, dtype, 5.0))}
        if family == "max":
            good["argmax"] = idx_ref if idx_ref is not None and idx_ref.shape == out_shape else \
                np.zeros(out_shape, np.int64)
            if draw(st.integers(0, 9)) == 0:
                good["argmax"] = good["argmax"].copy()
                good["argmax"].flat[0] = draw(st.sampled_from([-1, h * w, 2**62]))
        good["dX"] = np.zeros((n, h, w, c), dtype)
        writes = {"dX"}
    args, built, bad = {}, [], []
    for name, base in good.items():
        value = mutated(draw, base, built)
        args[name] = value
        defect = array_defect(value, base.shape, base.dtype, name in writes)
        if name in ("X", "dX") and defect == "shape" and value.ndim == 4:
            defect = None  # X's (dX's) shape is the geometry: another 4-D shape may fit Y (dY) too
        if defect is None and any(value is b for b in built):
            defect = "alias"
        if defect is not None:
            bad.append(name)
        if isinstance(value, np.ndarray):
            built.append(value)
    fn = getattr(_core, {"max": "max_pool2d", "avg": "avg_pool2d", "global": "global_avg_pool2d"}[family]
                 + "_" + direction)
    names = list(args)
    geometry = {} if family == "global" else dict(pool=pool, stride=stride)
    snap = snapshot(*[v for k, v in args.items() if k not in writes])
    with np.errstate(all="ignore"):
        ok, err = attempt(fn, *[args[k] for k in names], **geometry)
    assert_untouched(snap)
    if not valid:
        assert not ok, f"pool={pool!r}, stride={stride!r} were accepted"
        if not bad:
            must_name(err, "pool", "stride", "X", "dX")
        return
    if not ok:
        if len(bad) == 1:  # backward: dX's shape sets the geometry, so dY or argmax no longer fit it
            must_name(err, bad[0], *(("dY", "argmax") if direction == "backward" else ("Y", "argmax")))
        return
    assert not bad, f"wrong arguments {bad} were accepted"
    if args["X" if direction == "forward" else "dX"].shape != (n, h, w, c):
        return  # a valid call of another geometry than the one drawn
    if family == "max" and direction == "backward":
        assert (args["argmax"] >= 0).all() and (args["argmax"] < h * w).all()
    if not all(np.isfinite(v).all() for k, v in args.items() if k not in writes):
        return
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    X = args.get("X", X)  # the array passed (a drawn replacement may have the same shape)
    if family == "global":
        expect = X.astype(np.float64).mean(axis=(1, 2)) if direction == "forward" else \
            np.broadcast_to(args["dY"][:, None, None, :] / (h * w), (n, h, w, c))
    elif family == "avg":
        expect = reference.avg_pool2d(X, pool, stride) if direction == "forward" else \
            reference.avg_pool2d_backward(args["dY"], (n, h, w, c), pool, stride)
    elif direction == "forward":
        expect, idx_ref = reference.max_pool2d(X, pool, stride)
        np.testing.assert_array_equal(args["argmax"], idx_ref)
    else:
        expect = reference.max_pool2d_backward(args["dY"], args["argmax"], (n, h, w, c))
    got = args["Y"] if direction == "forward" else args["dX"]
    np.testing.assert_allclose(got, expect, **tol)


SHAPE3 = st.one_of(st.lists(st.integers(1, 6), min_size=3, max_size=3),
                   st.lists(GEOMETRY_INT, min_size=0, max_size=4), JUNK)


@pytest.mark.parametrize("layer", ["conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "flatten"])
@FUZZ
@given(data=st.data())
def test_native_layer_bindings(layer, data):
    """The native layers' constructors on any input_shape and geometry: in/out sizes exact or refused."""
    draw = data.draw
    input_shape = draw(SHAPE3)
    dtype = draw(st.sampled_from(["float32", "float64", "float16", ""]) if draw(st.integers(0, 5)) == 0
                 else st.sampled_from(["float32", "float64"]))
    if layer == "conv2d":
        kh, kw, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
        c = input_shape[2] if isinstance(input_shape, list) and len(input_shape) == 3 and 0 < input_shape[2] < 9 \
            else 2
        dt = np.dtype(dtype) if dtype in ("float32", "float64") else np.float32
        arrs = {"W": np.zeros((kh, kw, c, o), dt), "b": np.zeros(o, dt), "dW": np.zeros((kh, kw, c, o), dt),
                "db": np.zeros(o, dt)}
        built, bad = [], []
        for name, base in list(arrs.items()):
            arrs[name] = mutated(draw, base, built)
            defect = array_defect(arrs[name], base.shape, base.dtype, name in ("dW", "db"))
            if defect is None and any(arrs[name] is b for b in built):
                defect = "alias"
            if defect:
                bad.append(name)
            if isinstance(arrs[name], np.ndarray):
                built.append(arrs[name])
        _, _, stride, dilation, padding = draw(conv_geometry())
        act = draw(st.sampled_from(ACTIVATION_NAMES + ["softmax", ""]))
        dropout = draw(st.one_of(st.floats(0, 1), NUMBERS))
        stream = draw(st.one_of(st.integers(0, 2**32 - 1), SEEDS))
        ok, out = attempt(_core.conv2d_layer, arrs["W"], arrs["b"], arrs["dW"], arrs["db"], input_shape, act, None,
                          stride=stride, dilation=dilation, padding=padding, dropout=dropout, stream=stream,
                          keep_columns=draw(st.booleans()))
        nice_geometry = (isinstance(input_shape, list) and len(input_shape) == 3 and max(input_shape) < 9
                         and min(input_shape) >= 1 and all(
                             isinstance(v, tuple) and len(v) == size and all(type(e) is int and low <= e < 9 for e in v)
                             for v, size, low in ((stride, 2, 1), (dilation, 2, 1), (padding, 4, 0))) and act in ACTIVATION_NAMES
                         and 0 <= dropout < 1 and isinstance(stream, int) and 0 <= stream < 2**32
                         and conv_out_size(input_shape[0], kh, 1, dilation[0], padding[0], padding[1]) is not None
                         and conv_out_size(input_shape[1], kw, 1, dilation[1], padding[2], padding[3]) is not None)
        if not ok:
            if len(bad) == 1 and nice_geometry:
                must_name(out, bad[0])
            return
        assert not bad
        h, w, _ = input_shape
        oh = conv_out_size(h, kh, stride[0], dilation[0], padding[0], padding[1])
        ow = conv_out_size(w, kw, stride[1], dilation[1], padding[2], padding[3])
        assert (out.in_size, out.out_size) == (h * w * c, oh * ow * o)
        return
    if layer in ("max_pool2d", "avg_pool2d"):
        pool = draw(st.one_of(st.tuples(st.integers(1, 3), st.integers(1, 3)), GEOMETRY_ARG))
        stride = draw(st.one_of(st.tuples(st.integers(1, 3), st.integers(1, 3)), GEOMETRY_ARG))
        ok, out = attempt(getattr(_core, layer + "_layer"), input_shape, pool=pool, stride=stride, dtype=dtype)
        if ok:
            h, w, c = input_shape
            assert pool[0] <= h and pool[1] <= w
            assert (out.in_size, out.out_size) == (h * w * c, ((h - pool[0]) // stride[0] + 1)
                                                   * ((w - pool[1]) // stride[1] + 1) * c)
        return
    ok, out = attempt(getattr(_core, layer + "_layer"), input_shape, dtype=dtype)
    if ok:
        size = int(np.prod(input_shape, dtype=object))
        assert out.in_size == size, "the layer's input size overflowed"
        assert out.out_size == (size if layer == "flatten" else input_shape[-1])


# =====================================================================================================
# Convolutional networks: construction, fit, predict, evaluate on random small inputs
# =====================================================================================================
PAIR = st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
BAD_PAIR = st.one_of(st.integers(-1, 0), st.tuples(st.integers(0, 2)), st.sampled_from([2**40, 1.5, "2", (1, 2, 3)]),
                     JUNK)


@st.composite
def cnn_layers(draw):
    """A random CNN spec list; ~1 in 6 examples has one bad argument."""
    layers, bad = [], None
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["conv", "conv", "max", "avg"]))
        if kind == "conv":
            kw = dict(stride=draw(PAIR), dilation=draw(PAIR),
                      padding=draw(st.one_of(st.sampled_from(["valid", "same"]), st.integers(0, 2), PAIR)),
                      activation=draw(st.sampled_from(["relu", "tanh", "linear", "gelu", None])),
                      dropout=draw(st.sampled_from([0.0, 0.0, 0.3])))
            filters, kernel = draw(st.integers(1, 3)), draw(PAIR)
            if bad is None and draw(st.integers(0, 5)) == 0:
                bad = draw(st.sampled_from(["filters", "kernel_size", "stride", "dilation", "padding", "dropout"]))
                value = draw(BAD_PAIR if bad in ("kernel_size", "stride", "dilation") else
                             st.one_of(st.sampled_from([-1, 1.5, 1.0, "same ", "full", -0.5, 1.0, np.nan]), JUNK))
                if bad == "filters":
                    filters = value
                elif bad == "kernel_size":
                    kernel = value
                else:
                    kw[bad] = value
            spec = ("conv", filters, kernel, kw)
        else:
            spec = (kind, draw(PAIR), draw(st.one_of(st.none(), PAIR)))
        layers.append(spec)
    tail = draw(st.sampled_from(["flatten", "gap", "none"]))
    return layers, tail, bad


def build_cnn_layers(specs, tail, k):
    out = []
    for spec in specs:
        if spec[0] == "conv":
            out.append(il.Conv2d(spec[1], spec[2], **spec[3]))
        elif spec[0] == "max":
            out.append(il.MaxPool2d(spec[1], stride=spec[2]))
        else:
            out.append(il.AvgPool2d(spec[1], stride=spec[2]))
    if tail == "flatten":
        out.append(il.Flatten())
    elif tail == "gap":
        out.append(il.GlobalAvgPool2d())
    out.append(il.Dense(k))
    return out


@FUZZ
@given(spec=cnn_layers(), h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 2),
       n=st.integers(1, 9), dtype=st.sampled_from(["float32", "float64"]),
       output=st.sampled_from(["softmax", "sigmoid", "linear"]), seed=st.integers(0, 3),
       fit_kw=st.fixed_dictionaries({"optimizer": st.sampled_from(["sgd", "adam", "rmsprop", "adamw"]),
                                     "batch_size": st.integers(1, 5), "lr": st.sampled_from([0.01, 0.1, 1.0]),
                                     "clip_norm": st.sampled_from([None, 1.0])}),
       x_scale=st.sampled_from([1.0, 1.0, 100.0, 1e30]))
def test_cnn_network(spec, h, w, c, n, dtype, output, seed, fit_kw, x_scale):
    layers_spec, tail, bad = spec
    k = 3
    ok, layers = attempt(build_cnn_layers, layers_spec, tail, k)
    if not ok:
        assert bad is not None, f"a valid layer spec was refused: {layers}"
        must_name(layers, bad)
        return
    ok, net = attempt(il.Network, layers, input_shape=(h, w, c), seed=seed, dtype=dtype, output=output)
    if not ok:  # too small an input for the kernels/pools, or a bad argument found at build
        must_name(net, "input_shape", "kernel", "pool", "padding", "Conv2d", "MaxPool2d", "AvgPool2d", "layer",
                  bad or "input_shape")
        return
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, h, w, c)) * x_scale).astype(dtype)
    X[np.abs(X) > np.finfo(dtype).max / 4] = 0
    if output == "softmax":
        y = rng.integers(0, k, n)
    elif output == "sigmoid":
        y = (rng.random((n, k)) < 0.5).astype(dtype)
    else:
        y = rng.standard_normal((n, k)).astype(dtype)
    P = net.forward(X)
    assert P.shape == (n, k) and P.dtype == np.dtype(dtype)
    if x_scale < 1e10:
        assert np.isfinite(P).all()
        if output == "softmax":
            np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(net.forward(X[::-1])[::-1], P)  # rows are independent, any layout
    with np.errstate(all="ignore"):
        report = net.fit(X, y, epochs=2, progress=False, **fit_kw)
    for p in net.get_weights():
        assert np.isfinite(p).all(), "fit left non-finite weights"
    assert report.diverged or all(np.isfinite(r["loss"]) for r in report.history)
    pred = net.predict(X)
    assert pred.shape[0] == n
    ev = net.evaluate(X, y)
    assert ev["loss"] >= 0 or np.isnan(ev["loss"])
    with pytest.raises((ValueError, TypeError)) as e:
        net.forward(X.reshape(n, h * w * c))
    must_name(e.value, "X")


# =====================================================================================================
# The native batch loop (_core.train_batches) against the Python loop (training.NATIVE_LOOP = False)
# =====================================================================================================
from initlab.nn import training  # noqa: E402

SCHEDULES = st.one_of(
    st.none(), st.just("constant"),
    st.builds(lambda s, g: ("step", {"step_size": s, "gamma": g}), st.integers(1, 3), st.floats(0, 2)),
    st.builds(lambda g: ("exponential", {"gamma": g}), st.floats(0, 2)),
    st.builds(lambda t, m: ("cosine", {"T_max": t, "eta_min": m}), st.integers(1, 4), st.floats(0, 0.01)),
    st.builds(lambda k: ("warmup", {"epochs": k}), st.integers(1, 4)),
    st.sampled_from(["cosine(T_max=2)", "step(step_size=1,gamma=0.5)", "warmup(epochs=2)"]),
    st.floats(0, 0.5).map(lambda lr: (lambda epoch, lr=lr: lr / (epoch + 1))))


@st.composite
def loop_case(draw):
    """A random valid fit: network (dense or small CNN), data, and every option the loop reads."""
    dtype = draw(st.sampled_from(["float32", "float64"]))
    output = draw(st.sampled_from(["softmax", "softmax", "sigmoid", "linear"]))
    k = draw(st.integers(1, 4)) if output != "softmax" else draw(st.integers(2, 4))
    n = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32))
    rng = np.random.default_rng(seed)
    cnn = draw(st.integers(0, 3)) == 0
    dropout = draw(st.sampled_from([0.0, 0.0, 0.3]))
    act = draw(st.sampled_from(["relu", "tanh", "gelu", "elu", "sigmoid", "leaky_relu"]))
    if cnn:
        shape = (5, 5, 2)
        pad, stride = draw(st.sampled_from(["same", "valid", 1])), draw(st.sampled_from([1, 2]))
        pool = draw(st.sampled_from(["max", "avg", "gap", "none"]))

        def build():
            middle = {"max": [il.MaxPool2d(2)], "avg": [il.AvgPool2d(2, stride=1)], "gap": [il.GlobalAvgPool2d()],
                      "none": []}[pool]
            tail = [] if pool == "gap" else [il.Flatten()]
            return il.Network([il.Conv2d(2, 3, padding=pad, activation=act, stride=stride)] + middle + tail
                              + [il.Dense(4, activation=act, dropout=dropout), il.Dense(k)], input_shape=shape,
                              seed=seed % 7, dtype=dtype, output=output)
    else:
        shape = (draw(st.integers(1, 5)),)
        widths = [shape[0]] + draw(st.lists(st.integers(1, 6), min_size=0, max_size=2)) + [k]

        def build():
            return il.Network(widths, activation=act, output=output, seed=seed % 7, dtype=dtype, dropout=dropout)
    X = (rng.standard_normal((n,) + shape) * draw(st.sampled_from([1.0, 1.0, 30.0]))).astype(dtype)
    codes = rng.integers(0, k, n)
    if output == "softmax":
        labels = draw(st.sampled_from(["int", "int", "onehot", "str"]))
        y = {"int": codes, "onehot": np.eye(k)[codes], "str": np.array(["a", "b", "c", "d"])[codes]}[labels]
    elif output == "sigmoid":
        y = (rng.random((n, k)) < 0.5).astype(dtype)
    else:
        y = rng.standard_normal((n, k)).astype(dtype)
    optimizer = draw(st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]))
    fit = dict(epochs=draw(st.integers(1, 3)), batch_size=draw(st.integers(1, 9)), optimizer=optimizer,
               lr=draw(st.sampled_from([1e-3, 0.05, 0.5, 5.0, 100.0])),
               weight_decay=draw(st.sampled_from([0.0, 0.0, 1e-2, 10.0])),
               clip_value=draw(st.sampled_from([None, None, 0.1, 1e-30])),
               clip_norm=draw(st.sampled_from([None, None, 1.0, 0.0])),
               shuffle=draw(st.booleans()), stats_every=draw(st.sampled_from([0, 0, 1, 2])),
               on_divergence=draw(st.sampled_from(["stop", "ignore"])),
               lr_schedule=draw(SCHEDULES))
    if optimizer in ("sgd", "rmsprop"):
        fit["momentum"] = draw(st.sampled_from([0.0, 0.0, 0.9]))
    if optimizer == "sgd" and fit["momentum"] and draw(st.booleans()):
        fit["nesterov"] = True
    elif optimizer == "sgd":
        fit["dampening"] = draw(st.sampled_from([0.0, 0.5]))
    if optimizer == "rmsprop":
        fit["alpha"] = draw(st.sampled_from([0.99, 0.5]))
    if n >= 4 and draw(st.integers(0, 3)) == 0:
        fit["validation_split"] = 0.25
    if output == "softmax" and draw(st.integers(0, 3)) == 0:
        if len(set(codes.tolist())) == k and draw(st.booleans()):
            fit["class_weight"] = "balanced"
        else:
            fit["class_weight"] = {np.unique(y)[0] if labels == "str" else 0: draw(st.sampled_from([0.5, 2.0, 0.0]))}
    if draw(st.integers(0, 3)) == 0:
        w = rng.random(n) * draw(st.sampled_from([1.0, 1e3]))
        w[rng.random(n) < 0.3] = 0.0
        w[0] = 1.0
        fit["sample_weight"] = w
    return build, X, y, fit


def loop_outcome(net, report):
    state = net._optimizer
    return {"weights": [w.tobytes() for w in net.get_weights()],
            "state": [[b.tobytes() for b in bufs] for bufs in state["buffers"]] if state else None,
            "opt_step": state and state["step"], "started": state and state["started"], "step": net._step,
            "history": [{k: repr(v) for k, v in h.items() if k != "seconds"} for h in report.history],
            "stop_reason": report.stop_reason, "diverged": report.diverged,
            "divergence": repr(report.divergence), "layer_stats": repr(report.layer_stats)}


@FUZZ
@given(case=loop_case())
def test_native_loop_equals_python_loop(case):
    build, X, y, fit = case
    results, calls = [], []
    real = _core.train_batches

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    saved = training.NATIVE_LOOP
    try:
        training._core.train_batches = counted
        for native in (False, True):
            training.NATIVE_LOOP = native
            net = build()
            with np.errstate(all="ignore"):
                ok, report = attempt(net.fit, X, y, progress=False, **fit)
            results.append(loop_outcome(net, report) if ok else (type(report), str(report)))
    finally:
        training.NATIVE_LOOP = saved
        training._core.train_batches = real
    assert results[0] == results[1], "the native loop differs from the Python loop"
    if not isinstance(results[0], tuple):
        for w in net.get_weights():
            assert np.isfinite(w).all() or fit["on_divergence"] == "ignore"


# =====================================================================================================
# The fused optimizer step (_core.optimizer_step) against the per-tensor kernels
# =====================================================================================================
@st.composite
def optimizer_call(draw):
    optimizer = draw(st.sampled_from(["sgd", "adam", "adamw", "rmsprop"]) if draw(st.integers(0, 19))
                     else st.sampled_from(["", "SGD", "lbfgs"]))
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    shapes_ = draw(st.lists(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=4), max_size=3))
    kw = dict(optimizer=optimizer, lr=draw(st.one_of(st.floats(0, 1), NUMBERS)) if draw(st.integers(0, 5)) == 0
              else draw(st.floats(0, 1)),
              weight_decay=draw(st.sampled_from([0.0, 0.0, 0.01, 5.0]) if draw(st.integers(0, 7)) else NUMBERS))
    if optimizer in ("sgd", "rmsprop"):
        kw["momentum"] = draw(st.sampled_from([0.0, 0.0, 0.9]) if draw(st.integers(0, 7)) else NUMBERS)
    if optimizer == "sgd":
        kw["dampening"] = draw(st.sampled_from([0.0, 0.0, 0.3]))
        kw["nesterov"] = draw(st.booleans()) and kw["dampening"] == 0 and kw["momentum"] != 0
        kw["first_step"] = draw(st.booleans())
    if optimizer in ("adam", "adamw"):
        kw["beta1"] = draw(st.sampled_from([0.9, 0.0, 0.5]) if draw(st.integers(0, 7)) else NUMBERS)
        kw["beta2"] = draw(st.sampled_from([0.999, 0.5]) if draw(st.integers(0, 7)) else NUMBERS)
        kw["step"] = draw(st.integers(1, 5) if draw(st.integers(0, 7)) else st.sampled_from([0, -1, 2**62]))
    if optimizer in ("adam", "adamw", "rmsprop"):
        kw["eps"] = draw(st.sampled_from([1e-8, 0.0, 1.0]) if draw(st.integers(0, 7)) else NUMBERS)
    if optimizer == "rmsprop":
        kw["alpha"] = draw(st.sampled_from([0.99, 0.0, 1.0]) if draw(st.integers(0, 7)) else NUMBERS)
    kw["clip_value"] = draw(st.sampled_from([None, None, 0.5, 0.0]) if draw(st.integers(0, 7)) else NUMBERS)
    kw["clip_norm"] = draw(st.sampled_from([None, None, 0.5, 0.0, 1e-300]) if draw(st.integers(0, 7)) else NUMBERS)
    kw["guard"] = draw(st.booleans())
    n_states = 1 if optimizer == "sgd" else 2
    params, grads, states, built = [], [], [], []
    for shape in shapes_:
        p = draw(finite_arrays(shape, dtype, 3.0))
        g = draw(finite_arrays(shape, dtype, draw(st.sampled_from([1.0, 1024.0, 2.0**100]))))
        s = tuple(np.abs(draw(finite_arrays(shape, dtype, 1.0))) for _ in range(n_states))
        p = mutated(draw, p, built)
        built.append(p)
        g = mutated(draw, g, built)
        built.append(g)
        if draw(st.integers(0, 9)) == 0:
            s = s[:draw(st.integers(0, 2))] if draw(st.booleans()) else draw(JUNK)
        params.append(p)
        grads.append(g)
        states.append(s)
    if draw(st.integers(0, 15)) == 0:
        params = draw(JUNK)
    return params, grads, states, kw


def per_tensor_reference(params, grads, states, kw):
    """The documented order with the per-tensor kernels: clip_value, clip_norm (global), update."""
    for g in grads:
        if kw["clip_value"] is not None:
            _core.clip_by_value(g, kw["clip_value"])
    if kw["clip_norm"] is not None and grads:
        total = float(np.sqrt(sum(_core.sum_of_squares(g) for g in grads)))
        if total > kw["clip_norm"]:
            factor = kw["clip_norm"] / (total + 1e-6)
            for g in grads:
                _core.scale(g, factor)
    opt = kw["optimizer"]
    for p, g, s in zip(params, grads, states):
        if opt == "sgd":
            _core.sgd_step(p, g, s[0], lr=kw["lr"], momentum=kw.get("momentum", 0.0),
                           dampening=kw.get("dampening", 0.0), weight_decay=kw["weight_decay"],
                           nesterov=kw.get("nesterov", False), first_step=kw.get("first_step", False))
        elif opt in ("adam", "adamw"):
            _core.adam_step(p, g, s[0], s[1], lr=kw["lr"], beta1=kw.get("beta1", 0.9), beta2=kw.get("beta2", 0.999),
                            eps=kw.get("eps", 1e-8), weight_decay=kw["weight_decay"], step=kw.get("step", 1),
                            decoupled=opt == "adamw")
        else:
            _core.rmsprop_step(p, g, s[0], s[1], lr=kw["lr"], alpha=kw.get("alpha", 0.99), eps=kw.get("eps", 1e-8),
                               weight_decay=kw["weight_decay"], momentum=kw.get("momentum", 0.0))


@FUZZ
@given(call=optimizer_call())
def test_optimizer_step(call):
    params, grads, states, kw = call
    arrays_in = [a for a in (list(params) if isinstance(params, (list, tuple)) else []) + grads
                 if isinstance(a, np.ndarray)]
    arrays_in += [b for s in states if isinstance(s, tuple) for b in s if isinstance(b, np.ndarray)]
    snap = snapshot(*arrays_in)
    copies = None
    if isinstance(params, (list, tuple)) and all(isinstance(a, np.ndarray) for a in list(params) + grads):
        params = list(params)
        copies = ([p.copy() for p in params], [g.copy() for g in grads],
                  [tuple(b.copy() for b in s) if isinstance(s, tuple) else s for s in states])
    with np.errstate(all="ignore"):
        ok, out = attempt(_core.optimizer_step, params, grads, states, **kw)
    if not ok:
        assert_untouched(snap)
        return
    assert set(out) == {"grad_norm", "clipped", "written", "nonfinite"}
    for a in arrays_in:
        assert a.flags.c_contiguous and a.flags.aligned and a.dtype in (np.float32, np.float64)
    bad = [i for i, p in enumerate(params) if not np.isfinite(p).all()]
    if kw["guard"] and not out["written"]:
        assert_untouched(snap)
        assert out["nonfinite"], "a refused step names no parameter"
        return
    assert out["written"]
    assert sorted(out["nonfinite"]) == bad
    # bitwise the per-tensor kernels in the documented order, on copies of the inputs
    rp, rg, rs = copies
    if any(any(b is p for p in rp + rg for b in s) for s in rs):
        return
    with np.errstate(all="ignore"):
        ok, err = attempt(per_tensor_reference, rp, rg, rs, kw)
    assert ok, f"the fused step accepted what the per-tensor kernels refuse: {err}"
    for a, b in zip(params, rp):
        assert a.tobytes() == b.tobytes(), "the fused step differs from the per-tensor kernels"
    for s, r in zip(states, rs):
        for a, b in zip(s, r):
            assert a.tobytes() == b.tobytes(), "the fused step's state differs from the per-tensor kernels"


# =====================================================================================================
# fit: lr_schedule, class_weight, sample_weight and labels of any type (valid and invalid)
# =====================================================================================================
BAD_SCHEDULES = st.one_of(
    st.sampled_from(["", "nope", "cosine(", "cosine(T_max=)", "step", "step(step_size=0)", "step(gamma=2)",
                     "warmup(epochs=-1)", "exponential(gamma=nan)", "cosine(T_max=1e400)", ("step", {}),
                     ("step", {"step_size": 1.5}), ("cosine", {"T_max": 0}), ("exponential", {"gamma": -1.0}),
                     ("exponential", {"gamma": 1e200}), ("warmup", {"epochs": True}), ("nope", {}),
                     ("step", {"step_size": 2, "zzz": 1}), ("cosine", []), ["step", {"step_size": 1}]]),
    st.sampled_from([lambda e: -1.0, lambda e: float("nan"), lambda e: "x", lambda e: 1 / (e - 1),
                     lambda e: None, lambda e: 1e300, lambda e: np.float32(0.1), lambda e: [0.1], lambda: 0.1]),
    JUNK, st.text(max_size=12))
WEIGHTS = st.one_of(st.floats(0, 10), st.floats(allow_nan=True), st.sampled_from([0, 1, -1, 1e300, 1e38, 4e38]),
                    JUNK)


@FUZZ
@given(data=st.data())
def test_fit_schedules_and_weights(data):
    draw = data.draw
    dtype = draw(st.sampled_from(["float32", "float64"]))
    output = draw(st.sampled_from(["softmax", "softmax", "sigmoid", "linear"]))
    n = draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    X = rng.standard_normal((n, 3)).astype(dtype)
    classes = draw(st.sampled_from([np.arange(3), np.array(["b", "a", "c"]), np.array([-2.5, 0.5, 7.0]),
                                    np.array([b"x", b"y", b"z"]), np.array([True, False, True])]))
    if output == "softmax":
        y = classes[rng.integers(0, len(classes), n)]
    else:
        y = (rng.random((n, 3)) < 0.5).astype(dtype)
    kw = {}
    epochs = draw(st.integers(0, 3))
    if draw(st.booleans()):
        kw["lr_schedule"] = draw(SCHEDULES if draw(st.integers(0, 2)) else BAD_SCHEDULES)
    if draw(st.integers(0, 2)) == 0:
        if draw(st.booleans()):
            kw["class_weight"] = draw(st.one_of(st.just("balanced"), st.just("Balanced"), JUNK))
        else:
            keys = st.sampled_from(list(classes.tolist()) + [3, -1, "a", "zz", 0.5, None, True, b"x", (), 2**70])
            kw["class_weight"] = draw(st.dictionaries(keys, WEIGHTS, max_size=3))
    if draw(st.integers(0, 2)) == 0:
        kind = draw(st.integers(0, 3))
        if kind == 0:
            kw["sample_weight"] = draw(arrays(max_dims=2))
        else:
            wdtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
            kw["sample_weight"] = draw(hnp.arrays(wdtype, (n,), elements=None if kind == 3 else st.integers(0, 10)
                                                  if wdtype == np.int64 else st.floats(0, 10, width=32)))
    net = il.Network([3, 4, 3], output=output, seed=0, dtype=dtype)
    before = [w.copy() for w in net.get_weights()]
    snap = snapshot(X, y, kw.get("sample_weight"))
    with np.errstate(all="ignore"):
        ok, report = attempt(net.fit, X, y, epochs=epochs, batch_size=3, lr=0.1, progress=False, **kw)
    assert_untouched(snap)
    if not ok:
        for a, b in zip(net.get_weights(), before):
            assert a.tobytes() == b.tobytes(), "a refused fit changed the weights"
        named = [k for k in kw] or ["y", "X"]
        must_name(report, *named, "lr", "epoch", "labels", "y")
        return
    for w in net.get_weights():
        assert np.isfinite(w).all()
    assert len(report.history) <= epochs
    if not report.diverged:
        assert all(np.isfinite(h["loss"]) for h in report.history), "finite weights gave a non-finite loss"
    values = il.nn.schedules.schedule_values(kw.get("lr_schedule"), 0.1, epochs)
    assert [h["lr"] for h in report.history] == values[:len(report.history)]
    if output == "softmax":  # numbers (bools too) keep the index meaning; other labels are classes_
        expect = np.arange(3) if classes.dtype.kind in "biuf" else np.unique(classes)
        if classes.dtype.kind in "biuf":
            assert np.array_equal(net.classes_, expect)
        assert set(net.predict(X).tolist()) <= set(expect.tolist())


# =====================================================================================================
# The initializer spec parser: "NAME" / "NAME(key=value, ...)" (il.init.parse_spec, get, Network(init=))
# =====================================================================================================
SPEC_PARAM_KEYS = sorted({p for n in SCHEME_NAMES for p, _ in il.init.scheme(n).params}) + ["zzz", ""]
SPEC_VALUES = st.one_of(st.sampled_from(["1", "-0.5", "1e-3", "0", "fan_out", "'fan_in'", '"relu"', "nan", "inf",
                                         "1e400", "-1e308", "0x10", "1_000", "2**3", "''", "'", "a b", "()",
                                         "uniform", "normal", "tanh", "True", "None", "1,", "(1)", "'x,y'"]),
                        st.floats(allow_nan=True).map(repr), st.integers(-2**70, 2**70).map(str),
                        st.text(max_size=4))


@st.composite
def spec_text(draw):
    if draw(st.integers(0, 5)) == 0:
        return draw(st.text(max_size=25))
    name = draw(st.sampled_from(SCHEME_NAMES + [n + "_" for n in SCHEME_NAMES[:4]]
                                + ["glorot_uniform", "kaiming_normal", "eye", "lsuv", "nope", "", "normal__"]))
    if draw(st.integers(0, 3)) == 0:
        return name + draw(st.sampled_from(["", "()", "( )", "(", ")", "(()", " ", "\n"]))
    items = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(SPEC_PARAM_KEYS))
        items.append(key + draw(st.sampled_from(["=", " = ", "==", "", "=="])) + draw(SPEC_VALUES))
    sep = draw(st.sampled_from([",", ", ", ",,", ";"]))
    return draw(st.sampled_from(["", " "])) + name + "(" + sep.join(items) + ")" + draw(st.sampled_from(["", " ",
                                                                                                          ")", "x"]))


@FUZZ
@given(text=st.one_of(spec_text(), JUNK))
def test_init_spec(text):
    ok, out = attempt(il.init.parse_spec, text)
    if not ok:
        assert isinstance(text, str) or isinstance(out, TypeError)
        if isinstance(text, str) and "(" in text:  # get() reads the same grammar
            assert not attempt(il.init.get, text)[0]
        return
    name, params = out
    assert isinstance(name, str) and isinstance(params, dict)
    assert all(isinstance(v, (int, float, str)) and (not isinstance(v, float) or np.isfinite(v))
               for v in params.values())
    # format_spec is the inverse of parse_spec
    assert il.init.parse_spec(il.init.format_spec(name, params)) == (name, params)
    if name == "lsuv" or name.endswith("_"):
        return
    ok, fn = attempt(il.init.get, text)
    if not ok:  # a value out of the scheme's range: named
        must_name(fn, *params, name)
        return
    ok, W = attempt(fn, (3, 4), seed=5)
    ok_direct, W_direct = attempt(getattr(il.init, name), (3, 4), seed=5, **params)
    assert ok == ok_direct
    if ok:
        assert np.isfinite(W).all() and W.tobytes() == W_direct.tobytes()
        ok_net, net = attempt(il.Network, [3, 4], init=text, seed=5)
        if ok_net:
            assert net.layers[0].W.tobytes() == W.tobytes(), "Network(init=spec) drew other weights"


# =====================================================================================================
# save / load round trips (format 2): any network, any optimizer state, string classes; edited files
# =====================================================================================================
@st.composite
def trained_net(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    output = draw(st.sampled_from(["softmax", "softmax", "sigmoid", "linear"]))
    if draw(st.booleans()):
        net = il.Network([il.Conv2d(2, draw(st.integers(1, 3)), padding=draw(st.sampled_from(["same", "valid", 1])),
                                    activation=draw(st.sampled_from(["relu", "tanh", None])),
                                    dilation=draw(st.integers(1, 2))),
                          draw(st.sampled_from([il.MaxPool2d(2), il.AvgPool2d((2, 1), stride=1), il.Flatten(),
                                                il.GlobalAvgPool2d()])),
                          il.Flatten(), il.Dense(3, dropout=draw(st.sampled_from([0.0, 0.25]))), il.Dense(3)],
                         input_shape=(6, 6, 2), seed=draw(st.integers(0, 5)), dtype=dtype, output=output,
                         init=draw(st.sampled_from(["he_normal", "orthogonal", "normal(std=0.3)", "lsuv"])))
    else:
        net = il.Network([4] + draw(st.lists(st.integers(1, 5), max_size=2)) + [3], output=output,
                         activation=draw(st.sampled_from(["relu", "leaky_relu", "elu", "tanh"])),
                         seed=draw(st.integers(0, 5)), dtype=dtype,
                         init=draw(st.sampled_from(["he_normal", "zeros", "xavier_uniform(gain=2)", "lsuv"])),
                         bias_init=draw(st.sampled_from(["zeros", "normal(std=0.1)"])))
    rng = np.random.default_rng(draw(st.integers(0, 9)))
    X = rng.standard_normal((7,) + tuple(net.input_shape)).astype(dtype)
    if output == "softmax":
        y = draw(st.sampled_from([np.arange(3), np.array(["x", "y", "z"]), np.array([b"p", b"q", b"r"])]))[
            np.r_[0, 1, 2, rng.integers(0, 3, 4)]]
    else:
        y = (rng.random((7, 3)) < 0.5).astype(dtype)
    fit = dict(optimizer=draw(st.sampled_from(["sgd", "adam", "adamw", "rmsprop"])), batch_size=3, progress=False,
               lr=0.05)
    if fit["optimizer"] in ("sgd", "rmsprop"):
        fit["momentum"] = draw(st.sampled_from([0.0, 0.9]))
    epochs = draw(st.integers(0, 2))
    if epochs:
        net.fit(X, y, epochs=epochs, **fit)
    return net, X, y, fit


@FUZZ
@given(case=trained_net())
def test_save_load_round_trip(case):
    net, X, y, fit = case
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.npz")
        net.save(path)
        loaded = il.Network.load(path)
    assert loaded.dtype == net.dtype and loaded.input_shape == net.input_shape and loaded.output == net.output
    assert [type(a) for a in loaded.layers] == [type(b) for b in net.layers]
    assert loaded.forward(X).tobytes() == net.forward(X).tobytes()
    if net.output == "softmax":
        assert np.array_equal(loaded.classes_, net.classes_) and loaded.classes_.dtype == net.classes_.dtype
        assert np.array_equal(loaded.predict(X), net.predict(X))
    for a, b in zip(loaded.layers, net.layers):
        assert a.initializers() == b.initializers() if hasattr(a, "initializers") else True
    # fit continues exactly: optimizer state, step counters, dropout streams and LSUV all restored
    with np.errstate(all="ignore"):
        r1 = net.fit(X, y, epochs=1, **fit)
        r2 = loaded.fit(X, y, epochs=1, **fit)
    assert [w.tobytes() for w in loaded.get_weights()] == [w.tobytes() for w in net.get_weights()]
    assert repr(r1.history[0]["loss"]) == repr(r2.history[0]["loss"])


@FUZZ
@given(case=trained_net(), data=st.data())
def test_load_edited_manifest(case, data):
    """A v2 file whose manifest or arrays were edited and re-checksummed: load works and predicts
    finite values, or raises ValueError naming the file; never another error."""
    import json
    from initlab.nn import persistence

    net, X, _, _ = case
    draw = data.draw
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.npz")
        net.save(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        manifest = json.loads(str(arrays["manifest"]))
        for _ in range(draw(st.integers(1, 3))):
            what = draw(st.integers(0, 5))
            entry = manifest[draw(st.integers(0, len(manifest) - 1))] if manifest else {}
            if what == 0 and entry.get("config"):
                key = draw(st.sampled_from(sorted(entry["config"])))
                entry["config"][key] = draw(st.one_of(st.sampled_from([None, 0, -1, 2**40, 1.5, "same", [1, 2],
                                                                       [0, 0], "x", {}, [1, 2, 3], True]),
                                                      st.integers(-3, 9)))
            elif what == 1:
                entry["type"] = draw(st.sampled_from(["Dense", "Conv2d", "MaxPool2d", "Flatten", "Nope", 3]))
            elif what == 2 and manifest:
                manifest.pop(draw(st.integers(0, len(manifest) - 1)))
            elif what == 3:
                arrays["input_shape"] = np.array(draw(st.lists(st.integers(-1, 6), max_size=4)), np.int64)
            elif what == 4:
                keys = [k for k in arrays if k[0] in "Wb" and k[1:].isdigit() or k.startswith("optimizer.")]
                if keys:
                    k = draw(st.sampled_from(sorted(keys)))
                    arrays[k] = draw(arrays_strategy_for(arrays[k]))
            else:
                entry["initializers"] = draw(st.sampled_from([{}, {"W": "nope"}, {"W": 3}, None]))
        arrays["manifest"] = np.array(json.dumps(manifest))
        arrays.pop("checksum")
        arrays["checksum"] = np.array(persistence.checksum(arrays))
        edited = os.path.join(tmp, "edited.npz")
        np.savez(edited, **arrays)
        with np.errstate(all="ignore"):
            ok, loaded = attempt(il.Network.load, edited)
        if not ok:
            assert isinstance(loaded, ValueError) and "edited.npz" in str(loaded), str(loaded)
            return
        ok, P = attempt(loaded.forward, X)
        if ok:
            assert np.isfinite(P).all()


def arrays_strategy_for(a):
    return st.one_of(finite_arrays(a.shape, a.dtype), arrays(max_dims=3),
                     st.just(np.full(a.shape, np.nan, a.dtype)), st.just(a.astype(np.float16)))


# =====================================================================================================
# il.theory: mean_field and critical_sigma_w2 on any parameters
# =====================================================================================================
THEORY_ACTIVATIONS = ["linear", "relu", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh", "softplus"]
SIGMA = st.one_of(st.floats(0, 4), st.floats(0, 1e-6), st.sampled_from([0.0, 1.0, 2.0, 1e-300, 1e300, 1e6]),
                  NUMBERS, JUNK)


@FUZZ
@given(activation=st.one_of(st.sampled_from(THEORY_ACTIVATIONS), st.sampled_from(ODD_ACTIVATIONS),
                            st.sampled_from(["nope", "softmax", ""]), JUNK),
       sigma_w2=SIGMA, sigma_b2=SIGMA, q0=st.one_of(st.just(1.0), SIGMA))
def test_theory_mean_field(activation, sigma_w2, sigma_b2, q0):
    with np.errstate(all="ignore"):
        ok, mf = attempt(il.theory.mean_field, activation, sigma_w2, sigma_b2, q0=q0)
    if not ok:
        return
    for key in ("q_star", "c_star", "chi_1", "xi_q", "xi_c"):
        assert not np.isnan(getattr(mf, key)), f"mean_field returned {key} = nan: {mf}"
    assert mf.q_star >= 0 and mf.chi_1 >= 0
    assert -1 - 1e-9 <= mf.c_star <= 1 + 1e-9
    if isinstance(activation, str) and 0 < mf.q_star < np.inf and 1e-3 < mf.q_star < 1e6:
        phi = il.theory._Phi(activation)
        q_next = il.theory.variance_map(phi, mf.q_star, float(sigma_w2), float(sigma_b2))
        assert abs(q_next - mf.q_star) <= 1e-6 * max(1.0, mf.q_star), "q_star is not a fixed point"


@FUZZ
@given(activation=st.one_of(st.sampled_from(THEORY_ACTIVATIONS), st.sampled_from(ODD_ACTIVATIONS[:4]), JUNK),
       sigma_b2=st.one_of(st.floats(0, 1), SIGMA))
def test_theory_critical_sigma_w2(activation, sigma_b2):
    with np.errstate(all="ignore"):
        ok, w2 = attempt(il.theory.critical_sigma_w2, activation, sigma_b2)
    if not ok:
        return
    assert isinstance(w2, float) and np.isfinite(w2) and w2 > 0
    with np.errstate(all="ignore"):
        mf = il.theory.mean_field(activation, w2, sigma_b2)
    assert abs(mf.chi_1 - 1.0) < 1e-6, f"chi_1 = {mf.chi_1} at the critical sigma_w2 {w2}"


# =====================================================================================================
# il.torch: to_torch / from_torch round trips, init_ with any spec, modules it cannot express
# =====================================================================================================
@FUZZ
@given(case=trained_net(), data=st.data())
def test_torch_round_trip(case, data):
    torch = pytest.importorskip("torch")
    net, X, _, _ = case
    ok, model = attempt(net.to_torch)
    assert ok, f"to_torch refused {net}: {model}"
    model.eval()  # dropout off, as in net.forward
    x = torch.from_numpy(np.ascontiguousarray(X))
    if x.ndim == 4:
        x = x.permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = model(x).numpy()
    P = {"softmax": lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(
        1, keepdims=True), "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "linear": lambda z: z}[net.output](
        logits.astype(np.float64))
    tol = 1e-4 if net.dtype == "float32" else 1e-10
    np.testing.assert_allclose(net.forward(X), P, rtol=tol, atol=tol)
    kw = {"input_shape": net.input_shape} if len(net.input_shape) == 3 else {}
    back = il.Network.from_torch(model, output=net.output, **kw)
    np.testing.assert_allclose(back.forward(X), net.forward(X), rtol=tol, atol=tol)
    if data.draw(st.booleans()):  # a module it cannot express: ValueError naming it
        extra = data.draw(st.sampled_from([torch.nn.BatchNorm1d(3), torch.nn.Conv1d(1, 1, 1), torch.nn.Softmax(1),
                                           torch.nn.LSTM(2, 2), torch.nn.Embedding(3, 2)]))
        bad = torch.nn.Sequential(*list(model), extra)
        with pytest.raises((ValueError, TypeError)) as e:
            il.Network.from_torch(bad, output=net.output, **kw)
        assert type(extra).__name__ in str(e.value)


@FUZZ
@given(init=st.one_of(spec_text(), INIT_SPECS), bias_init=st.one_of(st.sampled_from(["zeros", "normal(std=0.1)"]),
                                                                     INIT_SPECS),
       seed=SEEDS, dtype=st.sampled_from(["float32", "float64", "float16", "bfloat16"]))
def test_torch_init(init, bias_init, seed, dtype):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Conv2d(2, 3, 2),
                                torch.nn.Linear(4, 2, bias=False)).to(getattr(torch, dtype))
    before = [p.detach().clone() for p in model.parameters()]
    with np.errstate(all="ignore"):
        ok, out = attempt(il.torch.init_, model, init, bias_init=bias_init, seed=seed)
    if not ok:
        for p, b in zip(model.parameters(), before):
            assert torch.equal(p, b) or (torch.isnan(p) == torch.isnan(b)).all() and torch.equal(
                torch.nan_to_num(p), torch.nan_to_num(b)), "a refused init_ changed a parameter"
        return
    assert out is model
    for p in model.parameters():
        assert torch.isfinite(p).all()
    if dtype == "float32" and isinstance(init, str) and isinstance(seed, int) and not init.startswith("lsuv"):
        lin = model[0].weight.detach().numpy()
        expect = il.init.get(init)((4, 3), layout="out_in", seed=seed, stream=0)
        assert lin.tobytes() == expect.tobytes()


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


def test_regression_conv2d_sizes_beyond_int64_are_refused():
    # P*K = 2 * 2**31 * 2 * 2 * 2... wrapped to -2**63 (conv2d_workspace_size returned a negative size).
    geometry = dict(stride=(1, 1), dilation=(1, 1), padding=(0, 2**30, 0, 2**30))
    with pytest.raises(ValueError, match="2\\^63"):
        _core.conv2d_workspace_size([1, 1, 1, 2], [2, 2, 2, 1], **geometry)
    with pytest.raises(ValueError, match="'X'"):
        _core.conv2d_output_shape([1, 2**62, 3, 1], [2**40, 1, 1, 1], stride=(1, 1), dilation=(2**30, 1),
                                  padding=(0, 0, 0, 0))
    with pytest.raises(ValueError, match="'X'"):  # the padded input itself overflowed
        _core.conv2d_output_shape([1, 2**63 - 1, 1, 1], [1, 1, 1, 1], stride=(1, 1), dilation=(1, 1),
                                  padding=(1, 0, 0, 0))
    assert _core.conv2d_workspace_size([1, 3, 3, 2], [2, 2, 2, 1], stride=(1, 1), dilation=(1, 1),
                                       padding=(0, 1, 0, 1)) == 9 * 8


def test_regression_native_layer_input_sizes_beyond_int64_are_refused():
    # in_size H*W*C wrapped (global_avg_pool2d_layer: 2**90 -> 0; flatten_layer: 2**63 -> -2**63).
    with pytest.raises(ValueError, match="input_shape"):
        _core.global_avg_pool2d_layer([2**30, 2**30, 2**30], dtype="float32")
    with pytest.raises(ValueError, match="input_shape"):
        _core.flatten_layer([2, 2**62], dtype="float32")
    with pytest.raises(ValueError, match="input_shape"):  # h*w >= 2**31 was checked after wrapping
        _core.max_pool2d_layer([2**62, 4, 1], pool=(1, 1), stride=(1, 1), dtype="float32")
    assert _core.flatten_layer([2, 3, 4], dtype="float32").in_size == 24


def test_regression_update_ratio_of_a_zero_weight_last_batch():
    # The last batch of a statistics epoch weighed 0: it returned before saving W_before, and
    # update_ratio was computed from uninitialized memory (and differed between the two loops).
    X = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    y = np.array([0, 1])
    ratios = []
    saved = training.NATIVE_LOOP
    try:
        for native in (False, True):
            training.NATIVE_LOOP = native
            net = il.Network([3, 4, 2], seed=0)
            report = net.fit(X, y, epochs=2, batch_size=1, shuffle=False, stats_every=1, lr=1e-3,
                             sample_weight=np.array([1.0, 0.0]), progress=False)
            ratios.append([row["update_ratio"] for rows in report.layer_stats[1:] for row in rows])
    finally:
        training.NATIVE_LOOP = saved
    assert ratios[0] == ratios[1] == [0.0] * 4


def test_regression_bytes_labels_save_and_load(tmp_path):
    # fit took bytes labels and save wrote them, but load refused its own file (classes_ dtype |S1).
    X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    y = np.array([b"p", b"q", b"r", b"p", b"q", b"r"])
    net = il.Network([4, 3], seed=0)
    net.fit(X, y, epochs=1, progress=False)
    net.save(tmp_path / "net.npz")
    loaded = il.Network.load(tmp_path / "net.npz")
    assert np.array_equal(loaded.classes_, net.classes_) and loaded.classes_.dtype == net.classes_.dtype
    assert np.array_equal(loaded.predict(X), net.predict(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_huge_and_tiny_row_weights(dtype):
    # Finite weights the API allows: 1e300 became inf in float32 (a ValueError from the loss kernel
    # naming 'weights'), two 1e308 summed to inf in double (NaN loss, diverged=False), 1e200 * 1e200
    # overflowed, and 5e-324 gave 1/sum(w) = inf. A power-of-two rescaling changes no bit otherwise;
    # a weight below 2**-1022 after it counts as 0.
    X = np.random.default_rng(1).standard_normal((3, 3)).astype(dtype)
    y = np.array([0, 1, 2])

    def fit(**kw):
        net = il.Network([3, 4, 3], seed=0, dtype=dtype)
        report = net.fit(X, y, epochs=2, batch_size=2, progress=False, **kw)
        assert not report.diverged and all(np.isfinite(h["loss"]) for h in report.history)
        return [w.tobytes() for w in net.get_weights()], [h["loss"] for h in report.history]

    ones = fit(sample_weight=np.ones(3))
    for w in (2.0 ** 900, 2.0 ** -1070, 2.0 ** 1023):
        assert fit(sample_weight=np.full(3, w)) == ones  # exact power-of-two scalings: the same bits
    fit(sample_weight=np.array([1e308, 1e308, 1.0]))
    fit(sample_weight=np.array([1e200, 1.0, 1.0]), class_weight={0: 1e200, 1: 1e-300})
    fit(sample_weight=np.array([5e-324, 5e-324, 0.0]))
    fit(sample_weight=np.array([1.0, 1.0, 1e-320]))  # the last batch counts as weight 0: no step
    fit(class_weight={0: 1e300})


def test_regression_lr_schedule_callable_errors_name_the_argument():
    # A callable of the wrong signature (lambda: 0.1) raised the bare TypeError of the call, and one
    # failing for some epoch (1 / (e - 1)) a ZeroDivisionError, neither naming lr_schedule.
    net = il.Network([3, 4, 3], seed=0)
    X, y = np.zeros((3, 3), np.float32), np.array([0, 1, 2])
    before = [w.tobytes() for w in net.get_weights()]
    with pytest.raises(TypeError, match="lr_schedule.*epoch=0"):
        net.fit(X, y, epochs=1, lr_schedule=lambda: 0.1, progress=False)
    with pytest.raises(ValueError, match="lr_schedule.*epoch=1.*ZeroDivisionError"):
        net.fit(X, y, epochs=3, lr_schedule=lambda e: 1 / (e - 1) ** 2, progress=False)
    assert [w.tobytes() for w in net.get_weights()] == before


def test_regression_epochs_beyond_what_fit_can_schedule():
    # epochs=2**70 raised OverflowError from [lr] * epochs (and 2**40 would allocate terabytes):
    # fit lists every epoch's lr before the first step, so epochs has a documented maximum.
    net = il.Network([3, 4, 3], seed=0)
    X, y = np.zeros((3, 3), np.float32), np.array([0, 1, 2])
    for epochs in (2**70, 2**40, training.MAX_EPOCHS + 1):
        with pytest.raises(ValueError, match="epochs"):
            net.fit(X, y, epochs=epochs, progress=False)
    report = net.fit(X, y, epochs=training.MAX_EPOCHS, progress=False, callbacks=[il.EarlyStopping(
        monitor="loss", patience=0, min_delta=1e9)])  # the maximum itself is fine
    assert 1 <= len(report.history) < 5
