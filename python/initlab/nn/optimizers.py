"""Optimizers: one registry entry each (state initialization + the update over all parameters).

Every update is the per-element arithmetic of torch.optim in a `_core` kernel (optim.hpp); this
module only keeps the state and hands each (param, grad, state buffers) triple to its kernel.
`state` is a dict: `name`, `step` (optimizer steps taken, Adam's bias correction), `started`
(SGD's momentum buffer exists), `buffers` (one tuple of arrays per parameter). It is what
`Network.save` writes, so `fit` after `load` continues exactly.

Adding an optimizer: its kernel in cpp/src/optim.cpp (+ binding), one `Optimizer(...)` entry
below, and its test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Sequence

import numpy as np

from .. import _core

Hyper = Mapping[str, Any]


@dataclass(frozen=True)
class Optimizer:
    name: str
    n_buffers: int   # state arrays per parameter, each shaped like it
    update: Callable[[Sequence[np.ndarray], Sequence[np.ndarray], Dict[str, Any], Hyper], None]


def _sgd(params, grads, state, h):
    first = not state["started"]
    for p, g, (buf,) in zip(params, grads, state["buffers"]):
        _core.sgd_step(p, g, buf, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                       weight_decay=h["weight_decay"], nesterov=h["nesterov"], first_step=first)
    # torch creates the momentum buffer (= the first gradient) on the first step with
    # momentum != 0; plain SGD steps before that leave it uncreated.
    state["started"] = state["started"] or h["momentum"] != 0.0


def _adam(decoupled: bool):
    def update(params, grads, state, h):
        beta1, beta2 = h["betas"]
        for p, g, (m, v) in zip(params, grads, state["buffers"]):
            _core.adam_step(p, g, m, v, lr=h["lr"], beta1=beta1, beta2=beta2, eps=h["eps"],
                            weight_decay=h["weight_decay"], step=state["step"], decoupled=decoupled)
    return update


def _rmsprop(params, grads, state, h):
    for p, g, (sq, buf) in zip(params, grads, state["buffers"]):
        _core.rmsprop_step(p, g, sq, buf, lr=h["lr"], alpha=h["alpha"], eps=h["eps"],
                           weight_decay=h["weight_decay"], momentum=h["momentum"])


OPTIMIZERS: Dict[str, Optimizer] = {
    "sgd": Optimizer("sgd", 1, _sgd),
    "adam": Optimizer("adam", 2, _adam(decoupled=False)),
    "adamw": Optimizer("adamw", 2, _adam(decoupled=True)),
    "rmsprop": Optimizer("rmsprop", 2, _rmsprop),
}


def new_state(name: str, params: Sequence[np.ndarray]) -> Dict[str, Any]:
    """Zeroed state for `name` over `params` (torch starts every buffer at zero)."""
    n = OPTIMIZERS[name].n_buffers
    return {"name": name, "step": 0, "started": False,
            "buffers": [tuple(np.zeros_like(p) for _ in range(n)) for p in params]}


def clip_gradients(grads: List[np.ndarray], clip_value, clip_norm) -> None:
    """clip_value clamps each element; clip_norm scales all gradients together so their global L2
    norm is at most clip_norm (torch.nn.utils.clip_grad_norm_: coef = clip_norm / (norm + 1e-6))."""
    if clip_value is not None:
        for g in grads:
            _core.clip_by_value(g, clip_value)
    if clip_norm is not None:
        total = math.sqrt(sum(_core.sum_of_squares(g) for g in grads))
        coef = clip_norm / (total + 1e-6)
        if coef < 1.0:
            for g in grads:
                _core.scale(g, coef)


def step(state: Dict[str, Any], params: Sequence[np.ndarray], grads: List[np.ndarray], h: Hyper) -> None:
    """One optimizer step on every parameter (gradients clipped first)."""
    if h["clip_value"] is not None or h["clip_norm"] is not None:
        clip_gradients(grads, h["clip_value"], h["clip_norm"])
    state["step"] += 1
    OPTIMIZERS[state["name"]].update(params, grads, state, h)
