"""Dense: a fully connected layer, `Z = X @ W + b`, `A = activation(Z)`, then dropout in training."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

from ... import _core
from .._checks import check_float, check_int, check_name
from ..activations import ACTIVATIONS, OUTPUTS
from .base import BIAS_STREAM, BuildContext, InitSpec, LayerBuffers, PassInfo, Shape
from .weighted import WeightedLayer


class Dense(WeightedLayer):
    """A fully connected layer: `Z = X @ W + b`, `A = activation(Z)`, then dropout in training.

    As a spec (before it joins a Network) every argument left as None is taken from the Network:
    `activation` (the hidden activation, or `output` for the last layer), `init`, `bias_init`,
    `dropout`. `param` sets the activation's parameter (leaky_relu slope, elu alpha, softplus beta).
    Inside a Network, `W` (fan_in, fan_out) and `b` (fan_out,) are live arrays: assigning an array of
    the same shape copies it into the network's weights.

    Kernels: `dense_forward` (GEMM, bias and activation in its epilogue) and `dense_backward`
    (dZ = dA*act'(Z), dW = X^T dZ, db = sum dZ, dX = dZ W^T); the output layer runs them with a
    linear activation (the loss applies softmax/sigmoid). Buffers: out = A (N, units), and the cache
    Z, plus A before dropout and the dropout mask for a layer with dropout; the output layer's out is
    its Z (the logits).
    """

    type_name = "Dense"

    def __init__(self, units: int, activation: Optional[str] = None, *, init: Optional[InitSpec] = None,
                 bias_init: Optional[InitSpec] = None, dropout: Optional[float] = None,
                 param: Optional[float] = None) -> None:
        super().__init__()
        self.units = check_int("units", units, 1)
        if activation is not None and activation not in ACTIVATIONS and activation not in OUTPUTS:
            raise ValueError(f"activation={activation!r} is not valid; valid: "
                             f"{', '.join(sorted(set(ACTIVATIONS) | set(OUTPUTS)))}")
        self.activation = activation
        self.init = init
        self.bias_init = bias_init
        self.dropout = None if dropout is None else check_float(
            "dropout", dropout, minimum=0.0, maximum=1.0, max_strict=True)
        self.param = None if param is None else check_float("param", param, minimum=-math.inf)
        self.fan_in: Optional[int] = None
        self.is_output = False
        self._W: Optional[np.ndarray] = None
        self._b: Optional[np.ndarray] = None
        self._dW: Optional[np.ndarray] = None
        self._db: Optional[np.ndarray] = None
        self._native = None
        self.init_name = ""
        self.bias_init_name = ""

    @property
    def kernel_activation(self) -> str:
        """What the kernels apply: the output layer's activation belongs to the loss."""
        return "linear" if self.is_output else self.activation

    @property
    def act_param(self) -> float:
        """The float handed to the kernels (PyTorch's default when not given)."""
        if self.param is not None:
            return self.param
        default = ACTIVATIONS.get(self.activation or "", None)
        return 0.0 if default is None else default

    def __repr__(self) -> str:
        extra = "" if self.param is None else f", param={self.param}"
        drop = "" if not self.dropout else f", dropout={self.dropout}"
        fan = "" if self.fan_in is None else f"{self.fan_in} -> "
        return f"Dense({fan}{self.units}, activation={self.activation!r}{extra}{drop})"

    # ---- joining a network -------------------------------------------------------------------
    def spec_copy(self) -> "Dense":
        return Dense(self.units, self.activation, init=self.init, bias_init=self.bias_init,
                     dropout=self.dropout, param=self.param)

    def configure(self, ctx: BuildContext) -> None:
        super().configure(ctx)
        i = ctx.position
        self.is_output = ctx.is_output
        if ctx.is_output:
            self.activation = self.activation if self.activation is not None else (ctx.output or "softmax")
            check_name("output (the last layer's activation)", self.activation, list(OUTPUTS))
            if self.dropout:
                raise ValueError(f"dropout on the output layer is not allowed, got {self.dropout}")
            self.dropout = 0.0
        else:
            self.activation = self.activation or ctx.activation
            check_name(f"activation of layer {i}", self.activation, list(ACTIVATIONS))
            self.dropout = ctx.dropout if self.dropout is None else self.dropout
        self._check_param(i, allowed=not ctx.is_output)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(f"Dense (layer {self.index}) takes flat rows; got input shape "
                             f"{tuple(input_shape)} (put a Flatten before it)")
        return (self.units,)

    def parameter_shapes(self, input_shape: Shape) -> List[Shape]:
        return [(int(input_shape[0]), self.units), (self.units,)]

    def build(self, input_shape: Shape) -> Shape:
        out = super().build(input_shape)
        ctx, i = self._ctx, self._ctx.position
        fan_in = int(self.input_shape[0])
        self.fan_in = fan_in
        self.init_name, self.bias_init_name = self._w_init.describe(), self._b_init.describe()
        fans = (fan_in, self.units)
        self._W = self._w_init.draw(fans, ctx.seed, ctx.weight_index, ctx.dtype, fans, f"init (layer {i})")
        self._b = self._b_init.draw((self.units,), ctx.seed, BIAS_STREAM + ctx.weight_index, ctx.dtype,
                                    fans, f"bias_init (layer {i})")
        self._dW = np.zeros_like(self._W)
        self._db = np.zeros_like(self._b)
        self._act = (self.kernel_activation, self.act_param)  # what every kernel call passes
        return out

    # ---- per batch ---------------------------------------------------------------------------------
    def allocate(self, rows: int) -> LayerBuffers:
        shape, dt = (rows, self.units), self.dtype
        Z = np.empty(shape, dtype=dt)
        out = Z if self.is_output else np.empty(shape, dtype=dt)  # the logits: A is Z
        cache = (Z, np.empty(shape, dtype=dt), np.empty(shape, dtype=dt)) if self.dropout else (Z,)
        return LayerBuffers(out, np.empty(shape, dtype=dt), cache)

    def native(self):
        if self._native is None:  # points into W, b, dW, db, which never change identity
            self._native = _core.dense_layer(self._W, self._b, self._dW, self._db, self.kernel_activation,
                                             self.act_param, dropout=self.dropout, stream=self.index)
        return self._native

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        Z = buf.cache[0]
        if pass_.training and self.dropout:
            A, mask = buf.cache[1], buf.cache[2]
            _core.dense_forward(x, self._W, self._b, Z, A, self.kernel_activation, self.act_param)
            np.copyto(buf.out, A)  # A stays intact: the backward needs act' from it
            _core.dropout_forward(buf.out, mask, p=self.dropout, seed=pass_.seed, stream=self.index,
                                  step=pass_.step)
        else:
            _core.dense_forward(x, self._W, self._b, Z, buf.out, self.kernel_activation, self.act_param)

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        A = buf.out
        if pass_.training and self.dropout:
            _core.dropout_backward(buf.dout, buf.cache[2])
            A = buf.cache[1]
        act, param = self._act
        _core.dense_backward(buf.dout, x, self._W, buf.cache[0], A, act, param, self._dW, self._db, dx)

    # ---- instruments and persistence -----------------------------------------------------------
    def stats_row(self, buf: LayerBuffers, output: Optional[np.ndarray] = None) -> Dict[str, Any]:
        A = buf.out if output is None else output
        s = _core.layer_stats(buf.cache[0], A, self.kernel_activation, self.act_param)
        grad = _core.layer_stats(buf.dout, buf.dout, "linear", 0.0)  # moments of dL/dZ
        return {"activation": self.kernel_activation, "fan_in": self.fan_in, "fan_out": self.units,
                "pre_mean": s["pre_mean"], "pre_std": s["pre_std"], "act_mean": s["act_mean"],
                "act_std": s["act_std"], "saturated": s["saturated"], "dead": s["dead"],
                "grad_norm": math.sqrt(_core.sum_of_squares(self._dW)), "grad_std": grad["pre_std"],
                "weight_norm": math.sqrt(_core.sum_of_squares(self._W))}

    def config(self) -> Dict[str, Any]:
        return {"units": self.units, "activation": self.activation, "dropout": self.dropout,
                "param": self.param}

