"""Preset xiao2018: very deep vanilla CNNs at the edge of chaos, delta-orthogonal against Gaussian."""
from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import List


from ... import theory
from ..compare import Claim, Comparison
from ..runs import RunSpec
from ._common import Preset, _digits, _one

# ---- Xiao et al. 2018 -------------------------------------------------------------------------------
# Vanilla CNNs (no batch norm, no residual connections, no pooling) of 3x3 tanh convolutions, "same"
# padding, channels fixed, then Flatten and a softmax layer, on the digits as 8x8x1 images. The
# Jacobian measured is that of the convolutional stack (input image -> last convolution's output). At the critical point of tanh with sigma_b^2 = 0 (sigma_w^2 = 1:
# chi_1 = sigma_w^2 * E[tanh'(h)^2] = 1 at the fixed point q* = 0), the two kernels have the same
# variance per weight but not the same Jacobian: Gaussian N(0, sigma_w^2/fan_in) taps, or
# delta-orthogonal (an orthogonal matrix of gain sqrt(sigma_w^2) at the centre tap, zeros elsewhere),
# whose input-output Jacobian is a product of orthogonal matrices near the fixed point (dynamical
# isometry) at any depth.
SIGMA_B2 = 0.0
SIGMA_W2 = theory.critical_sigma_w2("tanh", SIGMA_B2)  # chi_1 = 1: 1.0 for tanh at sigma_b^2 = 0
SCHEMES = {
    "delta-orthogonal": f"delta_orthogonal(gain={math.sqrt(SIGMA_W2)!r})",
    "Gaussian": f"variance_scaling(scale={SIGMA_W2!r}, mode='fan_in', distribution='normal')",
}


def _xiao2018_grid(reduced: bool):
    data = replace(_digits(reduced, max_samples=600), image_shape=(8, 8, 1))
    depths = (4, 16, 48) if reduced else (8, 32, 64, 128, 256)
    channels = 16 if reduced else 32
    specs = []
    for depth in depths:
        for scheme, init in SCHEMES.items():
            specs.append(RunSpec(init=init, depth=depth, width=channels, kernel_size=3, activation="tanh",
                                 epochs=4 if reduced else 10, batch_size=32, optimizer="sgd",
                                 lr=0.02, momentum=0.9, target_accuracy=0.9, threads=1, probe_size=128,
                                 output_init="lecun_normal", label=f"{depth} layers|{scheme}"))
    return data, specs, {"depths": depths, "channels": channels, "sigma_w2": SIGMA_W2, "sigma_b2": SIGMA_B2,
                         "schemes": dict(SCHEMES)}


def _series(runs, depths, scheme, key):
    return [key(_one(runs, label=f"{d} layers|{scheme}")) for d in depths]


def _xiao2018_check(runs, config) -> List[Claim]:
    depths = config["depths"]
    acc = {s: _series(runs, depths, s, lambda r: r["best_val_accuracy"] or 0.0) for s in SCHEMES}
    spread = {s: _series(runs, depths, s, lambda r: r["at_init"]["conv_jacobian"]["log10_spread"]) for s in SCHEMES}
    show = lambda xs, f: ", ".join(f"{d}: {f(x)}" for d, x in zip(depths, xs))
    pct = lambda x: f"{x:.1%}"
    dec = lambda x: f"{x:.3f}"
    orth, gauss = acc["delta-orthogonal"], acc["Gaussian"]
    s_orth, s_gauss = spread["delta-orthogonal"], spread["Gaussian"]
    return [
        Claim("Delta-orthogonal kernels at criticality: accuracy after a fixed budget stays high as depth "
              "grows (within 10 points of the shallowest net)",
              f"best validation accuracy by depth: {show(orth, pct)}",
              min(orth) >= orth[0] - 0.10),
        Claim("Gaussian kernels of the same variance: accuracy after the same budget falls with depth, "
              "below delta-orthogonal at the deepest net",
              f"best validation accuracy by depth: {show(gauss, pct)}",
              gauss[-1] < gauss[0] - 0.05 and gauss[-1] < orth[-1]),
        Claim("The input-output Jacobian's singular values stay concentrated for delta-orthogonal "
              "(std of log10 singular values stays below 0.5 at every depth)",
              f"std of log10 singular values at init by depth: {show(s_orth, dec)}",
              max(s_orth) < 0.5),
        Claim("They spread with depth for Gaussian kernels (wider than delta-orthogonal at the deepest net "
              "and wider than at the shallowest)",
              f"std of log10 singular values at init by depth: {show(s_gauss, dec)}",
              s_gauss[-1] > s_orth[-1] and s_gauss[-1] > s_gauss[0]),
    ]


def _xiao2018_figures(result: Comparison, out_dir: str) -> List[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    depths = result.config["depths"]
    paths = []
    for key, ylabel, name, log in (
            (lambda r: r["best_val_accuracy"] or 0.0, "best validation accuracy", "accuracy", False),
            (lambda r: r["at_init"]["conv_jacobian"]["log10_spread"], "std of log10 Jacobian singular values at init",
             "jacobian_spread", False)):
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for scheme, marker in zip(SCHEMES, ("o", "s")):
            ax.plot(depths, _series(result.runs, depths, scheme, key), marker=marker, label=scheme)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("depth (3x3 tanh convolutions)")
        ax.set_ylabel(ylabel)
        ax.set_title("Xiao et al. 2018: vanilla CNNs at criticality (σ_w² = 1, σ_b² = 0)", fontsize=9)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = os.path.join(out_dir, f"xiao2018_{name}_vs_depth.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


PRESET = Preset("xiao2018", "Xiao et al. 2018, Dynamical Isometry and a Mean Field Theory of CNNs: How to "
                "Train 10,000-Layer Vanilla Convolutional Neural Networks",
                "very deep vanilla tanh CNNs on digits images: delta-orthogonal vs Gaussian kernels of the "
                "critical variance, accuracy and Jacobian spectrum against depth",
                _xiao2018_grid, _xiao2018_check, _xiao2018_figures)
