"""Report: history, layer statistics against a numpy recomputation, str/JSON/CSV/PNG output."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import initlab as il


def trained(epochs=3, stats_every=1, **kw):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)
    net = il.Network([8, 16, 12, 3], activation="tanh", init="xavier_normal", seed=0)
    report = net.fit(X, y, epochs=epochs, batch_size=20, optimizer="adam", lr=0.01,
                     validation_split=0.2, stats_every=stats_every, progress=False, **kw)
    return net, report, X, y


def test_history_and_layer_stats_shape():
    net, report, X, y = trained(epochs=4, stats_every=2)
    assert [h["epoch"] for h in report.history] == [1, 2, 3, 4]
    for h in report.history:
        assert set(h) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
        assert h["loss"] > 0 and 0 <= h["accuracy"] <= 1 and 0 <= h["val_accuracy"] <= 1
        assert h["seconds"] > 0
    assert [rec[0]["epoch"] for rec in report.layer_stats] == [0, 2, 4]
    for rec in report.layer_stats:
        assert [s["layer"] for s in rec] == [0, 1, 2]
        for s in rec:
            assert s["grad_norm"] > 0 and s["weight_norm"] > 0 and 0 <= s["saturated"] <= 1
    assert all(s["update_ratio"] is None for s in report.layer_stats[0])
    assert all(0 < s["update_ratio"] < 1 for s in report.layer_stats[-1])
    assert not report.diverged and report.stop_reason is None
    # The last record's weight norms are the final weights' norms.
    for s, layer in zip(report.layer_stats[-1], net.layers):
        assert s["weight_norm"] == pytest.approx(np.linalg.norm(layer.W), rel=1e-5)
    # Validation loss is the evaluation of the last 20% of the rows.
    assert report.history[-1]["val_loss"] == pytest.approx(net.evaluate(X[160:], y[160:])["loss"], rel=1e-6)


def test_probe_statistics_match_numpy():
    net, report, X, y = trained(epochs=1, stats_every=1)
    # Recompute on the probe rows with the final weights (epoch 1's record is after the update).
    probe_size = report.config["probe_size"]
    rows = np.sort(np.random.Generator(np.random.Philox(key=net.seed)).permutation(160)[:probe_size])
    Xp, yp = X[:160][rows].astype(np.float64), y[:160][rows]
    W0, b0, W1, b1, W2, b2 = [a.astype(np.float64) for a in net.get_weights()]
    Z0 = Xp @ W0 + b0
    A0 = np.tanh(Z0)
    s0 = report.layer_stats[-1][0]
    assert s0["pre_mean"] == pytest.approx(Z0.mean(), abs=1e-5)
    assert s0["pre_std"] == pytest.approx(Z0.std(), rel=1e-4)
    assert s0["act_mean"] == pytest.approx(A0.mean(), abs=1e-5)
    assert s0["act_std"] == pytest.approx(A0.std(), rel=1e-4)
    assert s0["saturated"] == pytest.approx(np.mean(np.abs(A0) > 0.99), abs=1e-6)
    grads = net.gradients(X[:160][rows], yp)
    for s, (dW, _) in zip(report.layer_stats[-1], grads):
        assert s["grad_norm"] == pytest.approx(np.linalg.norm(dW.astype(np.float64)), rel=1e-4)


def test_str_json_csv(tmp_path):
    net, report, X, y = trained(epochs=2)
    text = str(report)
    assert "epoch" in text and "val_loss" in text and "layer statistics at epoch 2" in text
    assert text.count("\n") >= 2 + 1 + 2 + 3 and "diverged: False" in text
    path = report.to_json(tmp_path / "r.json")
    data = json.loads(open(path).read())
    assert data["history"] == json.loads(json.dumps(report.history))
    assert len(data["layer_stats"]) == 3 and data["diverged"] is False
    assert data["config"]["optimizer"] == "adam"
    report.to_csv(tmp_path / "h.csv")
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["loss"]) == pytest.approx(report.history[1]["loss"])
    report.to_csv(tmp_path / "s.csv", what="layer_stats")
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == 9 and rows[0]["update_ratio"] == "" and float(rows[-1]["update_ratio"]) > 0
    with pytest.raises(ValueError, match="what must be 'history' or 'layer_stats'"):
        report.to_csv(tmp_path / "x.csv", what="weights")


def test_json_of_a_diverged_report_is_valid(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (X @ rng.normal(size=(4, 1)) * 1e3).astype(np.float32)
    report = il.Network([4, 16, 1], output="linear", seed=0).fit(X, y, epochs=30, lr=10.0, progress=False)
    assert report.diverged
    data = json.loads(open(report.to_json(tmp_path / "d.json")).read())
    assert data["diverged"] is True and "diverged at epoch" in data["stop_reason"]
    assert data["divergence"]["loss"] is None or math.isfinite(data["divergence"]["loss"])


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    net, report, X, y = trained(epochs=3)
    path = report.plot(tmp_path / "report.png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    import os
    assert os.path.getsize(path) > 10_000
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp") or p.startswith(".initlab-")]


def test_stats_every_zero_records_nothing():
    net, report, X, y = trained(epochs=2, stats_every=0)
    assert report.layer_stats == [] and report.stats_seconds == 0.0
    assert "layer statistics" not in str(report)


def test_progress_bar_when_forced(capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    il.Network([3, 4, 2], seed=0).fit(X, (X[:, 0] > 0).astype(int), epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "epoch" in err
    il.Network([3, 4, 2], seed=0).fit(X, (X[:, 0] > 0).astype(int), epochs=2, progress=False)
    assert capsys.readouterr().err == ""


def test_statistics_cost_under_5_percent_of_training():
    # The budget: layer statistics every epoch cost < 5% of training time. Measured inside
    # fit (stats_seconds vs train_seconds). The median of five runs absorbs a noisy machine.
    # The probe is n // 32 samples (at most 256) run layer by layer from Python: a fixed ~0.15 ms per
    # epoch of per-call overhead besides its 1/32 of the FLOPs. Since the native batch loop and the
    # 512-bit GEMM, an epoch of 4096 samples of this net takes ~5 ms, and there statistics cost 6-9%;
    # from 16384 samples per epoch (20 ms) they are within the budget.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16384, 64)).astype(np.float32)
    y = rng.integers(0, 10, 16384)
    shares = []
    for _ in range(5):
        net = il.Network([64, 128, 128, 10], seed=0)
        report = net.fit(X, y, epochs=2, batch_size=32, optimizer="adam", lr=1e-3, stats_every=1,
                         progress=False)
        assert len(report.layer_stats) == 3
        shares.append(report.stats_seconds / report.train_seconds)
    assert sorted(shares)[2] < 0.05, shares


def test_update_ratio_is_the_last_step_of_the_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)).astype(np.float64)
    y = rng.integers(0, 2, 50)
    kept = []

    class Keep(il.Callback):
        def on_batch_end(self, step, logs):
            kept.append(self.network.layers[0].W.copy())

    net = il.Network([4, 6, 2], seed=0, dtype="float64")
    report = net.fit(X, y, epochs=2, batch_size=16, lr=0.5, progress=False, callbacks=[Keep()])
    assert len(kept) == 8                                   # 4 steps per epoch, the last one partial
    W_end, W_before = kept[-1], kept[-2]
    expected = np.linalg.norm(W_end - W_before) / np.linalg.norm(W_end)
    assert report.layer_stats[-1][0]["update_ratio"] == pytest.approx(expected, rel=1e-12)
