"""il.torch.init_ / lsuv_ and Network <-> nn.Sequential. Skipped without torch (CI installs it)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import initlab as il
from reference import normal_values

torch = pytest.importorskip("torch")
nn = torch.nn
itorch = il.torch


def _mixed_model(dtype=torch.float32):
    return nn.Sequential(nn.Conv1d(3, 4, 3, dtype=dtype), nn.ReLU(), nn.Conv2d(4, 5, (2, 3), dtype=dtype),
                         nn.Conv3d(5, 2, 2, bias=False, dtype=dtype), nn.Flatten(),
                         nn.Linear(6, 7, dtype=dtype), nn.Tanh(), nn.Linear(7, 3, dtype=dtype))


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _unchanged(model, before):
    return all(torch.equal(a, b) for a, b in zip(_params(model), before))


# ---- init_: the documented draw, bitwise ----------------------------------------------------------
@pytest.mark.parametrize("scheme", ["he_normal", "xavier_uniform", "orthogonal", "torch_default",
                                    "lecun_normal", ("normal", {"std": 0.02}), "normal(std=0.02)",
                                    "he_normal(mode=fan_out)",
                                    ("he_uniform", {"a": math.sqrt(5), "nonlinearity": "leaky_relu"})])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weights_are_bitwise_the_il_init_draw(scheme, dtype):
    model = _mixed_model(dtype)
    itorch.init_(model, scheme, bias_init="xavier_normal", seed=1234)
    name, params = il.init.parse_spec(scheme) if isinstance(scheme, str) else scheme
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    assert len(layers) == 5
    np_dtype = "float64" if dtype == torch.float64 else "float32"
    for i, layer in enumerate(layers):
        shape = tuple(layer.weight.shape)
        expected = il.init.get(name)(shape, layout="out_in", seed=1234, stream=i, dtype=np_dtype, **params)
        got = layer.weight.detach().numpy()
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), (i, shape)
        if layer.bias is not None:
            fan_in, fan_out = il.init.fans(shape, layout="out_in")
            b = il.init.xavier_normal((shape[0],), fan_in=fan_in, fan_out=fan_out, seed=1234,
                                      stream=2**32 + i, dtype=np_dtype)
            assert layer.bias.detach().numpy().tobytes() == b.tobytes()


def test_weights_match_the_plain_numpy_rederivation():
    """An oracle independent of il.init: the Philox words -> normals mapping in plain numpy."""
    model = nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Conv2d(2, 3, 3))
    itorch.init_(model, "he_normal", seed=7)
    std0 = math.sqrt(2.0 / 30)
    ref0 = normal_values(20 * 30, 7, 0, 0.0, std0, np.float32).reshape(20, 30)
    assert np.array_equal(model[0].weight.detach().numpy(), ref0)
    std1 = math.sqrt(2.0 / (2 * 9))  # conv fan_in = in_channels * receptive field
    ref1 = normal_values(3 * 2 * 9, 7, 1, 0.0, std1, np.float32).reshape(3, 2, 3, 3)
    assert np.array_equal(model[2].weight.detach().numpy(), ref1)
    w = model[0].weight.detach().numpy()
    assert abs(w.std() / std0 - 1) < 0.1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_the_float32_draw_rounded(dtype):
    model = nn.Sequential(nn.Linear(64, 32, dtype=dtype), nn.ReLU(), nn.Linear(32, 8, dtype=dtype))
    itorch.init_(model, "xavier_normal", bias_init=("uniform", {"low": -0.5, "high": 0.5}), seed=99)
    for i, layer in enumerate([model[0], model[2]]):
        ref = il.init.xavier_normal(tuple(layer.weight.shape), layout="out_in", seed=99, stream=i)
        assert layer.weight.dtype == dtype
        assert torch.equal(layer.weight.detach(), torch.from_numpy(ref).to(dtype))
        # rounding to nearest: within half an ulp (eps/2 relative, or half the smallest subnormal)
        err = (layer.weight.detach().float() - torch.from_numpy(ref)).abs()
        half_ulp = torch.finfo(dtype).eps / 2 * torch.from_numpy(np.abs(ref)) + torch.finfo(dtype).tiny
        assert bool((err <= half_ulp).all())
        if dtype == torch.float16:  # numpy's own float16 rounding, an independent oracle
            assert np.array_equal(layer.weight.detach().numpy(), ref.astype(np.float16))
        bias_ref = il.init.uniform((layer.bias.shape[0],), low=-0.5, high=0.5, seed=99, stream=2**32 + i)
        assert torch.equal(layer.bias.detach(), torch.from_numpy(bias_ref).to(dtype))


def test_other_devices_get_the_host_draw():
    devices = ["meta"] if not torch.cuda.is_available() else ["cuda"]
    if devices == ["meta"]:
        pytest.skip("no accelerator here; the host->device copy is the same copy_ for any device")
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2)).to(devices[0])
    itorch.init_(model, "he_normal", seed=5)
    ref = il.init.he_normal((8, 16), layout="out_in", seed=5, stream=0)
    assert np.array_equal(model[0].weight.detach().cpu().numpy(), ref)


def test_callable_spec_receives_the_torch_shape():
    seen = []

    def mine(shape, seed, stream):
        seen.append((shape, seed, stream))
        return np.full(shape, 0.5 if len(shape) > 1 else -1.0)

    model = nn.Sequential(nn.Linear(4, 3), nn.Conv2d(2, 5, 3))
    itorch.init_(model, mine, bias_init=mine, seed=11)
    assert seen == [((3, 4), 11, 0), ((3,), 11, 2**32), ((5, 2, 3, 3), 11, 1), ((5,), 11, 2**32 + 1)]
    assert bool((model[0].weight == 0.5).all()) and bool((model[1].bias == -1.0).all())


def test_seed_none_draws_one_fresh_seed_for_the_whole_module():
    a = itorch.init_(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8)), "normal")
    b = itorch.init_(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8)), "normal")
    assert not torch.equal(a[0].weight, b[0].weight)
    assert not torch.equal(a[0].weight, a[1].weight)


def test_init_is_outside_autograd_and_returns_the_module():
    model = nn.Sequential(nn.Linear(4, 3))
    out = itorch.init_(model, seed=0)
    assert out is model
    assert model[0].weight.requires_grad and model[0].weight.grad_fn is None and model[0].weight.is_leaf


def test_one_warning_names_the_modules_left_alone():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.rnn = nn.LSTM(4, 4)
            self.up = nn.ConvTranspose2d(4, 4, 2)
            self.attn = nn.MultiheadAttention(4, 2)
            self.norm = nn.LayerNorm(4)
            self.head = nn.Linear(4, 2)
            self.scale = nn.Parameter(torch.ones(1))

    model = Net()
    attn_out_proj = model.attn.out_proj.weight.detach().clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        itorch.init_(model, seed=0)
    ours = [w for w in caught if issubclass(w.category, itorch.UninitializedWarning)]
    assert len(ours) == 1
    text = str(ours[0].message)
    for name in ("emb (Embedding)", "rnn (LSTM)", "up (ConvTranspose2d)", "attn (MultiheadAttention)",
                 "norm (LayerNorm)", "<root> (Net)"):
        assert name in text
    assert "head (Linear)" not in text and "attn.out_proj" in text
    # the attention's own Linear belongs to the attention: left alone with it
    assert torch.equal(model.attn.out_proj.weight, attn_out_proj)
    ref = il.init.he_normal((2, 4), layout="out_in", seed=0, stream=0)
    assert np.array_equal(model.head.weight.detach().numpy(), ref)


def test_no_warning_for_a_plain_mlp():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        itorch.init_(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Dropout(0.1), nn.Linear(3, 2)), seed=0)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"init": "nope"}, ValueError, ["init", "nope", "he_normal"]),
    ({"bias_init": "nope"}, ValueError, ["bias_init", "nope"]),
    ({"init": "lsuv"}, ValueError, ["lsuv_"]),
    ({"init": "lsuv()"}, ValueError, ["lsuv_"]),
    ({"init": "normal(sd=1)"}, ValueError, ["init", "sd", "std"]),
    ({"bias_init": "normal(std=x)"}, ValueError, ["bias_init", "std"]),
    ({"init": 3}, TypeError, ["init"]),
    ({"init": ("normal", {"sd": 1.0})}, TypeError, ["init", "sd"]),
    ({"seed": -1}, ValueError, ["seed"]),
    ({"seed": 2**64}, ValueError, ["seed"]),
    ({"seed": 1.5}, TypeError, ["seed"]),
    ({"init": lambda shape, seed, stream: np.zeros((1, 1))}, ValueError, ["init", "shape"]),
    ({"bias_init": lambda shape, seed, stream: np.full(shape, np.nan)}, ValueError, ["bias_init", "non-finite"]),
    ({"init": "sparse"}, TypeError, ["sparsity"]),
])
def test_bad_input_names_the_argument_and_touches_nothing(kwargs, error, words):
    model = _mixed_model()
    before = _params(model)
    with pytest.raises(error) as info:
        itorch.init_(model, **kwargs)
    for w in words:
        assert w in str(info.value)
    assert _unchanged(model, before)


def test_a_failure_in_the_last_layer_leaves_the_first_untouched():
    calls = []

    def fails_late(shape, seed, stream):
        calls.append(stream)
        if stream == 4:
            raise ValueError("boom")
        return np.ones(shape)

    model = _mixed_model()
    before = _params(model)
    with pytest.raises(ValueError, match="boom"):
        itorch.init_(model, fails_late, seed=0)
    assert calls == [0, 1, 2, 3, 4] and _unchanged(model, before)


def test_not_a_module_and_no_layers():
    with pytest.raises(TypeError, match="module"):
        itorch.init_(np.zeros(3))
    with pytest.raises(ValueError, match="module.*no nn.Linear"):
        itorch.init_(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)))


def test_integer_parameters_are_refused():
    model = nn.Sequential(nn.Linear(3, 2))
    model[0].weight = nn.Parameter(torch.zeros(2, 3, dtype=torch.int32), requires_grad=False)
    with pytest.raises(TypeError, match="weight.*int32"):
        itorch.init_(model, seed=0)


# ---- lsuv_ --------------------------------------------------------------------------------------
def test_lsuv_gives_unit_variance_outputs_and_is_deterministic():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(256, 20, generator=gen)

    def build():
        model = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Dropout(0.5), nn.Linear(64, 64), nn.Tanh(),
                              nn.Linear(64, 5))
        return itorch.init_(model, "orthogonal", seed=3)

    a, b = itorch.lsuv_(build(), X), itorch.lsuv_(build(), X.numpy())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    a.train()
    with torch.no_grad():
        a.eval()
        for k in (1, 4, 6):  # after each Linear
            assert abs(float(a[:k](X).var(unbiased=False)) - 1) < 0.1
    assert a.training is False  # eval() above; lsuv_ itself restores the flags
    c = build().train()
    itorch.lsuv_(c, X)
    assert c.training and c[2].training


def test_lsuv_agrees_with_network_lsuv():
    X = np.random.default_rng(0).normal(size=(128, 12)).astype(np.float64)
    net = il.Network([12, 32, 32, 4], activation="tanh", init="orthogonal", seed=2, dtype="float64")
    model = net.to_torch()
    il.lsuv(net, X)
    itorch.lsuv_(model, X)
    for i, layer in enumerate(net.layers):
        np.testing.assert_allclose(model[2 * i].weight.detach().numpy(), layer.W.T,
                                   rtol=1e-12, atol=0)


def test_lsuv_bad_input_touches_nothing():
    model = _mixed_model()
    before = _params(model)
    with pytest.raises(ValueError, match="X"):
        itorch.lsuv_(model, np.zeros((4, 5)))  # a 2-D batch for a Conv1d model
    with pytest.raises(TypeError, match="X"):
        itorch.lsuv_(model, np.array(["a"]))
    with pytest.raises(ValueError, match="X.*NaN"):
        itorch.lsuv_(model, np.full((2, 3, 8), np.nan))
    with pytest.raises(ValueError, match="tol"):
        itorch.lsuv_(model, np.zeros((2, 3, 8)), tol=0)
    with pytest.raises(ValueError, match="max_iter"):
        itorch.lsuv_(model, np.zeros((2, 3, 8)), max_iter=0)
    assert _unchanged(model, before)


# ---- to_torch / from_torch ------------------------------------------------------------------------
@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_torch_computes_the_net(output, dtype):
    X = np.random.default_rng(1).normal(size=(40, 6)).astype(dtype)
    for act in ("relu", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh", "softplus", "linear"):
        net = il.Network([il.Dense(9, act, param=0.3 if act in ("leaky_relu", "elu", "softplus") else None,
                                   dropout=0.25), il.Dense(8), il.Dense(3, output)],
                         input_dim=6, activation="tanh", seed=4, dtype=dtype)
        model = net.to_torch()
        assert isinstance(model, nn.Sequential) and isinstance(model[-1], nn.Linear)
        assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
        assert any(isinstance(m, nn.Dropout) and m.p == 0.25 for m in model)
        logits = model.eval()(torch.from_numpy(X))
        out = {"softmax": lambda z: torch.softmax(z, 1), "sigmoid": torch.sigmoid,
               "linear": lambda z: z}[output](logits).detach().numpy()
        tol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(out, net.forward(X), rtol=tol, atol=tol)
        back = il.Network.from_torch(model, output=output)
        assert [(l.activation, l.act_param, l.dropout) for l in back.layers] == \
               [(l.activation, l.act_param, l.dropout) for l in net.layers]
        for a, b in zip(back.get_weights(), net.get_weights()):
            assert np.array_equal(a, b)


def test_from_torch_of_a_handwritten_sequential():
    model = nn.Sequential(nn.Linear(5, 7), nn.LeakyReLU(0.2), nn.Dropout(0.1), nn.Linear(7, 2))
    net = il.Network.from_torch(model, output="linear")
    X = torch.randn(11, 5)
    np.testing.assert_allclose(net.forward(X.numpy()), model.eval()(X).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert net.layers[0].activation == "leaky_relu" and net.layers[0].act_param == pytest.approx(0.2)
    assert net.layers[1].activation == "linear" and net.output == "linear"


@pytest.mark.parametrize("model, words", [
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), ["sequential[1]", "BatchNorm1d"]),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(1)), ["sequential[3]", "Softmax"]),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Tanh()), ["logits"]),
    (lambda: nn.Sequential(nn.ReLU(), nn.Linear(3, 2)), ["sequential[0]", "ReLU"]),
    (lambda: nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2)), ["sequential[0]", "bias"]),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.GELU("tanh"), nn.Linear(4, 2)), ["sequential[1]", "tanh"]),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)), ["chain"]),
    (lambda: nn.Sequential(nn.Linear(3, 4).half(), nn.Linear(4, 2).half()), ["float16"]),
    (lambda: nn.Sequential(), ["no nn.Linear"]),
])
def test_from_torch_refuses_what_it_cannot_express(model, words):
    with pytest.raises(ValueError) as info:
        il.Network.from_torch(model())
    for w in words:
        assert w in str(info.value)


def test_from_torch_bad_arguments():
    with pytest.raises(TypeError, match="sequential"):
        il.Network.from_torch(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="output"):
        il.Network.from_torch(nn.Sequential(nn.Linear(3, 2)), output="tanh")
    with pytest.raises(TypeError, match="net"):
        itorch.to_torch(nn.Linear(3, 2))


def test_contract_signatures():
    import inspect

    def params(fn):
        return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]

    empty = inspect.Parameter.empty
    assert params(itorch.init_)[:4] == [("module", "POSITIONAL_OR_KEYWORD", empty),
                                        ("init", "POSITIONAL_OR_KEYWORD", "he_normal"),
                                        ("bias_init", "KEYWORD_ONLY", "zeros"), ("seed", "KEYWORD_ONLY", None)]
    assert params(itorch.lsuv_)[:4] == [("module", "POSITIONAL_OR_KEYWORD", empty),
                                        ("X", "POSITIONAL_OR_KEYWORD", empty),
                                        ("tol", "POSITIONAL_OR_KEYWORD", 0.1),
                                        ("max_iter", "POSITIONAL_OR_KEYWORD", 10)]
    assert params(itorch.diagnose)[:4] == [("module", "POSITIONAL_OR_KEYWORD", empty),
                                           ("X", "POSITIONAL_OR_KEYWORD", empty),
                                           ("y", "POSITIONAL_OR_KEYWORD", None),
                                           ("loss_fn", "KEYWORD_ONLY", None)]
    assert params(itorch.watch)[:2] == [("module", "POSITIONAL_OR_KEYWORD", empty),
                                        ("every", "POSITIONAL_OR_KEYWORD", 1)]
    assert params(il.Network.from_torch)[:2] == [("sequential", "POSITIONAL_OR_KEYWORD", empty),
                                                 ("output", "POSITIONAL_OR_KEYWORD", "softmax")]
