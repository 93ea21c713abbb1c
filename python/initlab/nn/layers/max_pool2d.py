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
        shape = (rows,) + tuple(self.output_shape)
        return LayerBuffers(np.empty(shape, self.dtype), np.empty(shape, self.dtype),
                            (np.empty(shape, np.int64),))

    def forward(self, x: np.ndarray, buf: LayerBuffers, pass_: PassInfo) -> None:
        _core.max_pool2d_forward(x, buf.out, buf.cache[0], **self._geometry())

    def backward(self, x: np.ndarray, buf: LayerBuffers, dx: Optional[np.ndarray], pass_: PassInfo) -> None:
        if dx is not None:
            _core.max_pool2d_backward(buf.dout, buf.cache[0], dx, **self._geometry())
