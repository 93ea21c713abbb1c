"""Network.diagnose: the calibrated verdicts of issue 4, the per-layer quantities against numpy,
and the Jacobian spectrum against finite differences."""
from __future__ import annotations

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
    assert d.suggestion.startswith("he_normal")


def test_deep_tanh_with_unit_normal_weights_saturates(wide_batch):
    d = il.Network(DEEP, activation="tanh", init=("normal", {"std": 1.0}), seed=0).diagnose(wide_batch)
    assert d.verdict == "saturated", d.evidence
    assert np.mean([r["saturated"] for r in d.layers[:-1]]) > SATURATED_MEAN
    assert d.suggestion.startswith("xavier_normal")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_narrow_deep_relu_is_dead(seed):
    X = np.random.default_rng(0).normal(size=(128, 64)).astype(np.float32)
    d = il.Network([64] + [4] * 30 + [10], activation="relu", init="he_normal", seed=seed).diagnose(X)
    assert d.verdict == "dead", d.evidence
    assert "dead" in d.evidence and "leaky_relu" in d.suggestion


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
    assert d.verdict == "vanishing" and "all-zero weights" in d.evidence
    assert d.suggestion.startswith("he_normal")
