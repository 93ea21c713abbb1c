"""Networks on the native kernels: `Network` (a sequence of layers plus the loss), `lsuv`.

Python orchestrates; every per-element or per-batch computation is a `_core` kernel call on
buffers that are allocated once per batch size (workspace.py):

    forward   one LayerSequence.forward call over every layer (layer.hpp; Dense: GEMM + bias +
              activation, dropout in training)
    loss      softmax_cross_entropy | sigmoid_binary_cross_entropy | mean_squared_error (+ dZ)
    backward  each layer's backward in reverse (Dense: dZ = dA*act'(Z), dW = X^T dZ, db = sum dZ,
              dX = dZ W^T)
    update    optimizers.py (clip, then sgd_step | adam_step | rmsprop_step)

The training loop is training.py, persistence persistence.py, the layer types layers/.

Random streams (one seed per network; Philox counters never overlap between uses):
    W of the i-th layer with weights: stream i;  its b: stream 2**32 + i;  dropout of layer i: the
    dropout kernel's own counters (tagged apart from the initializers') with stream i and the
    global optimizer step. Shuffling uses numpy's Philox bit generator keyed by (seed, epoch
    number), so one seed fixes the whole run on any thread count.

Internal API for the instruments (inspect/) and the training loop; the public API never needs it:
    net._prepare(X, y=None)         validated (X, y) as the kernels read them
    net._pass(rows)                 the Workspace for a batch of `rows`
    net._run_forward(ws, X, training=False)
    net._run_loss(ws, y, with_grad) mean loss of ws.logits; probabilities to ws.P; dL/dlogits to
                                    ws.output_grad when with_grad
    net._run_backward(ws, X, need_dX=False)   from ws.output_grad down; dL/dX to ws.X_grad
    net._output_values(ws)          the output activation's values (N, K) after a forward
    net._activations(X)             a copy of every layer's output on X (dropout off), in layer
                                    order, from the forward above (the last is the logits)

>>> import initlab as il, numpy as np
>>> X = np.random.default_rng(0).normal(size=(256, 8)).astype(np.float32)
>>> y = (X[:, 0] > 0).astype(np.int64)
>>> net = il.Network([8, 32, 2], activation="relu", output="softmax", seed=0)
>>> report = net.fit(X, y, epochs=20, optimizer="adam", lr=0.01, progress=False)
>>> net.evaluate(X, y)["accuracy"] > 0.95
True
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .. import init as init_module
from ..init.random import check_seed, fresh_seed
from ..inspect.report import Report
from . import persistence, training
from ._checks import check_float, check_int, check_name, kernel_input
from .activations import ACTIVATIONS, OUTPUTS
from .labels import as_labels, check_sample_weight, decode_labels, default_classes, encode_labels
from .layers import BuildContext, Dense, Layer, PassInfo
from .layers.base import InitSpec, Shape
from .metrics import accuracy, r2_score
from .optimizers import OPTIMIZERS
from .summary import Summary
from .training import DIVERGENCE_POLICIES, DivergenceError
from .workspace import Workspace

DTYPES = ("float32", "float64")
EVAL_CHUNK = 2048          # rows per forward chunk in predict/evaluate/loss
MAX_WORKSPACES = 4         # batch sizes whose buffers are kept (train, last partial, probe, eval)

__all__ = ["Network", "Dense", "DivergenceError", "lsuv", "ACTIVATIONS", "OUTPUTS", "OPTIMIZERS",
           "DIVERGENCE_POLICIES", "DTYPES"]


def _check_network_memory(parameters: int, widths: List[int], dtype: str) -> None:
    """MemoryError before the first weight is drawn when the weights and their gradient buffers
    alone need more than this machine's physical memory (each layer on its own may fit, so the
    per-array check of il.init would only fail half-way, after gigabytes were filled)."""
    nbytes = 2 * parameters * np.dtype(dtype).itemsize  # parameters and their gradients
    physical = init_module.physical_memory()
    if nbytes > physical:
        raise MemoryError(f"Network: widths {widths} in {dtype} need {nbytes} bytes for the "
                          f"weights and their gradients, more than this machine's {physical} bytes "
                          f"of memory")


def _as_input_shape(input_dim: Any, input_shape: Any) -> Optional[Shape]:
    if input_shape is None:
        return None if input_dim is None else (check_int("input_dim", input_dim, 1),)
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = (input_shape,)
    if not dims:
        raise ValueError(f"input_shape must hold at least one dimension, got {input_shape!r}")
    shape = tuple(check_int(f"input_shape[{d}]", v, 1) for d, v in enumerate(dims))
    if input_dim is not None and check_int("input_dim", input_dim, 1) != math.prod(shape):
        raise ValueError(f"input_dim={input_dim} contradicts input_shape={shape}")
    return shape


class Network:
    """A sequence of layers plus a loss, trained with the native kernels (see the module docstring).

    Parameters
    ----------
    layers: widths `[n_in, h1, ..., n_out]` (Dense layers), or a list of layer specs (`Dense`, ...;
        then `input_dim=` or `input_shape=` is required).
    activation: hidden activation, one of `ACTIVATIONS` (PyTorch definitions).
    output: `"softmax"` (cross-entropy), `"sigmoid"` (binary cross-entropy) or `"linear"` (MSE).
    init, bias_init: an initializer name from `il.init.names()`, `(name, params)` such as
        `("normal", {"std": 1.0})`, a callable `(shape, seed, stream) -> ndarray`, or `"lsuv"`.
    seed: int in [0, 2**64) or None (fresh entropy, recorded in `net.seed`).
    dtype: "float32" or "float64".
    dropout: default dropout rate of hidden layers (a Dense spec may set its own).
    input_dim / input_shape: the width of a flat input, or the per-sample shape (H, W, C).
    """

    def __init__(self, layers: Sequence[Union[int, Layer]], activation: str = "relu",
                 output: Optional[str] = None, init: InitSpec = "he_normal",
                 bias_init: InitSpec = "zeros", seed: Optional[int] = None, dtype: str = "float32",
                 *, input_dim: Optional[int] = None, dropout: float = 0.0,
                 input_shape: Optional[Sequence[int]] = None) -> None:
        if isinstance(dtype, type) or isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype).name
        self.dtype = check_name("dtype", dtype, DTYPES)
        check_name("activation", activation, list(ACTIVATIONS))
        if output is not None:
            check_name("output", output, list(OUTPUTS))
        dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0, max_strict=True)
        self.seed = fresh_seed() if seed is None else check_seed(seed)
        specs, shape = self._specs(layers, input_dim, input_shape, output)
        self.input_shape: Shape = shape
        self.layers: List[Layer] = specs
        self._build(activation, output, init, bias_init, dropout)
        self.output = self.layers[-1].activation
        self.output_dim = math.prod(self.layers[-1].output_shape)
        if self.output == "softmax":  # scikit-learn's classes_: a fit on other labels replaces it
            self.classes_ = default_classes(self.output_dim)
        self.stop_training = False
        # The arrays never change identity (assignments copy into them): list them once.
        pairs = [pair for layer in self.layers for pair in layer.parameters()]
        self._params = [p for p, _ in pairs]
        self._grads = [g for _, g in pairs]
        self._workspaces: "OrderedDict[int, Workspace]" = OrderedDict()
        self._optimizer: Optional[Dict[str, Any]] = None
        self._step = 0            # optimizer steps taken over every fit (dropout masks, Adam)
        self._epochs_trained = 0  # epochs completed over every fit (shuffling, epoch numbers)
        self._interrupted = False

    @staticmethod
    def _specs(layers: Any, input_dim: Any, input_shape: Any, output: Optional[str]) -> Tuple[List[Layer], Shape]:
        """Fresh layer objects (the caller's specs are never built) and the input shape."""
        try:
            specs = list(layers)
        except TypeError:
            raise TypeError(f"layers must be a list of widths or layer specs, got "
                            f"{type(layers).__name__}") from None
        if specs and all(isinstance(s, Layer) for s in specs):
            shape = _as_input_shape(input_dim, input_shape)
            if shape is None:
                raise ValueError("input_dim is required when layers are layer specs (or input_shape= for images)")
            fresh = [s.spec_copy() for s in specs]
            last = fresh[-1]
            out_act = getattr(last, "activation", None)
            out_act = out_act if out_act is not None else (output or "softmax")
            if output is not None and out_act != output:
                raise ValueError(f"output={output!r} contradicts the last Dense's activation {out_act!r}")
            if hasattr(last, "activation"):
                last.activation = out_act
            return fresh, shape
        if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in specs):
            if len(specs) < 2:
                raise ValueError(f"layers must hold at least [n_in, n_out], got {specs!r}")
            for i, width in enumerate(specs):
                check_int(f"layers[{i}]", width, 1)
            if input_dim is not None and input_dim != specs[0]:
                raise ValueError(f"input_dim={input_dim} contradicts layers[0]={specs[0]}")
            if input_shape is not None and _as_input_shape(None, input_shape) != (int(specs[0]),):
                raise ValueError(f"input_shape={input_shape!r} contradicts layers[0]={specs[0]}")
            fresh = [Dense(int(w)) for w in specs[1:]]
            fresh[-1].activation = output or "softmax"
            return fresh, (int(specs[0]),)
        raise TypeError(f"layers must be all ints (widths) or all layer specs, got {specs!r}")

    def _build(self, activation: str, output: Optional[str], init: InitSpec, bias_init: InitSpec,
               dropout: float) -> None:
        """configure every layer (defaults, validation, initializers resolved: a bad name fails
        before anything is drawn), check memory, then build (draw) in order."""
        weight_index = 0
        for i, layer in enumerate(self.layers):
            layer.configure(BuildContext(
                seed=self.seed, dtype=self.dtype, position=i, weight_index=weight_index,
                is_output=i == len(self.layers) - 1, activation=activation, output=output, init=init,
                bias_init=bias_init, dropout=dropout))
            weight_index += int(layer.has_weights)
        if not isinstance(self.layers[-1], Dense) or self.layers[-1].activation not in OUTPUTS:
            raise ValueError(f"the last layer must be a Dense with an output activation "
                             f"({', '.join(OUTPUTS)}), got {self.layers[-1]!r}")
        resolved = [layer.resolve_initializers() for layer in self.layers
                    if hasattr(layer, "resolve_initializers")]
        if any(b.lsuv for _, b in resolved):
            raise ValueError("bias_init='lsuv' is not valid: LSUV scales weights; use 'zeros'")
        shape, widths, count = self.input_shape, [math.prod(self.input_shape)], 0
        for layer in self.layers:
            count += sum(math.prod(s) for s in layer.parameter_shapes(shape))
            shape = layer.compute_output_shape(shape)
            widths.append(math.prod(shape))
        _check_network_memory(count, widths, self.dtype)
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape)
        # Layers still waiting for LSUV's data-dependent scaling (done on the first batch fit sees).
        self._lsuv_pending = [i for i, layer in enumerate(self.layers) if getattr(layer, "needs_lsuv", False)]

    # ---- description --------------------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    @property
    def widths(self) -> List[int]:
        return [self.input_dim] + [math.prod(layer.output_shape) for layer in self.layers]

    def __repr__(self) -> str:
        acts = [getattr(layer, "activation", None) for layer in self.layers]
        return (f"Network(widths={self.widths}, activations={acts}, dtype={self.dtype!r}, "
                f"seed={self.seed})")

    def get_weights(self, out: Optional[list] = None) -> List[np.ndarray]:
        """Copies of [W0, b0, W1, b1, ...]; `out` (a previous result) is refilled in place."""
        if out is None:
            return [a.copy() for a in self._params]
        for dst, src in zip(out, self._params):
            np.copyto(dst, src)
        return out

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy [W0, b0, W1, b1, ...] into the network (shapes checked before anything is written)."""
        arrays = self._params
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
        shape = tuple(self.input_shape)
        if isinstance(X, np.ndarray) and X.dtype == self.dtype and X.flags.c_contiguous \
                and X.flags.aligned and X.shape[1:] == shape:
            arr = X
        else:
            arr = np.asarray(X)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
            if len(shape) == 1:
                if arr.ndim != 2:
                    raise ValueError(f"{name} must be 2-D (n_samples, {self.input_dim}), got shape {arr.shape}")
                if arr.shape[1] != self.input_dim:
                    raise ValueError(f"{name} must have {self.input_dim} columns (the input width), "
                                     f"got shape {arr.shape}")
            elif arr.shape[1:] != shape:
                raise ValueError(f"{name} must have shape (n_samples, {', '.join(map(str, shape))}), "
                                 f"got {arr.shape}")
            arr = kernel_input(arr, self.dtype)
        if arr.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {arr.shape}): at least one sample is needed")
        if not _core.all_finite(arr):
            raise ValueError(f"{name} contains NaN or infinity")
        return arr

    def _check_y(self, y: Any, n: int, name: str = "y", classes: Optional[np.ndarray] = None) -> np.ndarray:
        """Labels in the form the loss kernel takes: int64 (n,) or float (n, K) for softmax,
        float (n, K) for sigmoid and linear outputs. Softmax labels that are not numbers are mapped
        to their columns through `classes` (default: classes_); an unknown one is a ValueError."""
        if self.output == "softmax":
            y = as_labels(y, name)
            codes = encode_labels(y, self.classes_ if classes is None else classes, name)
            if codes is not None:
                y = codes
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
                return kernel_input(arr, np.int64)
            if arr.ndim == 2 and arr.shape[1] == K:
                if arr.size and (arr.min() < 0 or arr.max() > 1 or
                                 np.abs(arr.sum(axis=1) - 1).max() > 1e-3):
                    raise ValueError(f"{name}: one-hot / probability targets must lie in [0, 1] "
                                     f"with rows summing to 1")
                return kernel_input(arr, self.dtype)
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
        out = kernel_input(arr, self.dtype)
        if not np.isfinite(out).all():  # finite in float64, but past float32's range
            raise ValueError(f"{name} has values beyond the range of {self.dtype}")
        return out

    # ---- internal API for the training loop and the instruments (see the module docstring) ------
    def _prepare(self, X: Any, y: Any = None,
                 classes: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        X = self._check_X(X)
        return X, (None if y is None else self._check_y(y, X.shape[0], classes=classes))

    def _pass(self, rows: int) -> Workspace:
        ws = self._workspaces.get(rows)
        if ws is None:
            ws = Workspace(self, rows)
            self._workspaces[rows] = ws
            while len(self._workspaces) > MAX_WORKSPACES:
                self._workspaces.popitem(last=False)
        else:
            self._workspaces.move_to_end(rows)
        return ws

    def _run_forward(self, ws: Workspace, X: np.ndarray, training: bool = False) -> None:
        """Every layer's out (and caches) from X (N rows of ws); dropout masks when training."""
        step = self._step & 0xFFFFFFFF
        if ws.sequence is not None:
            ws.sequence.forward(X, training, self.seed, step)  # positional: no keyword parsing per batch
        else:
            pass_ = PassInfo(training, self.seed, step)
            inp = X
            for layer, buf in zip(self.layers, ws.layers):
                layer.forward(inp, buf, pass_)
                inp = buf.out
        ws.last_training = training

    def _run_loss(self, ws: Workspace, y: np.ndarray, with_grad: bool, labels_checked: bool = False,
                  weights: Optional[np.ndarray] = None) -> float:
        """Mean loss of the logits; probabilities to ws.P; dL/dlogits to ws.output_grad if asked.
        labels_checked: y's integer labels were range-checked already (fit checks them once).
        With row `weights` (N,): sum w_i l_i / sum w_i and its gradient (loss.hpp)."""
        Z, dZ = ws.logits, (ws.output_grad if with_grad else None)
        if self.output == "softmax":
            return _core.softmax_cross_entropy(Z, y, ws.P, dZ, weights, labels_checked=labels_checked)
        if self.output == "sigmoid":
            return _core.sigmoid_binary_cross_entropy(Z, y, ws.P, dZ, weights)
        return _core.mean_squared_error(Z, y, dZ, weights)

    def _run_backward(self, ws: Workspace, X: np.ndarray, need_dX: bool = False) -> None:
        """From ws.output_grad: every layer's parameter gradients; each ws.layers[i].dout ends
        holding dL/d(pre-activation) of its layer. With need_dX, dL/dX lands in ws.X_grad."""
        pass_ = PassInfo(ws.last_training, self.seed, self._step & 0xFFFFFFFF)
        layers, bufs = self.layers, ws.layers
        for i in range(len(layers) - 1, 0, -1):
            layers[i].backward(bufs[i - 1].out, bufs[i], bufs[i - 1].dout, pass_)
        layers[0].backward(X, bufs[0], ws.X_grad if need_dX else None, pass_)

    def _output_values(self, ws: Workspace, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The output activation of the logits (softmax/sigmoid probabilities, or the values of a
        linear output) into `out` (default ws.P), after a forward."""
        out = ws.P if out is None else out
        if self.output == "softmax":
            _core.softmax_cross_entropy(ws.logits, ws.y_dummy, out, None)
        elif self.output == "sigmoid":
            _core.activation_forward(ws.logits, out, "sigmoid", 0.0)
        else:
            np.copyto(out, ws.logits)
        return out

    def _activations(self, X: np.ndarray) -> List[np.ndarray]:
        """A copy of each layer's output on X (validated, dropout off), in `self.layers` order:
        the buffers the network's own forward writes (Dense: act(XW + b); the last is the logits)."""
        X = self._check_X(X)
        ws = self._pass(X.shape[0])
        self._run_forward(ws, X, training=False)
        return [buf.out.copy() for buf in ws.layers]

    def _chunks(self, n: int, chunk: int = EVAL_CHUNK):
        for start in range(0, n, chunk):
            yield start, min(start + chunk, n)

    # ---- public inference API --------------------------------------------------------------------
    def forward(self, X: Any) -> np.ndarray:
        """Output activations (n, K): probabilities for softmax/sigmoid, values for linear."""
        X = self._check_X(X)
        out = np.empty((X.shape[0], self.output_dim), dtype=self.dtype)
        for start, stop in self._chunks(X.shape[0]):
            ws = self._pass(stop - start)
            self._run_forward(ws, X[start:stop], training=False)
            self._output_values(ws, out[start:stop])
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Labels (softmax: argmax, int64 (n,); sigmoid: probability > 0.5, int64 (n, K), or (n,)
        when K == 1) or values (linear: (n, K))."""
        out = self.forward(X)
        if self.output == "softmax":  # the labels of classes_ (int64 0..K-1 unless fit saw others)
            return decode_labels(out.argmax(axis=1), self.classes_)
        if self.output == "sigmoid":
            labels = (out > 0.5).astype(np.int64)
            return labels[:, 0] if self.output_dim == 1 else labels
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, K): `forward` of a softmax or sigmoid output (softmax columns in
        the order of classes_)."""
        if self.output == "linear":
            raise AttributeError("predict_proba is for softmax or sigmoid outputs; this network's "
                                 "output is linear (use predict)")
        return self.forward(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """scikit-learn's score: `evaluate`'s accuracy for softmax and sigmoid outputs (per element
        for sigmoid), R^2 (sklearn.metrics.r2_score) for a linear output; `sample_weight` (n,)
        weighs rows as scikit-learn's metrics do."""
        if sample_weight is None and self.output != "linear":
            return self.evaluate(X, y)["accuracy"]
        X, y = self._prepare(X, y)
        w = None
        if sample_weight is not None:
            w = check_sample_weight(sample_weight, X.shape[0])
            if not w.sum() > 0:
                raise ValueError(f"sample_weight: the weights of all {w.size} rows sum to 0; a score "
                                 f"needs some weight")
        out = self.forward(X)
        if self.output == "linear":
            return r2_score(y, out, w)
        if self.output == "softmax":
            return accuracy(out.argmax(axis=1) == (y if y.ndim == 1 else y.argmax(axis=1)), w)
        return accuracy((out > 0.5) == (y > 0.5), w)

    def count_params(self) -> int:
        """The number of trainable parameters (every layer's W and b)."""
        return sum(int(p.size) for p in self._params)

    def summary(self) -> Summary:
        """Keras' summary: a table of layers, output shapes and parameter counts (`str()` of the
        result, which is also its repr); `.rows` and `.total_params` hold the numbers."""
        return Summary.of(self)

    def _loss_and_correct(self, X: np.ndarray, y: np.ndarray) -> Tuple[float, Optional[float]]:
        """Mean loss and accuracy over all rows, in chunks (eval mode)."""
        n = X.shape[0]
        total_loss, correct = 0.0, 0.0
        for start, stop in self._chunks(n):
            ws = self._pass(stop - start)
            self._run_forward(ws, X[start:stop], training=False)
            total_loss += self._run_loss(ws, y[start:stop], with_grad=False) * (stop - start)
            correct += self._count_correct(ws, y[start:stop])
        accuracy = None if self.output == "linear" else correct / (n if self.output == "softmax"
                                                                    else n * self.output_dim)
        return total_loss / n, accuracy

    def _count_correct(self, ws: Workspace, y: np.ndarray) -> float:
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
        """[(dW, db)] per layer with weights: gradients of `loss(X, y)` (one batch of all rows,
        dropout off)."""
        X = self._check_X(X)
        y = self._check_y(y, X.shape[0])
        ws = self._pass(X.shape[0])
        self._run_forward(ws, X, training=False)
        self._run_loss(ws, y, with_grad=True)
        self._run_backward(ws, X)
        return [tuple(g.copy() for _, g in layer.parameters()) for layer in self.layers if layer.parameters()]

    # ---- training --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, epochs: int = 10, batch_size: int = 32, optimizer: str = "sgd",
            lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
            betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
            clip_value: Optional[float] = None, clip_norm: Optional[float] = None,
            validation_data: Optional[Tuple[Any, Any]] = None, validation_split: float = 0.0,
            shuffle: bool = True, stats_every: int = 1, on_divergence: str = "stop",
            progress: Optional[bool] = None, callbacks: Sequence[Any] = (),
            dampening: float = 0.0, alpha: float = 0.99, probe_size: Optional[int] = None,
            lr_schedule: Any = None, class_weight: Any = None, sample_weight: Any = None) -> Report:
        return training.fit(self, X, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
                            momentum=momentum, nesterov=nesterov, betas=betas, eps=eps,
                            weight_decay=weight_decay, clip_value=clip_value, clip_norm=clip_norm,
                            validation_data=validation_data, validation_split=validation_split,
                            shuffle=shuffle, stats_every=stats_every, on_divergence=on_divergence,
                            progress=progress, callbacks=callbacks, dampening=dampening, alpha=alpha,
                            probe_size=probe_size, lr_schedule=lr_schedule, class_weight=class_weight,
                            sample_weight=sample_weight)

    fit.__doc__ = training.fit.__doc__

    def _epoch_order(self, epoch: int, n: int) -> np.ndarray:
        """The row order of `epoch` (1-based, counted over every fit): Philox keyed by the seed."""
        return np.random.Generator(np.random.Philox(key=self.seed, counter=epoch)).permutation(n)

    def _apply_pending_lsuv(self, first_batch: np.ndarray) -> None:
        """init="lsuv": scale the pending layers on the first batch fit sees (once)."""
        if self._lsuv_pending:
            lsuv(self, first_batch, layers=self._lsuv_pending)
            self._lsuv_pending = []

    # ---- diagnosis -------------------------------------------------------------------------------
    def diagnose(self, X: Any, y: Any = None, *, jacobian_samples: int = 4, seed: int = 0):
        """Per-layer health at the current weights and a verdict; see `initlab.diagnose`."""
        from ..inspect.diagnose import diagnose as _diagnose
        return _diagnose(self, X, y, jacobian_samples=jacobian_samples, seed=seed)

    # ---- PyTorch (il.torch; torch is imported only here, on use) ---------------------------------
    def to_torch(self):
        """An `nn.Sequential` of Linear + activation (+ Dropout) modules ending in the logits, in
        this net's dtype: `softmax(model(x))` equals `net.forward(X)`. See `il.torch.to_torch`."""
        from ..torch import to_torch
        return to_torch(self)

    @classmethod
    def from_torch(cls, sequential, output: str = "softmax", *, input_shape=None, **kwargs) -> "Network":
        """The Network computing `sequential` (the inverse of `to_torch`); `output` names the
        output activation and loss; a CNN needs `input_shape=(H, W, C)`. See `il.torch.from_torch`."""
        from ..torch import from_torch
        return from_torch(sequential, output, input_shape=input_shape, **kwargs)

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path: "os.PathLike[str] | str") -> str:
        """Write the network to one .npz at exactly `path`, atomically (see persistence.py)."""
        return persistence.save(self, path)

    @classmethod
    def load(cls, path: "os.PathLike[str] | str") -> "Network":
        """Read a file written by `save` (allow_pickle=False), validating keys, dtypes, shapes
        chained layer to layer, finiteness and the checksum; ValueError says what is wrong."""
        return persistence.load(cls, path)


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
    tol = check_float("tol", tol, strict=True)
    max_iter = check_int("max_iter", max_iter, 1)
    if layers is None:
        layers = [i for i, layer in enumerate(net.layers) if layer.has_weights]
    ws = net._pass(X.shape[0])
    for i in layers:
        layer = net.layers[i]
        W = layer.parameters()[0][0]
        for _ in range(max_iter):
            net._run_forward(ws, X, training=False)
            std = layer.stats_row(ws.layers[i])["pre_std"]
            if not math.isfinite(std) or std == 0.0 or abs(std * std - 1.0) < tol:
                break
            _core.scale(W, 1.0 / std)
    return net
