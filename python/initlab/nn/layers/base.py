"""The layer interface: what a layer type provides so that `Network`, the training loop, the
instruments and persistence can use it without knowing its type.

A layer is first a *spec* (its constructor arguments, some of which may be left to the network),
then joins a network, which calls, in order:

    configure(ctx)                 take the network's defaults, validate, resolve initializers
    compute_output_shape(shape)    its output shape (per sample, NHWC or flat) from its input shape
    parameter_shapes(shape)        the shapes of its parameters (for the network's memory check)
    build(input_shape)             learn the input shape once, draw the parameters; -> output shape

and afterwards, per batch size, `allocate(rows)` once (its LayerBuffers) and, per batch,

    forward(x, buf, pass_)         x (N, *input_shape) -> buf.out (N, *output_shape)
    backward(x, buf, dx, pass_)    buf.dout -> parameter gradients, dx (or None)

`native()` gives the layer's C++ twin (cpp/include/initlab/layer.hpp) so that one `_core` call runs
the whole sequence; `forward`/`backward` are the same computation one layer at a time.
`parameters()` lists (param, grad) pairs for the optimizers, `stats_row` the layer's statistics,
`config()` what persistence writes (the constructor's keyword arguments, JSON-able).

Random streams: the i-th layer *with weights* (counted by the network) draws W with stream i and
b with stream 2**32 + i (`weight_index` in the context); dropout uses the layer's position.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple, Union

import numpy as np

BIAS_STREAM = 1 << 32
InitSpec = Union[str, Callable[..., np.ndarray], Tuple[str, Dict[str, Any]]]
Shape = Tuple[int, ...]


@dataclass
class BuildContext:
    """What a network tells each layer when it joins: its defaults and the layer's place."""
    seed: int
    dtype: str
    position: int            # index in net.layers (dropout stream, messages)
    weight_index: int        # how many layers with weights come before it (initializer streams)
    is_output: bool          # the last layer: its activation is the loss's
    activation: str          # the network's hidden activation
    output: Optional[str]    # the network's output activation (None: the last layer decides)
    init: InitSpec
    bias_init: InitSpec
    dropout: float


@dataclass
class PassInfo:
    """What a forward/backward pass needs besides data: training (dropout on) and the dropout
    counters (the network's seed, the optimizer step)."""
    training: bool = False
    seed: int = 0
    step: int = 0


class LayerBuffers:
    """One layer's buffers for one batch size: `out` (what the next layer reads), `dout` (dL/d out,
    overwritten by backward) and the layer's own `cache` (what forward keeps for backward)."""

    __slots__ = ("out", "dout", "cache")

    def __init__(self, out: np.ndarray, dout: np.ndarray, cache: Tuple[np.ndarray, ...]) -> None:
        self.out = out
        self.dout = dout
        self.cache = cache

    def as_native(self) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
        return (self.out, self.dout, list(self.cache))


class Layer:
    """Base class of every layer type (see the module docstring for the protocol)."""

    type_name: ClassVar[str] = ""       # the key in LAYERS and in saved files
    has_weights: ClassVar[bool] = False  # counts for the initializer streams
    parameter_names: ClassVar[Tuple[str, ...]] = ()  # names of parameters() in order (saved as name{i})

    def __init__(self) -> None:
        self.index: Optional[int] = None
        self.input_shape: Optional[Shape] = None
        self.output_shape: Optional[Shape] = None
        self.dtype: Optional[str] = None

    # ---- joining a network ---------------------------------------------------------------------
    def spec_copy(self) -> "Layer":
        """A fresh, unbuilt copy of this spec (a network never builds the user's own object)."""
        return type(self)(**self.config())

    def configure(self, ctx: BuildContext) -> None:
        self.index = ctx.position
        self.dtype = ctx.dtype
        self._ctx = ctx

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def parameter_shapes(self, input_shape: Shape) -> List[Shape]:
        return []

    def build(self, input_shape: Shape) -> Shape:
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    # ---- per batch -----------------------------------------------------------------------------
    def parameters(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        return []

    def allocate(self, rows: int) -> LayerBuffers:
        raise NotImplementedError

    def native(self) -> Any:
        """The `_core.Layer` twin, or None when this type runs only through forward/backward."""
        return None

    def native_for(self, buf: LayerBuffers) -> Any:
        """The native twin bound to these buffers (as `allocate` laid them out): `native()` unless
        the layer's cache layout depends on the batch size (Conv2d's kept columns)."""
        return self.native()

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        raise NotImplementedError

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        raise NotImplementedError

    # ---- instruments and persistence -----------------------------------------------------------
    def stats_row(self, buf: LayerBuffers, output: Optional[np.ndarray] = None) -> Dict[str, Any]:
        """Statistics of the last pass on `buf` (forward moments, gradient std, norms); `output`
        is the output activation's values for the last layer (probabilities, or Z for MSE)."""
        raise NotImplementedError

    def config(self) -> Dict[str, Any]:
        return {}

    def initializers(self) -> Dict[str, str]:
        """The initializers this layer's parameters were drawn with, by parameter name."""
        return {}

    def restore_initializers(self, names: Dict[str, str]) -> None:
        """A loaded layer remembers the initializers its saved parameters were drawn with."""
