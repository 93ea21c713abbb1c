"""The native kernels against PyTorch: autograd for every activation and loss, torch.optim for every
optimizer, torch.nn.utils for clipping. Skipped when torch is not installed (CI installs it)."""
from __future__ import annotations

import numpy as np
import pytest

from initlab import _core
from reference import torch_activation  # the torch twin of each activation's oracle

torch = pytest.importorskip("torch")
F = torch.nn.functional

ACTIVATIONS = [a["name"] for a in _core.activation_registry()]  # the one registry (dense.hpp)


PARAMS = {"leaky_relu": 0.1, "elu": 0.7, "softplus": 1.5}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_layer_against_autograd(dtype, name):
    gen = np.random.default_rng(0)
    n, i, o = 16, 9, 7
    X = gen.standard_normal((n, i)).astype(dtype)
    W = (gen.standard_normal((i, o)) * 0.7).astype(dtype)
    b = gen.standard_normal(o).astype(dtype)
    R = gen.standard_normal((n, o)).astype(dtype)
    param = PARAMS.get(name)

    Z, A = np.empty((n, o), dtype), np.empty((n, o), dtype)
    _core.dense_forward(X, W, b, Z, A, name, param)
    dA = R.copy()
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    _core.dense_backward(dA, X, W, Z, A, name, param, dW, db, dX)

    tX, tW, tb = (torch.tensor(v, requires_grad=True) for v in (X, W, b))
    tA = torch_activation(name, tX @ tW + tb, param)
    (tA * torch.tensor(R)).sum().backward()
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(A, tA.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dW, tW.grad.numpy(), rtol=tol * 5, atol=tol * 5)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=tol * 5, atol=tol * 5)
    np.testing.assert_allclose(dX, tX.grad.numpy(), rtol=tol * 5, atol=tol * 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["ce_labels", "ce_onehot", "bce", "mse"])
def test_losses_against_autograd(dtype, kind):
    gen = np.random.default_rng(1)
    n, k = 12, 5
    Z = (gen.standard_normal((n, k)) * 3).astype(dtype)
    P, dZ = np.empty_like(Z), np.empty_like(Z)
    tZ = torch.tensor(Z, requires_grad=True)
    if kind.startswith("ce"):
        y = gen.integers(0, k, n).astype(np.int64)
        target = y if kind == "ce_labels" else np.eye(k, dtype=dtype)[y]
        loss = _core.softmax_cross_entropy(Z, target, P, dZ)
        t_loss = F.cross_entropy(tZ, torch.tensor(target))
        expected_P = torch.softmax(tZ, dim=1)
    elif kind == "bce":
        y = gen.random((n, k)).astype(dtype)
        loss = _core.sigmoid_binary_cross_entropy(Z, y, P, dZ)
        t_loss = F.binary_cross_entropy_with_logits(tZ, torch.tensor(y))
        expected_P = torch.sigmoid(tZ)
    else:
        y = gen.standard_normal((n, k)).astype(dtype)
        loss = _core.mean_squared_error(Z, y, dZ)
        t_loss = F.mse_loss(tZ, torch.tensor(y))
        expected_P = None
    t_loss.backward()
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert loss == pytest.approx(t_loss.item(), rel=tol * 5, abs=tol)
    np.testing.assert_allclose(dZ, tZ.grad.numpy(), rtol=tol * 10, atol=tol)
    if expected_P is not None:
        np.testing.assert_allclose(P, expected_P.detach().numpy(), rtol=tol * 10, atol=tol)


def test_bce_logit_200_against_torch():
    t = F.binary_cross_entropy_with_logits(torch.tensor([200.0], dtype=torch.float64),
                                           torch.tensor([0.0], dtype=torch.float64))
    Z = np.array([[200.0]])
    assert _core.sigmoid_binary_cross_entropy(Z, np.zeros_like(Z), np.empty_like(Z)) == t.item() == 200.0


def _run_torch_optimizer(make_opt, w0, grads):
    p = torch.nn.Parameter(torch.tensor(w0))
    opt = make_opt([p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    return p.detach().numpy()


OPTIMIZER_CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.7, dampening=0.2, weight_decay=0.1)),
    ("adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    ("adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("adamw", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)),
    ("rmsprop", dict(lr=1e-2)),
    ("rmsprop", dict(lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.8)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,case", OPTIMIZER_CASES)
def test_optimizers_against_torch_optim(dtype, kind, case):
    gen = np.random.default_rng(2)
    w0 = gen.standard_normal((8, 6)).astype(dtype)
    grads = [gen.standard_normal((8, 6)).astype(dtype) for _ in range(6)]
    w = w0.copy()
    s1, s2 = np.zeros_like(w), np.zeros_like(w)
    for step, g in enumerate(grads, start=1):
        if kind == "sgd":
            _core.sgd_step(w, g, s1 if case.get("momentum") else None, first_step=step == 1, **case)
        elif kind in ("adam", "adamw"):
            c = dict(case)
            beta1, beta2 = c.pop("betas")
            _core.adam_step(w, g, s1, s2, beta1=beta1, beta2=beta2, step=step, decoupled=kind == "adamw", **c)
        else:
            _core.rmsprop_step(w, g, s1, s2 if case.get("momentum") else None, **case)
    make = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
            "rmsprop": torch.optim.RMSprop}[kind]
    expected = _run_torch_optimizer(lambda ps: make(ps, foreach=False, **case), w0, grads)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(w, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_norm_composed_as_torch(max_norm):
    gen = np.random.default_rng(3)
    grads = [gen.standard_normal(s).astype(np.float32) for s in [(5, 4), (4,), (4, 3)]]
    total = np.sqrt(sum(_core.sum_of_squares(g) for g in grads))
    factor = max_norm / (total + 1e-6)
    if factor < 1.0:
        for g in grads:
            _core.scale(g, factor)
    params = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    gen = np.random.default_rng(3)
    for p in params:
        p.grad = torch.tensor(gen.standard_normal(tuple(p.shape)).astype(np.float32))
    t_total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    assert total == pytest.approx(t_total.item(), rel=1e-6)
    for g, p in zip(grads, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_by_value_as_torch():
    gen = np.random.default_rng(4)
    g = gen.standard_normal((10, 10)).astype(np.float32) * 3
    p = torch.nn.Parameter(torch.zeros(10, 10))
    p.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_value_([p], 1.25)
    _core.clip_by_value(g, 1.25)
    np.testing.assert_array_equal(g, p.grad.numpy())
