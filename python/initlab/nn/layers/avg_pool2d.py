"""AvgPool2d: the mean of each window of channels-last images."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ... import _core
from ._pool2d import _Pool2d
from .base import LayerBuffers, PassInfo


class AvgPool2d(_Pool2d):
    """Average pooling, as `torch.nn.AvgPool2d(pool_size, stride)`."""

    type_name = "AvgPool2d"

    def allocate(self, rows: int) -> LayerBuffers:
        shape = (rows,) + tuple(self.output_shape)
        return LayerBuffers(np.empty(shape, self.dtype), np.empty(shape, self.dtype), ())

    def native(self):
        if self._native is None:
            self._native = _core.avg_pool2d_layer(self.input_shape, pool=self.pool_size, stride=self.stride,
                                                  dtype=self.dtype)
        return self._native

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        _core.avg_pool2d_forward(x, buf.out, **self._geometry())

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        if dx is not None:
            _core.avg_pool2d_backward(buf.dout, dx, **self._geometry())
