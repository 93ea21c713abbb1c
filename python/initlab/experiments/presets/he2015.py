"""Preset he2015."""
from __future__ import annotations

import os
from typing import Any, Dict, List


from ..compare import Claim, Comparison
from ..runs import LN10, RunSpec, _first_epoch
from ._common import Preset, _digits, _losses, _one

# ---- He et al. 2015 -------------------------------------------------------------------------------
HE2015_DEPTHS = (22, 30)   # weight layers, as the paper counts them


def _he2015_grid(reduced: bool):
    data = _digits(reduced)
    common = dict(width=32 if reduced else 64, activation="relu", epochs=10 if reduced else 30,
                  batch_size=32, optimizer="sgd", lr=0.005 if reduced else 0.003, momentum=0.9,
                  target_accuracy=0.9)
    specs = [RunSpec(init=init, depth=layers - 1, label=f"{layers} layers", **common)
             for layers in HE2015_DEPTHS for init in ("xavier_normal", "he_normal")]
    return data, specs, {"depths": HE2015_DEPTHS, **common}


def _plateau_epochs(run: Dict[str, Any], level: float = LN10, tol: float = 0.05) -> int:
    """Epochs from the start during which the training loss stays within tol of level."""
    count = 0
    for loss in _losses(run):
        if abs(loss - level) > tol:
            break
        count += 1
    return count


def _he2015_check(runs, config) -> List[Claim]:
    claims = []
    epochs = config["epochs"]
    deep_x, deep_h = _one(runs, label="30 layers", init="xavier_normal"), _one(runs, label="30 layers", init="he_normal")
    plateau = _plateau_epochs(deep_x)
    trained = 0.75 * LN10   # "trains": the loss ends well below chance
    claims.append(Claim(
        "30 ReLU layers: Xavier init stalls at the chance loss ln(10) = 2.303, He init trains",
        f"xavier_normal loss within 0.05 of ln(10) for {plateau} of {epochs} epochs (final "
        f"{deep_x['final_loss']:.3f}); he_normal final loss {deep_h['final_loss']:.3f}, val acc "
        f"{deep_h['final_val_accuracy']:.1%}",
        plateau >= (epochs + 1) // 2 and deep_h["final_loss"] < trained))
    shallow_x, shallow_h = _one(runs, label="22 layers", init="xavier_normal"), _one(runs, label="22 layers", init="he_normal")
    start = 0.9 * LN10      # "starts reducing the error": the loss leaves the plateau at ln(10)
    ex = _first_epoch(shallow_x["history"], "loss", lambda v: v <= start)
    eh = _first_epoch(shallow_h["history"], "loss", lambda v: v <= start)
    claims.append(Claim(
        "22 ReLU layers: both train, He init starts reducing the error earlier",
        f"first epoch with training loss <= 0.9 ln(10) = {start:.2f}: he_normal {eh if eh else f'>{epochs}'}, "
        f"xavier_normal {ex if ex else f'>{epochs}'}; final losses he {shallow_h['final_loss']:.3f}, xavier "
        f"{shallow_x['final_loss']:.3f}",
        eh is not None and ex is not None and eh < ex
        and max(shallow_h["final_loss"], shallow_x["final_loss"]) < trained))
    gains = {name: (run["at_init"]["forward_gain"], run["at_init"]["backward_gain"])
             for name, run in (("xavier", deep_x), ("he", deep_h))}
    claims.append(Claim(
        "Cause (He et al. section 2.2): Xavier halves the signal variance at every ReLU layer, forward "
        "and backward; He init keeps it",
        "at 30 layers, std of Z (last/first hidden layer) and of dL/dZ (first/last) at init: xavier "
        f"{gains['xavier'][0]:.1e} and {gains['xavier'][1]:.1e}, he {gains['he'][0]:.2f} and {gains['he'][1]:.2f} "
        f"(diagnose: {deep_x['at_init']['verdict']} / {deep_h['at_init']['verdict']}); the weight-gradient "
        f"norm ratio first/last is only {deep_x['grad_ratio']:.2f} / {deep_h['grad_ratio']:.2f}: "
        "dW = Xᵀ·dZ multiplies a shrunken signal by a shrunken gradient at every depth",
        max(gains["xavier"]) < 1e-2 and all(0.1 < g < 10 for g in gains["he"])))
    return claims


def _he2015_figures(result: Comparison, out_dir: str) -> List[str]:
    from ...inspect import figures
    return [figures.loss_curves_by_group(result, os.path.join(out_dir, "he2015_loss.png"),
                                         title="He et al. 2015: deep ReLU nets on digits, Xavier vs He",
                                         chance=LN10),
            figures.layer_profile(result.runs, os.path.join(out_dir, "he2015_layers.png"),
                                  keys=(("pre_std", "std of Z (pre-activation)"),
                                        ("grad_std", "std of dL/dZ (back-propagated)"),
                                        ("grad_norm", "‖dL/dW‖")),
                                  title="He et al. 2015: per layer at init (Xavier halves the variance "
                                        "at every ReLU layer)")]


PRESET = Preset("he2015", "He et al. 2015, Delving deep into rectifiers",
                "22 and 30 ReLU layers (width 64) on digits: xavier_normal vs he_normal",
                _he2015_grid, _he2015_check, _he2015_figures)
