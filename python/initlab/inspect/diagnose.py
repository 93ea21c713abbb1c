"""`Network.diagnose`: are units symmetric, does the signal explode, saturate, vanish or die?

One forward pass of X (dropout off) and one backward pass give, per layer i:
    pre_mean, pre_std, act_mean, act_std  moments of Z_i and A_i = act(Z_i) over the batch
    saturated    fraction of |tanh| > 0.99 or sigmoid outside [0.01, 0.99]
    dead         fraction of relu units with Z <= 0 on every row (relu' = 0 there: no gradient
                 reaches them); 0 for leaky_relu/elu/selu/..., whose slope is never 0
    grad_norm    ||dL/dW_i||_F
    grad_std     std of the back-propagated gradient dL/dZ_i
    spectral_norm ||W_i||_2, and stable_rank = ||W_i||_F^2 / ||W_i||_2^2
The backward pass starts from the loss gradient when y is given, otherwise from a unit-variance
Gaussian output gradient (seeded). The input-output Jacobian d(logits)/dx (K x n_in) of a few
samples gives the singular-value spread: dynamical isometry (Saxe et al. 2013; Pennington et al.
2017) means these singular values sit near 1.

Symmetry is read from the weights: units j, k of a hidden layer are symmetric when their incoming
weights (columns W[:, j], W[:, k]), biases b[j], b[k] and outgoing weights (rows j, k of the next
layer's W) are equal. Their activations, hence their gradients, are then equal on every input, so
gradient descent (dropout off) keeps them equal forever and the layer acts as fewer units. Units
with equal incoming weights but different outgoing weights get different gradients and separate:
they are not symmetric.

The gains across the depth of the network,
    forward gain   g_f = pre_std(Z_top) / pre_std(Z_0)
    backward gain  g_b = grad_std(dZ_0) / grad_std(dZ_top)
where top is the last hidden layer (the output layer when there are fewer than 2 hidden layers:
the output's change of width alone would scale the backward gain by fan_out/fan_in).

`.findings` lists every problem found, causes before symptoms, in this order:
    "symmetric"  a hidden layer has symmetric units (zeros/ones/constant init of the whole net);
    "exploding"  activations or gradients overflow to inf/NaN;
    "saturated"  tanh/sigmoid hidden layers are saturated on average >= SATURATED_MEAN;
    "exploding"  max(log10 g_f, log10 g_b) >= GAIN_DECADES;
    "vanishing"  min(log10 g_f, log10 g_b) <= -GAIN_DECADES, or a hidden layer's weights are all
                 zero (nothing passes it);
    "dead"       a relu hidden layer has >= DEAD_LAYER of its units dead on the whole batch, or the
                 relu layers' mean dead fraction is >= DEAD_MEAN.
`.verdict` is the first finding's kind, "healthy" when there is none; `.evidence` and `.suggestion`
are that finding's. Each suggestion names the initlab call and the PyTorch equivalent.

Calibration (30 hidden layers of width 256, 128 rows of N(0, 1) inputs, seeds 0-2 unless said; the
cases are tests/test_diagnose.py):
    relu + he_normal           g_f, g_b in [0.67, 1.13]; dead <= 0.40 per layer, ~0.19 on average
                               (inputs grow correlated with depth, so a unit tends to be off for the
                               whole batch: deep ReLU nets at any weight scale, not an init fault)
                                                                                    -> healthy
    relu + xavier_normal       g ~ 3e-5..5e-5 (variance factor 0.5 per layer)      -> vanishing
    relu + N(0, 1)             g ~ 3e30 (variance factor 128 per layer)             -> exploding
    tanh + N(0, 1)             87% of the units saturated, g_b ~ 4e13               -> saturated,
                               exploding (6 layers of 128 on digits: 84% saturated, g_b 42, the same)
    relu + he_normal, width 4  >= 75% of a layer dead (all seeds); seeds 0, 1 also lose the
                               signal before the first completely dead layer  -> vanishing, dead
                               (seed 2: dead)
    tanh + xavier_normal       g ~ 0.13-0.16: the slow 1/sqrt(depth) decay of tanh  -> healthy
    sigmoid + xavier_normal (10 layers) g_b ~ 2e-6                                  -> vanishing
Cases of the classic tutorial (digits, standardized, 256 rows; tests/test_diagnose.py):
    zeros, any activation (64-48-32-10)  every hidden layer one unit            -> symmetric,
                               vanishing (all-zero layers; relu also: dead, z = 0 everywhere)
    tanh + constant(value=0.05)  all units identical, 100% saturated            -> symmetric,
                                                                                   saturated, vanishing
    relu + constant(value=0.02)  all units identical, nothing else wrong        -> symmetric
    the tanh constant net after 3 epochs of SGD: the spread between units is exactly 0 -> symmetric
    leaky_relu/elu/selu/gelu/softplus, 12 layers of width 4: dead = 0 in every row (relu: a layer
                               >= 75% dead)                                     -> never dead
    relu + xavier_normal, 30 layers of 64, after 10 stalled epochs of SGD (loss 2.30): g_b ~ 5e-6,
                               >= 83% dead in layers 25-29                      -> vanishing, dead
The thresholds sit between these regimes with a factor ~2 (dead) or several decades (gains) of
margin, except tanh + xavier_normal: at 30 layers it sits 0.9 decades down, near the threshold, and
deeper tanh stacks read "vanishing" (their gradients do shrink). Fewer rows make "dead on the whole
batch" likelier: diagnose on >= 64 rows.

The model-agnostic core, for any framework's weights and statistics (the PyTorch bridge uses it):
    symmetric_units(W, b, W_next) -> list of groups of unit indices (each of >= 2 symmetric units)
        W: (..., fan_in, fan_out) in the in_out layout (a Dense W, or a conv kernel (kh, kw, C_in,
        C_out): a unit is a column / an output channel); b: (fan_out,) or None (no bias: zeros);
        W_next: the next layer's weights in the in_out layout, whose second-to-last axis is this
        layer's units ((fan_out, next) for a Dense, (kh, kw, fan_out, F) for a conv), or None for
        the output layer (no outgoing weights: returns []). Equality is exact (-0.0 == 0.0).
    build_diagnosis(rows, jacobian=None, *, symmetric=None, inits=None, style="initlab") -> Diagnosis
        rows: one dict per layer with weights, in order, with the keys of `Diagnosis.layers`
        (layer, activation, pre_mean, pre_std, act_mean, act_std, saturated, dead, grad_norm,
        grad_std, spectral_norm, stable_rank; optional: fan_in, fan_out, param (the activation's
        slope/alpha)); the last row is the output layer, its activation as the rows report it.
        jacobian: the dict of `Diagnosis.jacobian` (None: not measured, NaN entries).
        symmetric: {layer: groups} from symmetric_units (the rows' `layer` numbers as keys).
        inits: the initializer of each row, a list aligned with rows or {layer: name}.
        style: "initlab" (suggestions lead with `init="he_normal"`) or "torch" (they lead with
        `torch.nn.init.kaiming_normal_`); either way both are named.
"""
from __future__ import annotations

import dataclasses
import html
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from ..init.random import check_seed
from ..nn._checks import check_int
from ..nn.activations import REGISTRY, SATURATING, ZERO_DERIVATIVE_INTERVAL
from .statistics import layer_rows

if TYPE_CHECKING:  # pragma: no cover
    from ..nn.network import Network

DEAD_LAYER = 0.75       # wide deep he_normal ReLU nets: <= ~0.4 per layer; narrow ones collapse
DEAD_MEAN = 0.4         # deep wide he_normal ReLU nets: ~0.19 on average; narrow deep ones: 0.4+
SATURATED_MEAN = 0.3    # healthy tanh (xavier): ~1%; tanh with N(0, 1) weights at width 256: ~87%
GAIN_DECADES = 1.0      # a factor of 10 in std across the whole network

DYING = ZERO_DERIVATIVE_INTERVAL  # derivative exactly 0 on an interval (relu): units that can die
VERDICTS = ("healthy", "symmetric", "vanishing", "exploding", "saturated", "dead")
STYLES = ("initlab", "torch")


@dataclass(frozen=True)
class Recommendation:
    """The initializer that keeps Var(Z) constant through an activation, in both libraries."""

    initlab: str        # a spec for `init=` (il.init.get reads it)
    torch: str          # the torch.nn.init call on a weight `w`
    why: str


_RECOMMENDED: Dict[str, Recommendation] = {
    "relu": Recommendation("he_normal", 'torch.nn.init.kaiming_normal_(w, nonlinearity="relu")',
                           "Var(W) = 2/fan_in keeps Var(Z) constant through ReLU (He et al. 2015)"),
    "leaky_relu": Recommendation(
        "he_normal(a={param})", "torch.nn.init.kaiming_normal_(w, a={param})",
        "Var(W) = 2/((1+a^2) fan_in) with a the negative slope keeps Var(Z) constant (He et al. 2015)"),
    "elu": Recommendation("he_normal", 'torch.nn.init.kaiming_normal_(w, nonlinearity="relu")',
                          "ELU passes about half the variance, as ReLU does "
                          "(il.init.estimate_gain('elu') gives the exact gain)"),
    "selu": Recommendation("lecun_normal", 'torch.nn.init.kaiming_normal_(w, nonlinearity="linear")',
                           "Var(W) = 1/fan_in is SELU's self-normalizing fixed point "
                           "(Klambauer et al. 2017)"),
    "gelu": Recommendation("he_normal", 'torch.nn.init.kaiming_normal_(w, nonlinearity="relu")',
                           "GELU passes about half the variance, like ReLU "
                           "(il.init.estimate_gain('gelu') gives the exact gain)"),
    "softplus": Recommendation("he_normal", 'torch.nn.init.kaiming_normal_(w, nonlinearity="relu")',
                               "variance_scaling with scale = il.init.estimate_gain('softplus')^2 "
                               "keeps Var constant; he_normal is close"),
    "tanh": Recommendation("xavier_normal", "torch.nn.init.xavier_normal_(w)",
                           "Var(W) = 2/(fan_in+fan_out) keeps tanh in its linear range "
                           "(Glorot & Bengio 2010); orthogonal(gain=5/3) also works"),
    "sigmoid": Recommendation("xavier_normal", "torch.nn.init.xavier_normal_(w)",
                              "Var(W) = 2/(fan_in+fan_out) keeps sigmoid away from its flat tails "
                              "(Glorot & Bengio 2010)"),
    "linear": Recommendation("orthogonal", "torch.nn.init.orthogonal_(w)",
                             "orthogonal weights preserve norms exactly in a linear network "
                             "(Saxe et al. 2013)"),
}


def _from_gain(activation: str) -> Optional[Recommendation]:
    """For a registry activation without a row above: Var(W) = gain^2/fan_in with the registry's
    gain (the variance-preserving one where PyTorch has none), so a new activation gets a right
    suggestion without an edit here."""
    if activation not in REGISTRY:
        return None
    g = REGISTRY[activation]["gain"]
    return Recommendation(f"variance_scaling(scale={g * g:.6g},mode=fan_in,distribution=normal)",
                          f"torch.nn.init.normal_(w, std={g:.6g} / math.sqrt(fan_in))",
                          f"Var(W) = gain^2/fan_in with {activation}'s gain {g:.6g} "
                          f"(il.init.gain('{activation}')) keeps Var(Z) constant")


@dataclass(frozen=True)
class Finding:
    """One problem the diagnosis found: `kind` (a verdict other than "healthy"), `layers`
    (positions in `net.layers`, the rows' `layer` numbers), `evidence` (the numbers) and
    `suggestion` (the initlab call and its PyTorch equivalent, with why)."""

    kind: str
    layers: Tuple[int, ...]
    evidence: str
    suggestion: str

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "layers": list(self.layers), "evidence": self.evidence,
                "suggestion": self.suggestion}

    def __str__(self) -> str:
        return f"{self.kind} (layers {_layer_list(self.layers)}): {self.evidence}\n   -> {self.suggestion}"


class Diagnosis:
    """The result of `Network.diagnose`: per-layer rows, Jacobian spectrum, findings and a verdict.

    Attributes: `layers` (list of dicts, one per layer with weights, see the module docstring),
    `jacobian` (dict: `samples`, `singular_values` (samples, min(K, n_in)), `sv_max`, `sv_min`,
    `condition` (median of sv_max/sv_min), `log10_spread` (mean std of log10 singular values)),
    `forward_gain`, `backward_gain`, `variance_factor` (measured Var(Z_{i+1})/Var(Z_i), geometric
    mean over layers), `symmetric` ({layer: groups of symmetric unit indices}), `findings` (list of
    `Finding`, causes before symptoms), `verdict` (`findings[0].kind` or "healthy"), `evidence`
    and `suggestion` (str: the first finding's, or why the net is healthy).
    """

    def __init__(self, layers: List[Dict[str, Any]], jacobian: Dict[str, Any], forward_gain: float,
                 backward_gain: float, variance_factor: float, verdict: str, evidence: str,
                 suggestion: str, findings: Sequence[Finding] = (),
                 symmetric: Optional[Dict[int, List[List[int]]]] = None) -> None:
        self.layers = layers
        self.jacobian = jacobian
        self.forward_gain = forward_gain
        self.backward_gain = backward_gain
        self.variance_factor = variance_factor
        self.verdict = verdict
        self.evidence = evidence
        self.suggestion = suggestion
        self.findings = list(findings)
        self.symmetric = dict(symmetric or {})
        # mean-field reading of a dense net whose hidden layers share one activation
        # (`initlab.theory.from_weights`), else None
        self.theory: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        jac = dict(self.jacobian)
        jac["singular_values"] = np.asarray(jac["singular_values"]).tolist()
        return {"layers": self.layers, "jacobian": jac, "forward_gain": self.forward_gain,
                "backward_gain": self.backward_gain, "variance_factor": self.variance_factor,
                "verdict": self.verdict, "evidence": self.evidence, "suggestion": self.suggestion,
                "findings": [f.to_dict() for f in self.findings],
                "symmetric": {str(k): v for k, v in self.symmetric.items()}, "theory": self.theory}

    def __repr__(self) -> str:
        kinds = [f.kind for f in self.findings]
        return f"Diagnosis(verdict={self.verdict!r}, findings={kinds}, layers={len(self.layers)})"

    _COLUMNS = (("layer", "layer", "d"), ("activation", "activation", "s"), ("pre_mean", "pre_mean", "g"),
                ("pre_std", "pre_std", "g"), ("act_mean", "act_mean", "g"), ("act_std", "act_std", "g"),
                ("saturated", "saturated", ".3f"), ("dead", "dead", ".3f"), ("grad_norm", "||dW||_F", "g"),
                ("grad_std", "grad_std", "g"), ("spectral_norm", "||W||_2", "g"),
                ("stable_rank", "stable_rank", "g"))

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
        if self.theory is not None:
            out.write(f"{_theory_line(self.theory)}\n")
        out.write(f"verdict: {self.verdict}\n")
        out.write(f"evidence: {self.evidence}\n")
        out.write(f"suggestion: {self.suggestion}\n")
        if len(self.findings) > 1:
            out.write(f"\nall findings ({len(self.findings)}, causes first):\n")
            for k, f in enumerate(self.findings, 1):
                out.write(f"{k}. {f}\n")
        return out.getvalue()

    def _repr_html_(self) -> str:
        """Jupyter: the verdict, the findings and the per-layer table."""
        esc = html.escape
        parts = [f"<div><p><b>verdict: {esc(self.verdict)}</b></p>"]
        if self.findings:
            parts.append("<table><tr><th>finding</th><th>layers</th><th>evidence</th>"
                         "<th>suggestion</th></tr>")
            for f in self.findings:
                parts.append(f"<tr><td>{esc(f.kind)}</td><td>{esc(_layer_list(f.layers))}</td>"
                             f"<td>{esc(f.evidence)}</td><td>{esc(f.suggestion)}</td></tr>")
            parts.append("</table>")
        else:
            parts.append(f"<p>{esc(self.evidence)}<br>{esc(self.suggestion)}</p>")
        parts.append("<table><tr>" + "".join(f"<th>{esc(title)}</th>" for _, title, _ in self._COLUMNS)
                     + "</tr>")
        for r in self.layers:
            cells = []
            for key, _, fmt in self._COLUMNS:
                value = r.get(key, "")
                cells.append(f"<td>{esc(format(value, fmt) if fmt != 's' else str(value))}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
        j = self.jacobian
        parts.append(f"<p>input-output Jacobian ({j['samples']} samples): singular values "
                     f"{j['sv_min']:.3g} .. {j['sv_max']:.3g}, condition {j['condition']:.3g}; "
                     f"forward gain {self.forward_gain:.3g}, backward gain {self.backward_gain:.3g}, "
                     f"per-layer variance factor {self.variance_factor:.3g}</p></div>")
        return "".join(parts)


def _theory_line(t: Dict[str, Any]) -> str:
    return (f"mean field (Schoenholz et al. 2017): sigma_w2 {t['sigma_w2']:.3g}, sigma_b2 {t['sigma_b2']:.3g} "
            f"(from the weights), chi_1 {t['chi_1']:.3g} ({t['phase']}), xi_c {t['xi_c']:.3g} layers; "
            f"{t['message']}")


def _mean_field_reading(net: "Network") -> Optional[Dict[str, Any]]:
    """`theory.from_weights` for a net of Dense layers whose hidden layers share one activation
    (with its default parameter, which the theory uses); None for any other net."""
    from .. import theory
    from ..nn.activations import ACTIVATIONS
    from ..nn.layers import Dense
    hidden = net.layers[:-1]
    if not hidden or not all(isinstance(layer, Dense) for layer in net.layers):
        return None
    activations = {(layer.activation, layer.act_param) for layer in hidden}
    if len(activations) != 1:
        return None
    (activation, param), = activations
    default = ACTIVATIONS.get(activation)
    if activation not in ACTIVATIONS or (default is not None and param != default):
        return None
    try:
        return theory.from_weights([layer.W for layer in hidden], [layer.b for layer in hidden], activation)
    except ValueError:      # non-finite weights: the findings say so
        return None


def _layer_list(layers: Sequence[int]) -> str:
    """"3" or "0-29" or "2, 5, 7": compact, for tables."""
    layers = list(layers)
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ", ".join(str(k) for k in layers)


def _ratio(num: float, den: float) -> float:
    if den == 0.0:
        return math.inf if num > 0 else 1.0
    return num / den


def _log10(x: float) -> float:
    if x <= 0.0:
        return -math.inf
    return math.log10(x) if math.isfinite(x) else math.inf


# ---- symmetry: from plain arrays -----------------------------------------------------------------
def symmetric_units(W: Any, b: Any = None, W_next: Any = None) -> List[List[int]]:
    """Groups (each >= 2 units, indices ascending) of one layer's symmetric units: equal incoming
    weights, biases and outgoing weights. Shapes: see the module docstring (in_out layout).

    >>> W = np.full((3, 4), 0.5); W_next = np.full((4, 2), 0.1)
    >>> symmetric_units(W, np.zeros(4), W_next)
    [[0, 1, 2, 3]]
    >>> W_next[1] = 0.2                       # unit 1's outgoing weights differ: it separates
    >>> symmetric_units(W, np.zeros(4), W_next)
    [[0, 2, 3]]
    """
    if W_next is None:
        return []
    W = np.asarray(W)
    if W.ndim < 2:
        raise ValueError(f"symmetric_units: W must have >= 2 dimensions (in_out layout), got shape "
                         f"{W.shape}")
    units = W.shape[-1]
    W_next = np.asarray(W_next)
    if W_next.ndim < 2 or W_next.shape[-2] != units:
        raise ValueError(f"symmetric_units: W_next's second-to-last axis must be W's {units} units, "
                         f"got shape {W_next.shape}")
    incoming = W.reshape(-1, units).T                               # (units, fan_in)
    outgoing = np.moveaxis(W_next, -2, 0).reshape(units, -1)        # (units, everything else)
    if b is not None and np.asarray(b).size != units:
        raise ValueError(f"symmetric_units: b must have {units} entries, got {np.asarray(b).size}")
    bias = np.zeros((units, 1)) if b is None else np.asarray(b, dtype=np.float64).reshape(units, 1)
    signature = np.concatenate([incoming.astype(np.float64), bias, outgoing.astype(np.float64)], axis=1)
    signature = np.ascontiguousarray(signature + 0.0)               # -0.0 -> 0.0
    # Equal rows by a lexicographic sort, not np.unique(axis=0): that compares structured views, and
    # numpy turns a KeyboardInterrupt arriving there into "Cannot compare structured arrays" (seen
    # as a Ctrl-C during a sweep ending in that TypeError instead of stopping cleanly).
    order = np.lexsort(signature.T[::-1])
    ranked = signature[order]
    starts = np.ones(units, dtype=bool)
    starts[1:] = (ranked[1:] != ranked[:-1]).any(axis=1)            # NaN never equals: own group
    group_of_ranked = np.cumsum(starts) - 1
    inverse = np.empty(units, dtype=np.int64)
    inverse[order] = group_of_ranked
    counts = np.bincount(group_of_ranked)
    groups = [np.flatnonzero(inverse == g).tolist() for g in np.flatnonzero(counts >= 2)]
    return sorted(groups)


def _weights(layer: Any) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(W, b) of a layer with parameters (the layer interface lists W first, then b), else None."""
    params = layer.parameters()
    if not params:
        return None, None
    return params[0][0], (params[1][0] if len(params) > 1 else None)


def _network_symmetry(net: "Network") -> Dict[int, List[List[int]]]:
    """{position in net.layers: groups} for every hidden layer with symmetric units."""
    found: Dict[int, List[List[int]]] = {}
    weighted = [(i, *_weights(layer)) for i, layer in enumerate(net.layers)]
    weighted = [entry for entry in weighted if entry[1] is not None]
    for (i, W, b), (_, W_next, _) in zip(weighted, weighted[1:]):
        if W_next.ndim != W.ndim:  # e.g. conv -> flatten -> dense: rows per position
            continue
        groups = symmetric_units(W, b, W_next)
        if groups:
            found[i] = groups
    return found


# ---- rows -> findings -> Diagnosis ---------------------------------------------------------------
def _init_of(inits: Union[None, Sequence[Any], Mapping[int, Any]], rows: List[Dict[str, Any]]) -> Dict[int, str]:
    if inits is None:
        return {}
    if isinstance(inits, Mapping):
        return {int(k): str(v) for k, v in inits.items()}
    inits = list(inits)
    if len(inits) != len(rows):
        raise ValueError(f"build_diagnosis: inits must have one entry per row ({len(rows)}), got "
                         f"{len(inits)}")
    return {r["layer"]: str(name) for r, name in zip(rows, inits)}


class _Advice:
    """Suggestions phrased for initlab users (`init="he_normal"`) or PyTorch users
    (`torch.nn.init.kaiming_normal_`), each naming both."""

    def __init__(self, style: str, rows: List[Dict[str, Any]]) -> None:
        if style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
        self.style = style
        hidden = rows[:-1] or rows
        acts = [r["activation"] for r in hidden]
        self.dominant = max(dict.fromkeys(acts), key=acts.count)
        params = [r.get("param") for r in hidden if r["activation"] == self.dominant and r.get("param") is not None]
        self.param = params[0] if params else 0.01

    def recommended(self) -> Tuple[str, str, str]:
        rec = _RECOMMENDED.get(self.dominant) or _from_gain(self.dominant) or _RECOMMENDED["relu"]
        fill = {"param": f"{self.param:g}"}
        return rec.initlab.format(**fill), rec.torch.format(**fill), rec.why

    def call(self, initlab: str, torch: str, arg: str = "init") -> str:
        if self.style == "torch":
            return f"{torch} (initlab: il.torch.init_(model, {arg}=\"{initlab}\"))"
        return f"{arg}=\"{initlab}\" (PyTorch: {torch})"

    def use(self, extra: str = "") -> str:
        initlab, torch, why = self.recommended()
        return f"{self.call(initlab, torch)}: {why}{extra}"


def _hidden_span(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return rows[:-1] if len(rows) >= 2 else rows


def _symmetric_finding(rows, symmetric, inits, advice) -> Optional[Finding]:
    if not symmetric:
        return None
    by_layer = {r["layer"]: r for r in rows}
    collapsed, parts = [], []
    for layer in sorted(symmetric):
        groups = symmetric[layer]
        units = by_layer.get(layer, {}).get("fan_out")
        tied = sum(len(g) for g in groups)
        if units and len(groups) == 1 and tied == units:
            collapsed.append(layer)
        elif units:
            parts.append(f"layer {layer}: {tied} of {units} units in {len(groups)} group(s) of "
                         f"identical units ({units - tied + len(groups)} distinct)")
        else:
            parts.append(f"layer {layer}: {len(groups)} group(s) of identical units "
                         f"(largest {max(len(g) for g in groups)})")
    if collapsed:
        which = (f"layer {collapsed[0]}" if len(collapsed) == 1
                 else f"layers {_layer_list(collapsed)}")
        parts.insert(0, f"in {which} all units are identical (equal incoming weights, biases and "
                        f"outgoing weights): each such layer acts as one unit")
    names = sorted({inits[k] for k in symmetric if k in inits})
    given = f" (initialized with {', '.join(names)})" if names else ""
    evidence = ("; ".join(parts) + f"{given}. Their gradients are equal too, so gradient descent "
                f"(dropout off) never tells them apart")
    initlab, torch, _ = advice.recommended()
    suggestion = (f"break the symmetry with random weights, {advice.call(initlab, torch)}; the "
                  f"biases may stay zero once the weights are random (bias_init=\"zeros\", "
                  f"PyTorch: torch.nn.init.zeros_(b))")
    return Finding("symmetric", tuple(sorted(symmetric)), evidence, suggestion)


def _nonfinite_finding(rows, advice) -> Optional[Finding]:
    overflow = [r["layer"] for r in rows
                if not all(math.isfinite(r[k]) for k in ("pre_std", "act_std", "grad_std"))]
    if not overflow:
        return None
    evidence = (f"activations or gradients overflow to inf/NaN from layer {overflow[0]} (non-finite "
                f"in layers {_layer_list(overflow)})")
    return Finding("exploding", tuple(overflow), evidence,
                   advice.use(". The weights are far too large for this depth; gradient clipping "
                              "(fit(clip_norm=1.0), PyTorch: torch.nn.utils.clip_grad_norm_) keeps "
                              "training finite but does not fix the scale"))


def _saturated_finding(rows, advice) -> Optional[Finding]:
    sat_rows = [r for r in _hidden_span(rows)[:len(rows) - 1] if r["activation"] in SATURATING]
    if not sat_rows:
        return None
    mean_sat = sum(r["saturated"] for r in sat_rows) / len(sat_rows)
    if not mean_sat >= SATURATED_MEAN:
        return None
    worst = max(sat_rows, key=lambda r: r["saturated"])
    layers = tuple(r["layer"] for r in sat_rows if r["saturated"] >= SATURATED_MEAN) or (worst["layer"],)
    evidence = (f"{mean_sat:.0%} of tanh/sigmoid activations are saturated on average (layer "
                f"{worst['layer']}: {worst['saturated']:.0%}, pre-activation std "
                f"{worst['pre_std']:.3g}); threshold {SATURATED_MEAN:.0%}")
    return Finding("saturated", layers, evidence,
                   advice.use(f". Pre-activations are too large for {advice.dominant}; smaller "
                              f"weights bring them back where the gradient flows"))


def _gain_findings(rows, advice) -> Tuple[Optional[Finding], Optional[Finding]]:
    """Exploding / vanishing from the gains across the live part of the stack.

    A relu layer dead on every unit passes a constant forward and no gradient back, so the gains
    through it are 0 by construction: that is the "dead" finding's to report. The forward gain is
    then measured up to that layer (its own Z still sees the signal) and the backward gain above it.
    """
    t = len(rows) - 2 if len(rows) >= 3 else len(rows) - 1
    k = next((i for i, r in enumerate(rows[:-1]) if r["activation"] in DYING and r["dead"] >= 1.0), None)
    f_end = t if k is None else min(k, t)
    b_start = 0 if k is None else k + 1
    forward_gain = _ratio(rows[f_end]["pre_std"], rows[0]["pre_std"])
    backward_gain = _ratio(rows[b_start]["grad_std"], rows[t]["grad_std"]) if b_start < t else 1.0
    variance_factor = (forward_gain ** (2.0 / max(1, f_end)) if math.isfinite(forward_gain)
                       else math.inf)
    lf, lb = _log10(forward_gain), _log10(backward_gain)
    live = "" if k is None else (f" (measured on the live layers: forward up to the completely dead "
                                 f"layer {rows[k]['layer']}, backward above it)")
    gains = (f"forward gain (std of last/first hidden pre-activation) {forward_gain:.3g}, backward gain "
             f"(std of first/last hidden gradient) {backward_gain:.3g}, per-layer variance factor "
             f"{variance_factor:.3g}{live}; threshold a factor 10^{GAIN_DECADES:g}")
    scale = ""
    if variance_factor > 0 and math.isfinite(variance_factor) and abs(math.log10(variance_factor)) > 0.1:
        scale = (f". The measured per-layer variance factor is {variance_factor:.3g}; 1.0 keeps the "
                 f"signal's scale (multiply Var(W) by about {1 / variance_factor:.3g} if you keep "
                 f"the scheme)")

    def where(direction: int) -> Tuple[int, ...]:
        """The layers whose forward or backward signal is 10^GAIN_DECADES off the reference."""
        out = set()
        for i in range(0, f_end + 1):
            f = _log10(_ratio(rows[i]["pre_std"], rows[0]["pre_std"]))
            if (direction > 0 and f >= GAIN_DECADES) or (direction < 0 and f <= -GAIN_DECADES):
                out.add(rows[i]["layer"])
        for i in range(b_start, t + 1):
            g = _log10(_ratio(rows[i]["grad_std"], rows[t]["grad_std"]))
            if (direction > 0 and g >= GAIN_DECADES) or (direction < 0 and g <= -GAIN_DECADES):
                out.add(rows[i]["layer"])
        return tuple(sorted(out)) or tuple(r["layer"] for r in rows[:t + 1])

    exploding = vanishing = None
    if max(lf, lb) >= GAIN_DECADES:
        exploding = Finding("exploding", where(+1), gains, advice.use(scale))
    if min(lf, lb) <= -GAIN_DECADES:
        vanishing = Finding("vanishing", where(-1), gains, advice.use(scale))
    return exploding, vanishing


def _zero_finding(rows, advice) -> Optional[Finding]:
    zero = [r["layer"] for r in rows[:-1] if r["spectral_norm"] == 0.0]
    if not zero:
        return None
    evidence = (f"hidden layer(s) {_layer_list(zero)} have all-zero weights: no signal passes "
                f"forward and no gradient passes back through them")
    return Finding("vanishing", tuple(zero), evidence, advice.use())


def _dead_finding(rows, advice) -> Optional[Finding]:
    relu_rows = [r for r in rows[:-1] if r["activation"] in DYING]
    if not relu_rows:
        return None
    worst = max(relu_rows, key=lambda r: r["dead"])
    mean_dead = sum(r["dead"] for r in relu_rows) / len(relu_rows)
    if not (worst["dead"] >= DEAD_LAYER or mean_dead >= DEAD_MEAN):
        return None
    layers = tuple(r["layer"] for r in relu_rows if r["dead"] >= DEAD_LAYER) or (worst["layer"],)
    evidence = (f"layer {worst['layer']} has {worst['dead']:.0%} of its units dead on the whole "
                f"batch (relu' = 0: no gradient reaches them; mean over relu layers "
                f"{mean_dead:.0%}; thresholds {DEAD_LAYER:.0%} per layer, {DEAD_MEAN:.0%} mean)")
    initlab, torch, _ = advice.recommended()
    leaky = advice.call("he_normal(a=0.01)", "torch.nn.init.kaiming_normal_(w, a=0.01)")
    bias = advice.call("constant(value=0.01)", "torch.nn.init.constant_(b, 0.01)", arg="bias_init")
    suggestion = (f"{advice.call(initlab, torch)} with a wider or shallower network; or "
                  f"activation=\"leaky_relu\" (PyTorch: nn.LeakyReLU) with {leaky}, whose units "
                  f"cannot die; a small positive bias, {bias}, also revives units. Narrow deep "
                  f"ReLU nets lose units that are off for every input (Lu et al. 2019, 'Dying ReLU "
                  f"and Initialization')")
    return Finding("dead", layers, evidence, suggestion)


def build_diagnosis(rows: Sequence[Dict[str, Any]], jacobian: Optional[Dict[str, Any]] = None, *,
                    symmetric: Optional[Mapping[int, List[List[int]]]] = None,
                    inits: Union[None, Sequence[Any], Mapping[int, Any]] = None,
                    style: str = "initlab") -> Diagnosis:
    """A `Diagnosis` from per-layer rows (see the module docstring): gains, findings, verdict.

    Model-agnostic: `Network.diagnose` and `il.torch.diagnose` both end here.
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise ValueError("build_diagnosis: rows must hold at least one layer")
    missing = [k for k in ("layer", "activation", "pre_std", "act_std", "saturated", "dead",
                           "grad_std", "spectral_norm") if k not in rows[0]]
    if missing:
        raise ValueError(f"build_diagnosis: rows lack {', '.join(missing)}")
    advice = _Advice(style, rows)
    if jacobian is None:
        jacobian = {"samples": 0, "singular_values": np.empty((0, 0)), "sv_max": math.nan,
                    "sv_min": math.nan, "condition": math.nan, "log10_spread": math.nan}
    symmetric = {int(k): [list(map(int, g)) for g in v] for k, v in (symmetric or {}).items() if v}
    init_names = _init_of(inits, rows)

    # Gains across the hidden stack (the output layer's change of width would add a one-off
    # factor fan_out/fan_in to the backward gain); across every layer when there is <= 1 hidden.
    top = len(rows) - 2 if len(rows) >= 3 else len(rows) - 1
    forward_gain = _ratio(rows[top]["pre_std"], rows[0]["pre_std"])
    backward_gain = _ratio(rows[0]["grad_std"], rows[top]["grad_std"])
    steps = max(1, top)
    variance_factor = forward_gain ** (2.0 / steps) if math.isfinite(forward_gain) else math.inf

    findings: List[Finding] = []
    nonfinite = _nonfinite_finding(rows, advice)
    exploding, vanishing = (None, None) if nonfinite else _gain_findings(rows, advice)
    zero = _zero_finding(rows, advice)
    if zero is not None:  # an all-zero layer: its gains are 0/0, the zero weights say it all
        exploding, vanishing = None, zero
    for finding in (_symmetric_finding(rows, symmetric, init_names, advice), nonfinite,
                    _saturated_finding(rows, advice), exploding, vanishing, _dead_finding(rows, advice)):
        if finding is not None:
            findings.append(finding)

    if findings:
        verdict, evidence, suggestion = findings[0].kind, findings[0].evidence, findings[0].suggestion
    else:
        verdict = "healthy"
        evidence = (f"forward gain (std of last/first hidden pre-activation) {forward_gain:.3g}, "
                    f"backward gain (std of first/last hidden gradient) {backward_gain:.3g}, "
                    f"per-layer variance factor {variance_factor:.3g}; threshold a factor "
                    f"10^{GAIN_DECADES:g}; no symmetric, saturated or dead units")
        current = sorted(set(init_names.values()))
        keep = f" ({', '.join(current)})" if current else ""
        suggestion = f"keep the current initialization{keep}: the signal keeps its scale"
    return Diagnosis(rows, jacobian, forward_gain, backward_gain, variance_factor, verdict, evidence,
                     suggestion, findings, symmetric)


# ---- the Network's rows --------------------------------------------------------------------------
def diagnose(net: "Network", X: Any, y: Any = None, *, jacobian_samples: int = 4,
             seed: int = 0) -> Diagnosis:
    """Diagnose `net` on the batch X (see the module docstring for every quantity and threshold)."""
    X, y = net._prepare(X, y)
    n = X.shape[0]
    jacobian_samples = min(check_int("jacobian_samples", jacobian_samples, 1), n)
    seed = check_seed(seed)

    rows = layer_rows(net, X, y, grad_seed=seed)
    last = len(net.layers) - 1
    for row in rows:
        layer = net.layers[row["layer"]]
        W, _ = _weights(layer)
        if W is not None:
            spectral = _spectral_norm(W.reshape(-1, W.shape[-1]))
            frobenius_sq = _core.sum_of_squares(W)  # stable rank = ||W||_F^2 / ||W||_2^2
            row["spectral_norm"] = spectral
            row["stable_rank"] = frobenius_sq / spectral ** 2 if spectral > 0 else 0.0
        if row["activation"] == "leaky_relu" and row["layer"] < last:
            param = getattr(layer, "act_param", None)
            if param is not None:
                row["param"] = float(param)

    jacobian = _jacobian_spectrum(net, X[:jacobian_samples])
    inits = {i: layer.initializers().get("W", "") for i, layer in enumerate(net.layers)}
    inits = {i: name for i, name in inits.items() if name}
    result = build_diagnosis(rows, jacobian, symmetric=_network_symmetry(net), inits=inits, style="initlab")
    result.theory = _mean_field_reading(net)
    # the theory speaks to signal propagation: it joins the evidence of a healthy, vanishing,
    # exploding or saturated verdict (not of symmetric or dead units, which it does not model)
    if result.theory is not None and result.verdict in ("healthy", "vanishing", "exploding", "saturated"):
        result.evidence += f"; mean field: {result.theory['message']}"
        if result.findings:
            result.findings[0] = dataclasses.replace(result.findings[0], evidence=result.evidence)
    return result


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
    finite = _core.all_finite(ws.logits) and _core.all_finite(ws.X_grad)
    return jacobian_summary(ws.X_grad.reshape(S, K, inputs), finite)


def jacobian_summary(J: np.ndarray, finite: bool = True) -> Dict[str, Any]:
    """`Diagnosis.jacobian` from input-output Jacobians J (samples, outputs, inputs), any model's:
    singular values per sample, their mean extremes, the median condition number and the mean std
    of log10 singular values. `finite=False` (an overflowing pass): the same keys, NaN."""
    S, K, inputs = J.shape
    if not finite:  # overflow: no spectrum
        values = np.full((S, min(K, inputs)), np.nan)
        return {"samples": S, "singular_values": values, "sv_max": math.nan, "sv_min": math.nan,
                "condition": math.nan, "log10_spread": math.nan}
    values = np.stack([np.linalg.svd(J[s].astype(np.float64), compute_uv=False) for s in range(S)])
    sv_max = values[:, 0]
    sv_min = values[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        condition = float(np.median(np.where(sv_min > 0, sv_max / sv_min, np.inf)))
        logs = np.log10(np.maximum(values, np.finfo(np.float64).tiny))
    return {"samples": S, "singular_values": values, "sv_max": float(sv_max.mean()),
            "sv_min": float(sv_min.mean()), "condition": condition,
            "log10_spread": float(np.mean(np.std(logs, axis=1)))}
