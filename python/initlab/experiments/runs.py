"""Data, one run of the grid (`RunSpec` -> `run_one`), and the defaults of `initlab compare`."""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from .. import datasets
from ..nn.callbacks import Callback
from ..nn.optimizers import takes

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
    image_shape: Optional[Tuple[int, int, int]] = None  # (H, W, C) of each row, for convolutional runs

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
    y = np.asarray(y)
    # class names (load_csv keeps labels that are not numbers as strings) go to fit as they are
    y = y if y.dtype.kind in "UO" else np.asarray(y, dtype=np.int64)
    image_shape = None
    if X.ndim == 4:  # images (n, H, W, C): standardized per pixel and channel, kept as rows
        image_shape = tuple(int(v) for v in X.shape[1:])
        X = X.reshape(X.shape[0], -1)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"data must be X of shape (n, features) or (n, H, W, C) and y of shape (n,), got "
                         f"{X.shape} and {y.shape}")
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
    classes = int(np.unique(y).size) if y.dtype.kind in "UO" else int(max(y.max(), 1)) + 1
    return Data(label, np.ascontiguousarray(X_train, dtype=np.float32), np.ascontiguousarray(y[train]),
                np.ascontiguousarray(X_val, dtype=np.float32), np.ascontiguousarray(y[val]), classes,
                image_shape)


# ================================================================================================
# one run
# ================================================================================================

@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run (besides the data).

    ``depth`` counts hidden layers: the network has ``depth + 1`` weight layers
    ``[features, width × depth, classes]``; ``hidden`` (a tuple of widths) replaces depth × width
    when given. ``init`` applies to every weight layer, ``bias_init``
    to every bias. ``weight_decay``, ``clip_norm``, ``clip_value`` and ``lr_schedule`` are passed to
    `Network.fit` as they are (``lr_schedule`` only when given); ``dropout`` is the hidden layers'
    rate. ``label`` groups runs in tables and figures (for example ``"30 layers"``).
    ``kernel_size > 0`` makes the hidden layers convolutions instead: ``depth`` Conv2d layers of
    ``width`` channels, ``kernel_size`` square, "same" padding, on the data's ``image_shape``, then
    Flatten and the softmax Dense layer (a vanilla CNN: no pooling, no residual connections), whose
    init is ``output_init`` (None: ``init``).
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
    weight_decay: float = 0.0
    dropout: float = 0.0
    clip_norm: Optional[float] = None
    clip_value: Optional[float] = None
    bias_init: str = "zeros"
    lr_schedule: Optional[Any] = None         # fit's lr_schedule ("name", {params}); None: constant
    hidden: Optional[Tuple[int, ...]] = None  # hidden widths; None: [width] * depth
    kernel_size: int = 0                      # > 0: convolutional hidden layers (see above)
    output_init: Optional[str] = None         # the output layer's init (convolutional runs); None: init

    def widths(self, data: Data) -> List[int]:
        hidden = list(self.hidden) if self.hidden is not None else [self.width] * self.depth
        return [data.features] + hidden + [data.classes]

    def build(self, data: Data, dtype: str = "float32"):
        """The network this spec trains (not trained yet)."""
        from ..nn.layers import Conv2d, Dense, Flatten
        from ..nn.network import Network
        if self.kernel_size <= 0:
            return Network(self.widths(data), activation=self.activation, output="softmax", init=self.init,
                           bias_init=self.bias_init, seed=self.seed, dropout=self.dropout, dtype=dtype)
        if data.image_shape is None:
            raise ValueError("a convolutional run (kernel_size > 0) needs image data (Data.image_shape)")
        hidden = list(self.hidden) if self.hidden is not None else [self.width] * self.depth
        layers = [Conv2d(channels, self.kernel_size, padding="same", dropout=self.dropout) for channels in hidden]
        layers += [Flatten(), Dense(data.classes, activation="softmax", init=self.output_init)]
        return Network(layers, activation=self.activation, init=self.init, bias_init=self.bias_init,
                       seed=self.seed, input_shape=data.image_shape, dtype=dtype)

    def key(self) -> str:
        """What identifies the run in a results file: every field except ``threads`` (results
        do not depend on the thread count), as canonical JSON."""
        import json
        fields = {k: v for k, v in self.to_dict().items() if k != "threads"}
        return json.dumps(fields, sort_keys=True, allow_nan=True)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _check_spec(spec: RunSpec) -> None:
    """Reject a bad grid before any run starts (the Network validates the rest when it is built)."""
    for name in ("depth", "width", "epochs", "batch_size", "probe_size", "kernel_size"):
        value = getattr(spec, name)
        minimum = 0 if name in ("depth", "epochs", "kernel_size") else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if not (isinstance(spec.lr, (int, float)) and math.isfinite(spec.lr) and spec.lr >= 0):
        raise ValueError(f"lr must be a finite number >= 0, got {spec.lr!r}")
    if not (isinstance(spec.target_accuracy, (int, float)) and 0 <= spec.target_accuracy <= 1):
        raise ValueError(f"target_accuracy must be a number in [0, 1], got {spec.target_accuracy!r}")
    if spec.hidden is not None and (not isinstance(spec.hidden, (tuple, list)) or any(
            isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in spec.hidden)):
        raise ValueError(f"hidden must be a tuple of ints >= 1 or None, got {spec.hidden!r}")
    for name in ("weight_decay", "dropout", "clip_norm", "clip_value"):
        value = getattr(spec, name)
        if value is None and name.startswith("clip"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < 0 or (name == "dropout" and value >= 1) or (name.startswith("clip") and value == 0):
            allowed = {"dropout": "a number in [0, 1)", "weight_decay": "a finite number >= 0"}.get(
                name, "a finite number > 0 or None")
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if spec.threads is not None and (isinstance(spec.threads, bool) or not isinstance(spec.threads, int)
                                     or spec.threads < 1):
        raise ValueError(f"threads must be an int >= 1 or None, got {spec.threads!r}")


def _conv_stack_jacobian(spec: RunSpec, data: Data, net, samples: np.ndarray, eps: float = 1e-6) -> Dict[str, float]:
    """Singular values of d(output of the last convolution)/d(input image) at each sample (the
    Jacobian of the convolutional stack, as Xiao et al. 2018 study it), by central differences in
    float64 on a float64 copy of the network: mean top and bottom singular value and the mean over
    samples of the std of their log10 (0 for an isometry)."""
    twin = spec.build(data, dtype="float64")
    for mine, theirs in zip(twin.layers, net.layers):
        for (p, _), (q, _) in zip(mine.parameters(), theirs.parameters()):
            np.copyto(p, q)
    last_conv = max(i for i, layer in enumerate(twin.layers) if type(layer).__name__ == "Conv2d")
    inputs = int(np.prod(samples.shape[1:]))
    tops, bottoms, spreads = [], [], []
    for x in samples.astype(np.float64):
        steps = np.eye(inputs).reshape((inputs,) + x.shape) * eps
        rows = np.ascontiguousarray(np.concatenate([x + steps, x - steps]))
        ws = twin._pass(rows.shape[0])
        twin._run_forward(ws, rows, training=False)
        out = ws.layers[last_conv].out.reshape(rows.shape[0], -1)
        J = (out[:inputs] - out[inputs:]).T / (2 * eps)          # (outputs, inputs)
        values = np.linalg.svd(J, compute_uv=False)
        tops.append(float(values[0]))
        bottoms.append(float(values[-1]))
        spreads.append(float(np.std(np.log10(np.maximum(values, np.finfo(np.float64).tiny)))))
    return {"sv_max": float(np.mean(tops)), "sv_min": float(np.mean(bottoms)), "log10_spread": float(np.mean(spreads))}


def _layer_outputs(net, X: np.ndarray) -> List[np.ndarray]:
    """Each hidden layer-with-weights' output on X (dropout off): the buffers of the network's own
    forward (the kernels that train it and that diagnose reads), not a recomputation."""
    outputs = net._activations(X)
    return [out for layer, out in zip(net.layers[:-1], outputs[:-1]) if layer.has_weights]


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


def unit_spread(net) -> List[float]:
    """Per hidden layer: the largest difference between two of its units, over everything that
    makes a unit (its incoming weights, its bias and its outgoing weights in the next layer).

    0 exactly when every unit of the layer is a copy of the first: the layer acts as one unit
    (gradient descent never separates such units; dropout off)."""
    spreads = []
    for layer, following in zip(net.layers[:-1], net.layers[1:]):
        W, b, W_next = (np.asarray(a, dtype=np.float64) for a in (layer.W, layer.b, following.W))
        spread = max(float(np.max(np.abs(W - W[:, :1]))) if W.size else 0.0,
                     float(np.max(np.abs(b - b[0]))) if b.size else 0.0,
                     float(np.max(np.abs(W_next - W_next[:1, :]))) if W_next.size else 0.0)
        spreads.append(spread)
    return spreads


def collapse_to_one_unit(net):
    """The one-unit-wide network that computes what ``net`` computes, when every hidden layer's
    units are copies (`unit_spread` 0 everywhere), else None. A layer of k identical units with
    equal outgoing weights feeds the next layer k times the same term, so the collapsed layer keeps
    one unit and the next layer's incoming weight is the sum over the k rows."""
    from ..nn.network import Network
    if len(net.layers) < 2 or any(spread != 0.0 for spread in unit_spread(net)):
        return None
    hidden = len(net.layers) - 1
    small = Network([net.input_dim] + [1] * hidden + [net.output_dim], activation=net.layers[0].activation,
                    output=net.output, init="zeros", dtype=net.dtype, seed=0)
    for i, (layer, target) in enumerate(zip(net.layers, small.layers)):
        W = np.asarray(layer.W, dtype=np.float64)
        W = W[:, :1] if i < hidden else W
        target.W = (W if i == 0 else W.sum(axis=0, keepdims=True)).astype(net.dtype)
        target.b = np.asarray(layer.b[:1] if i < hidden else layer.b, dtype=net.dtype)
    return small


def run_one(spec: RunSpec, data: Data, *, on_epoch: Optional[Callable[[], Any]] = None) -> Dict[str, Any]:
    """Build, inspect and train one network; returns a JSON-ready dict (see the module docstring).

    Deterministic: the same spec and data give the same numbers (except the timings) in any
    process, on any thread count. ``on_epoch`` is called after every epoch (progress bars).
    """
    from .. import set_num_threads

    _check_spec(spec)
    if spec.threads is not None:
        set_num_threads(spec.threads)
    started = time.perf_counter()
    net = spec.build(data)
    widths = spec.widths(data)
    convolutional = spec.kernel_size > 0
    if convolutional:  # the rows as images
        data = replace(data, X_train=data.X_train.reshape((-1,) + tuple(data.image_shape)),
                       X_val=data.X_val.reshape((-1,) + tuple(data.image_shape)))
    if spec.init == "lsuv":
        # LSUV scales the weights on the first batch fit sees; a fit of 0 epochs does just that
        # (and nothing else), so the statistics "at init" are those of the network that trains.
        net.fit(data.X_train, data.y_train, epochs=0, batch_size=spec.batch_size, optimizer=spec.optimizer,
                stats_every=0, progress=False)
    probe = slice(0, min(spec.probe_size, data.X_train.shape[0]))
    X_probe, y_probe = data.X_train[probe], data.y_train[probe]
    diagnosis = net.diagnose(X_probe, y_probe)
    hidden = _layer_outputs(net, X_probe)
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
        "findings": [finding.kind for finding in diagnosis.findings],
        "forward_gain": float(diagnosis.forward_gain),
        "backward_gain": float(diagnosis.backward_gain),
        "jacobian": {k: float(diagnosis.jacobian[k]) for k in ("sv_max", "sv_min", "condition", "log10_spread")},
    }
    if convolutional:
        at_init["conv_jacobian"] = _conv_stack_jacobian(spec, data, net, X_probe[:2])
    callbacks: List[Any] = [] if spec.loss_threshold is None else [_StopAtLoss(spec.loss_threshold)]
    if on_epoch is not None:
        callbacks.append(lambda epoch, logs: on_epoch())
    schedule = {} if spec.lr_schedule is None else {"lr_schedule": spec.lr_schedule}
    report = net.fit(data.X_train, data.y_train, epochs=spec.epochs, batch_size=spec.batch_size,
                     optimizer=spec.optimizer, lr=spec.lr,
                     momentum=spec.momentum if spec.optimizer in takes("momentum") else 0.0,
                     weight_decay=spec.weight_decay, clip_norm=spec.clip_norm, clip_value=spec.clip_value,
                     validation_data=(data.X_val, data.y_val), stats_every=spec.stats_every,
                     progress=False, callbacks=callbacks, **schedule)
    if report.stop_reason is not None and report.stop_reason.startswith("interrupted"):
        # Ctrl-C reached fit, which stopped at a batch boundary: this run is in flight, not
        # finished, so the sweep stops here and does not record it (--resume runs it again)
        raise KeyboardInterrupt(report.stop_reason)
    history = report.history
    last = history[-1] if history else {}
    # after training, dropout off: the whole training set, and how far apart each hidden layer's units are
    train_eval = net.evaluate(data.X_train, data.y_train)
    collapsed = None if convolutional else collapse_to_one_unit(net)
    first, final = grad_norms[0], grad_norms[-1]
    return {
        "spec": spec.to_dict(),
        "init": spec.init,
        "seed": spec.seed,
        "label": spec.label,
        "widths": widths,
        "at_init": at_init,
        "grad_ratio": (first / final) if final > 0 else (math.inf if first > 0 else float("nan")),
        "history": history,
        "layer_stats": report.layer_stats,
        "final_loss": last.get("loss"),
        "final_val_loss": last.get("val_loss"),
        "final_val_accuracy": last.get("val_accuracy"),
        "final_train_eval": {"loss": float(train_eval["loss"]), "accuracy": float(train_eval["accuracy"])},
        "unit_spread": [] if convolutional else unit_spread(net),
        # a net whose hidden units are all copies is a one-unit-wide net: that net's validation accuracy
        "one_unit_val_accuracy": (None if collapsed is None or net.output == "linear"
                                  else float(collapsed.evaluate(data.X_val, data.y_val)["accuracy"])),
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


