"""What every layer with a weight W and a bias b shares (Dense, Conv2d): the live `.W` / `.b`
arrays, their (parameter, gradient) pairs for the optimizers, and the initializer names that
persistence saves and restores. A subclass sets `_W, _b, _dW, _db, init_name, bias_init_name`
when it is built."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..activations import ACTIVATIONS
from .base import Layer
from .params import Initializer, assign_live


class WeightedLayer(Layer):
    has_weights = True
    parameter_names = ("W", "b")

    _W: Optional[np.ndarray] = None
    _b: Optional[np.ndarray] = None
    _dW: Optional[np.ndarray] = None
    _db: Optional[np.ndarray] = None
    init_name = ""
    bias_init_name = ""

    # ---- specs: what Dense and Conv2d check and resolve alike when a network builds them ----------
    def _check_param(self, i: int, allowed: bool = True) -> None:
        """A given `param` needs an activation that takes one (and `allowed`: not an output layer's)."""
        if self.param is None:
            return
        takes = [name for name, default in ACTIVATIONS.items() if default is not None]
        if not allowed or self.activation not in takes:
            raise ValueError(f"param={self.param} given for layer {i} with activation "
                             f"{self.activation!r}; only {', '.join(takes)} take a parameter")
        if self.activation == "softplus" and self.param <= 0:
            raise ValueError(f"param (softplus beta) of layer {i} must be > 0, got {self.param}")

    def resolve_initializers(self) -> Tuple[Initializer, Initializer]:
        """Resolve init/bias_init (the network's where this spec left them None) without drawing."""
        ctx = self._ctx
        i = ctx.position
        self._w_init = Initializer(self.init if self.init is not None else ctx.init, f"init (layer {i})")
        self._b_init = Initializer(self.bias_init if self.bias_init is not None else ctx.bias_init,
                                   f"bias_init (layer {i})")
        return self._w_init, self._b_init

    @property
    def needs_lsuv(self) -> bool:
        return self._w_init.lsuv

    # ---- live arrays: the getter returns the network's own buffer; the setter copies into it ----
    def _live(self, name: str) -> np.ndarray:
        array = getattr(self, "_" + name)
        if array is None:
            raise AttributeError(f"this {type(self).__name__} is a spec: {name} exists once it is part "
                                 f"of a Network")
        return array

    @property
    def W(self) -> np.ndarray:
        return self._live("W")

    @W.setter
    def W(self, value: Any) -> None:
        assign_live("W", self.W, value)

    @property
    def b(self) -> np.ndarray:
        return self._live("b")

    @b.setter
    def b(self, value: Any) -> None:
        assign_live("b", self.b, value)

    def parameters(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        return [(self._W, self._dW), (self._b, self._db)]

    def initializers(self) -> Dict[str, str]:
        return {"W": self.init_name, "b": self.bias_init_name}

    def restore_initializers(self, names: Dict[str, str]) -> None:
        self.init_name = names.get("W", self.init_name)
        self.bias_init_name = names.get("b", self.bias_init_name)
