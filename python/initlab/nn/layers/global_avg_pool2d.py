"""GlobalAvgPool2d: the mean of each channel over all pixels, (n, H, W, C) -> (n, C)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ... import _core
from .base import Layer, LayerBuffers, PassInfo, Shape


class GlobalAvgPool2d(Layer):
    """Global average pooling, as `torch.nn.AdaptiveAvgPool2d(1)` followed by a flatten: the output
    (n, C) goes straight into a Dense layer."""

    type_name = "GlobalAvgPool2d"

    def __init__(self) -> None:
        super().__init__()
        self._native = None  # the _core twin, made on first use

    def __repr__(self) -> str:
        return "GlobalAvgPool2d()"

    def spec_copy(self) -> "GlobalAvgPool2d":
        return GlobalAvgPool2d()

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3:
            raise ValueError(f"GlobalAvgPool2d (layer {self.index}) takes (H, W, C) images (channels last); "
                             f"got input shape {shape}")
        return (shape[2],)

    def allocate(self, rows: int) -> LayerBuffers:
        shape = (rows,) + tuple(self.output_shape)
        return LayerBuffers(np.empty(shape, self.dtype), np.empty(shape, self.dtype), ())

    def native(self):
        if self._native is None:
            self._native = _core.global_avg_pool2d_layer(self.input_shape, dtype=self.dtype)
        return self._native

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        _core.global_avg_pool2d_forward(x, buf.out)

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        if dx is not None:
            _core.global_avg_pool2d_backward(buf.dout, dx)
