"""Helpers for layers with parameters: resolving `init=` specs and drawing with them, and the
live-array assignment behind `layer.W = ...`."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from ... import init as init_module
from .base import InitSpec


class Initializer:
    """A resolved `init=` / `bias_init=` spec: draws a (shape) array of the network's dtype.

    spec: an initializer name, `(name, params)`, a callable `(shape, seed, stream) -> ndarray`, or
    "lsuv" (orthogonal now, scaled by LSUV on the first batch `fit` sees)."""

    def __init__(self, spec: InitSpec, argname: str) -> None:
        self.spec = spec
        self.lsuv = False
        self.params: Dict[str, Any] = {}
        if isinstance(spec, str) and spec == "lsuv":
            self.lsuv = True
            self.name = "lsuv"
            self.fn = init_module.get("orthogonal")
        elif isinstance(spec, str) and "(" in spec:  # NAME(key=value, ...)
            try:
                name, params = init_module.parse_spec(spec)
                if name == "lsuv":
                    self.lsuv = True
                    self.name = "lsuv"
                    self.fn = init_module.get("orthogonal")
                    return
                init_module.get(spec)  # every check of the parameters, before anything is drawn
            except ValueError as e:
                raise ValueError(f"{argname} {spec!r}: {e}") from None
            self.name = name
            self.params = params
            self.fn = self._lookup(name, argname)
        elif isinstance(spec, str):
            self.name = spec
            self.fn = self._lookup(spec, argname)
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) \
                and isinstance(spec[1], dict):
            if spec[0] == "lsuv":
                raise ValueError(f"{argname}: 'lsuv' takes no parameters, got {spec[1]!r}")
            self.name = spec[0]
            self.params = dict(spec[1])
            self.fn = self._lookup(spec[0], argname)
        elif callable(spec):
            self.name = getattr(spec, "__name__", type(spec).__name__)
            self.fn = None
        else:
            raise TypeError(f"{argname} must be an initializer name, (name, params) or a callable "
                            f"(shape, seed, stream) -> ndarray, got {type(spec).__name__} {spec!r}")

    @staticmethod
    def _lookup(name: str, argname: str):
        try:
            return init_module.get(name)
        except ValueError:
            raise ValueError(f"{argname}={name!r} is not a known initializer; valid: "
                             f"{', '.join(list(init_module.names()) + ['lsuv'])}") from None

    def describe(self) -> str:
        """The spec as `NAME(key=value, ...)`: `il.init.get` and `Network(init=)` read it back."""
        return init_module.format_spec(self.name, self.params)

    def draw(self, shape: Tuple[int, ...], seed: int, stream: int, dtype: str,
             fans: Tuple[int, int], argname: str) -> np.ndarray:
        if self.fn is None:  # user callable (shape, seed, stream)
            try:
                value = self.spec(shape, seed, stream)
            except TypeError as e:  # most often a callable with another signature
                raise TypeError(f"{argname}: the callable {self.describe()} must take "
                                f"(shape, seed, stream) and return an array; calling it failed: "
                                f"{e}") from e
        else:
            kwargs = dict(self.params)
            if len(shape) == 1:  # a bias gets its layer's fans (API.md), when the scheme takes them
                kwargs.setdefault("fan_in", fans[0])
                kwargs.setdefault("fan_out", fans[1])
            try:
                value = self.fn(shape, seed=seed, stream=stream, dtype=dtype, **kwargs)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{argname} {self.describe()}: {e}") from None
        value = np.asarray(value)
        if value.shape != tuple(shape):
            raise ValueError(f"{argname} {self.describe()} returned shape {value.shape}, "
                             f"expected {tuple(shape)}")
        if value.dtype.kind not in "fiub":
            raise TypeError(f"{argname} {self.describe()} returned dtype {value.dtype}, expected numbers")
        value = np.require(value, dtype=dtype, requirements=["C", "A", "W", "O"])  # the net's own buffer
        if not np.isfinite(value).all():
            raise ValueError(f"{argname} {self.describe()} returned non-finite values")
        return value


def assign_live(name: str, target: np.ndarray, value: Any) -> None:
    """`layer.W = value`: copy into the network's own array (same shape), never rebind it."""
    value = np.asarray(value)
    if value.shape != target.shape:
        raise ValueError(f"{name} must have shape {target.shape}, got {value.shape}")
    if value.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {value.dtype}")
    np.copyto(target, value, casting="unsafe")
