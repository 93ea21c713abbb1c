"""Flatten: (n, H, W, C) -> (n, H*W*C) in channels-last order."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ... import _core
from .base import Layer, LayerBuffers, PassInfo, Shape


class Flatten(Layer):
    """Each sample's values in channels-last (row-major) order, as `x.reshape(n, -1)`; on a flat
    input it is the identity. (PyTorch's `nn.Flatten` on NCHW tensors orders them channels first.)"""

    type_name = "Flatten"

    def __init__(self) -> None:
        super().__init__()
        self._native = None  # the _core twin, made on first use

    def __repr__(self) -> str:
        return "Flatten()"

    def spec_copy(self) -> "Flatten":
        return Flatten()

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (int(np.prod(input_shape)),)

    def allocate(self, rows: int) -> LayerBuffers:
        shape = (rows,) + tuple(self.output_shape)
        return LayerBuffers(np.empty(shape, self.dtype), np.empty(shape, self.dtype), ())

    def native(self):
        if self._native is None:
            self._native = _core.flatten_layer(self.input_shape, dtype=self.dtype)
        return self._native

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        np.copyto(buf.out, x.reshape(buf.out.shape))

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        if dx is not None:
            np.copyto(dx, buf.dout.reshape(dx.shape))
