"""PNG figures for `initlab compare` and the presets (matplotlib, the optional ``plot`` extra).

One figure per question, axes labelled with units, log scales for norms. Each function takes runs
as `initlab.experiments.run_one` returns them and writes one PNG (atomically); it returns the path.
The same initializer has the same colour in every figure. Every figure has a title; legends sit
beside or below the axes, never over the curves; panels are PANEL inches at DPI (~660 x 440 px).
`png_bytes` and `html_image` give the same figures to Jupyter (`_repr_html_`).
"""
from __future__ import annotations

import io
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._files import write_bytes_atomically

MAX_HISTOGRAM_LAYERS = 6  # figure legibility: deeper nets show evenly spaced layers

DPI = 110             # with the panel sizes below: ~660 x 440 px per panel, 10-pt text legible
PALETTE_COLOURS = 64  # line plots need few colours: small files (the docs/ figures are committed)
PANEL = (6.0, 4.0)    # inches per panel of curves


def _figure(rows: int, cols: int, width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("figures need matplotlib: pip install 'initlab[plot]'") from None
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _panels(n: int, width: float, height: float, max_cols: int = 3):
    """n panels in rows of at most max_cols; returns the figure and a flat list of n axes
    (the unused ones are hidden)."""
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig, axes = _figure(rows, cols, width, height)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _small_png(png: bytes) -> bytes:
    """Line plots need few colours: a 64-colour palette makes the files ~4x smaller (Pillow
    comes with matplotlib; without it the PNG stays as matplotlib wrote it)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - matplotlib depends on Pillow
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    quantized = image.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.NONE)
    out = io.BytesIO()
    quantized.save(out, format="PNG", optimize=True)
    return out.getvalue()


def png_bytes(fig, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, shrunk to a small palette."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    return _small_png(buffer.getvalue())


def html_image(fig, alt: str = "figure") -> str:
    """An <img> with the figure inline (base64 PNG), for Jupyter's _repr_html_."""
    import base64
    import html
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def _save(fig, path: str) -> str:
    """savefig, shrunk to a small palette, written atomically."""
    return write_bytes_atomically(path, png_bytes(fig), "figure")


def _legend_outside(ax, **kwargs) -> None:
    """The legend right of the axes, never over the curves (constrained layout makes room)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  fontsize=kwargs.pop("fontsize", "small"), **kwargs)


def _figure_legend(fig, axes) -> None:
    """One legend for panels that share their lines (same initializer, same colour), below the
    panels (beside them it would collide with the figure's title)."""
    seen: Dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", fontsize="small",
                   ncol=min(len(seen), 4), frameon=False)


def _colors(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    from matplotlib import colormaps
    palette = colormaps["tab10"]
    names = list(dict.fromkeys(r["init"] for r in runs))
    return {name: palette(i % 10) for i, name in enumerate(names)}


def _groups(runs: Sequence[Dict[str, Any]]) -> List[Tuple[str, List[Dict[str, Any]]]]:
    labels = list(dict.fromkeys(r["label"] for r in runs))
    return [(label, [r for r in runs if r["label"] == label]) for label in labels]


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _first_seed(runs: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One run per (group, init): the lowest seed (per-layer figures show one network each)."""
    chosen: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for r in runs:
        key = (r["label"], r["init"])
        if key not in chosen or r["seed"] < chosen[key]["seed"]:
            chosen[key] = r
    return list(chosen.values())


def _positive(values: Sequence[Optional[float]]) -> List[float]:
    """Values for a log axis: missing or non-positive ones become NaN (a gap in the line)."""
    return [v if (v is not None and math.isfinite(v) and v > 0) else float("nan") for v in values]


# ------------------------------------------------------------------------------------------------

def loss_curves_by_group(result, path: str, *, title: str = "training loss per initializer",
                         chance: Optional[float] = None) -> str:
    """Training loss (solid) and validation loss (dotted) against epoch, one panel per group."""
    return _save(loss_curves_figure(result, title=title, chance=chance), path)


def loss_curves_figure(result, *, title: str = "training loss per initializer",
                       chance: Optional[float] = None):
    """The figure of `loss_curves_by_group` (a matplotlib Figure, not saved)."""
    groups = _groups(result.runs)
    colors = _colors(result.runs)
    fig, axes = _panels(len(groups), *PANEL)
    for ax, (label, runs) in zip(axes, groups):
        seen = set()
        for r in runs:
            epochs = [h["epoch"] for h in r["history"]]
            name = r["init"] if r["init"] not in seen else None
            seen.add(r["init"])
            ax.plot(epochs, [h["loss"] for h in r["history"]], "-", color=colors[r["init"]], label=name)
            ax.plot(epochs, [h["val_loss"] for h in r["history"]], ":", color=colors[r["init"]])
        if chance is not None:
            ax.axhline(chance, color="grey", lw=0.8, ls="--", label=f"chance: ln(classes) = {chance:.3f}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss (nats)")
        ax.set_title(label or "all runs")
        _integer_ticks(ax)
    _figure_legend(fig, axes)
    fig.suptitle(f"{title}\n(solid: training loss, dotted: validation loss)")
    return fig


def grad_norms(result, path: str, *, title: str = "gradient norm per layer at init") -> str:
    """‖dL/dW‖ per layer at initialization (log scale), one line per initializer, one panel per group."""
    runs = _first_seed(result.runs)
    groups = _groups(runs)
    colors = _colors(result.runs)
    fig, axes = _panels(len(groups), *PANEL)
    for ax, (label, group) in zip(axes, groups):
        for r in group:
            norms = r["at_init"]["grad_norm"]
            ax.plot(range(1, len(norms) + 1), _positive(norms), "o-", ms=3, color=colors[r["init"]],
                    label=r["init"])
        ax.set_yscale("log")
        ax.set_xlabel("layer (1 = input side)")
        _integer_ticks(ax)
        ax.set_ylabel("‖dL/dW‖ (Frobenius) on the probe batch")
        ax.set_title(label or "all runs")
    _figure_legend(fig, axes)
    fig.suptitle(title)
    return _save(fig, path)


def _histogram_layers(n: int) -> List[int]:
    if n <= MAX_HISTOGRAM_LAYERS:
        return list(range(n))
    return sorted(set(int(round(x)) for x in np.linspace(0, n - 1, MAX_HISTOGRAM_LAYERS)))


def activation_histograms(runs: Sequence[Dict[str, Any]], path: str, *,
                          title: str = "activation values per hidden layer at init") -> Optional[str]:
    """Glorot & Bengio (2010, figure 6) style: for each initializer, the normalized histogram of
    every hidden layer's activation values at init, overlaid (one colour per layer)."""
    from matplotlib import colormaps
    runs = [r for r in _first_seed(runs) if r["at_init"]["histograms"]["counts"]]
    if not runs:
        return None  # no hidden layer: nothing to draw
    fig, axes = _panels(len(runs), 6.0, 3.2, max_cols=2)
    for ax, r in zip(axes, runs):
        hist = r["at_init"]["histograms"]
        edges = np.asarray(hist["edges"])
        centres = 0.5 * (edges[1:] + edges[:-1])
        layers = _histogram_layers(len(hist["counts"]))
        cmap = colormaps["viridis"]
        for k, i in enumerate(layers):
            counts = np.asarray(hist["counts"][i], dtype=np.float64)
            total = counts.sum()
            density = counts / total if total else counts
            ax.plot(centres, density, color=cmap(k / max(1, len(layers) - 1)), label=f"layer {i + 1}")
        ax.set_title(f"{r['label']} {r['init']}".strip(), fontsize="medium")
        ax.set_ylabel("fraction of values")
        ax.set_xlabel("activation value")
        if r["spec"]["activation"] not in ("tanh", "sigmoid"):
            ax.set_yscale("log")
        _legend_outside(ax, fontsize="x-small")
    fig.suptitle(title)
    return _save(fig, path)


def layer_profile(runs: Sequence[Dict[str, Any]], path: str, *,
                  keys: Sequence[Tuple[str, str]] = (("act_std", "activation std"),),
                  title: str = "per layer at init", hidden_only: bool = False, log: bool = True) -> str:
    """Per-layer statistics at init (`at_init[key]`), one panel per statistic, one line per run."""
    runs = _first_seed(runs)
    colors = _colors(runs)
    styles = {label: style for label, style in zip(dict.fromkeys(r["label"] for r in runs),
                                                   ("-", "--", ":", "-."))}
    fig, axes = _figure(1, len(keys), *PANEL)
    for ax, (key, name) in zip(axes[0], keys):
        for r in runs:
            values = r["at_init"][key]
            if hidden_only:
                values = values[:-1]
            xs = range(1, len(values) + 1)
            ys = _positive(values) if log and key != "saturated" else values
            ax.plot(xs, ys, "o", ls=styles.get(r["label"], "-"), ms=3, color=colors[r["init"]],
                    label=f"{r['label']} {r['init']}".strip())
        if log and key != "saturated":
            ax.set_yscale("log")
        ax.set_xlabel("hidden layer" if hidden_only else "layer (1 = input side)")
        _integer_ticks(ax)
        ax.set_ylabel(name)
        ax.set_title(name)
    _figure_legend(fig, list(axes[0]))
    fig.suptitle(title)
    return _save(fig, path)


def top_layer_means(runs: Sequence[Dict[str, Any]], path: str, *,
                    title: str = "Glorot & Bengio 2010, figure 2: sigmoid activations during training") -> str:
    """Mean activation of each hidden layer (probe batch) against epoch, one panel per run."""
    runs = [r for r in _first_seed(runs) if r["layer_stats"]]
    fig, axes = _figure(1, max(1, len(runs)), *PANEL)
    for ax, r in zip(axes[0], runs):
        stats = r["layer_stats"]
        epochs = [epoch[0]["epoch"] for epoch in stats]
        hidden = len(stats[0]) - 1
        for layer in range(hidden):
            ax.plot(epochs, [epoch[layer]["act_mean"] for epoch in stats], "o-", ms=3, label=f"layer {layer + 1}")
        ax.set_xlabel("epoch (0 = at init)")
        ax.set_ylabel("mean activation (probe batch)")
        ax.set_title(f"{r['label']} {r['init']}".strip())
        _integer_ticks(ax)
    _figure_legend(fig, list(axes[0]))
    fig.suptitle(title)
    return _save(fig, path)


def epochs_vs_depth(result, path: str, *,
                    title: str = "Saxe et al. 2013: epochs to the loss threshold against depth") -> str:
    """Epochs to reach the training-loss threshold against depth, one line per initializer;
    runs that never reached it are drawn at the epoch cap with an open marker."""
    colors = _colors(result.runs)
    fig, axes = _figure(1, 1, 7.0, 4.4)
    ax = axes[0, 0]
    for init in dict.fromkeys(r["init"] for r in result.runs):
        runs = sorted(_first_seed([r for r in result.runs if r["init"] == init]), key=lambda r: len(r["widths"]))
        depths = [len(r["widths"]) - 1 for r in runs]
        reached = [r["epochs_to_loss"] for r in runs]
        ys = [e if e is not None else r["spec"]["epochs"] for e, r in zip(reached, runs)]
        ax.plot(depths, ys, "-", color=colors[init], label=init)
        for d, y, e in zip(depths, ys, reached):
            ax.plot([d], [y], "o", color=colors[init], mfc=colors[init] if e is not None else "white")
    threshold = result.runs[0]["spec"]["loss_threshold"]
    ax.set_xscale("log", base=2)
    ax.set_xlabel("depth (weight layers, log scale)")
    ax.set_ylabel(f"epochs to training loss ≤ {threshold:g}")
    _legend_outside(ax)
    fig.suptitle(title)
    return _save(fig, path)


def comparison_figures(result, out_dir: str) -> List[str]:
    """The three figures of `initlab compare --out`: loss curves, gradient norms, activation histograms."""
    paths = [loss_curves_by_group(result, os.path.join(out_dir, "loss_curves.png"),
                                  chance=math.log(result.runs[0]["widths"][-1])),
             grad_norms(result, os.path.join(out_dir, "grad_norms_at_init.png")),
             activation_histograms(result.runs, os.path.join(out_dir, "activations_at_init.png"))]
    return [p for p in paths if p is not None]


def phase_diagram(result, path: str, accuracy_grid: Sequence[Sequence[Optional[float]]],
                  deepest: Dict[float, Optional[int]], trainable_factor: float) -> str:
    """Schoenholz et al. 2017, fig. 5: final validation accuracy over (sigma_w2, depth), with the
    mean-field depth scale 6 xi_c(sigma_w2) (and 3 xi_c, 12 xi_c) and the critical sigma_w2 drawn
    over it. accuracy_grid[i][j]: the accuracy at sigma_w2[i], depth[j] (None: not run); deepest:
    the deepest trainable depth per sigma_w2 (accuracy >= trainable_factor x chance), as the
    preset computes them."""
    from .. import theory
    config = result.config
    sigmas, depths = [float(w) for w in config["sigma_w2"]], list(config["depths"])
    grid = np.array([[np.nan if a is None else a for a in row] for row in accuracy_grid], dtype=float)
    fig, axes = _figure(1, 1, 7.5, 5.0)
    ax = axes[0][0]
    # cells centred on the grid values; edges half-way between neighbours (depth on a log scale)
    def edges(values, log):
        v = np.log(values) if log else np.asarray(values, dtype=float)
        mid = (v[1:] + v[:-1]) / 2
        e = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
        return np.exp(e) if log else e
    mesh = ax.pcolormesh(edges(sigmas, False), edges(depths, True), grid.T, cmap="viridis", vmin=0.0,
                         vmax=1.0, shading="flat")
    fig.colorbar(mesh, ax=ax, label="validation accuracy after the budget")
    fine = np.linspace(sigmas[0] - 0.1, sigmas[-1] + 0.1, 61)
    xi = np.array([theory.mean_field(config["activation"], w, config["sigma_b2"]).xi_c for w in fine])
    xi = np.where(np.isfinite(xi), xi, 1e9)
    for factor, style in ((6, "-"), (3, ":"), (12, ":")):
        ax.plot(fine, factor * xi, style, color="white" if factor == 6 else "0.85", lw=2 if factor == 6 else 1,
                label=f"{factor} ξ_c (mean-field theory)")
    ax.axvline(config["critical_sigma_w2"], color="red", lw=1, ls="--",
               label=f"critical σ_w² = {config['critical_sigma_w2']:.2f} (χ₁ = 1)")
    chance = 1.0 / result.runs[0]["widths"][-1]
    ax.plot([w for w in sigmas if deepest[w]], [deepest[w] for w in sigmas if deepest[w]], "o", color="orange",
            markeredgecolor="black",
            label=f"deepest trainable (acc ≥ {trainable_factor:g}× chance = {trainable_factor * chance:.0%})")
    ax.set_yscale("log")
    ax.set_ylim(edges(depths, True)[0], edges(depths, True)[-1])
    ax.set_xlim(edges(sigmas, False)[0], edges(sigmas, False)[-1])
    ax.set_xlabel("σ_w² (weights N(0, σ_w²/fan_in))")
    ax.set_ylabel("depth (hidden tanh layers)")
    ax.set_title(f"Schoenholz et al. 2017: trainable depth, tanh, σ_b² = {config['sigma_b2']:g}, "
                 f"width {config['width']}, {config['epochs']} epochs", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)
