"""The benchmark modules compute what they claim: the initlab training step is the same math as the
numpy (and PyTorch) step, and the tables carry every column."""
from __future__ import annotations

import numpy as np
import pytest

from initlab.bench import gemm, train_step
from initlab.bench.timing import pinned_cpus as timing_pinned


@pytest.mark.parametrize("name", ["tiny", "tanh5"])
def test_initlab_step_matches_numpy_step(name):
    spec = next(s for s in train_step.NETWORKS if s.name == name)
    ours, plain = train_step.initlab_step(spec), train_step.numpy_step(spec)
    for _ in range(3):  # the losses agree step after step: same forward, gradients and update
        assert ours() == pytest.approx(plain(), rel=2e-5)


def test_initlab_step_matches_torch_step():
    pytest.importorskip("torch")
    spec = train_step.NETWORKS[0]
    ours, theirs = train_step.initlab_step(spec), train_step.torch_step(spec)
    for _ in range(3):
        assert ours() == pytest.approx(theirs(), rel=2e-5)


def test_jax_step_matches_initlab_step():
    pytest.importorskip("jax")
    for name in ("tiny", "tanh5"):  # both hidden activations
        spec = next(s for s in train_step.NETWORKS if s.name == name)
        ours, theirs = train_step.initlab_step(spec), train_step.jax_step(spec)
        for _ in range(3):  # the same step: the losses agree step after step
            assert ours() == pytest.approx(theirs(), rel=2e-5)


def test_tables_have_every_column():
    rows = train_step.run(threads=(1,), quick=True, networks=["tiny"])  # in a process pinned to 1 CPU
    assert len(rows) == 1 and rows[0]["initlab_ms"] > 0 and rows[0]["numpy_ms"] > 0
    if timing_pinned(1):
        assert len(rows[0]["cpus"]) == 1
    table = train_step.format_table(rows)
    assert "| tiny | 64-64-64-10 | 32 | 1 |" in table
    try:
        import jax  # noqa: F401
    except ImportError:
        assert np.isnan(rows[0]["jax_ms"]) and "jax ms" not in table
    else:  # the JAX column, and how its thread count was obtained
        assert rows[0]["jax_ms"] > 0 and "jax ms" in table and "initlab/jax" in table
        if timing_pinned(1):
            assert "pinned to that many CPUs" in table
    rows = gemm.run(threads=(1,), quick=True, shapes=[("small", 40, 50, 60)])
    assert [r["variant"] for r in rows] == list(gemm.VARIANTS)
    assert all(r["initlab_gflops"] > 0 and r["numpy_gflops"] > 0 for r in rows)
    assert "| small | 40x50x60 | X*W | 1 |" in gemm.format_table(rows)


def test_one_timing_helper_with_a_statistic(monkeypatch):
    from initlab.bench import timing

    monkeypatch.setattr(timing, "SETTLE_SECONDS", 0.0)
    calls = {"a": 0}

    def a():
        calls["a"] += 1

    out_min = timing.time_interleaved({"a": a, "skipped": None}, 0.0, statistic="min", rounds=2, warmup=1)
    assert calls["a"] == 2 * (1 + 3)  # per round: 1 warm-up and at least 3 timed calls
    assert out_min["a"] >= 0 and np.isnan(out_min["skipped"])
    out_median = timing.time_interleaved({"a": a}, 0.0, statistic="median", rounds=1)
    assert out_median["a"] > 0
    calls["a"] = 0
    timing.time_interleaved({"a": a}, 0.0, statistic="min", rounds=1, warmup=0, calls=7)
    assert calls["a"] == 7
    with pytest.raises(ValueError, match="statistic"):
        timing.time_interleaved({"a": a}, 0.0, statistic="mean")


def test_fit_digits_benchmark_fits_run():
    from initlab.bench import fit_digits

    report = fit_digits.initlab_fit(epochs=1)()
    assert len(report.history) == 1 and report.history[0]["loss"] < 2.5
    nan = float("nan")
    table = fit_digits.format_table([{"threads": 1, "epochs": 1, "initlab_s": 0.5, "sklearn_s": 1.0,
                                      "torch_s": 2.0, "jax_s": nan, "jax_scan_s": nan, "initlab_over_sklearn": 0.5,
                                      "initlab_over_torch": 0.25, "initlab_over_jax": nan,
                                      "initlab_over_jax_scan": nan, "cpus": [0]}])
    assert "| 1 | 1 | 0.500 | 1.000 | 2.000 | nan | nan | 0.50 | 0.25 | nan | nan |" in table


def test_fit_digits_jax_fits_learn_the_same():
    jax = pytest.importorskip("jax")
    from initlab.bench import fit_digits

    X, y = fit_digits._data()
    states = [fit_digits.jax_fit(epochs=2, scan=scan)() for scan in (False, True)]
    for state in states:
        params, _, _, t = state
        assert float(t) == 2 * -(-len(X) // fit_digits.BATCH)  # every batch, the partial one too, once
        h = X
        for i, (W, b) in enumerate(params):
            h = h @ np.asarray(W) + np.asarray(b)
            h = np.maximum(h, 0) if i < len(params) - 1 else h
        assert (h.argmax(axis=1) == y).mean() > 0.9  # it learned
    for a, b in zip(jax.tree_util.tree_leaves(states[0]), jax.tree_util.tree_leaves(states[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)  # the same fit

