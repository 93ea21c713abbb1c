"""The training loop: `fit(net, X, y, ...)`, behind `Network.fit`.

    validate_fit   every argument checked once, into a FitConfig (nothing changes before it passes)
    fit            set-up, the epoch loop, the one place where stop_reason is written
    _train_epoch   the batch steps of one epoch -> a stop reason or None
    _native_batches  a run of batches in one native call (train.hpp), when no batch callback needs Python
    _train_step    one batch: gather, forward, loss, backward, divergence check, update (the native
                   loop's naive twin: it calls the same kernels one by one, and the native loop is
                   bitwise this)
    _end_epoch     history row, validation, statistics, progress, callbacks -> a stop reason or None
    _sigint_flag   Ctrl-C raises a flag read at batch boundaries (a second one interrupts at once)

The network is used through its internal API (network.py's docstring); optimizers.py does the
update.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .. import _core
from ..inspect.report import Report
from ..inspect.statistics import probe_rows
from . import optimizers
from ._checks import check_bool, check_float, check_int, check_name
from .callbacks import Callback, as_callbacks
from .labels import check_sample_weight, class_weights, encode_fit_labels, row_weights
from .schedules import describe_schedule, schedule_values

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network

DIVERGENCE_POLICIES = ("stop", "raise", "ignore")
# The native batch loop (_core.train_batches) runs the batches when every layer has a native twin and
# no callback has on_batch_end; False forces the Python loop (its oracle). It returns to Python every
# NATIVE_CHUNK batches (and at Ctrl-C, which it sees between batches).
NATIVE_LOOP = True
NATIVE_CHUNK = 64
# fit computes and checks the lr of every epoch up front (lr_schedule): a list of that length
MAX_EPOCHS = 10 ** 7


class DivergenceError(FloatingPointError):
    """Raised by `fit(on_divergence="raise")` at the first non-finite loss or gradient.

    `.report` holds the Report up to that point; the network keeps the last finite weights.
    """

    def __init__(self, message: str, report: Optional[Report] = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class FitConfig:
    """fit's arguments, validated, and the data split they imply."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: Optional[np.ndarray]
    y_val: Optional[np.ndarray]
    epochs: int
    batch_size: int
    hyper: Dict[str, Any]          # what the optimizer reads (optimizer, lr, momentum, ...)
    shuffle: bool
    stats_every: int
    on_divergence: str
    progress: Optional[bool]
    callbacks: List[Callback]
    probe_size: int
    lr_values: List[float]         # the lr of each epoch of this fit (lr_schedule)
    w_train: Optional[np.ndarray]  # row weights (n,) of the net's dtype (class/sample weights), or None
    classes: Optional[np.ndarray]  # softmax: the classes_ this fit trains (set once validation passed)
    described: Dict[str, Any]      # lr_schedule, class_weight, sample_weight as the report records them

    @property
    def n(self) -> int:
        return self.X_train.shape[0]

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n // self.batch_size)


def validate_fit(net: "Network", X: Any, y: Any, *, epochs: Any, batch_size: Any, optimizer: Any,
                 lr: Any, momentum: Any, nesterov: Any, betas: Any, eps: Any, weight_decay: Any,
                 clip_value: Any, clip_norm: Any, validation_data: Any, validation_split: Any,
                 shuffle: Any, stats_every: Any, on_divergence: Any, progress: Any, callbacks: Any,
                 dampening: Any, alpha: Any, probe_size: Any, lr_schedule: Any = None,
                 class_weight: Any = None, sample_weight: Any = None) -> FitConfig:
    """fit's arguments (their defaults are Network.fit's), each checked once, into a FitConfig."""
    X = net._check_X(X)
    classes = None
    if net.output == "softmax":  # labels of any type: the classes this fit trains (labels.py)
        classes, _ = encode_fit_labels(y, net.output_dim, net.classes_)
    y = net._check_y(y, X.shape[0], classes=classes)  # y=None is an error here, not "no labels"
    epochs = check_int("epochs", epochs, 0)
    if epochs > MAX_EPOCHS:  # every epoch's lr is computed (and checked) before the first step
        raise ValueError(f"epochs must be at most {MAX_EPOCHS:_} (one fit call; call fit again to go on, "
                         f"or stop early with a callback), got {epochs:_}")
    batch_size = check_int("batch_size", batch_size, 1)
    optimizer = check_name("optimizer", optimizer, list(optimizers.OPTIMIZERS))
    lr = check_float("lr", lr)
    momentum = check_float("momentum", momentum)
    dampening = check_float("dampening", dampening, maximum=1.0)
    alpha = check_float("alpha", alpha, maximum=1.0)
    eps = check_float("eps", eps)
    weight_decay = check_float("weight_decay", weight_decay)
    nesterov = check_bool("nesterov", nesterov)
    if nesterov and (optimizer != "sgd" or momentum <= 0 or dampening != 0):
        raise ValueError("nesterov=True needs optimizer='sgd', momentum > 0 and dampening = 0 "
                         f"(got optimizer={optimizer!r}, momentum={momentum}, dampening={dampening})")
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}") from None
    beta1 = check_float("betas[0]", beta1, maximum=1.0, max_strict=True)
    beta2 = check_float("betas[1]", beta2, maximum=1.0, max_strict=True)
    if clip_value is not None:
        clip_value = check_float("clip_value", clip_value, strict=True)
    if clip_norm is not None:
        clip_norm = check_float("clip_norm", clip_norm, strict=True)
    validation_split = check_float("validation_split", validation_split, maximum=1.0, max_strict=True)
    shuffle = check_bool("shuffle", shuffle)
    stats_every = check_int("stats_every", stats_every, 0)
    on_divergence = check_name("on_divergence", on_divergence, DIVERGENCE_POLICIES)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be None, True or False, got {progress!r}")
    callback_list = as_callbacks(callbacks)
    lr_values = schedule_values(lr_schedule, lr, epochs)  # every epoch's lr, checked now
    if class_weight is not None and net.output != "softmax":
        raise ValueError(f"class_weight applies to softmax outputs only; this network's output is "
                         f"{net.output} (use sample_weight)")
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, X.shape[0])

    if validation_data is not None:
        try:
            X_val, y_val = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        X_val = net._check_X(X_val, "validation_data X")
        y_val = net._check_y(y_val, X_val.shape[0], "validation_data y", classes=classes)
        X_train, y_train = X, y
    elif validation_split > 0:
        n_val = int(math.floor(X.shape[0] * validation_split))
        if n_val < 1 or n_val >= X.shape[0]:
            raise ValueError(f"validation_split={validation_split} leaves {X.shape[0] - n_val} "
                             f"training and {n_val} validation rows of {X.shape[0]}; both must be >= 1")
        X_train, y_train = X[:-n_val], y[:-n_val]
        X_val, y_val = np.ascontiguousarray(X[-n_val:]), np.ascontiguousarray(y[-n_val:])
        if sample_weight is not None:  # split with X; validation losses are unweighted
            sample_weight = sample_weight[:-n_val]
    else:
        X_train, y_train, X_val, y_val = X, y, None, None
    cw = None if class_weight is None else class_weights(class_weight, y_train, classes)
    w_train = row_weights(y_train, cw, sample_weight)  # float64 (n,), or None: the unweighted path
    if w_train is not None:
        w_train = w_train.astype(net.dtype)
    described = {"lr_schedule": describe_schedule(lr_schedule),
                 "class_weight": None if cw is None else {str(c): float(v) for c, v in zip(classes.tolist(), cw)},
                 "sample_weight": sample_weight is not None}
    n = X_train.shape[0]
    if probe_size is None:
        probe_size = min(256, max(32, n // 32))
    probe_size = min(check_int("probe_size", probe_size, 1), n)
    hyper = {"optimizer": optimizer, "lr": lr, "momentum": momentum, "dampening": dampening,
             "nesterov": nesterov, "betas": (beta1, beta2), "eps": eps, "alpha": alpha,
             "weight_decay": weight_decay, "clip_value": clip_value, "clip_norm": clip_norm}
    return FitConfig(X_train, y_train, X_val, y_val, epochs, batch_size, hyper, shuffle, stats_every,
                     on_divergence, progress, callback_list, probe_size, lr_values, w_train, classes,
                     described)


@dataclass
class _Run:
    """What one fit call carries from step to step."""
    net: "Network"
    cfg: FitConfig
    report: Report
    order: np.ndarray
    X_probe: np.ndarray = None
    y_probe: np.ndarray = None
    W_before: Optional[List[Optional[np.ndarray]]] = None
    bar: Any = None
    batch_callbacks: List[Callback] = field(default_factory=list)
    y_is_int: bool = False
    epoch_start: float = 0.0
    stats_epoch: bool = False
    epoch_index: int = 0           # epochs completed in this fit call (lr_schedule's epoch)
    epoch_sums: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # loss * weight, correct, weight
    divergence: Optional[str] = None
    native: bool = False           # the batches run in the native loop (_native_batches)


def fit(net: "Network", X: Any, y: Any, **kwargs: Any) -> Report:
    """Train with mini-batches; returns a `Report` (see `initlab.inspect.report`).

    Optimizers follow torch.optim exactly: `sgd` (lr, momentum, dampening, nesterov,
    weight_decay as L2), `adam` (betas, eps, L2 weight_decay), `adamw` (decoupled weight_decay),
    `rmsprop` (alpha, eps, weight_decay, momentum). Per step: clip_value clamps each gradient
    element, then clip_norm scales all gradients by clip_norm / (||g||_2 + 1e-6) when that is
    < 1 (torch.nn.utils.clip_grad_norm_), then the update. Weight decay applies to biases too,
    as in one torch parameter group.

    The last partial batch is used. validation_split takes the last fraction of the rows
    (before shuffling, as Keras); validation_data wins over it. Shuffling is seeded by
    (net.seed, epoch number). Calling fit again continues: epoch numbers, dropout masks,
    shuffling and the optimizer state (kept while `optimizer` stays the same) carry on.

    Layer statistics (stats_every > 0) are measured at epoch 0 and every stats_every epochs on
    a fixed probe batch of `probe_size` rows (default: n_train // 32, clipped to [32, 256],
    so statistics cost a few percent of an epoch).

    Divergence: a non-finite loss or gradient is caught before the update, so the weights
    stay those of the last finite step. Ctrl-C stops at the next batch boundary and returns
    the report (stop_reason says so); a second Ctrl-C interrupts at once.

    lr_schedule (schedules.py): the lr of each epoch, counted from 0 at the start of this call, as
    torch's StepLR / ExponentialLR / CosineAnnealingLR stepped once per epoch, a linear warmup or a
    callable epoch -> lr; each history row records its `lr`. Labels (softmax) may be of any type:
    `classes_` holds them sorted and `predict` returns them (labels.py). class_weight
    ({label: weight} or "balanced", softmax only) and sample_weight ((n,), finite, >= 0) weigh
    rows: a batch's loss is sum w_i l_i / sum w_i (torch.nn.CrossEntropyLoss(weight=...)), the
    epoch's loss the same over all its rows, and a batch whose weights sum to 0 makes no update.
    With validation_split, sample_weight is split with X; validation losses are unweighted.
    """
    cfg = validate_fit(net, X, y, **kwargs)
    report = _new_report(net, cfg)
    metrics = ["epoch", "loss", "seconds"] + (["accuracy"] if net.output != "linear" else [])
    if cfg.X_val is not None:
        metrics += ["val_loss"] + (["val_accuracy"] if net.output != "linear" else [])
    net.stop_training = False
    for cb in cfg.callbacks:
        cb.on_fit_begin(net, report, metrics)  # may reject the configuration (ValueError)
    if cfg.classes is not None:
        net.classes_ = cfg.classes  # validation is over: the labels of this fit are the net's

    start_time = time.perf_counter()
    run = _Run(net, cfg, report, order=np.arange(cfg.n))
    try:
        with _sigint_flag(net):
            _set_up(run)
            stop = None
            for _ in range(cfg.epochs):
                stop = _train_epoch(run) or _end_epoch(run)
                if stop is not None:
                    break
            if stop is not None:  # the one place a stop is recorded (a callback's own reason wins)
                report.stop_reason = report.stop_reason or stop
                if report.diverged and cfg.on_divergence == "raise":
                    raise DivergenceError(report.stop_reason, report)
    finally:
        if run.bar is not None:
            run.bar.close()
        report.train_seconds = time.perf_counter() - start_time
        for cb in cfg.callbacks:
            cb.on_fit_end()
    return report


def _new_report(net: "Network", cfg: FitConfig) -> Report:
    return Report(config=dict(cfg.hyper, epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=cfg.shuffle,
                              validation=cfg.X_val is not None, stats_every=cfg.stats_every,
                              on_divergence=cfg.on_divergence, probe_size=cfg.probe_size,
                              n_train=cfg.n, seed=net.seed, dtype=net.dtype, **cfg.described))


@contextmanager
def _sigint_flag(net: "Network") -> Iterator[None]:
    """Ctrl-C only raises net._interrupted, read at batch boundaries, so the weights are never left
    half updated (LSUV and the optimizer step included); a second Ctrl-C interrupts at once."""
    previous = None
    net._interrupted = False
    net._interrupt_flag = np.zeros(1, dtype=np.int32)  # the native loop reads it between batches
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum, frame):  # noqa: ARG001 - signal handler signature
            if net._interrupted:   # second Ctrl-C: the user insists, interrupt now
                raise KeyboardInterrupt
            net._interrupted = True
            net._interrupt_flag[0] = 1
        try:
            previous = signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # pragma: no cover - not in the main interpreter
            previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _set_up(run: _Run) -> None:
    """What may touch the weights once validation is over: LSUV, the optimizer state, the probe
    batch and the epoch-0 statistics, the progress bar."""
    net, cfg = run.net, run.cfg
    n = cfg.n
    run.y_is_int = cfg.y_train.ndim == 1 and net.output == "softmax"
    if net._lsuv_pending:
        first_rows = (net._epoch_order(net._epochs_trained + 1, n) if cfg.shuffle
                      else np.arange(n))[:min(cfg.batch_size, n)]
        net._apply_pending_lsuv(np.ascontiguousarray(cfg.X_train[first_rows]))  # fit's first batch
    if net._optimizer is None or net._optimizer["name"] != cfg.hyper["optimizer"]:
        net._optimizer = optimizers.new_state(cfg.hyper["optimizer"], net._params)
    rows = np.random.Generator(np.random.Philox(key=net.seed)).permutation(n)[:cfg.probe_size]
    rows.sort()
    run.X_probe = np.ascontiguousarray(cfg.X_train[rows])
    run.y_probe = np.ascontiguousarray(cfg.y_train[rows])
    if cfg.stats_every > 0:
        run.W_before = [np.empty_like(layer.parameters()[0][0]) if layer.parameters() else None
                        for layer in net.layers]
        _record_statistics(run, net._epochs_trained, with_update_ratio=False)
    show = sys.stderr.isatty() if cfg.progress is None else bool(cfg.progress)
    if show and cfg.epochs > 0:
        from tqdm import tqdm
        run.bar = tqdm(total=cfg.epochs, unit="epoch", desc="fit", leave=True)
    run.batch_callbacks = [cb for cb in cfg.callbacks if type(cb).on_batch_end is not Callback.on_batch_end]
    run.native = (NATIVE_LOOP and not run.batch_callbacks and n > 0
                  and net._pass(min(cfg.batch_size, n)).sequence is not None)


def _record_statistics(run: _Run, epoch: int, with_update_ratio: bool) -> None:
    t0 = time.perf_counter()
    run.report.layer_stats.append(probe_rows(run.net, run.X_probe, run.y_probe, epoch,
                                             run.W_before if with_update_ratio else None))
    run.report.stats_seconds += time.perf_counter() - t0


def _train_epoch(run: _Run) -> Optional[str]:
    """Every batch of the next epoch; a stop reason when it was cut short, else None (and the
    epoch's loss sum and correct count in run.epoch_sums)."""
    net, cfg = run.net, run.cfg
    epoch = net._epochs_trained + 1
    run.epoch_start = time.perf_counter()
    run.stats_epoch = cfg.stats_every > 0 and epoch % cfg.stats_every == 0
    if cfg.shuffle:
        run.order = net._epoch_order(epoch, cfg.n)
    cfg.hyper["lr"] = cfg.lr_values[run.epoch_index]
    steps = cfg.steps_per_epoch
    sums = (0.0, 0.0, 0.0)  # loss * weight, correct, weight: added batch by batch, in order
    # the native loop runs every batch but the last of a statistics epoch (which saves W_before)
    native_end = (steps - 1 if run.stats_epoch else steps) if run.native else 0
    batch = 0
    while batch < steps:
        where = f"at epoch {epoch}, {{}} batch {batch + 1} of {steps}"
        if net._interrupted:
            return "interrupted (KeyboardInterrupt) " + where.format("before")
        if batch < native_end:
            try:
                stop, batch, sums = _native_batches(run, epoch, batch, native_end, sums)
            except KeyboardInterrupt:  # a second Ctrl-C in the Python around the native call:
                # as in the Python step, the batch it was preparing is not applied
                return "interrupted (KeyboardInterrupt) " + where.format("during")
            if stop is not None:
                return stop
            continue
        try:
            batch_loss, weight, correct = _train_step(run, epoch, batch)
        except KeyboardInterrupt:  # nothing was written to the weights yet
            return "interrupted (KeyboardInterrupt) " + where.format("during")
        if batch_loss is None:  # diverged: run.report marked
            return run.divergence
        sums = (sums[0] + batch_loss * weight, sums[1] + correct, sums[2] + weight)
        batch += 1
        if run.batch_callbacks:
            logs = {"epoch": epoch, "batch": batch, "step": net._step, "loss": batch_loss}
            try:
                for cb in run.batch_callbacks:
                    cb.on_batch_end(net._step, logs)
            except KeyboardInterrupt:
                return "interrupted (KeyboardInterrupt) " + where.format("after")
            if net.stop_training:
                return "stopped by a callback " + where.format("after")
    run.epoch_sums = sums
    return None


def _native_batches(run: _Run, epoch: int, first: int, end: int,
                    sums: Tuple[float, float, float]) -> Tuple[Optional[str], int, Tuple[float, float, float]]:
    """Batches first.. (at most NATIVE_CHUNK, below end, all of one size) in one native call
    (_core.train_batches, train.hpp: _train_step's steps, bitwise): (stop reason or None, the next
    batch, the sums carried on)."""
    net, cfg = run.net, run.cfg
    bs, steps = cfg.batch_size, cfg.steps_per_epoch
    full = cfg.n // bs  # batches [0, full) have batch_size rows, a last one (if any) the rest
    stop_at = min(end, first + NATIVE_CHUNK)
    if first < full:
        last, rows = min(stop_at, full), bs
    else:
        last, rows = first + 1, cfg.n - first * bs
    ws = net._pass(rows)
    state, h = net._optimizer, cfg.hyper
    args = {k: v for k, v in optimizers.OPTIMIZERS[state["name"]].arguments(state, h).items()
            if k not in ("first_step", "step")}
    out = _core.train_batches(
        ws.sequence, (ws.X, ws.y_int if run.y_is_int else ws.y_float, ws.w if cfg.w_train is not None else None,
                      ws.P), (cfg.X_train, cfg.y_train, cfg.w_train, run.order),
        first=first, end=last, batch_size=bs, loss=net.output, params=net._params, grads=net._grads,
        states=state["buffers"], optimizer=state["name"], lr=h["lr"], weight_decay=h["weight_decay"],
        clip_value=h["clip_value"], clip_norm=h["clip_norm"], check_divergence=cfg.on_divergence != "ignore",
        seed=net.seed, step=net._step, optimizer_step=state["step"], started=state["started"], sums=sums,
        stop_flag=net._interrupt_flag, **args)
    net._step = out["step"]
    state["step"], state["started"] = out["optimizer_step"], out["started"]
    ws.last_training = True
    batch = out["next"]
    if out["status"] == "diverged":
        run.divergence = _mark_divergence(run.report, epoch, batch + 1, steps, net._step, out["loss"],
                                          out["bad_layers"], in_update=out["in_update"])
        return run.divergence, batch, out["sums"]
    if out["status"] == "stopped":
        raised = out["raised"]
        if raised is not None and not isinstance(raised, KeyboardInterrupt):
            raise raised
        net._interrupted = True
        return f"interrupted (KeyboardInterrupt) at epoch {epoch}, before batch {batch + 1} of {steps}", batch, \
            out["sums"]
    return None, batch, out["sums"]


def _train_step(run: _Run, epoch: int, batch: int) -> Tuple[Optional[float], float, float]:
    """One optimizer step on batch `batch` of the epoch's order: (loss, weight, correct), or
    (None, weight, 0) when the loss or a gradient is not finite (weights untouched). `weight` is
    the batch's rows, or the sum of its row weights (a batch weighing 0 makes no step)."""
    net, cfg = run.net, run.cfg
    lo = batch * cfg.batch_size
    hi = min(lo + cfg.batch_size, cfg.n)
    rows = hi - lo
    ws = net._pass(rows)
    np.take(cfg.X_train, run.order[lo:hi], axis=0, out=ws.X)
    yb = ws.y_int if run.y_is_int else ws.y_float
    np.take(cfg.y_train, run.order[lo:hi], axis=0, out=yb)
    if run.stats_epoch and batch == cfg.steps_per_epoch - 1:
        # update_ratio measures what the epoch's last batch changes: W before it, saved even when the
        # batch weighs 0 and makes no step (the ratio is then 0; W_before is never left unwritten)
        for before, layer in zip(run.W_before, net.layers):
            if before is not None:
                np.copyto(before, layer.parameters()[0][0])
    wb, weight = None, float(rows)
    if cfg.w_train is not None:
        wb = ws.w
        np.take(cfg.w_train, run.order[lo:hi], axis=0, out=wb)
        weight = _core.weight_sum(wb)  # the weighted losses' own sum (and the native loop's)
        if weight == 0.0:  # nothing to learn from: no step (its rows still count for accuracy)
            net._run_forward(ws, ws.X, training=False)
            net._run_loss(ws, yb, with_grad=False, labels_checked=True, weights=wb)
            return 0.0, 0.0, net._count_correct(ws, yb)
    net._step += 1
    try:
        net._run_forward(ws, ws.X, training=True)
        batch_loss = net._run_loss(ws, yb, with_grad=True, labels_checked=True,  # checked in validate_fit
                                   weights=wb)
        net._run_backward(ws, ws.X)
    except KeyboardInterrupt:
        net._step -= 1
        raise
    if cfg.on_divergence != "ignore" and not (
            math.isfinite(batch_loss) and all(map(_core.all_finite, net._grads))):
        bad = [i for i in reversed(range(len(net.layers)))
               if not all(_core.all_finite(g) for _, g in net.layers[i].parameters())]
        net._step -= 1
        run.divergence = _mark_divergence(run.report, epoch, batch + 1, cfg.steps_per_epoch,
                                          net._step, batch_loss, bad)
        return None, weight, 0.0
    # ---- the update, guarded (optimizers.step): an update that would overflow (e.g. weight decay
    # multiplying W by 1 - lr*wd = -6605) writes nothing, so the weights stay the last finite ones.
    overflow = optimizers.step(net._optimizer, net._params, net._grads, cfg.hyper,
                               guard=cfg.on_divergence != "ignore")
    if overflow and cfg.on_divergence != "ignore":
        owner = [i for i, layer in enumerate(net.layers) for _ in layer.parameters()]
        net._step -= 1
        run.divergence = _mark_divergence(run.report, epoch, batch + 1, cfg.steps_per_epoch, net._step,
                                          batch_loss, sorted({owner[j] for j in overflow}), in_update=True)
        return None, weight, 0.0
    return batch_loss, weight, net._count_correct(ws, yb)


def _mark_divergence(report: Report, epoch: int, batch: int, steps: int, step: int, loss: float,
                     bad_layers: List[int], in_update: bool = False) -> str:
    """Mark the report diverged; the stop reason. in_update: loss and gradients were finite, the
    update of bad_layers would not have been (nothing was written)."""
    where = f"epoch {epoch}, step {batch} of {steps} (optimizer step {step + 1})"
    if in_update:
        layers = (f"gradients finite, but the update would make the parameters of layer {bad_layers[0]} "
                  f"non-finite (layers {bad_layers}; learning rate or weight decay too large)")
    elif bad_layers:
        layers = (f"first non-finite gradient in layer {bad_layers[0]} (backward order; "
                  f"non-finite in layers {sorted(bad_layers)})")
    else:
        layers = "gradients finite"
    report.diverged = True
    report.divergence = {"epoch": epoch, "step": batch, "global_step": step + 1,
                         "loss": loss, "layer": bad_layers[0] if bad_layers else None,
                         "layers": sorted(bad_layers)}
    return f"diverged at {where}: loss {loss!r}, {layers}; weights kept from the last finite step"


def _end_epoch(run: _Run) -> Optional[str]:
    """A complete epoch: its history row (validation included), statistics, progress, callbacks;
    a stop reason when a callback asks for one."""
    net, cfg, report = run.net, run.cfg, run.report
    epoch = net._epochs_trained + 1
    net._epochs_trained = epoch
    loss_sum, correct_sum, weight_sum = run.epoch_sums
    n = cfg.n
    # the mean over rows, or sum w l / sum w over the epoch (a batch weighing 0 adds 0 to both)
    loss = loss_sum / n if cfg.w_train is None else loss_sum / weight_sum
    entry: Dict[str, Any] = {"epoch": epoch, "loss": loss, "accuracy": None, "val_loss": None,
                             "val_accuracy": None, "lr": cfg.lr_values[run.epoch_index], "seconds": 0.0}
    run.epoch_index += 1
    if net.output != "linear":
        entry["accuracy"] = correct_sum / (n if net.output == "softmax" else n * net.output_dim)
    if cfg.X_val is not None:
        entry["val_loss"], entry["val_accuracy"] = net._loss_and_correct(cfg.X_val, cfg.y_val)
    if run.stats_epoch:
        _record_statistics(run, epoch, with_update_ratio=True)
    entry["seconds"] = time.perf_counter() - run.epoch_start
    report.history.append(entry)
    if run.bar is not None:
        run.bar.update(1)
        run.bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items()
                             if k in ("loss", "val_loss", "accuracy", "val_accuracy") and v is not None})
    try:
        for cb in cfg.callbacks:
            cb.on_epoch_end(epoch, entry)
    except KeyboardInterrupt:
        return f"interrupted (KeyboardInterrupt) after epoch {epoch}"
    if net.stop_training:
        return f"stopped by a callback after epoch {epoch}"
    return None
