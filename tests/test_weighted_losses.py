"""Row-weighted losses (the `weights=` argument of the three loss kernels): loss = sum w_n l_n / sum w,
as torch.nn.CrossEntropyLoss(weight=...) with w_n = weight[y_n], and dZ its gradient. Checked against
the numpy oracle, central differences, and PyTorch's autograd in float64 (skipped without torch)."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from initlab import _core

DTYPES = [np.float32, np.float64]
KINDS = ["ce_labels", "ce_soft", "bce", "mse"]


def rng(seed=0):
    return np.random.default_rng(seed)


def problem(kind, n, k, dtype, seed=0):
    """(Z, y) for one loss kind: logits and labels / targets of the kernel's dtype."""
    gen = rng(seed)
    Z = (gen.standard_normal((n, k)) * 2.5).astype(dtype)
    if kind == "ce_labels":
        y = gen.integers(0, k, n).astype(np.int64)
    elif kind == "ce_soft":
        y = gen.random((n, k)) + 0.05
        y = (y / y.sum(axis=1, keepdims=True)).astype(dtype)
    elif kind == "bce":
        y = gen.random((n, k)).astype(dtype)
    else:
        y = gen.standard_normal((n, k)).astype(dtype)
    return Z, y


def kernel(kind, Z, y, weights=None, with_grad=True):
    """(loss, dZ) of the native kernel."""
    P, dZ = np.empty_like(Z), (np.empty_like(Z) if with_grad else None)
    if kind.startswith("ce"):
        return _core.softmax_cross_entropy(Z, y, P, dZ, weights), dZ
    if kind == "bce":
        return _core.sigmoid_binary_cross_entropy(Z, y, P, dZ, weights), dZ
    return _core.mean_squared_error(Z, y, dZ, weights), dZ


def oracle(kind, Z, y, weights):
    if kind.startswith("ce"):
        loss, _, dZ = ref.softmax_cross_entropy(Z, y, weights)
    elif kind == "bce":
        loss, _, dZ = ref.sigmoid_binary_cross_entropy(Z, y, weights)
    else:
        loss, dZ = ref.mean_squared_error(Z, y, weights)
    return loss, dZ


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,k", [(1, 1), (9, 4), (300, 10)])
def test_weighted_loss_matches_oracle(kind, dtype, n, k):
    if kind.startswith("ce") and k == 1:
        k = 2
    Z, y = problem(kind, n, k, dtype)
    w = (rng(7).random(n) * 3).astype(dtype)
    w[::3] = 0  # zero weights take part too
    if w.sum() == 0:
        w[0] = 0.5
    loss, dZ = kernel(kind, Z, y, w)
    loss_ref, dZ_ref = oracle(kind, Z, y, w)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(loss_ref, rel=tol, abs=tol)
    np.testing.assert_allclose(dZ, dZ_ref, rtol=tol * 10, atol=tol / n)
    assert np.all(dZ[w == 0] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_unit_and_scaled_weights_give_the_plain_mean(kind, dtype):
    Z, y = problem(kind, 17, 5, dtype)
    plain, dZ_plain = kernel(kind, Z, y)
    ones, dZ_ones = kernel(kind, Z, y, np.ones(17, dtype))
    scaled, dZ_scaled = kernel(kind, Z, y, np.full(17, 4.0, dtype))  # a power of two: exact
    tol = 2e-6 if dtype == np.float32 else 1e-14
    assert ones == pytest.approx(plain, rel=tol) and scaled == pytest.approx(plain, rel=tol)
    np.testing.assert_allclose(dZ_ones, dZ_plain, rtol=tol * 10, atol=0)
    np.testing.assert_allclose(dZ_scaled, dZ_plain, rtol=tol * 10, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_integer_weights_repeat_rows(kind):
    """Weight 2 on a row is the same loss and gradient as that row twice (weight 0: dropped)."""
    Z, y = problem(kind, 6, 3, np.float64, seed=3)
    w = np.array([2.0, 1.0, 0.0, 1.0, 3.0, 1.0])
    rows = np.repeat(np.arange(6), w.astype(int))
    loss, dZ = kernel(kind, Z, y, w)
    loss_rep, dZ_rep = kernel(kind, np.ascontiguousarray(Z[rows]), np.ascontiguousarray(y[rows]))
    assert loss == pytest.approx(loss_rep, rel=1e-13)
    summed = np.zeros_like(dZ)
    np.add.at(summed, rows, dZ_rep)
    np.testing.assert_allclose(dZ, summed, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_gradients_finite_differences(kind):
    Z, y = problem(kind, 5, 4, np.float64, seed=2)
    w = np.array([0.3, 2.0, 0.0, 1.1, 0.7])
    _, dZ = kernel(kind, Z, y, w)
    eps, num = 1e-6, np.empty_like(Z)
    for idx in np.ndindex(Z.shape):
        old = Z[idx]
        Z[idx] = old + eps
        fp = kernel(kind, Z, y, w, with_grad=False)[0]
        Z[idx] = old - eps
        fm = kernel(kind, Z, y, w, with_grad=False)[0]
        Z[idx] = old
        num[idx] = (fp - fm) / (2 * eps)
    err = np.abs(num - dZ).max() / max(1.0, np.abs(num).max())
    assert err <= 1e-7, f"finite-difference relative error {err:.3g}"


@pytest.mark.parametrize("kind", KINDS)
def test_weights_summing_to_zero_give_zero_loss_and_gradient(kind):
    Z, y = problem(kind, 4, 3, np.float64)
    loss, dZ = kernel(kind, Z, y, np.zeros(4))
    assert loss == 0.0
    assert np.all(dZ == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_loss_is_the_same_on_any_thread_count(kind):
    old = _core.get_num_threads()
    try:
        Z, y = problem(kind, 40000, 10, np.float32, seed=4)
        w = rng(5).random(40000).astype(np.float32)
        results = []
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            results.append(kernel(kind, Z, y, w))
    finally:
        _core.set_num_threads(old)
    for loss, dZ in results[1:]:
        assert loss == results[0][0]
        assert np.array_equal(dZ, results[0][1])


def test_weights_bad_input_names_the_argument():
    Z = np.zeros((3, 2))
    y = np.array([0, 1, 1], np.int64)
    P = np.empty_like(Z)
    with pytest.raises(ValueError, match=r"'weights' must be finite and >= 0, got -1.0 at index 1"):
        _core.softmax_cross_entropy(Z, y, P, None, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"'weights' must be finite and >= 0, got nan at index 2"):
        _core.mean_squared_error(Z, Z.copy(), None, np.array([1.0, 1.0, np.nan]))
    with pytest.raises(ValueError, match=r"'weights' must be finite and >= 0, got inf"):
        _core.sigmoid_binary_cross_entropy(Z, Z.copy(), P, None, np.array([np.inf, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"argument 'weights' must have shape \(N,\) = \(3,\), got \(2,\)"):
        _core.softmax_cross_entropy(Z, y, P, None, np.ones(2))
    with pytest.raises(TypeError, match=r"argument 'weights' has dtype float32 but 'Z' has dtype float64"):
        _core.softmax_cross_entropy(Z, y, P, None, np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"argument 'weights' must be a numpy.ndarray, got list"):
        _core.softmax_cross_entropy(Z, y, P, None, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"argument 'weights' must be 1-dimensional"):
        _core.softmax_cross_entropy(Z, y, P, None, np.ones((3, 1)))
    dZ = np.empty_like(Z)
    with pytest.raises(ValueError, match=r"'dZ' shares memory with 'weights'"):
        _core.mean_squared_error(Z, Z.copy(), dZ, dZ.ravel()[:3])


# ---- PyTorch, float64 ------------------------------------------------------------------------

def _torch_weighted(kind, tZ, y, w, torch):
    """The batch loss in PyTorch: per-row losses (reduction='none'), then sum(w l)/sum(w)."""
    F = torch.nn.functional
    ty, tw = torch.tensor(y), torch.tensor(w)
    if kind.startswith("ce"):
        rows = F.cross_entropy(tZ, ty, reduction="none")
    elif kind == "bce":
        rows = F.binary_cross_entropy_with_logits(tZ, ty, reduction="none").mean(dim=1)
    else:
        rows = F.mse_loss(tZ, ty, reduction="none").mean(dim=1)
    return (tw * rows).sum() / tw.sum()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_row_weighted_losses_against_torch(kind, dtype):
    torch = pytest.importorskip("torch")
    Z, y = problem(kind, 23, 6, dtype, seed=8)
    w = (rng(9).random(23) * 2).astype(dtype)
    w[[1, 5]] = 0
    loss, dZ = kernel(kind, Z, y, w)
    tZ = torch.tensor(Z, requires_grad=True)
    t_loss = _torch_weighted(kind, tZ, y, w, torch)
    t_loss.backward()
    tol = 3e-6 if dtype == np.float32 else 1e-13
    assert loss == pytest.approx(t_loss.item(), rel=tol * 5, abs=tol)
    np.testing.assert_allclose(dZ, tZ.grad.numpy(), rtol=tol * 10, atol=tol / 10)


def test_class_weights_equal_torch_cross_entropy_weight():
    """w_n = class_weight[y_n] is exactly torch.nn.CrossEntropyLoss(weight=class_weight)."""
    torch = pytest.importorskip("torch")
    gen = rng(11)
    n, k = 40, 5
    Z = gen.standard_normal((n, k)) * 2
    y = gen.integers(0, k, n).astype(np.int64)
    class_weight = np.array([0.5, 3.0, 1.0, 0.0, 2.25])
    loss, dZ = kernel("ce_labels", Z, y, class_weight[y])
    tZ = torch.tensor(Z, requires_grad=True)
    t_loss = torch.nn.CrossEntropyLoss(weight=torch.tensor(class_weight))(tZ, torch.tensor(y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-14)
    np.testing.assert_allclose(dZ, tZ.grad.numpy(), rtol=1e-12, atol=1e-16)


def test_overflowing_sums_keep_a_finite_mean():
    """A sum past the largest double is redone scaled: the (weighted) mean stays finite and exact."""
    Z = np.full((2, 3), 1e308)
    Z[1] = 1.0
    y = np.zeros_like(Z)
    P = np.empty_like(Z)
    bce_row1 = float(np.log1p(np.exp(-1.0)) + 1.0)
    assert _core.sigmoid_binary_cross_entropy(Z, y, P) == pytest.approx((1e308 + bce_row1) / 2, rel=1e-15)
    assert _core.sigmoid_binary_cross_entropy(Z, y, P, None, np.array([1.0, 3.0])) == \
        pytest.approx((1e308 + 3 * bce_row1) / 4, rel=1e-15)
    D = np.full((2, 5), 6e153)
    D[1] = 1.0
    assert _core.mean_squared_error(D, np.zeros_like(D)) == pytest.approx((3.6e307 + 1) / 2, rel=1e-14)
    assert _core.mean_squared_error(D, np.zeros_like(D), None, np.array([1.0, 3.0])) == \
        pytest.approx((3.6e307 + 3) / 4, rel=1e-14)
    assert _core.mean_squared_error(D, np.zeros_like(D), None, np.array([0.0, 3.0])) == pytest.approx(1.0)
