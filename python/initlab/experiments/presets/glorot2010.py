"""Preset glorot2010."""
from __future__ import annotations

import os
from typing import List


from ..compare import Claim, Comparison
from ..runs import LN10, RunSpec
from ._common import Preset, _digits, _losses, _one, _runs

# ---- Glorot & Bengio 2010 -------------------------------------------------------------------------
def _glorot2010_grid(reduced: bool):
    data = _digits(reduced, max_samples=None)
    common = dict(depth=5, width=64 if reduced else 256, epochs=6 if reduced else 10, batch_size=10,
                  optimizer="sgd", lr=0.1, momentum=0.0, target_accuracy=0.95,
                  stats_every=1)
    specs = [RunSpec(init=init, activation=act, label=act, **common)
             for act in ("tanh", "sigmoid") for init in ("torch_default", "xavier_uniform")]
    return data, specs, common


def _glorot2010_check(runs, config) -> List[Claim]:
    claims = []
    std_t, norm_t = _one(runs, label="tanh", init="torch_default"), _one(runs, label="tanh", init="xavier_uniform")

    def factor(values, backward=False):
        """Geometric-mean change of a per-layer std from one hidden layer to the next (5 layers):
        forward from layer 1 to 5, backward (gradients) from layer 5 to 1."""
        first, last = values[0], values[4]
        ratio = first / last if backward else last / first
        return ratio ** 0.25 if ratio > 0 else 0.0

    f_std, f_norm = factor(std_t["at_init"]["act_std"]), factor(norm_t["at_init"]["act_std"])
    claims.append(Claim(
        "tanh, standard init U(±1/√n): activations shrink from layer to layer; normalized init keeps them "
        "(nearly) constant",
        f"activation std, factor per layer at init (layer 1 -> 5): standard {f_std:.2f} (linear-regime "
        f"theory √(n·Var W) = 1/√3 = 0.58), normalized {f_norm:.2f} (theory 1, less through tanh's curvature)",
        f_std < 0.7 and f_norm >= 0.8))
    g_std, g_norm = factor(std_t["at_init"]["grad_std"], True), factor(norm_t["at_init"]["grad_std"], True)
    claims.append(Claim(
        "tanh: with standard init the back-propagated gradient dL/dZ shrinks toward the input; normalized "
        "init keeps it (nearly) constant",
        f"std of dL/dZ, factor per layer at init (layer 5 -> 1): standard {g_std:.2f}, normalized {g_norm:.2f}",
        g_std < 0.7 and g_norm >= 0.8))
    claims.append(Claim(
        "tanh: normalized init learns faster than standard init",
        f"training loss after epoch 1: standard {_losses(std_t)[0]:.3f}, normalized {_losses(norm_t)[0]:.3f}; "
        f"final val acc standard {std_t['final_val_accuracy']:.1%}, normalized {norm_t['final_val_accuracy']:.1%}",
        _losses(norm_t)[0] < _losses(std_t)[0]))
    sig = _one(runs, label="sigmoid", init="torch_default")
    top = len(sig["layer_stats"][0]) - 2   # the last hidden layer
    means = [epoch[top]["act_mean"] for epoch in sig["layer_stats"]]
    claims.append(Claim(
        "sigmoid, standard init: the top hidden layer is driven toward 0 (saturation) early in training",
        "mean activation of hidden layer 5 by epoch: " + ", ".join(f"{m:.2f}" for m in means),
        means[-1] < 0.8 * means[0]))
    sig_loss = _losses(sig)[-1]
    claims.append(Claim(
        "sigmoid nets learn much more slowly than tanh nets (Glorot & Bengio, section 3)",
        f"final training loss sigmoid/standard {sig_loss:.3f} vs tanh/standard {std_t['final_loss']:.3f}",
        sig_loss > std_t["final_loss"]))
    return claims


def _glorot2010_figures(result: Comparison, out_dir: str) -> List[str]:
    from ...inspect import figures
    paths = []
    for act in ("tanh", "sigmoid"):
        runs = _runs(result.runs, label=act)
        paths.append(figures.activation_histograms(runs, os.path.join(out_dir, f"glorot2010_{act}_activations.png"),
                                                   title=f"Glorot & Bengio 2010: {act} activations at init"))
    paths.append(figures.layer_profile(result.runs, os.path.join(out_dir, "glorot2010_layers.png"),
                                       keys=(("act_std", "activation std"), ("grad_std", "std of dL/dZ (back-propagated)"),
                                             ("saturated", "saturated fraction")),
                                       title="Glorot & Bengio 2010: per layer at init", hidden_only=True))
    paths.append(figures.top_layer_means(_runs(result.runs, label="sigmoid"),
                                         os.path.join(out_dir, "glorot2010_sigmoid_training.png")))
    paths.append(figures.loss_curves_by_group(result, os.path.join(out_dir, "glorot2010_loss.png"),
                                              title="Glorot & Bengio 2010: training loss", chance=LN10))
    return paths


PRESET = Preset("glorot2010", "Glorot & Bengio 2010, Understanding the difficulty of training deep "
                "feedforward neural networks",
                "5 tanh / sigmoid layers (width 256) on digits: standard U(±1/√n) "
                "(torch_default) vs normalized (xavier_uniform)",
                _glorot2010_grid, _glorot2010_check, _glorot2010_figures)
