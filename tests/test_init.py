"""The initializers, driven by the registry (il.init.SCHEMES): distributions (KS + moments) against
independent formulas (tests/reference.py), fans and gains against PyTorch, structure of the
deterministic and orthogonal schemes, determinism, and every bad input."""
import doctest
import math

import numpy as np
import pytest

import initlab as il
from initlab import _core

import reference as R

SCHEMES = {s.name: s for s in il.init.SCHEMES}
RANDOM_WITH_DISTRIBUTION = sorted(n for n, s in SCHEMES.items()
                                  if s.random and n not in ("orthogonal", "delta_orthogonal", "sparse"))

# Non-square on purpose: swapping fan_in and fan_out changes every fan-based scale by >= 15%.
SHAPE_2D = (400, 300)  # in_out: fan_in 400, fan_out 300
SHAPE_4D_OUT_IN = (40, 30, 10, 10)  # out_in: fan_in 3000, fan_out 4000 (40 * 100)

# (name, params, shape, layout): at least one case per random scheme (checked below), >= 1e5 samples.
CASES = [
    ("uniform", {}, SHAPE_2D, "in_out"),
    ("uniform", {"low": 2.0, "high": 5.5}, SHAPE_2D, "in_out"),
    ("normal", {}, SHAPE_2D, "in_out"),
    ("normal", {"mean": -1.0, "std": 3.0}, SHAPE_2D, "in_out"),
    ("truncated_normal", {}, SHAPE_2D, "in_out"),
    ("truncated_normal", {"mean": 1.0, "std": 2.0, "a": -0.5, "b": 3.0}, SHAPE_2D, "in_out"),
    ("small_random", {"scale": 0.02}, SHAPE_2D, "in_out"),
    ("xavier_uniform", {}, SHAPE_2D, "in_out"),
    ("xavier_uniform", {"gain": 2.0}, SHAPE_4D_OUT_IN, "out_in"),
    ("xavier_normal", {}, SHAPE_2D, "in_out"),
    ("he_uniform", {}, SHAPE_2D, "in_out"),
    ("he_uniform", {"mode": "fan_out", "nonlinearity": "leaky_relu", "a": 0.2}, SHAPE_4D_OUT_IN, "out_in"),
    ("he_normal", {}, SHAPE_2D, "in_out"),
    ("he_normal", {"mode": "fan_out"}, SHAPE_2D, "in_out"),
    ("he_normal", {"nonlinearity": "tanh"}, SHAPE_4D_OUT_IN, "out_in"),
    ("lecun_uniform", {}, SHAPE_2D, "in_out"),
    ("lecun_normal", {}, SHAPE_4D_OUT_IN, "out_in"),
    ("torch_default", {}, SHAPE_2D, "out_in"),
    ("variance_scaling", {}, SHAPE_2D, "in_out"),
    ("variance_scaling", {"scale": 2.0, "mode": "fan_out", "distribution": "normal"}, SHAPE_2D, "in_out"),
    ("variance_scaling", {"mode": "fan_avg", "distribution": "uniform"}, SHAPE_2D, "in_out"),
    ("variance_scaling", {"scale": 0.5, "mode": "fan_geo_avg"}, SHAPE_4D_OUT_IN, "out_in"),
]


def _fans(shape, layout):
    return R.in_out_fans(shape) if layout == "in_out" else R.torch_fans(shape)


def _frozen(kind, p):
    stats = pytest.importorskip("scipy.stats")
    if kind == "uniform":
        return stats.uniform(p["low"], p["high"] - p["low"])
    if kind == "normal":
        return stats.norm(p["mean"], p["std"])
    return stats.truncnorm(p["a"], p["b"], loc=p["mean"], scale=p["std"])


def test_every_random_scheme_has_a_distribution_case():
    assert {c[0] for c in CASES} == set(RANDOM_WITH_DISTRIBUTION)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,params,shape,layout", CASES)
def test_distribution_ks_and_moments(name, params, shape, layout, dtype):
    stats = pytest.importorskip("scipy.stats")
    x = il.init.get(name)(shape, dtype=dtype, seed=1234, layout=layout, **params)
    assert x.dtype == np.dtype(dtype) and x.shape == shape and x.flags.c_contiguous
    n = x.size
    assert n >= 100_000
    fan_in, fan_out = _fans(shape, layout)
    kind, p = R.expected_distribution(name, params, fan_in, fan_out)
    dist = _frozen(kind, p)
    values = x.ravel().astype(np.float64)
    assert stats.kstest(values, dist.cdf).pvalue > 1e-4
    mean, std = dist.mean(), dist.std()
    assert abs(values.mean() - mean) < 6 * std / math.sqrt(n)
    assert abs(values.std() / std - 1) < 6 * math.sqrt(1.0 / n)  # sd of the sd ratio <= ~sqrt(1/2n)*1.4
    if kind == "uniform":
        assert values.min() >= p["low"] - 1e-6 * abs(p["low"]) and values.max() <= p["high"] + 1e-6 * abs(p["high"])
    if kind == "truncated_normal":
        lo, hi = p["mean"] + p["a"] * p["std"], p["mean"] + p["b"] * p["std"]
        assert values.min() >= lo - 1e-6 * abs(lo) and values.max() <= hi + 1e-6 * abs(hi)


@pytest.mark.parametrize("name,params,shape,layout", CASES)
def test_plan_matches_the_formula_to_full_precision(name, params, shape, layout):
    plan = il.init.plan(name, shape, layout=layout, **params)
    fan_in, fan_out = _fans(shape, layout)
    kind, p = R.expected_distribution(name, params, fan_in, fan_out)
    assert plan["kind"] == kind
    for key, value in p.items():
        assert plan[key] == pytest.approx(value, rel=1e-15, abs=0), key
    if SCHEMES[name].uses_fans:
        assert (plan["fan_in"], plan["fan_out"]) == (fan_in, fan_out)


def test_variance_scaling_truncated_variance_is_scale_over_fan():
    x = il.init.variance_scaling((500, 400), dtype="float64", seed=3, scale=2.0)
    assert x.var() == pytest.approx(2.0 / 500, rel=0.02)


# ---- fans -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,layout,expected", [
    ((3, 5), "in_out", (3, 5)),
    ((3, 5), "out_in", (5, 3)),
    ((2, 3, 4, 5), "in_out", (24, 30)),  # receptive 2*3
    ((2, 3, 4, 5), "out_in", (60, 40)),  # receptive 4*5
    ((7, 4, 9), "in_out", (28, 63)),
    ((7, 4, 9), "out_in", (36, 63)),
])
def test_fans(shape, layout, expected):
    assert il.init.fans(shape, layout=layout) == expected
    assert _fans(shape, layout) == expected


def test_fans_match_torch():
    torch = pytest.importorskip("torch")
    for shape in [(3, 5), (5, 3), (2, 3, 4, 5), (8, 3, 5), (6, 4, 3, 2, 2)]:
        want = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        assert il.init.fans(shape, layout="out_in") == tuple(want)


def test_layout_changes_which_axis_is_fan_in():
    # the same (fan_in=64, fan_out=32) weight in both layouts gets the same he_normal std
    a = il.init.plan("he_normal", (64, 32))["std"]
    b = il.init.plan("he_normal", (32, 64), layout="out_in")["std"]
    assert a == b == math.sqrt(2 / 64)
    assert il.init.plan("he_normal", (32, 64))["std"] == math.sqrt(2 / 32)


def test_fan_overrides():
    p = il.init.plan("he_uniform", (128,), fan_in=256)
    assert p["high"] == pytest.approx(math.sqrt(6 / 256), rel=1e-15)
    p = il.init.plan("xavier_normal", (10,), fan_in=30, fan_out=50)
    assert p["std"] == pytest.approx(math.sqrt(2 / 80), rel=1e-15)
    p = il.init.plan("lecun_normal", (40, 30), fan_in=9)  # overrides the shape's fan
    assert p["std"] == pytest.approx(1 / 3, rel=1e-15)
    b = il.init.he_uniform((128,), seed=0, fan_in=256)
    assert np.abs(b).max() <= math.sqrt(6 / 256)
    with pytest.raises(ValueError, match="fan_out"):
        il.init.xavier_uniform((10,), fan_in=3)
    with pytest.raises(ValueError, match="fan_in"):
        il.init.he_normal((10, 5), fan_in=0)


# ---- gains ------------------------------------------------------------------------------------------
def test_gains_to_full_precision():
    assert il.init.gain("linear") == 1.0 and il.init.gain("sigmoid") == 1.0
    assert il.init.gain("conv2d") == 1.0 and il.init.gain("identity") == 1.0
    assert il.init.gain("tanh") == 5.0 / 3
    assert il.init.gain("relu") == math.sqrt(2.0)
    assert il.init.gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01**2))
    assert il.init.gain("leaky_relu", 0.2) == math.sqrt(2.0 / (1 + 0.2**2))
    assert il.init.gain("leaky_relu", 0) == math.sqrt(2.0)
    assert il.init.gain("selu") == 0.75


def test_gains_match_torch():
    torch = pytest.importorskip("torch")
    for name in ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d", "sigmoid", "tanh", "relu", "selu"]:
        assert il.init.gain(name) == torch.nn.init.calculate_gain(name), name
    for slope in (None, 0.0, 0.01, 0.2, 1.0):
        assert il.init.gain("leaky_relu", slope) == torch.nn.init.calculate_gain("leaky_relu", slope)


@pytest.mark.parametrize("name,value", [
    ("relu", math.sqrt(2.0)), ("linear", 1.0),
    ("tanh", 1.59253741972283142777), ("sigmoid", 1.84622854533860541296),
    ("elu", 1.24519830070070655029), ("gelu", 1.53353044119553523377),
    ("softplus", 1.04186683553530170804), ("silu", 1.67653247033109115860),
])
def test_estimate_gain_quadrature(name, value):
    # reference values: mpmath quadrature at 30 digits
    assert il.init.estimate_gain(name) == pytest.approx(value, rel=1e-10, abs=0)


def test_documented_gains_equal_their_estimates():
    for name in ("elu", "gelu", "softplus", "silu"):
        assert il.init.gain(name) == pytest.approx(il.init.estimate_gain(name), rel=1e-10)


def test_estimate_gain_of_a_callable():
    assert il.init.estimate_gain(lambda z: 3.0 * z) == pytest.approx(1 / 3, rel=1e-12)
    assert il.init.estimate_gain(np.abs) == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ValueError, match="unknown activation"):
        il.init.estimate_gain("swishy")
    with pytest.raises(TypeError):
        il.init.estimate_gain(3)


def test_gain_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError, match="valid: .*relu"):
        il.init.gain("relu6")


# ---- structured schemes -----------------------------------------------------------------------------
@pytest.mark.parametrize("shape,layout", [((64, 32), "in_out"), ((32, 64), "in_out"),
                                          ((64, 32), "out_in"), ((32, 64), "out_in"),
                                          ((16, 8, 3, 3), "out_in"), ((3, 3, 8, 16), "in_out"),
                                          ((20, 20), "in_out")])
def test_orthogonal(shape, layout):
    W = il.init.orthogonal(shape, dtype="float64", seed=5, layout=layout, gain=1.5)
    if layout == "out_in":
        M = W.reshape(shape[0], -1)
    else:
        M = W.reshape(-1, shape[-1])
    small = min(M.shape)
    G = M.T @ M if M.shape[0] >= M.shape[1] else M @ M.T
    np.testing.assert_allclose(G, 1.5**2 * np.eye(small), atol=1e-6)
    W32 = il.init.orthogonal(shape, seed=5, layout=layout, gain=1.5)
    np.testing.assert_allclose(W32, W, atol=1e-6)


def test_orthogonal_is_qr_of_the_core_gaussian_with_sign_correction():
    rows, cols = 30, 20
    g = np.empty((rows, cols))
    _core.random_fill(g, "normal", 9, 2, [0.0, 1.0])
    q, r = np.linalg.qr(g)
    q = q * np.sign(np.diag(r))
    np.testing.assert_array_equal(il.init.orthogonal((rows, cols), dtype="float64", seed=9, stream=2), q)


def test_identity_and_dirac_match_torch():
    torch = pytest.importorskip("torch")
    for shape in [(4, 6), (6, 4)]:
        want = torch.nn.init.eye_(torch.empty(shape)).numpy()
        np.testing.assert_array_equal(il.init.identity(shape), want)
        np.testing.assert_array_equal(il.init.eye(shape, gain=2.0), 2.0 * want)
    for shape, groups in [((8, 4, 3, 3), 1), ((8, 4, 3, 3), 2), ((6, 6, 5), 3), ((4, 8, 3, 3, 3), 1),
                          ((8, 2, 4, 5), 4)]:
        want = torch.nn.init.dirac_(torch.empty(shape), groups=groups).numpy()
        got = il.init.dirac(shape, layout="out_in", groups=groups)
        np.testing.assert_array_equal(got, want)
        # in_out is the same kernel with its axes moved: (*k, in, out)
        got_in_out = il.init.dirac(shape[2:] + (shape[1], shape[0]), groups=groups)
        np.testing.assert_array_equal(np.moveaxis(got_in_out, (-1, -2), (0, 1)), want)


def test_delta_orthogonal():
    W = il.init.delta_orthogonal((3, 3, 8, 16), dtype="float64", seed=1, gain=2.0)
    centre = W[1, 1]
    np.testing.assert_allclose(centre @ centre.T, 4.0 * np.eye(8), atol=1e-6)
    W_zeroed = W.copy()
    W_zeroed[1, 1] = 0
    assert not W_zeroed.any()
    V = il.init.delta_orthogonal((16, 8, 3, 3), dtype="float64", seed=1, gain=2.0, layout="out_in")
    np.testing.assert_array_equal(V[:, :, 1, 1], centre.T)  # the same operator in both layouts
    with pytest.raises(ValueError, match="in_channels <= out_channels"):
        il.init.delta_orthogonal((3, 3, 16, 8))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sparse(dtype):
    stats = pytest.importorskip("scipy.stats")
    rows, cols, sparsity = 300, 400, 0.3
    W = il.init.sparse((rows, cols), dtype=dtype, seed=8, sparsity=sparsity, std=0.5)
    zeros_per_column = (W == 0).sum(axis=0)
    np.testing.assert_array_equal(zeros_per_column, math.ceil(sparsity * rows))
    # the zero rows differ from column to column and cover the rows evenly
    zero_rows_per_row = (W == 0).sum(axis=1)
    assert zero_rows_per_row.std() < 3 * math.sqrt(cols * sparsity * (1 - sparsity))
    assert zero_rows_per_row.max() < cols
    nonzero = W[W != 0].astype(np.float64)
    assert stats.kstest(nonzero, stats.norm(0, 0.5).cdf).pvalue > 1e-4
    naive = np.empty_like(W)
    _core.init_fill(naive, "sparse", "in_out", None, None, {"sparsity": sparsity, "std": 0.5}, {},
                    8, 0, True)
    np.testing.assert_array_equal(naive, W)


def test_sparse_zero_count_matches_torch():
    torch = pytest.importorskip("torch")
    shape = (50, 30)
    want = (torch.nn.init.sparse_(torch.empty(shape), sparsity=0.25) == 0).sum(dim=0).numpy()
    got = (il.init.sparse(shape, seed=0, sparsity=0.25) == 0).sum(axis=0)
    np.testing.assert_array_equal(got, want)


def test_constants_accept_any_shape():
    assert il.init.zeros(()).shape == () and il.init.ones((2, 3, 4)).sum() == 24
    np.testing.assert_array_equal(il.init.constant((5,), value=0.25, dtype="float64"), 0.25)
    assert il.init.normal((), seed=1).shape == ()
    assert il.init.uniform((0, 5), seed=1).shape == (0, 5)
    assert il.init.he_normal((0, 5), seed=1).shape == (0, 5)


# ---- torch semantics -----------------------------------------------------------------------------
def test_scales_match_torch():
    torch = pytest.importorskip("torch")
    init = torch.nn.init
    shape = (30, 20, 3, 3)  # a torch conv weight, out_in
    t = torch.empty(shape)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(t)
    for mode in ("fan_in", "fan_out"):
        for nonlinearity, a in (("relu", 0.0), ("leaky_relu", 0.1), ("tanh", 0.0)):
            fan = init._calculate_correct_fan(t, mode)
            std = init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
            p = il.init.plan("he_normal", shape, layout="out_in", mode=mode, nonlinearity=nonlinearity, a=a)
            assert p["std"] == std
            p = il.init.plan("he_uniform", shape, layout="out_in", mode=mode, nonlinearity=nonlinearity, a=a)
            assert p["high"] == math.sqrt(3.0) * std
    for g in (1.0, 2.5):
        std = g * math.sqrt(2.0 / float(fan_in + fan_out))
        assert il.init.plan("xavier_normal", shape, layout="out_in", gain=g)["std"] == std
        assert il.init.plan("xavier_uniform", shape, layout="out_in", gain=g)["high"] == math.sqrt(3.0) * std
    # nn.Linear's default: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in)
    gain = init.calculate_gain("leaky_relu", math.sqrt(5))
    bound = gain * math.sqrt(3.0 / fan_in)
    assert il.init.plan("torch_default", shape, layout="out_in")["high"] == pytest.approx(bound, rel=1e-15)
    torch.manual_seed(0)
    linear = torch.nn.Linear(300, 200)
    ours = il.init.torch_default((200, 300), layout="out_in", seed=0)
    assert abs(linear.weight.detach().numpy().std() / ours.std() - 1) < 0.02


def test_empirical_std_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    shape = (300, 400)
    for ours, theirs in [
        (il.init.he_normal(shape, layout="out_in", seed=0), torch.nn.init.kaiming_normal_(torch.empty(shape))),
        (il.init.xavier_uniform(shape, layout="out_in", seed=0), torch.nn.init.xavier_uniform_(torch.empty(shape))),
        (il.init.truncated_normal(shape, seed=0, std=0.02), torch.nn.init.trunc_normal_(torch.empty(shape), std=0.02, a=-0.04, b=0.04)),
    ]:
        assert abs(ours.std() / theirs.numpy().std() - 1) < 0.02


# ---- determinism -----------------------------------------------------------------------------------
def _kwargs(name):
    return {"constant": {"value": 0.5}, "sparse": {"sparsity": 0.2}}.get(name, {})


def _shape(name):
    return {"dirac": (8, 4, 3, 3), "delta_orthogonal": (3, 3, 8, 16), "identity": (50, 40),
            "orthogonal": (120, 81)}.get(
        name, (300, 201))


@pytest.mark.parametrize("name", il.init.names())
def test_bitwise_identical_across_threads_and_runs(name):
    old = il.get_num_threads()
    outputs = []
    try:
        for threads in (1, 2, 3, 4, 7):
            il.set_num_threads(threads)
            for dtype in ("float32", "float64"):
                outputs.append((dtype, il.init.get(name)(_shape(name), dtype=dtype, seed=77, stream=4,
                                                        **_kwargs(name))))
    finally:
        il.set_num_threads(old)
    for dtype in ("float32", "float64"):
        same = [x for d, x in outputs if d == dtype]
        for x in same[1:]:
            np.testing.assert_array_equal(x.view(np.uint8), same[0].view(np.uint8))


@pytest.mark.parametrize("name", il.init.names())
def test_fast_equals_naive_and_inplace_equals_new(name):
    shape = _shape(name)
    for dtype in (np.float32, np.float64):
        new = il.init.get(name)(shape, dtype=dtype, seed=5, stream=1, **_kwargs(name))
        filled = il.init.get(name + "_")(np.full(shape, np.nan, dtype=dtype), seed=5, stream=1, **_kwargs(name))
        np.testing.assert_array_equal(filled, new)
        if name in ("orthogonal", "delta_orthogonal"):
            continue
        naive = np.full(shape, np.nan, dtype=dtype)
        il.init._fill(SCHEMES[name], naive, name, 5, 1, "in_out", None, None, _kwargs(name), naive=True)
        np.testing.assert_array_equal(naive, new)


def test_seed_none_gives_fresh_draws():
    assert not np.array_equal(il.init.he_normal((20, 20)), il.init.he_normal((20, 20)))


def test_streams_differ():
    a = il.init.normal((100, 100), seed=1, stream=0)
    b = il.init.normal((100, 100), seed=1, stream=1)
    assert not np.array_equal(a, b)


# ---- registry, names, docs -------------------------------------------------------------------------
def test_names_aliases_and_get():
    names = il.init.names()
    assert names == sorted(names) and len(names) == len(il.init.SCHEMES)
    for s in il.init.SCHEMES:
        for name in (s.name,) + s.aliases:
            assert callable(getattr(il.init, name)) and callable(getattr(il.init, name + "_"))
            assert il.init.get(name) is getattr(il.init, s.name)
    for alias, canonical in [("glorot_uniform", "xavier_uniform"), ("glorot_normal", "xavier_normal"),
                             ("kaiming_uniform", "he_uniform"), ("kaiming_normal", "he_normal"),
                             ("standard_uniform", "torch_default"), ("eye", "identity")]:
        assert il.init.get(alias) is il.init.get(canonical)
    f = lambda shape, seed, stream: np.zeros(shape)  # noqa: E731
    assert il.init.get(f) is f


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid names: .*he_normal.*xavier_uniform"):
        il.init.get("he_normale")
    with pytest.raises(ValueError, match="valid names"):
        il.init.plan("nope", (3, 3))


def test_docstrings_have_formula_paper_and_a_working_example():
    for s in il.init.SCHEMES:
        for fn in (il.init.get(s.name), il.init.get(s.name + "_")):
            doc = fn.__doc__
            assert s.distribution in doc and ">>> " in doc
            if s.paper:
                assert s.paper in doc
            finder = doctest.DocTestFinder()
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            for test in finder.find(fn, name=fn.__name__, globs={}):
                runner.run(test)
            assert runner.failures == 0, fn.__name__
    for module in (il.init, il.random):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,error,match", [
    (lambda: np.zeros((8, 6), np.float32)[:, ::2], ValueError, "C-contiguous"),
    (lambda: np.asfortranarray(np.zeros((8, 6), np.float32)), ValueError, "C-contiguous"),
    (lambda: np.zeros((8, 6), np.int32), TypeError, "float32 or float64"),
    (lambda: np.zeros((8, 6), np.float16), TypeError, "float32 or float64"),
    (lambda: [[0.0] * 6] * 8, TypeError, "numpy.ndarray"),
    (lambda: 3.0, TypeError, "numpy.ndarray"),
])
@pytest.mark.parametrize("name", ["he_normal", "uniform", "zeros", "orthogonal"])
def test_inplace_rejects_bad_arrays(make, error, match, name):
    array = make()
    before = np.array(array, copy=True)
    with pytest.raises(error, match=match):
        il.init.get(name + "_")(array, seed=0)
    np.testing.assert_array_equal(np.asarray(array), before)  # nothing written


def test_inplace_rejects_read_only_and_never_writes():
    base = np.zeros((8, 6), np.float32)
    view = base.view()
    view.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        il.init.he_normal_(view, seed=0)
    assert not base.any()


def test_inplace_writes_into_the_given_array():
    a = np.zeros((16, 8), np.float32)
    out = il.init.he_normal_(a, seed=0)
    assert out is a and a.any()
    strided_rows = np.zeros((16, 8), np.float32)[::2]  # not C-contiguous
    with pytest.raises(ValueError):
        il.init.normal_(strided_rows, seed=0)


@pytest.mark.parametrize("call,error,match", [
    (lambda: il.init.he_normal((10,)), ValueError, "fewer than 2 dimensions"),
    (lambda: il.init.xavier_uniform(()), ValueError, "fewer than 2 dimensions"),
    (lambda: il.init.lecun_normal_(np.zeros(5, np.float32)), ValueError, "fewer than 2 dimensions"),
    (lambda: il.init.he_normal((10, 5), mode="fan_avg"), ValueError, "mode"),
    (lambda: il.init.variance_scaling((10, 5), mode="fan_sum"), ValueError, "mode"),
    (lambda: il.init.variance_scaling((10, 5), distribution="cauchy"), ValueError, "distribution"),
    (lambda: il.init.variance_scaling((10, 5), scale=0.0), ValueError, "scale"),
    (lambda: il.init.he_uniform((10, 5), nonlinearity="relu7"), ValueError, "nonlinearity"),
    (lambda: il.init.normal((10, 5), std=-1.0), ValueError, "std"),
    (lambda: il.init.truncated_normal((10, 5), std=-0.1), ValueError, "std"),
    (lambda: il.init.truncated_normal((10, 5), a=1.0, b=1.0), ValueError, "a must be < b"),
    (lambda: il.init.truncated_normal((10, 5), a=-60.0, b=-50.0), ValueError, "no probability mass"),
    (lambda: il.init.uniform((10, 5), low=1.0, high=0.0), ValueError, "low must be <= high"),
    (lambda: il.init.uniform((10, 5), high=float("inf")), ValueError, "finite"),
    (lambda: il.init.sparse((10, 5), sparsity=1.0), ValueError, "sparsity"),
    (lambda: il.init.sparse((10, 5), sparsity=-0.1), ValueError, "sparsity"),
    (lambda: il.init.sparse((10, 5, 2), sparsity=0.1), ValueError, "2-D"),
    (lambda: il.init.sparse((10, 5)), TypeError, "sparsity"),
    (lambda: il.init.identity((3, 3, 3)), ValueError, "2-D"),
    (lambda: il.init.dirac((4, 4)), ValueError, "3-D to 5-D"),
    (lambda: il.init.dirac((6, 4, 3), layout="out_in", groups=4), ValueError, "groups"),
    (lambda: il.init.orthogonal((5,)), ValueError, "at least 2-D"),
    (lambda: il.init.normal((10, 5), seed=-1), ValueError, "seed"),
    (lambda: il.init.normal((10, 5), seed=2**64), ValueError, "seed"),
    (lambda: il.init.normal((10, 5), seed=1.5), TypeError, "seed"),
    (lambda: il.init.normal((10, 5), stream=-3), ValueError, "stream"),
    (lambda: il.init.normal_(np.zeros(3), seed=2**64), ValueError, "seed"),
    (lambda: il.init.normal((10, -5)), ValueError, "shape"),
    (lambda: il.init.normal((10, 2.5)), TypeError, "shape"),
    (lambda: il.init.normal("ten"), TypeError, "shape"),
    (lambda: il.init.normal((10, 5), dtype="int32"), ValueError, "dtype"),
    (lambda: il.init.normal((10, 5), layout="io"), ValueError, "layout"),
    (lambda: il.init.normal((10, 5), sd=1.0), TypeError, "unexpected parameter"),
    (lambda: il.init.normal((10, 5), std="big"), TypeError, "std"),
    (lambda: il.init.normal((10, 5), std=float("nan")), ValueError, "std"),
    (lambda: il.init.he_normal((10, 5), fan_in=-2), ValueError, "fan_in"),
    (lambda: il.init.fans((5,)), ValueError, "2 dimensions"),
])
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("shape", [(2**40, 2**30), (2**62, 4), (2**31, 2**31, 2**31)])
def test_huge_shapes_raise_instead_of_crashing(shape):
    with pytest.raises((ValueError, MemoryError)):
        il.init.normal(shape, seed=0)


def test_benchmark_module_runs_and_formats():
    from initlab.bench.init_fill import format_table, run

    rows = run(threads=(1,), size=64, repeats=1)
    assert [r["scheme"] for r in rows] == ["he_normal", "he_uniform", "truncated_normal"]
    assert all(r["initlab"] > 0 and r["numpy"] > 0 for r in rows)
    table = format_table(rows)
    assert table.count("\n") == 2 + len(rows) - 1 and "he_uniform | 1 |" in table
