"""Workspace: every buffer one forward/backward pass of N rows needs, allocated once and reused.

Per layer, its own LayerBuffers (`layers[i]`: out, dout, cache; the layer decides their shapes);
for the loss, P (N, K) probabilities, the label buffers the training loop gathers a batch into, and
the accuracy scratch; X (N, *input_shape) the batch itself and X_grad (dL/dX, for Jacobians).
`sequence` is the native twin of the layer stack bound to these buffers (one `_core` call per
forward), or None when some layer has no native twin (then each layer's forward runs in turn).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network


class Workspace:
    def __init__(self, net: "Network", rows: int) -> None:
        dt = net.dtype
        K = net.output_dim
        self.rows = rows
        self.X = np.empty((rows,) + tuple(net.input_shape), dtype=dt)
        self.layers = [layer.allocate(rows) for layer in net.layers]
        self.P = np.empty((rows, K), dtype=dt)
        self.y_int = np.empty((rows,), dtype=np.int64)
        self.y_float = np.empty((rows, K), dtype=dt)
        self.w = np.empty((rows,), dtype=dt)  # the batch's row weights (class_weight, sample_weight)
        self.y_dummy = np.zeros((rows,), dtype=np.int64)  # for softmax probabilities without labels
        self.X_grad = np.empty((rows,) + tuple(net.input_shape), dtype=dt)
        # Accuracy without allocating: predicted and true classes, and the hit mask.
        self.predicted = np.empty((rows,), dtype=np.int64)
        self.truth = np.empty((rows,), dtype=np.int64)
        self.hit = np.empty((rows,), dtype=bool)
        self.predicted_bits = np.empty((rows, K), dtype=bool)
        self.truth_bits = np.empty((rows, K), dtype=bool)
        natives = [layer.native_for(buf) for layer, buf in zip(net.layers, self.layers)]
        self.sequence = None
        if all(n is not None for n in natives):
            self.sequence = _core.LayerSequence(natives, [b.as_native() for b in self.layers], rows)
        self.last_training = False  # whether the last forward applied dropout (backward needs it)

    @property
    def logits(self) -> np.ndarray:
        """The output layer's out: (N, K) logits (pre-activation of the loss)."""
        return self.layers[-1].out

    @property
    def output_grad(self) -> np.ndarray:
        """dL/d(logits) (N, K): filled by the loss (or by a caller), read by the backward pass."""
        return self.layers[-1].dout
