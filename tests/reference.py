"""Plain-numpy oracles for every native kernel: the RNG re-derivation, the initializers, GEMM,
dense forward/backward, losses and optimizers. Written for clarity, not speed: each function is
the textbook formula, so a disagreement with the C++ core points at the core.
"""
from __future__ import annotations

import numpy as np

# =====================================================================================
# RNG and initializers (Philox words -> uniforms -> normals -> schemes)
# =====================================================================================
# Re-derivation of initlab.random's documented mapping in plain numpy, operation by operation
# (numpy ufuncs never fuse a multiply and an add, like the core built with -ffp-contract=off).

_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_numpy(counter, key, rounds=10):
    """Philox4x32 on arrays of counter words (4 uint64 arrays holding 32-bit values) and a key."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + np.uint64(0x9E3779B9)) & _MASK32
            k1 = (k1 + np.uint64(0xBB67AE85)) & _MASK32
        p0 = m0 * c0  # < 2**64: exact in uint64
        p1 = m1 * c2
        c0, c1, c2, c3 = (p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & _MASK32, (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & _MASK32
    return c0, c1, c2, c3


def philox_words(seed, stream, n_words):
    """Words 0 .. n_words-1 of (seed, stream): word j = lane j % 4 of block j // 4."""
    n_blocks = (n_words + 3) // 4
    block = np.arange(n_blocks, dtype=np.uint64)
    counter = (block & _MASK32, block >> np.uint64(32),
               np.full(n_blocks, stream & 0xFFFFFFFF, np.uint64),
               np.full(n_blocks, stream >> 32, np.uint64))
    lanes = philox4x32_numpy(counter, (seed & 0xFFFFFFFF, seed >> 32))
    return np.stack(lanes, axis=1).reshape(-1)[:n_words].astype(np.uint32)


def element_k(words, dtype):
    """The k bits of every element: 23 (float32, one word each) or 52 (float64, two words each)."""
    if np.dtype(dtype) == np.float32:
        return words.astype(np.uint64) >> np.uint64(9), 23
    w = words.astype(np.uint64)
    whole = w[0::2] | (w[1::2] << np.uint64(32))
    return whole >> np.uint64(12), 52


def uniform_from_k(k, bits, dtype):
    """u = (2k + 1) 2^-(bits+1): exact in dtype."""
    return (2 * k + 1).astype(dtype) * dtype(2.0 ** -(bits + 1))


def log_approx_numpy(x):
    """initlab's log (Cephes logf for float32, fdlibm's log for float64), op for op."""
    if x.dtype == np.float32:
        f32 = np.float32
        bits = x.view(np.uint32)
        offset = bits - np.uint32(0x3F3504F3)
        e = offset.view(np.int32) >> 23
        m = (bits - (offset & np.uint32(0xFF800000))).view(np.float32)
        f = m - f32(1)
        z = f * f
        y = f32(7.0376836292e-2)
        for c in (-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
                  -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1):
            y = y * f + f32(c)
        y = (y * f) * z
        ef = e.astype(np.float32)
        y = y + f32(-2.12194440e-4) * ef
        y = y + f32(-0.5) * z
        r = f + y
        return r + f32(0.693359375) * ef
    bits = x.view(np.uint64)
    offset = (bits >> np.uint64(32)).astype(np.uint32) - np.uint32(0x3FE6A09E)
    e = offset.view(np.int32) >> 20
    m = (bits - ((offset & np.uint32(0xFFF00000)).astype(np.uint64) << np.uint64(32))).view(np.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01))
    t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                                              + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
    big_r = t2 + t1
    hfsq = (0.5 * f) * f
    dk = e.astype(np.float64)
    return dk * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + big_r) + dk * 1.90821492927058770002e-10)) - f)


def sin_cos_approx_numpy(x):
    """initlab's sin and cos on [-pi/4, pi/4] (Cephes), op for op."""
    t = x.dtype.type
    z = x * x
    if x.dtype == np.float32:
        s = ((((t(-1.9515295891e-4) * z) + t(8.3321608736e-3)) * z - t(1.6666654611e-1)) * z) * x + x
        y = ((((t(2.443315711809948e-5) * z) - t(1.388731625493765e-3)) * z + t(4.166664568298827e-2)) * z) * z
        return s, (y - t(0.5) * z) + t(1)
    p = t(1.58962301576546568060e-10)
    for c in (-2.50507477628578072866e-8, 2.75573136213857245213e-6, -1.98412698295895385996e-4,
              8.33333333332211858878e-3, -1.66666666666666307295e-1):
        p = p * z + c
    s = x + (x * z) * p
    p = t(-1.13585365213876817300e-11)
    for c in (2.08757008419747316778e-9, -2.75573141792967388112e-7, 2.48015872888517045348e-5,
              -1.38888888888730564116e-3, 4.16666666666665929218e-2):
        p = p * z + c
    return s, (1.0 - 0.5 * z) + (z * z) * p


_GILES_F32 = ((2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
               -0.00125372503, -0.00417768164, 0.246640727, 1.50140941),
              (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
               -0.0076224613, 0.00943887047, 1.00167406, 2.83297682))
_GILES_F64 = ((-3.6444120640178196996e-21, -1.685059138182016589e-19, 1.2858480715256400167e-18,
               1.115787767802518096e-17, -1.333171662854620906e-16, 2.0972767875968561637e-17,
               6.6376381343583238325e-15, -4.0545662729752068639e-14, -8.1519341976054721522e-14,
               2.6335093153082322977e-12, -1.2975133253453532498e-11, -5.4154120542946279317e-11,
               1.051212273321532285e-09, -4.1126339803469836976e-09, -2.9070369957882005086e-08,
               4.2347877827932403518e-07, -1.3654692000834678645e-06, -1.3882523362786468719e-05,
               0.0001867342080340571352, -0.00074070253416626697512, -0.0060336708714301490533,
               0.24015818242558961693, 1.6536545626831027356),
              (2.2137376921775787049e-09, 9.0756561938885390979e-08, -2.7517406297064545428e-07,
               1.8239629214389227755e-08, 1.5027403968909827627e-06, -4.013867526981545969e-06,
               2.9234449089955446044e-06, 1.2475304481671778723e-05, -4.7318229009055733981e-05,
               6.8284851459573175448e-05, 2.4031110387097893999e-05, -0.0003550375203628474796,
               0.00095328937973738049703, -0.0016882755560235047313, 0.0024914420961078508066,
               -0.0037512085075692412107, 0.005370914553590063617, 1.0052589676941592334,
               3.0838856104922207635),
              (-2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09,
               -3.7894654401267369937e-09, 7.6157012080783393804e-09, -1.4960026627149240478e-08,
               2.9147953450901080826e-08, -6.7711997758452339498e-08, 2.2900482228026654717e-07,
               -9.9298272942317002539e-07, 4.5260625972231537039e-06, -1.9681778105531670567e-05,
               7.5995277030017761139e-05, -0.00021503011930044477347, -0.00013871931833623122026,
               1.0103004648645343977, 4.8499064014085844221))


def _horner(coeffs, w):
    t = w.dtype.type
    p = np.full_like(w, t(coeffs[0]))
    for c in coeffs[1:]:
        p = t(c) + p * w
    return p


def erfinv_poly_numpy(w):
    """Giles' erfinv(t) / t as a function of w = -log((1-t)(1+t)), branch by branch."""
    t = w.dtype.type
    with np.errstate(invalid="ignore"):
        if w.dtype == np.float32:
            central = _horner(_GILES_F32[0], w - t(2.5))
            tail = _horner(_GILES_F32[1], np.sqrt(w) - t(3.0))
            return np.where(w < t(5.0), central, tail)
        central = _horner(_GILES_F64[0], w - 3.125)
        middle = _horner(_GILES_F64[1], np.sqrt(w) - 3.25)
        far = _horner(_GILES_F64[2], np.sqrt(w) - 5.0)
        return np.where(w < 6.25, central, np.where(w < 16.0, middle, far))


def uniform_values(n, seed, stream, low, high, dtype):
    """initlab.random step 3: U(low, high) in dtype."""
    dtype = np.dtype(dtype).type
    k, bits = element_k(philox_words(seed, stream, n * (np.dtype(dtype).itemsize // 4)), dtype)
    u = uniform_from_k(k, bits, dtype)
    return np.minimum(dtype(low) + dtype(high - low) * u, dtype(high))


def normal_values(n, seed, stream, mean, std, dtype):
    """initlab.random step 4: Box-Muller pairs in dtype."""
    dtype = np.dtype(dtype).type
    n_even = n + (n % 2)
    k, bits = element_k(philox_words(seed, stream, n_even * (np.dtype(dtype).itemsize // 4)), dtype)
    u1 = uniform_from_k(k[0::2], bits, dtype)
    k2 = k[1::2]
    quadrant = k2 >> np.uint64(bits - 2)
    rest = k2 & np.uint64((1 << (bits - 2)) - 1)
    y = (2 * rest + 1).astype(dtype) * dtype(2.0 ** -(bits - 1)) - dtype(0.5)
    phi = y * dtype(np.pi / 2)
    s, c = sin_cos_approx_numpy(phi)
    odd = (quadrant & np.uint64(1)) == 1
    ca, sa = np.where(odd, s, c), np.where(odd, c, s)
    cos_t = np.where(((quadrant + np.uint64(1)) & np.uint64(2)) != 0, -ca, ca)
    sin_t = np.where((quadrant & np.uint64(2)) != 0, -sa, sa)
    r = np.sqrt(dtype(-2) * log_approx_numpy(u1))
    z = np.empty(n_even, dtype=dtype)
    z[0::2] = r * cos_t
    z[1::2] = r * sin_t
    return (dtype(mean) + dtype(std) * z[:n]).astype(dtype)


def truncated_normal_values(n, seed, stream, mean, std, a, b, dtype, normal_cdf):
    """initlab.random step 5, with normal_cdf the core's Phi (float64) for the two constants."""
    dtype = np.dtype(dtype).type
    k, bits = element_k(philox_words(seed, stream, n * (np.dtype(dtype).itemsize // 4)), dtype)
    u = uniform_from_k(k, bits, dtype)
    pa, qa = normal_cdf(a), normal_cdf(-a)
    d = qa - normal_cdf(-b) if a >= 0 else normal_cdf(b) - pa
    p = dtype(pa) + dtype(d) * u
    q = dtype(qa) - dtype(d) * u
    t = p - q
    w = -log_approx_numpy((dtype(4) * p) * q)
    z = (erfinv_poly_numpy(w) * t) * dtype(np.sqrt(2.0))
    z = np.minimum(np.maximum(z, dtype(a)), dtype(b))
    return dtype(mean) + dtype(std) * z


# Expected distributions of the random schemes, from the papers / torch.nn.init formulas, written
# independently of the core: (kind, parameters) with kind in uniform / normal / truncated_normal.
def torch_fans(shape):
    """torch.nn.init._calculate_fan_in_and_fan_out for an out_in shape."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def in_out_fans(shape):
    """Keras' _compute_fans for an in_out (*receptive, in, out) shape."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


TORCH_GAINS = {"linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "sigmoid": 1.0,
               "tanh": 5.0 / 3, "relu": np.sqrt(2.0), "selu": 3.0 / 4}


def expected_distribution(name, params, fan_in, fan_out):
    """(kind, dict) of what scheme `name` must draw: uniform(low, high), normal(mean, std) or
    truncated_normal(mean, std, a, b)."""
    p = dict(params)
    if name == "uniform":
        return "uniform", {"low": p.get("low", -0.05), "high": p.get("high", 0.05)}
    if name == "normal":
        return "normal", {"mean": p.get("mean", 0.0), "std": p.get("std", 0.05)}
    if name == "truncated_normal":
        return "truncated_normal", {"mean": p.get("mean", 0.0), "std": p.get("std", 0.05),
                                    "a": p.get("a", -2.0), "b": p.get("b", 2.0)}
    if name == "small_random":
        return "normal", {"mean": 0.0, "std": p.get("scale", 0.01)}
    if name in ("xavier_uniform", "xavier_normal"):
        std = p.get("gain", 1.0) * np.sqrt(2.0 / (fan_in + fan_out))
        if name == "xavier_uniform":
            return "uniform", {"low": -np.sqrt(3.0) * std, "high": np.sqrt(3.0) * std}
        return "normal", {"mean": 0.0, "std": std}
    if name in ("he_uniform", "he_normal"):
        nonlinearity = p.get("nonlinearity", "relu")
        a = p.get("a", 0.0)
        g = np.sqrt(2.0 / (1 + a * a)) if nonlinearity == "leaky_relu" else TORCH_GAINS[nonlinearity]
        fan = fan_in if p.get("mode", "fan_in") == "fan_in" else fan_out
        std = g / np.sqrt(fan)
        if name == "he_uniform":
            return "uniform", {"low": -np.sqrt(3.0) * std, "high": np.sqrt(3.0) * std}
        return "normal", {"mean": 0.0, "std": std}
    if name == "lecun_uniform":
        return "uniform", {"low": -np.sqrt(3.0 / fan_in), "high": np.sqrt(3.0 / fan_in)}
    if name == "lecun_normal":
        return "normal", {"mean": 0.0, "std": np.sqrt(1.0 / fan_in)}
    if name == "torch_default":
        return "uniform", {"low": -1 / np.sqrt(fan_in), "high": 1 / np.sqrt(fan_in)}
    if name == "variance_scaling":
        mode = p.get("mode", "fan_in")
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
               "fan_geo_avg": np.sqrt(fan_in * fan_out)}[mode]
        variance = p.get("scale", 1.0) / max(1.0, fan)
        dist = p.get("distribution", "truncated_normal")
        if dist == "uniform":
            return "uniform", {"low": -np.sqrt(3 * variance), "high": np.sqrt(3 * variance)}
        if dist == "normal":
            return "normal", {"mean": 0.0, "std": np.sqrt(variance)}
        return "truncated_normal", {"mean": 0.0, "std": np.sqrt(variance) / 0.87962566103423978,
                                    "a": -2.0, "b": 2.0}
    raise KeyError(name)


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
        with np.errstate(over="ignore"):  # exp(-z) = inf for z < -709 gives the right 0
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


def torch_activation(name, z, param=None):
    """act(z) on a torch tensor with torch.nn.functional (the torch twin of `activation`, for the
    autograd tests; torch is imported here, so this module needs it only where this is called)."""
    import torch
    F = torch.nn.functional
    p = ACTIVATION_DEFAULTS[name] if param is None else param
    forms = {"linear": lambda: z, "relu": lambda: F.relu(z), "leaky_relu": lambda: F.leaky_relu(z, p),
             "elu": lambda: F.elu(z, p), "selu": lambda: F.selu(z), "gelu": lambda: F.gelu(z),
             "sigmoid": lambda: torch.sigmoid(z), "tanh": lambda: torch.tanh(z),
             "softplus": lambda: F.softplus(z, beta=p, threshold=20)}
    if name not in forms:
        raise ValueError(f"unknown activation {name!r}")
    return forms[name]()


def dense_forward(X, W, b, name, param=None):
    """(Z, A) with Z = X@W + b in float64 and A = act(Z)."""
    Z = np.asarray(X, np.float64) @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
    return Z, activation(name, Z, param)


def dense_backward(dA, X, W, Z, name, param=None):
    """(dZ, dW, db, dX) in float64: dZ = dA*act'(Z), dW = X^T dZ, db = sum_rows dZ, dX = dZ W^T."""
    dZ = np.asarray(dA, np.float64) * activation_derivative(name, Z, param)
    X64, W64 = np.asarray(X, np.float64), np.asarray(W, np.float64)
    return dZ, X64.T @ dZ, dZ.sum(axis=0), dZ @ W64.T


def _row_weighted(row_losses, dZ_rows, weights):
    """The weighted reduction of the losses: sum w_n l_n / sum w_n, and dZ row n times w_n / sum w
    (dZ_rows holds the gradient of each row's own loss l_n); sum w = 0 gives (0, 0)."""
    w = np.asarray(weights, np.float64)
    total = w.sum()
    if total == 0:
        return 0.0, np.zeros_like(dZ_rows)
    return float((w * row_losses).sum() / total), dZ_rows * (w / total)[:, None]


def softmax_cross_entropy(Z, y, weights=None):
    """(loss, P, dZ): y int labels (N,) or float targets (N, K); log-sum-exp in float64.
    weights (N,): loss = sum w_n l_n / sum w (l_n the row's cross-entropy), dZ its gradient."""
    Z = np.asarray(Z, np.float64)
    n, k = Z.shape
    Y = np.eye(k)[y] if np.asarray(y).ndim == 1 else np.asarray(y, np.float64)
    m = Z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True))
    P = np.exp(Z - lse)
    if weights is not None:
        loss, dZ = _row_weighted((Y * (lse - Z)).sum(axis=1), P - Y, weights)
        return loss, P, dZ
    loss = float((Y * (lse - Z)).sum() / n)
    return loss, P, (P - Y) / n


def sigmoid_binary_cross_entropy(Z, y, weights=None):
    """(loss, P, dZ) in the logits form max(z,0) - z*y + log1p(exp(-|z|)), mean over all elements.
    weights (N,): each row's mean over its columns counts w_n times, divided by sum w."""
    Z, y = np.asarray(Z, np.float64), np.asarray(y, np.float64)
    elementwise = np.maximum(Z, 0) - Z * y + np.log1p(np.exp(-np.abs(Z)))
    P = 1 / (1 + np.exp(-Z))
    if weights is not None:
        loss, dZ = _row_weighted(elementwise.mean(axis=1), (P - y) / Z.shape[1], weights)
        return loss, P, dZ
    return float(elementwise.mean()), P, (P - y) / Z.size


def mean_squared_error(Z, y, weights=None):
    """(loss, dZ): mean of (z - y)^2 over all elements and its gradient.
    weights (N,): a row's weight multiplies its mean over columns; divided by sum w."""
    d = np.asarray(Z, np.float64) - np.asarray(y, np.float64)
    if weights is not None:
        return _row_weighted((d * d).mean(axis=1), 2 * d / d.shape[1], weights)
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
    if name == "relu":  # the only activation whose derivative is exactly 0 (leaky/elu/selu: never)
        dead = float((Z <= 0).all(axis=0).mean())
    return {"pre_mean": Z.mean(), "pre_std": Z.std(), "act_mean": A.mean(), "act_std": A.std(),
            "saturated": saturated, "dead": dead}


# ---- convolution and pooling (conv.hpp), channels last ------------------------------------------

def same_padding(size, kernel, stride, dilation=1):
    """TensorFlow's "same" padding along one axis: out = ceil(size/stride), the total padding
    max((out-1)*stride + (kernel-1)*dilation + 1 - size, 0), the odd extra at the end.
    Returns (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _conv_taps(H, W, KH, KW, stride, dilation, padding):
    """Output size and, per tap (i, j), the slices of the padded input that it reads."""
    (sh, sw), (dh, dw), (top, bottom, left, right) = stride, dilation, padding
    OH = (H + top + bottom - dh * (KH - 1) - 1) // sh + 1
    OW = (W + left + right - dw * (KW - 1) - 1) // sw + 1
    taps = {(i, j): (slice(i * dh, i * dh + sh * (OH - 1) + 1, sh),
                     slice(j * dw, j * dw + sw * (OW - 1) + 1, sw))
            for i in range(KH) for j in range(KW)}
    return OH, OW, taps


def conv2d_forward(X, W, b, name, param=None, stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0)):
    """(Z, A) in float64. X (N, H, W, C), W (KH, KW, C, O), b (O); padding (top, bottom, left, right);
    Z[n, oh, ow, o] = b[o] + sum_{i, j, c} Xpad[n, oh*sh + i*dh, ow*sw + j*dw, c] W[i, j, c, o]."""
    X, W, b = (np.asarray(v, np.float64) for v in (X, W, b))
    N, H, Wd, C = X.shape
    KH, KW, _, O = W.shape
    top, bottom, left, right = padding
    Xp = np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)))
    OH, OW, taps = _conv_taps(H, Wd, KH, KW, stride, dilation, padding)
    Z = np.zeros((N, OH, OW, O)) + b
    for (i, j), (rows, cols) in taps.items():
        Z += Xp[:, rows, cols, :] @ W[i, j]
    return Z, activation(name, Z, param)


def conv2d_backward(dA, X, W, Z, name, param=None, stride=(1, 1), dilation=(1, 1), padding=(0, 0, 0, 0)):
    """(dZ, dW, db, dX) in float64, the adjoint of conv2d_forward tap by tap."""
    X, W = np.asarray(X, np.float64), np.asarray(W, np.float64)
    dZ = np.asarray(dA, np.float64) * activation_derivative(name, Z, param)
    N, H, Wd, C = X.shape
    KH, KW, _, O = W.shape
    top, bottom, left, right = padding
    Xp = np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)))
    dXp = np.zeros_like(Xp)
    dW = np.zeros_like(W)
    _, _, taps = _conv_taps(H, Wd, KH, KW, stride, dilation, padding)
    for (i, j), (rows, cols) in taps.items():
        dW[i, j] = np.einsum("nhwc,nhwo->co", Xp[:, rows, cols, :], dZ)
        dXp[:, rows, cols, :] += dZ @ W[i, j].T
    dX = dXp[:, top:top + H, left:left + Wd, :]
    return dZ, dW, dZ.sum(axis=(0, 1, 2)), dX


def max_pool2d(X, pool, stride):
    """(Y, argmax) with argmax the flat index ih*W + iw in the image, the first on ties (as PyTorch)."""
    X = np.asarray(X)
    N, H, W, C = X.shape
    (ph, pw), (sh, sw) = pool, stride
    OH, OW = (H - ph) // sh + 1, (W - pw) // sw + 1
    Y = np.empty((N, OH, OW, C), X.dtype)
    idx = np.empty((N, OH, OW, C), np.int64)
    for oh in range(OH):
        for ow in range(OW):
            win = X[:, oh * sh:oh * sh + ph, ow * sw:ow * sw + pw, :].reshape(N, ph * pw, C)
            k = win.argmax(axis=1)  # numpy's argmax: the first maximum
            Y[:, oh, ow, :] = np.take_along_axis(win, k[:, None, :], axis=1)[:, 0, :]
            idx[:, oh, ow, :] = (oh * sh + k // pw) * W + ow * sw + k % pw
    return Y, idx


def max_pool2d_backward(dY, argmax, input_shape):
    """dX: every dY added at the pixel its argmax names."""
    N, H, W, C = input_shape
    dX = np.zeros((N, H * W, C))
    n, _, _, c = np.indices(argmax.shape)
    np.add.at(dX, (n.ravel(), argmax.ravel(), c.ravel()), np.asarray(dY, np.float64).ravel())
    return dX.reshape(input_shape)


def avg_pool2d(X, pool, stride):
    X = np.asarray(X, np.float64)
    N, H, W, C = X.shape
    (ph, pw), (sh, sw) = pool, stride
    OH, OW = (H - ph) // sh + 1, (W - pw) // sw + 1
    Y = np.empty((N, OH, OW, C))
    for oh in range(OH):
        for ow in range(OW):
            Y[:, oh, ow, :] = X[:, oh * sh:oh * sh + ph, ow * sw:ow * sw + pw, :].mean(axis=(1, 2))
    return Y


def avg_pool2d_backward(dY, input_shape, pool, stride):
    dY = np.asarray(dY, np.float64)
    (ph, pw), (sh, sw) = pool, stride
    dX = np.zeros(input_shape)
    for oh in range(dY.shape[1]):
        for ow in range(dY.shape[2]):
            dX[:, oh * sh:oh * sh + ph, ow * sw:ow * sw + pw, :] += dY[:, oh:oh + 1, ow:ow + 1, :] / (ph * pw)
    return dX
