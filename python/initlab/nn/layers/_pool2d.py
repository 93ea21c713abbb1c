"""What MaxPool2d and AvgPool2d share: a window and a stride over channels-last images, no padding,
the floor of the output size (as PyTorch)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from .base import Layer, Shape
from .conv2d import IntPair, int_pair


class _Pool2d(Layer):
    """The shared part: window and stride (default: the window), shape checks, config."""

    def __init__(self, pool_size: IntPair, stride: Optional[IntPair] = None) -> None:
        super().__init__()
        self.pool_size = int_pair("pool_size", pool_size, 1)
        self.stride = self.pool_size if stride is None else int_pair("stride", stride, 1)
        self._native = None  # the _core twin, made on first use

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pool_size}, stride={self.stride})"

    def spec_copy(self) -> "_Pool2d":
        return type(self)(self.pool_size, self.stride)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        where = f"{self.type_name} (layer {self.index})"
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3:
            raise ValueError(f"{where} takes (H, W, C) images (channels last); got input shape {shape}")
        if self.pool_size[0] > shape[0] or self.pool_size[1] > shape[1]:
            raise ValueError(f"{where}: the pool window {self.pool_size} is larger than the input "
                             f"{shape[:2]} (input shape {shape})")
        return ((shape[0] - self.pool_size[0]) // self.stride[0] + 1,
                (shape[1] - self.pool_size[1]) // self.stride[1] + 1, shape[2])

    def _geometry(self) -> Dict[str, Any]:
        return dict(pool=self.pool_size, stride=self.stride)

    def config(self) -> Dict[str, Any]:
        return {"pool_size": list(self.pool_size), "stride": list(self.stride)}
