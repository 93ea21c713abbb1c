"""Mean-field signal propagation in deep random networks (Poole et al. 2016; Schoenholz et al. 2017).

A dense network of width N -> inf with weights W_ij ~ N(0, sigma_w2 / fan_in), biases
b_i ~ N(0, sigma_b2) and activation phi maps the variance q^l of a pre-activation and the
correlation c^l of the pre-activations of two inputs, layer by layer (Schoenholz et al. 2017,
eqs. 2-4; z, z1, z2 independent N(0, 1), E the expectation over them):

    q^l   = sigma_w2 E[phi(sqrt(q^{l-1}) z)^2] + sigma_b2                               (variance map)
    c^l q* = sigma_w2 E[phi(u1) phi(u2)] + sigma_b2,                               (correlation map)
             u1 = sqrt(q*) z1,  u2 = sqrt(q*) (c^{l-1} z1 + sqrt(1 - c^{l-1}^2) z2)

Their fixed points are q* and c*. Linearized around them (eqs. 5-9):

    chi_1  = sigma_w2 E[phi'(sqrt(q*) z)^2]               slope of the correlation map at c = 1 (eq. 5)
    1/xi_q = -ln(chi_1 + sigma_w2 E[phi''(sqrt(q*) z) phi(sqrt(q*) z)])                    (eq. 6)
    chi_c  = sigma_w2 E[phi'(u1) phi'(u2)] at c = c*                                       (eq. 8)
    1/xi_c = -ln(chi_c)                                                                     (eq. 9)

chi_1 < 1 is the ordered phase (c* = 1: all inputs collapse together, gradients vanish), chi_1 > 1
the chaotic one (c* < 1: nearby inputs decorrelate, gradients explode); chi_1 = 1 is the edge of
chaos, where xi_c is infinite. Schoenholz et al. found that random networks train only up to a
depth of about 6 xi_c. The term chi_1 + sigma_w2 E[phi'' phi] of eq. 6 is the slope dq^l/dq^{l-1}
at q*; it is computed here in Stein's form sigma_w2 E[z phi(sqrt(q) z) phi'(sqrt(q) z)] / sqrt(q)
(Gaussian integration by parts), which needs no second derivative and stays exact at kinks.

The expectations are Gauss-Legendre quadratures over unit intervals of [-12, 12] standard
deviations, split at 0, where every activation of the registry has its kink (relu, leaky_relu,
elu, selu), so they are exact to ~1e-13 there too; the 2-D ones integrate u2 for each node of z1
on intervals split where u2 = 0, with the z1 grid refined near 0 as c -> 1 (where the inner
expectation turns within sqrt(1 - c^2) of z1 = 0); 1e-12 against relu's closed forms. phi and phi' of a registered activation are the core's own
(the functions the networks run, in float64).

>>> import initlab as il
>>> mf = il.theory.mean_field("tanh", 1.76, 0.05)
>>> round(mf.chi_1, 3), mf.c_star
(1.0, 1.0)
>>> round(il.theory.critical_sigma_w2("relu"), 12)
2.0
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core

Activation = Union[str, Callable[[np.ndarray], np.ndarray]]

# Quadrature: QUAD_NODES Gauss-Legendre nodes on each unit interval of [-QUAD_RANGE, QUAD_RANGE]
# (in standard deviations; the Gaussian mass beyond 12 is 4e-33).
QUAD_RANGE = 12
QUAD_NODES = 48
QUAD_NODES_2D = 16            # per unit interval and dimension in the 2-D integrals
Q_MIN, Q_MAX = 1e-15, 1e15    # variance fixed points below / above these are 0 / inf
# Activations with phi(a x) = a phi(x) for a > 0: their variance map is linear in q without bias.
HOMOGENEOUS = ("linear", "relu", "leaky_relu")
SCHOENHOLZ_DEPTH = 6.0        # "trainable up to about 6 xi_c" (Schoenholz et al. 2017, fig. 5)


def _legendre_grid(low: float, high: float, nodes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of Gauss-Legendre quadrature on every unit interval of [low, high]."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    left = np.arange(low, high)
    z = (left[:, None] + 0.5 * (x[None, :] + 1.0)).ravel()
    return z, np.tile(0.5 * w, left.size)


_Z, _W = _legendre_grid(-QUAD_RANGE, QUAD_RANGE, QUAD_NODES)
_GAUSS = _W * np.exp(-0.5 * _Z * _Z) / math.sqrt(2.0 * math.pi)   # weights of E[f(z)], z ~ N(0, 1)
_Z2, _W2 = _legendre_grid(-QUAD_RANGE, QUAD_RANGE, QUAD_NODES_2D)
_GAUSS2 = _W2 * np.exp(-0.5 * _Z2 * _Z2) / math.sqrt(2.0 * math.pi)


def _expect(f: Callable[[np.ndarray], np.ndarray]) -> float:
    """E[f(z)] for z ~ N(0, 1)."""
    return float(np.dot(_GAUSS, f(_Z)))


# ================================================================================================
# the activation: phi and phi' on float64 arrays
# ================================================================================================

class _Phi:
    """An activation as the quadratures use it: ``value(x)`` and ``slope(x)`` on float64 arrays."""

    def __init__(self, activation: Activation, derivative: Optional[Callable] = None) -> None:
        registry = {name: param for name, _, param in _core.activations()}
        if isinstance(activation, str):
            if activation not in registry:
                raise ValueError(f"activation={activation!r} is not known; valid: "
                                 f"{', '.join(registry)}, or a vectorized callable")
            if derivative is not None:
                raise ValueError(f"derivative= is for a callable activation; {activation!r} has its own")
            self.name, self.param = activation, float(registry[activation])
            self.homogeneous = activation in HOMOGENEOUS
            self._fn = self._derivative = None
        elif callable(activation):
            self.name = getattr(activation, "__name__", type(activation).__name__)
            self.param = 0.0
            self._fn = activation
            if derivative is not None and not callable(derivative):
                raise ValueError(f"derivative must be a vectorized callable or None, got "
                                 f"{type(derivative).__name__} {derivative!r}")
            self._derivative = derivative
            self._check(self._fn, "activation")
            if derivative is not None:
                self._check(derivative, "derivative")
            x = _Z[np.abs(_Z) < 4]
            self.homogeneous = all(np.allclose(self.value(a * x), a * self.value(x), rtol=1e-9, atol=1e-12)
                                   for a in (0.37, 3.0))
        else:
            raise ValueError(f"activation must be a name ({', '.join(registry)}) or a vectorized "
                             f"callable, got {type(activation).__name__} {activation!r}")

    @staticmethod
    def _check(fn: Callable, argname: str) -> None:
        probe = np.linspace(-30.0, 30.0, 61)
        try:
            out = np.asarray(fn(probe.copy()))
        except Exception as e:  # noqa: BLE001 - e.g. math.tanh: a float works, an array does not
            raise ValueError(f"{argname} must be a vectorized callable (float64 array in, array of the "
                             f"same shape out); calling it on an array failed: {type(e).__name__}: {e}") from None
        if out.shape != probe.shape or out.dtype.kind not in "fiub":
            raise ValueError(f"{argname} must be a vectorized callable returning real numbers of the "
                             f"input's shape; on shape {probe.shape} it returned {out.dtype} of shape {out.shape}")
        if not np.isfinite(out.astype(np.float64)).all():
            raise ValueError(f"{argname} returned non-finite values on [-30, 30] (at x = "
                             f"{probe[~np.isfinite(out.astype(np.float64))][0]:g})")

    def value(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if self._fn is not None:
            out = np.asarray(self._fn(x.copy()), dtype=np.float64)
        else:
            out = np.empty((1, x.size))
            _core.activation_forward(x.reshape(1, -1), out, self.name, self.param)
            out = out.reshape(x.shape)
        if not np.isfinite(out).all():
            raise ValueError(f"activation {self.name} returned non-finite values (at x = "
                             f"{x[~np.isfinite(out)].ravel()[0]:g})")
        return out

    def slope(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if self._fn is None:
            # The core's backward kernel with dA = 1 leaves phi'(Z) in dA: points are one row of
            # Z (1, M), with a 1-wide input X (1, 1) and W (1, M) that only shape the call.
            m = x.size
            z = x.reshape(1, m)
            a = np.empty_like(z)
            _core.activation_forward(z, a, self.name, self.param)
            d = np.ones_like(z)
            _core.dense_backward(d, np.zeros((1, 1)), np.zeros((1, m)), z, a, self.name, self.param,
                                 np.empty((1, m)), np.empty(m), None)
            return d.reshape(x.shape)
        if self._derivative is not None:
            out = np.asarray(self._derivative(x.copy()), dtype=np.float64)
        else:  # central differences, step relative to |x|
            h = 1e-6 * np.maximum(1.0, np.abs(x))
            out = (self.value(x + h) - self.value(x - h)) / (2.0 * h)
        if not np.isfinite(out).all():
            raise ValueError(f"derivative of {self.name} is not finite (at x = {x[~np.isfinite(out)].ravel()[0]:g})")
        return out


def _check_sigma(value: Any, argname: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{argname} must be a finite number >= 0, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{argname} must be a finite number >= 0, got {value!r}")
    return value


# ================================================================================================
# the maps and their fixed points
# ================================================================================================

def variance_map(phi: _Phi, q: float, sigma_w2: float, sigma_b2: float) -> float:
    """q^l from q^{l-1} (Schoenholz et al. 2017, eq. 3)."""
    s = math.sqrt(q)
    return sigma_w2 * _expect(lambda z: phi.value(s * z) ** 2) + sigma_b2


def _gauss_pair(f: Callable, g: Callable, q: float, c: float) -> float:
    """E[f(u1) g(u2)], u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2).

    For each node z1 the inner expectation over u2 ~ N(sqrt(q) c z1, q (1 - c^2)) is taken in the
    standardized variable t = (u2 / sqrt(q) - c z1) / s over unit intervals, the interval holding
    u2 = 0 (the kink of the registry's activations) split there.
    """
    s = math.sqrt(max(0.0, 1.0 - c * c))
    root_q = math.sqrt(q)
    if s < 1e-12:  # c = +-1: u2 = +-u1
        return float(np.dot(_GAUSS, f(root_q * _Z) * g(c * root_q * _Z)))
    x, w = np.polynomial.legendre.leggauss(QUAD_NODES_2D)
    z1, outer = _Z2, _GAUSS2
    if s < 0.5:
        # E[g(u2) | z1] turns within ~s of z1 = 0 (a step there as c -> 1): refine the outer grid
        # with breakpoints at +-s, +-2s, +-4s, ... below 1
        fine = s * 2.0 ** np.arange(0, math.ceil(math.log2(1.0 / s)))
        edges = np.unique(np.concatenate([np.arange(-QUAD_RANGE, QUAD_RANGE + 1.0), fine, -fine]))
        low, width = edges[:-1, None], np.diff(edges)[:, None]
        z1 = (low + 0.5 * width * (x[None, :] + 1.0)).ravel()
        outer = (0.5 * width * w[None, :]).ravel() * np.exp(-0.5 * z1 * z1) / math.sqrt(2.0 * math.pi)
    kink = np.clip(-c * z1 / s, -QUAD_RANGE, QUAD_RANGE)                  # t where u2 = 0
    edges = np.sort(np.concatenate([np.broadcast_to(np.arange(-QUAD_RANGE, QUAD_RANGE + 1.0),
                                                    (z1.size, 2 * QUAD_RANGE + 1)), kink[:, None]], axis=1), axis=1)
    low, width = edges[:, :-1], np.diff(edges, axis=1)                    # (n1, intervals)
    t = low[:, :, None] + 0.5 * width[:, :, None] * (x[None, None, :] + 1.0)
    wt = 0.5 * width[:, :, None] * w[None, None, :] * np.exp(-0.5 * t * t) / math.sqrt(2.0 * math.pi)
    u2 = root_q * (c * z1[:, None, None] + s * t)
    inner = np.sum(wt * g(u2.ravel()).reshape(u2.shape), axis=(1, 2))    # E[g(u2) | z1]
    return float(np.dot(outer, f(root_q * z1) * inner))


def correlation_map(phi: _Phi, c: float, q_star: float, sigma_w2: float, sigma_b2: float) -> float:
    """c^l from c^{l-1} at the variance fixed point q* (Schoenholz et al. 2017, eq. 4)."""
    return (sigma_w2 * _gauss_pair(phi.value, phi.value, q_star, c) + sigma_b2) / q_star


def _brent(f: Callable[[float], float], a: float, b: float, tol: float = 1e-14) -> float:
    from scipy.optimize import brentq
    return float(brentq(f, a, b, xtol=tol, rtol=4 * np.finfo(float).eps, maxiter=200))


def _variance_fixed_point(phi: _Phi, sigma_w2: float, sigma_b2: float, q0: float) -> float:
    """The fixed point the iteration q^l = V(q^{l-1}) reaches from q^0 = q0: V is increasing, so the
    iterates move monotonically in the direction of V(q0) - q0 to the nearest fixed point that way
    (bracketed by doubling or halving, then Brent's method); 0 or inf when there is none."""
    gap = lambda q: variance_map(phi, q, sigma_w2, sigma_b2) - q
    g0 = gap(q0)
    if g0 == 0.0:
        return q0
    q = q0
    if g0 > 0:
        while q < Q_MAX:
            nxt = 2.0 * q
            if gap(nxt) <= 0:
                return _brent(gap, q, nxt, tol=1e-15 * nxt)
            q = nxt
        return math.inf
    while q > Q_MIN:
        nxt = 0.5 * q
        if gap(nxt) >= 0:
            return _brent(gap, nxt, q, tol=1e-15 * q)
        q = nxt
    return 0.0


def _correlation_fixed_point(phi: _Phi, q_star: float, sigma_w2: float, sigma_b2: float, chi_1: float) -> float:
    """c*: 1 in the ordered phase (chi_1 <= 1, c = 1 is stable); in the chaotic phase the fixed
    point below 1 that iterating the correlation map from c = 0 reaches (C(0) >= 0 and C(c) < c just
    below 1 since C'(1) = chi_1 > 1: Brent's method on that bracket)."""
    if chi_1 <= 1.0:
        return 1.0
    gap = lambda c: correlation_map(phi, c, q_star, sigma_w2, sigma_b2) - c
    if gap(0.0) <= 0.0:
        return 0.0
    for eps in (0.5, 0.1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8):
        if gap(1.0 - eps) < 0.0:
            return _brent(gap, 0.0, 1.0 - eps, tol=1e-13)
    return 1.0  # chi_1 within ~1e-8 of 1: c* is 1 to that precision


def _fixed_variance_and_chi(phi: _Phi, sigma_w2: float, sigma_b2: float, q0: float) -> Tuple[float, float]:
    """(q*, chi_1): the variance fixed point reached from q0 (0 or inf where there is none) and
    sigma_w2 E[phi'(sqrt(q*) z)^2] there (the limit q -> inf evaluated at q = 1e30)."""
    def chi_at(q: float) -> float:
        s = math.sqrt(q)
        return sigma_w2 * _expect(lambda z: phi.slope(s * z) ** 2)

    if phi.homogeneous and (sigma_b2 == 0.0 or sigma_w2 * _expect(lambda z: phi.value(z) ** 2) >= 1.0):
        # V(q) = chi_1 q + sigma_b2: no finite positive fixed point (for these activations
        # E[phi(z)^2] = E[phi'(z)^2], so the multiplier of q is chi_1, the same at every q).
        chi_1 = chi_at(1.0)
        if sigma_b2 > 0.0:
            return math.inf, chi_1
        return (0.0 if chi_1 < 1.0 else (math.inf if chi_1 > 1.0 else q0)), chi_1
    q_star = _variance_fixed_point(phi, sigma_w2, sigma_b2, q0)
    return q_star, chi_at(1e30 if math.isinf(q_star) else q_star)


def _neg_inv_log(x: float) -> float:
    """-1 / ln(x): the depth scale of a map with slope x (inf at x = 1, 0 at x = 0)."""
    if x <= 0.0:
        return 0.0
    if x == 1.0:
        return math.inf
    return -1.0 / math.log(x)


# ================================================================================================
# the public functions
# ================================================================================================

@dataclass(frozen=True)
class MeanField:
    """Fixed points and depth scales of one (activation, sigma_w2, sigma_b2); see the module docstring.

    ``phase`` is "ordered" (chi_1 < 1), "critical" (|chi_1 - 1| < 1e-9) or "chaotic". A negative
    xi_q or xi_c (a slope above 1 at a degenerate fixed point) is the depth over which the
    quantity grows by a factor e.
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    chi_1: float
    chi_c: float
    xi_q: float
    xi_c: float

    @property
    def phase(self) -> str:
        if abs(self.chi_1 - 1.0) < 1e-9:
            return "critical"
        return "ordered" if self.chi_1 < 1.0 else "chaotic"

    def to_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), phase=self.phase)

    def __str__(self) -> str:
        return (f"mean field of {self.activation} at sigma_w2 = {self.sigma_w2:.4g}, sigma_b2 = "
                f"{self.sigma_b2:.4g}: q* = {self.q_star:.4g}, c* = {self.c_star:.4g}, chi_1 = "
                f"{self.chi_1:.4g} ({self.phase}), xi_q = {self.xi_q:.4g}, xi_c = {self.xi_c:.4g} layers")


def mean_field(activation: Activation, sigma_w2: float, sigma_b2: float = 0.0, *, q0: float = 1.0,
               derivative: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> MeanField:
    """q*, c*, chi_1, xi_q and xi_c of a deep random network (Schoenholz et al. 2017, eqs. 3-9).

    ``activation``: a name of the registry (linear, relu, leaky_relu, elu, selu, gelu, sigmoid, tanh,
    softplus, with their default parameters) or a vectorized callable on float64 arrays, whose
    ``derivative`` may be given (else central differences). Weights N(0, sigma_w2 / fan_in), biases
    N(0, sigma_b2); ``q0`` is the input's variance, from which the variance map is iterated.

    Degenerate cases (the variance map has no positive fixed point: relu/leaky_relu/linear with
    sigma_b2 = 0, tanh with sigma_b2 = 0 and sigma_w2 <= 1): q* is 0 (chi_1 < 1), inf (chi_1 > 1) or,
    for a positively homogeneous activation at chi_1 = 1, q0 (its variance is then preserved
    exactly); chi_1 is sigma_w2 E[phi'(sqrt(q*) z)^2] at that q* (sigma_w2 / 2 for relu, sigma_w2 for
    tanh at q* = 0); c* is 1; xi_q is -1/ln chi_1; xi_c is inf for positively homogeneous activations
    whose bias is negligible (sigma_b2 = 0, or q* = inf: their correlations converge to 1 only
    polynomially), else -1/ln chi_1.

    >>> mf = mean_field("relu", 2.0)
    >>> mf.q_star, mf.chi_1, mf.xi_c
    (1.0, 1.0, inf)
    """
    phi = _Phi(activation, derivative)
    sigma_w2 = _check_sigma(sigma_w2, "sigma_w2")
    sigma_b2 = _check_sigma(sigma_b2, "sigma_b2")
    q0 = _check_sigma(q0, "q0")
    if q0 == 0.0:
        raise ValueError("q0 must be a finite number > 0, got 0.0")
    name = phi.name

    q_star, chi_1 = _fixed_variance_and_chi(phi, sigma_w2, sigma_b2, q0)
    if q_star == 0.0 or math.isinf(q_star):
        xi = _neg_inv_log(chi_1)
        # homogeneous, bias negligible: correlations reach 1 only polynomially
        xi_c = math.inf if phi.homogeneous else xi
        return MeanField(name, sigma_w2, sigma_b2, q_star, 1.0, chi_1, chi_1, xi, xi_c)
    if phi.homogeneous and sigma_b2 == 0.0:  # chi_1 = 1: every q is a fixed point
        return MeanField(name, sigma_w2, sigma_b2, q_star, 1.0, chi_1, chi_1, math.inf, math.inf)
    s = math.sqrt(q_star)
    # eq. 6 in Stein's form: chi_1 + sigma_w2 E[phi'' phi] = sigma_w2 E[z phi(sqrt(q) z) phi'(sqrt(q) z)] / sqrt(q)
    variance_slope = sigma_w2 * _expect(lambda z: z * phi.value(s * z) * phi.slope(s * z)) / s
    c_star = _correlation_fixed_point(phi, q_star, sigma_w2, sigma_b2, chi_1)
    chi_c = chi_1 if c_star == 1.0 else sigma_w2 * _gauss_pair(phi.slope, phi.slope, q_star, c_star)
    return MeanField(name, sigma_w2, sigma_b2, q_star, c_star, chi_1, chi_c,
                     _neg_inv_log(variance_slope), _neg_inv_log(chi_c))


def critical_sigma_w2(activation: Activation, sigma_b2: float = 0.0, *,
                      derivative: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> float:
    """The sigma_w2 at which chi_1 = 1 (the edge of chaos) for this activation and sigma_b2.

    chi_1 grows with sigma_w2; the root is bracketed by doubling from sigma_w2 = 1 and found by
    Brent's method. 2 for relu (any sigma_b2), 1 for linear and for tanh at sigma_b2 = 0, ~1.76 for
    tanh at sigma_b2 = 0.05 (Schoenholz et al. 2017, fig. 1). ValueError when chi_1 stays below 1 up
    to sigma_w2 = 1e6, or jumps over 1 (gelu with a bias: its finite variance fixed point vanishes
    at a sigma_w2 where chi_1 < 1, and beyond it q* = inf with chi_1 = sigma_w2 / 2 > 1).
    """
    phi = _Phi(activation, derivative)
    sigma_b2 = _check_sigma(sigma_b2, "sigma_b2")
    gap = lambda w2: _fixed_variance_and_chi(phi, w2, sigma_b2, 1.0)[1] - 1.0
    low, high = 1.0, 1.0
    if gap(1.0) > 0:
        while gap(low) > 0:
            low *= 0.5
            if low < 1e-12:
                raise ValueError(f"activation {phi.name}: chi_1 > 1 at every sigma_w2 down to 1e-12")
    else:
        while gap(high) < 0:
            high *= 2.0
            if high > 1e6:
                raise ValueError(f"activation {phi.name}: chi_1 < 1 at every sigma_w2 up to 1e6 "
                                 f"(sigma_b2 = {sigma_b2:g}); it has no edge of chaos")
    if gap(low) == 0.0:
        return low
    if gap(high) == 0.0:
        return high
    root = _brent(gap, low, high, tol=1e-12)
    if abs(gap(root)) > 1e-6:
        # chi_1 jumps across 1: the fixed point reached from q0 = 1 vanishes there (gelu: the
        # variance escapes to inf past sigma_w2 ~ 2.23 at sigma_b2 = 0.05)
        raise ValueError(f"activation {phi.name}: chi_1 jumps from {gap(root - 1e-9) + 1:.4g} to "
                         f"{gap(root + 1e-9) + 1:.4g} at sigma_w2 = {root:.6g} (sigma_b2 = {sigma_b2:g}): "
                         "the variance fixed point disappears there, and no sigma_w2 has chi_1 = 1")
    return root


def trainable_depth(activation: Activation, sigma_w2: float, sigma_b2: float = 0.0,
                    factor: float = SCHOENHOLZ_DEPTH) -> float:
    """``factor`` * xi_c: the depth up to which Schoenholz et al. 2017 found random nets trainable."""
    return factor * mean_field(activation, sigma_w2, sigma_b2).xi_c


# ================================================================================================
# a network's weights, read by the theory
# ================================================================================================

def from_weights(weights: Sequence[np.ndarray], biases: Sequence[Optional[np.ndarray]],
                 activation: Activation, *, depth: Optional[int] = None) -> Dict[str, Any]:
    """The mean-field reading of a dense network whose hidden layers share ``activation``.

    ``weights``: the hidden layers' W, each (fan_in, fan_out) (layout in_out); ``biases``: their b
    (None for no bias). Estimates sigma_w2 = mean over layers of fan_in * mean(W^2) and sigma_b2 =
    mean over layers of mean(b^2) (second moments: the theory's weights have mean 0), then the
    mean field at them, and the depth (``depth``, default the number of layers) in units of xi_c.
    Returns a dict: sigma_w2, sigma_b2, sigma_w2_layers (per layer), chi_1, xi_c, xi_q, q_star,
    c_star, phase, depth, depth_over_xi_c, trainable (depth <= 6 xi_c, Schoenholz et al. 2017) and
    ``message``, one line that says it.
    """
    weights = list(weights)
    biases = list(biases)
    if not weights:
        raise ValueError("weights must hold at least one (fan_in, fan_out) array")
    if len(biases) != len(weights):
        raise ValueError(f"biases must have one entry per weight matrix ({len(weights)}), got {len(biases)}")
    per_layer, bias_moments = [], []
    for i, (W, b) in enumerate(zip(weights, biases)):
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or W.size == 0:
            raise ValueError(f"weights[{i}] must be a non-empty (fan_in, fan_out) array, got shape {W.shape}")
        per_layer.append(W.shape[0] * float(np.mean(W * W)))
        if b is not None:
            b = np.asarray(b, dtype=np.float64)
            bias_moments.append(float(np.mean(b * b)) if b.size else 0.0)
        else:
            bias_moments.append(0.0)
    sigma_w2 = float(np.mean(per_layer))
    sigma_b2 = float(np.mean(bias_moments))
    if not (math.isfinite(sigma_w2) and math.isfinite(sigma_b2)):
        raise ValueError(f"weights/biases hold non-finite values (sigma_w2 = {sigma_w2}, sigma_b2 = {sigma_b2})")
    depth = len(weights) if depth is None else int(depth)
    mf = mean_field(activation, sigma_w2, sigma_b2)
    ratio = depth / mf.xi_c if mf.xi_c > 0 else math.inf
    trainable = bool(ratio <= SCHOENHOLZ_DEPTH)
    if math.isinf(mf.xi_c) and abs(mf.chi_1 - 1.0) < 1e-9:
        message = ("at the edge of chaos (chi_1 = 1, xi_c infinite): trainable at any depth by the "
                   "mean-field criterion")
    elif math.isinf(mf.xi_c):
        # a positively homogeneous activation whose bias is negligible: none at all, or a variance
        # that grows without bound (q* = inf) past any sigma_b2
        why = (f"{mf.activation} without bias" if sigma_b2 == 0.0 else
               f"{mf.activation} with sigma_b2 = {sigma_b2:.3g}, negligible beside a variance that "
               f"grows without bound")
        message = (f"xi_c is infinite ({why}: correlations converge only polynomially), so the "
                   f"correlation criterion limits no depth; chi_1 = {mf.chi_1:.3g}: the signal's "
                   f"variance is multiplied by that per layer")
    else:
        message = (f"this net is {ratio:.1f} xi_c deep (depth {depth}, xi_c = {mf.xi_c:.3g} layers): "
                   + ("trainable by the mean-field criterion (<= 6 xi_c)" if trainable else
                      "beyond the 6 xi_c up to which random nets train (Schoenholz et al. 2017)"))
    return {"activation": mf.activation, "sigma_w2": sigma_w2, "sigma_b2": sigma_b2,
            "sigma_w2_layers": per_layer, "q_star": mf.q_star, "c_star": mf.c_star, "chi_1": mf.chi_1,
            "xi_q": mf.xi_q, "xi_c": mf.xi_c, "phase": mf.phase, "depth": depth,
            "depth_over_xi_c": ratio, "trainable": trainable, "message": message}


__all__ = ["MeanField", "mean_field", "critical_sigma_w2", "trainable_depth", "from_weights"]
