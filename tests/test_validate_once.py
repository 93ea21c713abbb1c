"""Validate and plan once: one crossing into the core per plain initializer draw, labels checked
once per fit (not again on every batch), one seed validator everywhere."""
from __future__ import annotations

import numpy as np
import pytest

import initlab as il
from initlab import _core


def counting(monkeypatch, name):
    calls = []
    real = getattr(_core, name)

    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, name, wrapper)
    return calls


@pytest.mark.parametrize("name", ["he_normal", "xavier_uniform", "variance_scaling", "zeros", "sparse"])
def test_a_plain_draw_crosses_into_the_core_once(monkeypatch, name):
    fills, plans = counting(monkeypatch, "init_fill"), counting(monkeypatch, "init_plan")
    params = {"sparsity": 0.5} if name == "sparse" else {}
    W = il.init.get(name)((64, 32), seed=1, **params)
    assert len(fills) == 1 and plans == []
    assert W.tobytes() == il.init.get(name + "_")(np.empty((64, 32), np.float32), seed=1, **params).tobytes()
    with pytest.raises(ValueError, match="beyond what float32 holds"):
        il.init.normal((2, 2), std=1e38, seed=0)


def test_fit_checks_labels_once_and_the_loop_skips_the_scan(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    calls = counting(monkeypatch, "softmax_cross_entropy")
    net = il.Network([3, 4, 3], seed=0)
    net.fit(X, y, epochs=1, batch_size=8, stats_every=0, progress=False)
    steps = [c for c in calls if c[1].get("labels_checked") is True]  # a keyword-only argument
    assert len(steps) == 5 and len(calls) == 5            # every training step, nothing else
    before = net.get_weights()
    with pytest.raises(ValueError, match="labels must be integers in"):
        net.fit(X, np.where(np.arange(40) == 39, 3, y), epochs=1, progress=False)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, net.get_weights()))
    # The checked path of the binding still refuses a label out of range.
    Z, P = np.zeros((2, 3), np.float32), np.empty((2, 3), np.float32)
    with pytest.raises(ValueError, match="out of range"):
        _core.softmax_cross_entropy(Z, np.array([0, 3]), P)


@pytest.mark.parametrize("call", [
    lambda seed: il.Network([2, 2], seed=seed),
    lambda seed: il.init.normal((2,), seed=seed),
    lambda seed: il.datasets.make_blobs(10, 2, seed=seed),
    lambda seed: il.Network([2, 2], seed=0).diagnose(np.ones((4, 2)), seed=seed),
])
@pytest.mark.parametrize("bad,error", [(-1, ValueError), (2**64, ValueError), ("1", TypeError),
                                       (True, TypeError), (1.0, TypeError)])
def test_one_seed_validator(call, bad, error):
    with pytest.raises(error, match=r"seed must be an int in \[0, 2\*\*64\)"):
        call(bad)
