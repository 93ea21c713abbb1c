"""API.md as an outside checker reads it: sections "Package level", "Initializers", "Raw randomness",
"Networks" and "Errors". Every name, argument name and default is written out here again (not read
from the registries), and every semantic is checked on real values against formulas computed in
this file, so a drift between API.md and the package fails here.
"""
import inspect
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import initlab as il

# =====================================================================================
# Package level
# =====================================================================================


def test_package_level_names_and_info():
    assert isinstance(il.__version__, str) and il.__version__[0].isdigit()
    assert list(inspect.signature(il.set_num_threads).parameters) == ["n"]
    assert list(inspect.signature(il.get_num_threads).parameters) == []
    info = il.info()
    for key in ("version", "compiler", "simd", "openmp", "threads"):
        assert key in info, key
    assert info["version"] == il.__version__
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert isinstance(info["simd"], str) and info["simd"]
    assert info["threads"] == il.get_num_threads()
    pyproject = os.path.join(os.path.dirname(__file__), os.pardir, "pyproject.toml")
    if os.path.exists(pyproject):
        assert f'version = "{il.__version__}"' in open(pyproject).read()


def test_set_num_threads_roundtrip_and_errors():
    before = il.get_num_threads()
    try:
        il.set_num_threads(1)
        assert il.get_num_threads() == 1 and il.info()["threads"] == 1
        il.set_num_threads(3)
        assert il.get_num_threads() == 3
    finally:
        il.set_num_threads(before)
    with pytest.raises(ValueError, match="n"):
        il.set_num_threads(0)
    with pytest.raises(TypeError, match="n"):
        il.set_num_threads(2.0)
    for huge in (10 ** 6, 2 ** 31, 2 ** 70):  # a team this large crashed the OpenMP runtime
        with pytest.raises(ValueError, match="n must be >= 1 and <= 1024"):
            il.set_num_threads(huge)
    assert il.get_num_threads() == before


def _threads_in_fresh_process(env_threads):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env_threads is not None:
        env["OMP_NUM_THREADS"] = env_threads
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    code = ("import initlab; n = initlab.get_num_threads(); "
            "initlab.init.normal((300, 300), seed=0); print(n)")  # a parallel kernel runs
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_default_threads_follow_omp_num_threads_else_all_cores():
    assert _threads_in_fresh_process("1") == 1
    assert _threads_in_fresh_process("3") == 3
    cores = {os.cpu_count(), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0}
    assert _threads_in_fresh_process(None) in cores
    assert _threads_in_fresh_process("1000000") == 1024  # clamped, not a crash


# =====================================================================================
# Initializers: names, signatures, defaults (API.md's table, written out again)
# =====================================================================================
REQ = inspect.Parameter.empty
TABLE = {  # name: (aliases, params with defaults in order)
    "zeros": ((), {}),
    "ones": ((), {}),
    "constant": ((), {"value": REQ}),
    "uniform": ((), {"low": -0.05, "high": 0.05}),
    "normal": ((), {"mean": 0.0, "std": 0.05}),
    "truncated_normal": ((), {"mean": 0.0, "std": 0.05, "a": -2.0, "b": 2.0}),
    "small_random": ((), {"scale": 0.01}),
    "xavier_uniform": (("glorot_uniform",), {"gain": 1.0}),
    "xavier_normal": (("glorot_normal",), {"gain": 1.0}),
    "he_uniform": (("kaiming_uniform",), {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"}),
    "he_normal": (("kaiming_normal",), {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"}),
    "lecun_uniform": ((), {}),
    "lecun_normal": ((), {}),
    "variance_scaling": ((), {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}),
    "torch_default": (("standard_uniform",), {}),
    "orthogonal": ((), {"gain": 1.0}),
    "identity": (("eye",), {"gain": 1.0}),
    "dirac": ((), {"groups": 1}),
    "delta_orthogonal": ((), {"gain": 1.0}),
    "sparse": ((), {"sparsity": REQ, "std": 0.01}),
}
ALL_NAMES = sorted(list(TABLE) + [a for aliases, _ in TABLE.values() for a in aliases])
# A shape and the required parameters each scheme accepts in both layouts.
EXAMPLE = {"dirac": ((4, 2, 3, 3), {}), "delta_orthogonal": ((3, 3, 4, 6), {}),
           "constant": ((6, 5), {"value": 0.25}), "sparse": ((6, 5), {"sparsity": 0.5}),
           "identity": ((4, 6), {})}


def _canonical(name):
    for canon, (aliases, _) in TABLE.items():
        if name == canon or name in aliases:
            return canon
    raise KeyError(name)


def test_names_are_the_sorted_canonical_names():
    assert il.init.names() == sorted(TABLE)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_signatures_and_defaults(name):
    params = TABLE[_canonical(name)][1]
    for fn_name, first, common in ((name, "shape", {"dtype": "float32"}), (name + "_", "array", {})):
        fn = getattr(il.init, fn_name)
        sig = inspect.signature(fn).parameters
        assert list(sig)[0] == first
        expected = dict(common, seed=None, stream=0, layout="in_out")
        for arg, default in expected.items():
            assert arg in sig, (fn_name, arg)
            assert sig[arg].kind == inspect.Parameter.KEYWORD_ONLY
            assert sig[arg].default == default, (fn_name, arg)
        for arg, default in params.items():  # **params: the scheme's own, with API.md's defaults
            assert arg in sig and sig[arg].default == default, (fn_name, arg)
    assert il.init.get(name) is getattr(il.init, name)


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("layout", ["in_out", "out_in"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_scheme_new_and_inplace(name, layout, dtype):
    shape, params = EXAMPLE.get(_canonical(name), ((6, 5), {}))
    fn, fn_ = getattr(il.init, name), getattr(il.init, name + "_")
    W = fn(shape, dtype=dtype, seed=7, stream=3, layout=layout, **params)
    assert isinstance(W, np.ndarray) and W.shape == shape and W.dtype == np.dtype(dtype)
    assert W.flags.c_contiguous and np.isfinite(W).all()
    buf = np.full(shape, np.nan, dtype=dtype)
    out = fn_(buf, seed=7, stream=3, layout=layout, **params)
    assert out is buf
    np.testing.assert_array_equal(buf, W)
    np.testing.assert_array_equal(fn(shape, dtype=dtype, seed=7, stream=3, layout=layout, **params), W)
    canon = _canonical(name)
    if canon not in ("zeros", "ones", "constant", "identity", "dirac"):
        other = fn(shape, dtype=dtype, seed=8, stream=3, layout=layout, **params)
        assert not np.array_equal(other, W)
        other = fn(shape, dtype=dtype, seed=7, stream=4, layout=layout, **params)
        assert not np.array_equal(other, W)


def test_aliases_draw_the_same_values():
    for canon, (aliases, _) in TABLE.items():
        shape, params = EXAMPLE.get(canon, ((6, 5), {}))
        for alias in aliases:
            np.testing.assert_array_equal(getattr(il.init, alias)(shape, seed=1, **params),
                                          getattr(il.init, canon)(shape, seed=1, **params))


# ---- semantics: statistics with enough samples to fail on a real error ------------------------
N_ROWS, N_COLS = 1000, 100  # in_out: fan_in 1000, fan_out 100; avg 550, geo 316: all far apart
FAN_IN, FAN_OUT = N_ROWS, N_COLS


def _std_close(W, std, rel=0.02):
    assert W.std() == pytest.approx(std, rel=rel), (W.std(), std)
    assert abs(W.mean()) < 5 * std / math.sqrt(W.size)


def _uniform_bound(W, bound):
    assert np.abs(W).max() <= bound * (1 + 1e-6)
    assert np.abs(W).max() > bound * 0.999  # 1e5 draws reach the edge
    _std_close(W, bound / math.sqrt(3))


@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_fan_schemes_scale(layout):
    shape = (N_ROWS, N_COLS) if layout == "in_out" else (N_COLS, N_ROWS)
    kw = dict(seed=11, layout=layout, dtype="float64")
    i, o = FAN_IN, FAN_OUT
    _uniform_bound(il.init.xavier_uniform(shape, gain=2.0, **kw), 2 * math.sqrt(6 / (i + o)))
    _std_close(il.init.xavier_normal(shape, gain=0.5, **kw), 0.5 * math.sqrt(2 / (i + o)))
    _uniform_bound(il.init.he_uniform(shape, **kw), math.sqrt(2) * math.sqrt(3 / i))
    _uniform_bound(il.init.he_uniform(shape, mode="fan_out", **kw), math.sqrt(2) * math.sqrt(3 / o))
    g = math.sqrt(2 / (1 + 0.3 ** 2))
    _std_close(il.init.he_normal(shape, a=0.3, nonlinearity="leaky_relu", **kw), g / math.sqrt(i))
    _std_close(il.init.he_normal(shape, mode="fan_out", nonlinearity="tanh", **kw), 5 / 3 / math.sqrt(o))
    _uniform_bound(il.init.lecun_uniform(shape, **kw), math.sqrt(3 / i))
    _std_close(il.init.lecun_normal(shape, **kw), math.sqrt(1 / i))
    _uniform_bound(il.init.torch_default(shape, **kw), 1 / math.sqrt(i))
    _uniform_bound(il.init.standard_uniform(shape, **kw), 1 / math.sqrt(i))


def test_named_normals_are_plain_normals():
    W = il.init.he_normal((N_ROWS, N_COLS), seed=3, dtype="float64")
    std = math.sqrt(2 / FAN_IN)
    assert np.abs(W).max() > 3.5 * std  # not truncated at 2 std
    kurtosis = ((W / W.std()) ** 4).mean()
    assert kurtosis == pytest.approx(3.0, abs=0.1)


def test_torch_default_matches_nn_linear():
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(300, 40)
    bound = 1 / math.sqrt(300)
    assert lin.weight.abs().max().item() <= bound
    W = il.init.torch_default((40, 300), layout="out_in", seed=0)
    assert np.abs(W).max() <= bound * (1 + 1e-6) and np.abs(W).max() > 0.99 * bound


@pytest.mark.parametrize("mode,fan", [("fan_in", FAN_IN), ("fan_out", FAN_OUT),
                                      ("fan_avg", (FAN_IN + FAN_OUT) / 2),
                                      ("fan_geo_avg", math.sqrt(FAN_IN * FAN_OUT))])
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
@pytest.mark.parametrize("layout", ["in_out", "out_in"])
def test_variance_scaling_variance_is_scale_over_fan(mode, fan, distribution, layout):
    shape = (N_ROWS, N_COLS) if layout == "in_out" else (N_COLS, N_ROWS)
    W = il.init.variance_scaling(shape, scale=3.0, mode=mode, distribution=distribution,
                                 layout=layout, seed=5, dtype="float64")
    variance = 3.0 / fan
    _std_close(W, math.sqrt(variance))
    if distribution == "uniform":
        _uniform_bound(W, math.sqrt(3 * variance))
    elif distribution == "truncated_normal":
        sigma = math.sqrt(variance) / 0.87962566103423978
        assert np.abs(W).max() <= 2 * sigma * (1 + 1e-9)
        assert np.abs(W).max() > 1.95 * sigma
    else:
        assert np.abs(W).max() > 3.5 * math.sqrt(variance)


def test_variance_scaling_default_is_truncated_fan_in_scale_1():
    W = il.init.variance_scaling((N_ROWS, N_COLS), seed=2, dtype="float64")
    _std_close(W, math.sqrt(1 / FAN_IN))
    assert np.abs(W).max() <= 2 * math.sqrt(1 / FAN_IN) / 0.87962566103423978 * (1 + 1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_schemes(dtype):
    shape = (400, 250)
    W = il.init.uniform(shape, seed=1, dtype=dtype)
    assert W.min() >= -0.05 and W.max() <= 0.05 and W.max() > 0.0499
    W = il.init.uniform(shape, low=2.0, high=5.0, seed=1, dtype=dtype)
    assert W.min() >= 2.0 and W.max() <= 5.0 and W.mean() == pytest.approx(3.5, abs=0.01)
    _std_close(il.init.normal(shape, seed=1, dtype=dtype), 0.05)
    W = il.init.normal(shape, mean=-3.0, std=2.0, seed=1, dtype=dtype)
    assert W.mean() == pytest.approx(-3.0, abs=0.02) and W.std() == pytest.approx(2.0, rel=0.02)
    _std_close(il.init.small_random(shape, seed=1, dtype=dtype), 0.01)
    _std_close(il.init.small_random(shape, scale=0.3, seed=1, dtype=dtype), 0.3)
    np.testing.assert_array_equal(il.init.zeros(shape, dtype=dtype), 0)
    np.testing.assert_array_equal(il.init.ones(shape, dtype=dtype), 1)
    np.testing.assert_array_equal(il.init.constant(shape, value=-2.5, dtype=dtype), -2.5)


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 0.05, -2.0, 2.0), (1.0, 2.0, -0.5, 3.0),
                                          (-1.0, 0.5, 1.0, 2.5)])
def test_truncated_normal_bounds_are_in_units_of_std(mean, std, a, b):
    W = il.init.truncated_normal((500, 200), mean=mean, std=std, a=a, b=b, seed=4, dtype="float64")
    lo, hi = mean + a * std, mean + b * std
    assert W.min() >= lo and W.max() <= hi
    assert W.min() < lo + 0.01 * std and W.max() > hi - 0.05 * std
    # The truncated normal's mean: mean + std (phi(a) - phi(b)) / (Phi(b) - Phi(a)).
    phi = lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))  # noqa: E731
    expected = mean + std * (phi(a) - phi(b)) / (Phi(b) - Phi(a))
    assert W.mean() == pytest.approx(expected, abs=0.01 * std)


def test_truncated_normal_defaults():
    W = il.init.truncated_normal((500, 200), seed=4, dtype="float64")
    assert W.min() >= -0.1 and W.max() <= 0.1 and W.max() > 0.099


def test_fan_overrides_on_biases():
    b = il.init.he_normal((100000,), fan_in=50, seed=0, dtype="float64")
    _std_close(b, math.sqrt(2 / 50))
    b = il.init.he_uniform((100000,), fan_out=40, mode="fan_out", seed=0, dtype="float64")
    _uniform_bound(b, math.sqrt(2) * math.sqrt(3 / 40))
    b = il.init.xavier_uniform((100000,), fan_in=30, fan_out=70, seed=0, dtype="float64")
    _uniform_bound(b, math.sqrt(6 / 100))
    b = il.init.lecun_normal((100000,), fan_in=9, seed=0, dtype="float64")
    _std_close(b, 1 / 3)
    b = il.init.torch_default((100000,), fan_in=16, seed=0, dtype="float64")
    _uniform_bound(b, 0.25)
    b = il.init.variance_scaling((100000,), fan_in=10, fan_out=30, mode="fan_avg",
                                 distribution="normal", seed=0, dtype="float64")
    _std_close(b, math.sqrt(1 / 20))
    b = il.init.lecun_normal((), fan_in=4, seed=0)
    assert b.shape == () and np.isfinite(b)
    # The overrides also beat the shape's own fans.
    W = il.init.lecun_normal((10, 10000), fan_in=400, seed=0, dtype="float64")
    _std_close(W, 0.05)
    b = np.empty(100000)
    il.init.he_normal_(b, fan_in=8, seed=0)
    _std_close(b, 0.5)


@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
                                  "lecun_uniform", "lecun_normal", "variance_scaling", "torch_default"])
@pytest.mark.parametrize("shape", [(), (7,)])
def test_fan_schemes_reject_fewer_than_2_dims(name, shape):
    with pytest.raises(ValueError, match="fan_in"):
        getattr(il.init, name)(shape, seed=0)


@pytest.mark.parametrize("name,params", [("zeros", {}), ("ones", {}), ("constant", {"value": 2.0}),
                                         ("uniform", {}), ("normal", {}), ("truncated_normal", {}),
                                         ("small_random", {})])
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4, 5, 6)])
def test_elementwise_schemes_accept_any_shape(name, params, shape):
    W = getattr(il.init, name)(shape, seed=0, **params)
    assert W.shape == shape and np.isfinite(W).all()
    arr = np.empty(shape, dtype=np.float64)
    assert getattr(il.init, name + "_")(arr, seed=0, **params) is arr


def test_element_i_depends_only_on_seed_stream_i():
    for dtype in ("float32", "float64"):
        for name, params in (("uniform", {}), ("normal", {}), ("truncated_normal", {}),
                             ("small_random", {})):
            fn = getattr(il.init, name)
            long = fn((1001,), seed=9, stream=2 ** 40 + 3, dtype=dtype, **params)
            for n in (1, 2, 3, 500, 999):
                short = fn((n,), seed=9, stream=2 ** 40 + 3, dtype=dtype, **params)
                np.testing.assert_array_equal(short, long[:n])
            np.testing.assert_array_equal(fn((7, 11, 13), seed=9, stream=2 ** 40 + 3, dtype=dtype,
                                             **params).ravel(), long[:1001])


def test_thread_count_does_not_change_values():
    before = il.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 5):
            il.set_num_threads(threads)
            outs.append([il.init.he_normal((300, 301), seed=1), il.init.truncated_normal((999,), seed=1),
                         il.init.orthogonal((64, 32), seed=1), il.init.sparse((50, 40), sparsity=0.3, seed=1)])
        for other in outs[1:]:
            for a, b in zip(outs[0], other):
                np.testing.assert_array_equal(a, b)
    finally:
        il.set_num_threads(before)


def test_seed_none_is_fresh_and_seed_range():
    assert not np.array_equal(il.init.normal((64,)), il.init.normal((64,)))
    il.init.normal((4,), seed=2 ** 64 - 1, stream=2 ** 64 - 1)
    for bad in (-1, 2 ** 64):
        with pytest.raises(ValueError, match="seed"):
            il.init.normal((4,), seed=bad)
        with pytest.raises(ValueError, match="stream"):
            il.init.normal((4,), seed=0, stream=bad)
    with pytest.raises(TypeError, match="seed"):
        il.init.normal((4,), seed=1.5)
    with pytest.raises(TypeError, match="seed"):
        il.init.normal((4,), seed="1")


# ---- structured schemes --------------------------------------------------------------------------
@pytest.mark.parametrize("rows,cols", [(30, 11), (10, 3), (64, 64)])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.34, 0.9])
def test_sparse_zeros_per_column(rows, cols, sparsity):
    for layout in ("in_out", "out_in"):
        W = il.init.sparse((rows, cols), sparsity=sparsity, seed=2, layout=layout, dtype="float64")
        zeros_per_column = (W == 0).sum(axis=0)
        np.testing.assert_array_equal(zeros_per_column, math.ceil(sparsity * rows))
    W = il.init.sparse((2000, 50), sparsity=0.2, std=0.3, seed=1, dtype="float64")
    assert W[W != 0].std() == pytest.approx(0.3, rel=0.02)
    assert il.init.sparse((2000, 50), sparsity=0.2, seed=1, dtype="float64")[W != 0].std() == \
        pytest.approx(0.01, rel=0.02)


def test_sparse_matches_torch_zero_counts():
    torch = pytest.importorskip("torch")
    t = torch.empty(37, 8)
    torch.nn.init.sparse_(t, sparsity=0.3)
    W = il.init.sparse((37, 8), sparsity=0.3, seed=0)
    np.testing.assert_array_equal((W == 0).sum(0), (t == 0).sum(0).numpy())


def test_identity():
    np.testing.assert_array_equal(il.init.identity((4, 4)), np.eye(4))
    np.testing.assert_array_equal(il.init.eye((3, 5), gain=2.5), 2.5 * np.eye(3, 5))
    np.testing.assert_array_equal(il.init.identity((5, 3), dtype="float64"), np.eye(5, 3))
    for shape in ((4,), (2, 2, 2)):
        with pytest.raises(ValueError, match="shape"):
            il.init.identity(shape)


@pytest.mark.parametrize("shape,groups", [((4, 4, 3), 1), ((6, 4, 3, 3), 1), ((8, 2, 3, 3), 2),
                                          ((4, 4, 3, 3, 3), 1), ((6, 3, 5, 4), 3)])
def test_dirac_is_identity_at_the_centre_tap(shape, groups):
    W = il.init.dirac(shape, groups=groups, layout="out_in", dtype="float64")
    expected = np.zeros(shape)
    out_per_group = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(min(out_per_group, shape[1])):
            expected[(g * out_per_group + d, d) + centre] = 1.0
    np.testing.assert_array_equal(W, expected)
    torch = pytest.importorskip("torch")
    t = torch.empty(shape, dtype=torch.float64)
    torch.nn.init.dirac_(t, groups=groups)
    np.testing.assert_array_equal(W, t.numpy())
    # in_out (*receptive, in, out) holds the same operator, transposed.
    in_out = tuple(shape[2:]) + (shape[1], shape[0])
    V = il.init.dirac(in_out, groups=groups, layout="in_out", dtype="float64")
    np.testing.assert_array_equal(V, np.moveaxis(W, (0, 1), (-1, -2)))


def test_delta_orthogonal():
    W = il.init.delta_orthogonal((3, 3, 8, 16), gain=1.5, seed=0, dtype="float64")
    centre = W[1, 1]
    np.testing.assert_allclose(centre @ centre.T, 1.5 ** 2 * np.eye(8), atol=1e-12)
    rest = W.copy()
    rest[1, 1] = 0
    np.testing.assert_array_equal(rest, 0)
    W = il.init.delta_orthogonal((5, 4, 3, 3), seed=0, dtype="float64", layout="out_in")
    tap = W[:, :, 1, 1]  # (out, in): orthonormal columns
    np.testing.assert_allclose(tap.T @ tap, np.eye(4), atol=1e-12)
    assert np.count_nonzero(W) == np.count_nonzero(tap)


@pytest.mark.parametrize("shape,layout", [((20, 50), "in_out"), ((50, 20), "in_out"),
                                          ((3, 4, 10), "in_out"), ((10, 3, 2, 2), "out_in"),
                                          ((30, 4), "out_in")])
def test_orthogonal(shape, layout):
    W = il.init.orthogonal(shape, gain=2.0, layout=layout, seed=1, dtype="float64")
    M = W.reshape(-1, shape[-1]) if layout == "in_out" else W.reshape(shape[0], -1)
    small = M.T @ M if M.shape[0] >= M.shape[1] else M @ M.T
    np.testing.assert_allclose(small, 4.0 * np.eye(small.shape[0]), atol=1e-12)


# ---- gains, fans, get, errors --------------------------------------------------------------------
def test_gain_values():
    assert list(inspect.signature(il.init.gain).parameters.items())[1][1].default is None
    for name in ("linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid"):
        assert il.init.gain(name) == 1.0
    assert il.init.gain("tanh") == pytest.approx(5 / 3, rel=1e-15)
    assert il.init.gain("relu") == pytest.approx(math.sqrt(2), rel=1e-15)
    assert il.init.gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)), rel=1e-15)
    assert il.init.gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04), rel=1e-15)
    assert il.init.gain("leaky_relu", param=0.0) == pytest.approx(math.sqrt(2), rel=1e-15)
    assert il.init.gain("selu") == 0.75
    for name in ("elu", "gelu", "softplus"):  # documented: the variance-preserving gain
        g = il.init.gain(name)
        assert g == pytest.approx(il.init.estimate_gain(name), rel=1e-9)
        assert name in il.init.gain.__doc__
    torch = pytest.importorskip("torch")
    for name, param in (("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.3),
                        ("selu", None), ("sigmoid", None), ("conv2d", None)):
        assert il.init.gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


def test_estimate_gain():
    assert il.init.estimate_gain("relu") == pytest.approx(math.sqrt(2), rel=1e-10)
    assert il.init.estimate_gain("linear") == pytest.approx(1.0, rel=1e-10)
    assert il.init.estimate_gain(lambda z: 3.0 * z) == pytest.approx(1 / 3, rel=1e-10)
    assert il.init.estimate_gain(lambda z: np.maximum(z, 0) * 2) == pytest.approx(math.sqrt(2) / 2,
                                                                                  rel=1e-10)
    # tanh: E[tanh(z)^2] by a plain Riemann sum on a fine grid.
    z = np.linspace(-12, 12, 400001)
    second = np.sum(np.tanh(z) ** 2 * np.exp(-z * z / 2)) * (z[1] - z[0]) / math.sqrt(2 * math.pi)
    assert il.init.estimate_gain("tanh") == pytest.approx(1 / math.sqrt(second), rel=1e-8)
    assert il.init.estimate_gain(np.tanh) == pytest.approx(1 / math.sqrt(second), rel=1e-8)
    with pytest.raises(ValueError, match="relu"):
        il.init.estimate_gain("nope")


def test_fans_on_both_layouts():
    assert list(inspect.signature(il.init.fans).parameters.items())[1][1].default == "in_out"
    assert il.init.fans((5, 7)) == (5, 7)
    assert il.init.fans((5, 7), layout="out_in") == (7, 5)
    assert il.init.fans((3, 3, 16, 32)) == (144, 288)
    assert il.init.fans((32, 16, 3, 3), layout="out_in") == (144, 288)
    assert il.init.fans((2, 4, 5), layout="in_out") == (8, 10)
    with pytest.raises(ValueError, match="shape"):
        il.init.fans((4,))


def test_get():
    fn = lambda shape, seed, stream: np.zeros(shape)  # noqa: E731
    assert il.init.get(fn) is fn
    np.testing.assert_array_equal(il.init.get("glorot_uniform")((5, 4), seed=3),
                                  il.init.xavier_uniform((5, 4), seed=3))
    assert il.init.get("he_normal") is il.init.he_normal


@pytest.mark.parametrize("call", [lambda: il.init.get("he_nromal"), lambda: il.init.get("lsuv"),
                                  lambda: il.Network([3, 2], init="he_nromal", seed=0),
                                  lambda: il.Network([3, 2], bias_init="nope", seed=0)])
def test_unknown_names_list_the_valid_names(call):
    with pytest.raises(ValueError) as err:
        call()
    for name in ("he_normal", "xavier_uniform", "orthogonal", "zeros"):
        assert name in str(err.value)


@pytest.mark.parametrize("call,error,words", [
    (lambda: il.init.he_normal((4, 4), dtype="int32"), ValueError, ["dtype", "int32", "float32"]),
    (lambda: il.init.he_normal((4, 4), layout="io"), ValueError, ["layout", "io", "out_in"]),
    (lambda: il.init.he_normal((4, 4), mode="fan_avg"), ValueError, ["mode", "fan_avg", "fan_out"]),
    (lambda: il.init.variance_scaling((4, 4), distribution="x"), ValueError, ["distribution", "uniform"]),
    (lambda: il.init.he_normal((4, -1)), ValueError, ["shape", "-1"]),
    (lambda: il.init.he_normal("4x4"), TypeError, ["shape"]),
    (lambda: il.init.normal((4,), std="big"), TypeError, ["std"]),
    (lambda: il.init.normal((4,), std=float("nan")), ValueError, ["std", "nan"]),
    (lambda: il.init.normal((4,), sdt=1.0), TypeError, ["sdt", "std"]),
    (lambda: il.init.constant((4,)), TypeError, ["value"]),
    (lambda: il.init.sparse((4, 4)), TypeError, ["sparsity"]),
    (lambda: il.init.sparse((4, 4), sparsity=1.5), ValueError, ["sparsity", "1.5"]),
    (lambda: il.init.he_normal((4, 4), fan_in=-3), ValueError, ["fan_in", "-3"]),
    (lambda: il.init.zeros_(np.zeros((4, 4), np.int64)), TypeError, ["array", "int64", "float32"]),
    (lambda: il.init.zeros_(np.zeros((4, 4))[:, ::2]), ValueError, ["array", "contiguous"]),
    (lambda: il.init.zeros_([0.0, 1.0]), TypeError, ["array", "list"]),
    (lambda: il.init.gain("relux"), ValueError, ["relux", "relu", "tanh"]),
    (lambda: il.init.gain(3), TypeError, ["nonlinearity"]),
    (lambda: il.init.fans((4, 4), layout="x"), ValueError, ["layout"]),
    (lambda: il.init.normal((4,), std=1e300), ValueError, ["normal", "float32"]),
    (lambda: il.init.uniform((4,), low=-1e308, high=1e308, dtype="float64"), ValueError, ["float64"]),
    (lambda: il.init.constant((4,), value=1e39), ValueError, ["constant", "float32"]),
    (lambda: il.init.xavier_uniform((4, 4), gain=1e300), ValueError, ["xavier_uniform", "float32"]),
    (lambda: il.init.orthogonal((4, 4), gain=1e39), ValueError, ["orthogonal", "float32"]),
    (lambda: il.init.estimate_gain(math.tanh), TypeError, ["activation", "vectorized"]),
    (lambda: il.init.estimate_gain(3), TypeError, ["activation", "int"]),
    (lambda: il.random.philox4x32(5, (0, 0)), TypeError, ["counter", "5"]),
    (lambda: il.random.philox4x32((0, 0, 0, 0), None), TypeError, ["key", "None"]),
    (lambda: il.random.philox4x32((0, 0, 0, 0), (0, 0), rounds=0), ValueError, ["rounds", "0"]),
])
def test_init_errors_name_the_argument(call, error, words):
    with pytest.raises(error) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_inplace_rejects_read_only_without_writing():
    arr = np.full((4, 4), 7.0)
    arr.flags.writeable = False
    with pytest.raises(ValueError, match="writ"):
        il.init.normal_(arr, seed=0)
    np.testing.assert_array_equal(arr, 7.0)
    arr = np.full((4, 4), 7.0)
    with pytest.raises(ValueError):
        il.init.normal_(arr, seed=0, std=-1.0)
    np.testing.assert_array_equal(arr, 7.0)
    arr = np.full((4, 4), 7.0, dtype=np.float32)
    with pytest.raises(ValueError, match="float32"):  # would overflow to inf in float32
        il.init.normal_(arr, seed=0, std=1e300)
    np.testing.assert_array_equal(arr, 7.0)
    assert np.isfinite(il.init.normal((4, 4), std=1e300, seed=0, dtype="float64")).all()


# =====================================================================================
# Raw randomness
# =====================================================================================
KAT = [  # Random123 kat_vectors (philox4x32, rounds, counter, key, output)
    (10, (0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (10, (0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (10, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    (7, (0, 0, 0, 0), (0, 0), (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    (7, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)),
]


def test_philox_known_answers():
    sig = inspect.signature(il.random.philox4x32).parameters
    assert list(sig) == ["counter", "key", "rounds"] and sig["rounds"].default == 10
    for rounds, counter, key, expected in KAT:
        out = il.random.philox4x32(counter, key, rounds=rounds)
        assert isinstance(out, tuple) and len(out) == 4 and all(isinstance(w, int) for w in out)
        assert out == expected
        if rounds == 10:
            assert il.random.philox4x32(list(counter), list(key)) == expected
    with pytest.raises(ValueError, match="counter"):
        il.random.philox4x32((0, 0, 0), (0, 0))
    with pytest.raises(ValueError, match="key"):
        il.random.philox4x32((0, 0, 0, 0), (0, 2 ** 32))


def test_uniform_rederived_from_the_documented_mapping():
    """The docstring's recipe in plain numpy: key = seed, counter = (block, stream), word i ->
    u = (2 (word >> 9) + 1) 2^-24 (float32), 64-bit words -> (2 (W >> 12) + 1) 2^-53 (float64)."""
    doc = il.random.__doc__
    for word in ("key", "counter", "stream", "uniform", "normal"):
        assert word in doc
    seed, stream = 0x1234_5678_9ABC_DEF0, 2 ** 33 + 5
    key = (seed & 0xFFFFFFFF, seed >> 32)

    def word(j):
        block = j // 4
        counter = (block & 0xFFFFFFFF, block >> 32, stream & 0xFFFFFFFF, stream >> 32)
        return il.random.philox4x32(counter, key)[j % 4]

    n = 10
    u32 = il.init.uniform((n,), low=0.0, high=1.0, seed=seed, stream=stream, dtype="float32")
    expected = np.array([(2 * (word(i) >> 9) + 1) * 2.0 ** -24 for i in range(n)], dtype=np.float32)
    np.testing.assert_array_equal(u32, expected)
    u64 = il.init.uniform((n,), low=0.0, high=1.0, seed=seed, stream=stream, dtype="float64")
    big = [word(2 * i) | (word(2 * i + 1) << 32) for i in range(n)]
    np.testing.assert_array_equal(u64, np.array([(2 * (w >> 12) + 1) * 2.0 ** -53 for w in big]))


# =====================================================================================
# Networks
# =====================================================================================
def _erf(x):
    return np.vectorize(math.erf, otypes=[float])(x)


HIDDEN = {  # PyTorch's definitions, with its defaults
    "linear": lambda z: z,
    "relu": lambda z: np.maximum(z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "selu": lambda z: 1.0507009873554804934193349852946 * np.where(
        z > 0, z, 1.6732632423543772848170429916717 * np.expm1(np.minimum(z, 0.0))),
    "gelu": lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0))),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "softplus": lambda z: np.logaddexp(0.0, z),
}


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _logits(net, X):
    a = np.asarray(X, dtype=np.float64)
    for i, layer in enumerate(net.layers):
        z = a @ layer.W.astype(np.float64) + layer.b.astype(np.float64)
        a = z if i == len(net.layers) - 1 else HIDDEN[layer.activation](z)
    return z


def _data(n=24, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, rng.integers(0, k, size=n)


def test_network_signatures():
    sig = inspect.signature(il.Network).parameters
    for name, default in (("activation", "relu"), ("init", "he_normal"), ("bias_init", "zeros"),
                          ("dtype", "float32")):
        assert sig[name].default == default, name
    for name in ("layers", "output", "seed", "input_dim"):
        assert name in sig
    sig = inspect.signature(il.Dense).parameters
    for name in ("activation", "init", "dropout"):
        assert name in sig
    fit = inspect.signature(il.Network.fit).parameters
    defaults = dict(epochs=10, batch_size=32, optimizer="sgd", lr=0.01, momentum=0.0, nesterov=False,
                    betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, clip_value=None, clip_norm=None,
                    validation_data=None, validation_split=0.0, shuffle=True, stats_every=1,
                    on_divergence="stop", progress=None, callbacks=())
    assert list(fit)[:3] == ["self", "X", "y"]
    for name, default in defaults.items():
        assert fit[name].default == default, name
        assert fit[name].kind == inspect.Parameter.KEYWORD_ONLY, name
    for method, args in (("forward", ["X"]), ("predict", ["X"]), ("evaluate", ["X", "y"]),
                         ("loss", ["X", "y"]), ("gradients", ["X", "y"]), ("save", ["path"])):
        assert list(inspect.signature(getattr(il.Network, method)).parameters)[1:] == args
    diag = inspect.signature(il.Network.diagnose).parameters
    assert list(diag)[1:3] == ["X", "y"] and diag["y"].default is None
    assert list(inspect.signature(il.Network.load).parameters) == ["path"]
    lsuv = inspect.signature(il.lsuv).parameters
    assert list(lsuv)[:4] == ["net", "X", "tol", "max_iter"]
    assert lsuv["tol"].default == 0.1 and lsuv["max_iter"].default == 10
    assert issubclass(il.DivergenceError, Exception)


@pytest.mark.parametrize("init", ["he_normal", "xavier_uniform", "glorot_normal", "orthogonal",
                                  "lecun_uniform", "torch_default", "variance_scaling"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_i_draws_with_stream_i(init, dtype):
    net = il.Network([6, 9, 7, 4], activation="tanh", output="softmax", init=init, seed=123,
                     dtype=dtype)
    widths = [6, 9, 7, 4]
    for i, layer in enumerate(net.layers):
        assert layer.W.shape == (widths[i], widths[i + 1]) and layer.b.shape == (widths[i + 1],)
        assert layer.W.dtype == np.dtype(dtype) and layer.b.dtype == np.dtype(dtype)
        expected = getattr(il.init, init)((widths[i], widths[i + 1]), seed=123, stream=i, dtype=dtype)
        np.testing.assert_array_equal(layer.W, expected)
        np.testing.assert_array_equal(layer.b, 0)
    again = il.Network([6, 9, 7, 4], activation="tanh", init=init, seed=123, dtype=dtype)
    for a, b in zip(net.layers, again.layers):
        np.testing.assert_array_equal(a.W, b.W)


def test_default_network_is_he_normal_zeros_softmax():
    net = il.Network([5, 8, 3], seed=4)
    assert [layer.activation for layer in net.layers][0] == "relu"
    np.testing.assert_array_equal(net.layers[0].W, il.init.he_normal((5, 8), seed=4, stream=0))
    np.testing.assert_array_equal(net.layers[1].W, il.init.he_normal((8, 3), seed=4, stream=1))
    p = net.forward(_data()[0])
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_dense_specs_need_input_dim():
    specs = [il.Dense(8, activation="tanh", init="xavier_uniform", dropout=0.1),
             il.Dense(3, activation="softmax")]
    with pytest.raises(ValueError, match="input_dim"):
        il.Network(specs, seed=0)
    net = il.Network(specs, input_dim=5, seed=0)
    assert net.layers[0].W.shape == (5, 8) and net.layers[1].W.shape == (8, 3)
    assert net.layers[0].activation == "tanh"
    np.testing.assert_array_equal(net.layers[0].W, il.init.xavier_uniform((5, 8), seed=0, stream=0))
    np.testing.assert_array_equal(net.layers[1].W, il.init.he_normal((8, 3), seed=0, stream=1))
    p = net.forward(_data()[0])
    np.testing.assert_allclose(p, _softmax(_logits(net, _data()[0])), rtol=1e-4, atol=1e-6)


def test_callable_init_gets_shape_seed_stream():
    calls = []

    def init(shape, seed, stream):
        calls.append((tuple(shape), seed, stream))
        return np.full(shape, 0.01 * (stream + 1))

    net = il.Network([4, 6, 2], init=init, seed=77)
    assert calls[:1] == [((4, 6), 77, 0)] and ((6, 2), 77, 1) in calls
    np.testing.assert_allclose(net.layers[0].W, 0.01)
    np.testing.assert_allclose(net.layers[1].W, 0.02)
    bias_calls = []
    il.Network([4, 6, 2], bias_init=lambda s, seed, stream: bias_calls.append(tuple(s)) or np.ones(s),
               seed=1)
    assert bias_calls == [(6,), (2,)]


@pytest.mark.parametrize("activation", sorted(HIDDEN))
def test_hidden_activations_as_pytorch_defines_them(activation):
    X, _ = _data(d=4)
    X = X * 2.5  # reach both sides of every kink and the tails
    net = il.Network([4, 7, 6, 2], activation=activation, output="linear", init="xavier_normal",
                     bias_init="normal", seed=3, dtype="float64")
    np.testing.assert_allclose(net.forward(X), _logits(net, X), rtol=1e-10, atol=1e-12)
    torch = pytest.importorskip("torch")
    torch_act = {"linear": torch.nn.Identity(), "relu": torch.nn.ReLU(), "leaky_relu": torch.nn.LeakyReLU(),
                 "elu": torch.nn.ELU(), "selu": torch.nn.SELU(), "gelu": torch.nn.GELU(),
                 "sigmoid": torch.nn.Sigmoid(), "tanh": torch.nn.Tanh(), "softplus": torch.nn.Softplus()}
    z = np.linspace(-30, 30, 2001)
    ours = il.Network([1, 1, 1], activation=activation, output="linear", init="ones", seed=0,
                      dtype="float64")
    ours.layers[1].W = np.ones((1, 1))
    got = ours.forward(z[:, None])[:, 0]
    want = torch_act[activation](torch.tensor(z)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_softmax_output_and_loss_with_int_and_one_hot_labels():
    X, y = _data(k=4)
    net = il.Network([5, 8, 4], activation="tanh", output="softmax", seed=2, dtype="float64",
                     bias_init="uniform")
    logits = _logits(net, X)
    p = _softmax(logits)
    np.testing.assert_allclose(net.forward(X), p, rtol=1e-10)
    ce = -np.mean(np.log(p[np.arange(len(y)), y]))
    assert net.loss(X, y) == pytest.approx(ce, rel=1e-10)
    one_hot = np.eye(4)[y]
    assert net.loss(X, one_hot) == pytest.approx(ce, rel=1e-10)
    np.testing.assert_array_equal(net.predict(X), p.argmax(axis=1))
    ev = net.evaluate(X, y)
    assert set(ev) == {"loss", "accuracy"}
    assert ev["loss"] == pytest.approx(ce, rel=1e-10)
    assert ev["accuracy"] == pytest.approx(np.mean(p.argmax(axis=1) == y))
    assert net.evaluate(X, one_hot)["accuracy"] == pytest.approx(ev["accuracy"])
    torch = pytest.importorskip("torch")
    t = torch.nn.CrossEntropyLoss()(torch.tensor(logits), torch.tensor(y)).item()
    assert net.loss(X, y) == pytest.approx(t, rel=1e-10)


def test_sigmoid_output_with_n_and_n_k_labels():
    X, _ = _data()
    rng = np.random.default_rng(5)
    net1 = il.Network([5, 8, 1], output="sigmoid", seed=1, dtype="float64")
    y1 = rng.integers(0, 2, size=len(X))
    logit = _logits(net1, X)[:, 0]
    p = 1 / (1 + np.exp(-logit))
    bce = -np.mean(y1 * np.log(p) + (1 - y1) * np.log(1 - p))
    np.testing.assert_allclose(net1.forward(X)[:, 0], p, rtol=1e-10)
    assert net1.loss(X, y1) == pytest.approx(bce, rel=1e-10)
    assert net1.loss(X, y1[:, None]) == pytest.approx(bce, rel=1e-10)
    np.testing.assert_array_equal(np.ravel(net1.predict(X)), (p > 0.5).astype(int))
    assert net1.evaluate(X, y1)["accuracy"] == pytest.approx(np.mean((p > 0.5) == y1))

    net3 = il.Network([5, 8, 3], output="sigmoid", seed=1, dtype="float64")
    y3 = rng.integers(0, 2, size=(len(X), 3))
    logit = _logits(net3, X)
    p = 1 / (1 + np.exp(-logit))
    bce = -np.mean(y3 * np.log(p) + (1 - y3) * np.log(1 - p))  # mean over all elements
    assert net3.loss(X, y3) == pytest.approx(bce, rel=1e-10)
    np.testing.assert_array_equal(net3.predict(X), (p > 0.5).astype(int))
    assert net3.evaluate(X, y3)["accuracy"] == pytest.approx(np.mean((p > 0.5) == y3))
    torch = pytest.importorskip("torch")
    t = torch.nn.BCEWithLogitsLoss()(torch.tensor(logit), torch.tensor(y3, dtype=torch.float64))
    assert net3.loss(X, y3) == pytest.approx(t.item(), rel=1e-10)


def test_linear_output_is_mse_mean_over_all_elements():
    X, _ = _data()
    rng = np.random.default_rng(6)
    net = il.Network([5, 8, 3], output="linear", seed=1, dtype="float64")
    y = rng.normal(size=(len(X), 3))
    out = _logits(net, X)
    np.testing.assert_allclose(net.forward(X), out, rtol=1e-10)
    np.testing.assert_allclose(net.predict(X), out, rtol=1e-10)
    assert net.loss(X, y) == pytest.approx(np.mean((out - y) ** 2), rel=1e-10)
    ev = net.evaluate(X, y)
    assert set(ev) == {"loss"} and ev["loss"] == pytest.approx(np.mean((out - y) ** 2), rel=1e-10)
    torch = pytest.importorskip("torch")
    t = torch.nn.MSELoss()(torch.tensor(out), torch.tensor(y)).item()
    assert net.loss(X, y) == pytest.approx(t, rel=1e-10)
    net1 = il.Network([5, 4, 1], output="linear", seed=1, dtype="float64")
    y1 = rng.normal(size=len(X))
    assert net1.loss(X, y1) == pytest.approx(np.mean((_logits(net1, X)[:, 0] - y1) ** 2), rel=1e-10)


def test_live_weight_assignment_changes_the_network():
    X, y = _data()
    net = il.Network([5, 8, 3], seed=0, dtype="float64")
    before = net.forward(X)
    W = net.layers[0].W
    net.layers[0].W = 2 * W
    assert not np.allclose(net.forward(X), before)
    np.testing.assert_allclose(net.forward(X), _softmax(_logits(net, X)), rtol=1e-10)
    net.layers[1].b = np.array([5.0, -5.0, 0.0])
    np.testing.assert_array_equal(net.layers[1].b, [5.0, -5.0, 0.0])
    np.testing.assert_allclose(net.forward(X), _softmax(_logits(net, X)), rtol=1e-10)
    net.layers[0].W[...] = 0.0  # in-place writes reach the network too
    # hidden = relu(0 + b0) = 0 (zero biases), so the logits are b1 on every row
    np.testing.assert_allclose(net.forward(X), _softmax(np.tile([5.0, -5.0, 0.0], (len(X), 1))),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="shape"):
        net.layers[0].W = np.zeros((8, 5))


def test_derivatives_at_the_kinks_are_pytorch_s():
    """Z = 0 exactly in the hidden layer: act'(0) as autograd takes it (relu'(0) = 0, ...)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    X, y = _data(n=6, d=3)
    for name, fn in (("relu", F.relu), ("leaky_relu", F.leaky_relu), ("elu", F.elu),
                     ("selu", F.selu), ("gelu", F.gelu), ("softplus", F.softplus)):
        net = il.Network([3, 4, 3], activation=name, seed=0, dtype="float64")
        net.layers[0].W = np.zeros((3, 4))
        dW, db = net.gradients(X, y)[0]
        W0 = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
        b0 = torch.zeros(4, dtype=torch.float64, requires_grad=True)
        z = fn(torch.tensor(X) @ W0 + b0) @ torch.tensor(net.layers[1].W) + torch.tensor(net.layers[1].b)
        F.cross_entropy(z, torch.tensor(y)).backward()
        np.testing.assert_allclose(dW, W0.grad.numpy(), atol=1e-15, err_msg=name)
        np.testing.assert_allclose(db, b0.grad.numpy(), atol=1e-15, err_msg=name)


@pytest.mark.parametrize("output,activation", [("softmax", "tanh"), ("sigmoid", "gelu"),
                                               ("linear", "softplus"), ("softmax", "elu")])
def test_gradients_are_the_gradients_of_loss(output, activation):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 3))
    k = 3
    y = {"softmax": rng.integers(0, k, 6), "sigmoid": rng.integers(0, 2, (6, k)),
         "linear": rng.normal(size=(6, k))}[output]
    net = il.Network([il.Dense(4, dropout=0.5), il.Dense(5), il.Dense(k)], input_dim=3,
                     activation=activation, output=output, bias_init="normal", seed=3, dtype="float64")
    grads = net.gradients(X, y)
    assert len(grads) == 3
    h = 1e-6
    for layer, (dW, db) in zip(net.layers, grads):
        assert dW.shape == layer.W.shape and db.shape == layer.b.shape
        for param, grad in ((layer.W, dW), (layer.b, db)):
            numeric = np.empty_like(param)
            for idx in np.ndindex(param.shape):
                keep = param[idx]
                param[idx] = keep + h
                plus = net.loss(X, y)
                param[idx] = keep - h
                minus = net.loss(X, y)
                param[idx] = keep
                numeric[idx] = (plus - minus) / (2 * h)
            np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


# ---- fit --------------------------------------------------------------------------------------
def _torch_run(net0, X, y, epochs, batch_size, config):
    """The same MLP trained by torch.optim on the same batches (no shuffling), in float64."""
    torch = pytest.importorskip("torch")
    params = []
    for layer in net0.layers:
        params += [torch.tensor(layer.W.astype(np.float64), requires_grad=True),
                   torch.tensor(layer.b.astype(np.float64), requires_grad=True)]
    opt_name = config.get("optimizer", "sgd")
    lr = config.get("lr", 0.01)
    wd = config.get("weight_decay", 0.0)
    if opt_name == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=config.get("momentum", 0.0),
                              nesterov=config.get("nesterov", False), weight_decay=wd)
    elif opt_name == "adam":
        opt = torch.optim.Adam(params, lr=lr, betas=config.get("betas", (0.9, 0.999)),
                               eps=config.get("eps", 1e-8), weight_decay=wd)
    elif opt_name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, betas=config.get("betas", (0.9, 0.999)),
                                eps=config.get("eps", 1e-8), weight_decay=wd)
    else:
        opt = torch.optim.RMSprop(params, lr=lr, eps=config.get("eps", 1e-8), weight_decay=wd,
                                  momentum=config.get("momentum", 0.0))
    Xt, yt = torch.tensor(X), torch.tensor(y)
    acts = [layer.activation for layer in net0.layers]
    for _ in range(epochs):
        for lo in range(0, len(X), batch_size):
            a = Xt[lo:lo + batch_size]
            for i in range(len(acts)):
                a = a @ params[2 * i] + params[2 * i + 1]
                if i < len(acts) - 1:
                    a = torch.tanh(a)
            loss = torch.nn.functional.cross_entropy(a, yt[lo:lo + batch_size])
            opt.zero_grad()
            loss.backward()
            if config.get("clip_value") is not None:
                torch.nn.utils.clip_grad_value_(params, config["clip_value"])
            if config.get("clip_norm") is not None:
                torch.nn.utils.clip_grad_norm_(params, config["clip_norm"])
            opt.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("config", [
    {"optimizer": "sgd", "lr": 0.1},
    {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"optimizer": "sgd", "lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    {"optimizer": "adam", "lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-7, "weight_decay": 0.01},
    {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"optimizer": "rmsprop", "lr": 0.01, "momentum": 0.3, "weight_decay": 0.01},
    {"optimizer": "sgd", "lr": 0.5, "clip_value": 0.01},
    {"optimizer": "sgd", "lr": 0.5, "clip_norm": 0.05},
])
def test_fit_optimizers_match_torch(config):
    X, y = _data(n=24, d=5, k=3)
    net = il.Network([5, 6, 3], activation="tanh", bias_init="uniform", seed=8, dtype="float64")
    expected = _torch_run(net, X, y, epochs=3, batch_size=8, config=config)
    report = net.fit(X, y, epochs=3, batch_size=8, shuffle=False, stats_every=0, progress=False,
                     **config)
    assert len(report.history) == 3 and not report.diverged
    got = [a for layer in net.layers for a in (layer.W, layer.b)]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


def test_fit_shuffle_and_dropout():
    X, y = _data(n=48)

    def trained(shuffle, dropout=0.0, seed=3):
        net = il.Network([5, 16, 3], seed=seed, dropout=dropout)
        net.fit(X, y, epochs=2, batch_size=8, shuffle=shuffle, stats_every=0, progress=False)
        return net.layers[0].W

    np.testing.assert_array_equal(trained(True), trained(True))  # the seed fixes the order
    assert not np.array_equal(trained(True), trained(False))
    with_dropout = trained(False, dropout=0.5)
    np.testing.assert_array_equal(with_dropout, trained(False, dropout=0.5))
    assert not np.array_equal(with_dropout, trained(False))
    net = il.Network([5, 16, 3], seed=3, dropout=0.5)  # inference never drops
    np.testing.assert_array_equal(net.forward(X), net.forward(X))
    np.testing.assert_allclose(net.forward(X), _softmax(_logits(net, X)), rtol=1e-4, atol=1e-6)


def test_fan_based_bias_init_gets_the_layer_fans():
    net = il.Network([400, 3000, 2], bias_init="lecun_normal", seed=0, dtype="float64")
    assert net.layers[0].b.std() == pytest.approx(1 / math.sqrt(400), rel=0.08)
    net = il.Network([400, 3000, 2], bias_init="xavier_uniform", seed=0, dtype="float64")
    bound = math.sqrt(6 / 3400)
    assert np.abs(net.layers[0].b).max() <= bound and np.abs(net.layers[0].b).max() > 0.99 * bound


def test_fit_again_continues_with_optimizer_state():
    X, y = _data(n=40)
    one = il.Network([5, 6, 3], seed=2)
    one.fit(X, y, epochs=3, batch_size=16, optimizer="adam", lr=0.01, progress=False)
    two = il.Network([5, 6, 3], seed=2)
    two.fit(X, y, epochs=1, batch_size=16, optimizer="adam", lr=0.01, progress=False)
    report = two.fit(X, y, epochs=2, batch_size=16, optimizer="adam", lr=0.01, progress=False)
    assert [h["epoch"] for h in report.history] == [2, 3]
    for a, b in zip(one.layers, two.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)


def test_fit_history_loss_validation_split_and_data():
    X, y = _data(n=40)
    net = il.Network([5, 6, 3], seed=1, dtype="float64")
    initial_loss = net.loss(X[:30], y[:30])
    report = net.fit(X, y, epochs=1, batch_size=30, shuffle=False, validation_split=0.25,
                     stats_every=0, progress=False)
    h = report.history[0]
    assert set(h) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    assert h["epoch"] == 1 and h["seconds"] >= 0
    assert h["loss"] == pytest.approx(initial_loss, rel=1e-10)  # one full batch: the loss before the step
    ev = net.evaluate(X[30:], y[30:])
    assert h["val_loss"] == pytest.approx(ev["loss"], rel=1e-10)
    assert h["val_accuracy"] == pytest.approx(ev["accuracy"])
    # validation_split takes the last rows (before shuffling): training saw only the first 30.
    twin = il.Network([5, 6, 3], seed=1, dtype="float64")
    twin.fit(X[:30], y[:30], epochs=1, batch_size=30, shuffle=False, stats_every=0, progress=False)
    np.testing.assert_array_equal(twin.layers[0].W, net.layers[0].W)
    Xv, yv = _data(n=10, seed=9)
    report = net.fit(X, y, epochs=2, validation_data=(Xv, yv), progress=False)
    assert report.history[-1]["val_loss"] == pytest.approx(net.evaluate(Xv, yv)["loss"], rel=1e-10)
    report = net.fit(X, y, epochs=1, progress=False)
    assert report.history[0]["val_loss"] is None and report.history[0]["val_accuracy"] is None
    lin = il.Network([5, 4, 2], output="linear", seed=0)
    report = lin.fit(X, np.zeros((40, 2)), epochs=1, progress=False)
    assert report.history[0]["accuracy"] is None


def test_fit_stats_every_and_report():
    X, y = _data(n=64)
    net = il.Network([5, 8, 6, 3], activation="tanh", seed=0)
    report = net.fit(X, y, epochs=4, stats_every=2, progress=False)
    assert [rec[0]["epoch"] for rec in report.layer_stats] == [0, 2, 4]
    for rec in report.layer_stats:
        assert len(rec) == 3
        for row in rec:
            for key in ("act_mean", "act_std", "saturated", "dead", "grad_norm", "weight_norm",
                        "update_ratio"):
                assert key in row, key
    last = report.layer_stats[-1]
    for i, row in enumerate(last):
        assert row["weight_norm"] == pytest.approx(np.linalg.norm(net.layers[i].W), rel=1e-5)
        assert 0 < row["update_ratio"] < 1 and row["grad_norm"] > 0
    assert report.layer_stats[0][0]["update_ratio"] is None
    assert report.diverged is False and report.stop_reason is None
    assert il.Network([5, 4, 3], seed=0).fit(X, y, epochs=2, stats_every=0,
                                              progress=False).layer_stats == []
    assert isinstance(report, il.Report)
    text = str(report)
    assert "epoch" in text and f"{report.history[-1]['loss']:.4f}" in text


def test_report_files(tmp_path):
    X, y = _data(n=64)
    net = il.Network([5, 8, 3], seed=0)
    report = net.fit(X, y, epochs=3, validation_split=0.25, progress=False)
    assert os.fspath(report.to_json(tmp_path / "r.json")) == os.fspath(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert [h["epoch"] for h in data["history"]] == [1, 2, 3]
    assert data["history"][-1]["loss"] == pytest.approx(report.history[-1]["loss"])
    assert data["diverged"] is False and "layer_stats" in data
    report.to_csv(tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert key in header
    assert len(lines) == 4
    assert float(lines[-1].split(",")[header.index("loss")]) == pytest.approx(report.history[-1]["loss"])
    pytest.importorskip("matplotlib")
    report.plot(tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["r.csv", "r.json", "r.png"]


def _diverging():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 4))
    return il.Network([4, 16, 1], output="linear", seed=0), X, rng.normal(size=(32, 1)) * 1e3


def test_on_divergence_policies():
    net, X, y = _diverging()
    report = net.fit(X, y, epochs=20, lr=10.0, progress=False)
    assert report.diverged is True and isinstance(report.stop_reason, str) and report.stop_reason
    for layer in net.layers:
        assert np.isfinite(layer.W).all() and np.isfinite(layer.b).all()
    assert len(report.history) < 20
    net, X, y = _diverging()
    with pytest.raises(il.DivergenceError):
        net.fit(X, y, epochs=20, lr=10.0, on_divergence="raise", progress=False)
    for layer in net.layers:
        assert np.isfinite(layer.W).all()
    net, X, y = _diverging()
    report = net.fit(X, y, epochs=20, lr=10.0, on_divergence="ignore", progress=False)
    assert len(report.history) == 20 and report.diverged is False
    assert not all(np.isfinite(layer.W).all() for layer in net.layers)


def test_progress_and_callbacks(capfd):
    X, y = _data(n=32)
    net = il.Network([5, 4, 3], seed=0)
    net.fit(X, y, epochs=2, progress=False)
    assert capfd.readouterr().err == ""
    net.fit(X, y, epochs=2, progress=True)
    assert capfd.readouterr().err != ""
    seen = []

    class Recorder(il.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append(("cb", epoch, logs["loss"]))

    report = net.fit(X, y, epochs=3, progress=False,
                     callbacks=[Recorder(), lambda epoch, logs: seen.append(("fn", epoch, logs["loss"]))])
    assert [s[:2] for s in seen] == [("cb", 5), ("fn", 5), ("cb", 6), ("fn", 6), ("cb", 7), ("fn", 7)]
    assert seen[-1][2] == pytest.approx(report.history[-1]["loss"])


# ---- lsuv, diagnose, save/load ------------------------------------------------------------
def _pre_activation_variances(net, X):
    a = np.asarray(X, dtype=np.float64)
    out = []
    for i, layer in enumerate(net.layers):
        z = a @ layer.W.astype(np.float64) + layer.b
        out.append(z.var())
        a = HIDDEN[layer.activation](z) if i < len(net.layers) - 1 else z
    return out


def test_lsuv_function_and_init():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 10)) * 3
    net = il.Network([10, 32, 32, 4], activation="tanh", init="normal", seed=0, dtype="float64")
    il.lsuv(net, X)  # from N(0, 0.05^2) weights: far from unit variance
    for v in _pre_activation_variances(net, X):
        assert abs(v - 1) < 0.1
    net = il.Network([10, 32, 32, 4], activation="relu", init="lsuv", seed=5, dtype="float64")
    for i, layer in enumerate(net.layers):  # orthogonal before the first batch
        np.testing.assert_allclose(layer.W, il.init.orthogonal(layer.W.shape, seed=5, stream=i,
                                                               dtype="float64"))
    y = rng.integers(0, 4, 128)
    net.fit(X, y, epochs=1, batch_size=128, shuffle=False, lr=0.0, stats_every=0, progress=False)
    for v in _pre_activation_variances(net, X):
        assert abs(v - 1) < 0.1
    net = il.Network([10, 32, 4], seed=0, dtype="float64")
    il.lsuv(net, X, tol=0.01, max_iter=20)
    for v in _pre_activation_variances(net, X):
        assert abs(v - 1) < 0.01


def test_diagnose_fields():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 16))
    y = rng.integers(0, 3, 64)
    net = il.Network([16, 32, 32, 3], activation="tanh", init="xavier_normal", seed=0)
    for d in (net.diagnose(X, y), net.diagnose(X)):
        assert d.verdict in ("healthy", "symmetric", "vanishing", "exploding", "saturated", "dead")
        assert d.verdict == (d.findings[0].kind if d.findings else "healthy")
        for finding in d.findings:
            assert finding.kind != "healthy" and finding.layers and finding.evidence and finding.suggestion
        assert isinstance(d.evidence, str) and d.evidence
        assert isinstance(d.suggestion, str) and d.suggestion
        assert len(d.layers) == 3
        for row in d.layers:
            for key in ("pre_mean", "pre_std", "act_mean", "act_std", "saturated", "dead",
                        "grad_norm", "grad_std", "spectral_norm", "stable_rank"):
                assert key in row, key
        W = net.layers[0].W.astype(np.float64)
        assert d.layers[0]["spectral_norm"] == pytest.approx(np.linalg.norm(W, 2), rel=1e-3)
        assert d.layers[0]["stable_rank"] == pytest.approx(
            np.linalg.norm(W) ** 2 / np.linalg.norm(W, 2) ** 2, rel=2e-3)
        Z0 = X @ W
        assert d.layers[0]["pre_std"] == pytest.approx(Z0.std(), rel=1e-3)
        assert d.layers[0]["act_std"] == pytest.approx(np.tanh(Z0).std(), rel=1e-3)
        assert "singular_values" in d.jacobian
    assert net.diagnose(X, y).layers[0]["grad_norm"] == pytest.approx(
        np.linalg.norm(net.gradients(X, y)[0][0]), rel=1e-4)
    blown = il.Network([16] + [64] * 8 + [3], activation="relu",
                       init=lambda shape, seed, stream: il.init.normal(shape, std=1.0, seed=seed,
                                                                       stream=stream), seed=0)
    assert blown.diagnose(X, y).verdict == "exploding"
    assert "he" in blown.diagnose(X, y).suggestion
    constant = il.Network([16, 32, 32, 3], activation="tanh", init=("constant", {"value": 0.05}), seed=0)
    d = constant.diagnose(X, y)
    assert d.verdict == "symmetric" and d.findings[0].layers == (0, 1)
    assert [f.kind for f in d.findings][0] == "symmetric"


def test_save_load(tmp_path):
    X, y = _data(n=32)
    net = il.Network([il.Dense(7, activation="elu", dropout=0.2), il.Dense(3)], input_dim=5,
                     activation="relu", seed=0, dtype="float64")
    net.fit(X, y, epochs=2, progress=False)
    path = tmp_path / "net.npz"
    net.save(path)
    assert os.listdir(tmp_path) == ["net.npz"]
    back = il.Network.load(path)
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    assert back.layers[0].activation == "elu" and back.layers[0].W.dtype == np.float64
    net.save(str(path))  # str paths too, overwriting
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError):
        il.Network.load(bad)
    missing = tmp_path / "no" / "such" / "dir"
    report = net.fit(X, y, epochs=1, progress=False)
    for write, who in ((net.save, "Network.save"), (report.to_json, "Report.to_json"),
                       (report.to_csv, "Report.to_csv")):
        with pytest.raises(FileNotFoundError) as err:
            write(missing / "out")
        assert who in str(err.value) and str(missing) in str(err.value)
        with pytest.raises(TypeError, match="path"):
            write(5)
    with pytest.raises(TypeError, match="path"):
        il.Network.load(5)
    with pytest.raises(FileNotFoundError):
        il.Network.load(tmp_path / "absent.npz")
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "net.npz"]


# ---- errors -----------------------------------------------------------------------------------
_X, _Y = _data(n=12)


@pytest.mark.parametrize("call,error,words", [
    (lambda: il.Network([5, 4, 3], activation="swish"), ValueError, ["activation", "swish", "relu"]),
    (lambda: il.Network([5, 4, 3], output="tanh"), ValueError, ["output", "tanh", "softmax"]),
    (lambda: il.Network([5, 4, 3], dtype="float16"), ValueError, ["dtype", "float16", "float32"]),
    (lambda: il.Network([5]), ValueError, ["layers"]),
    (lambda: il.Network([5, 0, 3]), ValueError, ["layers", "0"]),
    (lambda: il.Network([5, 4, 3], init=5), TypeError, ["init"]),
    (lambda: il.Network([5, 4, 3], seed=-1), ValueError, ["seed", "-1"]),
    (lambda: il.Network([5, 4, 3], seed=1.5), (TypeError, ValueError), ["seed", "1.5"]),
    (lambda: il.Dense(3, activation="foo"), ValueError, ["activation", "foo"]),
    (lambda: il.Network([5, 4, 3], seed=0).forward(np.zeros((2, 4))), ValueError, ["X", "5"]),
    (lambda: il.Network([5, 4, 3], seed=0).forward(np.zeros(5)), ValueError, ["X", "2-D"]),
    (lambda: il.Network([5, 4, 3], seed=0).forward(np.full((2, 5), np.nan)), ValueError, ["X", "NaN"]),
    (lambda: il.Network([5, 4, 3], seed=0).loss(_X, _Y + 3), ValueError, ["y", "[0, 3)"]),
    (lambda: il.Network([5, 4, 3], seed=0).loss(_X, _Y[:3]), ValueError, ["y", "12"]),
    (lambda: il.Network([5, 4, 2], output="sigmoid", seed=0).loss(_X, np.full((12, 2), 2.0)),
     ValueError, ["y", "[0, 1]"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, epochs=-1), ValueError, ["epochs", "-1"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, batch_size=0), ValueError, ["batch_size", "0"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, optimizer="lbfgs"), ValueError,
     ["optimizer", "lbfgs", "adam"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, lr=-1.0), ValueError, ["lr", "-1"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, on_divergence="x"), ValueError,
     ["on_divergence", "raise"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, validation_split=1.0), ValueError,
     ["validation_split"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, clip_norm=0.0), ValueError, ["clip_norm"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, betas=(0.9,)), ValueError, ["betas"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, stats_every=-1), ValueError, ["stats_every"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, callbacks=5), TypeError, ["callbacks"]),
    (lambda: il.Network([5, 4, 3], seed=0).fit(_X, _Y, validation_data=(_X,)), ValueError,
     ["validation_data"]),
    (lambda: il.lsuv(il.Network([5, 4, 3], seed=0), _X, tol=0.0), ValueError, ["tol"]),
    (lambda: il.lsuv(il.Network([5, 4, 3], seed=0), _X, max_iter=0), ValueError, ["max_iter"]),
    (lambda: il.lsuv("net", _X), TypeError, ["net"]),
    (lambda: il.Network([5, 3], init=lambda shape: np.zeros(shape)), TypeError,
     ["init", "(shape, seed, stream)"]),
    (lambda: il.Network([5, 3], init=lambda s, seed, stream: np.zeros((3, 5))), ValueError,
     ["init", "(3, 5)", "(5, 3)"]),
])
def test_network_errors_name_the_argument(call, error, words):
    with pytest.raises(error) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_fit_validates_before_touching_weights():
    net = il.Network([5, 4, 3], seed=0, init="lsuv")
    W = [layer.W.copy() for layer in net.layers]
    for bad in (dict(lr=-1.0), dict(batch_size=0), dict(optimizer="x"), dict(callbacks=5)):
        with pytest.raises((TypeError, ValueError)):
            net.fit(_X, _Y, progress=False, **bad)
    for layer, w in zip(net.layers, W):
        np.testing.assert_array_equal(layer.W, w)
