"""Preset schoenholz2017: trainable depth over sigma_w2, against 6 xi_c (Schoenholz et al. 2017).

Tanh networks with weights N(0, sigma_w2 / fan_in) and biases N(0, sigma_b2 = 0.05), a grid of
sigma_w2 x depth, each trained for the same small budget on digits. Schoenholz et al. ("Deep
information propagation", ICLR 2017, fig. 5) found that random networks train only up to a depth
of about 6 xi_c, the correlation depth scale of mean-field theory (`initlab.theory`), which is
infinite at the critical sigma_w2 (chi_1 = 1, ~1.76 here): the deepest trainable networks sit at
the edge of chaos.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional

from ... import theory
from ..compare import Claim, Comparison
from ..runs import RunSpec
from ._common import Preset, _digits

SIGMA_B2 = 0.05
ACTIVATION = "tanh"
TRAINABLE_FACTOR = 2.0      # "trainable": final validation accuracy >= 2 x chance (fixed in advance)
REDUCED = dict(sigma_w2=(1.0, 1.3, 1.76, 2.25, 3.0, 4.0), depths=(8, 16, 32, 48, 64, 96),
               width=64, epochs=10)
FULL = dict(sigma_w2=(1.0, 1.25, 1.5, 1.76, 2.0, 2.5, 3.0, 3.5, 4.0),
            depths=(10, 20, 30, 45, 60, 90, 135, 200, 300), width=64, epochs=15)
TRAINING = dict(batch_size=32, optimizer="sgd", lr=0.002, momentum=0.9)


def weight_init(sigma_w2: float) -> str:
    """N(0, sigma_w2 / fan_in) as an initializer string."""
    return f"variance_scaling(scale={sigma_w2:g},mode=fan_in,distribution=normal)"


def bias_init(sigma_b2: float = SIGMA_B2) -> str:
    return f"normal(std={math.sqrt(sigma_b2)!r})"


def _grid(reduced: bool):
    size = REDUCED if reduced else FULL
    data = _digits(reduced)
    specs = [RunSpec(init=weight_init(w2), bias_init=bias_init(), depth=depth, width=size["width"],
                     activation=ACTIVATION, epochs=size["epochs"], target_accuracy=0.9,
                     label=f"sigma_w2={w2:g}", **TRAINING)
             for w2 in size["sigma_w2"] for depth in size["depths"]]
    xi_c = {w2: theory.mean_field(ACTIVATION, w2, SIGMA_B2).xi_c for w2 in size["sigma_w2"]}
    config = dict(size, sigma_b2=SIGMA_B2, activation=ACTIVATION, **TRAINING,
                  critical_sigma_w2=theory.critical_sigma_w2(ACTIVATION, SIGMA_B2),
                  xi_c={f"{w2:g}": v for w2, v in xi_c.items()},
                  trainable=f"final validation accuracy >= {TRAINABLE_FACTOR:g} x chance")
    return data, specs, config


def _sigma(run: Dict[str, Any]) -> float:
    return float(run["label"].split("=", 1)[1])


def accuracy_grid(runs: List[Dict[str, Any]], config: Dict[str, Any]) -> List[List[Optional[float]]]:
    """Final validation accuracy, [sigma_w2 index][depth index]."""
    table = {(_sigma(r), r["spec"]["depth"]): r["final_val_accuracy"] for r in runs}
    return [[table.get((float(w2), d)) for d in config["depths"]] for w2 in config["sigma_w2"]]


def deepest_trainable(runs: List[Dict[str, Any]], config: Dict[str, Any]) -> Dict[float, Optional[int]]:
    """For each sigma_w2 the deepest grid depth whose net is trainable (None: none is)."""
    chance = 1.0 / runs[0]["widths"][-1]
    grid = accuracy_grid(runs, config)
    out: Dict[float, Optional[int]] = {}
    for w2, row in zip(config["sigma_w2"], grid):
        ok = [d for d, acc in zip(config["depths"], row) if acc is not None and acc >= TRAINABLE_FACTOR * chance]
        out[float(w2)] = max(ok) if ok else None
    return out


def _check(runs: List[Dict[str, Any]], config: Dict[str, Any]) -> List[Claim]:
    depths, sigmas = config["depths"], [float(w) for w in config["sigma_w2"]]
    low, high = min(depths), max(depths)
    deepest = deepest_trainable(runs, config)
    xi_c = {float(k): v for k, v in config["xi_c"].items()}
    inside = [w2 for w2 in sigmas if low <= 6 * xi_c[w2] <= high]
    parts, ok = [], bool(inside)
    for w2 in inside:
        d, xi = deepest[w2], xi_c[w2]
        good = d is not None and 3 * xi <= d <= 12 * xi
        ok = ok and good
        parts.append(f"sigma_w2 {w2:g}: deepest {d if d is not None else 'none'} vs 6 xi_c = {6 * xi:.0f} "
                     f"({d / xi:.1f} xi_c)" if d is not None else
                     f"sigma_w2 {w2:g}: no depth trainable, 6 xi_c = {6 * xi:.0f}")
    skipped = [f"{w2:g} (6 xi_c = {6 * xi_c[w2]:.0f})" for w2 in sigmas if w2 not in inside]
    claims = [Claim(
        "Random tanh nets train only up to about 6 xi_c: at every sigma_w2 whose 6 xi_c lies in the "
        f"depth range {low}..{high}, the deepest trainable depth lies between 3 xi_c and 12 xi_c "
        f"(trainable: final validation accuracy >= {TRAINABLE_FACTOR:g} x chance)",
        "; ".join(parts) + (f"; outside the range: {', '.join(skipped)}" if skipped else ""), ok)]
    critical = float(config["critical_sigma_w2"])
    best = max((d for d in deepest.values() if d is not None), default=None)
    at_best = [w2 for w2 in sigmas if best is not None and deepest[w2] == best]
    nearest = min(range(len(sigmas)), key=lambda i: abs(sigmas[i] - critical))
    near = best is not None and all(abs(sigmas.index(w2) - nearest) <= 1 for w2 in at_best)
    claims.append(Claim(
        f"The deepest trainable nets sit at the edge of chaos: within one grid step of the critical "
        f"sigma_w2 = {critical:.3f} (chi_1 = 1)",
        f"deepest trainable depth {best} at sigma_w2 {', '.join(f'{w:g}' for w in at_best) or '-'}; "
        f"grid point nearest the critical value: {sigmas[nearest]:g}; deepest by sigma_w2: "
        + ", ".join(f"{w:g}: {deepest[w]}" for w in sigmas), near))
    return claims


def _figures(result: Comparison, out_dir: str) -> List[str]:
    from ...inspect import figures
    return [figures.phase_diagram(result, os.path.join(out_dir, "schoenholz2017_phase_diagram.png"),
                                  accuracy_grid(result.runs, result.config),
                                  deepest_trainable(result.runs, result.config), TRAINABLE_FACTOR)]


PRESET = Preset("schoenholz2017", "Schoenholz et al. 2017, Deep information propagation",
                "tanh nets, sigma_b2 = 0.05, sigma_w2 1..4 x depth, same SGD budget on digits: the "
                "deepest trainable depth against 6 xi_c of mean-field theory",
                _grid, _check, _figures)
