"""Network.diagnose: the calibrated verdicts of issue 4, the per-layer quantities against numpy,
and the Jacobian spectrum against finite differences."""
from __future__ import annotations

import math

import numpy as np
import pytest

import initlab as il
from initlab.inspect.diagnose import DEAD_LAYER, SATURATED_MEAN, VERDICTS


@pytest.fixture(scope="module")
def wide_batch():
    return np.random.default_rng(0).normal(size=(128, 256)).astype(np.float32)


DEEP = [256] * 31 + [10]       # 30 hidden layers of width 256


@pytest.mark.parametrize("seed", [0])
def test_deep_relu_xavier_vanishes_and_he_is_healthy(wide_batch, seed):
    xavier = il.Network(DEEP, activation="relu", init="xavier_normal", seed=seed).diagnose(wide_batch)
    assert xavier.verdict == "vanishing", xavier.evidence
    assert xavier.forward_gain < 1e-3 and xavier.backward_gain < 1e-3
    assert 0.4 < xavier.variance_factor < 0.6            # Var(W) fan_in / 2 = 0.5 per layer
    assert "he_normal" in xavier.suggestion and "variance factor" in xavier.suggestion
    he = il.Network(DEEP, activation="relu", init="he_normal", seed=seed).diagnose(wide_batch)
    assert he.verdict == "healthy", he.evidence
    assert 0.3 < he.forward_gain < 3 and 0.3 < he.backward_gain < 3
    assert max(r["dead"] for r in he.layers[:-1]) < DEAD_LAYER


def test_relu_with_unit_normal_weights_explodes(wide_batch):
    d = il.Network(DEEP, activation="relu", init=("normal", {"std": 1.0}), seed=0).diagnose(wide_batch)
    assert d.verdict == "exploding", d.evidence
    assert d.forward_gain > 1e20 and 100 < d.variance_factor < 160   # 256 * 1 / 2 = 128
    assert d.suggestion.startswith('init="he_normal"') and "torch.nn.init.kaiming_normal_" in d.suggestion


def test_deep_tanh_with_unit_normal_weights_saturates(wide_batch):
    d = il.Network(DEEP, activation="tanh", init=("normal", {"std": 1.0}), seed=0).diagnose(wide_batch)
    assert d.verdict == "saturated", d.evidence
    assert np.mean([r["saturated"] for r in d.layers[:-1]]) > SATURATED_MEAN
    assert d.suggestion.startswith('init="xavier_normal"') and "torch.nn.init.xavier_normal_" in d.suggestion
    assert [f.kind for f in d.findings][:1] == ["saturated"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_narrow_deep_relu_is_dead(seed):
    X = np.random.default_rng(0).normal(size=(128, 64)).astype(np.float32)
    d = il.Network([64] + [4] * 30 + [10], activation="relu", init="he_normal", seed=seed).diagnose(X)
    # every seed loses >= 75% of a layer; seeds 0 and 1 also lose the signal on the way (vanishing comes
    # first in API.md's order; the gains are measured on the live layers, below the first
    # completely dead one)
    kinds = [f.kind for f in d.findings]
    assert kinds == (["dead"] if seed == 2 else ["vanishing", "dead"]), d.findings
    dead = d.findings[-1]
    assert "dead" in dead.evidence and "leaky_relu" in dead.suggestion
    assert min(d.layers[i]["dead"] for i in dead.layers) >= DEAD_LAYER


def test_rows_match_numpy_and_table_prints():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 6))
    y = rng.integers(0, 3, 40)
    net = il.Network([6, 9, 7, 3], activation="tanh", init="xavier_uniform", seed=3, dtype="float64")
    d = net.diagnose(X, y)
    W0, b0, W1, b1, W2, b2 = net.get_weights()
    Z0 = X @ W0 + b0
    A0 = np.tanh(Z0)
    Z1 = A0 @ W1 + b1
    row = d.layers[0]
    assert row["pre_mean"] == pytest.approx(Z0.mean(), rel=1e-10, abs=1e-12)
    assert row["pre_std"] == pytest.approx(Z0.std(), rel=1e-10)
    assert row["act_std"] == pytest.approx(A0.std(), rel=1e-10)
    assert d.layers[1]["pre_std"] == pytest.approx(Z1.std(), rel=1e-10)
    for r, W in zip(d.layers, (W0, W1, W2)):
        sv = np.linalg.svd(W, compute_uv=False)
        assert r["spectral_norm"] == pytest.approx(sv[0], rel=1e-9)
        assert r["stable_rank"] == pytest.approx(np.sum(sv ** 2) / sv[0] ** 2, rel=1e-9)
    grads = net.gradients(X, y)
    for r, (dW, _) in zip(d.layers, grads):
        assert r["grad_norm"] == pytest.approx(np.linalg.norm(dW), rel=1e-10)
    assert d.verdict in VERDICTS
    text = str(d)
    assert text.count("\n") >= 3 + 5 and "verdict: " + d.verdict in text and "stable_rank" in text


def test_jacobian_singular_values_match_finite_differences():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 4))
    net = il.Network([4, 8, 3], activation="gelu", output="linear", seed=1, dtype="float64")
    d = net.diagnose(X, jacobian_samples=2)
    assert d.jacobian["samples"] == 2 and d.jacobian["singular_values"].shape == (2, 3)
    h = 1e-6
    for s in range(2):
        J = np.empty((3, 4))
        for j in range(4):
            e = np.zeros(4)
            e[j] = h
            J[:, j] = (net.forward((X[s] + e)[None]) - net.forward((X[s] - e)[None]))[0] / (2 * h)
        np.testing.assert_allclose(d.jacobian["singular_values"][s], np.linalg.svd(J, compute_uv=False),
                                   rtol=1e-6)


def test_without_labels_the_output_gradient_is_seeded_noise():
    X = np.random.default_rng(3).normal(size=(30, 5)).astype(np.float32)
    net = il.Network([5, 6, 2], seed=0)
    a, b, c = net.diagnose(X, seed=1), net.diagnose(X, seed=1), net.diagnose(X, seed=2)
    assert [r["grad_norm"] for r in a.layers] == [r["grad_norm"] for r in b.layers]
    assert [r["grad_norm"] for r in a.layers] != [r["grad_norm"] for r in c.layers]
    assert a.layers[-1]["grad_std"] == pytest.approx(1.0, abs=0.3)   # unit-variance output gradient


def test_overflow_and_zero_weights():
    X = np.random.default_rng(0).normal(size=(64, 128)).astype(np.float32)
    d = il.Network([128] * 51 + [10], init=("normal", {"std": 1.0}), seed=0).diagnose(X)
    assert d.verdict == "exploding" and "overflow" in d.evidence
    assert np.isnan(d.jacobian["sv_max"])
    assert "nan" in str(d)
    d = il.Network([128, 32, 32, 10], init="zeros", seed=0).diagnose(X)
    # zeros: the cause is symmetry; the all-zero layers are listed after it, without the
    # meaningless "multiply Var(W) by about 1" (the gains of an all-zero stack are 0/0)
    assert d.verdict == "symmetric"
    kinds = [f.kind for f in d.findings]
    assert kinds[:2] == ["symmetric", "vanishing"]
    zero = d.findings[1]
    assert "all-zero weights" in zero.evidence and zero.layers == (0, 1)
    assert "multiply Var(W)" not in zero.suggestion and zero.suggestion.startswith('init="he_normal"')


# ---- issue 10: symmetric units, every finding, "dead" only for relu -------------------------------
from initlab.inspect.diagnose import (Diagnosis, Finding, build_diagnosis,  # noqa: E402
                                      symmetric_units)


@pytest.fixture(scope="module")
def digits():
    X, y = il.datasets.load_digits()
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    return X.astype(np.float32), y


def _invariants(d):
    """What every diagnosis promises: the verdict is the first finding's kind, findings are in
    API.md's order, and every finding names layers that have rows."""
    order = ["symmetric", "exploding-nonfinite", "saturated", "exploding", "vanishing", "dead"]
    assert d.verdict == (d.findings[0].kind if d.findings else "healthy")
    if d.findings:
        assert (d.evidence, d.suggestion) == (d.findings[0].evidence, d.findings[0].suggestion)
    rows = {r["layer"] for r in d.layers}
    ranks = []
    for f in d.findings:
        assert isinstance(f, Finding) and f.kind in VERDICTS and f.kind != "healthy"
        assert f.layers and set(f.layers) <= rows
        assert f.evidence and f.suggestion
        key = "exploding-nonfinite" if f.kind == "exploding" and "overflow" in f.evidence else f.kind
        ranks.append(order.index(key))
        # every suggestion names the initlab call and the PyTorch equivalent
        assert "init=" in f.suggestion and "torch." in f.suggestion
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


@pytest.mark.parametrize("activation, init", [
    ("relu", "zeros"), ("tanh", "zeros"), ("tanh", "constant(value=0.05)"),
    ("relu", "constant(value=0.02)"), ("sigmoid", "ones"),
])
def test_constant_init_is_symmetric(digits, activation, init):
    X, y = digits
    net = il.Network([64, 48, 32, 10], activation=activation, init=init, seed=0)
    d = net.diagnose(X[:256], y[:256])
    _invariants(d)
    assert d.verdict == "symmetric", d.findings
    assert d.findings[0].layers == (0, 1)
    assert d.symmetric == {0: [list(range(48))], 1: [list(range(32))]}
    assert "all units are identical" in d.evidence and init in d.evidence
    assert "multiply Var(W)" not in d.suggestion
    expected = "he_normal" if activation == "relu" else "xavier_normal"
    assert f'init="{expected}"' in d.suggestion
    assert "symmetric" in str(d) and "symmetric" in repr(d)


def test_symmetric_units_stay_identical_through_training(digits):
    X, y = digits
    net = il.Network([64, 32, 32, 10], activation="tanh", init="constant(value=0.05)", seed=0)
    net.fit(X[:400], y[:400], epochs=3, batch_size=32, lr=0.05, stats_every=0, progress=False)
    for layer in net.layers[:-1]:
        assert np.ptp(layer.W, axis=1).max() == 0.0 and np.ptp(layer.b) == 0.0  # spread exactly 0
    assert net.diagnose(X[:256], y[:256]).verdict == "symmetric"


def test_identical_units_with_different_outgoing_weights_are_not_symmetric(digits):
    X, y = digits
    net = il.Network([64, 16, 16, 10], activation="tanh", init="xavier_normal", seed=1)
    W = net.layers[0].W.copy()
    W[:, :] = W[:, :1]                      # every unit of layer 0 has the same incoming weights
    net.layers[0].W = W
    net.layers[0].b = np.zeros(16)
    d = net.diagnose(X[:128], y[:128])      # ... but layer 1's rows (their outgoing weights) differ
    assert d.symmetric == {} and "symmetric" not in [f.kind for f in d.findings]
    # and once the outgoing weights of units 3 and 5 agree as well, those two are symmetric
    W1 = net.layers[1].W.copy()
    W1[5] = W1[3]
    net.layers[1].W = W1
    d = net.diagnose(X[:128], y[:128])
    assert d.symmetric == {0: [[3, 5]]} and d.verdict == "symmetric"
    assert d.findings[0].layers == (0,) and "2 of 16 units in 1 group(s)" in d.evidence


def test_symmetric_units_from_plain_arrays():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 6))
    b = rng.normal(size=6)
    W_next = rng.normal(size=(6, 3))
    assert symmetric_units(W, b, W_next) == []
    W[:, 4] = W[:, 1]; b[4] = b[1]; W_next[4] = W_next[1]
    W[:, 5] = W[:, 0]; b[5] = b[0]; W_next[5] = W_next[0]
    assert symmetric_units(W, b, W_next) == [[0, 5], [1, 4]]
    b[5] = -b[5] if b[5] else 1.0           # a different bias separates them
    assert symmetric_units(W, b, W_next) == [[1, 4]]
    assert symmetric_units(W, b, None) == []                # the output layer: nothing downstream
    # -0.0 equals 0.0; no bias means zero biases
    assert symmetric_units(np.array([[0.0, -0.0]]), None, np.array([[1.0], [1.0]])) == [[0, 1]]
    # conv kernels (kh, kw, C_in, C_out) followed by a conv: units are output channels
    K = np.full((3, 3, 2, 4), 0.1)
    K_next = rng.normal(size=(3, 3, 4, 5))
    K_next[:, :, 2] = K_next[:, :, 0]
    assert symmetric_units(K, np.zeros(4), K_next) == [[0, 2]]
    with pytest.raises(ValueError, match="W_next"):
        symmetric_units(W, b, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="b must have 6"):
        symmetric_units(W, np.zeros(5), W_next)
    with pytest.raises(ValueError, match="W must have >= 2"):
        symmetric_units(np.zeros(4), None, np.zeros((4, 1)))


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "selu", "gelu", "softplus"])
def test_only_relu_units_die(activation):
    X = np.random.default_rng(0).normal(size=(128, 64)).astype(np.float32)
    net = il.Network([64] + [4] * 12 + [10], activation=activation, init="he_normal", seed=0)
    d = net.diagnose(X)
    _invariants(d)
    assert d.verdict != "dead" and "dead" not in [f.kind for f in d.findings]
    assert all(r["dead"] == 0.0 for r in d.layers)
    # the same net with relu does lose units (the contrast that makes this test able to fail)
    relu = il.Network([64] + [4] * 12 + [10], activation="relu", init="he_normal", seed=0).diagnose(X)
    assert max(r["dead"] for r in relu.layers) >= DEAD_LAYER and "dead" in [f.kind for f in relu.findings]


def test_leaky_relu_12x4_net_is_not_dead(digits):
    X, y = digits
    d = il.Network([64] + [12] * 4 + [10], activation="leaky_relu", seed=0).diagnose(X[:256], y[:256])
    assert d.verdict != "dead" and all(r["dead"] == 0.0 for r in d.layers)
    d = il.Network([64] + [4] * 12 + [10], activation="leaky_relu", seed=0).diagnose(X[:256], y[:256])
    assert d.verdict != "dead" and all(r["dead"] == 0.0 for r in d.layers)


@pytest.mark.parametrize("seed", [0, 1])
def test_stalled_deep_xavier_relu_lists_vanishing_and_dead(digits, seed):
    X, y = digits
    net = il.Network([64] + [64] * 30 + [10], activation="relu", init="xavier_normal", seed=seed)
    report = net.fit(X[:512], y[:512], epochs=10, batch_size=32, lr=0.01, momentum=0.9, stats_every=0,
                     progress=False)
    assert report.history[-1]["loss"] > 2.2                       # stalled: log(10) = 2.30
    d = net.diagnose(X[:256], y[:256])
    _invariants(d)
    kinds = [f.kind for f in d.findings]
    assert kinds == ["vanishing", "dead"], d.findings
    assert d.backward_gain < 1e-3
    dead = d.findings[1]
    assert all(d.layers[i]["dead"] >= DEAD_LAYER for i in dead.layers) and min(dead.layers) >= 15


def test_saturated_then_exploding_gain(digits):
    X, y = digits
    d = il.Network([64] + [128] * 6 + [10], activation="tanh", init="normal(std=1.0)", seed=0).diagnose(
        X[:256], y[:256])
    _invariants(d)
    assert [f.kind for f in d.findings] == ["saturated", "exploding"]
    assert d.backward_gain > 10


def test_healthy_has_no_findings_and_keeps_the_init(digits):
    X, y = digits
    d = il.Network([64, 128, 128, 10], activation="relu", init="he_normal(mode=fan_in)", seed=0).diagnose(
        X[:256], y[:256])
    _invariants(d)
    assert d.verdict == "healthy" and d.findings == []
    assert "keep the current initialization (he_normal(mode=fan_in))" in d.suggestion


def test_every_row_is_finite_for_every_output(digits):
    X, y = digits
    Y = np.eye(10, dtype=np.float32)[y]
    for output, target in (("softmax", y), ("sigmoid", Y), ("linear", Y)):
        net = il.Network([64, 32, 10], activation="relu", output=output, seed=0)
        for d in (net.diagnose(X[:100], target[:100]), net.diagnose(X[:100])):
            for r in d.layers:
                values = [v for k, v in r.items() if isinstance(v, float)]
                assert np.all(np.isfinite(values)), (output, r)
            out = d.layers[-1]
            Z = net.forward(X[:100]) if output == "linear" else None
            if Z is not None:
                assert out["act_std"] == pytest.approx(Z.std(), rel=1e-5)


# ---- the model-agnostic builder (what il.torch.diagnose uses) -------------------------------------
def _row(layer, activation="relu", pre_std=1.0, act_std=0.6, grad_std=1.0, saturated=0.0, dead=0.0,
         spectral_norm=1.5, fan_out=8):
    return {"layer": layer, "activation": activation, "pre_mean": 0.0, "pre_std": pre_std,
            "act_mean": 0.3, "act_std": act_std, "saturated": saturated, "dead": dead,
            "grad_norm": 1.0, "grad_std": grad_std, "spectral_norm": spectral_norm, "stable_rank": 3.0,
            "fan_in": 8, "fan_out": fan_out}


def test_build_diagnosis_every_finding_in_order():
    # layer positions as a CNN's would be (pooling in between has no row)
    rows = [_row(0, dead=0.9, grad_std=1e-4), _row(2, pre_std=1e-3), _row(5, "linear")]
    d = build_diagnosis(rows, symmetric={2: [[0, 1, 2, 3, 4, 5, 6, 7]]}, inits=["constant(value=0.1)"] * 3)
    _invariants(d)
    # vanishing: layer 2's signal is 1e-3 of layer 0's (forward), layer 0's gradient 1e-4 of layer 2's
    assert [(f.kind, f.layers) for f in d.findings] == [("symmetric", (2,)), ("vanishing", (0, 2)),
                                                        ("dead", (0,))]
    assert d.forward_gain == pytest.approx(1e-3) and d.backward_gain == pytest.approx(1e-4)
    assert isinstance(d, Diagnosis) and d.jacobian["samples"] == 0 and np.isnan(d.jacobian["sv_max"])
    assert "constant(value=0.1)" in d.evidence
    rows = [_row(0, "tanh", saturated=0.8), _row(1, "tanh", pre_std=math.inf), _row(2, "linear")]
    d = build_diagnosis(rows)
    _invariants(d)
    assert [f.kind for f in d.findings] == ["exploding", "saturated"] and "overflow" in d.evidence
    assert d.findings[0].layers == (1,)
    d = build_diagnosis([_row(0, "tanh"), _row(1, "tanh", pre_std=100.0), _row(2, "linear")])
    assert d.verdict == "exploding" and "overflow" not in d.evidence and d.findings[0].layers == (1,)
    d = build_diagnosis([_row(0), _row(1, spectral_norm=0.0, pre_std=0.0, grad_std=0.0), _row(2, "linear")])
    assert d.verdict == "vanishing" and "all-zero" in d.evidence and d.findings[0].layers == (1,)
    d = build_diagnosis([_row(0), _row(1), _row(2, "linear")], inits={0: "he_normal", 1: "he_normal"})
    assert d.verdict == "healthy" and d.findings == [] and "(he_normal)" in d.suggestion


def test_build_diagnosis_styles():
    rows = [_row(0), _row(1, pre_std=1e-3), _row(2, "linear")]
    ours = build_diagnosis(rows, style="initlab")
    theirs = build_diagnosis(rows, style="torch")
    assert ours.suggestion.startswith('init="he_normal" (PyTorch: torch.nn.init.kaiming_normal_(')
    assert theirs.suggestion.startswith('torch.nn.init.kaiming_normal_(w, nonlinearity="relu") '
                                        '(initlab: il.torch.init_(model, init="he_normal"))')
    leaky = [dict(_row(0, "leaky_relu"), param=0.2), _row(1, "leaky_relu", pre_std=1e-3), _row(2, "linear")]
    assert 'init="he_normal(a=0.2)"' in build_diagnosis(leaky).suggestion
    with pytest.raises(ValueError, match="style"):
        build_diagnosis(rows, style="keras")
    with pytest.raises(ValueError, match="inits"):
        build_diagnosis(rows, inits=["he_normal"])
    with pytest.raises(ValueError, match="rows"):
        build_diagnosis([])


def test_diagnosis_serializes_findings(digits):
    X, y = digits
    d = il.Network([64, 16, 10], init="zeros", seed=0).diagnose(X[:64], y[:64])
    data = d.to_dict()
    assert data["verdict"] == "symmetric" and data["findings"][0]["kind"] == "symmetric"
    assert data["findings"][0]["layers"] == [0] and data["symmetric"] == {"0": [list(range(16))]}
    import json
    json.dumps(data)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
def test_report_rows_are_true_for_every_output(digits, output):
    """Report.layer_stats of the output layer: probabilities for softmax/sigmoid, the values
    themselves for a linear output (it once read a buffer mean squared error never fills)."""
    X, y = digits
    target = y[:300] if output == "softmax" else np.eye(10, dtype=np.float32)[y[:300]]
    net = il.Network([64, 32, 10], activation="relu", output=output, seed=0)
    report = net.fit(X[:300], target, epochs=2, batch_size=50, lr=0.01, stats_every=1, progress=False)
    assert len(report.layer_stats) == 3       # at init, then after each epoch
    for epoch in report.layer_stats:           # per recorded epoch, one dict per layer
        for row in epoch:
            values = [v for v in row.values() if isinstance(v, float)]
            assert np.all(np.isfinite(values)), row
        out = epoch[-1]
        assert abs(out["act_mean"]) < 10 and 0 <= out["act_std"] < 10
        if output != "linear":  # probabilities
            assert 0 <= out["act_mean"] <= 1


def test_a_loaded_network_is_diagnosed_with_its_initializers(tmp_path, digits):
    """`initlab diagnose --model` once advised keeping "zeros" for a he_normal model."""
    X, y = digits
    net = il.Network([64, 64, 64, 10], init="he_normal(mode=fan_in)", seed=0)
    path = net.save(tmp_path / "model.npz")
    d = il.Network.load(path).diagnose(X[:256], y[:256])
    assert d.verdict == "healthy"
    assert "keep the current initialization (he_normal(mode=fan_in))" in d.suggestion
    constant = il.Network([64, 32, 10], activation="tanh", init="constant(value=0.05)", seed=0)
    d = il.Network.load(constant.save(tmp_path / "constant.npz")).diagnose(X[:256], y[:256])
    assert d.verdict == "symmetric" and "initialized with constant(value=0.05)" in d.evidence


def test_recommendation_for_an_activation_without_its_own_row_comes_from_the_registry_gain():
    from initlab.inspect import diagnose as dg
    # every registry activation gets a suggestion il.init.get can read; those without a hand-written
    # row (a newly registered activation) get Var(W) = gain^2 / fan_in from the registry's gain
    for name, entry in dg.REGISTRY.items():
        rec = dg._RECOMMENDED.get(name) or dg._from_gain(name)
        assert rec is not None, name
        il.init.get(rec.initlab.format(param="0.01"))
    rec = dg._from_gain("selu")
    assert rec.initlab == "variance_scaling(scale=0.5625,mode=fan_in,distribution=normal)"
    W = il.init.get(rec.initlab)((4000, 50), seed=0)
    assert np.std(W) == pytest.approx(0.75 / np.sqrt(4000), rel=0.02)
    assert dg._from_gain("softmax") is None  # an output activation: not in the registry
