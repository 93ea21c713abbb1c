"""Conv2d: a 2-D convolution over channels-last images, `Z = conv(X, W) + b`, `A = activation(Z)`,
then dropout in training."""
from __future__ import annotations

import math
import threading
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ... import _core
from .._checks import check_float, check_int, check_name
from ..activations import ACTIVATIONS
from .base import BIAS_STREAM, BuildContext, InitSpec, LayerBuffers, PassInfo, Shape
from .weighted import WeightedLayer

IntPair = Union[int, Tuple[int, int]]
PADDINGS = ("valid", "same")


def int_pair(name: str, value: Any, minimum: int) -> Tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (check_int(f"{name}[0]", value[0], minimum), check_int(f"{name}[1]", value[1], minimum))
    v = check_int(name, value, minimum)
    return (v, v)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> Tuple[int, int]:
    """TensorFlow's "same" along one axis: output ceil(size/stride); the total padding
    max((out-1)*stride + (kernel-1)*dilation + 1 - size, 0), the odd extra at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Scratch(threading.local):
    """The im2col workspace, one per thread and dtype, grown to the largest layer and reused.
    Sharing is safe: a convolution's backward lowers its input again instead of reading what its
    forward left there, and a thread runs one kernel at a time."""

    def __init__(self) -> None:
        self.buffers: Dict[str, np.ndarray] = {}

    def get(self, dtype: str, size: int) -> Optional[np.ndarray]:
        if size == 0:
            return None
        buf = self.buffers.get(dtype)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype=dtype)
            self.buffers[dtype] = buf
        return buf


_SCRATCH = _Scratch()

# Kept columns: a Conv2d's buffers for a batch of `rows` include the forward's im2col columns
# (rows*OH*OW*KH*KW*C elements) when that many elements are at most this, so that the backward reads
# them instead of lowering X again (the same bits). Off (0) by default: the backward that lowers X
# again, transposed to (K, P), is faster than dW := cols^T dZ on kept (P, K) columns, which the GEMM
# must read transposed (LeNet's conv2, 1 thread: 4.6 ms against 6.7 ms per batch of 32), and it
# saves the memory. A positive limit turns the option back on (the tests keep it exercised).
COLUMN_CACHE_LIMIT = 0


class Conv2d(WeightedLayer):
    """A 2-D convolution over (n, H, W, C) images (channels last), as `torch.nn.Conv2d` computes it:
    `F.conv2d(x.permute(0, 3, 1, 2), W.permute(3, 2, 0, 1), b, stride, padding, dilation)`.

    filters: output channels. kernel_size, stride, dilation: an int or a pair (rows, columns).
    padding: "valid" (none), "same" (Keras/TensorFlow: output ceil(in/stride), the odd extra row or
    column at the bottom/right), or an int or a pair (that many zeros on both sides, as PyTorch).
    activation/init/bias_init left None are the network's. `W` is (kh, kw, C_in, filters) (layout
    in_out: fans kh*kw*C_in and kh*kw*filters, so every initializer, `delta_orthogonal` and `dirac`
    included, draws a conv kernel right) and `b` is (filters,); both are live arrays.

    Kernels: `conv2d_forward` (im2col into a per-thread workspace, then the GEMM with bias and
    activation in its epilogue) and `conv2d_backward` (dZ, db, dW = cols^T dZ on X lowered again
    transposed, dX by col2im a few images at a time); the
    native twin (`_core.conv2d_layer`, conv_layer.hpp) runs the same kernels inside one sequence call.
    For batches of at most COLUMN_CACHE_LIMIT lowered elements (0 by default: off) the forward's
    columns stay in the layer's buffers and the backward reads them (`columns=`) instead of lowering
    X again: the same dot products in the same order, so the same bits.
    """

    type_name = "Conv2d"

    def __init__(self, filters: int, kernel_size: IntPair, *, stride: IntPair = 1,
                 padding: Union[str, IntPair] = "valid", dilation: IntPair = 1,
                 activation: Optional[str] = None, init: Optional[InitSpec] = None,
                 bias_init: Optional[InitSpec] = None, dropout: float = 0.0,
                 param: Optional[float] = None) -> None:
        super().__init__()
        self.filters = check_int("filters", filters, 1)
        self.kernel_size = int_pair("kernel_size", kernel_size, 1)
        self.stride = int_pair("stride", stride, 1)
        self.dilation = int_pair("dilation", dilation, 1)
        if isinstance(padding, str):
            check_name("padding", padding, PADDINGS)
            self.padding: Union[str, Tuple[int, int]] = padding
        else:
            try:
                self.padding = int_pair("padding", padding, 0)
            except TypeError:
                raise TypeError(f"padding must be 'valid', 'same', an int or a pair of ints, "
                                f"got {type(padding).__name__} {padding!r}") from None
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not valid for Conv2d; valid: {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.init = init
        self.bias_init = bias_init
        self.dropout = check_float("dropout", dropout, minimum=0.0, maximum=1.0, max_strict=True)
        self.param = None if param is None else check_float("param", param, minimum=-math.inf)
        self.pads: Optional[Tuple[int, int, int, int]] = None  # (top, bottom, left, right), once built
        self._W: Optional[np.ndarray] = None
        self._b: Optional[np.ndarray] = None
        self._dW: Optional[np.ndarray] = None
        self._db: Optional[np.ndarray] = None
        self._native = None
        self.init_name = ""
        self.bias_init_name = ""

    @property
    def kernel_activation(self) -> str:
        return self.activation

    @property
    def act_param(self) -> float:
        if self.param is not None:
            return self.param
        default = ACTIVATIONS.get(self.activation or "", None)
        return 0.0 if default is None else default

    def __repr__(self) -> str:
        pad = repr(self.padding) if isinstance(self.padding, str) else self.padding
        extra = "" if self.param is None else f", param={self.param}"
        drop = "" if not self.dropout else f", dropout={self.dropout}"
        return (f"Conv2d({self.filters}, {self.kernel_size}, stride={self.stride}, padding={pad}, "
                f"dilation={self.dilation}, activation={self.activation!r}{extra}{drop})")

    # ---- joining a network -----------------------------------------------------------------------
    def spec_copy(self) -> "Conv2d":
        return Conv2d(**self._spec_args())

    def _spec_args(self) -> Dict[str, Any]:
        return dict(filters=self.filters, kernel_size=self.kernel_size, stride=self.stride,
                    padding=self.padding, dilation=self.dilation, activation=self.activation,
                    init=self.init, bias_init=self.bias_init, dropout=self.dropout, param=self.param)

    def configure(self, ctx: BuildContext) -> None:
        super().configure(ctx)
        i = ctx.position
        if ctx.is_output:
            raise ValueError(f"Conv2d (layer {i}) cannot be the output layer: the loss needs flat rows; "
                             f"end with a Dense layer (after Flatten or GlobalAvgPool2d)")
        self.activation = self.activation or ctx.activation
        check_name(f"activation of layer {i}", self.activation, list(ACTIVATIONS))
        self._check_param(i)

    def _pads(self, input_shape: Shape) -> Tuple[int, int, int, int]:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            return same_padding(input_shape[0], kh, sh, dh) + same_padding(input_shape[1], kw, sw, dw)
        ph, pw = self.padding
        return (ph, ph, pw, pw)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        where = f"Conv2d (layer {self.index})"
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3:
            raise ValueError(f"{where} takes (H, W, C) images (channels last); got input shape {shape}"
                             + (" (a flat input has no channel axis)" if len(shape) == 1 else ""))
        top, bottom, left, right = self._pads(shape)
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        padded = (shape[0] + top + bottom, shape[1] + left + right)
        if span[0] > padded[0] or span[1] > padded[1]:
            raise ValueError(f"{where}: the kernel {self.kernel_size} with dilation {self.dilation} spans "
                             f"{span} pixels, larger than the input {shape[:2]} padded to {padded} "
                             f"(input shape {shape}, padding {self.padding!r})")
        out = _core.conv2d_output_shape((1,) + shape, (kh, kw, shape[2], self.filters), stride=self.stride,
                                        dilation=self.dilation, padding=(top, bottom, left, right))
        return tuple(int(v) for v in out[1:])

    def parameter_shapes(self, input_shape: Shape) -> List[Shape]:
        self.compute_output_shape(input_shape)  # the input's checks first: it must have a channel axis
        return [self.kernel_size + (int(input_shape[2]), self.filters), (self.filters,)]

    def build(self, input_shape: Shape) -> Shape:
        out = super().build(input_shape)
        ctx, i = self._ctx, self._ctx.position
        self.pads = self._pads(self.input_shape)
        w_shape = self.parameter_shapes(self.input_shape)[0]
        receptive = self.kernel_size[0] * self.kernel_size[1]
        fans = (receptive * w_shape[2], receptive * self.filters)
        self.init_name, self.bias_init_name = self._w_init.describe(), self._b_init.describe()
        self._W = self._w_init.draw(w_shape, ctx.seed, ctx.weight_index, ctx.dtype, fans, f"init (layer {i})")
        self._b = self._b_init.draw((self.filters,), ctx.seed, BIAS_STREAM + ctx.weight_index, ctx.dtype,
                                    fans, f"bias_init (layer {i})")
        self._dW = np.zeros_like(self._W)
        self._db = np.zeros_like(self._b)
        return out

    @property
    def fan_in(self) -> Optional[int]:
        return None if self._W is None else int(np.prod(self._W.shape[:3]))

    # ---- per batch ----------------------------------------------------------------------------
    def allocate(self, rows: int) -> LayerBuffers:
        shape, dt = (rows,) + tuple(self.output_shape), self.dtype
        Z = np.empty(shape, dtype=dt)
        cache = (Z, np.empty(shape, dtype=dt), np.empty(shape, dtype=dt)) if self.dropout else (Z,)
        lowered = self._workspace_size(rows)  # validates the geometry for this batch size once; 0: pointwise
        if 0 < lowered <= COLUMN_CACHE_LIMIT and _core.conv2d_forward_lowers(  # the forward's columns
                (rows,) + tuple(self.input_shape), self._W.shape, **self._geometry()):  # (rows, OH*OW*K)
            cache = cache + (np.empty((rows, lowered // rows), dtype=dt),)
        return LayerBuffers(np.empty(shape, dtype=dt), np.empty(shape, dtype=dt), cache)

    def _columns(self, buf: LayerBuffers) -> Optional[np.ndarray]:
        """The kept columns among buf's caches (None when allocate left them out)."""
        return buf.cache[-1] if len(buf.cache) == (4 if self.dropout else 2) else None

    def native(self, keep_columns: bool = False):
        """The native twin; with keep_columns its last cache buffer is the forward's columns."""
        if self._native is None:  # points into W, b, dW, db, which never change identity
            self._native = {}
        if keep_columns not in self._native:
            self._native[keep_columns] = _core.conv2d_layer(
                self._W, self._b, self._dW, self._db, self.input_shape, self.activation, self.act_param,
                stride=self.stride, dilation=self.dilation, padding=self.pads, dropout=self.dropout,
                stream=self.index, keep_columns=keep_columns)
        return self._native[keep_columns]

    def native_for(self, buf: LayerBuffers):
        return self.native(keep_columns=self._columns(buf) is not None)

    def _geometry(self) -> Dict[str, Any]:
        return dict(stride=self.stride, dilation=self.dilation, padding=self.pads)

    def _workspace_size(self, rows: int) -> int:
        return _core.conv2d_workspace_size((rows,) + tuple(self.input_shape), self._W.shape, **self._geometry())

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        Z = buf.cache[0]
        cols = self._columns(buf)
        ws = _SCRATCH.get(self.dtype, self._workspace_size(x.shape[0])) if cols is None else cols.reshape(-1)
        if pass_.training and self.dropout:
            A, mask = buf.cache[1], buf.cache[2]
            _core.conv2d_forward(x, self._W, self._b, Z, A, self.activation, self.act_param, workspace=ws,
                                 **self._geometry())
            np.copyto(buf.out, A)
            _core.dropout_forward(buf.out, mask, p=self.dropout, seed=pass_.seed, stream=self.index,
                                  step=pass_.step)
        else:
            _core.conv2d_forward(x, self._W, self._b, Z, buf.out, self.activation, self.act_param, workspace=ws,
                                 **self._geometry())

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        A = buf.out
        if pass_.training and self.dropout:
            _core.dropout_backward(buf.dout, buf.cache[2])
            A = buf.cache[1]
        cols = self._columns(buf)
        if cols is None:
            ws = _SCRATCH.get(self.dtype, self._workspace_size(x.shape[0]))
            _core.conv2d_backward(buf.dout, x, self._W, buf.cache[0], A, self.activation, self.act_param, self._dW,
                                  self._db, dx, workspace=ws, **self._geometry())
        else:  # the forward's columns: no second lowering; the workspace only takes dX's dcols
            P = buf.cache[0].shape[0] * buf.cache[0].shape[1] * buf.cache[0].shape[2]
            ws = None if dx is None else _SCRATCH.get(self.dtype, self._workspace_size(x.shape[0]))
            _core.conv2d_backward(buf.dout, x, self._W, buf.cache[0], A, self.activation, self.act_param, self._dW,
                                  self._db, dx, workspace=ws, columns=cols.reshape(P, -1), **self._geometry())

    # ---- instruments and persistence ------------------------------------------------------------
    def stats_row(self, buf: LayerBuffers, output: Optional[np.ndarray] = None) -> Dict[str, Any]:
        """Over batch, positions and channels; a dead unit is a channel zero on the whole batch."""
        Z = buf.cache[0].reshape(-1, self.filters)
        A = (buf.out if output is None else output).reshape(-1, self.filters)
        s = _core.layer_stats(Z, A, self.activation, self.act_param)
        dZ = buf.dout.reshape(-1, self.filters)
        grad = _core.layer_stats(dZ, dZ, "linear", 0.0)
        return {"activation": self.activation, "fan_in": self.fan_in,
                "fan_out": self.kernel_size[0] * self.kernel_size[1] * self.filters,
                "pre_mean": s["pre_mean"], "pre_std": s["pre_std"], "act_mean": s["act_mean"],
                "act_std": s["act_std"], "saturated": s["saturated"], "dead": s["dead"],
                "grad_norm": math.sqrt(_core.sum_of_squares(self._dW)), "grad_std": grad["pre_std"],
                "weight_norm": math.sqrt(_core.sum_of_squares(self._W))}

    def config(self) -> Dict[str, Any]:
        padding = self.padding if isinstance(self.padding, str) else list(self.padding)
        return {"filters": self.filters, "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": padding, "dilation": list(self.dilation), "activation": self.activation,
                "dropout": self.dropout, "param": self.param}

