"""Optimizers: one registry entry each (state initialization + the update over all parameters).

Every update is the per-element arithmetic of torch.optim in the fused `_core.optimizer_step`
(optim.hpp: one native call clips and updates every parameter); this module only keeps the state
and maps the fit hyperparameters to the call's arguments.
`state` is a dict: `name`, `step` (optimizer steps taken, Adam's bias correction), `started`
(SGD's momentum buffer exists), `buffers` (one tuple of arrays per parameter). It is what
`Network.save` writes, so `fit` after `load` continues exactly.

Adding an optimizer: its `kOptimizers` entry in cpp/include/initlab/optim.hpp (name, kind, state
arrays, whether it takes momentum; the bindings read it), its kernel in cpp/src/optim.cpp, one
`Optimizer(...)` entry below, and its test (tests/reference.py's update and a torch.optim check).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .. import _core

Hyper = Mapping[str, Any]


@dataclass(frozen=True)
class Optimizer:
    name: str
    n_buffers: int   # state arrays per parameter, each shaped like it (optim.hpp's n_states)
    # the keyword arguments of _core.optimizer_step for this optimizer, from the fit hyperparameters
    arguments: Callable[[Dict[str, Any], Hyper], Dict[str, Any]]
    # the fit hyperparameters besides lr it reads (the CLI passes --momentum only where it is one)
    hyperparameters: Tuple[str, ...] = ()


def _sgd(state, h):
    # torch creates the momentum buffer (= the first gradient) on the first step with momentum != 0
    return dict(momentum=h.get("momentum", 0.0), dampening=h.get("dampening", 0.0),
                nesterov=h.get("nesterov", False), first_step=not state["started"])


def _adam(state, h):
    beta1, beta2 = h.get("betas", (0.9, 0.999))
    return dict(beta1=beta1, beta2=beta2, eps=h.get("eps", 1e-8), step=state["step"])


def _rmsprop(state, h):
    return dict(alpha=h.get("alpha", 0.99), eps=h.get("eps", 1e-8), momentum=h.get("momentum", 0.0))


OPTIMIZERS: Dict[str, Optimizer] = {
    "sgd": Optimizer("sgd", 1, _sgd, ("momentum", "dampening", "nesterov", "weight_decay")),
    "adam": Optimizer("adam", 2, _adam, ("betas", "eps", "weight_decay")),
    "adamw": Optimizer("adamw", 2, _adam, ("betas", "eps", "weight_decay")),
    "rmsprop": Optimizer("rmsprop", 2, _rmsprop, ("alpha", "eps", "momentum", "weight_decay")),
}


def takes(hyperparameter: str) -> List[str]:
    """The optimizers that read `hyperparameter` (e.g. "momentum": sgd, rmsprop)."""
    return [name for name, opt in OPTIMIZERS.items() if hyperparameter in opt.hyperparameters]


def new_state(name: str, params: Sequence[np.ndarray]) -> Dict[str, Any]:
    """Zeroed state for `name` over `params` (torch starts every buffer at zero)."""
    n = OPTIMIZERS[name].n_buffers
    return {"name": name, "step": 0, "started": False,
            "buffers": [tuple(np.zeros_like(p) for _ in range(n)) for p in params]}


def step(state: Dict[str, Any], params: Sequence[np.ndarray], grads: List[np.ndarray], h: Hyper, *,
         guard: bool = False) -> List[int]:
    """One optimizer step on every parameter, gradients clipped first (clip_value clamps each element;
    clip_norm scales all gradients together so that their global L2 norm is at most clip_norm, as
    torch.nn.utils.clip_grad_norm_): one fused native call, bitwise the per-tensor kernels in that
    order. Returns the indexes of the parameters that hold (or, guarded, would hold) inf/NaN after
    the step; guard=True writes nothing at all (weights, state, gradients) when that list is not
    empty, so the last finite weights stay."""
    opt = OPTIMIZERS[state["name"]]
    state["step"] += 1
    out = _core.optimizer_step(params, grads, state["buffers"], optimizer=state["name"], lr=h["lr"],
                               weight_decay=h.get("weight_decay", 0.0), clip_value=h.get("clip_value"),
                               clip_norm=h.get("clip_norm"), guard=guard, **opt.arguments(state, h))
    if not out["written"]:  # the refused step did not happen
        state["step"] -= 1
        return out["nonfinite"]
    if state["name"] == "sgd":
        state["started"] = state["started"] or h.get("momentum", 0.0) != 0.0
    return out["nonfinite"]
