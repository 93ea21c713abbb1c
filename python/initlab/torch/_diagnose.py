"""`il.torch.diagnose`: `Network.diagnose` for any torch model with Linear/Conv layers.

One forward pass of X (eval mode) with forward hooks on every Linear/Conv layer and every
activation module records, per layer call (in call order):
    Z  the layer's output (its pre-activation)
    A  the output of the activation module that consumes Z (Z itself when none does: an
       activation written as a function call inside forward); for the output layer, what the loss
       reads: softmax probabilities for cross-entropy (integer y, nn.CrossEntropyLoss), sigmoid
       for nn.BCEWithLogitsLoss, the logits otherwise (MSE, no y), as Network.diagnose reports;
       the output row's `output_activation` names it ("softmax", "sigmoid", or the activation of
       the layer's own output, "linear" for logits: without y no loss says what they mean)
One backward pass (torch.autograd.grad, so the model's .grad fields stay untouched) gives dL/dZ
and dL/dW; the loss is loss_fn(model(X), y), or a unit-variance random output gradient without y,
as in Network.diagnose. Every statistic is one of initlab's kernels on the hooked tensors:
`_core.layer_stats` (moments, saturated and dead fractions) and `_core.sum_of_squares`
(||dW||, ||W||_F), on the tensors' own memory for contiguous CPU float32/float64 tensors (no copy),
on one host copy otherwise (another device, float16/bfloat16, a conv's channels-last permute).
A conv layer's row reduces over batch and positions; a unit is a channel.
The input-output Jacobian d(output)/dx of a few samples comes from torch.autograd, K backward
rows per sample batched as Network.diagnose does.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import _core
from ..inspect import diagnose as _dg
from ._common import (ModuleState, activation_label, as_input, check_module, find_layers, host_array,
                      is_activation_module, run_forward, unit_matrix)


def _fans(weight: torch.Tensor) -> tuple:
    shape = tuple(weight.shape)
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _check_y(y: Any, out: torch.Tensor, loss_fn: Optional[Callable]) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        t = y.detach()
    else:
        arr = np.asarray(y)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"y must hold numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise TypeError(f"y must hold real numbers, got dtype {t.dtype}")
    n = out.shape[0]
    if t.dim() == 0 or t.shape[0] != n:
        raise ValueError(f"y must have {n} rows (one per sample of X), got shape {tuple(t.shape)}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError("y contains NaN or infinity")
    t = t.to(out.device)
    if loss_fn is not None:
        return t
    if not t.is_floating_point():  # class labels: cross-entropy on the logits
        K = out.shape[1] if out.dim() >= 2 else 0
        if out.dim() != 2 or t.dim() != 1:
            raise ValueError(f"y: integer labels of shape (n,) need an output of shape (n, classes) "
                             f"(cross-entropy); got y {tuple(t.shape)} for output {tuple(out.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= K):
            raise ValueError(f"y: class labels must lie in [0, {K}) for {K} outputs, got "
                             f"[{int(t.min())}, {int(t.max())}]")
        return t.long()
    t = t.to(out.dtype)
    if t.shape != out.shape:
        if t.dim() == 1 and out.shape == (n, 1):
            t = t.reshape(n, 1)
        else:
            raise ValueError(f"y: float targets (mean squared error) must have the output's shape "
                             f"{tuple(out.shape)}, got {tuple(t.shape)}")
    return t


def _loss(out: torch.Tensor, y: torch.Tensor, loss_fn: Optional[Callable]) -> torch.Tensor:
    if loss_fn is None:
        return F.cross_entropy(out, y) if not y.is_floating_point() else F.mse_loss(out, y)
    try:
        loss = loss_fn(out, y)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise ValueError(f"y does not fit loss_fn: {type(e).__name__}: {e}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar tensor, got "
                         f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}")
    return loss.reshape(())


def _loss_activation(loss_fn: Optional[Callable], y: torch.Tensor) -> Optional[str]:
    """The output activation a loss applies to the logits, "softmax" or "sigmoid" (None: it reads
    them as they are)."""
    if loss_fn is None:
        return "softmax" if not y.is_floating_point() else None
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        return "softmax"
    if isinstance(loss_fn, nn.BCEWithLogitsLoss) or loss_fn is F.binary_cross_entropy_with_logits:
        return "sigmoid"
    return None


_OUTPUT_ACTIVATIONS = {"softmax": lambda z: torch.softmax(z, dim=1), "sigmoid": torch.sigmoid}


class _Recorder:
    """Forward hooks: each Linear/Conv call and the activation module that consumes its output."""

    def __init__(self, module: nn.Module, layers: list) -> None:
        self.calls: List[Dict[str, Any]] = []
        self.index = {id(m): (i, name) for i, (name, m) in enumerate(layers)}
        # An in-place activation would overwrite Z: hand it a copy, keep Z (and its autograd node).
        self.inplace = any(getattr(m, "inplace", False) is True for m in module.modules())
        self.handles = []
        for _, m in layers:
            self.handles.append(m.register_forward_hook(self._layer))
        for m in module.modules():
            if id(m) not in self.index and is_activation_module(m):
                self.handles.append(m.register_forward_hook(self._activation))

    def _layer(self, m: nn.Module, inputs: Any, output: torch.Tensor) -> Optional[torch.Tensor]:
        i, name = self.index[id(m)]
        passed = output.clone() if self.inplace else output
        self.calls.append({"module": m, "position": i, "name": name, "Z": output, "out": passed,
                           "act": None, "A": output})
        return passed if self.inplace else None

    def _activation(self, m: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        x = inputs[0] if inputs else None
        for rec in reversed(self.calls):
            if rec["out"] is x and rec["act"] is None:
                if isinstance(output, torch.Tensor) and output.shape == x.shape:
                    rec["act"], rec["A"] = m, output
                return

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def _jacobian(module: nn.Module, X: torch.Tensor, samples: int) -> Dict[str, Any]:
    """Singular values of d(output)/dx for each of the first `samples` rows (K x n_in each)."""
    S = samples
    first = X[:S].detach()
    with torch.enable_grad():
        K = int(run_forward(module, first[:1]).numel())
        repeated = first.repeat_interleave(K, dim=0).requires_grad_(True)
        out = run_forward(module, repeated).reshape(S * K, K)
        eye = torch.eye(K, dtype=out.dtype, device=out.device).repeat(S, 1)
        (dX,) = torch.autograd.grad(out, repeated, grad_outputs=eye)
    n_in = int(np.prod(first.shape[1:]))
    J = dX.detach().to(device="cpu", dtype=torch.float64).reshape(S, K, n_in).numpy()
    return _dg.jacobian_summary(J, bool(np.isfinite(J).all() and torch.isfinite(out).all()))


def collect(module: nn.Module, X: Any, y: Any = None, *, loss_fn: Optional[Callable] = None,
            jacobian_samples: int = 4, seed: int = 0) -> Dict[str, Any]:
    """Rows (one per Linear/Conv call, in call order), the Jacobian summary and the layer modules
    (call order): everything a Diagnosis is built from."""
    check_module(module)
    layers = find_layers(module)
    X = as_input(X, layers[0][1].weight)
    if isinstance(jacobian_samples, bool) or not isinstance(jacobian_samples, (int, np.integer)) \
            or jacobian_samples < 1:
        raise ValueError(f"jacobian_samples must be an int >= 1, got {jacobian_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable (output, y) -> scalar tensor, got "
                        f"{type(loss_fn).__name__}")
    if loss_fn is not None and y is None:
        raise ValueError("loss_fn needs y: pass y, or neither (a random unit-variance output gradient)")

    with ModuleState(module), torch.enable_grad():
        recorder = _Recorder(module, layers)
        try:
            Xg = X.detach().requires_grad_(True)  # a graph through every layer, even frozen ones
            out = run_forward(module, Xg)
        finally:
            recorder.remove()
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"module must return a tensor (the logits), got {type(out).__name__}")
        calls = recorder.calls
        if not calls:
            raise ValueError("module's forward pass called none of its Linear/Conv layers")
        weights = []
        for rec in calls:
            if all(w is not rec["module"].weight for w in weights) and rec["module"].weight.requires_grad:
                weights.append(rec["module"].weight)
        targets = [rec["Z"] for rec in calls] + weights
        # what the output row's act_mean/act_std are of: the loss's output activation (softmax,
        # sigmoid) where one reads the logits; otherwise (no y: no loss says what the model's
        # output means) the layer's own activation, "linear" for the logits themselves
        output_activation: Optional[str] = None
        if y is None:
            G = np.random.default_rng(seed).standard_normal(tuple(out.shape))
            grads = torch.autograd.grad(out, targets, grad_outputs=torch.from_numpy(G).to(out),
                                        allow_unused=True)
        else:
            y_t = _check_y(y, out, loss_fn)
            loss = _loss(out, y_t, loss_fn)
            grads = torch.autograd.grad(loss, targets, allow_unused=True)
            # The output layer's activation is what the loss reads off the logits, as in
            # Network.diagnose: probabilities for cross-entropy / BCE with logits.
            final = calls[-1]
            read_out = _loss_activation(loss_fn, y_t)
            if read_out is not None and final["act"] is None and final["out"] is out:
                with torch.no_grad():
                    final["A"] = _OUTPUT_ACTIVATIONS[read_out](out.detach())
                output_activation = read_out
    dZ = grads[:len(calls)]
    dW = {id(w): g for w, g in zip(weights, grads[len(calls):])}

    rows = []
    with torch.no_grad():
        for k, rec in enumerate(calls):
            layer = rec["module"]
            conv = not isinstance(layer, nn.Linear)
            if rec["act"] is None:
                label, kernel_name, param = "linear", "linear", 0.0
            else:
                label, kernel_name, param = activation_label(rec["act"])
            Z = unit_matrix(rec["Z"], conv)
            A = Z if rec["A"] is rec["Z"] else unit_matrix(rec["A"], conv)
            if A.dtype != Z.dtype:
                A = A.astype(Z.dtype)
            s = _core.layer_stats(Z, A, kernel_name, param)
            if dZ[k] is None:
                grad_std = math.nan
            else:
                g = unit_matrix(dZ[k], conv)
                grad_std = _core.layer_stats(g, g, "linear", 0.0)["pre_std"]
            weight = layer.weight.detach()
            gw = dW.get(id(layer.weight))
            grad_norm = math.nan if gw is None else math.sqrt(_core.sum_of_squares(host_array(gw)))
            W2 = host_array(weight.reshape(weight.shape[0], -1))
            spectral = _dg._spectral_norm(W2)
            frobenius_sq = _core.sum_of_squares(W2)
            fan_in, fan_out = _fans(weight)
            rows.append({"layer": k, "activation": label, "fan_in": fan_in, "fan_out": fan_out,
                         "pre_mean": s["pre_mean"], "pre_std": s["pre_std"],
                         "act_mean": s["act_mean"], "act_std": s["act_std"],
                         "saturated": s["saturated"], "dead": s["dead"],
                         "grad_norm": grad_norm, "grad_std": grad_std, "spectral_norm": spectral,
                         "stable_rank": frobenius_sq / spectral ** 2 if spectral > 0 else 0.0,
                         "name": rec["name"] or "<root>", "module": type(layer).__name__,
                         "position": rec["position"]})
            if label == "leaky_relu":
                rows[-1]["param"] = param
            if k == len(calls) - 1:
                rows[-1]["output_activation"] = output_activation or label
    with ModuleState(module):
        jacobian = _jacobian(module, X, min(int(jacobian_samples), X.shape[0]))
    return {"rows": rows, "jacobian": jacobian, "layers": [rec["module"] for rec in calls]}


def _in_out(weight: torch.Tensor) -> np.ndarray:
    """A torch weight (out, in, *kernel) in initlab's in_out layout (*kernel, in, out), float64."""
    w = weight.detach()
    return w.permute(*range(2, w.dim()), 1, 0).to(device="cpu", dtype=torch.float64).numpy()


def _symmetry(calls_weights: List[nn.Module]) -> Dict[int, List[List[int]]]:
    """{row: groups of symmetric units} for each layer call whose next call reads its units."""
    found: Dict[int, List[List[int]]] = {}
    for k, (layer, following) in enumerate(zip(calls_weights, calls_weights[1:])):
        W, W_next = layer.weight, following.weight
        if W.dim() != W_next.dim() or W_next.shape[1] != W.shape[0] or layer is following:
            continue  # not chained unit to unit (conv -> flatten -> linear, grouped convs, reuse)
        b = None if layer.bias is None else layer.bias.detach().to(device="cpu", dtype=torch.float64).numpy()
        groups = _dg.symmetric_units(_in_out(W), b, _in_out(W_next))
        if groups:
            found[k] = groups
    return found


def diagnose(module: nn.Module, X: Any, y: Any = None, *, loss_fn: Optional[Callable] = None,
             jacobian_samples: int = 4, seed: int = 0) -> "_dg.Diagnosis":
    """Diagnose a torch model on the batch X: the `Diagnosis` of `Network.diagnose` (rows, Jacobian
    spectrum, verdict, findings, evidence, suggestions phrased with `torch.nn.init` and
    `il.torch.init_`), one row per Linear/Conv call in call order. Symmetric units are read from
    the weights of consecutive calls that feed one another unit to unit.

    X and y: ndarrays or tensors. With y, the gradients are those of `loss_fn(module(X), y)`
    (default: cross-entropy for integer y, mean squared error for float y); without y, a
    unit-variance random output gradient (seeded by `seed`). The model runs in eval mode (its
    flags are restored) and its parameters and .grad fields are left as they were.
    """
    data = collect(module, X, y, loss_fn=loss_fn, jacobian_samples=jacobian_samples, seed=seed)
    return _dg.build_diagnosis(data["rows"], data["jacobian"], symmetric=_symmetry(data["layers"]),
                               style="torch")
