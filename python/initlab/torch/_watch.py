"""`il.torch.watch`: per-layer statistics while the user's own training loop runs.

Steps. A step is one training iteration of the user's loop: it begins with a forward pass of the
module under autograd (torch.is_grad_enabled()) that follows a backward pass through it. So
forward, loss.backward(), optimizer.step() is one step; gradient accumulation over k forward and
backward passes counts k steps; forward passes under torch.no_grad() (validation) are not steps
and are not recorded.

Recording. Steps 0, every, 2*every, ... are recorded: on that step's first forward pass, per
Linear/Conv call (call order), the forward statistics of its output Z and of the activation
module's output A (initlab's `_core.layer_stats`: act_mean, act_std, saturated, dead, and
pre_mean/pre_std; the output layer's A is its logits: the watch does not see the loss) and ||W||_F; on its backward pass ||dL/dW||_F (a hook on each weight: the
gradient of this backward pass, before accumulation into .grad); at the next step's forward pass
(the optimizer has stepped by then), update_ratio = ||W_now - W_recorded||_F / ||W_now||_F. Only
recorded steps compute anything beyond a flag check; the tensors are read in place when they are
contiguous CPU float32/float64 (one host copy otherwise), plus one host copy of the weights per
recorded step for the update ratio.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from .. import _core
from ..inspect.report import Report
from ._common import activation_label, check_module, find_layers, host_array, is_activation_module, unit_matrix


def _update_ratios(rows: List[Dict[str, Any]], snapshot: Dict[int, np.ndarray]) -> None:
    """update_ratio = ||W_now - W_recorded||_F / ||W_now||_F for each row's layer."""
    with torch.no_grad():
        for row in rows:
            before = snapshot[id(row["_module"])]
            now = np.ascontiguousarray(host_array(row["_module"].weight), dtype=before.dtype)
            norm = math.sqrt(_core.sum_of_squares(now))
            row["update_ratio"] = _core.diff_norm(now, before) / norm if norm > 0 else math.inf


class Watch:
    """Hooks on a torch model that record per-layer statistics every `every` steps of your loop.

    >>> with il.torch.watch(model, every=10) as w:          # doctest: +SKIP
    ...     for X, y in loader:
    ...         loss = F.cross_entropy(model(X), y)
    ...         optimizer.zero_grad(); loss.backward(); optimizer.step()
    >>> print(w.report())                                    # doctest: +SKIP

    `.report()` -> `Report` whose `layer_stats` holds one list per recorded step (rows with
    `epoch` (= the step), `step`, `layer`, `name`, `pre_mean`, `pre_std`, `act_mean`, `act_std`,
    `saturated`, `dead`, `grad_norm`, `weight_norm`, `update_ratio`). `.close()` removes every hook;
    leaving the `with` block closes it, also when the loop raises. `.steps` counts completed steps.
    """

    def __init__(self, module: nn.Module, every: int = 1) -> None:
        check_module(module)
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.module = module
        self.every = int(every)
        self.layers = find_layers(module)
        self._step = 0                                   # index of the step under way
        self._records: List[List[Dict[str, Any]]] = []
        self._open: Optional[Dict[str, Any]] = None     # the recorded step waiting for its update
        self._in_forward = False                         # inside the recording forward pass
        self._calls: List[Dict[str, Any]] = []
        self._saw_backward = False
        self._recorded = -1                              # the step whose forward was recorded
        self._inplace = any(getattr(m, "inplace", False) is True for m in module.modules())
        self._index = {id(m): (i, name) for i, (name, m) in enumerate(self.layers)}
        self._handles: List[Any] = [module.register_forward_pre_hook(self._begin),
                                    module.register_forward_hook(self._end)]
        for _, m in self.layers:
            self._handles.append(m.register_forward_hook(self._layer))
            if m.weight.requires_grad:
                self._handles.append(m.weight.register_hook(self._grad_hook(m)))
        for m in module.modules():
            if id(m) not in self._index and is_activation_module(m):
                self._handles.append(m.register_forward_hook(self._activation))

    # ---- hooks ------------------------------------------------------------------------------
    def _begin(self, module: nn.Module, inputs: Any) -> None:
        if not torch.is_grad_enabled():
            return
        self._in_forward, self._calls = False, []  # a forward pass that raised leaves nothing behind
        if self._saw_backward:                 # the previous step is complete
            self._step += 1
            self._saw_backward = False
            self._close_record()
        if self._step % self.every == 0 and self._recorded != self._step:
            self._in_forward = True            # this step's first complete forward is recorded
            self._calls = []

    def _layer(self, m: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self._in_forward:
            z = output.detach()
            self._calls.append({"module": m, "Z": z.clone() if self._inplace else z, "out": output,
                                "act": None, "A": None})

    def _activation(self, m: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self._in_forward and inputs:
            x = inputs[0]
            for rec in reversed(self._calls):
                if rec["out"] is x and rec["act"] is None:
                    if isinstance(output, torch.Tensor) and output.shape == x.shape:
                        rec["act"], rec["A"] = m, output.detach()
                    return

    def _end(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if not self._in_forward:
            return
        self._in_forward = False
        self._recorded = self._step
        rows, snapshot = [], {}
        with torch.no_grad():
            for k, rec in enumerate(self._calls):
                layer = rec["module"]
                conv = not isinstance(layer, nn.Linear)
                label, kernel_name, param = ("linear", "linear", 0.0) if rec["act"] is None \
                    else activation_label(rec["act"])
                Z = unit_matrix(rec["Z"], conv)
                A = Z if rec["A"] is None else unit_matrix(rec["A"], conv)
                if A.dtype != Z.dtype:
                    A = A.astype(Z.dtype)
                s = _core.layer_stats(Z, A, kernel_name, param)
                if id(layer) not in snapshot:
                    snapshot[id(layer)] = np.array(host_array(layer.weight), copy=True)
                rows.append({"epoch": self._step, "step": self._step, "layer": k,
                             "name": self._index[id(layer)][1] or "<root>", "activation": label,
                             "pre_mean": s["pre_mean"], "pre_std": s["pre_std"],
                             "act_mean": s["act_mean"], "act_std": s["act_std"],
                             "saturated": s["saturated"], "dead": s["dead"], "grad_norm": None,
                             "weight_norm": math.sqrt(_core.sum_of_squares(snapshot[id(layer)])),
                             "update_ratio": None, "_module": layer})
        self._calls = []
        self._open = {"rows": rows, "snapshot": snapshot, "grad_norms": {}}

    def _grad_hook(self, layer: nn.Module):
        def hook(grad: torch.Tensor) -> None:
            self._saw_backward = True
            rec = self._open
            if rec is not None and id(layer) not in rec["grad_norms"]:  # the recorded step's backward
                norm = math.sqrt(_core.sum_of_squares(host_array(grad)))
                rec["grad_norms"][id(layer)] = norm
                for row in rec["rows"]:
                    if row["_module"] is layer:
                        row["grad_norm"] = norm
        return hook

    def _close_record(self) -> None:
        """The open record's update ratios (the optimizer stepped since), then keep it."""
        rec, self._open = self._open, None
        if rec is None:
            return
        _update_ratios(rec["rows"], rec["snapshot"])
        self._records.append(rec["rows"])

    # ---- results and lifetime ------------------------------------------------------------------
    def report(self) -> Report:
        """A `Report` of every recorded step so far (the last one's update_ratio is measured
        against the current weights when its backward pass has run, else None)."""
        records = [list(r) for r in self._records]
        if self._open is not None:
            pending = [dict(row) for row in self._open["rows"]]
            if self._saw_backward:
                _update_ratios(pending, self._open["snapshot"])
            records.append(pending)
        report = Report(config={"source": "il.torch.watch", "every": self.every, "steps": self.steps,
                                "model": type(self.module).__name__})
        # a record whose backward pass never ran has no gradient: NaN, as a float field should be
        report.layer_stats = [[{k: (math.nan if k == "grad_norm" and v is None else v)
                                for k, v in row.items() if k != "_module"} for row in rec]
                              for rec in records]
        return report

    def close(self) -> None:
        """Remove every hook (idempotent); the statistics recorded so far stay readable."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._in_forward = False
        self._calls = []

    @property
    def steps(self) -> int:
        """Steps completed (forward and backward) since the watch began."""
        return self._step + (1 if self._saw_backward else 0)

    @property
    def closed(self) -> bool:
        return not self._handles

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Watch({type(self.module).__name__}, every={self.every}, steps={self.steps}, "
                f"recorded={len(self._records) + (self._open is not None)}, closed={self.closed})")


def watch(module: nn.Module, every: int = 1) -> Watch:
    """Start recording per-layer statistics of `module` every `every` steps of your training loop;
    see `Watch`. Use it as a context manager, or call `.close()` when done."""
    return Watch(module, every)
