"""MaxPool2d: the maximum of each window of channels-last images."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ... import _core
from ._pool2d import _Pool2d
from .base import LayerBuffers, PassInfo


class MaxPool2d(_Pool2d):
    """Max pooling, as `torch.nn.MaxPool2d(pool_size, stride)`: the gradient flows to the arg-max
    of each window (the first one on ties; overlapping windows add up)."""

    type_name = "MaxPool2d"

    def allocate(self, rows: int) -> LayerBuffers:
        # The cache holds the arg-max of each output as int64, seen through the network's float
        # dtype (8 / itemsize values per index) so that the native twin shares it (conv_layer.hpp).
        shape = (rows,) + tuple(self.output_shape)
        argmax = np.empty(shape, np.int64)
        return LayerBuffers(np.empty(shape, self.dtype), np.empty(shape, self.dtype),
                            (argmax.reshape(rows, -1).view(self.dtype),))

    @staticmethod
    def _argmax(buf: LayerBuffers) -> np.ndarray:
        return buf.cache[0].view(np.int64).reshape(buf.out.shape)

    def native(self):
        if self._native is None:
            self._native = _core.max_pool2d_layer(self.input_shape, pool=self.pool_size, stride=self.stride,
                                                  dtype=self.dtype)
        return self._native

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        _core.max_pool2d_forward(x, buf.out, self._argmax(buf), **self._geometry())

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        if dx is not None:
            _core.max_pool2d_backward(buf.dout, self._argmax(buf), dx, **self._geometry())
