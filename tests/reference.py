"""Plain-numpy oracles for every native kernel: the RNG re-derivation, the initializers, GEMM,
dense forward/backward, losses and optimizers. Written for clarity, not speed: each function is
the textbook formula, so a disagreement with the C++ core points at the core.
"""
from __future__ import annotations

import numpy as np

# =====================================================================================
# RNG and initializers (Philox words -> uniforms -> normals -> schemes)
# =====================================================================================


# =====================================================================================
# Kernels: GEMM, activations, dense layers, losses, optimizers, statistics
# =====================================================================================

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: name -> default parameter (PyTorch's), for every activation the core knows.
ACTIVATION_DEFAULTS = {
    "linear": None, "relu": None, "leaky_relu": 0.01, "elu": 1.0, "selu": None,
    "gelu": None, "sigmoid": None, "tanh": None, "softplus": 1.0,
}


def _erf(x):
    from scipy.special import erf
    return erf(x)


def gemm(A, B, C=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """C := beta*C + alpha*op(A)@op(B), computed in float64; beta == 0 ignores C entirely."""
    opA = np.asarray(A, np.float64).T if trans_a else np.asarray(A, np.float64)
    opB = np.asarray(B, np.float64).T if trans_b else np.asarray(B, np.float64)
    out = alpha * (opA @ opB)
    if beta != 0.0:
        out = out + beta * np.asarray(C, np.float64)
    return out


def activation(name, z, param=None):
    """act(z) as PyTorch defines it (param None: the default)."""
    p = ACTIVATION_DEFAULTS[name] if param is None else param
    z = np.asarray(z)
    if name == "linear":
        return z.copy()
    if name == "relu":
        return np.where(z < 0, 0, z).astype(z.dtype)
    if name == "leaky_relu":
        return np.where(z > 0, z, p * z).astype(z.dtype)
    if name == "elu":
        return np.where(z > 0, z, p * np.expm1(np.minimum(z, 0))).astype(z.dtype)
    if name == "selu":
        return (SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0)))).astype(z.dtype)
    if name == "gelu":
        return (0.5 * z * (1 + _erf(z / np.sqrt(2.0)))).astype(z.dtype)
    if name == "sigmoid":
        return (1 / (1 + np.exp(-z))).astype(z.dtype)
    if name == "tanh":
        return np.tanh(z)
    if name == "softplus":
        bz = p * z
        return np.where(bz > 20, z, np.log1p(np.exp(np.minimum(bz, 20))) / p).astype(z.dtype)
    raise ValueError(f"unknown activation {name!r}")


def activation_derivative(name, z, param=None):
    """act'(z), term by term as dense.hpp writes it."""
    p = ACTIVATION_DEFAULTS[name] if param is None else param
    z = np.asarray(z, np.float64)
    if name == "linear":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, p)
    if name == "elu":
        return np.where(z > 0, 1.0, p * np.exp(np.minimum(z, 0)))
    if name == "selu":
        return SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(z, 0)))
    if name == "gelu":
        return 0.5 * (1 + _erf(z / np.sqrt(2.0))) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "softplus":
        bz = p * z
        return np.where(bz > 20, 1.0, 1 / (1 + np.exp(-np.minimum(bz, 20))))
    raise ValueError(f"unknown activation {name!r}")


def dense_forward(X, W, b, name, param=None):
    """(Z, A) with Z = X@W + b in float64 and A = act(Z)."""
    Z = np.asarray(X, np.float64) @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
    return Z, activation(name, Z, param)


def dense_backward(dA, X, W, Z, name, param=None):
    """(dZ, dW, db, dX) in float64: dZ = dA*act'(Z), dW = X^T dZ, db = sum_rows dZ, dX = dZ W^T."""
    dZ = np.asarray(dA, np.float64) * activation_derivative(name, Z, param)
    X64, W64 = np.asarray(X, np.float64), np.asarray(W, np.float64)
    return dZ, X64.T @ dZ, dZ.sum(axis=0), dZ @ W64.T


def softmax_cross_entropy(Z, y):
    """(loss, P, dZ): y int labels (N,) or float targets (N, K); log-sum-exp in float64."""
    Z = np.asarray(Z, np.float64)
    n, k = Z.shape
    Y = np.eye(k)[y] if np.asarray(y).ndim == 1 else np.asarray(y, np.float64)
    m = Z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True))
    P = np.exp(Z - lse)
    loss = float((Y * (lse - Z)).sum() / n)
    return loss, P, (P - Y) / n


def sigmoid_binary_cross_entropy(Z, y):
    """(loss, P, dZ) in the logits form max(z,0) - z*y + log1p(exp(-|z|)), mean over all elements."""
    Z, y = np.asarray(Z, np.float64), np.asarray(y, np.float64)
    loss = float((np.maximum(Z, 0) - Z * y + np.log1p(np.exp(-np.abs(Z)))).mean())
    P = 1 / (1 + np.exp(-Z))
    return loss, P, (P - y) / Z.size


def mean_squared_error(Z, y):
    """(loss, dZ): mean of (z - y)^2 over all elements and its gradient."""
    d = np.asarray(Z, np.float64) - np.asarray(y, np.float64)
    return float((d * d).mean()), 2 * d / d.size


def sgd_step(param, grad, buf, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
             first_step=False):
    """One torch.optim.SGD step; returns (param, buf) as new float64 arrays."""
    g = np.asarray(grad, np.float64) + weight_decay * np.asarray(param, np.float64)
    if momentum != 0:
        buf = g.copy() if first_step else momentum * np.asarray(buf, np.float64) + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return np.asarray(param, np.float64) - lr * g, buf


def adam_step(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled=False):
    """One torch.optim.Adam (AdamW when decoupled) step; returns (param, m, v) in float64."""
    w = np.asarray(param, np.float64)
    g = np.asarray(grad, np.float64)
    if weight_decay:
        if decoupled:
            w = w * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * w
    m = beta1 * np.asarray(m, np.float64) + (1 - beta1) * g
    v = beta2 * np.asarray(v, np.float64) + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** step)
    denom = np.sqrt(v) / np.sqrt(1 - beta2 ** step) + eps
    return w - lr * m_hat / denom, m, v


def rmsprop_step(param, grad, v, buf, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
    """One torch.optim.RMSprop (centered=False) step; returns (param, v, buf) in float64."""
    w = np.asarray(param, np.float64)
    g = np.asarray(grad, np.float64) + weight_decay * w
    v = alpha * np.asarray(v, np.float64) + (1 - alpha) * g * g
    avg = np.sqrt(v) + eps
    if momentum > 0:
        buf = momentum * np.asarray(buf, np.float64) + g / avg
        return w - lr * buf, v, buf
    return w - lr * g / avg, v, buf


def dropout_mask(shape, p, seed, stream, step, philox=None):
    """The dropout mask of optim.hpp re-derived: philox(counter, key) -> 4 words per block,
    counter = (e // 4, step, stream, 0x44524F50), key = (seed lo, seed hi); keep iff
    (word + 0.5) / 2**32 >= p. `philox` is a callable (counter, key) -> 4 ints."""
    philox = philox or _philox4x32_10
    count = int(np.prod(shape))
    words = []
    for block in range((count + 3) // 4):
        words.extend(philox((block, step, stream, 0x44524F50), (seed & 0xFFFFFFFF, seed >> 32)))
    u = (np.asarray(words[:count], np.float64) + 0.5) / 2.0 ** 32
    return np.where(u >= p, 1.0 / (1.0 - p), 0.0).reshape(shape)


def _philox4x32_10(counter, key):
    """Philox4x32-10 in plain Python integers (Salmon et al. 2011), for the dropout re-derivation
    (private to the kernel section so that it does not depend on the RNG section)."""
    c = [int(w) & 0xFFFFFFFF for w in counter]
    k = [int(w) & 0xFFFFFFFF for w in key]
    for r in range(10):
        if r:
            k = [(k[0] + 0x9E3779B9) & 0xFFFFFFFF, (k[1] + 0xBB67AE85) & 0xFFFFFFFF]
        p0 = 0xD2511F53 * c[0]
        p1 = 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & 0xFFFFFFFF, p1 & 0xFFFFFFFF,
             ((p0 >> 32) ^ c[3] ^ k[1]) & 0xFFFFFFFF, p0 & 0xFFFFFFFF]
    return c


def layer_stats(Z, A, name):
    """The per-layer statistics of stats.hpp in float64 (population std)."""
    Z, A = np.asarray(Z, np.float64), np.asarray(A, np.float64)
    saturated = 0.0
    if name == "tanh":
        saturated = float((np.abs(A) > 0.99).mean())
    elif name == "sigmoid":
        saturated = float(((A < 0.01) | (A > 0.99)).mean())
    dead = 0.0
    if name in ("relu", "leaky_relu", "elu", "selu"):
        dead = float((Z <= 0).all(axis=0).mean())
    return {"pre_mean": Z.mean(), "pre_std": Z.std(), "act_mean": A.mean(), "act_std": A.std(),
            "saturated": saturated, "dead": dead}
