"""il.torch.diagnose: the Diagnosis of Network.diagnose for torch models. Skipped without torch."""
from __future__ import annotations

import math

import numpy as np
import pytest

import initlab as il
from reference import layer_stats as ref_layer_stats

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional
itorch = il.torch

ROW_KEYS = ("pre_mean", "pre_std", "act_mean", "act_std", "saturated", "dead", "grad_norm", "grad_std",
            "spectral_norm", "stable_rank")


@pytest.fixture(scope="module")
def digits():
    X, y = il.datasets.load_digits()
    return X[:256], y[:256]


def _assert_rows_agree(ours, theirs, rtol, output_known=True):
    assert len(ours.layers) == len(theirs.layers)
    for a, b in zip(ours.layers, theirs.layers):
        assert a["layer"] == b["layer"] and a["activation"] == b["activation"]
        assert (a["fan_in"], a["fan_out"]) == (b["fan_in"], b["fan_out"])
        for k in ROW_KEYS:
            if not output_known and a is ours.layers[-1] and k in ("act_mean", "act_std"):
                continue  # without y the torch model's output activation is unknown: logits
            assert a[k] == pytest.approx(b[k], rel=rtol, abs=rtol * 1e-3), (a["layer"], k)


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-4), ("float64", 1e-9)])
@pytest.mark.parametrize("case", ["softmax-labels", "linear-floats", "softmax-no-y", "sigmoid-bce"])
def test_agrees_with_network_diagnose_on_a_converted_net(digits, dtype, rtol, case):
    X, labels = digits
    X = X.astype(dtype)
    gen = np.random.default_rng(1)
    output = {"softmax-labels": "softmax", "linear-floats": "linear", "softmax-no-y": "softmax",
              "sigmoid-bce": "sigmoid"}[case]
    y = {"softmax-labels": labels, "linear-floats": gen.normal(size=(256, 10)).astype(dtype),
         "softmax-no-y": None, "sigmoid-bce": (gen.random((256, 10)) < 0.3).astype(dtype)}[case]
    loss_fn = nn.BCEWithLogitsLoss() if case == "sigmoid-bce" else None
    for activation, init, bias_init in (("tanh", "normal(std=0.3)", "uniform(low=-0.1, high=0.1)"),
                                        ("relu", "he_normal", "uniform(low=-0.1, high=0.1)"),
                                        ("relu", "xavier_normal", "zeros"),
                                        ("leaky_relu", "normal(std=0.5)", "uniform(low=-0.1, high=0.1)"),
                                        ("sigmoid", "xavier_normal", "uniform(low=-0.1, high=0.1)"),
                                        ("tanh", "constant(value=0.05)", "zeros")):
        net = il.Network([64] + [48] * 6 + [10], activation=activation, output=output, init=init,
                         bias_init=bias_init, seed=3, dtype=dtype, dropout=0.1)
        expected = net.diagnose(X, y)
        got = itorch.diagnose(net.to_torch(), X, y, loss_fn=loss_fn)
        assert isinstance(got, il.Diagnosis)
        _assert_rows_agree(got, expected, rtol, output_known=y is not None)
        assert got.verdict == expected.verdict, (activation, init)
        assert [(f.kind, f.layers) for f in got.findings] == [(f.kind, f.layers) for f in expected.findings]
        assert got.symmetric == expected.symmetric
        assert got.forward_gain == pytest.approx(expected.forward_gain, rel=rtol)
        assert got.backward_gain == pytest.approx(expected.backward_gain, rel=rtol)
        assert got.jacobian["sv_max"] == pytest.approx(expected.jacobian["sv_max"], rel=max(rtol, 1e-6))
        # A rank-deficient Jacobian (the constant init: every unit alike) has sv_min at rounding
        # level, whose value depends on the order of every sum (FMA or not, torch's or initlab's):
        # then both must say singular, not agree on the noise.
        singular = 1.0 / (np.finfo(dtype).eps * 1e3)
        if expected.jacobian["condition"] > singular:
            assert got.jacobian["condition"] > singular
        else:
            for k in ("sv_min", "condition", "log10_spread"):
                assert got.jacobian[k] == pytest.approx(expected.jacobian[k], rel=max(rtol, 1e-6)), k
        assert got.jacobian["samples"] == expected.jacobian["samples"]


def test_verdicts_and_torch_phrased_suggestions(digits):
    X, y = digits
    cases = {("relu", "normal(std=1.0)"): "exploding", ("relu", "xavier_normal"): "vanishing",
             ("tanh", "normal(std=1.0)"): "saturated", ("relu", "he_normal"): "healthy",
             ("relu", "zeros"): "symmetric"}
    for (act, init), verdict in cases.items():
        torch.manual_seed(0)
        model = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(64, 64), nn.ReLU() if act == "relu"
                                                                else nn.Tanh())], nn.Linear(64, 10))
        itorch.init_(model, init, bias_init="zeros", seed=0)
        d = itorch.diagnose(model, X, y)
        assert d.verdict == verdict, (act, init, d.evidence)
        if verdict != "healthy":
            assert "il.torch.init_(model, " in d.suggestion and "torch.nn.init." in d.suggestion
            # phrased for PyTorch users first
            assert d.suggestion.index("torch.nn.init.") < d.suggestion.index("il.torch.init_")


def test_rows_follow_the_call_order_of_a_custom_module():
    class Crossed(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 3)       # defined first, called last
            self.second = nn.Linear(16, 8)
            self.first = nn.Linear(5, 16)
            self.act = nn.Tanh()

        def forward(self, x):
            h = self.act(self.first(x))
            h = F.relu(self.second(h))         # a functional activation: no module to hook
            return self.head(h)

    model = Crossed()
    X = torch.randn(32, 5)
    d = itorch.diagnose(model, X)
    assert [r["name"] for r in d.layers] == ["first", "second", "head"]
    assert [r["layer"] for r in d.layers] == [0, 1, 2]
    assert [r["activation"] for r in d.layers] == ["tanh", "linear", "linear"]
    assert [r["position"] for r in d.layers] == [2, 1, 0]  # init_'s numbering (modules() order)
    # layer 0: activation = the Tanh's output; oracle in float64 numpy
    with torch.no_grad():
        Z = model.first(X)
    ref = ref_layer_stats(Z.numpy(), np.tanh(Z.numpy()), "tanh")
    for k in ("pre_mean", "pre_std", "act_mean", "act_std", "saturated"):
        assert d.layers[0][k] == pytest.approx(ref[k], rel=1e-5, abs=1e-7)


def _keep(store):
    def hook(module, inputs, output):
        output.retain_grad()
        store.append(output)
    return hook


@pytest.mark.parametrize("inplace", [False, True])
def test_conv_rows_against_numpy_and_inplace_activations(inplace):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(inplace=inplace), nn.Conv2d(6, 4, 3),
                          nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()
    with torch.no_grad():
        model[0].bias[:2] = -50.0  # two channels dead on the whole batch
    X = torch.randn(10, 2, 6, 6, dtype=torch.float64)
    y = torch.arange(10) % 3
    d = itorch.diagnose(model, X, y)
    ref_model = nn.Sequential(*[m if not isinstance(m, nn.ReLU) else nn.ReLU() for m in model])
    zs = []
    hooks = [m.register_forward_hook(_keep(zs)) for m in ref_model if isinstance(m, (nn.Conv2d, nn.Linear))]
    F.cross_entropy(ref_model(X), y).backward()
    for h in hooks:
        h.remove()
    acts = [torch.relu, torch.tanh, lambda z: torch.softmax(z, 1)]  # the output: what cross-entropy reads
    names = ["relu", "tanh", "linear"]
    for row, z, act, name, layer in zip(d.layers, zs, acts, names,
                                         [ref_model[0], ref_model[2], ref_model[5]]):
        Zc = z.detach().movedim(1, -1).reshape(-1, z.shape[1]).numpy() if z.dim() == 4 else z.detach().numpy()
        ref = ref_layer_stats(Zc, act(torch.from_numpy(Zc)).numpy(), name)
        assert row["activation"] == name
        for k in ref:
            assert row[k] == pytest.approx(ref[k], rel=1e-10, abs=1e-12), (name, k)
        g = z.grad.movedim(1, -1).reshape(-1, z.shape[1]) if z.dim() == 4 else z.grad
        assert row["grad_std"] == pytest.approx(float(g.std(unbiased=False)), rel=1e-10)
        assert row["grad_norm"] == pytest.approx(float(layer.weight.grad.norm()), rel=1e-10)
        W2 = layer.weight.detach().reshape(layer.weight.shape[0], -1).numpy()
        assert row["spectral_norm"] == pytest.approx(np.linalg.norm(W2, 2), rel=1e-8)
    assert d.layers[0]["dead"] == pytest.approx(2 / 6)
    assert (d.layers[0]["fan_in"], d.layers[0]["fan_out"]) == (18, 54)


def test_leaves_parameters_grads_and_modes_as_they_were():
    model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2))
    model.train()
    model[0].weight.grad = torch.full_like(model[0].weight, 7.0)
    before = [p.detach().clone() for p in model.parameters()]
    buffers = [b.clone() for b in model.buffers()]
    d1 = itorch.diagnose(model, np.random.default_rng(0).normal(size=(64, 6)), np.arange(64) % 2)
    d2 = itorch.diagnose(model, np.random.default_rng(0).normal(size=(64, 6)), np.arange(64) % 2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers()))  # eval: no BN update
    assert bool((model[0].weight.grad == 7.0).all()) and model[4].weight.grad is None
    assert all(m.training for m in model.modules())
    assert [r["grad_norm"] for r in d1.layers] == [r["grad_norm"] for r in d2.layers]  # dropout off


def test_frozen_layers_and_half_precision():
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    X = torch.randn(32, 6)
    d = itorch.diagnose(model, X)
    assert math.isnan(d.layers[0]["grad_norm"]) and math.isfinite(d.layers[0]["grad_std"])
    assert math.isfinite(d.layers[1]["grad_norm"])
    half = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)).to(torch.bfloat16)
    dh = itorch.diagnose(half, X)
    with torch.no_grad():
        z = half[0](X.to(torch.bfloat16)).float()
    assert dh.layers[0]["pre_std"] == pytest.approx(float(z.std(unbiased=False)), rel=1e-5)


def test_host_array_copies_only_when_it_must():
    from initlab.torch._common import host_array
    t = torch.randn(4, 5)
    assert np.shares_memory(host_array(t), t.numpy())
    t64 = torch.randn(4, 5, dtype=torch.float64)
    assert np.shares_memory(host_array(t64), t64.numpy())
    tt = t.t()
    a = host_array(tt)
    assert not np.shares_memory(a, t.numpy()) and a.flags.c_contiguous and np.array_equal(a, tt.numpy())
    h = host_array(t.half())
    assert h.dtype == np.float32 and h.flags.c_contiguous


@pytest.mark.parametrize("kwargs, error, words", [
    ({"X": np.zeros((4, 7))}, ValueError, ["X", "(4, 7)"]),
    ({"X": np.array([["a"]])}, TypeError, ["X"]),
    ({"X": np.zeros((0, 6))}, ValueError, ["X"]),
    ({"X": np.full((4, 6), np.inf)}, ValueError, ["X", "NaN"]),
    ({"y": np.array([0, 1, 2])}, ValueError, ["y", "4 rows"]),
    ({"y": np.array([0, 1, 2, 9])}, ValueError, ["y", "[0, 2)"]),
    ({"y": np.zeros((4, 3), np.float32)}, ValueError, ["y", "(4, 2)"]),
    ({"y": np.array(["a", "b", "c", "d"])}, TypeError, ["y"]),
    ({"y": np.zeros(4, np.float32), "loss_fn": nn.CrossEntropyLoss()}, ValueError, ["y", "loss_fn"]),
    ({"loss_fn": nn.MSELoss()}, ValueError, ["loss_fn", "y"]),
    ({"y": np.zeros((4, 2), np.float32), "loss_fn": 3}, TypeError, ["loss_fn"]),
    ({"y": np.zeros((4, 2), np.float32), "loss_fn": lambda o, y: o}, ValueError, ["loss_fn", "scalar"]),
    ({"jacobian_samples": 0}, ValueError, ["jacobian_samples"]),
])
def test_bad_input_names_the_argument(kwargs, error, words):
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    before = [p.detach().clone() for p in model.parameters()]
    args = {"X": np.ones((4, 6), np.float32)}
    args.update(kwargs)
    with pytest.raises(error) as info:
        itorch.diagnose(model, args.pop("X"), args.pop("y", None), **args)
    for w in words:
        assert w in str(info.value), str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_not_a_module_or_no_layers():
    with pytest.raises(TypeError, match="module"):
        itorch.diagnose("model", np.ones((2, 2)))
    with pytest.raises(ValueError, match="no nn.Linear"):
        itorch.diagnose(nn.Sequential(nn.ReLU()), np.ones((2, 2)))


def test_output_row_names_what_its_activation_statistics_are_of(digits):
    # the output row's act_mean/act_std are of what a loss reads off the logits (Network.diagnose:
    # the net's output activation; il.torch.diagnose: the loss's, with y); without y a torch
    # model's output means nothing known, so they are the logits, and the row says so
    X, labels = digits
    X = X.astype(np.float64)
    net = il.Network([64, 32, 10], output="softmax", seed=0, dtype="float64")
    model = net.to_torch()
    ours = net.diagnose(X)
    assert ours.layers[-1]["output_activation"] == "softmax"
    assert "output_activation" not in ours.layers[0]
    with_y = itorch.diagnose(model, X, labels)
    assert with_y.layers[-1]["output_activation"] == "softmax"
    assert with_y.layers[-1]["act_mean"] == pytest.approx(ours.layers[-1]["act_mean"], rel=1e-9)
    assert with_y.layers[-1]["act_std"] == pytest.approx(ours.layers[-1]["act_std"], rel=1e-9)
    no_y = itorch.diagnose(model, X)
    logits = model(torch.from_numpy(X)).detach().numpy()
    assert no_y.layers[-1]["output_activation"] == "linear"
    assert no_y.layers[-1]["act_mean"] == pytest.approx(logits.mean(), rel=1e-9, abs=1e-12)
    assert no_y.layers[-1]["act_std"] == pytest.approx(logits.std(), rel=1e-9)
    targets = (np.random.default_rng(0).random((X.shape[0], 10)) < 0.3).astype(np.float64)
    bce = itorch.diagnose(model, X, targets, loss_fn=nn.BCEWithLogitsLoss())
    assert bce.layers[-1]["output_activation"] == "sigmoid"
    ends_in_sigmoid = nn.Sequential(*model, nn.Sigmoid())  # the layer's own activation module
    assert itorch.diagnose(ends_in_sigmoid, X).layers[-1]["output_activation"] == "sigmoid"
    regression = il.Network([64, 32, 3], output="linear", seed=0, dtype="float64")
    assert regression.diagnose(X).layers[-1]["output_activation"] == "linear"
