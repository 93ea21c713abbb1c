"""il.torch.watch: per-layer statistics in the user's own loop, and hook removal. Skipped without torch."""
from __future__ import annotations

import json

import numpy as np
import pytest

import initlab as il
from reference import layer_stats as ref_layer_stats

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
itorch = il.torch


def _model(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).to(dtype)


def _batches(steps, dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(24, 12, generator=gen, dtype=dtype), torch.randint(0, 3, (24,), generator=gen))
            for _ in range(steps)]


def _hook_count(model):
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks)
    for p in model.parameters():
        n += len(p._backward_hooks or {})
    return n


def test_records_every_k_steps_against_an_oracle():
    model, batches = _model(), _batches(7)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    expected = {}
    linears = [model[0], model[2], model[4]]
    acts = [("tanh", torch.tanh), ("relu", torch.relu), ("linear", lambda z: z)]
    with itorch.watch(model, every=3) as w:
        for step, (X, y) in enumerate(batches):
            # the oracle, measured by hand on the same batch and weights
            with torch.no_grad():
                zs, h = [], X
                for k, layer in enumerate(linears):
                    z = layer(h)
                    zs.append(z)
                    h = acts[k][1](z)
            before = [l.weight.detach().clone() for l in linears]
            loss = F.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            grads = [l.weight.grad.norm().item() for l in linears]
            opt.step()
            with torch.no_grad():
                model(X)  # a validation-style pass: not a step, not recorded
            if step % 3 == 0:
                expected[step] = []
                for k, l in enumerate(linears):
                    ref = ref_layer_stats(zs[k].numpy(), acts[k][1](zs[k]).numpy(), acts[k][0])
                    ref.update(grad_norm=grads[k], weight_norm=before[k].norm().item(),
                               update_ratio=((l.weight.detach() - before[k]).norm() / l.weight.detach().norm()).item())
                    expected[step].append(ref)
    assert w.steps == 7 and w.closed
    report = w.report()
    assert isinstance(report, il.Report)
    assert [rec[0]["step"] for rec in report.layer_stats] == [0, 3, 6]
    for rec in report.layer_stats:
        for row, ref in zip(rec, expected[rec[0]["step"]]):
            assert row["epoch"] == row["step"]
            for k, v in ref.items():
                assert row[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (rec[0]["step"], row["layer"], k)
    assert [r["activation"] for r in report.layer_stats[0]] == ["tanh", "relu", "linear"]


def test_report_files(tmp_path):
    model, batches = _model(torch.float32), _batches(4, torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    w = itorch.watch(model, every=2)
    for X, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    w.close()
    report = w.report()
    assert len(report.layer_stats) == 2 and all(r["update_ratio"] > 0 for r in report.layer_stats[-1])
    data = json.loads(open(report.to_json(tmp_path / "watch.json")).read())
    assert data["config"]["source"] == "il.torch.watch" and len(data["layer_stats"]) == 2
    lines = open(report.to_csv(tmp_path / "watch.csv", what="layer_stats")).read().splitlines()
    assert len(lines) == 1 + 2 * 3
    assert "layer statistics" in str(report)
    pytest.importorskip("matplotlib")
    png = report.plot(tmp_path / "watch.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_recorded_forward_without_backward_has_nan_gradients():
    import math
    model = _model()
    with itorch.watch(model) as w:
        with torch.enable_grad():
            model(_batches(1)[0][0])
    (rec,) = w.report().layer_stats
    assert all(math.isnan(r["grad_norm"]) and r["update_ratio"] is None for r in rec)
    assert w.steps == 0


def test_gradient_accumulation_counts_each_backward_as_a_step():
    model, batches = _model(), _batches(4)
    with itorch.watch(model, every=2) as w:
        for X, y in batches:
            F.cross_entropy(model(X), y).backward()   # no optimizer step: update ratios are 0
    report = w.report()
    assert w.steps == 4 and [r[0]["step"] for r in report.layer_stats] == [0, 2]
    assert all(row["update_ratio"] == 0.0 for rec in report.layer_stats for row in rec)


def test_close_removes_every_hook_and_is_idempotent():
    model = _model()
    baseline = _hook_count(model)
    w = itorch.watch(model, every=1)
    assert _hook_count(model) > baseline
    w.close()
    w.close()
    assert _hook_count(model) == baseline
    X, y = _batches(1)[0]
    F.cross_entropy(model(X), y).backward()
    assert w.steps == 0 and w.report().layer_stats == []


def test_hooks_are_removed_when_the_loop_raises():
    model = _model()
    baseline = _hook_count(model)
    with pytest.raises(RuntimeError, match="user's loop failed"):
        with itorch.watch(model, every=1) as w:
            X, y = _batches(1)[0]
            F.cross_entropy(model(X), y).backward()
            raise RuntimeError("user's loop failed")
    assert w.closed and _hook_count(model) == baseline
    assert len(w.report().layer_stats) == 1


def test_a_forward_pass_that_raises_leaves_no_half_record():
    model = _model()
    with itorch.watch(model, every=1) as w:
        with pytest.raises(RuntimeError):
            model(torch.randn(4, 5, dtype=torch.float64))  # wrong width: the second layer is never reached
        X, y = _batches(1)[0]
        F.cross_entropy(model(X), y).backward()
    rec = w.report().layer_stats
    assert len(rec) == 1 and len(rec[0]) == 3


def test_inplace_activations_and_conv_layers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    X = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        z = model[0](X)
    with itorch.watch(model) as w:
        F.cross_entropy(model(X), torch.zeros(8, dtype=torch.long)).backward()
    row = w.report().layer_stats[0][0]
    Zc = z.movedim(1, -1).reshape(-1, 4).numpy()
    ref = ref_layer_stats(Zc, np.maximum(Zc, 0), "relu")
    for k, v in ref.items():
        assert row[k] == pytest.approx(v, rel=1e-5, abs=1e-7), k


def test_bad_arguments():
    with pytest.raises(TypeError, match="module"):
        itorch.watch(object())
    for every in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="every"):
            itorch.watch(_model(), every=every)
    with pytest.raises(ValueError, match="no nn.Linear"):
        itorch.watch(nn.Sequential(nn.ReLU()))
