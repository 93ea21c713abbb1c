"""Compare initializers on the same data and reproduce the classic initialization papers.

The question this module answers: *which initialization lets this network learn, and why?*
`compare` trains one network per initializer (and per seed) on the same split of the same data and
records, for each run:

- before training, on a fixed probe batch (the first ``probe_size`` training rows): the
  ``Network.diagnose`` table (activation moments, saturated and dead fractions, ‖dW‖ and the
  standard deviation of the back-propagated gradient dL/dZ per layer), its verdict, and histograms
  of every hidden layer's activations (Glorot & Bengio 2010, figure 6);
- during training (``Network.fit``): the per-epoch history, the epochs needed to reach
  ``target_accuracy`` on the validation set (and ``loss_threshold`` on the training loss when given),
  and the time spent.

A grid of runs is a list of `RunSpec`; `run_one(spec, data)` is a pure function of them (the
network's seed fixes its weights and its shuffling; the kernels give bitwise the same results on
any thread count), so the grid can run serially, on local processes (``workers=N``) or on a Dask
cluster (``scheduler=ADDRESS``) with identical results.

Presets reproduce published findings at a size that runs in minutes on two cores; each preset
states the paper's claim, measures it and says whether it held (`Comparison.claims`):

    he2015      He et al. 2015, "Delving deep into rectifiers": 22 and 30 ReLU layers, Xavier vs He.
    glorot2010  Glorot & Bengio 2010: 5 tanh / sigmoid layers, "standard" U(±1/√n) vs normalized.
    saxe2013    Saxe et al. 2013: deep linear nets, epochs to a loss threshold vs depth,
                orthogonal vs scaled Gaussian.
    lsuv        Mishkin & Matas 2016, "All you need is a good init": LSUV vs orthogonal, He, Xavier.

>>> import initlab as il
>>> result = il.experiments.compare("digits", inits=["he_normal"], depth=2, width=16, epochs=1,
...                                 progress=False)
>>> result.runs[0]["init"], len(result.runs[0]["history"])
('he_normal', 1)
"""
from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core, datasets
from ._files import write_text_atomically
from .callbacks import Callback
from .report import _json_safe

LN10 = math.log(10.0)

# The initializers `initlab compare` runs by default: the three variance-scaling families, the
# orthogonal scheme, PyTorch's default and the classic small random init.
DEFAULT_INITS = ("xavier_normal", "he_normal", "lecun_normal", "orthogonal", "torch_default",
                 "small_random")
# README's main job: `initlab compare` with no arguments (measured: well under a minute on 2 cores).
DEFAULTS: Dict[str, Any] = dict(data="digits", depth=6, width=128, activation="relu",
                                inits=DEFAULT_INITS, seeds=(0,), epochs=15, batch_size=32,
                                optimizer="sgd", lr=0.01, momentum=0.9, target_accuracy=0.95)
HISTOGRAM_BINS = 40
MAX_HISTOGRAM_LAYERS = 6  # figure legibility: deeper nets show evenly spaced layers


# ================================================================================================
# data
# ================================================================================================

@dataclass
class Data:
    """A train/validation split, features standardized with the training statistics."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    classes: int

    @property
    def features(self) -> int:
        return int(self.X_train.shape[1])

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "train": int(self.X_train.shape[0]), "validation": int(self.X_val.shape[0]),
                "features": self.features, "classes": self.classes}


def prepare_data(data: Union[str, Tuple[np.ndarray, np.ndarray]] = "digits", *, val_fraction: float = 0.2,
                 seed: int = 0, standardize: bool = True, max_samples: Optional[int] = None,
                 name: Optional[str] = None) -> Data:
    """Load ``data`` (a built-in name, a path, or ``(X, y)``), shuffle with ``seed``, keep at most
    ``max_samples`` rows, hold out ``val_fraction`` for validation and standardize every feature to
    zero mean and unit variance on the training part (constant features are only centred)."""
    if isinstance(data, tuple):
        X, y = data
        label = name or "arrays"
    else:
        X, y = datasets.load(data, seed=seed)
        label = name or os.fspath(data)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"data must be X of shape (n, features) and y of shape (n,), got {X.shape} and {y.shape}")
    if not (isinstance(val_fraction, (int, float)) and 0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    order = np.random.default_rng(seed).permutation(X.shape[0])
    if max_samples is not None:
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 2:
            raise ValueError(f"max_samples must be an int >= 2 or None, got {max_samples!r}")
        order = order[:max_samples]
    n_val = int(round(len(order) * val_fraction))
    if n_val < 1 or n_val >= len(order):
        raise ValueError(f"val_fraction={val_fraction} of {len(order)} samples leaves no training or "
                         "no validation rows")
    train, val = order[n_val:], order[:n_val]
    X_train, X_val = X[train], X[val]
    if standardize:
        mean = X_train.mean(axis=0, dtype=np.float64)
        std = X_train.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        X_train = (X_train - mean) / std
        X_val = (X_val - mean) / std
    classes = int(max(y.max(), 1)) + 1
    return Data(label, np.ascontiguousarray(X_train, dtype=np.float32), np.ascontiguousarray(y[train]),
                np.ascontiguousarray(X_val, dtype=np.float32), np.ascontiguousarray(y[val]), classes)


# ================================================================================================
# one run
# ================================================================================================

@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run (besides the data).

    ``depth`` counts hidden layers: the network has ``depth + 1`` weight layers
    ``[features, width × depth, classes]``. ``init`` applies to every weight layer, biases start at
    zero. ``label`` groups runs in tables and figures (for example ``"30 layers"``).
    """

    init: str
    seed: int = 0
    depth: int = 6
    width: int = 128
    activation: str = "relu"
    epochs: int = 15
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    target_accuracy: float = 0.95
    loss_threshold: Optional[float] = None   # stop once the epoch's training loss is at or below it
    stats_every: int = 0                      # per-layer statistics during training (0: none)
    threads: Optional[int] = None             # kernels' threads in the process running this spec
    probe_size: int = 256
    label: str = ""

    def widths(self, data: Data) -> List[int]:
        return [data.features] + [self.width] * self.depth + [data.classes]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _check_spec(spec: RunSpec) -> None:
    """Reject a bad grid before any run starts (the Network validates the rest when it is built)."""
    for name in ("depth", "width", "epochs", "batch_size", "probe_size"):
        value = getattr(spec, name)
        minimum = 0 if name in ("depth", "epochs") else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if not (isinstance(spec.lr, (int, float)) and math.isfinite(spec.lr) and spec.lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0, got {spec.lr!r}")
    if not (isinstance(spec.target_accuracy, (int, float)) and 0 <= spec.target_accuracy <= 1):
        raise ValueError(f"target_accuracy must be a number in [0, 1], got {spec.target_accuracy!r}")
    if spec.threads is not None and (isinstance(spec.threads, bool) or not isinstance(spec.threads, int)
                                     or spec.threads < 1):
        raise ValueError(f"threads must be an int >= 1 or None, got {spec.threads!r}")


def _hidden_activations(net, X: np.ndarray) -> List[np.ndarray]:
    """Each hidden layer's activations A_i on X (dropout off), with the core's activation kernel."""
    outputs = []
    A = np.ascontiguousarray(X, dtype=net.dtype)
    for layer in net.layers[:-1]:
        Z = np.ascontiguousarray(A @ layer.W + layer.b)
        A = np.empty_like(Z)
        _core.activation_forward(Z, A, layer.activation, layer.act_param)
        outputs.append(A)
    return outputs


def _histograms(activations: List[np.ndarray], activation: str) -> Dict[str, Any]:
    """Histograms with one set of bin edges for all layers, so widths compare across depth.

    Bounded activations use their range; others the 0.5..99.5 percentile range over all layers
    (``outside`` counts, per layer, the values beyond it).
    """
    if activation == "tanh":
        low, high = -1.0, 1.0
    elif activation == "sigmoid":
        low, high = 0.0, 1.0
    elif activations:
        values = np.concatenate([a.ravel() for a in activations]).astype(np.float64)
        values = values[np.isfinite(values)]
        low, high = (float(v) for v in np.percentile(values, [0.5, 99.5])) if values.size else (0.0, 1.0)
        if not high > low:
            low, high = low - 1.0, high + 1.0
    else:
        low, high = 0.0, 1.0
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts = [np.histogram(a.ravel(), bins=edges)[0] for a in activations]
    outside = [int(a.size - c.sum()) for a, c in zip(activations, counts)]
    return {"edges": edges.tolist(), "counts": [c.tolist() for c in counts], "outside": outside}


class _StopAtLoss(Callback):
    """A fit callback that stops once the epoch's training loss reaches a threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def on_epoch_end(self, epoch: int, logs: Dict[str, Any]) -> None:
        loss = logs.get("loss")
        if loss is not None and loss <= self.threshold:
            self.stop(f"training loss {loss:.4g} <= threshold {self.threshold:g} at epoch {epoch}")


def _first_epoch(history: List[Dict[str, Any]], key: str, ok: Callable[[float], bool]) -> Optional[int]:
    for entry in history:
        value = entry.get(key)
        if value is not None and math.isfinite(value) and ok(value):
            return int(entry["epoch"])
    return None


def run_one(spec: RunSpec, data: Data, *, on_epoch: Optional[Callable[[], Any]] = None) -> Dict[str, Any]:
    """Build, inspect and train one network; returns a JSON-ready dict (see the module docstring).

    Deterministic: the same spec and data give the same numbers (except the timings) in any
    process, on any thread count. ``on_epoch`` is called after every epoch (progress bars).
    """
    from . import Network, set_num_threads

    _check_spec(spec)
    if spec.threads is not None:
        set_num_threads(spec.threads)
    started = time.perf_counter()
    net = Network(spec.widths(data), activation=spec.activation, output="softmax", init=spec.init,
                  bias_init="zeros", seed=spec.seed)
    if spec.init == "lsuv":
        # LSUV scales the weights on the first batch fit sees; a fit of 0 epochs does just that
        # (and nothing else), so the statistics "at init" are those of the network that trains.
        net.fit(data.X_train, data.y_train, epochs=0, batch_size=spec.batch_size, optimizer=spec.optimizer,
                stats_every=0, progress=False)
    probe = slice(0, min(spec.probe_size, data.X_train.shape[0]))
    X_probe, y_probe = data.X_train[probe], data.y_train[probe]
    diagnosis = net.diagnose(X_probe, y_probe)
    hidden = _hidden_activations(net, X_probe)
    rows = diagnosis.layers
    grad_norms = [float(r["grad_norm"]) for r in rows]
    at_init = {
        "grad_norm": grad_norms,
        "grad_std": [float(r["grad_std"]) for r in rows],
        "pre_std": [float(r["pre_std"]) for r in rows],
        "act_mean": [float(r["act_mean"]) for r in rows],
        "act_std": [float(r["act_std"]) for r in rows],
        "saturated": [float(r["saturated"]) for r in rows],
        "dead": [float(r["dead"]) for r in rows],
        "loss": float(net.loss(X_probe, y_probe)),
        "histograms": _histograms(hidden, spec.activation),
        "verdict": diagnosis.verdict,
        "evidence": diagnosis.evidence,
        "suggestion": diagnosis.suggestion,
        "forward_gain": float(diagnosis.forward_gain),
        "backward_gain": float(diagnosis.backward_gain),
    }
    callbacks: List[Any] = [] if spec.loss_threshold is None else [_StopAtLoss(spec.loss_threshold)]
    if on_epoch is not None:
        callbacks.append(lambda epoch, logs: on_epoch())
    report = net.fit(data.X_train, data.y_train, epochs=spec.epochs, batch_size=spec.batch_size,
                     optimizer=spec.optimizer, lr=spec.lr,
                     momentum=spec.momentum if spec.optimizer in ("sgd", "rmsprop") else 0.0,
                     validation_data=(data.X_val, data.y_val), stats_every=spec.stats_every,
                     progress=False, callbacks=callbacks)
    history = report.history
    last = history[-1] if history else {}
    first, final = grad_norms[0], grad_norms[-1]
    return {
        "spec": spec.to_dict(),
        "init": spec.init,
        "seed": spec.seed,
        "label": spec.label,
        "widths": spec.widths(data),
        "at_init": at_init,
        "grad_ratio": (first / final) if final > 0 else (math.inf if first > 0 else float("nan")),
        "history": history,
        "layer_stats": report.layer_stats,
        "final_loss": last.get("loss"),
        "final_val_loss": last.get("val_loss"),
        "final_val_accuracy": last.get("val_accuracy"),
        "best_val_accuracy": max((h["val_accuracy"] for h in history if h.get("val_accuracy") is not None),
                                 default=None),
        "epochs_to_target": _first_epoch(history, "val_accuracy", lambda v: v >= spec.target_accuracy),
        "epochs_to_loss": (None if spec.loss_threshold is None else
                           _first_epoch(history, "loss", lambda v: v <= spec.loss_threshold)),
        "epochs_run": len(history),
        "diverged": report.diverged,
        "stop_reason": report.stop_reason,
        "train_seconds": report.train_seconds,
        "seconds": time.perf_counter() - started,
    }


# ================================================================================================
# grids: serial, local processes, Dask
# ================================================================================================

def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _progress_bar(specs: Sequence[RunSpec], progress: Optional[bool], desc: str):
    """A bar counting epochs over the whole grid (on a terminal, or when progress=True)."""
    from tqdm.auto import tqdm
    show = sys.stderr.isatty() if progress is None else bool(progress)
    return tqdm(total=sum(spec.epochs for spec in specs), desc=desc, unit="epoch", disable=not show,
                leave=False)


def _finish(bar, spec: RunSpec, run: Dict[str, Any]) -> None:
    """Count the epochs a run did not need (it stopped early) so the bar ends full."""
    bar.update(spec.epochs - run["epochs_run"])


# Below this many multiply-adds per layer and batch (batch x fan_in x fan_out), a GEMM is too small
# to gain from OpenMP threads, and on a busy machine the threads' synchronization can make it many
# times slower (measured on 2 shared cores: the default `initlab compare` took 15 s on 1 thread and
# 166 s on 2). Such runs use one thread; their cores are better used by --workers.
SMALL_GEMM_MACS = 1 << 21


def suggest_threads(widths: Sequence[int], batch_size: int, cores: Optional[int] = None) -> int:
    """Kernel threads for training a network of these widths: 1 when its largest layer's GEMM per
    batch is below `SMALL_GEMM_MACS` multiply-adds, else ``cores`` (default: all of them)."""
    macs = batch_size * max(a * b for a, b in zip(widths, widths[1:]))
    return 1 if macs < SMALL_GEMM_MACS else (cores or _cpu_count())


def _threads_per_task(specs: List[RunSpec], data: Data, workers: int) -> List[RunSpec]:
    """Give each task its share of the cores (one thread for small networks) unless set."""
    share = max(1, _cpu_count() // max(1, workers))
    return [spec if spec.threads is not None else
            replace(spec, threads=suggest_threads(spec.widths(data), spec.batch_size, share))
            for spec in specs]


def run_grid(specs: Sequence[RunSpec], data: Data, *, workers: Optional[int] = None,
             scheduler: Optional[str] = None, progress: Optional[bool] = None,
             desc: str = "runs") -> List[Dict[str, Any]]:
    """Run every spec on ``data``; results come back in the order of ``specs``.

    ``workers=N`` runs them on N local processes (spawned, so each starts clean);
    ``scheduler="local"`` starts a Dask ``LocalCluster`` on 127.0.0.1 (``workers`` processes, one
    thread each, 2 by default), any other string is the address of a Dask scheduler
    (``tcp://host:8786``) whose workers have initlab installed. Each task sets its own kernel thread
    count: its spec's ``threads``, else one thread for a small network (`SMALL_GEMM_MACS`) and the
    cores divided by the workers for a larger one (one thread on a remote cluster). The results are
    those of the serial run: every run is deterministic, on any thread count.
    """
    specs = list(specs)
    for spec in specs:
        _check_spec(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if scheduler is not None:
        return _run_dask(specs, data, scheduler, workers, progress, desc)
    results: List[Optional[Dict[str, Any]]] = [None] * len(specs)
    if workers is None or workers == 1 or len(specs) <= 1:
        from . import get_num_threads, set_num_threads
        specs = _threads_per_task(specs, data, 1)
        threads_before = get_num_threads()
        try:
            with _progress_bar(specs, progress, desc) as bar:
                for i, spec in enumerate(specs):
                    bar.set_postfix_str(f"{spec.label} {spec.init} seed {spec.seed}".strip())
                    results[i] = run_one(spec, data, on_epoch=lambda: bar.update())
                    _finish(bar, spec, results[i])
        finally:
            set_num_threads(threads_before)  # the caller's setting, whatever the runs used
        return results  # type: ignore[return-value]
    specs = _threads_per_task(specs, data, workers)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool, \
            _progress_bar(specs, progress, desc) as bar:
        futures = {pool.submit(run_one, spec, data): i for i, spec in enumerate(specs)}
        try:
            for future in concurrent.futures.as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                bar.update(results[i]["epochs_run"])
                _finish(bar, specs[i], results[i])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results  # type: ignore[return-value]


def _run_dask(specs: List[RunSpec], data: Data, scheduler: str, workers: Optional[int],
              progress: Optional[bool], desc: str) -> List[Dict[str, Any]]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("--scheduler needs Dask distributed: pip install 'initlab[distributed]'") from None
    if not isinstance(scheduler, str) or not scheduler:
        raise ValueError(f"scheduler must be 'local' or a scheduler address, got {scheduler!r}")
    cluster = None
    if scheduler == "local":
        n_workers = workers or 2
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
        specs = _threads_per_task(specs, data, n_workers)
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
        specs = _threads_per_task(specs, data, 1_000_000)  # unknown machines: one thread per task
    try:
        data_future = client.scatter(data, broadcast=True)
        futures = [client.submit(run_one, spec, data_future, pure=False) for spec in specs]
        index = {future.key: i for i, future in enumerate(futures)}
        results: List[Optional[Dict[str, Any]]] = [None] * len(specs)
        with _progress_bar(specs, progress, desc) as bar:
            for future in as_completed(futures):
                i = index[future.key]
                results[i] = future.result()
                bar.update(results[i]["epochs_run"])
                _finish(bar, specs[i], results[i])
        return results  # type: ignore[return-value]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# ================================================================================================
# the comparison: table, files, figures
# ================================================================================================

SUMMARY_KEYS = ("label", "init", "seed", "final_loss", "final_val_accuracy", "best_val_accuracy",
                "epochs_to_target", "epochs_to_loss", "grad_ratio", "verdict", "diverged", "epochs_run",
                "train_seconds")


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
        widths = [max(len(line[j]) for line in cells) for j in range(len(columns))]
        out = io.StringIO()
        for k, line in enumerate(cells):
            out.write("  ".join(cell.ljust(w) if j < 2 or k == 0 else cell.rjust(w)
                                for j, (cell, w) in enumerate(zip(line, widths))).rstrip() + "\n")
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
            from . import figures as figure_module
            preset = PRESETS.get(self.name)
            drawn = (preset.figures(self, out_dir) if preset is not None
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
            max_samples: Optional[int] = None) -> Comparison:
    """Train one network per initializer and seed on the same data; see the module docstring.

    ``data``: a built-in name (``digits``, ``spirals``, ``moons``, ``blobs``), a file path
    (.npz, .csv, IDX), ``(X, y)`` arrays or a prepared `Data`. The network is
    ``[features, width × depth, classes]`` with ``activation`` in the hidden layers and a softmax
    output; every run uses the same split (seeded by ``data_seed``) and the same hyperparameters.
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
    specs = [RunSpec(init=init, seed=int(seed), depth=depth, width=width, activation=activation,
                     epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                     target_accuracy=target_accuracy, threads=threads)
             for init in inits for seed in seeds]
    _check_network(specs[0], prepared)
    runs = run_grid(specs, prepared, workers=workers, scheduler=scheduler, progress=progress,
                    desc="compare")
    config = {"data": prepared.describe(), "inits": inits, "seeds": seeds, "depth": depth, "width": width,
              "activation": activation, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer,
              "lr": lr, "momentum": momentum, "target_accuracy": target_accuracy,
              "val_fraction": val_fraction, "data_seed": data_seed, "workers": workers,
              "scheduler": scheduler}
    return Comparison(runs, config)


def _check_inits(inits: Sequence[str]) -> None:
    from . import init as init_module
    valid = list(init_module.names()) + ["lsuv"]
    for name in inits:
        if not isinstance(name, str):
            raise TypeError(f"inits must be initializer names, got {type(name).__name__} {name!r}")
        if name != "lsuv":
            try:
                init_module.get(name)
            except ValueError:
                raise ValueError(f"inits: {name!r} is not a known initializer; valid: {', '.join(valid)}") from None


def _check_network(spec: RunSpec, data: Data) -> None:
    """Build the first network once so a bad activation or optimizer fails before the grid runs."""
    from . import Network
    from .network import OPTIMIZERS
    _check_spec(spec)
    if spec.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={spec.optimizer!r} is not valid; valid: {', '.join(OPTIMIZERS)}")
    Network(spec.widths(data), activation=spec.activation, output="softmax", init=spec.init, seed=spec.seed)


# ================================================================================================
# presets: the papers' experiments
# ================================================================================================

@dataclass
class Preset:
    """A published experiment: its grid, the claims it checks and the figures it draws."""

    name: str
    title: str
    description: str
    grid: Callable[[bool], Tuple[Data, List[RunSpec], Dict[str, Any]]]
    check: Callable[[List[Dict[str, Any]], Dict[str, Any]], List[Claim]]
    figures: Callable[[Comparison, str], List[str]]


def _digits(reduced: bool = False, max_samples: Optional[int] = None) -> Data:
    return prepare_data("digits", seed=0, max_samples=max_samples if reduced else None, name="digits")


def _runs(runs: List[Dict[str, Any]], **match) -> List[Dict[str, Any]]:
    return [r for r in runs if all(r[k] == v for k, v in match.items())]


def _one(runs: List[Dict[str, Any]], **match) -> Dict[str, Any]:
    found = _runs(runs, **match)
    if not found:
        raise ValueError(f"no run with {match}")
    return found[0]


def _losses(run: Dict[str, Any]) -> List[float]:
    return [h["loss"] for h in run["history"]]


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
    from . import figures
    return [figures.loss_curves_by_group(result, os.path.join(out_dir, "he2015_loss.png"),
                                         title="He et al. 2015: deep ReLU nets on digits, Xavier vs He",
                                         chance=LN10),
            figures.layer_profile(result.runs, os.path.join(out_dir, "he2015_layers.png"),
                                  keys=(("pre_std", "std of Z (pre-activation)"),
                                        ("grad_std", "std of dL/dZ (back-propagated)"),
                                        ("grad_norm", "‖dL/dW‖")),
                                  title="He et al. 2015: per layer at init (Xavier halves the variance "
                                        "at every ReLU layer)")]


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
    from . import figures
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
    from . import figures
    return [figures.epochs_vs_depth(result, os.path.join(out_dir, "saxe2013_epochs_vs_depth.png")),
            figures.loss_curves_by_group(result, os.path.join(out_dir, "saxe2013_loss.png"),
                                         title="Saxe et al. 2013: deep linear nets, training loss", chance=None)]


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
    from . import figures
    return [figures.layer_profile(result.runs, os.path.join(out_dir, "lsuv_layers.png"),
                                  keys=(("pre_std", "std of Z (pre-activation)"), ("grad_norm", "‖dW‖")),
                                  title="LSUV vs orthogonal, He, Xavier: per layer at init", log=True),
            figures.loss_curves_by_group(result, os.path.join(out_dir, "lsuv_loss.png"),
                                         title="Mishkin & Matas 2016: deep ReLU net on digits", chance=LN10)]


PRESETS: Dict[str, Preset] = {
    "he2015": Preset("he2015", "He et al. 2015, Delving deep into rectifiers",
                     "22 and 30 ReLU layers (width 64) on digits: xavier_normal vs he_normal",
                     _he2015_grid, _he2015_check, _he2015_figures),
    "glorot2010": Preset("glorot2010", "Glorot & Bengio 2010, Understanding the difficulty of training deep "
                         "feedforward neural networks",
                         "5 tanh / sigmoid layers (width 256) on digits: standard U(±1/√n) "
                         "(torch_default) vs normalized (xavier_uniform)",
                         _glorot2010_grid, _glorot2010_check, _glorot2010_figures),
    "saxe2013": Preset("saxe2013", "Saxe et al. 2013, Exact solutions to the nonlinear dynamics of learning "
                       "in deep linear neural networks",
                       "deep linear nets (2..32 layers, width 64) on digits: epochs to a loss threshold, "
                       "orthogonal vs N(0, 1/n)", _saxe2013_grid, _saxe2013_check, _saxe2013_figures),
    "lsuv": Preset("lsuv", "Mishkin & Matas 2016, All you need is a good init",
                   "20 ReLU layers (width 64) on digits: lsuv vs orthogonal, he_normal, xavier_normal",
                   _lsuv_grid, _lsuv_check, _lsuv_figures),
}


def run_preset(name: str, *, reduced: bool = False, workers: Optional[int] = None,
               scheduler: Optional[str] = None, threads: Optional[int] = None,
               progress: Optional[bool] = None) -> Comparison:
    """Run a preset (`PRESETS`) and check its claims; ``reduced=True`` is the quick size the tests use."""
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is not known; valid: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    data, specs, config = preset.grid(bool(reduced))
    if threads is not None:
        specs = [replace(spec, threads=threads) for spec in specs]
    runs = run_grid(specs, data, workers=workers, scheduler=scheduler, progress=progress, desc=name)
    config = dict(config, data=data.describe(), reduced=bool(reduced), title=preset.title,
                  description=preset.description)
    return Comparison(runs, config, name=name, claims=preset.check(runs, config))


__all__ = ["Data", "RunSpec", "Comparison", "Claim", "Preset", "PRESETS", "DEFAULTS", "DEFAULT_INITS",
           "prepare_data", "run_one", "run_grid", "compare", "run_preset", "suggest_threads"]
