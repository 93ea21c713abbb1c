"""The native kernels (initlab._core) against the plain-numpy oracles of tests/reference.py,
finite differences in float64, and the validation rules of the binding layer."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
import initlab as il
from initlab import _core

ACTIVATIONS = [a["name"] for a in _core.activation_registry()]  # the one registry (dense.hpp)
DTYPES = [np.float32, np.float64]
# Tolerances for comparing a float kernel with the float64 oracle.
RTOL = {np.float32: 2e-5, np.float64: 1e-12}


def rng(seed=0):
    return np.random.default_rng(seed)


def rand(shape, dtype, seed=0, scale=1.0):
    return (rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.fixture
def restore_threads():
    old = _core.get_num_threads()
    yield
    _core.set_num_threads(old)


@pytest.fixture
def one_thread(restore_threads):
    """Many small products: one thread avoids fork/join costs on a busy machine. Thread counts
    are covered by test_bitwise_identical_for_any_thread_count."""
    _core.set_num_threads(1)


def test_registry_matches_reference():
    assert ACTIVATIONS == list(ref.ACTIVATION_DEFAULTS)
    for name, _, default in _core.activations():
        assert default == (ref.ACTIVATION_DEFAULTS[name] or 0.0)
    for a in _core.activation_registry():
        assert a["default_param"] == ref.ACTIVATION_DEFAULTS[a["name"]]
        assert a["gain"] == il.init.gain(a["name"], a["default_param"])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_registry_flags_match_the_math(name):
    """derivative_from_output, saturates and zero_derivative_interval against the derivative the
    kernels compute (float64), so a wrong flag in dense.hpp cannot pass."""
    a = {r["name"]: r for r in _core.activation_registry()}[name]
    z = np.array([[-30.0, -3.0, -2.0, 2.0, 30.0]])
    A = np.empty_like(z)
    _core.activation_forward(z, A, name)
    X, W = np.ones((1, 1)), np.ones((1, 5))   # dense_backward of one row: dZ = act'(.)

    def derivative(Z, A_given):
        dA = np.ones_like(z)
        dW, db = np.empty((1, 5)), np.empty(5)
        _core.dense_backward(dA, X, W, Z, A_given, name, None, dW, db, None)
        return dA[0]

    d = derivative(z, A)
    # Which cached array the derivative reads: perturb the other one and see whether it changes.
    if a["derivative_from_output"]:
        assert np.array_equal(derivative(z + 1.0, A), d) and not np.array_equal(derivative(z, A * 0.5), d)
    else:
        assert np.array_equal(derivative(z, A * 0.5), d)
    assert a["saturates"] == bool(abs(d[0]) < 1e-9 and abs(d[-1]) < 1e-9)
    assert a["zero_derivative_interval"] == bool(d[1] == 0.0 and d[2] == 0.0)


# ---------------------------------------------------------------------------------------------
# GEMM
# ---------------------------------------------------------------------------------------------

GEMM_SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (7, 17, 1), (5, 15, 255), (7, 16, 257), (6, 8, 256),
               (13, 31, 37), (64, 64, 64), (97, 33, 129)]


def _operands(m, n, k, dtype, trans_a, trans_b, seed=0):
    A = rand((k, m) if trans_a else (m, k), dtype, seed)
    B = rand((n, k) if trans_b else (k, n), dtype, seed + 1)
    return A, B


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
@pytest.mark.parametrize("fn", ["gemm", "gemm_reference"])
def test_gemm_matches_numpy(dtype, trans_a, trans_b, fn, one_thread):
    for m, n, k in GEMM_SHAPES:
        A, B = _operands(m, n, k, dtype, trans_a, trans_b)
        C = np.full((m, n), np.nan, dtype)  # beta == 0 must never read C
        getattr(_core, fn)(A, B, C, trans_a=trans_a, trans_b=trans_b)
        expected = ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
        scale = np.sqrt(k) * (1e-6 if dtype == np.float32 else 1e-14)
        np.testing.assert_allclose(C, expected, rtol=0, atol=10 * scale * max(1, np.abs(expected).max()),
                                   err_msg=f"{fn} {m}x{n}x{k}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_alpha_beta(dtype):
    m, n, k = 23, 19, 41
    A, B = _operands(m, n, k, dtype, False, True)
    C0 = rand((m, n), dtype, 5)
    C = C0.copy()
    _core.gemm(A, B, C, alpha=-0.5, beta=2.0, trans_b=True)
    expected = ref.gemm(A, B, C0, alpha=-0.5, beta=2.0, trans_b=True)
    np.testing.assert_allclose(C, expected, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_fast_equals_reference_closely(dtype):
    A, B = _operands(70, 45, 300, dtype, True, False, seed=3)
    C1 = np.empty((70, 45), dtype)
    C2 = np.empty((70, 45), dtype)
    _core.gemm(A, B, C1, trans_a=True)
    _core.gemm_reference(A, B, C2, trans_a=True)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(C1, C2, rtol=tol, atol=tol)


# Edge shapes of the packed path (M*N*K >= 2048): around the register tile (AVX2: MR = 6, NR = 16
# float / 8 double; AVX-512: MR = 8, NR = 32 float / 16 double), KC = 256, and MC = 264 (float) /
# 132 (double; AVX-512: 136), where the single row-block path gives way to the blocked one; and
# N = 4081 > NC = 4080 (AVX2), N = 4097 > NC = 4096 (AVX-512).
FAST_M = [1, 5, 7, 9, 13, 131, 133, 137, 263, 265]
FAST_N = [1, 7, 9, 15, 17, 31, 33]
FAST_K = [255, 257, 600]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_edge_shapes_of_the_packed_path(dtype, trans_a, trans_b, one_thread):
    shapes = [(m, n, k) for m in FAST_M for n in FAST_N for k in FAST_K if m * n * k >= 2048]
    shapes += [(3, 4081, 20), (270, 4097, 3), (2, 33, 1031)]
    for m, n, k in shapes:
        A, B = _operands(m, n, k, dtype, trans_a, trans_b, seed=m + n + k)
        C = np.full((m, n), np.nan, dtype)
        _core.gemm(A, B, C, trans_a=trans_a, trans_b=trans_b)
        expected = ref.gemm(A, B, trans_a=trans_a, trans_b=trans_b)
        bound = (np.abs(A).max() * np.abs(B).max() * k) * (4e-7 if dtype == np.float32 else 1e-15)
        np.testing.assert_allclose(C, expected, rtol=0, atol=bound, err_msg=f"{m}x{n}x{k}")
        # beta != 0 accumulates into C across the K slices
        C0 = rand((m, n), dtype, 9)
        C = C0.copy()
        _core.gemm(A, B, C, alpha=0.5, beta=-1.0, trans_a=trans_a, trans_b=trans_b)
        np.testing.assert_allclose(C, 0.5 * expected - C0, rtol=0, atol=bound + 1e-6 * (dtype == np.float32))


# The small-product path (M*N*K <= 2^18 and K <= KC = 256, above the triple loop's 2048): tiles of
# 8 rows by 1-2 vectors read straight from the operands; odd sizes cross every tile edge.
SMALL_SHAPES = [(32, 64, 64), (33, 70, 65), (1, 17, 200), (9, 5, 256), (63, 8, 64), (8, 16, 16),
                (7, 33, 31), (17, 1, 255), (2, 129, 40), (64, 64, 64), (15, 47, 100)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_small_path_against_the_naive_twin(dtype, trans_a, trans_b):
    for m, n, k in SMALL_SHAPES:
        assert 2048 <= m * n * k <= 2**18
        A, B = _operands(m, n, k, dtype, trans_a, trans_b, seed=m * n + k)
        C = np.full((m, n), np.nan, dtype)  # beta == 0 never reads C
        _core.gemm(A, B, C, trans_a=trans_a, trans_b=trans_b)
        expected = np.empty_like(C)
        _core.gemm_reference(A, B, expected, trans_a=trans_a, trans_b=trans_b)
        bound = (np.abs(A).max() * np.abs(B).max() * k) * (4e-7 if dtype == np.float32 else 1e-15)
        np.testing.assert_allclose(C, expected, rtol=0, atol=bound, err_msg=f"{m}x{n}x{k}")
        C0 = rand((m, n), dtype, 9)
        C = C0.copy()
        _core.gemm(A, B, C, alpha=0.5, beta=-1.0, trans_a=trans_a, trans_b=trans_b)
        np.testing.assert_allclose(C, 0.5 * expected - C0, rtol=0, atol=bound + 1e-6 * (dtype == np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_small_path_is_bitwise_the_packed_path(dtype, trans_a, trans_b):
    # Each C element is the same sequence of FMA chains (one per K slice of KC = 256) on both paths:
    # the first m rows of a tall product equal the m-row product alone. In these shapes the m-row
    # product takes the direct path (<= 2^18 multiply-adds) and the tall one the packed path (its K
    # slice of B, min(K, 256) x N, is over 256 KiB): with 100 rows (<= MC) its single row-block
    # loop, with 700 rows (> MC) its blocked loop; K = 300 and 370 cross a slice.
    for tall in (100, 700):
        for m, n, k in [(3, 300, 256), (2, 400, 300), (1, 700, 370), (3, 270, 257)]:
            A, B = _operands(tall, n, k, dtype, trans_a, trans_b, seed=k)
            C_big = np.empty((tall, n), dtype)
            _core.gemm(A, B, C_big, trans_a=trans_a, trans_b=trans_b)
            A_m = np.ascontiguousarray(A[:, :m] if trans_a else A[:m])
            C = np.empty((m, n), dtype)
            _core.gemm(A_m, B, C, trans_a=trans_a, trans_b=trans_b)
            assert C.tobytes() == C_big[:m].tobytes(), f"{m}x{n}x{k} within {tall} rows"
            # alpha and beta too: edge tiles (N = 300, 400, 700, 270 are not whole NR panels) get
            # the same arithmetic as whole ones, alpha*acc + beta*C, on both paths.
            C0 = rand((tall, n), dtype, 9)
            C_big = C0.copy()
            _core.gemm(A, B, C_big, alpha=0.7, beta=0.3, trans_a=trans_a, trans_b=trans_b)
            C = C0[:m].copy()
            _core.gemm(A_m, B, C, alpha=0.7, beta=0.3, trans_a=trans_a, trans_b=trans_b)
            assert C.tobytes() == C_big[:m].tobytes(), f"{m}x{n}x{k} within {tall} rows, alpha and beta"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False)])
def test_gemm_random_vector_checksum(dtype, trans_a, trans_b):
    """C*t must equal A*(B*t) for a random t (BLIS's checksum test), on shapes that cross every
    cache block: M > MC, K > KC (several slices), N not a multiple of NR."""
    m, n, k = 700, 901, 1100
    A, B = _operands(m, n, k, dtype, trans_a, trans_b, seed=7)
    C = np.empty((m, n), dtype)
    _core.gemm(A, B, C, trans_a=trans_a, trans_b=trans_b)
    t = rng(8).standard_normal(n)
    opA = A.T if trans_a else A
    opB = B.T if trans_b else B
    lhs = C.astype(np.float64) @ t
    rhs = opA.astype(np.float64) @ (opB.astype(np.float64) @ t)
    scale = np.abs(opA).astype(np.float64) @ (np.abs(opB).astype(np.float64) @ np.abs(t))
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(lhs - rhs) <= 4 * k * eps * scale + 1e-300)


def test_steady_state_gemm_allocates_nothing():
    X, W = rand((300, 500), np.float32), rand((500, 300), np.float32, 1)
    C = np.empty((300, 300), np.float32)
    small = X[:64].copy(), W[:, :64].copy(), np.empty((64, 64), np.float32)  # the direct path

    def calls():
        _core.gemm(X, W, C)
        _core.gemm(X, W.T.copy(), C, trans_b=True)
        _core.gemm(X[:64].copy(), W, C[:64].copy())
        _core.gemm(*small)
        _core.gemm(small[0], small[1].T.copy(), small[2], trans_b=True)

    calls()  # the first calls grow the buffers (whatever earlier tests left)
    before = _core.gemm_workspace_allocations()
    for _ in range(3):
        calls()
    assert _core.gemm_workspace_allocations() == before


# ---------------------------------------------------------------------------------------------
# Activations and dense layers
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward(dtype, name):
    Z = rand((9, 13), dtype, scale=3.0)
    Z[0, :5] = [0.0, -0.0, 25.0, -25.0, 1e-3]
    A = np.empty_like(Z)
    _core.activation_forward(Z, A, name)
    np.testing.assert_allclose(A, ref.activation(name, Z.astype(np.float64)), rtol=RTOL[dtype] * 10,
                               atol=RTOL[dtype])
    # in place: A is Z
    Z2 = Z.copy()
    _core.activation_forward(Z2, Z2, name)
    np.testing.assert_array_equal(Z2, A)


@pytest.mark.parametrize("name,param", [("leaky_relu", 0.2), ("elu", 0.5), ("softplus", 2.0)])
def test_activation_param(name, param):
    Z = rand((4, 30), np.float64, scale=4.0)
    A = np.empty_like(Z)
    _core.activation_forward(Z, A, name, param)
    np.testing.assert_allclose(A, ref.activation(name, Z, param), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (7, 5, 17), (33, 64, 10), (270, 300, 19)])
def test_dense_forward_backward(dtype, name, n, i, o):
    X, W, b = rand((n, i), dtype, 1), rand((i, o), dtype, 2, 0.5), rand((o,), dtype, 3)
    Z, A = np.empty((n, o), dtype), np.empty((n, o), dtype)
    _core.dense_forward(X, W, b, Z, A, name)
    Z_ref, A_ref = ref.dense_forward(X, W, b, name)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(Z, Z_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(A, A_ref, rtol=tol, atol=tol)

    dA = rand((n, o), dtype, 4)
    dA_in = dA.copy()
    dW, db, dX = np.empty((i, o), dtype), np.empty((o,), dtype), np.empty((n, i), dtype)
    _core.dense_backward(dA, X, W, Z, A, name, None, dW, db, dX)
    dZ_ref, dW_ref, db_ref, dX_ref = ref.dense_backward(dA_in, X, W, Z.astype(np.float64), name)
    np.testing.assert_allclose(dA, dZ_ref, rtol=tol * 10, atol=tol)  # dA now holds dZ
    np.testing.assert_allclose(dW, dW_ref, rtol=tol * 10, atol=tol * np.sqrt(n) * 10)
    np.testing.assert_allclose(db, db_ref, rtol=tol * 10, atol=tol * np.sqrt(n) * 10)
    np.testing.assert_allclose(dX, dX_ref, rtol=tol * 10, atol=tol * np.sqrt(o) * 10)

    # dX=None skips dX and leaves dW, db the same
    dA2 = dA_in.copy()
    dW2, db2 = np.empty_like(dW), np.empty_like(db)
    _core.dense_backward(dA2, X, W, Z, A, name, None, dW2, db2)
    np.testing.assert_array_equal(dW2, dW)
    np.testing.assert_array_equal(db2, db)


def test_dense_forward_linear_may_alias_z():
    X, W, b = rand((5, 4), np.float64), rand((4, 3), np.float64, 1), rand((3,), np.float64, 2)
    Z = np.empty((5, 3))
    _core.dense_forward(X, W, b, Z, Z, "linear")
    np.testing.assert_allclose(Z, X @ W + b, rtol=1e-13)
    with pytest.raises(ValueError, match="only for activation 'linear'"):
        _core.dense_forward(X, W, b, Z, Z, "relu")


def _dense_loss_grads(X, W, b, R, name, param=None):
    """f = sum(R * act(X@W + b)) and its gradients from the core."""
    n, o = X.shape[0], W.shape[1]
    Z, A = np.empty((n, o)), np.empty((n, o))
    _core.dense_forward(X, W, b, Z, A, name, param)
    dA = R.copy()
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    _core.dense_backward(dA, X, W, Z, A, name, param, dW, db, dX)
    return float((R * A).sum()), dW, db, dX


def _fd_check(f, x, grad, eps=1e-6, tol=1e-6):
    """Central differences of f at every element of x against grad (relative error <= tol)."""
    num = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        fp = f()
        x[idx] = old - eps
        fm = f()
        x[idx] = old
        num[idx] = (fp - fm) / (2 * eps)
    err = np.abs(num - grad).max() / max(1.0, np.abs(num).max(), np.abs(grad).max())
    assert err <= tol, f"finite-difference relative error {err:.3g}"


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_gradients_finite_differences(name):
    X, W, b = rand((4, 3), np.float64, 1), rand((3, 5), np.float64, 2), rand((5,), np.float64, 3, 0.3)
    R = rand((4, 5), np.float64, 4)
    if name in ("relu", "leaky_relu", "elu", "selu"):  # keep z away from the kink at 0
        Z = X @ W + b
        b += np.where(np.abs(Z).min(axis=0) < 1e-3, 0.1, 0.0)
    _, dW, db, dX = _dense_loss_grads(X, W, b, R, name)
    f = lambda: _dense_loss_grads(X, W, b, R, name)[0]  # noqa: E731
    _fd_check(f, W, dW)
    _fd_check(f, b, db)
    _fd_check(f, X, dX)


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 1), (1, 2), (7, 10), (64, 3), (5, 1001)])
def test_softmax_cross_entropy(dtype, n, k):
    Z = rand((n, k), dtype, 1, 3.0)
    y = rng(2).integers(0, k, n).astype(np.int64)
    P, dZ = np.empty_like(Z), np.empty_like(Z)
    loss = _core.softmax_cross_entropy(Z, y, P, dZ)
    loss_ref, P_ref, dZ_ref = ref.softmax_cross_entropy(Z, y)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(loss_ref, rel=tol, abs=tol)
    np.testing.assert_allclose(P, P_ref, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(dZ, dZ_ref, rtol=tol * 10, atol=tol / n)
    # one-hot float targets give the same loss; soft targets match the oracle
    Y = np.eye(k, dtype=dtype)[y]
    assert _core.softmax_cross_entropy(Z, Y, P) == pytest.approx(loss_ref, rel=tol, abs=tol)
    T = rng(3).random((n, k)).astype(dtype)
    T /= T.sum(axis=1, keepdims=True)
    loss_soft = _core.softmax_cross_entropy(Z, T, P, dZ)
    loss_soft_ref, _, dZ_soft_ref = ref.softmax_cross_entropy(Z, T)
    assert loss_soft == pytest.approx(loss_soft_ref, rel=tol * 10, abs=tol)
    np.testing.assert_allclose(dZ, dZ_soft_ref, rtol=tol * 10, atol=tol / n)


def test_softmax_cross_entropy_huge_logits_are_stable():
    Z = np.array([[1000.0, 0.0, -1000.0], [-5000.0, 5000.0, 0.0]])
    y = np.array([0, 2], np.int64)
    P = np.empty_like(Z)
    loss = _core.softmax_cross_entropy(Z, y, P)
    assert loss == pytest.approx((0.0 + 5000.0) / 2)
    np.testing.assert_allclose(P, [[1, 0, 0], [0, 1, 0]], atol=1e-300)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_binary_cross_entropy(dtype):
    Z = rand((17, 3), dtype, 1, 4.0)
    y = (rng(2).random((17, 3)) > 0.5).astype(dtype)
    P, dZ = np.empty_like(Z), np.empty_like(Z)
    loss = _core.sigmoid_binary_cross_entropy(Z, y, P, dZ)
    loss_ref, P_ref, dZ_ref = ref.sigmoid_binary_cross_entropy(Z, y)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(loss_ref, rel=tol)
    np.testing.assert_allclose(P, P_ref, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(dZ, dZ_ref, rtol=tol * 10, atol=tol / Z.size)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_logit_200_label_0_is_200(dtype):
    Z = np.array([[200.0]], dtype)
    y = np.array([[0.0]], dtype)
    P, dZ = np.empty_like(Z), np.empty_like(Z)
    assert _core.sigmoid_binary_cross_entropy(Z, y, P, dZ) == 200.0
    assert dZ[0, 0] == 1.0
    Z[0, 0] = -200.0
    y[0, 0] = 1.0
    assert _core.sigmoid_binary_cross_entropy(Z, y, P, dZ) == 200.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_squared_error(dtype):
    Z, y = rand((11, 4), dtype, 1), rand((11, 4), dtype, 2)
    dZ = np.empty_like(Z)
    loss = _core.mean_squared_error(Z, y, dZ)
    loss_ref, dZ_ref = ref.mean_squared_error(Z, y)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert loss == pytest.approx(loss_ref, rel=tol)
    np.testing.assert_allclose(dZ, dZ_ref, rtol=tol * 10, atol=tol)
    assert _core.mean_squared_error(Z, y) == loss  # dZ is optional


def _loss_fn(kind, Z, y):
    P = np.empty_like(Z)
    dZ = np.empty_like(Z)
    if kind == "softmax":
        return _core.softmax_cross_entropy(Z, y, P, dZ), dZ
    if kind == "sigmoid":
        return _core.sigmoid_binary_cross_entropy(Z, y, P, dZ), dZ
    return _core.mean_squared_error(Z, y, dZ), dZ


@pytest.mark.parametrize("kind", ["softmax", "softmax_soft", "sigmoid", "mse"])
def test_loss_gradients_finite_differences(kind):
    Z = rand((5, 4), np.float64, 1, 2.0)
    if kind == "softmax":
        y = np.array([0, 3, 1, 1, 2], np.int64)
    elif kind == "softmax_soft":
        y = rng(2).random((5, 4))
        y /= y.sum(axis=1, keepdims=True)
        kind = "softmax"
    elif kind == "sigmoid":
        y = rng(2).random((5, 4))
    else:
        y = rand((5, 4), np.float64, 2)
    _, dZ = _loss_fn(kind, Z, y)
    _fd_check(lambda: _loss_fn(kind, Z, y)[0], Z, dZ)


# ---------------------------------------------------------------------------------------------
# Optimizers, clipping, dropout
# ---------------------------------------------------------------------------------------------

SGD_CASES = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
             dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
             dict(lr=0.02, weight_decay=0.1, momentum=0.5, nesterov=True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SGD_CASES)
def test_sgd_step(dtype, case):
    w = rand((7, 5), dtype, 1)
    buf = np.zeros_like(w)
    w_ref, buf_ref = w.astype(np.float64), None
    for step in range(4):
        g = rand((7, 5), dtype, 10 + step)
        _core.sgd_step(w, g, buf if case.get("momentum") else None, first_step=step == 0, **case)
        w_ref, buf_ref = ref.sgd_step(w_ref, g, buf_ref, first_step=step == 0, **case)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol)


ADAM_CASES = [dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0),
              dict(lr=1e-3, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
              dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.05, decoupled=True),
              dict(lr=1e-2, beta1=0.6, beta2=0.999, eps=1e-8, weight_decay=0.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ADAM_CASES)
def test_adam_step(dtype, case):
    w = rand((6, 3), dtype, 1)
    m, v = np.zeros_like(w), np.zeros_like(w)
    w_ref, m_ref, v_ref = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    for step in range(1, 5):
        g = rand((6, 3), dtype, 10 + step)
        _core.adam_step(w, g, m, v, step=step, **case)
        w_ref, m_ref, v_ref = ref.adam_step(w_ref, g, m_ref, v_ref, step=step, **case)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(m, m_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(v, v_ref, rtol=tol, atol=tol)


RMSPROP_CASES = [dict(lr=1e-2), dict(lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.1),
                 dict(lr=1e-3, momentum=0.9)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", RMSPROP_CASES)
def test_rmsprop_step(dtype, case):
    w = rand((5, 5), dtype, 1)
    v, buf = np.zeros_like(w), np.zeros_like(w)
    w_ref, v_ref, buf_ref = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    for step in range(4):
        g = rand((5, 5), dtype, 10 + step)
        _core.rmsprop_step(w, g, v, buf if case.get("momentum") else None, **case)
        w_ref, v_ref, buf_ref = ref.rmsprop_step(w_ref, g, v_ref, buf_ref, **case)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(w, w_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_by_value_and_norm_helpers(dtype):
    g = rand((40, 7), dtype, 1, 3.0)
    g[0, 0] = np.nan
    expected = np.clip(g, -1.5, 1.5)
    _core.clip_by_value(g, 1.5)
    np.testing.assert_array_equal(g, expected)  # NaN stays NaN
    x = rand((100, 33), dtype, 2)
    assert _core.sum_of_squares(x) == pytest.approx(float((x.astype(np.float64) ** 2).sum()), rel=1e-12)
    y = rand((100, 33), dtype, 3)
    assert _core.diff_norm(x, y) == pytest.approx(
        float(np.linalg.norm(x.astype(np.float64) - y.astype(np.float64))), rel=1e-12)
    x0 = x.copy()
    _core.scale(x, 0.25)
    np.testing.assert_array_equal(x, x0 * dtype(0.25))
    assert _core.all_finite(x)
    x[50, 3] = np.inf
    assert not _core.all_finite(x)
    assert _core.all_finite(np.zeros(0, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_matches_philox_rederivation(dtype):
    A = rand((7, 9), dtype, 1)
    A0 = A.copy()
    mask = np.empty_like(A)
    _core.dropout_forward(A, mask, p=0.3, seed=2**40 + 17, stream=3, step=5)
    expected = ref.dropout_mask(A.shape, 0.3, 2**40 + 17, 3, 5)
    np.testing.assert_array_equal(mask, expected.astype(dtype))
    np.testing.assert_array_equal(A, A0 * mask)
    dA = rand((7, 9), dtype, 2)
    dA0 = dA.copy()
    _core.dropout_backward(dA, mask)
    np.testing.assert_array_equal(dA, dA0 * mask)


def test_dropout_statistics_and_streams():
    A = np.ones((200, 500), np.float32)
    mask = np.empty_like(A)
    _core.dropout_forward(A, mask, p=0.25, seed=1, stream=0, step=0)
    kept = (mask > 0).mean()
    assert abs(kept - 0.75) < 0.01
    assert np.all((mask == 0) | (mask == np.float32(1 / 0.75)))
    other = np.empty_like(A)
    _core.dropout_forward(np.ones_like(A), other, p=0.25, seed=1, stream=0, step=1)
    assert not np.array_equal(mask, other)  # a new step draws a new mask
    _core.dropout_forward(np.ones_like(A), other, p=0.25, seed=1, stream=1, step=0)
    assert not np.array_equal(mask, other)  # another layer draws another mask
    _core.dropout_forward(np.ones_like(A), other, p=0.0, seed=1, stream=1, step=0)
    assert np.all(other == 1.0)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_layer_stats(name):
    Z = rand((50, 12), np.float32, 1, 3.0)
    Z[:, 3] = -np.abs(Z[:, 3])  # a dead unit for the ReLU family
    A = np.empty_like(Z)
    _core.activation_forward(Z, A, name)
    got = _core.layer_stats(Z, A, name)
    expected = ref.layer_stats(Z, A, name)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    if name == "relu":
        assert got["dead"] == pytest.approx(1 / 12)
    else:  # leaky_relu, elu, selu, ...: a nonzero slope everywhere, so never dead
        assert got["dead"] == 0.0


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

def test_validation_messages():
    f32 = np.zeros((3, 4), np.float32)
    W = np.zeros((4, 5), np.float32)
    b = np.zeros(5, np.float32)
    Z = np.zeros((3, 5), np.float32)
    A = np.zeros((3, 5), np.float32)
    with pytest.raises(TypeError, match="'W' has dtype float64"):
        _core.dense_forward(f32, W.astype(np.float64), b, Z, A, "relu")
    with pytest.raises(TypeError, match="'X' must have dtype float32 or float64"):
        _core.dense_forward(f32.astype(np.int32), W, b, Z, A, "relu")
    with pytest.raises(ValueError, match=r"'W' must have shape \(I, O\) = \(4, 5\), got \(6, 5\)"):
        _core.dense_forward(f32, np.zeros((6, 5), np.float32), b, Z, A, "relu")
    with pytest.raises(ValueError, match=r"'b' must have shape \(O,\) = \(6,\), got \(5,\)"):
        _core.dense_forward(f32, np.zeros((4, 6), np.float32), b, Z, A, "relu")
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.dense_forward(np.zeros((4, 3), np.float32).T, W, b, Z, A, "relu")
    ro = Z.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="'Z' is written in place and must be writeable"):
        _core.dense_forward(f32, W, b, ro, A, "relu")
    with pytest.raises(TypeError, match="'param' must be a float or None, got str"):
        _core.dense_forward(f32, W, b, Z, A, "elu", "1.0")
    with pytest.raises(ValueError, match="'param' must be finite"):
        _core.dense_forward(f32, W, b, Z, A, "elu", float("nan"))
    _core.dense_forward(f32, W, b, Z, A, "elu", np.float32(0.5))  # numpy scalars are numbers
    with pytest.raises(ValueError, match="unknown activation 'swish'; valid names: linear, relu"):
        _core.dense_forward(f32, W, b, Z, A, "swish")
    with pytest.raises(TypeError, match="'Z' must be a numpy.ndarray, got list"):
        _core.dense_forward(f32, W, b, Z.tolist(), A, "relu")
    with pytest.raises(ValueError, match="must be 2-dimensional"):
        _core.dense_forward(f32.ravel(), W, b, Z, A, "relu")
    with pytest.raises(ValueError, match="empty batches"):
        _core.dense_forward(np.zeros((0, 4), np.float32), W, b, Z[:0], A[:0], "relu")
    with pytest.raises(ValueError, match="'dW' shares memory with 'W'"):
        _core.dense_backward(A.copy(), f32, W, Z, A, "relu", None, W, b.copy())
    with pytest.raises(ValueError, match=r"inner dimensions disagree"):
        _core.gemm(f32, f32, np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"label y\[1\] = 5 is out of range \[0, 5\)"):
        _core.softmax_cross_entropy(Z, np.array([0, 5, 1]), np.empty_like(Z))
    with pytest.raises(ValueError, match=r"label y\[0\] = -1"):
        _core.softmax_cross_entropy(Z, np.array([-1, 0, 1]), np.empty_like(Z))
    with pytest.raises(TypeError, match="must have dtype int64"):
        _core.softmax_cross_entropy(Z, np.array([0, 1, 1], np.int32), np.empty_like(Z))
    with pytest.raises(ValueError, match=r"labels 'y' must be in \[0, 1\]"):
        _core.sigmoid_binary_cross_entropy(Z, np.full_like(Z, 2.0), np.empty_like(Z))
    with pytest.raises(ValueError, match="'lr' must be >= 0"):
        _core.sgd_step(W, W.copy(), None, lr=-1.0)
    with pytest.raises(TypeError, match="'momentum_buffer' must be a numpy.ndarray, got None"):
        _core.sgd_step(W, W.copy(), None, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="nesterov"):
        _core.sgd_step(W, W.copy(), W.copy(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="'step' is 1-based"):
        _core.adam_step(W, W.copy(), W.copy(), W.copy(), lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8,
                        weight_decay=0.0, step=0)
    with pytest.raises(ValueError, match=r"'beta2' must be in \[0, 1\)"):
        _core.adam_step(W, W.copy(), W.copy(), W.copy(), lr=0.1, beta1=0.9, beta2=1.0, eps=1e-8,
                        weight_decay=0.0, step=1)
    with pytest.raises(ValueError, match="'p' must be in"):
        _core.dropout_forward(A, A.copy(), p=1.0, seed=0, stream=0, step=0)
    with pytest.raises(ValueError, match="'seed' must be in"):
        _core.dropout_forward(A, A.copy(), p=0.5, seed=-1, stream=0, step=0)
    with pytest.raises(ValueError, match="'A' shares memory with 'mask'"):
        _core.dropout_forward(A, A, p=0.5, seed=0, stream=0, step=0)
    with pytest.raises(ValueError, match="'mask' must have shape"):
        _core.dropout_forward(A, np.zeros((5, 3), np.float32), p=0.5, seed=0, stream=0, step=0)


def test_outputs_untouched_when_validation_fails():
    X = np.ones((3, 4), np.float32)
    W = np.ones((4, 5), np.float32)
    Z = np.full((3, 5), 7.0, np.float32)
    A = np.full((3, 5), 7.0, np.float32)
    with pytest.raises(ValueError):
        _core.dense_forward(X, W, np.ones(4, np.float32), Z, A, "relu")
    assert np.all(Z == 7.0) and np.all(A == 7.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_give_non_finite_results(bad):
    X = rand((8, 6), np.float32, 1)
    X[2, 3] = bad
    W, b = rand((6, 4), np.float32, 2), np.zeros(4, np.float32)
    Z, A = np.empty((8, 4), np.float32), np.empty((8, 4), np.float32)
    for name in ACTIVATIONS:
        _core.dense_forward(X, W, b, Z, A, name)
        assert not _core.all_finite(Z)
        dA = np.ones_like(A)
        dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
        _core.dense_backward(dA, X, W, Z, A, name, None, dW, db, dX)
    P = np.empty_like(Z)
    loss = _core.softmax_cross_entropy(Z, np.zeros(8, np.int64), P, np.empty_like(Z))
    assert not np.isfinite(loss)
    assert not np.isfinite(_core.mean_squared_error(Z, np.zeros_like(Z)))
    assert not np.isfinite(_core.sum_of_squares(X))


# ---------------------------------------------------------------------------------------------
# Determinism across thread counts
# ---------------------------------------------------------------------------------------------

def _training_artifacts(dtype):
    X, W, b = rand((300, 70), dtype, 1), rand((70, 130), dtype, 2, 0.1), rand((130,), dtype, 3)
    Z, A = np.empty((300, 130), dtype), np.empty((300, 130), dtype)
    _core.dense_forward(X, W, b, Z, A, "tanh")
    P, dA = np.empty_like(A), np.empty_like(A)
    loss = _core.softmax_cross_entropy(A, np.arange(300, dtype=np.int64) % 130, P, dA)
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    _core.dense_backward(dA, X, W, Z, A, "tanh", None, dW, db, dX)
    big = rand((5, 70001), dtype, 4)
    C = np.empty((300, 300), dtype)
    _core.gemm(X, X, C, trans_b=True)
    stats = _core.layer_stats(Z, A, "tanh")
    return [Z, A, P, dA, dW, db, dX, C, np.array([loss, _core.sum_of_squares(big), stats["act_std"]])]


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_identical_for_any_thread_count(dtype, restore_threads):
    _core.set_num_threads(1)
    baseline = _training_artifacts(dtype)
    for threads in (2, 3, 4, 7):
        _core.set_num_threads(threads)
        for got, want in zip(_training_artifacts(dtype), baseline):
            np.testing.assert_array_equal(got, want, err_msg=f"{threads} threads")
