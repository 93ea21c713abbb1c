"""Callbacks for `Network.fit`: per-epoch hooks and early stopping.

A callback is an object with any of the hooks below, or a plain callable `fn(epoch, logs)` that
runs at the end of every epoch. `logs` is the epoch's history entry: `epoch, loss, accuracy,
val_loss, val_accuracy, seconds`. A callback stops training with `self.stop(reason)`.

>>> import initlab as il
>>> stopper = il.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
>>> # report = net.fit(X, y, validation_split=0.2, epochs=100, callbacks=[stopper])
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network
    from ..inspect.report import Report


class Callback:
    """Base class: override the hooks you need. `network` and `report` are set by `fit`."""

    network: "Network"
    report: "Report"

    def on_fit_begin(self, network: "Network", report: "Report", metrics: List[str]) -> None:
        """Called once before the first step. `metrics`: the keys that logs will carry values for.

        Raise ValueError here (not later) to reject a configuration before any weight changes.
        """
        self.network = network
        self.report = report

    def on_batch_end(self, step: int, logs: Dict[str, Any]) -> None:
        """Called after each optimizer step (only if overridden: it costs Python time per batch)."""

    def on_epoch_end(self, epoch: int, logs: Dict[str, Any]) -> None:
        """Called after each epoch with its history entry."""

    def on_fit_end(self) -> None:
        """Called once when fit ends, whatever the reason (also after a stop or an interrupt)."""

    def stop(self, reason: str) -> None:
        """Ask fit to stop after the current epoch, with `reason` as the report's stop_reason."""
        self.network.stop_training = True
        if self.report.stop_reason is None:
            self.report.stop_reason = reason


class LambdaCallback(Callback):
    """Wraps a plain callable `fn(epoch, logs)` as a per-epoch hook."""

    def __init__(self, on_epoch_end: Callable[[int, Dict[str, Any]], Any]) -> None:
        if not callable(on_epoch_end):
            raise TypeError(f"on_epoch_end must be callable, got {type(on_epoch_end).__name__}")
        self._fn = on_epoch_end

    def on_epoch_end(self, epoch: int, logs: Dict[str, Any]) -> None:
        self._fn(epoch, logs)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    mode: "min" (losses), "max" (accuracies) or "auto" (max for names containing "accuracy").
    restore_best_weights: at the end of fit, copy back the weights of the best epoch
    (kept as one snapshot of every W and b, updated in place whenever the metric improves).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, *, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a str, got {type(monitor).__name__}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"min_delta must be a finite number >= 0, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be one of 'auto', 'min', 'max', got {mode!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = ("max" if "accuracy" in monitor else "min") if mode == "auto" else mode
        self.restore_best_weights = bool(restore_best_weights)
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.wait = 0
        self._snapshot: Optional[list] = None   # arrays reused across fits
        self._snapshot_valid = False

    def on_fit_begin(self, network: "Network", report: "Report", metrics: List[str]) -> None:
        super().on_fit_begin(network, report, metrics)
        if self.monitor not in metrics:
            raise ValueError(f"EarlyStopping: monitor={self.monitor!r} has no value in this fit; "
                             f"available: {', '.join(metrics)}"
                             + (" (val_* needs validation_data or validation_split)"
                                if self.monitor.startswith("val_") else ""))
        self.best, self.best_epoch, self.wait = None, None, 0
        self._snapshot_valid = False

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch: int, logs: Dict[str, Any]) -> None:
        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._snapshot = self.network.get_weights(out=self._snapshot)
                self._snapshot_valid = True
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stop(f"early stopping: {self.monitor} did not improve for {self.wait} epochs "
                      f"(best {self.best:.6g} at epoch {self.best_epoch})")

    def on_fit_end(self) -> None:
        if self.restore_best_weights and self._snapshot_valid:
            self.network.set_weights(self._snapshot)


def as_callbacks(callbacks) -> List[Callback]:
    """Normalize fit's `callbacks=` argument: Callback objects stay, plain callables are wrapped."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or callable(callbacks):
        callbacks = [callbacks]
    try:
        items = list(callbacks)
    except TypeError:
        raise TypeError("callbacks must be an iterable of Callback objects or callables "
                        f"fn(epoch, logs), got {type(callbacks).__name__}") from None
    result = []
    for i, cb in enumerate(items):
        if isinstance(cb, Callback):
            result.append(cb)
        elif callable(cb):
            result.append(LambdaCallback(cb))
        else:
            raise TypeError(f"callbacks[{i}] must be a Callback or a callable fn(epoch, logs), "
                            f"got {type(cb).__name__}")
    return result
