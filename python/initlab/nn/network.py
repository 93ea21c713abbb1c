"""Multilayer perceptrons on the native kernels: `Network`, `Dense`, `lsuv`, `DivergenceError`.

Python owns the loop (epochs, shuffling, batches, validation, reports); every per-element or
per-batch computation is a `_core` kernel call on buffers that are allocated once per batch size:

    forward   dense_forward per layer (GEMM + bias + activation), dropout_forward in training
    loss      softmax_cross_entropy | sigmoid_binary_cross_entropy | mean_squared_error (+ dZ)
    backward  dense_backward in reverse (dZ = dA*act'(Z), dW = X^T dZ, db = sum dZ, dX = dZ W^T)
    update    clip_by_value / sum_of_squares + scale (global norm) / sgd_step | adam_step | rmsprop_step

Random streams (one seed per network; Philox counters never overlap between uses):
    W of layer i: stream i;  b of layer i: stream 2**32 + i;  dropout of layer i: the dropout
    kernel's own counters (tagged apart from the initializers') with stream i and the global
    optimizer step. Shuffling uses numpy's Philox bit generator keyed by (seed, epoch number),
    so one seed fixes the whole run on any thread count.

>>> import initlab as il, numpy as np
>>> X = np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32)
>>> y = (X[:, 0] > 0).astype(np.int64)
>>> net = il.Network([8, 32, 2], activation="relu", output="softmax", seed=0)
>>> report = net.fit(X, y, epochs=20, optimizer="adam", lr=0.01, progress=False)
>>> net.evaluate(X, y)["accuracy"] > 0.95
True
"""
from __future__ import annotations

import hashlib
import math
import os
import signal
import sys
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .callbacks import Callback, as_callbacks
from .._files import atomic_file, target_path
from ..inspect.report import Report

# ---- registries (iterated by validation, docs and error messages) ------------------------------
# Hidden activations -> the default of their parameter (PyTorch's), None when they have none.
ACTIVATIONS: Dict[str, Optional[float]] = {
    "linear": None, "relu": None, "leaky_relu": 0.01, "elu": 1.0, "selu": None, "gelu": None,
    "sigmoid": None, "tanh": None, "softplus": 1.0,
}
# Output activations -> the loss they are paired with.
OUTPUTS: Dict[str, str] = {"softmax": "categorical cross-entropy", "sigmoid": "binary cross-entropy",
                           "linear": "mean squared error"}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
DIVERGENCE_POLICIES = ("stop", "raise", "ignore")
DTYPES = ("float32", "float64")

BIAS_STREAM = 1 << 32
EVAL_CHUNK = 2048          # rows per forward chunk in predict/evaluate/loss
MAX_WORKSPACES = 4         # batch sizes whose buffers are kept (train, last partial, probe, eval)
FORMAT_NAME = "initlab.network"
FORMAT_VERSION = 1

InitSpec = Union[str, Callable[..., np.ndarray], Tuple[str, Dict[str, Any]]]


class DivergenceError(FloatingPointError):
    """Raised by `fit(on_divergence="raise")` at the first non-finite loss or gradient.

    `.report` holds the Report up to that point; the network keeps the last finite weights.
    """

    def __init__(self, message: str, report: Optional[Report] = None) -> None:
        super().__init__(message)
        self.report = report


# ---- small validators (each names the argument, what was given and what is allowed) -----------
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False,
                 maximum: Optional[float] = None, max_strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    lo_ok = v > minimum if strict else v >= minimum
    hi_ok = True if maximum is None else (v < maximum if max_strict else v <= maximum)
    if not math.isfinite(v) or not lo_ok or not hi_ok:
        allowed = f"{'>' if strict else '>='} {minimum}"
        if maximum is not None:
            allowed += f" and {'<' if max_strict else '<='} {maximum}"
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")
    return v


def _kernel_input(arr: np.ndarray, dtype: Any) -> np.ndarray:
    """`arr` as the kernels read it: C-contiguous, aligned, of `dtype` (copied only when needed).
    Aligned matters: arrays that Dask or pickle protocol 5 rebuild from network frames can start
    at an odd byte offset, which the bindings refuse (reading them through T* is undefined)."""
    return np.require(arr, dtype=dtype, requirements=["C", "A"])


def _check_network_memory(widths: Sequence[int], dtype: str) -> None:
    """MemoryError before the first weight is drawn when the weights and their gradient buffers
    alone need more than this machine's physical memory (each layer on its own may fit, so the
    per-array check of il.init would only fail half-way, after gigabytes were filled)."""
    parameters = sum(n_in * n_out + n_out for n_in, n_out in zip(widths[:-1], widths[1:]))
    nbytes = 2 * parameters * np.dtype(dtype).itemsize  # W, b and dW, db
    physical = _init_module().physical_memory()
    if nbytes > physical:
        raise MemoryError(f"Network: widths {list(widths)} in {dtype} need {nbytes} bytes for the "
                          f"weights and their gradients, more than this machine's {physical} bytes "
                          f"of memory")


def _check_name(name: str, value: Any, valid: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; valid: {', '.join(valid)}")
    return value


def _init_module():
    from .. import init as init_module  # imported late: initializers live in their own module
    return init_module


class _Initializer:
    """A resolved `init=` / `bias_init=` spec: draws a (shape) array of the network's dtype."""

    def __init__(self, spec: InitSpec, argname: str) -> None:
        self.spec = spec
        self.lsuv = False
        self.params: Dict[str, Any] = {}
        if isinstance(spec, str) and spec == "lsuv":
            self.lsuv = True
            self.name = "lsuv"
            self.fn = _init_module().get("orthogonal")
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
        init_module = _init_module()
        try:
            return init_module.get(name)
        except ValueError:
            raise ValueError(f"{argname}={name!r} is not a known initializer; valid: "
                             f"{', '.join(list(init_module.names()) + ['lsuv'])}") from None

    def describe(self) -> str:
        if self.params:
            return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"
        return self.name

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


# ---- layers --------------------------------------------------------------------------------------
class Dense:
    """A fully connected layer: `Z = X @ W + b`, `A = activation(Z)`, then dropout in training.

    As a spec (before it joins a Network) every argument left as None is taken from the Network:
    `activation` (the hidden activation, or `output` for the last layer), `init`, `bias_init`,
    `dropout`. `param` sets the activation's parameter (leaky_relu slope, elu alpha, softplus beta).
    Inside a Network, `W` (fan_in, fan_out) and `b` (fan_out,) are live arrays: assigning an array of
    the same shape copies it into the network's weights.
    """

    def __init__(self, units: int, activation: Optional[str] = None, *, init: Optional[InitSpec] = None,
                 bias_init: Optional[InitSpec] = None, dropout: Optional[float] = None,
                 param: Optional[float] = None) -> None:
        self.units = _check_int("units", units, 1)
        if activation is not None and activation not in ACTIVATIONS and activation not in OUTPUTS:
            raise ValueError(f"activation={activation!r} is not valid; valid: "
                             f"{', '.join(sorted(set(ACTIVATIONS) | set(OUTPUTS)))}")
        self.activation = activation
        self.init = init
        self.bias_init = bias_init
        self.dropout = None if dropout is None else _check_float(
            "dropout", dropout, minimum=0.0, maximum=1.0, max_strict=True)
        self.param = None if param is None else _check_float("param", param, minimum=-math.inf)
        self.fan_in: Optional[int] = None
        self.index: Optional[int] = None
        self._W: Optional[np.ndarray] = None
        self._b: Optional[np.ndarray] = None
        self.init_name = ""
        self.bias_init_name = ""

    # Live arrays: the getter returns the network's own buffer; the setter copies into it.
    @property
    def W(self) -> np.ndarray:
        if self._W is None:
            raise AttributeError("this Dense is a spec: W exists once it is part of a Network")
        return self._W

    @W.setter
    def W(self, value: Any) -> None:
        self._assign("W", self.W, value)

    @property
    def b(self) -> np.ndarray:
        if self._b is None:
            raise AttributeError("this Dense is a spec: b exists once it is part of a Network")
        return self._b

    @b.setter
    def b(self, value: Any) -> None:
        self._assign("b", self.b, value)

    @staticmethod
    def _assign(name: str, target: np.ndarray, value: Any) -> None:
        value = np.asarray(value)
        if value.shape != target.shape:
            raise ValueError(f"{name} must have shape {target.shape}, got {value.shape}")
        if value.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric, got dtype {value.dtype}")
        np.copyto(target, value, casting="unsafe")

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


class _Workspace:
    """Every buffer one forward/backward pass of N rows needs, allocated once and reused.

    inputs[i] is what layer i reads ((N, n_in) buffer for layer 0, then the previous layer's
    activations, or its dropped copy D in training); Z[i], A[i] are (N, O_i) (the output layer's A
    is its Z: logits); dA[i] (N, O_i) receives dL/d(output of layer i) and is turned into dZ by
    dense_backward; P (N, K) holds probabilities.
    """

    def __init__(self, net: "Network", rows: int) -> None:
        dt = net.dtype
        self.rows = rows
        self.X = np.empty((rows, net.input_dim), dtype=dt)
        self.Z = [np.empty((rows, layer.units), dtype=dt) for layer in net.layers]
        self.A = [np.empty((rows, layer.units), dtype=dt) for layer in net.layers[:-1]] + [self.Z[-1]]
        self.D = [np.empty((rows, layer.units), dtype=dt) if layer.dropout else None
                  for layer in net.layers]
        self.mask = [np.empty((rows, layer.units), dtype=dt) if layer.dropout else None
                     for layer in net.layers]
        self.dA = [np.empty((rows, layer.units), dtype=dt) for layer in net.layers]
        self.P = np.empty((rows, net.output_dim), dtype=dt)
        self.y_int = np.empty((rows,), dtype=np.int64)
        self.y_float = np.empty((rows, net.output_dim), dtype=dt)
        self.y_dummy = np.zeros((rows,), dtype=np.int64)  # for softmax probabilities without labels
        self.X_grad = np.empty((rows, net.input_dim), dtype=dt)  # dL/dX (Jacobians in diagnose)
        # Accuracy without allocating: predicted and true classes, and the hit mask.
        self.predicted = np.empty((rows,), dtype=np.int64)
        self.truth = np.empty((rows,), dtype=np.int64)
        self.hit = np.empty((rows,), dtype=bool)
        self.predicted_bits = np.empty((rows, net.output_dim), dtype=bool)
        self.truth_bits = np.empty((rows, net.output_dim), dtype=bool)
        self.last_training = False  # whether the last forward applied dropout (backward needs it)


# ---- the network ---------------------------------------------------------------------------------
class Network:
    """A multilayer perceptron trained with the native kernels (see the module docstring).

    Parameters
    ----------
    layers: widths `[n_in, h1, ..., n_out]`, or a list of `Dense` specs (then `input_dim` is required).
    activation: hidden activation, one of `ACTIVATIONS` (PyTorch definitions).
    output: `"softmax"` (cross-entropy), `"sigmoid"` (binary cross-entropy) or `"linear"` (MSE).
    init, bias_init: an initializer name from `il.init.names()`, `(name, params)` such as
        `("normal", {"std": 1.0})`, a callable `(shape, seed, stream) -> ndarray`, or `"lsuv"`.
    seed: int in [0, 2**64) or None (fresh entropy, recorded in `net.seed`).
    dtype: "float32" or "float64".
    dropout: default dropout rate of hidden layers (a Dense spec may set its own).
    """

    def __init__(self, layers: Sequence[Union[int, Dense]], activation: str = "relu",
                 output: Optional[str] = None, init: InitSpec = "he_normal",
                 bias_init: InitSpec = "zeros", seed: Optional[int] = None, dtype: str = "float32",
                 *, input_dim: Optional[int] = None, dropout: float = 0.0) -> None:
        if isinstance(dtype, type) or isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype).name
        self.dtype = _check_name("dtype", dtype, DTYPES)
        _check_name("activation", activation, list(ACTIVATIONS))
        if output is not None:
            _check_name("output", output, list(OUTPUTS))
        dropout = _check_float("dropout", dropout, minimum=0.0, maximum=1.0, max_strict=True)
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 64:
            raise ValueError(f"seed must be an int in [0, 2**64) or None, got {seed!r}")
        self.seed = int(seed)

        try:
            specs = list(layers)
        except TypeError:
            raise TypeError(f"layers must be a list of widths or Dense specs, got "
                            f"{type(layers).__name__}") from None
        if specs and all(isinstance(s, Dense) for s in specs):
            if input_dim is None:
                raise ValueError("input_dim is required when layers are Dense specs")
            self.input_dim = _check_int("input_dim", input_dim, 1)
            out_act = specs[-1].activation if specs[-1].activation is not None else (output or "softmax")
            if output is not None and out_act != output:
                raise ValueError(f"output={output!r} contradicts the last Dense's activation {out_act!r}")
            fresh = [Dense(s.units, s.activation, init=s.init, bias_init=s.bias_init,
                           dropout=s.dropout, param=s.param) for s in specs]
            fresh[-1].activation = out_act
        elif all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in specs):
            if len(specs) < 2:
                raise ValueError(f"layers must hold at least [n_in, n_out], got {specs!r}")
            for i, width in enumerate(specs):
                _check_int(f"layers[{i}]", width, 1)
            if input_dim is not None and input_dim != specs[0]:
                raise ValueError(f"input_dim={input_dim} contradicts layers[0]={specs[0]}")
            self.input_dim = int(specs[0])
            fresh = [Dense(int(w)) for w in specs[1:]]
            fresh[-1].activation = output or "softmax"
        else:
            raise TypeError(f"layers must be all ints (widths) or all Dense specs, got {specs!r}")

        for i, layer in enumerate(fresh):
            last = i == len(fresh) - 1
            if last:
                _check_name("output (the last layer's activation)", layer.activation, list(OUTPUTS))
                if layer.dropout:
                    raise ValueError(f"dropout on the output layer is not allowed, got {layer.dropout}")
                layer.dropout = 0.0
            else:
                layer.activation = layer.activation or activation
                _check_name(f"activation of layer {i}", layer.activation, list(ACTIVATIONS))
                layer.dropout = dropout if layer.dropout is None else layer.dropout
            if layer.param is not None:
                takes = [name for name, default in ACTIVATIONS.items() if default is not None]
                if last or layer.activation not in takes:
                    raise ValueError(f"param={layer.param} given for layer {i} with activation "
                                     f"{layer.activation!r}; only {', '.join(takes)} take a parameter")
                if layer.activation == "softplus" and layer.param <= 0:
                    raise ValueError(f"param (softplus beta) of layer {i} must be > 0, got {layer.param}")
        self.layers: List[Dense] = fresh
        self.output = fresh[-1].activation
        self.output_dim = fresh[-1].units
        self.stop_training = False

        _check_network_memory(self.widths, self.dtype)
        # Resolve every initializer before drawing any (a bad name fails before anything is built).
        inits = [_Initializer(layer.init if layer.init is not None else init, f"init (layer {i})")
                 for i, layer in enumerate(fresh)]
        bias_inits = [_Initializer(layer.bias_init if layer.bias_init is not None else bias_init,
                                   f"bias_init (layer {i})") for i, layer in enumerate(fresh)]
        if any(b.lsuv for b in bias_inits):
            raise ValueError("bias_init='lsuv' is not valid: LSUV scales weights; use 'zeros'")
        fan_in = self.input_dim
        for i, (layer, w_init, b_init) in enumerate(zip(fresh, inits, bias_inits)):
            layer.index, layer.fan_in = i, fan_in
            layer.init_name, layer.bias_init_name = w_init.describe(), b_init.describe()
            layer._W = w_init.draw((fan_in, layer.units), self.seed, i, self.dtype,
                                   (fan_in, layer.units), f"init (layer {i})")
            layer._b = b_init.draw((layer.units,), self.seed, BIAS_STREAM + i, self.dtype,
                                   (fan_in, layer.units), f"bias_init (layer {i})")
            fan_in = layer.units
        # Layers still waiting for LSUV's data-dependent scaling (done on the first batch fit sees).
        self._lsuv_pending = [i for i, w_init in enumerate(inits) if w_init.lsuv]

        self._dW = [np.zeros_like(layer._W) for layer in self.layers]
        self._db = [np.zeros_like(layer._b) for layer in self.layers]
        # The arrays never change identity (assignments copy into them): list them once.
        self._params = [p for layer in self.layers for p in (layer._W, layer._b)]
        self._grads = [g for pair in zip(self._dW, self._db) for g in pair]
        self._workspaces: "OrderedDict[int, _Workspace]" = OrderedDict()
        self._optimizer: Optional[Dict[str, Any]] = None
        self._step = 0            # optimizer steps taken over every fit (dropout masks, Adam)
        self._epochs_trained = 0  # epochs completed over every fit (shuffling, epoch numbers)
        self._interrupted = False

    # ---- description --------------------------------------------------------------------------
    @property
    def widths(self) -> List[int]:
        return [self.input_dim] + [layer.units for layer in self.layers]

    def __repr__(self) -> str:
        acts = [layer.activation for layer in self.layers]
        return (f"Network(widths={self.widths}, activations={acts}, dtype={self.dtype!r}, "
                f"seed={self.seed})")

    def get_weights(self, out: Optional[list] = None) -> List[np.ndarray]:
        """Copies of [W0, b0, W1, b1, ...]; `out` (a previous result) is refilled in place."""
        arrays = [a for layer in self.layers for a in (layer._W, layer._b)]
        if out is None:
            return [a.copy() for a in arrays]
        for dst, src in zip(out, arrays):
            np.copyto(dst, src)
        return out

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy [W0, b0, W1, b1, ...] into the network (shapes checked before anything is written)."""
        arrays = [a for layer in self.layers for a in (layer._W, layer._b)]
        weights = list(weights)
        if len(weights) != len(arrays):
            raise ValueError(f"weights must hold {len(arrays)} arrays, got {len(weights)}")
        for k, (dst, src) in enumerate(zip(arrays, weights)):
            if np.shape(src) != dst.shape:
                raise ValueError(f"weights[{k}] must have shape {dst.shape}, got {np.shape(src)}")
        for dst, src in zip(arrays, weights):
            np.copyto(dst, src, casting="unsafe")

    # ---- input validation -----------------------------------------------------------------------
    def _check_X(self, X: Any, name: str = "X") -> np.ndarray:
        if isinstance(X, np.ndarray) and X.dtype == self.dtype and X.flags.c_contiguous \
                and X.flags.aligned and X.ndim == 2 and X.shape[1] == self.input_dim:
            arr = X
        else:
            arr = np.asarray(X)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
            if arr.ndim != 2:
                raise ValueError(f"{name} must be 2-D (n_samples, {self.input_dim}), got shape {arr.shape}")
            if arr.shape[1] != self.input_dim:
                raise ValueError(f"{name} must have {self.input_dim} columns (the input width), "
                                 f"got shape {arr.shape}")
            arr = _kernel_input(arr, self.dtype)
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape}): at least one sample is needed")
        if not _core.all_finite(arr):
            raise ValueError(f"{name} contains NaN or infinity")
        return arr

    def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray:
        """Labels in the form the loss kernel takes: int64 (n,) or float (n, K) for softmax,
        float (n, K) for sigmoid and linear outputs."""
        arr = np.asarray(y)
        K = self.output_dim
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows (one per sample of X), got shape {arr.shape}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinity")
        if self.output == "softmax":
            if arr.ndim == 1:
                if arr.dtype.kind == "f":
                    if not np.array_equal(arr, np.floor(arr)):
                        raise ValueError(f"{name}: softmax labels must be integers in [0, {K}), "
                                         f"got non-integer values such as {arr[arr != np.floor(arr)][0]!r}")
                if arr.size and (arr.min() < 0 or arr.max() >= K):
                    bad = arr[(arr < 0) | (arr >= K)][0]
                    raise ValueError(f"{name}: softmax labels must be integers in [0, {K}), got {bad!r}")
                return _kernel_input(arr, np.int64)
            if arr.ndim == 2 and arr.shape[1] == K:
                if arr.size and (arr.min() < 0 or arr.max() > 1 or
                                 np.abs(arr.sum(axis=1) - 1).max() > 1e-3):
                    raise ValueError(f"{name}: one-hot / probability targets must lie in [0, 1] "
                                     f"with rows summing to 1")
                return _kernel_input(arr, self.dtype)
            raise ValueError(f"{name} must have shape ({n},) (integer labels) or ({n}, {K}) "
                             f"(one-hot) for a softmax output, got {arr.shape}")
        if arr.ndim == 1 and K == 1:
            arr = arr.reshape(n, 1)
        if arr.ndim != 2 or arr.shape[1] != K:
            want = f"({n}, {K})" + (f" or ({n},)" if K == 1 else "")
            raise ValueError(f"{name} must have shape {want} for a {self.output} output with "
                             f"{K} units, got {arr.shape}")
        if self.output == "sigmoid" and arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"{name}: sigmoid (binary cross-entropy) labels must lie in [0, 1], "
                             f"got values in [{arr.min()}, {arr.max()}]")
        out = _kernel_input(arr, self.dtype)
        if not np.isfinite(out).all():  # finite in float64, but past float32's range
            raise ValueError(f"{name} has values beyond the range of {self.dtype}")
        return out

    # ---- workspaces and passes -------------------------------------------------------------------
    def _workspace(self, rows: int) -> _Workspace:
        ws = self._workspaces.get(rows)
        if ws is None:
            ws = _Workspace(self, rows)
            self._workspaces[rows] = ws
            while len(self._workspaces) > MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        else:
            self._workspaces.move_to_end(rows)
        return ws

    def _forward(self, ws: _Workspace, X: np.ndarray, training: bool) -> None:
        """Z[i], A[i] for every layer from X (N rows of ws); dropout masks when training."""
        inp = X
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            act = "linear" if i == last else layer.activation
            _core.dense_forward(inp, layer._W, layer._b, ws.Z[i], ws.A[i], act, layer.act_param)
            inp = ws.A[i]
            if training and layer.dropout:
                np.copyto(ws.D[i], ws.A[i])  # A stays intact: the backward needs act'(Z) from it
                _core.dropout_forward(ws.D[i], ws.mask[i], p=layer.dropout, seed=self.seed,
                                      stream=i, step=self._step & 0xFFFFFFFF)
                inp = ws.D[i]
        ws.last_training = training

    def _layer_input(self, ws: _Workspace, X: np.ndarray, i: int) -> np.ndarray:
        if i == 0:
            return X
        prev = self.layers[i - 1]
        return ws.D[i - 1] if (ws.last_training and prev.dropout) else ws.A[i - 1]

    def _loss(self, ws: _Workspace, y: np.ndarray, with_grad: bool) -> float:
        """Mean loss of the logits in ws.Z[-1]; probabilities to ws.P; dZ to ws.dA[-1] if asked."""
        Z, dZ = ws.Z[-1], (ws.dA[-1] if with_grad else None)
        if self.output == "softmax":
            return _core.softmax_cross_entropy(Z, y, ws.P, dZ)
        if self.output == "sigmoid":
            return _core.sigmoid_binary_cross_entropy(Z, y, ws.P, dZ)
        return _core.mean_squared_error(Z, y, dZ)

    def _backward(self, ws: _Workspace, X: np.ndarray, need_dX: bool = False) -> None:
        """From dL/dZ_out in ws.dA[-1]: dW, db of every layer (self._dW, self._db); ws.dA[i] ends
        holding dL/dZ_i. With need_dX, the gradient w.r.t. X lands in ws.X_grad."""
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            layer = self.layers[i]
            if i < last and ws.last_training and layer.dropout:
                _core.dropout_backward(ws.dA[i], ws.mask[i])
            act = "linear" if i == last else layer.activation
            if i > 0:
                dX = ws.dA[i - 1]
            else:
                dX = ws.X_grad if need_dX else None
            _core.dense_backward(ws.dA[i], self._layer_input(ws, X, i), layer._W, ws.Z[i], ws.A[i],
                                 act, layer.act_param, self._dW[i], self._db[i], dX)

    def _probabilities(self, ws: _Workspace, out: np.ndarray) -> None:
        """Output activations of the logits in ws.Z[-1] into `out` (N, K)."""
        if self.output == "softmax":
            _core.softmax_cross_entropy(ws.Z[-1], ws.y_dummy, out, None)
        elif self.output == "sigmoid":
            _core.activation_forward(ws.Z[-1], out, "sigmoid", 0.0)
        else:
            np.copyto(out, ws.Z[-1])

    def _chunks(self, n: int, chunk: int = EVAL_CHUNK):
        for start in range(0, n, chunk):
            yield start, min(start + chunk, n)

    # ---- public inference API --------------------------------------------------------------------
    def forward(self, X: Any) -> np.ndarray:
        """Output activations (n, K): probabilities for softmax/sigmoid, values for linear."""
        X = self._check_X(X)
        out = np.empty((X.shape[0], self.output_dim), dtype=self.dtype)
        for start, stop in self._chunks(X.shape[0]):
            ws = self._workspace(stop - start)
            self._forward(ws, X[start:stop], training=False)
            self._probabilities(ws, out[start:stop])
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Labels (softmax: argmax, int64 (n,); sigmoid: probability > 0.5, int64 (n, K), or (n,)
        when K == 1) or values (linear: (n, K))."""
        out = self.forward(X)
        if self.output == "softmax":
            return out.argmax(axis=1).astype(np.int64)
        if self.output == "sigmoid":
            labels = (out > 0.5).astype(np.int64)
            return labels[:, 0] if self.output_dim == 1 else labels
        return out

    def _loss_and_correct(self, X: np.ndarray, y: np.ndarray) -> Tuple[float, Optional[float]]:
        """Mean loss and accuracy over all rows, in chunks (eval mode)."""
        n = X.shape[0]
        total_loss, correct = 0.0, 0.0
        for start, stop in self._chunks(n):
            ws = self._workspace(stop - start)
            self._forward(ws, X[start:stop], training=False)
            total_loss += self._loss(ws, y[start:stop], with_grad=False) * (stop - start)
            correct += self._count_correct(ws, y[start:stop])
        accuracy = None if self.output == "linear" else correct / (n if self.output == "softmax"
                                                                    else n * self.output_dim)
        return total_loss / n, accuracy

    def _count_correct(self, ws: _Workspace, y: np.ndarray) -> float:
        """Correct decisions in this batch (ws.P holds its probabilities), into preallocated buffers."""
        if self.output == "softmax":
            np.argmax(ws.P, axis=1, out=ws.predicted)
            if y.ndim == 1:
                np.equal(ws.predicted, y, out=ws.hit)
            else:
                np.argmax(y, axis=1, out=ws.truth)
                np.equal(ws.predicted, ws.truth, out=ws.hit)
            return float(np.count_nonzero(ws.hit))
        if self.output == "sigmoid":
            np.greater(ws.P, 0.5, out=ws.predicted_bits)
            np.greater(y, 0.5, out=ws.truth_bits)
            np.equal(ws.predicted_bits, ws.truth_bits, out=ws.truth_bits)
            return float(np.count_nonzero(ws.truth_bits))
        return 0.0

    def evaluate(self, X: Any, y: Any) -> Dict[str, float]:
        """{"loss": mean data loss, "accuracy": fraction correct} (accuracy only for classification;
        for sigmoid it is the mean over all n*K binary decisions, as Keras' binary_accuracy)."""
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        loss, accuracy = self._loss_and_correct(X, y)
        result = {"loss": loss}
        if accuracy is not None:
            result["accuracy"] = accuracy
        return result

    def loss(self, X: Any, y: Any) -> float:
        """The mean data loss (regularization not included)."""
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        return self._loss_and_correct(X, y)[0]

    def gradients(self, X: Any, y: Any) -> List[Tuple[np.ndarray, np.ndarray]]:
        """[(dW, db)] per layer: gradients of `loss(X, y)` (one batch of all rows, dropout off)."""
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        ws = self._workspace(X.shape[0])
        self._forward(ws, X, training=False)
        self._loss(ws, y, with_grad=True)
        self._backward(ws, X)
        return [(dW.copy(), db.copy()) for dW, db in zip(self._dW, self._db)]

    # ---- training --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, epochs: int = 10, batch_size: int = 32, optimizer: str = "sgd",
            lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
            betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
            clip_value: Optional[float] = None, clip_norm: Optional[float] = None,
            validation_data: Optional[Tuple[Any, Any]] = None, validation_split: float = 0.0,
            shuffle: bool = True, stats_every: int = 1, on_divergence: str = "stop",
            progress: Optional[bool] = None, callbacks: Sequence[Any] = (),
            dampening: float = 0.0, alpha: float = 0.99, probe_size: Optional[int] = None) -> Report:
        """Train with mini-batches; returns a `Report` (see `initlab.report`).

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
        """
        # ---- validate everything before anything changes -----------------------------------------
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        epochs = _check_int("epochs", epochs, 0)
        batch_size = _check_int("batch_size", batch_size, 1)
        optimizer = _check_name("optimizer", optimizer, OPTIMIZERS)
        lr = _check_float("lr", lr)
        momentum = _check_float("momentum", momentum)
        dampening = _check_float("dampening", dampening, maximum=1.0)
        alpha = _check_float("alpha", alpha, maximum=1.0)
        eps = _check_float("eps", eps)
        weight_decay = _check_float("weight_decay", weight_decay)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and (optimizer != "sgd" or momentum <= 0 or dampening != 0):
            raise ValueError("nesterov=True needs optimizer='sgd', momentum > 0 and dampening = 0 "
                             f"(got optimizer={optimizer!r}, momentum={momentum}, dampening={dampening})")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}") from None
        beta1 = _check_float("betas[0]", beta1, maximum=1.0, max_strict=True)
        beta2 = _check_float("betas[1]", beta2, maximum=1.0, max_strict=True)
        if clip_value is not None:
            clip_value = _check_float("clip_value", clip_value, strict=True)
        if clip_norm is not None:
            clip_norm = _check_float("clip_norm", clip_norm, strict=True)
        validation_split = _check_float("validation_split", validation_split, maximum=1.0,
                                        max_strict=True)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        stats_every = _check_int("stats_every", stats_every, 0)
        on_divergence = _check_name("on_divergence", on_divergence, DIVERGENCE_POLICIES)
        if progress is not None and not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be None, True or False, got {progress!r}")
        callback_list = as_callbacks(callbacks)

        if validation_data is not None:
            try:
                X_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, y_val)") from None
            X_val = self._check_X(X_val, "validation_data X")
            y_val = self._check_y(y_val, X_val.shape[0], "validation_data y")
            X_train, y_train = X, y
        elif validation_split > 0:
            n_val = int(math.floor(X.shape[0] * validation_split))
            if n_val < 1 or n_val >= X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves {X.shape[0] - n_val} "
                                 f"training and {n_val} validation rows of {X.shape[0]}; both must be >= 1")
            X_train, y_train = X[:-n_val], y[:-n_val]
            X_val, y_val = np.ascontiguousarray(X[-n_val:]), np.ascontiguousarray(y[-n_val:])
        else:
            X_train, y_train, X_val, y_val = X, y, None, None
        n = X_train.shape[0]
        if probe_size is None:
            probe_size = min(256, max(32, n // 32))
        probe_size = min(_check_int("probe_size", probe_size, 1), n)

        hyper = {"optimizer": optimizer, "lr": lr, "momentum": momentum, "dampening": dampening,
                 "nesterov": bool(nesterov), "betas": (beta1, beta2), "eps": eps, "alpha": alpha,
                 "weight_decay": weight_decay, "clip_value": clip_value, "clip_norm": clip_norm}
        report = Report(config=dict(hyper, epochs=epochs, batch_size=batch_size, shuffle=bool(shuffle),
                                    validation=X_val is not None, stats_every=stats_every,
                                    on_divergence=on_divergence, probe_size=probe_size,
                                    n_train=n, seed=self.seed, dtype=self.dtype))
        metrics = ["epoch", "loss", "seconds"] + (["accuracy"] if self.output != "linear" else [])
        if X_val is not None:
            metrics += ["val_loss"] + (["val_accuracy"] if self.output != "linear" else [])
        self.stop_training = False
        for cb in callback_list:
            cb.on_fit_begin(self, report, metrics)  # may reject the configuration (ValueError)

        # Ctrl-C only raises a flag, read at batch boundaries, so the weights are never left half
        # updated (LSUV and the optimizer step included); a second Ctrl-C interrupts at once.
        previous_handler = None
        self._interrupted = False
        if threading.current_thread() is threading.main_thread():
            def on_sigint(signum, frame):  # noqa: ARG001 - signal handler signature
                if self._interrupted:   # second Ctrl-C: the user insists, interrupt now
                    raise KeyboardInterrupt
                self._interrupted = True
            try:
                previous_handler = signal.signal(signal.SIGINT, on_sigint)
            except ValueError:  # pragma: no cover - not in the main interpreter
                previous_handler = None

        # ---- set-up that may touch the weights (validation is over) ------------------------------
        start_time = time.perf_counter()
        epoch = self._epochs_trained
        bar = None
        try:
            y_buffer_is_int = y_train.ndim == 1 and self.output == "softmax"
            if self._lsuv_pending:
                first_rows = (self._epoch_order(self._epochs_trained + 1, n) if shuffle
                              else np.arange(n))[:min(batch_size, n)]
                first = np.ascontiguousarray(X_train[first_rows])   # the first batch fit will see
                lsuv(self, first, layers=self._lsuv_pending)
                self._lsuv_pending = []
            if self._optimizer is None or self._optimizer["name"] != optimizer:
                self._optimizer = self._new_optimizer_state(optimizer)
            probe_rows = np.random.Generator(np.random.Philox(key=self.seed)).permutation(n)[:probe_size]
            probe_rows.sort()
            X_probe = np.ascontiguousarray(X_train[probe_rows])
            y_probe = np.ascontiguousarray(y_train[probe_rows])
            record_stats = stats_every > 0
            W_before = [np.empty_like(layer._W) for layer in self.layers] if record_stats else None
            if record_stats:
                t0 = time.perf_counter()
                report.layer_stats.append(
                    self._probe_statistics(X_probe, y_probe, self._epochs_trained, None))
                report.stats_seconds += time.perf_counter() - t0

            steps_per_epoch = -(-n // batch_size)
            layer_indices = list(range(len(self.layers)))
            order = np.arange(n)
            show = sys.stderr.isatty() if progress is None else bool(progress)
            if show and epochs > 0:
                from tqdm import tqdm
                bar = tqdm(total=epochs, unit="epoch", desc="fit", leave=True)
            batch_callbacks = [cb for cb in callback_list
                               if type(cb).on_batch_end is not Callback.on_batch_end]

            for _ in range(epochs):
                epoch = self._epochs_trained + 1
                epoch_start = time.perf_counter()
                stats_epoch = record_stats and epoch % stats_every == 0
                if shuffle:
                    order = self._epoch_order(epoch, n)
                loss_sum, correct_sum, stopped = 0.0, 0.0, False
                for batch in range(steps_per_epoch):
                    if self._interrupted:
                        report.stop_reason = (f"interrupted (KeyboardInterrupt) at epoch {epoch}, "
                                              f"before batch {batch + 1} of {steps_per_epoch}")
                        stopped = True
                        break
                    lo = batch * batch_size
                    hi = min(lo + batch_size, n)
                    rows = hi - lo
                    ws = self._workspace(rows)
                    np.take(X_train, order[lo:hi], axis=0, out=ws.X)
                    yb = ws.y_int if y_buffer_is_int else ws.y_float
                    np.take(y_train, order[lo:hi], axis=0, out=yb)
                    self._step += 1
                    try:
                        self._forward(ws, ws.X, training=True)
                        batch_loss = self._loss(ws, yb, with_grad=True)
                        self._backward(ws, ws.X)
                    except KeyboardInterrupt:  # nothing was written to the weights yet
                        self._step -= 1
                        report.stop_reason = (f"interrupted (KeyboardInterrupt) at epoch {epoch}, "
                                              f"during batch {batch + 1} of {steps_per_epoch}")
                        stopped = True
                        break
                    if on_divergence != "ignore":
                        bad = [i for i in reversed(layer_indices)
                               if not (_core.all_finite(self._dW[i]) and _core.all_finite(self._db[i]))]
                        if bad or not math.isfinite(batch_loss):
                            self._step -= 1
                            self._mark_divergence(report, epoch, batch + 1, steps_per_epoch,
                                                  batch_loss, bad)
                            if on_divergence == "raise":
                                raise DivergenceError(report.stop_reason, report)
                            stopped = True
                            break
                    if stats_epoch and batch == steps_per_epoch - 1:
                        for i in layer_indices:
                            np.copyto(W_before[i], self.layers[i]._W)
                    self._update(hyper)
                    loss_sum += batch_loss * rows
                    correct_sum += self._count_correct(ws, yb)
                    if batch_callbacks:
                        logs = {"epoch": epoch, "batch": batch + 1, "step": self._step, "loss": batch_loss}
                        try:
                            for cb in batch_callbacks:
                                cb.on_batch_end(self._step, logs)
                        except KeyboardInterrupt:
                            report.stop_reason = (f"interrupted (KeyboardInterrupt) at epoch {epoch}, "
                                                  f"after batch {batch + 1} of {steps_per_epoch}")
                            stopped = True
                            break
                        if self.stop_training:
                            if report.stop_reason is None:
                                report.stop_reason = (f"stopped by a callback at epoch {epoch}, "
                                                      f"after batch {batch + 1} of {steps_per_epoch}")
                            stopped = True
                            break
                if stopped:
                    break
                # ---- end of a complete epoch -----------------------------------------------------
                self._epochs_trained = epoch
                entry: Dict[str, Any] = {"epoch": epoch, "loss": loss_sum / n, "accuracy": None,
                                         "val_loss": None, "val_accuracy": None, "seconds": 0.0}
                if self.output != "linear":
                    entry["accuracy"] = correct_sum / (n if self.output == "softmax" else n * self.output_dim)
                if X_val is not None:
                    entry["val_loss"], entry["val_accuracy"] = self._loss_and_correct(X_val, y_val)
                if stats_epoch:
                    t0 = time.perf_counter()
                    report.layer_stats.append(self._probe_statistics(X_probe, y_probe, epoch, W_before))
                    report.stats_seconds += time.perf_counter() - t0
                entry["seconds"] = time.perf_counter() - epoch_start
                report.history.append(entry)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in entry.items()
                                     if k in ("loss", "val_loss", "accuracy", "val_accuracy")
                                     and v is not None})
                try:
                    for cb in callback_list:
                        cb.on_epoch_end(epoch, entry)
                except KeyboardInterrupt:
                    report.stop_reason = f"interrupted (KeyboardInterrupt) after epoch {epoch}"
                    break
                if self.stop_training:
                    if report.stop_reason is None:
                        report.stop_reason = f"stopped by a callback after epoch {epoch}"
                    break
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if bar is not None:
                bar.close()
            report.train_seconds = time.perf_counter() - start_time
            for cb in callback_list:
                cb.on_fit_end()
        return report

    def _epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """The row order of `epoch` (1-based, counted over every fit): Philox keyed by the seed."""
        return np.random.Generator(np.random.Philox(key=self.seed, counter=epoch)).permutation(n)

    def _mark_divergence(self, report: Report, epoch: int, batch: int, steps: int, loss: float,
                         bad_layers: List[int]) -> None:
        where = f"epoch {epoch}, step {batch} of {steps} (optimizer step {self._step + 1})"
        if bad_layers:
            layers = (f"first non-finite gradient in layer {bad_layers[0]} (backward order; "
                      f"non-finite in layers {sorted(bad_layers)})")
        else:
            layers = "gradients finite"
        report.diverged = True
        report.divergence = {"epoch": epoch, "step": batch, "global_step": self._step + 1,
                             "loss": loss, "layer": bad_layers[0] if bad_layers else None,
                             "layers": sorted(bad_layers)}
        report.stop_reason = (f"diverged at {where}: loss {loss!r}, {layers}; "
                              f"weights kept from the last finite step")

    # ---- optimizers ------------------------------------------------------------------------------
    def _new_optimizer_state(self, name: str) -> Dict[str, Any]:
        params = [p for layer in self.layers for p in (layer._W, layer._b)]
        # step: optimizer steps taken (Adam's bias correction); started: SGD's momentum buffer exists.
        state: Dict[str, Any] = {"name": name, "step": 0, "started": False}
        if name == "sgd":
            state["buffers"] = [(np.zeros_like(p),) for p in params]
        elif name in ("adam", "adamw"):
            state["buffers"] = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        else:
            state["buffers"] = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        return state

    def _update(self, h: Dict[str, Any]) -> None:
        """One optimizer step on every parameter from self._dW, self._db (clipped first)."""
        grads, params = self._grads, self._params
        if h["clip_value"] is not None:
            for g in grads:
                _core.clip_by_value(g, h["clip_value"])
        if h["clip_norm"] is not None:
            total = math.sqrt(sum(_core.sum_of_squares(g) for g in grads))
            coef = h["clip_norm"] / (total + 1e-6)  # torch.nn.utils.clip_grad_norm_
            if coef < 1.0:
                for g in grads:
                    _core.scale(g, coef)
        state = self._optimizer
        state["step"] += 1
        name = state["name"]
        if name == "sgd":
            first = not state["started"]
            for p, g, (buf,) in zip(params, grads, state["buffers"]):
                _core.sgd_step(p, g, buf, lr=h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                               weight_decay=h["weight_decay"], nesterov=h["nesterov"], first_step=first)
            # torch creates the momentum buffer (= the first gradient) on the first step with
            # momentum != 0; plain SGD steps before that leave it uncreated.
            state["started"] = state["started"] or h["momentum"] != 0.0
        elif name in ("adam", "adamw"):
            beta1, beta2 = h["betas"]
            for p, g, (m, v) in zip(params, grads, state["buffers"]):
                _core.adam_step(p, g, m, v, lr=h["lr"], beta1=beta1, beta2=beta2, eps=h["eps"],
                                weight_decay=h["weight_decay"], step=state["step"],
                                decoupled=name == "adamw")
        else:
            for p, g, (sq, buf) in zip(params, grads, state["buffers"]):
                _core.rmsprop_step(p, g, sq, buf, lr=h["lr"], alpha=h["alpha"], eps=h["eps"],
                                   weight_decay=h["weight_decay"], momentum=h["momentum"])

    # ---- statistics ------------------------------------------------------------------------------
    def _probe_statistics(self, X_probe: np.ndarray, y_probe: np.ndarray, epoch: int,
                          W_before: Optional[List[np.ndarray]]) -> List[Dict[str, Any]]:
        """Per-layer statistics on the probe batch (eval mode): forward moments, gradient norms."""
        ws = self._workspace(X_probe.shape[0])
        self._forward(ws, X_probe, training=False)
        self._loss(ws, y_probe, with_grad=True)
        last = len(self.layers) - 1
        forward_stats = [_core.layer_stats(ws.Z[i], ws.A[i] if i < last else ws.P,
                                           "linear" if i == last else layer.activation,
                                           layer.act_param) for i, layer in enumerate(self.layers)]
        self._backward(ws, X_probe)
        rows = []
        for i, layer in enumerate(self.layers):
            weight_norm = math.sqrt(_core.sum_of_squares(layer._W))
            update_ratio = None
            if W_before is not None:
                update_ratio = _core.diff_norm(layer._W, W_before[i]) / weight_norm if weight_norm > 0 \
                    else math.inf
            s = forward_stats[i]
            rows.append({"epoch": epoch, "layer": i, "pre_mean": s["pre_mean"], "pre_std": s["pre_std"],
                         "act_mean": s["act_mean"], "act_std": s["act_std"],
                         "saturated": s["saturated"], "dead": s["dead"],
                         "grad_norm": math.sqrt(_core.sum_of_squares(self._dW[i])),
                         "weight_norm": weight_norm, "update_ratio": update_ratio})
        return rows

    # ---- diagnosis -------------------------------------------------------------------------------
    def diagnose(self, X: Any, y: Any = None, *, jacobian_samples: int = 4, seed: int = 0):
        """Per-layer health at the current weights and a verdict; see `initlab.diagnose`."""
        from ..inspect.diagnose import diagnose as _diagnose
        return _diagnose(self, X, y, jacobian_samples=jacobian_samples, seed=seed)

    # ---- persistence -----------------------------------------------------------------------------
    def _architecture_arrays(self) -> Dict[str, np.ndarray]:
        return {
            "format": np.array(FORMAT_NAME),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "initlab_version": np.array(_core.__version__),
            "dtype": np.array(self.dtype),
            "widths": np.array(self.widths, dtype=np.int64),
            "activations": np.array([layer.activation for layer in self.layers]),
            "activation_params": np.array([np.nan if layer.param is None else layer.param
                                           for layer in self.layers], dtype=np.float64),
            "dropout": np.array([layer.dropout for layer in self.layers], dtype=np.float64),
            "seed": np.array(self.seed, dtype=np.uint64),
            "steps": np.array([self._step, self._epochs_trained], dtype=np.int64),
        }

    @staticmethod
    def _checksum(arrays: Dict[str, np.ndarray]) -> str:
        digest = hashlib.sha256()
        for key in sorted(arrays):
            if key == "checksum":
                continue
            a = np.ascontiguousarray(arrays[key])
            digest.update(key.encode())
            digest.update(str(a.dtype).encode())
            digest.update(str(a.shape).encode())
            digest.update(a.tobytes())
        return digest.hexdigest()

    def save(self, path: "os.PathLike[str] | str") -> str:
        """Write architecture, weights, dtype and version to one .npz at exactly `path`, atomically
        (a temporary file in the same directory, fsync, os.replace). Optimizer state is not saved."""
        path, _ = target_path(path, "Network.save")
        arrays = self._architecture_arrays()
        for i, layer in enumerate(self.layers):
            arrays[f"W{i}"] = layer._W
            arrays[f"b{i}"] = layer._b
        arrays["checksum"] = np.array(self._checksum(arrays))
        with atomic_file(path, "Network.save", suffix=".npz.tmp") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: "os.PathLike[str] | str") -> "Network":
        """Read a file written by `save` (allow_pickle=False), validating keys, dtypes, shapes
        chained layer to layer, finiteness and the checksum; ValueError says what is wrong."""
        try:
            path = os.fspath(path)
        except TypeError:
            raise TypeError(f"Network.load: path must be a str or os.PathLike, got "
                            f"{type(path).__name__} {path!r}") from None
        where = f"Network.load({path!r})"
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError(f"{where}: not an .npz archive (a single .npy array)")
            with data:
                arrays = {key: data[key] for key in data.files}
        # zipfile also raises NotImplementedError (unknown compression or flags) and RuntimeError
        # (encrypted members) for a foreign or damaged archive.
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError,
                RuntimeError, zlib.error) as e:
            if isinstance(e, FileNotFoundError) or str(e).startswith(where):
                raise
            raise ValueError(f"{where}: not a readable initlab .npz file (truncated, corrupted or "
                             f"foreign): {type(e).__name__}: {e}") from None
        return cls._from_arrays(arrays, where)

    @classmethod
    def _from_arrays(cls, arrays: Dict[str, np.ndarray], where: str) -> "Network":
        required = ["format", "format_version", "initlab_version", "dtype", "widths", "activations",
                    "activation_params", "dropout", "seed", "steps", "checksum"]
        missing = [k for k in required if k not in arrays]
        if missing:
            raise ValueError(f"{where}: not an initlab network file: missing keys {missing}")
        if arrays["format"].shape != () or str(arrays["format"]) != FORMAT_NAME:
            raise ValueError(f"{where}: format is {arrays['format'].tolist()!r}, expected {FORMAT_NAME!r}")
        if arrays["format_version"].shape != () or int(arrays["format_version"]) != FORMAT_VERSION:
            raise ValueError(f"{where}: format_version {arrays['format_version'].tolist()!r} is not "
                             f"supported (this initlab reads {FORMAT_VERSION})")
        dtype = str(arrays["dtype"])
        if dtype not in DTYPES:
            raise ValueError(f"{where}: dtype {dtype!r} is not one of {DTYPES}")
        widths = arrays["widths"]
        if widths.dtype.kind not in "iu" or widths.ndim != 1 or widths.size < 2 or (widths < 1).any():
            raise ValueError(f"{where}: widths must be >= 2 positive ints, got {widths.tolist()!r}")
        n_layers = widths.size - 1
        expected = set(required) | {f"W{i}" for i in range(n_layers)} | {f"b{i}" for i in range(n_layers)}
        unexpected = sorted(set(arrays) - expected)
        missing = sorted(expected - set(arrays))
        if missing or unexpected:
            raise ValueError(f"{where}: keys do not match {n_layers} layers: missing {missing}, "
                             f"unexpected {unexpected}")
        acts = arrays["activations"]
        params = arrays["activation_params"]
        drops = arrays["dropout"]
        for key, a in (("activations", acts), ("activation_params", params), ("dropout", drops)):
            if a.shape != (n_layers,):
                raise ValueError(f"{where}: {key} must have shape ({n_layers},), got {a.shape}")
        if acts.dtype.kind != "U":
            raise ValueError(f"{where}: activations must be strings, got dtype {acts.dtype}")
        for i in range(n_layers):
            w_shape, b_shape = (int(widths[i]), int(widths[i + 1])), (int(widths[i + 1]),)
            for key, shape in ((f"W{i}", w_shape), (f"b{i}", b_shape)):
                a = arrays[key]
                if a.dtype != np.dtype(dtype):
                    raise ValueError(f"{where}: {key} has dtype {a.dtype}, the file says {dtype}")
                if a.shape != shape:
                    raise ValueError(f"{where}: {key} has shape {a.shape}, expected {shape} "
                                     f"(widths {widths.tolist()} chained layer to layer)")
                if not np.isfinite(a).all():
                    raise ValueError(f"{where}: {key} contains NaN or infinity")
        if arrays["checksum"].shape != () or str(arrays["checksum"]) != cls._checksum(arrays):
            raise ValueError(f"{where}: checksum mismatch: the contents were modified after saving")
        specs = []
        for i in range(n_layers):
            param = float(params[i])
            specs.append(Dense(int(widths[i + 1]), str(acts[i]), init="zeros", bias_init="zeros",
                               dropout=float(drops[i]) if i < n_layers - 1 else None,
                               param=None if math.isnan(param) else param))
        try:
            net = cls(specs, input_dim=int(widths[0]), seed=int(arrays["seed"]), dtype=dtype)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{where}: invalid architecture: {e}") from None
        for i, layer in enumerate(net.layers):
            np.copyto(layer._W, arrays[f"W{i}"])
            np.copyto(layer._b, arrays[f"b{i}"])
        steps = arrays["steps"]
        if steps.shape == (2,) and steps.dtype.kind in "iu":
            net._step, net._epochs_trained = int(steps[0]), int(steps[1])
        return net


# ---- LSUV ----------------------------------------------------------------------------------------
def lsuv(net: Network, X: Any, tol: float = 0.1, max_iter: int = 10, *,
         layers: Optional[Sequence[int]] = None) -> Network:
    """Layer-sequential unit-variance scaling (Mishkin & Matas 2016, "All you need is a good init").

    For each layer in order (or only `layers`): forward the batch X (dropout off) and divide W by
    the standard deviation of the layer's pre-activation output Z until |Var(Z) - 1| < tol, at most
    max_iter times. `init="lsuv"` draws orthogonal weights first (the paper's pre-initialization)
    and runs this on the first batch `fit` sees. Deterministic given the weights and X.
    Returns net (rescaled in place).
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be an initlab Network, got {type(net).__name__}")
    X = net._check_X(X)
    tol = _check_float("tol", tol, strict=True)
    max_iter = _check_int("max_iter", max_iter, 1)
    if layers is None:
        layers = range(len(net.layers))
    ws = net._workspace(X.shape[0])
    last = len(net.layers) - 1
    for i in layers:
        layer = net.layers[i]
        for _ in range(max_iter):
            net._forward(ws, X, training=False)
            s = _core.layer_stats(ws.Z[i], ws.A[i], "linear" if i == last else layer.activation,
                                  layer.act_param)
            std = s["pre_std"]
            if not math.isfinite(std) or std == 0.0 or abs(std * std - 1.0) < tol:
                break
            _core.scale(layer._W, 1.0 / std)
    return net
