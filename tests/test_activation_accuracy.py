"""float32 elu/selu/gelu/softplus and their derivatives use the core's own vectorizable exp, expm1,
log1p and normal cdf (cpp/src/activation_math.hpp). Their error is measured here against float64
(scipy/numpy, the C library) on a dense grid and bounded as the header documents, in units of
2^-24 (float32's relative rounding unit)."""
from __future__ import annotations

import numpy as np
import pytest

from initlab import _core

special = pytest.importorskip("scipy.special")

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
ULP = 2.0 ** -24
TINY = 1e-30  # below this the float32 results may flush to 0: checked absolutely

Z = np.concatenate([np.linspace(-30, 30, 120001), np.random.default_rng(1).standard_normal(50000) * 4,
                    np.geomspace(1e-8, 1, 5000), -np.geomspace(1e-8, 1, 5000), [0.0, -0.0]]
                   ).astype(np.float32)
ZD = Z.astype(np.float64)
PHI = 0.5 * special.erfc(-ZD / np.sqrt(2.0))
PDF = np.exp(-0.5 * ZD * ZD) / np.sqrt(2.0 * np.pi)


def forward(name, param):
    A = np.empty((1, Z.size), np.float32)
    _core.activation_forward(Z[None].copy(), A, name, param)
    return A[0].astype(np.float64)


def derivative(name, param):
    Zr = Z[None].copy()
    A = np.empty_like(Zr)
    _core.activation_forward(Zr, A, name, param)
    dA = np.ones_like(Zr)
    W = np.zeros((1, Z.size), np.float32)
    _core.dense_backward(dA, np.ones((1, 1), np.float32), W, Zr, A, name, param,
                         np.empty_like(W), np.empty(Z.size, np.float32))
    return dA[0].astype(np.float64)


def softplus(beta):
    return np.where(ZD * beta > 20, ZD, np.log1p(np.exp(ZD * beta)) / beta)


def max_ulp(got, ref, scale=None):
    scale = np.abs(ref) if scale is None else scale
    big = scale >= TINY
    assert np.abs(got - ref)[~big].max(initial=0.0) <= 1e-36
    return (np.abs(got - ref)[big] / scale[big]).max() / ULP


CASES = {  # name, param, got, float64 reference, documented bound in ulp
    "elu": (lambda: forward("elu", 0.7), lambda: np.where(ZD > 0, ZD, 0.7 * special.expm1(ZD)), 4),
    "selu": (lambda: forward("selu", None),
             lambda: SELU_SCALE * np.where(ZD > 0, ZD, SELU_ALPHA * special.expm1(ZD)), 4),
    "gelu": (lambda: forward("gelu", None), lambda: ZD * PHI, 10),
    "elu'": (lambda: derivative("elu", 0.7), lambda: np.where(ZD > 0, 1.0, 0.7 * np.exp(ZD)), 4),
    "selu'": (lambda: derivative("selu", None),
              lambda: SELU_SCALE * np.where(ZD > 0, 1.0, SELU_ALPHA * np.exp(ZD)), 4),
    "softplus'": (lambda: derivative("softplus", 1.0),
                  lambda: np.where(ZD > 20, 1.0, 1.0 / (1.0 + np.exp(-ZD))), 4),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_activation_error_bound(name):
    got, ref, bound = CASES[name]
    err = max_ulp(got(), ref())
    assert err <= bound, f"{name}: {err:.2f} ulp > {bound}"


def test_gelu_derivative_error_bound():
    # Phi(z) + z phi(z) crosses 0 near z = -0.7518: the error is bounded relative to the terms' sizes.
    got = derivative("gelu", None)
    err = max_ulp(got, PHI + ZD * PDF, scale=np.abs(PHI) + np.abs(ZD * PDF))
    assert err <= 10, err


@pytest.mark.parametrize("beta", [1.0, 0.25, 1.5])
def test_softplus_error_bound(beta):
    # 4 ulp plus the error of rounding beta*z in float32 (|beta*z| ulp, as in the C library's path).
    got = forward("softplus", beta)
    ref = softplus(beta)
    big = np.abs(ref) >= TINY
    rel = np.abs(got - ref)[big] / np.abs(ref[big]) / ULP
    allowed = 4 + (np.abs(ZD * beta) if beta != 1.0 else 0.0)
    assert np.all(rel <= (allowed[big] if np.ndim(allowed) else allowed))


def test_gelu_tail_keeps_relative_accuracy():
    # 1 + erf(z/sqrt2) is 0 in float32 for z < -5.5; the erfc form keeps GELU's tail (until it underflows).
    z = np.array([[-6.0, -8.0, -12.0]], np.float32)
    a = np.empty_like(z)
    _core.activation_forward(z, a, "gelu", None)
    ref = z.astype(np.float64) * 0.5 * special.erfc(-z.astype(np.float64) / np.sqrt(2.0))
    np.testing.assert_allclose(a, ref, rtol=10 * ULP)


@pytest.mark.parametrize("name", ["elu", "selu", "gelu", "softplus"])
def test_special_values(name):
    z = np.array([[np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0]], np.float32)
    a = np.empty_like(z)
    with np.errstate(all="ignore"):
        _core.activation_forward(z, a, name, None)
        a64 = np.empty_like(z, dtype=np.float64)
        _core.activation_forward(z.astype(np.float64), a64, name, None)  # float64: the C library
    np.testing.assert_array_equal(np.isnan(a), np.isnan(a64))
    finite = np.isfinite(a64)
    np.testing.assert_allclose(a[finite], a64[finite], rtol=10 * ULP, atol=1e-37)
    np.testing.assert_array_equal(a[~finite & ~np.isnan(a64)], a64[~finite & ~np.isnan(a64)])
