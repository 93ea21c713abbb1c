"""il.theory: mean-field fixed points and depth scales against closed forms, an independent scipy
quadrature, and a wide random network's measured per-layer variance."""
import math

import numpy as np
import pytest
from scipy import integrate, optimize

import initlab as il
import reference as ref
from initlab import theory

REGISTRY = [name for name, _, _ in il._core.activations()]
# the registry's activations in plain numpy at their default parameters: the oracles of reference.py
NUMPY = {name: (lambda x, name=name: ref.activation(name, np.asarray(x, np.float64))) for name in REGISTRY}


def test_registry_covered():  # every activation has its numpy oracle (reference.py)
    assert set(ref.ACTIVATION_DEFAULTS) == set(REGISTRY)


# ---- closed forms ------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma_w2,sigma_b2", [(1.0, 0.1), (1.5, 0.05), (1.9, 0.3)])
def test_relu_closed_form(sigma_w2, sigma_b2):
    # V(q) = sigma_w2 q / 2 + sigma_b2; chi_1 = sigma_w2 / 2 < 1: c* = 1, xi_c = xi_q = -1/ln chi_1
    mf = il.theory.mean_field("relu", sigma_w2, sigma_b2)
    assert mf.q_star == pytest.approx(sigma_b2 / (1 - sigma_w2 / 2), rel=1e-12)
    assert mf.chi_1 == pytest.approx(sigma_w2 / 2, rel=1e-12)
    assert mf.c_star == 1.0
    assert mf.xi_c == pytest.approx(-1 / math.log(sigma_w2 / 2), rel=1e-10)
    assert mf.xi_q == pytest.approx(-1 / math.log(sigma_w2 / 2), rel=1e-10)
    assert mf.phase == "ordered"


def test_relu_correlation_map_is_the_arc_cosine_kernel():
    # E[relu(u1) relu(u2)] = q / (2 pi) (sqrt(1 - c^2) + (pi - arccos c) c)  (Cho & Saul 2009)
    phi = theory._Phi("relu")
    for c in (-0.9, -0.3, 0.0, 0.4, 0.95, 0.999, 1 - 1e-6):
        exact = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi)
        assert theory._gauss_pair(phi.value, phi.value, 1.0, c) == pytest.approx(exact, abs=1e-12)
        # E[relu'(u1) relu'(u2)] = (pi - arccos c) / (2 pi)
        exact_slope = (math.pi - math.acos(c)) / (2 * math.pi)
        assert theory._gauss_pair(phi.slope, phi.slope, 2.3, c) == pytest.approx(exact_slope, abs=1e-12)


def test_linear_closed_form():
    mf = il.theory.mean_field("linear", 0.6, 0.2)
    assert mf.q_star == pytest.approx(0.2 / 0.4, rel=1e-12)
    assert (mf.chi_1, mf.c_star) == (pytest.approx(0.6, rel=1e-12), 1.0)
    assert mf.xi_c == pytest.approx(-1 / math.log(0.6), rel=1e-10)


def test_critical_values():
    assert il.theory.critical_sigma_w2("relu") == pytest.approx(2.0, abs=1e-12)
    assert il.theory.critical_sigma_w2("relu", 0.3) == pytest.approx(2.0, abs=1e-12)
    assert il.theory.critical_sigma_w2("linear") == pytest.approx(1.0, abs=1e-12)
    assert il.theory.critical_sigma_w2("tanh") == pytest.approx(1.0, abs=1e-6)
    # Schoenholz et al. 2017, fig. 1: the critical line of tanh passes sigma_w2 ~ 1.76 at sigma_b2 = 0.05
    w2 = il.theory.critical_sigma_w2("tanh", 0.05)
    assert 1.75 < w2 < 1.77
    mf = il.theory.mean_field("tanh", w2, 0.05)
    assert mf.chi_1 == pytest.approx(1.0, abs=1e-10)
    assert mf.c_star == 1.0 and mf.xi_c > 1e6
    # xi_c peaks at the critical line and falls off on both sides
    below, above = (il.theory.mean_field("tanh", w2 * f, 0.05).xi_c for f in (0.8, 1.25))
    assert below < 50 and above < 50


def test_xi_c_infinite_at_chi_1():
    assert math.isinf(il.theory.mean_field("relu", 2.0).xi_c)
    assert math.isinf(il.theory.mean_field("linear", 1.0).xi_c)
    assert math.isinf(il.theory.mean_field("tanh", 1.0).xi_c)


def test_degenerate_cases():
    # relu / leaky / linear without bias: q* is 0, q0 or inf by chi_1; c* = 1; xi_c inf
    for name, w2, q_star, chi in [("relu", 1.0, 0.0, 0.5), ("relu", 3.0, math.inf, 1.5),
                                  ("linear", 0.5, 0.0, 0.5), ("linear", 2.0, math.inf, 2.0)]:
        mf = il.theory.mean_field(name, w2, 0.0)
        assert (mf.q_star, mf.c_star, math.isinf(mf.xi_c)) == (q_star, 1.0, True)
        assert mf.chi_1 == pytest.approx(chi, rel=1e-12)
        assert mf.xi_q == pytest.approx(-1 / math.log(chi), rel=1e-10)
    assert il.theory.mean_field("relu", 2.0, q0=3.5).q_star == 3.5
    assert il.theory.mean_field("leaky_relu", 2 / (1 + 0.01 ** 2), q0=2.0).q_star == pytest.approx(2.0)
    # tanh without bias, sigma_w2 <= 1: q* = 0, chi_1 = sigma_w2, xi_c = xi_q = -1/ln sigma_w2
    mf = il.theory.mean_field("tanh", 0.7)
    assert (mf.q_star, mf.c_star) == (0.0, 1.0)
    assert mf.chi_1 == pytest.approx(0.7, rel=1e-12)
    assert mf.xi_c == pytest.approx(-1 / math.log(0.7), rel=1e-10) == mf.xi_q
    # tanh without bias in the chaotic phase: odd activation, so c* = 0
    mf = il.theory.mean_field("tanh", 2.0)
    assert mf.q_star > 0 and mf.c_star == pytest.approx(0.0, abs=1e-12) and mf.chi_1 > 1


# ---- an independent quadrature (scipy.integrate, fixed points by iteration) ----------------------

def _expect_scipy(f):
    g = lambda z: f(z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return sum(integrate.quad(g, a, b, epsabs=1e-12, epsrel=1e-12, limit=200)[0]
               for a, b in ((-np.inf, 0.0), (0.0, np.inf)))


def _reference(name, w2, b2):
    """q*, chi_1, c*, xi_c by scipy's adaptive quadrature: fixed points by iterating the maps."""
    phi = lambda x: float(NUMPY[name](np.array([x]))[0])
    dphi = lambda x: (phi(x + 1e-6) - phi(x - 1e-6)) / 2e-6
    q = 1.0
    for _ in range(500):
        q_next = w2 * _expect_scipy(lambda z: phi(math.sqrt(q) * z) ** 2) + b2
        if abs(q_next - q) < 1e-13:
            break
        q = q_next
    root = math.sqrt(q)
    chi_1 = w2 * _expect_scipy(lambda z: dphi(root * z) ** 2)

    def pair(f, c):
        s = math.sqrt(1 - c * c)
        return integrate.dblquad(lambda z2, z1: f(root * z1) * f(root * (c * z1 + s * z2)) *
                              math.exp(-0.5 * (z1 * z1 + z2 * z2)) / (2 * math.pi),
                                 -10, 10, -10, 10, epsabs=1e-11, epsrel=1e-11)[0]

    c = 1.0
    if chi_1 > 1:
        c_map = lambda c: (w2 * pair(phi, c) + b2) / q
        c = optimize.brentq(lambda c: c_map(c) - c, 0.0, 0.999, xtol=1e-10)
        chi_c = w2 * pair(dphi, c)
    else:
        chi_c = chi_1
    return q, chi_1, c, -1 / math.log(chi_c)


@pytest.mark.parametrize("name,w2,b2", [("tanh", 1.5, 0.05), ("tanh", 3.0, 0.05), ("elu", 1.2, 0.1),
                                        ("sigmoid", 8.0, 0.0), ("softplus", 1.5, 0.2)])
def test_against_scipy(name, w2, b2):
    q, chi_1, c, xi_c = _reference(name, w2, b2)
    mf = il.theory.mean_field(name, w2, b2)
    assert mf.q_star == pytest.approx(q, rel=1e-9)
    assert mf.chi_1 == pytest.approx(chi_1, rel=1e-7)     # the reference differentiates numerically
    assert mf.c_star == pytest.approx(c, abs=1e-7)
    assert mf.xi_c == pytest.approx(xi_c, rel=1e-5)


def test_xi_q_is_the_slope_of_the_variance_map():
    # eq. 6: exp(-1/xi_q) = dV/dq at q*; check against a central difference of the map itself
    for name, w2, b2 in [("tanh", 2.0, 0.05), ("gelu", 1.7, 0.1), ("selu", 1.0, 0.02)]:
        mf = il.theory.mean_field(name, w2, b2)
        phi = theory._Phi(name)
        h = 1e-5 * mf.q_star
        slope = (theory.variance_map(phi, mf.q_star + h, w2, b2)
                 - theory.variance_map(phi, mf.q_star - h, w2, b2)) / (2 * h)
        assert math.exp(-1 / mf.xi_q) == pytest.approx(slope, rel=1e-7)


def test_callable_matches_name():
    for name in ("tanh", "relu", "elu"):
        by_name = il.theory.mean_field(name, 2.2, 0.1)
        by_callable = il.theory.mean_field(NUMPY[name], 2.2, 0.1)
        with_derivative = il.theory.mean_field(np.tanh, 2.2, 0.1, derivative=lambda x: 1 - np.tanh(x) ** 2) \
            if name == "tanh" else by_callable
        for mf in (by_callable, with_derivative):
            assert mf.q_star == pytest.approx(by_name.q_star, rel=1e-10)
            assert mf.chi_1 == pytest.approx(by_name.chi_1, rel=1e-7)
            assert mf.c_star == pytest.approx(by_name.c_star, abs=1e-7)
            if math.isfinite(by_name.xi_c):
                assert mf.xi_c == pytest.approx(by_name.xi_c, rel=1e-5)
    # a callable that is positively homogeneous is recognized as such
    assert math.isinf(il.theory.mean_field(NUMPY["relu"], 1.0).xi_c)


@pytest.mark.parametrize("name", REGISTRY)
def test_every_registered_activation(name):
    mf = il.theory.mean_field(name, 1.5, 0.05)
    assert mf.q_star > 0 and 0 <= mf.c_star <= 1 and mf.chi_1 > 0
    assert not math.isnan(mf.xi_c) and not math.isnan(mf.xi_q)
    if name == "gelu":  # chi_1 jumps from ~0.72 to ~1.12 where the finite fixed point vanishes
        with pytest.raises(ValueError, match="jumps"):
            il.theory.critical_sigma_w2(name, 0.05)
        return
    w2 = il.theory.critical_sigma_w2(name, 0.05)
    assert il.theory.mean_field(name, w2, 0.05).chi_1 == pytest.approx(1.0, abs=1e-9)


# ---- a wide random network ---------------------------------------------------------------------

@pytest.mark.parametrize("w2", [1.2, 2.5])
def test_wide_network_variance_reaches_q_star(w2):
    b2, width, depth = 0.05, 1024, 12
    net = il.Network([width] * (depth + 1) + [10], activation="tanh", output="softmax",
                     init=("variance_scaling", {"scale": w2, "mode": "fan_in", "distribution": "normal"}),
                     bias_init=("normal", {"std": math.sqrt(b2)}), seed=3)
    A = np.random.default_rng(0).standard_normal((64, width))     # q0 = 1
    measured = []
    for layer in net.layers[:depth]:
        Z = A @ layer.W.astype(np.float64) + layer.b
        A = np.tanh(Z)
        measured.append(float(np.mean(Z * Z)))
    measured = np.array(measured)
    mf = il.theory.mean_field("tanh", w2, b2)
    # the mean-field recursion from q0 = 1, layer by layer, against the measured variances
    phi, q, predicted = theory._Phi("tanh"), 1.0, []
    for _ in range(depth):
        q = theory.variance_map(phi, q, w2, b2) if predicted else w2 * 1.0 + b2
        predicted.append(q)
    np.testing.assert_allclose(measured, predicted, rtol=0.06)
    assert measured[-4:].mean() == pytest.approx(mf.q_star, rel=0.05)


def test_wide_network_correlation_follows_the_map():
    # 32 inputs, pairwise correlated 0.9, through 30 random tanh layers (chaotic: c* ~ 0.30): the
    # mean correlation of their pre-activations follows the iterated correlation map layer by
    # layer, and both move towards c*
    w2, b2, width, depth = 3.0, 0.05, 2048, 30
    rng = np.random.default_rng(1)
    A = math.sqrt(0.9) * rng.standard_normal((1, width)) + math.sqrt(0.1) * rng.standard_normal((32, width))
    phi, q, c = theory._Phi("tanh"), 1.0, 0.9
    measured, predicted = [], []
    for i in range(depth):
        W = il.init.variance_scaling((width, width), scale=w2, mode="fan_in", distribution="normal",
                                     dtype="float64", seed=5, stream=i)
        b = il.init.normal((width,), std=math.sqrt(b2), dtype="float64", seed=5, stream=2 ** 32 + i)
        Z = A @ W + b
        A = np.tanh(Z)
        G = Z @ Z.T                      # q_ab (the mean field's correlation is not centred)
        C = G / np.sqrt(np.outer(np.diag(G), np.diag(G)))
        measured.append(C[np.triu_indices_from(C, k=1)].mean())
        if i == 0:                       # the input layer is linear in the inputs
            q, c = w2 * q + b2, (w2 * c * q + b2) / (w2 * q + b2)
        else:
            q_next = theory.variance_map(phi, q, w2, b2)
            c = (w2 * theory._gauss_pair(phi.value, phi.value, q, c) + b2) / q_next
            q = q_next
        predicted.append(c)
    np.testing.assert_allclose(measured, predicted, atol=0.06)   # finite width: ~1/sqrt(2048) a layer
    c_star = il.theory.mean_field("tanh", w2, b2).c_star
    assert c_star == pytest.approx(0.2993, abs=1e-3)
    assert measured[-1] - c_star < 0.3 * (measured[0] - c_star)


# ---- from_weights -------------------------------------------------------------------------------

def test_from_weights():
    rng = np.random.default_rng(0)
    Ws = [rng.standard_normal((400, 400)) * math.sqrt(2.0 / 400) for _ in range(30)]
    bs = [rng.standard_normal(400) * math.sqrt(0.05) for _ in range(30)]
    r = il.theory.from_weights(Ws, bs, "tanh")
    assert r["sigma_w2"] == pytest.approx(2.0, rel=0.01) and r["sigma_b2"] == pytest.approx(0.05, rel=0.05)
    mf = il.theory.mean_field("tanh", r["sigma_w2"], r["sigma_b2"])
    assert r["xi_c"] == mf.xi_c and r["depth"] == 30
    assert r["depth_over_xi_c"] == pytest.approx(30 / mf.xi_c)
    assert r["trainable"] and "xi_c deep" in r["message"] and "trainable" in r["message"]
    deep = il.theory.from_weights([w * 2 for w in Ws], bs, "tanh", depth=300)
    assert not deep["trainable"] and "beyond the 6 xi_c" in deep["message"]


def test_from_weights_message_names_the_bias_variance_it_read():
    # relu, sigma_w2 = 3 > 2 (chi_1 = 1.5): xi_c is infinite with or without bias, but "without
    # bias" is only true at sigma_b2 = 0; a small nonzero sigma_b2 is said as it is
    W = [np.eye(50) * math.sqrt(3.0)] * 4
    no_bias = il.theory.from_weights(W, [None] * 4, "relu")
    assert math.isinf(no_bias["xi_c"]) and no_bias["sigma_b2"] == 0.0
    assert "relu without bias" in no_bias["message"]
    small = il.theory.from_weights(W, [np.full(50, 1e-3)] * 4, "relu")
    assert math.isinf(small["xi_c"]) and small["sigma_b2"] == pytest.approx(1e-6)
    assert "without bias" not in small["message"]
    assert "sigma_b2 = 1e-06" in small["message"] and "grows without bound" in small["message"]


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,argname", [
    (dict(sigma_w2=-1.0), "sigma_w2"), (dict(sigma_w2=math.nan), "sigma_w2"),
    (dict(sigma_w2=math.inf), "sigma_w2"), (dict(sigma_b2=-0.1), "sigma_b2"),
    (dict(sigma_b2=math.inf), "sigma_b2"), (dict(sigma_w2="2"), "sigma_w2"),
    (dict(activation="swish"), "activation"), (dict(activation=math.tanh), "activation"),
    (dict(activation=lambda x: np.log(x)), "activation"), (dict(activation=3), "activation"),
    (dict(activation=lambda x: x[:3]), "activation"), (dict(q0=-1.0), "q0"),
    (dict(activation=np.tanh, derivative=lambda x: 1 / x), "derivative"),
])
def test_bad_input(kwargs, argname):
    args = dict(activation="tanh", sigma_w2=1.5, sigma_b2=0.05)
    args.update(kwargs)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=argname):
        il.theory.mean_field(args.pop("activation"), args.pop("sigma_w2"), args.pop("sigma_b2"), **args)


def test_bad_input_critical():
    with pytest.raises(ValueError, match="sigma_b2"):
        il.theory.critical_sigma_w2("tanh", -1.0)
    with pytest.raises(ValueError, match="activation"):
        il.theory.critical_sigma_w2("nope")


# ---- the diagnosis reads the theory --------------------------------------------------------------

def _tanh_net(w2, depth, width=128, b2=0.05):
    return il.Network([64] + [width] * depth + [10], activation="tanh", seed=0,
                      init=f"variance_scaling(scale={w2},mode=fan_in,distribution=normal)",
                      bias_init=f"normal(std={math.sqrt(b2)})")


def test_diagnose_reports_the_mean_field_reading():
    X = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    deep = _tanh_net(4.0, 60).diagnose(X)
    t = deep.theory
    assert t["sigma_w2"] == pytest.approx(4.0, rel=0.03) and t["sigma_b2"] == pytest.approx(0.05, rel=0.3)
    mf = il.theory.mean_field("tanh", t["sigma_w2"], t["sigma_b2"])
    assert (t["chi_1"], t["xi_c"]) == (mf.chi_1, mf.xi_c) and t["depth"] == 60
    assert t["depth_over_xi_c"] == pytest.approx(60 / mf.xi_c) and t["depth_over_xi_c"] > 6
    assert not t["trainable"]
    assert f"this net is {60 / mf.xi_c:.1f} xi_c deep" in deep.evidence and "beyond the 6 xi_c" in deep.evidence
    assert "mean field (Schoenholz et al. 2017): sigma_w2 " in str(deep) and "chi_1 " in str(deep)
    assert deep.to_dict()["theory"]["xi_c"] == mf.xi_c
    shallow = _tanh_net(1.76, 10).diagnose(X)
    assert shallow.theory["trainable"] and "trainable by the mean-field criterion" in shallow.evidence
    relu = il.Network([64, 128, 128, 10], activation="relu", init="xavier_normal", seed=0).diagnose(X)
    # xavier: fan_in Var(W) = 2 fan_in / (fan_in + fan_out) = 2/3 and 1, mean 5/6; chi_1 = sigma_w2 / 2
    assert math.isinf(relu.theory["xi_c"]) and relu.theory["chi_1"] == pytest.approx(5 / 12, rel=0.05)
    # mixed activations, a non-default parameter: no reading (convolutional nets neither: Dense only)
    mixed = il.Network([il.Dense(32, activation="tanh"), il.Dense(32, activation="relu"),
                        il.Dense(10, activation="softmax")], input_dim=64, seed=0)
    assert mixed.diagnose(X).theory is None
    leaky = il.Network([il.Dense(32, activation="leaky_relu", param=0.2), il.Dense(10, activation="softmax")],
                       input_dim=64, seed=0)
    assert leaky.diagnose(X).theory is None


def test_docstring_examples():
    import doctest
    result = doctest.testmod(theory)
    assert result.attempted >= 4 and result.failed == 0
