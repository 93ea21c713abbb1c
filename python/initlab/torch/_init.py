"""`init_` and `lsuv_`: initlab's initializers and LSUV on the Linear/Conv layers of a torch model."""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from .. import _core
from .. import init as _il_init
from ..init.random import check_seed, fresh_seed
from ._common import (ModuleState, StopForward, as_input, check_module, find_layers, run_forward,
                      uninitialized_modules, unit_matrix)

BIAS_STREAM = 1 << 32  # bias of layer i: stream 2**32 + i, as in il.Network

InitSpec = Union[str, Tuple[str, Dict[str, Any]], Callable[..., Any]]


class UninitializedWarning(UserWarning):
    """init_ met modules with parameters that it does not initialize (named in the message)."""


class _Spec:
    """A resolved `init=` / `bias_init=`: a scheme name (with params) or a user callable
    `(shape, seed, stream) -> array` that receives the shape in torch's out_in layout."""

    def __init__(self, spec: InitSpec, argname: str) -> None:
        self.spec, self.argname = spec, argname
        self.params: Dict[str, Any] = {}
        self.user = False
        if isinstance(spec, str) and "(" in spec:  # "NAME(key=value, ...)"
            try:
                name, params = _il_init.parse_spec(spec)
                if name != "lsuv":
                    _il_init.get(spec)  # every check of the parameters, before anything is drawn
            except ValueError as e:
                raise ValueError(f"{argname}={spec!r}: {e}") from None
            self.fn = self._lookup(name)
            self.params = params
            self.label = _il_init.format_spec(name, params)
        elif isinstance(spec, str):
            self.fn = self._lookup(spec)
            self.label = spec
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) \
                and isinstance(spec[1], dict):
            self.fn = self._lookup(spec[0])
            self.params = dict(spec[1])
            self.label = _il_init.format_spec(spec[0], self.params)
        elif callable(spec):
            self.fn, self.user = spec, True
            self.label = getattr(spec, "__name__", type(spec).__name__)
        else:
            raise TypeError(f"{argname} must be an initializer name, (name, params) or a callable "
                            f"(shape, seed, stream) -> array, got {type(spec).__name__} {spec!r}")

    def _lookup(self, name: str) -> Callable[..., np.ndarray]:
        if name == "lsuv":
            raise ValueError(f"{self.argname}='lsuv' needs data: call il.torch.init_(module, "
                             f"'orthogonal') and then il.torch.lsuv_(module, X)")
        try:
            return _il_init.get(name)
        except ValueError:
            raise ValueError(f"{self.argname}={name!r} is not a known initializer; valid: "
                             f"{', '.join(_il_init.names())}") from None

    def draw(self, shape: Tuple[int, ...], seed: int, stream: int, dtype: str,
             fans: Tuple[int, int], where: str) -> np.ndarray:
        if self.user:
            try:
                value = self.fn(shape, seed, stream)
            except TypeError as e:
                raise TypeError(f"{self.argname}: the callable {self.label} must take (shape, seed, "
                                f"stream) and return an array; calling it for {where} failed: {e}") from e
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if value.shape != tuple(shape):
                raise ValueError(f"{self.argname} {self.label} returned shape {value.shape} for {where}, "
                                 f"expected {tuple(shape)} (torch's out_in layout)")
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{self.argname} {self.label} returned dtype {value.dtype} for {where}")
            value = np.ascontiguousarray(value, dtype=dtype)
            if not np.isfinite(value).all():
                raise ValueError(f"{self.argname} {self.label} returned non-finite values for {where}")
            return value
        kwargs = dict(self.params)
        if len(shape) < 2:  # a bias gets its layer's fans (API.md)
            kwargs.setdefault("fan_in", fans[0])
            kwargs.setdefault("fan_out", fans[1])
        try:
            return self.fn(shape, dtype=dtype, seed=seed, stream=stream, layout="out_in", **kwargs)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{self.argname} {self.label} for {where}: {e}") from None


def _draw_dtype(p: torch.Tensor, where: str) -> str:
    if p.dtype == torch.float64:
        return "float64"
    if p.dtype in (torch.float32, torch.float16, torch.bfloat16):
        return "float32"  # float16 / bfloat16: drawn in float32, rounded by the copy
    raise TypeError(f"{where} has dtype {p.dtype}; init_ fills float32, float64, float16 and bfloat16")


def init_(module: nn.Module, init: InitSpec = "he_normal", *, bias_init: InitSpec = "zeros",
          seed: Optional[int] = None) -> nn.Module:
    """Initialize every nn.Linear / nn.Conv1d / nn.Conv2d / nn.Conv3d of `module` with initlab.

    The i-th such layer in `module.modules()` order gets `weight = il.init.<init>(weight.shape,
    layout="out_in", seed=seed, stream=i)` and `bias = il.init.<bias_init>((out,), fan_in=...,
    fan_out=... (the layer's), seed=seed, stream=2**32 + i)`, written in place under
    `torch.no_grad()`. float32 and float64 parameters get bitwise that draw; float16 and bfloat16
    get the float32 draw rounded to nearest; parameters on another device get the host draw copied
    there. `init` / `bias_init`: a name of `il.init.names()`, `"NAME(key=value, ...)"`,
    `(name, {params})`, or a callable
    `(shape, seed, stream) -> array` (shape in torch's out_in layout). `seed=None` takes one fresh
    seed from the OS for the whole module.

    Every spec and draw is checked before the first parameter is written: on an error, the module
    is untouched. Modules that hold parameters but are not Linear/Conv (Embedding, RNNs,
    ConvTranspose, attention, norms, ...) are named in one `UninitializedWarning`.

    >>> import torch, initlab as il
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> _ = il.torch.init_(model, "he_normal", seed=0)
    >>> bool((model[0].weight.detach().numpy() ==
    ...       il.init.he_normal((8, 4), layout="out_in", seed=0, stream=0)).all())
    True
    """
    check_module(module)
    w_spec = _Spec(init, "init")
    b_spec = _Spec(bias_init, "bias_init")
    seed = fresh_seed() if seed is None else check_seed(seed, "seed")
    layers = find_layers(module)

    # Draw everything first: a bad spec or a failing callable leaves every parameter as it was.
    writes: List[Tuple[torch.Tensor, np.ndarray]] = []
    for i, (name, layer) in enumerate(layers):
        where = f"layer {i} ({name or '<root>'}, {type(layer).__name__})"
        weight = layer.weight
        shape = tuple(weight.shape)
        fans = _il_init.fans(shape, layout="out_in") if len(shape) >= 2 else (shape[-1], shape[0])
        writes.append((weight, w_spec.draw(shape, seed, i, _draw_dtype(weight, where + ".weight"),
                                           fans, where + ".weight")))
        if layer.bias is not None:
            bias = layer.bias
            writes.append((bias, b_spec.draw(tuple(bias.shape), seed, BIAS_STREAM + i,
                                             _draw_dtype(bias, where + ".bias"), fans, where + ".bias")))
    with torch.no_grad():
        for param, value in writes:
            param.copy_(torch.from_numpy(value))
    skipped = uninitialized_modules(module, layers)
    if skipped:
        warnings.warn(f"il.torch.init_ initialized {len(layers)} Linear/Conv layer(s) and left these "
                      f"modules with parameters as they were: {', '.join(skipped)}",
                      UninitializedWarning, stacklevel=2)
    return module


def lsuv_(module: nn.Module, X: Any, tol: float = 0.1, max_iter: int = 10) -> nn.Module:
    """Layer-sequential unit-variance scaling (Mishkin & Matas 2016) of the layers `init_` fills.

    For each Linear/Conv layer in `modules()` order: forward X (eval mode: dropout off) up to that
    layer and divide its weight by the std of the layer's output until |Var - 1| < tol, at most
    max_iter times; as `il.lsuv` does for a Network. The paper's recipe is
    `init_(module, "orthogonal", seed=s)` first. Deterministic given the weights and X (the std
    comes from initlab's fixed-order reductions). A layer the forward pass never calls is left
    as it is. Returns module (rescaled in place).
    """
    check_module(module)
    layers = find_layers(module)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    X = as_input(X, layers[0][1].weight)
    with ModuleState(module), torch.no_grad():
        for _, layer in layers:
            conv = not isinstance(layer, nn.Linear)
            captured: List[torch.Tensor] = []

            def stop_after(mod, inputs, output, captured=captured):
                captured.append(output)
                raise StopForward

            for _ in range(max_iter):
                captured.clear()
                handle = layer.register_forward_hook(stop_after)
                try:
                    run_forward(module, X)
                except StopForward:
                    pass
                finally:
                    handle.remove()
                if not captured:  # the forward pass never reaches this layer
                    break
                std = _core.layer_stats(*(2 * [unit_matrix(captured[0], conv)]), "linear", 0.0)["pre_std"]
                if not math.isfinite(std) or std == 0.0 or abs(std * std - 1.0) < tol:
                    break
                layer.weight.mul_(1.0 / std)
    return module
