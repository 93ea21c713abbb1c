"""`Network.diagnose`: does the signal vanish, explode, saturate or die at the current weights?

One forward pass of X (dropout off) and one backward pass give, per layer i:
    pre_mean, pre_std, act_mean, act_std  moments of Z_i and A_i = act(Z_i) over the batch
    saturated    fraction of |tanh| > 0.99 or sigmoid outside [0.01, 0.99]
    dead         fraction of ReLU-family units with Z <= 0 on every row
    grad_norm    ||dL/dW_i||_F
    grad_std     std of the back-propagated gradient dL/dZ_i
    spectral_norm ||W_i||_2, and stable_rank = ||W_i||_F^2 / ||W_i||_2^2
The backward pass starts from the loss gradient when y is given, otherwise from a unit-variance
Gaussian output gradient (seeded). The input-output Jacobian d(logits)/dx (K x n_in) of a few
samples gives the singular-value spread: dynamical isometry (Saxe et al. 2013; Pennington et al.
2017) means these singular values sit near 1.

The verdict reads two gains across the depth of the network,
    forward gain   g_f = pre_std(Z_top) / pre_std(Z_0)
    backward gain  g_b = grad_std(dZ_0) / grad_std(dZ_top)
where top is the last hidden layer (the output layer when there are fewer than 2 hidden layers:
the output's change of width alone would scale the backward gain by fan_out/fan_in),
and is, in this order of precedence (a cause before its symptoms):
    "exploding"  activations or gradients overflow to inf/NaN;
    "vanishing"  a hidden layer's weights are all zero;
    "dead"       a ReLU-family hidden layer has >= DEAD_LAYER units dead on the whole batch, or
                 the hidden layers' mean dead fraction is >= DEAD_MEAN;
    "saturated"  tanh/sigmoid hidden layers are saturated on average >= SATURATED_MEAN;
    "exploding"  max(log10 g_f, log10 g_b) >= GAIN_DECADES;
    "vanishing"  min(log10 g_f, log10 g_b) <= -GAIN_DECADES;
    "healthy"    otherwise.
Calibration (30 hidden layers of width 256, 128 rows of N(0, 1) inputs, seeds 0-2; the cases are
tests/test_diagnose.py):
    relu + he_normal           g_f, g_b in [0.67, 1.13]; dead <= 0.40 per layer, ~0.19 on average
                               (inputs grow correlated with depth, so a unit tends to be off for the
                               whole batch: deep ReLU nets at any weight scale, not an init fault)
    relu + xavier_normal       g ~ 3e-5..5e-5 (variance factor 0.5 per layer)      -> vanishing
    relu + N(0, 1)             g ~ 3e30 (variance factor 128 per layer)             -> exploding
    tanh + N(0, 1)             87% of the units saturated, g_b ~ 4e13               -> saturated
    relu + he_normal, width 4  a layer with every unit dead (all seeds tried)       -> dead
    tanh + xavier_normal       g ~ 0.13-0.16: the slow 1/sqrt(depth) decay of tanh  -> healthy
    sigmoid + xavier_normal (10 layers) g_b ~ 2e-6                                  -> vanishing
The thresholds sit between these regimes with a factor ~2 (dead) or several decades (gains) of
margin, except tanh + xavier_normal: at 30 layers it sits 0.9 decades down, near the threshold, and
deeper tanh stacks read "vanishing" (their gradients do shrink). Fewer rows make "dead on the whole
batch" likelier: diagnose on >= 64 rows.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, Dict, List

import numpy as np

from .. import _core
from ..nn._checks import check_int
from .statistics import layer_rows

if TYPE_CHECKING:  # pragma: no cover
    from ..nn.network import Network

DEAD_LAYER = 0.75       # wide deep he_normal ReLU nets: <= ~0.4 per layer; narrow ones collapse
DEAD_MEAN = 0.4         # deep wide he_normal ReLU nets: ~0.19 on average; narrow deep ones: 0.4+
SATURATED_MEAN = 0.3    # healthy tanh (xavier): ~1%; tanh with N(0, 1) weights at width 256: ~87%
GAIN_DECADES = 1.0      # a factor of 10 in std across the whole network

RELU_FAMILY = ("relu", "leaky_relu", "elu", "selu")
SATURATING = ("tanh", "sigmoid")
VERDICTS = ("healthy", "vanishing", "exploding", "saturated", "dead")

# The initializer that keeps Var(Z) constant through each activation, and why.
_RECOMMENDED = {
    "relu": ("he_normal", "Var(W) = 2/fan_in keeps Var(Z) constant through ReLU (He et al. 2015)"),
    "leaky_relu": ("he_normal", "Var(W) = 2/((1+a^2) fan_in) (he_normal with a=slope) keeps Var(Z) "
                                "constant (He et al. 2015)"),
    "elu": ("he_normal", "ELU passes about half the variance, as ReLU does (he_normal; "
                         "il.init.estimate_gain('elu') for the exact gain)"),
    "selu": ("lecun_normal", "Var(W) = 1/fan_in is SELU's self-normalizing fixed point "
                             "(Klambauer et al. 2017)"),
    "gelu": ("he_normal", "GELU passes about half the variance, like ReLU (he_normal; "
                          "il.init.estimate_gain('gelu') for the exact gain)"),
    "softplus": ("he_normal", "variance_scaling with scale = il.init.estimate_gain('softplus')^2 "
                              "keeps Var constant; he_normal is close"),
    "tanh": ("xavier_normal", "Var(W) = 2/(fan_in+fan_out) keeps tanh in its linear range "
                              "(Glorot & Bengio 2010); orthogonal(gain=5/3) also works"),
    "sigmoid": ("xavier_normal", "Var(W) = 2/(fan_in+fan_out) keeps sigmoid away from its flat "
                                 "tails (Glorot & Bengio 2010)"),
    "linear": ("orthogonal", "orthogonal weights preserve norms exactly in a linear network "
                             "(Saxe et al. 2013)"),
}


class Diagnosis:
    """The result of `Network.diagnose`: per-layer rows, Jacobian spectrum and a verdict.

    Attributes: `layers` (list of dicts, one per layer, see the module docstring), `jacobian`
    (dict: `samples`, `singular_values` (samples, min(K, n_in)), `sv_max`, `sv_min`,
    `condition` (median of sv_max/sv_min), `log10_spread` (mean std of log10 singular values)),
    `forward_gain`, `backward_gain`, `variance_factor` (measured Var(Z_{i+1})/Var(Z_i), geometric
    mean over layers), `verdict`, `evidence` (str), `suggestion` (str: an initializer and why).
    """

    def __init__(self, layers: List[Dict[str, Any]], jacobian: Dict[str, Any], forward_gain: float,
                 backward_gain: float, variance_factor: float, verdict: str, evidence: str,
                 suggestion: str) -> None:
        self.layers = layers
        self.jacobian = jacobian
        self.forward_gain = forward_gain
        self.backward_gain = backward_gain
        self.variance_factor = variance_factor
        self.verdict = verdict
        self.evidence = evidence
        self.suggestion = suggestion

    def to_dict(self) -> Dict[str, Any]:
        jac = dict(self.jacobian)
        jac["singular_values"] = np.asarray(jac["singular_values"]).tolist()
        return {"layers": self.layers, "jacobian": jac, "forward_gain": self.forward_gain,
                "backward_gain": self.backward_gain, "variance_factor": self.variance_factor,
                "verdict": self.verdict, "evidence": self.evidence, "suggestion": self.suggestion}

    def __repr__(self) -> str:
        return f"Diagnosis(verdict={self.verdict!r}, layers={len(self.layers)})"

    def __str__(self) -> str:
        out = io.StringIO()
        out.write("layer activation    pre_mean   pre_std  act_mean   act_std saturated   dead"
                  "   ||dW||_F  grad_std  ||W||_2 stable_rank\n")
        for r in self.layers:
            out.write(f"{r['layer']:5d} {r['activation']:<10s} {r['pre_mean']:10.3g} {r['pre_std']:9.3g} "
                      f"{r['act_mean']:9.3g} {r['act_std']:9.3g} {r['saturated']:9.3f} {r['dead']:6.3f} "
                      f"{r['grad_norm']:10.3g} {r['grad_std']:9.3g} {r['spectral_norm']:8.3g} "
                      f"{r['stable_rank']:11.3g}\n")
        j = self.jacobian
        out.write(f"\ninput-output Jacobian ({j['samples']} samples): singular values "
                  f"{j['sv_min']:.3g} .. {j['sv_max']:.3g}, condition {j['condition']:.3g}\n")
        out.write(f"forward gain {self.forward_gain:.3g}, backward gain {self.backward_gain:.3g}, "
                  f"per-layer variance factor {self.variance_factor:.3g}\n")
        out.write(f"verdict: {self.verdict}\n")
        out.write(f"evidence: {self.evidence}\n")
        out.write(f"suggestion: {self.suggestion}\n")
        return out.getvalue()


def _ratio(num: float, den: float) -> float:
    if den == 0.0:
        return math.inf if num > 0 else 1.0
    return num / den


def _log10(x: float) -> float:
    if x <= 0.0:
        return -math.inf
    return math.log10(x) if math.isfinite(x) else math.inf


def diagnose(net: "Network", X: Any, y: Any = None, *, jacobian_samples: int = 4,
             seed: int = 0) -> Diagnosis:
    """Diagnose `net` on the batch X (see the module docstring for every quantity and threshold)."""
    X, y = net._prepare(X, y)
    n = X.shape[0]
    jacobian_samples = min(check_int("jacobian_samples", jacobian_samples, 1), n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")

    rows = layer_rows(net, X, y, grad_seed=seed)
    for row in rows:
        W = net.layers[row["layer"]].W
        W = W.reshape(-1, W.shape[-1])  # a conv kernel (kh, kw, C_in, C_out) as its (kh*kw*C_in, C_out) matrix
        spectral = _spectral_norm(W)
        frobenius_sq = _core.sum_of_squares(W)  # stable rank = ||W||_F^2 / ||W||_2^2
        row["spectral_norm"] = spectral
        row["stable_rank"] = frobenius_sq / spectral ** 2 if spectral > 0 else 0.0

    jacobian = _jacobian_spectrum(net, X[:jacobian_samples])
    # Gains across the hidden stack (the output layer's change of width would add a one-off
    # factor fan_out/fan_in to the backward gain); across every layer when there is <= 1 hidden.
    top = len(rows) - 2 if len(rows) >= 3 else len(rows) - 1
    forward_gain = _ratio(rows[top]["pre_std"], rows[0]["pre_std"])
    backward_gain = _ratio(rows[0]["grad_std"], rows[top]["grad_std"])
    steps = max(1, top)
    variance_factor = forward_gain ** (2.0 / steps) if math.isfinite(forward_gain) else math.inf
    verdict, evidence = _verdict(rows, forward_gain, backward_gain, variance_factor)
    suggestion = _suggest(net, rows, verdict, variance_factor)
    return Diagnosis(rows, jacobian, forward_gain, backward_gain, variance_factor, verdict, evidence,
                     suggestion)


def _spectral_norm(W: np.ndarray, max_iter: int = 300, rtol: float = 1e-12) -> float:
    """||W||_2 by power iteration, computed with the core's GEMM in float64 (no LAPACK: a full SVD
    goes through the BLAS's thread pool, which on a loaded machine was 100x slower).

    G = W^T W or W W^T (the smaller Gram matrix), normalized by its trace so that its eigenvalues
    are <= 1, is squared three times (G^8: the eigenvalue gap widens to (l2/l1)^8), then
    v <- G^8 v / ||G^8 v|| until the Rayleigh quotient settles; ||W||_2^2 = v.Gv * trace.
    Only the top singular value is needed: stable rank = ||W||_F^2 / ||W||_2^2.
    """
    W64 = np.ascontiguousarray(W, dtype=np.float64)
    I, O = W64.shape
    k = min(I, O)
    trace = _core.sum_of_squares(W64)          # trace of either Gram matrix = ||W||_F^2
    if trace == 0.0 or not math.isfinite(trace):
        return 0.0 if trace == 0.0 else math.inf
    gram = np.empty((k, k))
    _core.gemm(W64, W64, gram, alpha=1.0 / trace, trans_a=I >= O, trans_b=I < O)
    power = gram
    for _ in range(3):                         # power := power @ power, three times: G^8
        squared = np.empty_like(power)
        _core.gemm(power, power, squared)
        power = squared
    v = np.random.default_rng(0).standard_normal((k, 1))  # fixed start: deterministic result
    v /= np.linalg.norm(v)
    w = np.empty_like(v)
    previous = -1.0
    for _ in range(max_iter):
        _core.gemm(power, v, w)
        rayleigh = float(v[:, 0] @ w[:, 0])
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            break
        np.divide(w, norm, out=v)
        if abs(rayleigh - previous) <= rtol * rayleigh:
            break
        previous = rayleigh
    _core.gemm(gram, v, w)
    return math.sqrt(max(float(v[:, 0] @ w[:, 0]), 0.0) * trace)


def _jacobian_spectrum(net: "Network", samples: np.ndarray) -> Dict[str, Any]:
    """Singular values of d(logits)/dx for each sample: K backward passes per sample, batched
    as S*K rows (each sample repeated K times, output gradient = identity rows)."""
    S, K = samples.shape[0], net.output_dim
    ws = net._pass(S * K)
    repeated = np.ascontiguousarray(np.repeat(samples, K, axis=0))
    net._run_forward(ws, repeated, training=False)
    ws.output_grad[...] = np.tile(np.eye(K, dtype=net.dtype), (S, 1))
    net._run_backward(ws, repeated, need_dX=True)
    inputs = int(np.prod(samples.shape[1:]))  # an image's H*W*C values
    if not (_core.all_finite(ws.logits) and _core.all_finite(ws.X_grad)):  # overflow: no spectrum
        values = np.full((S, min(K, inputs)), np.nan)
        return {"samples": S, "singular_values": values, "sv_max": math.nan, "sv_min": math.nan,
                "condition": math.nan, "log10_spread": math.nan}
    values = np.stack([np.linalg.svd(ws.X_grad[s * K:(s + 1) * K].reshape(K, inputs).astype(np.float64),
                                     compute_uv=False) for s in range(S)])
    sv_max = values[:, 0]
    sv_min = values[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        condition = float(np.median(np.where(sv_min > 0, sv_max / sv_min, np.inf)))
        logs = np.log10(np.maximum(values, np.finfo(np.float64).tiny))
    return {"samples": S, "singular_values": values, "sv_max": float(sv_max.mean()),
            "sv_min": float(sv_min.mean()), "condition": condition,
            "log10_spread": float(np.mean(np.std(logs, axis=1)))}


def _verdict(rows: List[Dict[str, Any]], forward_gain: float, backward_gain: float,
             variance_factor: float):
    hidden = rows[:-1]
    overflow = [r["layer"] for r in rows
                if not all(math.isfinite(r[k]) for k in ("pre_std", "act_std", "grad_std"))]
    if overflow:
        return "exploding", (f"activations or gradients overflow to inf/NaN from layer {overflow[0]} "
                             f"(non-finite in layers {overflow})")
    zero = [r["layer"] for r in hidden if r["spectral_norm"] == 0.0]
    if zero:
        return "vanishing", (f"hidden layer {zero[0]} has all-zero weights: no signal and no "
                             f"gradient pass it, and its units stay identical (symmetry)")
    relu_rows = [r for r in hidden if r["activation"] in RELU_FAMILY]
    if relu_rows:
        worst = max(relu_rows, key=lambda r: r["dead"])
        mean_dead = sum(r["dead"] for r in relu_rows) / len(relu_rows)
        if worst["dead"] >= DEAD_LAYER or mean_dead >= DEAD_MEAN:
            return "dead", (f"layer {worst['layer']} has {worst['dead']:.0%} of its units dead on the "
                            f"whole batch (mean over ReLU-family layers {mean_dead:.0%}; thresholds "
                            f"{DEAD_LAYER:.0%} per layer, {DEAD_MEAN:.0%} mean)")
    sat_rows = [r for r in hidden if r["activation"] in SATURATING]
    if sat_rows:
        mean_sat = sum(r["saturated"] for r in sat_rows) / len(sat_rows)
        if mean_sat >= SATURATED_MEAN:
            worst = max(sat_rows, key=lambda r: r["saturated"])
            return "saturated", (f"{mean_sat:.0%} of tanh/sigmoid activations are saturated on "
                                 f"average (layer {worst['layer']}: {worst['saturated']:.0%}, "
                                 f"pre-activation std {worst['pre_std']:.3g}); threshold "
                                 f"{SATURATED_MEAN:.0%}")
    lf, lb = _log10(forward_gain), _log10(backward_gain)
    gains = (f"forward gain (std of last/first hidden pre-activation) {forward_gain:.3g}, backward gain "
             f"(std of first/last hidden gradient) {backward_gain:.3g}, per-layer variance factor "
             f"{variance_factor:.3g}; threshold a factor 10^{GAIN_DECADES:g}")
    if max(lf, lb) >= GAIN_DECADES:
        return "exploding", gains
    if min(lf, lb) <= -GAIN_DECADES:
        return "vanishing", gains
    return "healthy", gains


def _suggest(net: "Network", rows: List[Dict[str, Any]], verdict: str, variance_factor: float) -> str:
    acts = [r["activation"] for r in rows[:-1]] or ["linear"]
    dominant = max(set(acts), key=acts.count)
    name, why = _RECOMMENDED.get(dominant, _RECOMMENDED["relu"])
    current = sorted({layer.init_name for layer in net.layers if layer.has_weights})
    if verdict == "healthy":
        return f"keep the current initialization ({', '.join(current)}): the signal keeps its scale"
    if verdict in ("vanishing", "exploding"):
        return (f"{name}: {why}. The measured per-layer variance factor is {variance_factor:.3g}; "
                f"1.0 keeps the signal's scale (multiply Var(W) by about {1 / variance_factor:.3g} "
                f"if you keep the scheme)" if variance_factor > 0 and math.isfinite(variance_factor)
                else f"{name}: {why}")
    if verdict == "saturated":
        return (f"{name}: {why}. Pre-activations are too large for {dominant}; shrinking the weights "
                f"brings them back into the range where the gradient flows")
    return (f"{name} with a wider or shallower network, or leaky_relu: narrow deep ReLU nets lose "
            f"units that are off for every input (Lu et al. 2019, 'Dying ReLU and Initialization'); "
            f"a small positive bias_init such as ('constant', {{'value': 0.01}}) also revives units")
