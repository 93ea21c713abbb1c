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
