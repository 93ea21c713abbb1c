"""The comparison: `compare`, its `Comparison` result (table, files, figures) and `Claim`."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._files import write_text_atomically
from ..inspect.report import _json_safe
from .grid import run_grid
from .record import RunLog, data_fingerprint
from .runs import DEFAULTS, Data, RunSpec, _check_spec, prepare_data

# ================================================================================================
# the comparison: table, files, figures
# ================================================================================================

SUMMARY_KEYS = ("label", "init", "seed", "final_loss", "final_val_accuracy", "best_val_accuracy",
                "epochs_to_target", "epochs_to_loss", "grad_ratio", "verdict", "diverged", "epochs_run",
                "train_seconds")

# The channels of the small CNN that `compare` trains on image data (two 3x3 convolutions).
CNN_CHANNELS = (16, 32)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.2e}"
        if abs(value) >= 10 ** (digits - 1):
            return f"{value:.0f}"
        return f"{value:#.{digits}g}" if abs(value) >= 1 else f"{value:.{digits - 1}f}"
    return str(value)


def _write_text(path: "os.PathLike[str] | str", text: str) -> str:
    return write_text_atomically(path, text, "compare")


@dataclass
class Claim:
    """One statement of a paper, what this run measured, and whether the statement held."""

    claim: str
    measured: str
    holds: bool


@dataclass
class Comparison:
    """The runs of a grid, with the configuration that produced them.

    ``runs``: one dict per run (`run_one`); ``config``: how they were made; ``claims``: for a
    preset, the paper's statements checked against the runs; ``name``: "compare" or the preset.
    """

    runs: List[Dict[str, Any]]
    config: Dict[str, Any]
    name: str = "compare"
    claims: List[Claim] = field(default_factory=list)
    # The preset's own figures (out_dir -> paths); None: the generic comparison figures.
    figure_maker: Optional[Callable[["Comparison", str], List[str]]] = field(default=None, repr=False)

    # ---- views ----------------------------------------------------------------------------------
    def summary(self) -> List[Dict[str, Any]]:
        """One flat row per run (what the table and the CSV show)."""
        rows = []
        for run in self.runs:
            row = {key: run.get(key) for key in SUMMARY_KEYS}
            row["verdict"] = run["at_init"]["verdict"]
            rows.append(row)
        return rows

    def table(self) -> str:
        """The printed table: one line per run."""
        cells = self._table_cells()
        widths = [max(len(line[j]) for line in cells) for j in range(len(cells[0]))]
        out = io.StringIO()
        for k, line in enumerate(cells):
            out.write("  ".join(cell.ljust(w) if j < 2 or k == 0 else cell.rjust(w)
                                for j, (cell, w) in enumerate(zip(line, widths))).rstrip() + "\n")
            if k == 0:
                out.write("  ".join("-" * w for w in widths) + "\n")
        return out.getvalue()

    def _table_cells(self) -> List[List[str]]:
        """The table's header and rows as strings."""
        target = self.runs[0]["spec"]["target_accuracy"] if self.runs else 0.0
        threshold = self.runs[0]["spec"]["loss_threshold"] if self.runs else None
        columns = ([("label", "group")] if any(r["label"] for r in self.runs) else []) + [
            ("init", "init"), ("seed", "seed"), ("final_loss", "train loss"),
            ("final_val_accuracy", "val acc"), ("epochs_to_target", f"epochs to {target:.0%}")]
        if threshold is not None:
            columns.append(("epochs_to_loss", f"epochs to loss {threshold:g}"))
        columns += [("grad_ratio", "|dW| first/last"), ("verdict", "verdict at init"),
                    ("train_seconds", "time s")]
        cells = [[title for _, title in columns]]
        for row in self.summary():
            line = []
            for key, _ in columns:
                value = row[key]
                if key == "final_val_accuracy" and value is not None:
                    value = f"{value:.1%}"
                elif key == "train_seconds":
                    value = f"{value:.1f}"
                elif key == "epochs_to_target" and value is None and row["epochs_run"]:
                    value = f">{row['epochs_run']}"
                line.append(_fmt(value))
            if row["diverged"]:
                line[-1] += " (diverged)"
            cells.append(line)
        return cells

    def summary_by_init(self) -> List[Dict[str, Any]]:
        """One row per (group, initializer) over its seeds: the mean and the sample standard
        deviation (ddof=1; 0 for one seed) of the final training loss, the final validation accuracy
        and the epochs to the target (over the seeds that reached it), with counts."""
        rows: Dict[Tuple[str, str], Dict[str, Any]] = {}
        for run in self.runs:
            key = (run["label"], run["init"])
            row = rows.setdefault(key, {"label": run["label"], "init": run["init"], "seeds": [],
                                        "final_loss": [], "final_val_accuracy": [], "epochs_to_target": [],
                                        "diverged": 0, "verdicts": []})
            row["seeds"].append(run["seed"])
            for name in ("final_loss", "final_val_accuracy", "epochs_to_target"):
                value = run.get(name)
                if value is not None and math.isfinite(value):
                    row[name].append(float(value))
            row["diverged"] += bool(run["diverged"])
            if run["at_init"]["verdict"] not in row["verdicts"]:
                row["verdicts"].append(run["at_init"]["verdict"])
        out = []
        for row in rows.values():
            for name in ("final_loss", "final_val_accuracy", "epochs_to_target"):
                values = row.pop(name)
                row[name + "_mean"] = float(np.mean(values)) if values else None
                row[name + "_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else (0.0 if values else None)
                row[name + "_count"] = len(values)
            out.append(row)
        return out

    def seed_table(self) -> str:
        """The printed mean ± std over seeds, one line per (group, initializer)."""
        rows = self.summary_by_init()
        target = self.runs[0]["spec"]["target_accuracy"] if self.runs else 0.0
        grouped = any(r["label"] for r in rows)

        def pm(row, name, percent=False):
            mean, std = row[name + "_mean"], row[name + "_std"]
            if mean is None:
                return "-"
            return f"{mean:.1%} ± {std:.1%}" if percent else f"{_fmt(mean)} ± {_fmt(std)}"

        cells = [(["group"] if grouped else []) + ["init", "seeds", "train loss", "val acc",
                                                   f"epochs to {target:.0%}", "diverged", "verdict at init"]]
        for row in rows:
            n = len(row["seeds"])
            reached = row["epochs_to_target_count"]
            epochs = pm(row, "epochs_to_target") + (f" ({reached} of {n})" if 0 < reached < n else "")
            cells.append(([row["label"]] if grouped else []) + [
                row["init"], str(n), pm(row, "final_loss"), pm(row, "final_val_accuracy", True),
                epochs if reached else f"none of {n}", f"{row['diverged']} of {n}", "/".join(row["verdicts"])])
        widths = [max(len(line[j]) for line in cells) for j in range(len(cells[0]))]
        first_numeric = 2 if grouped else 1
        out = io.StringIO()
        for k, line in enumerate(cells):
            out.write("  ".join(cell.ljust(w) if j < first_numeric or k == 0 or j == len(line) - 1
                                else cell.rjust(w) for j, (cell, w) in enumerate(zip(line, widths))).rstrip() + "\n")
            if k == 0:
                out.write("  ".join("-" * w for w in widths) + "\n")
        return out.getvalue()

    def claims_table(self) -> str:
        out = io.StringIO()
        for c in self.claims:
            out.write(f"[{'holds' if c.holds else 'DOES NOT HOLD'}] {c.claim}\n    measured: {c.measured}\n")
        return out.getvalue()

    def __str__(self) -> str:
        text = self.table()
        if self.claims:
            text += "\n" + self.claims_table()
        return text

    def __repr__(self) -> str:
        inits = list(dict.fromkeys(r["init"] for r in self.runs))
        seeds = sorted({r["seed"] for r in self.runs})
        held = sum(c.holds for c in self.claims)
        claims = f", claims={held}/{len(self.claims)} hold" if self.claims else ""
        shown = ", ".join(inits[:6]) + (f", ... ({len(inits)})" if len(inits) > 6 else "")
        return (f"Comparison(name={self.name!r}, runs={len(self.runs)}, inits=[{shown}], "
                f"seeds={seeds if len(seeds) <= 6 else f'{len(seeds)} seeds'}{claims})")

    def _repr_html_(self) -> str:
        """Jupyter: the claims (for a preset), the table of runs and (with matplotlib) the loss
        curves inline."""
        import html
        esc = html.escape
        parts = [f"<div><p><b>{esc(self.name)}</b>: {len(self.runs)} runs</p>"]
        if self.claims:
            parts.append("<table><tr><th></th><th>claim</th><th>measured</th></tr>")
            for c in self.claims:
                verdict = "holds" if c.holds else "<b>DOES NOT HOLD</b>"
                parts.append(f"<tr><td>{verdict}</td><td>{esc(c.claim)}</td><td>{esc(c.measured)}</td></tr>")
            parts.append("</table>")
        header, *rows = self._table_cells()
        parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        for line in rows:
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in line) + "</tr>")
        parts.append("</table>")
        if self.runs:
            try:
                from ..inspect.figures import html_image, loss_curves_figure
                chance = math.log(self.runs[0]["widths"][-1]) if self.runs[0].get("widths") else None
                parts.append(html_image(loss_curves_figure(self, chance=chance), "loss curves"))
            except ImportError:
                pass
        parts.append("</div>")
        return "".join(parts)

    # ---- files ----------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "config": self.config, "claims": [asdict(c) for c in self.claims],
                "summary": self.summary(), "runs": self.runs}

    def to_json(self, path: "os.PathLike[str] | str") -> str:
        """Everything (config, claims, every run with its history and statistics), atomically."""
        return _write_text(path, json.dumps(_json_safe(self.to_dict()), indent=1, allow_nan=False) + "\n")

    def to_csv(self, path: "os.PathLike[str] | str", what: str = "summary") -> str:
        """``summary`` (one row per run), ``history`` (per run and epoch) or ``layers`` (per run
        and layer, at init)."""
        if what == "summary":
            keys, rows = list(SUMMARY_KEYS), self.summary()
        elif what == "history":
            keys = ["label", "init", "seed", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]
            rows = [dict(h, label=r["label"], init=r["init"], seed=r["seed"]) for r in self.runs
                    for h in r["history"]]
        elif what == "layers":
            keys = ["label", "init", "seed", "layer", "pre_std", "act_mean", "act_std", "saturated", "dead",
                    "grad_norm", "grad_std"]
            rows = []
            for r in self.runs:
                a = r["at_init"]
                for i in range(len(a["grad_norm"])):
                    rows.append({"label": r["label"], "init": r["init"], "seed": r["seed"], "layer": i,
                                 **{k: a[k][i] for k in keys[4:]}})
        else:
            raise ValueError(f"what must be 'summary', 'history' or 'layers', got {what!r}")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in keys})
        return _write_text(path, buf.getvalue())

    def save(self, out_dir: "os.PathLike[str] | str", *, figures: bool = True) -> List[str]:
        """Write ``results.json``, ``summary.csv``, ``history.csv``, ``layers.csv`` and (with
        matplotlib) the PNG figures into ``out_dir``; returns the paths written."""
        out_dir = os.fspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        written = [self.to_json(os.path.join(out_dir, "results.json")),
                   self.to_csv(os.path.join(out_dir, "summary.csv"), "summary"),
                   self.to_csv(os.path.join(out_dir, "history.csv"), "history"),
                   self.to_csv(os.path.join(out_dir, "layers.csv"), "layers")]
        if figures:
            from ..inspect import figures as figure_module
            drawn = (self.figure_maker(self, out_dir) if self.figure_maker is not None
                     else figure_module.comparison_figures(self, out_dir))
            written += [path for path in drawn if path is not None]
        return written


def compare(data: Union[str, Tuple[np.ndarray, np.ndarray], Data] = DEFAULTS["data"], *,
            inits: Iterable[str] = DEFAULTS["inits"], depth: int = DEFAULTS["depth"],
            width: int = DEFAULTS["width"], activation: str = DEFAULTS["activation"],
            seeds: Iterable[int] = DEFAULTS["seeds"], epochs: int = DEFAULTS["epochs"],
            batch_size: int = DEFAULTS["batch_size"], optimizer: str = DEFAULTS["optimizer"],
            lr: float = DEFAULTS["lr"], momentum: float = DEFAULTS["momentum"],
            target_accuracy: float = DEFAULTS["target_accuracy"], threads: Optional[int] = None,
            workers: Optional[int] = None, scheduler: Optional[str] = None,
            progress: Optional[bool] = None, val_fraction: float = 0.2, data_seed: int = 0,
            max_samples: Optional[int] = None, hidden: Optional[Sequence[int]] = None,
            weight_decay: float = 0.0, dropout: float = 0.0, clip_norm: Optional[float] = None,
            clip_value: Optional[float] = None, bias_init: str = "zeros",
            lr_schedule: Optional[Any] = None, out: Optional["os.PathLike[str] | str"] = None,
            resume: bool = False) -> Comparison:
    """Train one network per initializer and seed on the same data; see the module docstring.

    ``data``: a built-in name (``digits``, ``spirals``, ``moons``, ``blobs``), a file path
    (.npz, .csv, IDX), ``(X, y)`` arrays or a prepared `Data`. The network is
    ``[features, width × depth, classes]`` (or ``[features, *hidden, classes]``) with
    ``activation`` in the hidden layers and a softmax output; every run uses the same split
    (seeded by ``data_seed``) and the same hyperparameters. ``weight_decay``, ``clip_norm``,
    ``clip_value`` and ``lr_schedule`` go to `Network.fit`, ``dropout`` (hidden layers) and
    ``bias_init`` to the `Network`. Image data (``digits-images``, or (n, H, W, C) arrays) trains a
    small CNN instead: 3x3 "same" convolutions of ``hidden`` channels (default `CNN_CHANNELS`), then
    Flatten and the softmax layer.
    ``out``: a folder where each run is recorded as it finishes (``runs.jsonl``, see
    `initlab.experiments.record`); ``resume=True`` skips the runs recorded there.
    """
    inits = [inits] if isinstance(inits, str) else list(inits)
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not inits:
        raise ValueError("inits must name at least one initializer")
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    _check_inits(inits)
    prepared = data if isinstance(data, Data) else prepare_data(
        data, val_fraction=val_fraction, seed=data_seed, max_samples=max_samples)
    hidden = None if hidden is None else tuple(hidden)
    kernel_size = 0
    if prepared.image_shape is not None:  # images: a small CNN, 3x3 "same" convolutions, then Flatten
        kernel_size = 3
        hidden = CNN_CHANNELS if hidden is None else hidden
    if hidden is not None:
        depth, width = len(hidden), (max(hidden) if hidden else width)
    specs = [RunSpec(init=init, seed=int(seed), depth=depth, width=width, activation=activation,
                     epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                     target_accuracy=target_accuracy, threads=threads, hidden=hidden,
                     weight_decay=weight_decay, dropout=dropout, clip_norm=clip_norm, clip_value=clip_value,
                     bias_init=bias_init, lr_schedule=lr_schedule, kernel_size=kernel_size)
             for init in inits for seed in seeds]
    _check_network(specs[0], prepared)
    settings = {"data": prepared.describe(), "inits": inits, "seeds": seeds, "depth": depth, "width": width,
                "activation": activation, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer,
                "lr": lr, "momentum": momentum, "target_accuracy": target_accuracy,
                "hidden": list(specs[0].widths(prepared)[1:-1]), "weight_decay": weight_decay,
                "dropout": dropout, "clip_norm": clip_norm, "clip_value": clip_value, "bias_init": bias_init,
                "lr_schedule": lr_schedule, "val_fraction": val_fraction, "data_seed": data_seed}
    log = _run_log(out, resume, dict(settings, sweep="compare", data=data_fingerprint(prepared)))
    runs = run_grid(specs, prepared, workers=workers, scheduler=scheduler, progress=progress,
                    desc="compare", log=log)
    return Comparison(runs, dict(settings, workers=workers, scheduler=scheduler))


def _run_log(out: Optional["os.PathLike[str] | str"], resume: bool, config: Dict[str, Any]) -> Optional[RunLog]:
    if out is None:
        if resume:
            raise ValueError("resume=True needs out= (the folder of the sweep to resume)")
        return None
    return RunLog(out, config, resume=bool(resume))


def _check_inits(inits: Sequence[str]) -> None:
    from .. import init as init_module
    valid = list(init_module.names()) + ["lsuv"]
    for name in inits:
        if not isinstance(name, str):
            raise TypeError(f"inits must be initializer names, got {type(name).__name__} {name!r}")
        if name != "lsuv":
            try:
                init_module.get(name)
            except ValueError as e:
                if "(" in name:  # NAME(key=value, ...): the parser's message names what is wrong
                    raise ValueError(f"inits: {name!r}: {e}") from None
                raise ValueError(f"inits: {name!r} is not a known initializer; valid: {', '.join(valid)}") from None


def _check_network(spec: RunSpec, data: Data) -> None:
    """Build the first network once so a bad activation or optimizer fails before the grid runs."""
    from ..nn.network import Network
    from ..nn.network import OPTIMIZERS
    _check_spec(spec)
    if spec.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={spec.optimizer!r} is not valid; valid: {', '.join(OPTIMIZERS)}")
    spec.build(data)
    if spec.lr_schedule is not None:
        import inspect
        if "lr_schedule" not in inspect.signature(Network.fit).parameters:
            raise ValueError("lr_schedule: this initlab's Network.fit takes no learning-rate schedule yet")


