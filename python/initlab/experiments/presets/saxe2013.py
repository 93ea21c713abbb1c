"""Preset saxe2013."""
from __future__ import annotations

import math
import os
from typing import List


from ..compare import Claim, Comparison
from ..runs import RunSpec
from ._common import Preset, _digits, _one

# ---- Saxe et al. 2013 -----------------------------------------------------------------------------
def _saxe2013_grid(reduced: bool):
    data = _digits(reduced, max_samples=600)
    depths = (2, 8, 32) if reduced else (2, 4, 8, 16, 32)   # weight layers
    threshold = 0.15 if reduced else 0.1
    specs = []
    for layers in depths:
        for init in ("orthogonal", "lecun_normal"):
            # Saxe et al.: learning rate scaled as 1/depth makes learning time depth-independent
            # for orthogonal ("decoupled") initial conditions.
            specs.append(RunSpec(init=init, depth=layers - 1, width=64, activation="linear",
                                 epochs=60 if reduced else 100, batch_size=32, optimizer="sgd",
                                 lr=0.1 / layers, momentum=0.0, target_accuracy=0.95,
                                 loss_threshold=threshold, label=f"{layers} layers"))
    return data, specs, {"depths": depths, "loss_threshold": threshold, "lr": "0.1 / layers", "width": 64}


def _saxe2013_check(runs, config) -> List[Claim]:
    depths = config["depths"]
    cap = runs[0]["spec"]["epochs"]

    def epochs_for(init):
        return [(_one(runs, label=f"{d} layers", init=init)["epochs_to_loss"] or math.inf) for d in depths]

    orth, gauss = epochs_for("orthogonal"), epochs_for("lecun_normal")
    show = lambda xs: ", ".join(f"{d}: {x if math.isfinite(x) else f'>{cap}'}" for d, x in zip(depths, xs))
    return [
        Claim("Deep linear nets, orthogonal init: epochs to the loss threshold stay flat as depth grows",
              f"epochs by depth (weight layers): {show(orth)}",
              math.isfinite(max(orth)) and max(orth) <= 2 * min(orth)),
        Claim("Scaled Gaussian init N(0, 1/n): epochs to the threshold grow with depth",
              f"epochs by depth: {show(gauss)}",
              gauss[-1] >= 1.5 * gauss[0] and gauss[-1] > orth[-1])]


def _saxe2013_figures(result: Comparison, out_dir: str) -> List[str]:
    from ...inspect import figures
    return [figures.epochs_vs_depth(result, os.path.join(out_dir, "saxe2013_epochs_vs_depth.png")),
            figures.loss_curves_by_group(result, os.path.join(out_dir, "saxe2013_loss.png"),
                                         title="Saxe et al. 2013: deep linear nets, training loss", chance=None)]


PRESET = Preset("saxe2013", "Saxe et al. 2013, Exact solutions to the nonlinear dynamics of learning "
                "in deep linear neural networks",
                "deep linear nets (2..32 layers, width 64) on digits: epochs to a loss threshold, "
                "orthogonal vs N(0, 1/n)", _saxe2013_grid, _saxe2013_check, _saxe2013_figures)
