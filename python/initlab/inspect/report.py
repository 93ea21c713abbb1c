"""`Report`: what `Network.fit` returns, epoch by epoch and layer by layer.

- `history`: one dict per completed epoch: `epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds`
  (accuracy is None for a linear output; val_* are None without validation data; lr is the
  learning rate the epoch used, from fit's lr_schedule). `loss` and
  `accuracy` are means over the epoch's mini-batches, weighted by batch size, measured in training
  mode (dropout on) as Keras does; `seconds` is the wall time of the epoch including validation.
  An epoch cut short (divergence, a callback's stop after a batch, Ctrl-C) is not recorded:
  stop_reason says where training stopped.
- `layer_stats`: one list per recorded epoch (epoch 0 is the network before this fit's first step,
  then every `stats_every` epochs), with one dict per layer: `epoch, layer, pre_mean, pre_std,
  act_mean, act_std, saturated, dead, grad_norm, weight_norm, update_ratio`. They are measured on a
  fixed probe batch with dropout off; `grad_norm` = ||dL/dW||_F on the probe batch, `weight_norm` =
  ||W||_F, `update_ratio` = ||dW_step||_F / ||W||_F for the epoch's last batch (Karpathy's
  rule of thumb: around 1e-3 is healthy; 0 when that batch's sample weights sum to 0, so it makes
  no step), None at epoch 0.
- `diverged`, `stop_reason` (None when every epoch ran), `divergence` (epoch, step, layers, loss of
  the first non-finite step, or None), `stats_seconds` (time spent on layer statistics),
  `train_seconds` (the whole fit), `config` (fit's arguments).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Any, Dict, List, Optional

import numpy as np

from .._files import write_bytes_atomically, write_text_atomically

HISTORY_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
LAYER_KEYS = ("epoch", "layer", "pre_mean", "pre_std", "act_mean", "act_std", "saturated", "dead",
              "grad_norm", "weight_norm", "update_ratio")


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: write them as null (and say so in the file's meta)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def _fmt(value: Any, width: int = 10) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, int):
        return str(value).rjust(width)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5) or not math.isfinite(value):
            return f"{value:.3e}".rjust(width)
        return f"{value:.4f}".rjust(width)
    return str(value).rjust(width)


class Report:
    """The record of one `Network.fit` call (see the module docstring for every field)."""

    def __init__(self, config: Optional[Dict[str, Any]] = None) -> None:
        self.history: List[Dict[str, Any]] = []
        self.layer_stats: List[List[Dict[str, Any]]] = []
        self.diverged: bool = False
        self.stop_reason: Optional[str] = None
        self.divergence: Optional[Dict[str, Any]] = None
        self.stats_seconds: float = 0.0
        self.train_seconds: float = 0.0
        self.config: Dict[str, Any] = dict(config or {})

    # ---- views ------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {"history": self.history, "layer_stats": self.layer_stats, "diverged": self.diverged,
                "stop_reason": self.stop_reason, "divergence": self.divergence,
                "stats_seconds": self.stats_seconds, "train_seconds": self.train_seconds,
                "config": self.config}

    def __repr__(self) -> str:
        return (f"Report(epochs={len(self.history)}, diverged={self.diverged}, "
                f"stop_reason={self.stop_reason!r})")

    def __str__(self) -> str:
        out = io.StringIO()
        out.write("epoch       loss   accuracy   val_loss    val_acc         lr    seconds\n")
        for h in self.history:
            out.write(f"{h['epoch']:5d} {_fmt(h['loss'])} {_fmt(h['accuracy'])} "
                      f"{_fmt(h['val_loss'])} {_fmt(h['val_accuracy'])} {_fmt(h.get('lr'))} "
                      f"{_fmt(h['seconds'])}\n")
        if not self.history:
            out.write("  (no completed epoch)\n")
        if self.layer_stats:
            last = self.layer_stats[-1]
            out.write(f"\nlayer statistics at epoch {last[0]['epoch']} (probe batch):\n")
            out.write("layer   pre_std    act_mean    act_std  saturated       dead"
                      "  grad_norm weight_norm update_ratio\n")
            for s in last:
                out.write(f"{s['layer']:5d} {_fmt(s['pre_std'])} {_fmt(s['act_mean'], 11)} "
                          f"{_fmt(s['act_std'])} {_fmt(s['saturated'])} {_fmt(s['dead'])} "
                          f"{_fmt(s['grad_norm'])} {_fmt(s['weight_norm'], 11)} "
                          f"{_fmt(s['update_ratio'], 12)}\n")
        out.write(f"\ndiverged: {self.diverged}\n")
        out.write(f"stop_reason: {self.stop_reason}\n")
        return out.getvalue()

    # ---- files ------------------------------------------------------------------------------
    def to_json(self, path: "os.PathLike[str] | str") -> str:
        """Write the whole report as JSON (non-finite numbers become null), atomically."""
        text = json.dumps(_json_safe(self.to_dict()), indent=1, allow_nan=False)
        return write_text_atomically(path, text + "\n", "Report.to_json")

    def to_csv(self, path: "os.PathLike[str] | str", what: str = "history") -> str:
        """Write `history` (one row per epoch) or `layer_stats` (one row per epoch and layer)."""
        if what == "history":
            keys, rows = HISTORY_KEYS, self.history
        elif what == "layer_stats":
            keys, rows = LAYER_KEYS, [s for epoch in self.layer_stats for s in epoch]
        else:
            raise ValueError(f"what must be 'history' or 'layer_stats', got {what!r}")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(keys), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in keys})
        return write_text_atomically(path, buf.getvalue(), "Report.to_csv")

    def plot(self, path: "os.PathLike[str] | str") -> str:
        """Write a PNG with three panels: loss curves, per-layer gradient norms over epochs (log
        scale) and activation std by depth (first and last recorded epoch). Needs matplotlib."""
        from .figures import png_bytes
        return write_bytes_atomically(path, png_bytes(self.figure()), "Report.plot")

    def figure(self):
        """The matplotlib Figure that `plot` writes (needs matplotlib)."""
        try:
            from matplotlib.figure import Figure
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Report.plot needs matplotlib: pip install 'initlab[plot]'") from None
        from .figures import _legend_outside
        fig = Figure(figsize=(16, 4.4), layout="constrained")
        ax_loss, ax_grad, ax_act = fig.subplots(1, 3)

        epochs = [h["epoch"] for h in self.history]
        ax_loss.plot(epochs, [h["loss"] for h in self.history], "o-", label="train loss")
        if any(h["val_loss"] is not None for h in self.history):
            ax_loss.plot(epochs, [h["val_loss"] for h in self.history], "s-", label="validation loss")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("loss (mean per sample)")
        ax_loss.set_title("loss")
        _legend_outside(ax_loss)

        if self.layer_stats:
            n_layers = len(self.layer_stats[0])
            stat_epochs = [rec[0]["epoch"] for rec in self.layer_stats]
            for layer in range(n_layers):
                norms = [rec[layer]["grad_norm"] for rec in self.layer_stats]
                ax_grad.plot(stat_epochs, [max(v, 1e-300) for v in norms], marker=".",
                             label=f"layer {layer}")
            ax_grad.set_yscale("log")
            _legend_outside(ax_grad, fontsize="x-small", ncol=max(1, -(-n_layers // 16)))
            # Hidden layers only: the output layer's "activations" are probabilities, another scale.
            depth = list(range(max(1, n_layers - 1)))
            for rec, style in ((self.layer_stats[0], "o--"), (self.layer_stats[-1], "o-")):
                ax_act.plot(depth, [max(rec[i]["act_std"], 1e-300) for i in depth], style,
                            label=f"epoch {rec[0]['epoch']}")
            ax_act.set_yscale("log")
            _legend_outside(ax_act)
        ax_grad.set_xlabel("epoch")
        ax_grad.set_ylabel("||dL/dW||_F on the probe batch (log)")
        ax_grad.set_title("gradient norm per layer")
        from matplotlib.ticker import MaxNLocator
        for ax in (ax_loss, ax_grad, ax_act):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_act.set_xlabel("hidden layer (depth)")
        ax_act.set_ylabel("std of activations (log)")
        ax_act.set_title("activation std by depth")
        status = "diverged" if self.diverged else (self.stop_reason or "completed")
        fig.suptitle(f"training report: {len(self.history)} epochs ({status})")
        return fig

    # ---- Jupyter ----------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """The history table, the last layer statistics and (with matplotlib) the figure inline."""
        import html
        esc = html.escape
        parts = [f"<div><p><b>Report</b>: {len(self.history)} epochs, diverged: {self.diverged}, "
                 f"stop_reason: {esc(str(self.stop_reason))}</p>"]
        parts.append(_html_table(HISTORY_KEYS, self.history))
        if self.layer_stats:
            last = self.layer_stats[-1]
            parts.append(f"<p>layer statistics at epoch {last[0]['epoch']} (probe batch)</p>")
            parts.append(_html_table(LAYER_KEYS[1:], last))
        if self.history:
            try:
                from .figures import html_image
                parts.append(html_image(self.figure(), "training report"))
            except ImportError:
                pass
        parts.append("</div>")
        return "".join(parts)


def _html_table(keys, rows) -> str:
    """An HTML table of `rows` (dicts) in the columns `keys`, numbers as the text table shows them."""
    import html
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(k), 0).strip())}</td>"
                                    for k in keys) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
