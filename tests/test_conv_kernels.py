"""The convolution and pooling kernels (conv.hpp) against the plain-numpy oracles of tests/reference.py,
their direct-loop twins, finite differences, PyTorch in float64 (where installed), and themselves on
1, 2 and 3 threads (bitwise)."""
from __future__ import annotations

import numpy as np
import pytest

import initlab
import reference as ref
from initlab import _core

ACTIVATIONS = [name for name, _, _ in _core.activations()]
PARAMS = {"leaky_relu": 0.1, "elu": 0.7, "softplus": 1.5}


def random_case(seed):
    """A random geometry (odd sizes, strides, dilations, uneven padding) whose kernel fits."""
    gen = np.random.default_rng(seed)
    while True:
        n, c, o = (int(v) for v in gen.integers(1, 5, 3))
        kh, kw = (int(v) for v in gen.integers(1, 5, 2))
        stride = tuple(int(v) for v in gen.integers(1, 4, 2))
        dilation = tuple(int(v) for v in gen.integers(1, 3, 2))
        padding = tuple(int(v) for v in gen.integers(0, 3, 4))
        h, w = (int(v) for v in gen.integers(1, 12, 2))
        if (dilation[0] * (kh - 1) + 1 <= h + padding[0] + padding[1]
                and dilation[1] * (kw - 1) + 1 <= w + padding[2] + padding[3]):
            return gen, (n, h, w, c), (kh, kw, c, o), stride, dilation, padding


def conv_arrays(gen, x_shape, w_shape, dtype):
    X = gen.standard_normal(x_shape).astype(dtype)
    W = (gen.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(dtype)
    b = (gen.standard_normal(w_shape[3]) * 0.3).astype(dtype)
    return X, W, b


def run_conv(X, W, b, name, param, stride, dilation, padding, R, *, reference=False, with_dx=True):
    """Forward then backward with dA = R; returns Z, A, dZ, dW, db, dX."""
    geometry = dict(stride=stride, dilation=dilation, padding=padding)
    out_shape = tuple(_core.conv2d_output_shape(X.shape, W.shape, **geometry))
    size = _core.conv2d_workspace_size(X.shape, W.shape, **geometry)
    ws = np.empty(size, X.dtype) if size else None
    Z, A = np.empty(out_shape, X.dtype), np.empty(out_shape, X.dtype)
    forward = _core.conv2d_forward_reference if reference else _core.conv2d_forward
    backward = _core.conv2d_backward_reference if reference else _core.conv2d_backward
    forward(X, W, b, Z, A, name, param, workspace=ws, **geometry)
    dA = np.ascontiguousarray(R, X.dtype).copy()
    dW, db = np.empty_like(W), np.empty_like(b)
    dX = np.empty_like(X) if with_dx else None
    backward(dA, X, W, Z, A, name, param, dW, db, dX, workspace=ws, **geometry)
    return Z, A, dA, dW, db, dX


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("seed", range(6))
def test_conv_against_numpy_every_activation(name, seed):
    gen, x_shape, w_shape, stride, dilation, padding = random_case(seed)
    X, W, b = conv_arrays(gen, x_shape, w_shape, np.float64)
    param = PARAMS.get(name)
    Z_ref, A_ref = ref.conv2d_forward(X, W, b, name, param, stride, dilation, padding)
    R = gen.standard_normal(Z_ref.shape)
    dZ_ref, dW_ref, db_ref, dX_ref = ref.conv2d_backward(R, X, W, Z_ref, name, param, stride, dilation, padding)
    for reference in (False, True):
        Z, A, dZ, dW, db, dX = run_conv(X, W, b, name, param, stride, dilation, padding, R, reference=reference)
        for got, want in ((Z, Z_ref), (A, A_ref), (dZ, dZ_ref), (dW, dW_ref), (db, db_ref), (dX, dX_ref)):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("seed", range(6, 12))
def test_conv_float32_fast_equals_twin_closely(seed):
    gen, x_shape, w_shape, stride, dilation, padding = random_case(seed)
    X, W, b = conv_arrays(gen, x_shape, w_shape, np.float32)
    out_shape = tuple(_core.conv2d_output_shape(X.shape, W.shape, stride=stride, dilation=dilation,
                                                padding=padding))
    R = gen.standard_normal(out_shape).astype(np.float32)
    fast = run_conv(X, W, b, "gelu", None, stride, dilation, padding, R)
    twin = run_conv(X, W, b, "gelu", None, stride, dilation, padding, R, reference=True)
    for got, want in zip(fast, twin):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_conv_without_dx_leaves_the_rest_unchanged():
    gen, x_shape, w_shape, stride, dilation, padding = random_case(3)
    X, W, b = conv_arrays(gen, x_shape, w_shape, np.float64)
    out_shape = tuple(_core.conv2d_output_shape(X.shape, W.shape, stride=stride, dilation=dilation,
                                                padding=padding))
    R = gen.standard_normal(out_shape)
    full = run_conv(X, W, b, "relu", None, stride, dilation, padding, R)
    no_dx = run_conv(X, W, b, "relu", None, stride, dilation, padding, R, with_dx=False)
    for got, want in zip(no_dx[:5], full[:5]):
        np.testing.assert_array_equal(got, want)


def test_pointwise_conv_needs_no_workspace_and_is_a_dense_layer():
    gen = np.random.default_rng(5)
    X, W, b = conv_arrays(gen, (3, 5, 4, 6), (1, 1, 6, 7), np.float64)
    geometry = dict(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0))
    assert _core.conv2d_workspace_size(X.shape, W.shape, **geometry) == 0
    R = gen.standard_normal((3, 5, 4, 7))
    Z, A, dZ, dW, db, dX = run_conv(X, W, b, "tanh", None, R=R, **geometry)
    Zd, Ad = ref.dense_forward(X.reshape(-1, 6), W.reshape(6, 7), b, "tanh")
    _, dWd, dbd, dXd = ref.dense_backward(R.reshape(-1, 7), X.reshape(-1, 6), W.reshape(6, 7), Zd, "tanh")
    np.testing.assert_allclose(A.reshape(-1, 7), Ad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dW.reshape(6, 7), dWd, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(db, dbd, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dX.reshape(-1, 6), dXd, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", ["tanh", "softplus", "elu", "gelu"])
@pytest.mark.parametrize("seed", [20, 21])
def test_conv_gradients_by_finite_differences(name, seed):
    """d/dθ sum(A * R) by central differences in float64 on a tiny geometry."""
    gen, x_shape, w_shape, stride, dilation, padding = random_case(seed)
    x_shape = (min(x_shape[0], 2),) + x_shape[1:]
    X, W, b = conv_arrays(gen, x_shape, w_shape, np.float64)
    param = PARAMS.get(name)
    geometry = dict(stride=stride, dilation=dilation, padding=padding)
    out_shape = tuple(_core.conv2d_output_shape(X.shape, W.shape, **geometry))
    R = gen.standard_normal(out_shape)

    def objective(X, W, b):
        Z, A = np.empty(out_shape), np.empty(out_shape)
        _core.conv2d_forward_reference(X, W, b, Z, A, name, param, **geometry)
        return float((A * R).sum())

    _, _, _, dW, db, dX = run_conv(X, W, b, name, param, stride, dilation, padding, R)
    eps = 1e-6
    for grad, arrays, k in ((dX, [X, W, b], 0), (dW, [X, W, b], 1), (db, [X, W, b], 2)):
        target = arrays[k]
        flat = target.reshape(-1)
        for e in gen.choice(flat.size, size=min(flat.size, 12), replace=False):
            saved = flat[e]
            flat[e] = saved + eps
            up = objective(*arrays)
            flat[e] = saved - eps
            down = objective(*arrays)
            flat[e] = saved
            np.testing.assert_allclose(grad.reshape(-1)[e], (up - down) / (2 * eps), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("threads", [2, 3])
def test_conv_and_pooling_bitwise_identical_on_any_thread_count(threads):
    """Large enough that im2col, col2im, the GEMMs and the pooling loops all run in parallel."""
    gen = np.random.default_rng(7)
    X, W, b = conv_arrays(gen, (32, 17, 15, 8), (3, 3, 8, 12), np.float32)  # P*K = 248832 > 2^17
    geometry = ((2, 1), (1, 2), (1, 2, 0, 1))
    out_shape = tuple(_core.conv2d_output_shape(X.shape, W.shape, stride=geometry[0], dilation=geometry[1],
                                                padding=geometry[2]))
    R = gen.standard_normal(out_shape).astype(np.float32)
    P = gen.standard_normal((64, 33, 31, 16)).astype(np.float32)

    def everything():
        out = list(run_conv(X, W, b, "relu", None, *geometry, R))
        for pool, stride in (((3, 2), (2, 2)), ((2, 2), (1, 1))):
            out_shape = (64, (33 - pool[0]) // stride[0] + 1, (31 - pool[1]) // stride[1] + 1, 16)
            Y, idx = np.empty(out_shape, np.float32), np.empty(out_shape, np.int64)
            _core.max_pool2d_forward(P, Y, idx, pool=pool, stride=stride)
            dX = np.empty_like(P)
            _core.max_pool2d_backward(Y, idx, dX, pool=pool, stride=stride)
            Ya = np.empty_like(Y)
            _core.avg_pool2d_forward(P, Ya, pool=pool, stride=stride)
            dXa = np.empty_like(P)
            _core.avg_pool2d_backward(Ya, dXa, pool=pool, stride=stride)
            out += [Y, idx, dX, Ya, dXa]
        G = np.empty((64, 16), np.float32)
        _core.global_avg_pool2d_forward(P, G)
        dG = np.empty_like(P)
        _core.global_avg_pool2d_backward(G, dG)
        return out + [G, dG]

    before = initlab.get_num_threads()
    try:
        initlab.set_num_threads(1)
        one = everything()
        initlab.set_num_threads(threads)
        many = everything()
    finally:
        initlab.set_num_threads(before)
    for a, b_ in zip(one, many):
        assert a.tobytes() == b_.tobytes()


# ---- pooling ----------------------------------------------------------------------------------

POOL_CASES = [((2, 2), (2, 2)), ((3, 3), (2, 2)), ((2, 3), (1, 2)), ((3, 2), (3, 1)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("pool,stride", POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_against_numpy(pool, stride, dtype):
    gen = np.random.default_rng(11)
    # Small integers: many ties, so the first-index rule is exercised.
    X = gen.integers(-3, 4, (3, 9, 8, 5)).astype(dtype)
    Y_ref, idx_ref = ref.max_pool2d(X, pool, stride)
    Y, idx = np.empty(Y_ref.shape, dtype), np.empty(Y_ref.shape, np.int64)
    _core.max_pool2d_forward(X, Y, idx, pool=pool, stride=stride)
    np.testing.assert_array_equal(Y, Y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    dY = gen.standard_normal(Y.shape).astype(dtype)
    dX = np.empty_like(X)
    _core.max_pool2d_backward(dY, idx, dX, pool=pool, stride=stride)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(dX, ref.max_pool2d_backward(dY, idx, X.shape), rtol=tol, atol=tol)

    Ya = np.empty(Y_ref.shape, dtype)
    _core.avg_pool2d_forward(X, Ya, pool=pool, stride=stride)
    np.testing.assert_allclose(Ya, ref.avg_pool2d(X, pool, stride), rtol=tol, atol=tol)
    dXa = np.empty_like(X)
    _core.avg_pool2d_backward(dY, dXa, pool=pool, stride=stride)
    np.testing.assert_allclose(dXa, ref.avg_pool2d_backward(dY, X.shape, pool, stride), rtol=tol, atol=tol)

    G = np.empty((3, 5), dtype)
    _core.global_avg_pool2d_forward(X, G)
    np.testing.assert_allclose(G, X.astype(np.float64).mean(axis=(1, 2)), rtol=tol, atol=tol)
    dG = np.empty_like(X)
    _core.global_avg_pool2d_backward(G, dG)
    np.testing.assert_allclose(dG, np.broadcast_to(G[:, None, None, :] / 72.0, X.shape), rtol=tol, atol=tol)


def test_max_pool_nan_wins_and_ties_take_the_first_index():
    X = np.zeros((1, 2, 2, 2))
    X[0, 1, 0, 0] = np.nan          # channel 0: the NaN wins over the zeros before it
    X[0, :, :, 1] = [[5, 5], [5, 5]]  # channel 1: all tied -> index 0
    Y, idx = np.empty((1, 1, 1, 2)), np.empty((1, 1, 1, 2), np.int64)
    _core.max_pool2d_forward(X, Y, idx, pool=(2, 2), stride=(2, 2))
    assert np.isnan(Y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 2
    assert Y[0, 0, 0, 1] == 5 and idx[0, 0, 0, 1] == 0


# ---- bad input -------------------------------------------------------------------------------

def test_conv_bad_input_names_the_argument():
    X = np.zeros((2, 5, 5, 3))
    W = np.zeros((3, 3, 3, 4))
    b = np.zeros(4)
    Z, A = np.zeros((2, 3, 3, 4)), np.zeros((2, 3, 3, 4))
    ws = np.zeros(_core.conv2d_workspace_size(X.shape, W.shape, stride=(1, 1), dilation=(1, 1),
                                              padding=(0, 0, 0, 0)))
    ok = dict(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0), workspace=ws)

    def call(**overrides):
        args = dict(X=X, W=W, b=b, Z=Z, A=A, activation="relu")
        args.update({k: v for k, v in overrides.items() if k in args})
        kwargs = dict(ok)
        kwargs.update({k: v for k, v in overrides.items() if k in kwargs})
        _core.conv2d_forward(args["X"], args["W"], args["b"], args["Z"], args["A"], args["activation"], **kwargs)

    call()  # the baseline is valid
    with pytest.raises(ValueError, match="input channels"):
        call(W=np.zeros((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="'X' must be 4-dimensional"):
        call(X=np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="more than the padded input"):
        call(W=np.zeros((6, 3, 3, 4)))
    with pytest.raises(ValueError, match="more than the padded input"):
        call(dilation=(3, 1))
    with pytest.raises(ValueError, match="'stride' entries"):
        call(stride=(0, 1))
    with pytest.raises(ValueError, match="'dilation' entries"):
        call(dilation=(1, -1))
    with pytest.raises(ValueError, match="'padding' entries"):
        call(padding=(0, -1, 0, 0))
    with pytest.raises(ValueError, match="'padding'"):
        call(padding=(0, 0))
    with pytest.raises(TypeError, match="'stride'"):
        call(stride="same")
    with pytest.raises(ValueError, match="'Z' must have shape"):
        call(Z=np.zeros((2, 5, 5, 4)))
    with pytest.raises(ValueError, match="'workspace' holds"):
        call(workspace=np.zeros(10))
    with pytest.raises(ValueError, match="'workspace' is required"):
        call(workspace=None)
    with pytest.raises(TypeError, match="'W' has dtype float32"):
        call(W=np.zeros((3, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        call(X=np.zeros((2, 5, 5, 6))[..., ::2])
    with pytest.raises(ValueError, match="'A' may be the same array as 'Z'"):
        call(A=Z)
    with pytest.raises(ValueError, match="'workspace' shares memory with 'X'"):
        shared = np.zeros(1000)
        call(X=shared[:150].reshape(X.shape), workspace=shared)
    with pytest.raises(ValueError, match="writeable"):
        ro = np.zeros_like(Z)
        ro.flags.writeable = False
        call(Z=ro)
    with pytest.raises(ValueError, match="unknown activation"):
        call(activation="swish")


def test_pool_bad_input_names_the_argument():
    X = np.zeros((2, 5, 5, 3))
    Y, idx = np.zeros((2, 2, 2, 3)), np.zeros((2, 2, 2, 3), np.int64)
    with pytest.raises(ValueError, match="pool window"):
        _core.max_pool2d_forward(X, Y, idx, pool=(6, 2), stride=(2, 2))
    with pytest.raises(TypeError, match="'argmax' must have dtype int64"):
        _core.max_pool2d_forward(X, Y, idx.astype(np.int32), pool=(2, 2), stride=(2, 2))
    with pytest.raises(ValueError, match="'Y' must have shape"):
        _core.avg_pool2d_forward(X, np.zeros((2, 3, 3, 3)), pool=(2, 2), stride=(2, 2))
    bad = np.full((2, 2, 2, 3), 25, np.int64)
    with pytest.raises(ValueError, match="'argmax' holds 25"):
        _core.max_pool2d_backward(Y, bad, np.zeros_like(X), pool=(2, 2), stride=(2, 2))
    with pytest.raises(ValueError, match="'Y' must have shape"):
        _core.global_avg_pool2d_forward(X, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="'dX' shares memory with 'dY'"):
        buf = np.zeros(2 * 5 * 5 * 3)
        _core.global_avg_pool2d_backward(buf[:6].reshape(2, 3), buf.reshape(2, 5, 5, 3))


# ---- PyTorch, float64 -----------------------------------------------------------------------

def test_same_padding_formula():
    # TensorFlow's documented examples: out = ceil(in / stride), the odd extra at the end.
    assert ref.same_padding(5, 3, 1) == (1, 1)
    assert ref.same_padding(6, 4, 1) == (1, 2)
    assert ref.same_padding(7, 3, 2) == (1, 1)
    assert ref.same_padding(8, 3, 2) == (0, 1)
    for size in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                top, bottom = ref.same_padding(size, k, s)
                out = _core.conv2d_output_shape((1, size, 1, 1), (k, 1, 1, 1), stride=(s, 1), dilation=(1, 1),
                                                padding=(top, bottom, 0, 0))[1]
                assert out == -(-size // s)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("seed", range(30, 34))
def test_conv_against_torch(name, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    gen, x_shape, w_shape, stride, dilation, padding = random_case(seed)
    X, W, b = conv_arrays(gen, x_shape, w_shape, np.float64)
    param = PARAMS.get(name)
    tX, tW, tb = (torch.tensor(v, requires_grad=True) for v in (X, W, b))
    top, bottom, left, right = padding
    x = F.pad(tX.permute(0, 3, 1, 2), (left, right, top, bottom))
    tZ = F.conv2d(x, tW.permute(3, 2, 0, 1), tb, stride, 0, dilation)
    tA = ref.torch_activation(name, tZ, param).permute(0, 2, 3, 1)
    R = gen.standard_normal(tuple(tA.shape))
    (tA * torch.tensor(R)).sum().backward()
    _, A, _, dW, db, dX = run_conv(X, W, b, name, param, stride, dilation, padding, R)
    np.testing.assert_allclose(A, tA.detach().numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(dW, tW.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(dX, tX.grad.numpy(), rtol=1e-10, atol=1e-11)


def test_conv_symmetric_padding_is_torch_padding_argument():
    """An int padding p is p zeros on every side, as torch.nn.Conv2d(padding=p)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    gen = np.random.default_rng(40)
    X, W, b = conv_arrays(gen, (2, 9, 7, 3), (3, 5, 3, 4), np.float64)
    out = F.conv2d(torch.tensor(X).permute(0, 3, 1, 2), torch.tensor(W).permute(3, 2, 0, 1), torch.tensor(b),
                   (2, 1), (2, 1), (1, 2)).permute(0, 2, 3, 1).numpy()
    R = np.zeros(out.shape)
    Z = run_conv(X, W, b, "linear", None, (2, 1), (1, 2), (2, 2, 1, 1), R)[0]
    np.testing.assert_allclose(Z, out, rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("size,k,d", [(8, 3, 1), (7, 4, 1), (9, 3, 2), (6, 2, 1), (5, 5, 1)])
def test_same_padding_matches_torch_same_at_stride_one(size, k, d):
    """At stride 1 torch's padding='same' puts the odd extra at the end too, as TensorFlow."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    gen = np.random.default_rng(size * 100 + k)
    X, W, b = conv_arrays(gen, (2, size, size + 1, 2), (k, k, 2, 3), np.float64)
    want = F.conv2d(torch.tensor(X).permute(0, 3, 1, 2), torch.tensor(W).permute(3, 2, 0, 1), torch.tensor(b),
                    1, "same", d).permute(0, 2, 3, 1).numpy()
    padding = ref.same_padding(size, k, 1, d) + ref.same_padding(size + 1, k, 1, d)
    Z = run_conv(X, W, b, "linear", None, (1, 1), (d, d), padding, np.zeros(want.shape))[0]
    np.testing.assert_allclose(Z, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool,stride", POOL_CASES)
def test_pooling_against_torch(pool, stride):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    gen = np.random.default_rng(50)
    X = gen.integers(-3, 4, (3, 10, 9, 4)).astype(np.float64)  # ties on purpose
    tX = torch.tensor(X, requires_grad=True)
    tY, tidx = F.max_pool2d(tX.permute(0, 3, 1, 2), pool, stride, return_indices=True)
    R = gen.standard_normal(tuple(tY.permute(0, 2, 3, 1).shape))
    (tY.permute(0, 2, 3, 1) * torch.tensor(R)).sum().backward()
    Y, idx = np.empty(R.shape), np.empty(R.shape, np.int64)
    _core.max_pool2d_forward(X, Y, idx, pool=pool, stride=stride)
    np.testing.assert_array_equal(Y, tY.permute(0, 2, 3, 1).detach().numpy())
    np.testing.assert_array_equal(idx, tidx.permute(0, 2, 3, 1).numpy())
    dX = np.empty_like(X)
    _core.max_pool2d_backward(R, idx, dX, pool=pool, stride=stride)
    np.testing.assert_allclose(dX, tX.grad.numpy(), rtol=1e-13, atol=1e-13)

    tX.grad = None
    tY = F.avg_pool2d(tX.permute(0, 3, 1, 2), pool, stride).permute(0, 2, 3, 1)
    (tY * torch.tensor(R)).sum().backward()
    Y = np.empty(R.shape)
    _core.avg_pool2d_forward(X, Y, pool=pool, stride=stride)
    np.testing.assert_allclose(Y, tY.detach().numpy(), rtol=1e-13, atol=1e-13)
    _core.avg_pool2d_backward(R, dX, pool=pool, stride=stride)
    np.testing.assert_allclose(dX, tX.grad.numpy(), rtol=1e-13, atol=1e-13)

    tX.grad = None
    tG = F.adaptive_avg_pool2d(tX.permute(0, 3, 1, 2), 1).flatten(1)
    RG = gen.standard_normal(tuple(tG.shape))
    (tG * torch.tensor(RG)).sum().backward()
    G = np.empty(RG.shape)
    _core.global_avg_pool2d_forward(X, G)
    np.testing.assert_allclose(G, tG.detach().numpy(), rtol=1e-13, atol=1e-13)
    _core.global_avg_pool2d_backward(RG, dX)
    np.testing.assert_allclose(dX, tX.grad.numpy(), rtol=1e-13, atol=1e-13)


def test_conv_benchmark_rows():
    from initlab.bench import conv as conv_bench

    rows = conv_bench.run(threads=(1,), quick=True, cases=["digits-conv2"])
    assert len(rows) == 1 and rows[0]["layer"] == "digits-conv2"
    assert rows[0]["initlab_ms"] > 0 and rows[0]["gemm_peak_gflops"] > 0
    assert "| digits-conv2 | 32x4x4x16 | 3x3x16x32 | 1 |" in conv_bench.format_table(rows)


def test_conv_breakdown_benchmark_rows():
    from initlab.bench import conv as conv_bench
    rows = conv_bench.run_breakdown(threads=(1,), quick=True)
    assert [r["stage"] for r in rows][:2] == ["conv1 forward", "conv1 backward (dW, db)"] and len(rows) == 9
    assert all(r["initlab_ms"] > 0 and r["threads"] == 1 for r in rows)
    assert "| conv2 backward (dW, db, dX) | 1 |" in conv_bench.format_breakdown_table(rows)


def test_conv_epoch_benchmark_rows():
    from initlab.bench import conv as conv_bench

    rows = conv_bench.run_epochs(threads=(1,), quick=True, nets=["digits-cnn"])
    assert len(rows) == 1 and rows[0]["samples"] == 256 and rows[0]["initlab_s"] > 0
    assert "| digits-cnn | 256 | 1 |" in conv_bench.format_epoch_table(rows)


LARGE_CASES = {  # dW products past 2^23 multiply-adds: the backward lowers X transposed, (K, P)
    100: ((4, 14, 14, 32), (5, 5, 32, 64), (1, 1), (1, 1), (2, 2, 2, 2)),   # LeNet's conv2, 4 images
    101: ((14, 28, 28, 1), (5, 5, 1, 32), (1, 1), (1, 1), (2, 2, 2, 2)),    # LeNet's conv1: C = 1
    102: ((40, 13, 11, 8), (3, 4, 8, 40), (2, 1), (1, 2), (0, 1, 3, 2)),    # strides, dilation, padding
    103: ((128, 4, 4, 16), (3, 3, 16, 32), (1, 1), (1, 1), (1, 1, 1, 1)),  # the digits CNN's conv2: OW < a vector
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", list(range(40, 52)) + list(LARGE_CASES))
def test_backward_from_kept_columns_is_bitwise_the_relowering_backward(seed, dtype):
    """conv2d_backward(columns=...) (the forward's im2col kept) gives the very bits of the backward
    that lowers X again, with dX and without, on 1 and 2 threads; the columns are only read."""
    if seed in LARGE_CASES:
        gen = np.random.default_rng(seed)
        x_shape, w_shape, stride, dilation, padding = LARGE_CASES[seed]
    else:
        gen, x_shape, w_shape, stride, dilation, padding = random_case(seed)
    X, W, b = conv_arrays(gen, x_shape, w_shape, dtype)
    geometry = dict(stride=stride, dilation=dilation, padding=padding)
    shape = tuple(_core.conv2d_output_shape(x_shape, w_shape, **geometry))
    size = _core.conv2d_workspace_size(x_shape, w_shape, **geometry)
    R = gen.standard_normal(shape).astype(dtype)
    before = initlab.get_num_threads()
    by_threads = {}
    try:
        for threads in (1, 2):
            initlab.set_num_threads(threads)
            for with_dx in (True, False):
                outs = []
                for kept in (False, True):
                    Z, A = np.empty(shape, dtype), np.empty(shape, dtype)
                    cols = np.full(max(size, 1), np.nan, dtype)  # the forward lowers X into it
                    _core.conv2d_forward(X, W, b, Z, A, "elu", 0.7, workspace=cols if size else None, **geometry)
                    if size:  # the forward's columns, or (few taps: it reads X in place) numpy's im2col
                        lowered = lowered_columns(X, w_shape, stride, dilation, padding).reshape(-1)
                        if _core.conv2d_forward_lowers(x_shape, w_shape, **geometry):
                            assert cols.tobytes() == lowered.tobytes()
                        else:
                            assert np.isnan(cols).all()  # the workspace is left alone
                            cols[:] = lowered
                    kept_cols = cols.copy()
                    dA, dW, db = R.copy(), np.full_like(W, np.nan), np.full_like(b, np.nan)
                    dX = np.full_like(X, np.nan) if with_dx else None
                    ws = np.full(max(size, 1), np.nan, dtype) if size else None
                    columns = cols[:size].reshape(-1, int(np.prod(w_shape[:3]))) if kept and size else None
                    _core.conv2d_backward(dA, X, W, Z, A, "elu", 0.7, dW, db, dX,
                                          workspace=None if kept and not with_dx else ws, columns=columns,
                                          **geometry)
                    if kept:
                        assert cols.tobytes() == kept_cols.tobytes()  # read only
                    outs.append([dA, dW, db] + ([dX] if with_dx else []))
                for got, want in zip(outs[1], outs[0]):
                    assert got.tobytes() == want.tobytes()
                first = by_threads.setdefault(with_dx, outs[0])  # and the same bits on 1 and 2 threads
                for got, want in zip(outs[0], first):
                    assert got.tobytes() == want.tobytes()
    finally:
        initlab.set_num_threads(before)


def test_kept_columns_bad_input_names_the_argument():
    X = np.ones((2, 5, 5, 3), np.float32)
    W = np.ones((3, 3, 3, 4), np.float32)
    geometry = dict(stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0))
    Z, A = np.empty((2, 3, 3, 4), np.float32), np.empty((2, 3, 3, 4), np.float32)
    dW, db = np.empty_like(W), np.empty(4, np.float32)
    with pytest.raises(ValueError, match="columns"):
        _core.conv2d_backward(Z.copy(), X, W, Z, A, "relu", None, dW, db, columns=np.zeros((18, 26), np.float32),
                              **geometry)
    with pytest.raises(TypeError, match="columns"):
        _core.conv2d_backward(Z.copy(), X, W, Z, A, "relu", None, dW, db, columns=np.zeros((18, 27), np.float64),
                              **geometry)
    with pytest.raises(ValueError, match="workspace"):  # dX still needs the workspace for dcols
        _core.conv2d_backward(Z.copy(), X, W, Z, A, "relu", None, dW, db, np.empty_like(X),
                              columns=np.zeros((18, 27), np.float32), **geometry)


# ---- the fast paths of the convolution ---------------------------------------------------------

def lowered_columns(X, w_shape, stride, dilation, padding):
    """im2col in numpy: (P, K) with column (i, j, c), zeros outside the image."""
    N, H, Wd, C = X.shape
    KH, KW = w_shape[:2]
    (sh, sw), (dh, dw), (top, bottom, left, right) = stride, dilation, padding
    Xp = np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)))
    OH = (H + top + bottom - dh * (KH - 1) - 1) // sh + 1
    OW = (Wd + left + right - dw * (KW - 1) - 1) // sw + 1
    taps = [Xp[:, i * dh:i * dh + sh * (OH - 1) + 1:sh, j * dw:j * dw + sw * (OW - 1) + 1:sw, :]
            for i in range(KH) for j in range(KW)]
    return np.ascontiguousarray(np.stack(taps, axis=3).reshape(N * OH * OW, KH * KW * C))


DIRECT_CASES = [  # K = KH*KW*C <= 32: the forward runs the direct kernel straight on X
    ((3, 28, 28, 1), (5, 5, 1, 32), (1, 1), (1, 1), (2, 2, 2, 2)),   # LeNet's conv1
    ((4, 8, 8, 1), (3, 3, 1, 16), (1, 1), (1, 1), (1, 1, 1, 1)),     # the digits CNN's conv1
    ((2, 9, 11, 3), (3, 3, 3, 70), (2, 1), (1, 2), (0, 2, 1, 0)),    # RGB, 4 vectors + a tail of 6
    ((2, 7, 6, 2), (2, 4, 2, 5), (1, 3), (2, 1), (1, 1, 2, 2)),      # fewer channels than a vector
    ((1, 5, 5, 32), (1, 1, 32, 17), (1, 1), (1, 1), (1, 0, 0, 1)),   # 1x1 with padding: not pointwise
    ((3, 6, 6, 1), (1, 1, 1, 48), (2, 2), (1, 1), (0, 0, 0, 0)),     # strided 1x1, 3 vectors
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(DIRECT_CASES)))
@pytest.mark.parametrize("name", ["relu", "tanh", "linear"])
def test_direct_forward_is_bitwise_the_lowered_gemm_and_close_to_the_twin(case, dtype, name):
    """For few taps conv2d_forward skips the lowering: Z and A are still the very bits of
    dense_forward on the im2col columns (0, one multiply-add per tap in order, the taps outside the
    image as 0 * w, then + b), and within rounding of the direct-loop twin (which skips those taps)."""
    x_shape, w_shape, stride, dilation, padding = DIRECT_CASES[case]
    gen = np.random.default_rng(300 + case)
    X, W, b = conv_arrays(gen, x_shape, w_shape, dtype)
    geometry = dict(stride=stride, dilation=dilation, padding=padding)
    shape = tuple(_core.conv2d_output_shape(x_shape, w_shape, **geometry))
    size = _core.conv2d_workspace_size(x_shape, w_shape, **geometry)
    Z, A = np.empty(shape, dtype), np.empty(shape, dtype)
    _core.conv2d_forward(X, W, b, Z, A, name, workspace=np.empty(max(size, 1), dtype) if size else None, **geometry)
    cols = lowered_columns(X, w_shape, stride, dilation, padding)
    Zl, Al = np.empty((cols.shape[0], w_shape[3]), dtype), np.empty((cols.shape[0], w_shape[3]), dtype)
    _core.dense_forward(cols, W.reshape(-1, w_shape[3]), b, Zl, Al, name)
    assert Z.reshape(Zl.shape).tobytes() == Zl.tobytes()
    assert A.reshape(Al.shape).tobytes() == Al.tobytes()
    Zt, At = np.empty(shape, dtype), np.empty(shape, dtype)
    _core.conv2d_forward_reference(X, W, b, Zt, At, name, **geometry)
    tol = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(Z, Zt, rtol=tol, atol=tol)
    np.testing.assert_allclose(A, At, rtol=tol, atol=tol)
    Z64, A64 = ref.conv2d_forward(X, W, b, name, None, stride, dilation, padding)
    np.testing.assert_allclose(A, A64, rtol=10 * tol, atol=10 * tol)


def test_direct_forward_propagates_nan_and_inf_as_the_lowered_path():
    """An Inf weight meets the zero padding as 0 * Inf = NaN in the lowered GEMM; the direct kernel
    multiplies the same zeros, so border outputs are NaN there too (the twin skips padding taps)."""
    gen = np.random.default_rng(9)
    X, W, b = conv_arrays(gen, (2, 6, 6, 1), (3, 3, 1, 16), np.float32)
    W[0, 0, 0, 3] = np.inf
    X[1, 2, 3, 0] = np.nan
    geometry = dict(stride=(1, 1), dilation=(1, 1), padding=(1, 1, 1, 1))
    Z, A = np.empty((2, 6, 6, 16), np.float32), np.empty((2, 6, 6, 16), np.float32)
    _core.conv2d_forward(X, W, b, Z, A, "relu", **geometry, workspace=np.empty(2 * 36 * 9, np.float32))
    cols = lowered_columns(X, W.shape, (1, 1), (1, 1), (1, 1, 1, 1))
    Zl, Al = np.empty((72, 16), np.float32), np.empty((72, 16), np.float32)
    _core.dense_forward(cols, W.reshape(9, 16), b, Zl, Al, "relu")
    assert Z.reshape(72, 16).tobytes() == Zl.tobytes() and A.reshape(72, 16).tobytes() == Al.tobytes()
    assert np.isnan(Z[0, 0, 0, 3]) and np.isnan(Z[1, 2, 3, 0]) and np.isinf(Z[0, 3, 3, 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool,stride", POOL_CASES + [((3, 3), (1, 1)), ((2, 2), (3, 3))])
def test_max_pool_backward_gather_is_bitwise_the_scatter_twin(pool, stride, dtype):
    """The fast backward gathers per input pixel; the twin scatters per output: the same sums in the
    same order (overlapping windows, ties, NaN, -0 in dY), on 1 and 2 threads."""
    gen = np.random.default_rng(21)
    X = gen.integers(-2, 3, (5, 11, 10, 70)).astype(dtype)  # ties; 70 channels: a block of 64 and 6
    X[0, 3, 4, 5] = np.nan
    out_shape = (5, (11 - pool[0]) // stride[0] + 1, (10 - pool[1]) // stride[1] + 1, 70)
    Y, idx = np.empty(out_shape, dtype), np.empty(out_shape, np.int64)
    _core.max_pool2d_forward(X, Y, idx, pool=pool, stride=stride)
    dY = gen.standard_normal(out_shape).astype(dtype)
    dY[1, 0, 0, :3] = -0.0
    want = np.full_like(X, np.nan)
    _core.max_pool2d_backward_reference(dY, idx, want, pool=pool, stride=stride)
    np.testing.assert_allclose(want, ref.max_pool2d_backward(dY, idx, X.shape), rtol=1e-6, atol=1e-6)
    before = initlab.get_num_threads()
    try:
        for threads in (1, 2):
            initlab.set_num_threads(threads)
            got = np.full_like(X, np.nan)
            _core.max_pool2d_backward(dY, idx, got, pool=pool, stride=stride)
            assert got.tobytes() == want.tobytes()
    finally:
        initlab.set_num_threads(before)


def test_max_pool_backward_rejects_an_argmax_outside_its_window():
    dY, dX = np.zeros((1, 2, 2, 1)), np.zeros((1, 4, 4, 1))
    idx = np.array([0, 2, 8, 10], np.int64).reshape(1, 2, 2, 1)  # each window's top-left pixel: fine
    _core.max_pool2d_backward(dY, idx, dX, pool=(2, 2), stride=(2, 2))
    idx[0, 1, 1, 0] = 5  # pixel (1, 1) is in window (0, 0), not (1, 1)
    for fn in (_core.max_pool2d_backward, _core.max_pool2d_backward_reference):
        with pytest.raises(ValueError, match=r"'argmax' holds 5 at flat position 3, pixel \(1, 1\), outside its window"):
            fn(dY, idx, dX, pool=(2, 2), stride=(2, 2))
