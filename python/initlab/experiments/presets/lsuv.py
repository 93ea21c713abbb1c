"""Preset lsuv."""
from __future__ import annotations

import os
from typing import List


from ..compare import Claim, Comparison
from ..runs import LN10, RunSpec
from ._common import Preset, _digits, _one

# ---- Mishkin & Matas 2016 (LSUV) ------------------------------------------------------------------
def _lsuv_grid(reduced: bool):
    data = _digits(reduced)
    common = dict(depth=20, width=32 if reduced else 64, activation="relu", epochs=6 if reduced else 20, batch_size=32, optimizer="sgd", lr=0.003,
                  momentum=0.9, target_accuracy=0.9)
    specs = [RunSpec(init=init, **common) for init in ("lsuv", "orthogonal", "he_normal", "xavier_normal")]
    return data, specs, common


def _lsuv_check(runs, config) -> List[Claim]:
    lsuv_run = _one(runs, init="lsuv")
    pre_var = [s * s for s in lsuv_run["at_init"]["pre_std"]]
    others = {name: _one(runs, init=name)["at_init"]["pre_std"] for name in ("orthogonal", "he_normal", "xavier_normal")}
    orth = _one(runs, init="orthogonal")
    he = _one(runs, init="he_normal")
    return [
        Claim("LSUV: every layer's output variance is 1 after initialization (on the batch it scaled with; "
              "here measured on a different, larger batch)",
              f"Var(Z) per layer on the probe batch: lsuv {min(pre_var):.2f} .. {max(pre_var):.2f}; last layer: "
              + ", ".join(f"{name} {values[-1] ** 2:.2g}" for name, values in others.items()),
              all(0.5 < v < 2.0 for v in pre_var)),
        Claim("LSUV trains a deep ReLU net where orthogonal init without a gain stalls",
              f"final training loss: lsuv {lsuv_run['final_loss']:.3f}, orthogonal {orth['final_loss']:.3f} "
              f"(chance: ln(10) = {LN10:.3f})",
              lsuv_run["final_loss"] < 0.75 * LN10 and orth["final_loss"] > 0.9 * LN10),
        Claim("LSUV matches the variance-preserving scheme made for the activation (He for ReLU)",
              f"final val acc lsuv {lsuv_run['final_val_accuracy']:.1%}, he_normal {he['final_val_accuracy']:.1%}; "
              f"final loss lsuv {lsuv_run['final_loss']:.3f}, he {he['final_loss']:.3f}",
              lsuv_run["final_val_accuracy"] >= he["final_val_accuracy"] - 0.05)]


def _lsuv_figures(result: Comparison, out_dir: str) -> List[str]:
    from ...inspect import figures
    return [figures.layer_profile(result.runs, os.path.join(out_dir, "lsuv_layers.png"),
                                  keys=(("pre_std", "std of Z (pre-activation)"), ("grad_norm", "‖dW‖")),
                                  title="LSUV vs orthogonal, He, Xavier: per layer at init", log=True),
            figures.loss_curves_by_group(result, os.path.join(out_dir, "lsuv_loss.png"),
                                         title="Mishkin & Matas 2016: deep ReLU net on digits", chance=LN10)]


PRESET = Preset("lsuv", "Mishkin & Matas 2016, All you need is a good init",
                "20 ReLU layers (width 64) on digits: lsuv vs orthogonal, he_normal, xavier_normal",
                _lsuv_grid, _lsuv_check, _lsuv_figures)
