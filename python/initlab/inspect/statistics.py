"""Per-layer rows: one forward (dropout off) and one backward pass at the current weights, then each
layer's own `stats_row`. `Report.layer_stats` (the training loop's probe batch) and `diagnose` both
read these rows, so both hold the same numbers for the same batch.

The output layer's act_mean/act_std are those of the output activation's values: probabilities for
softmax and sigmoid outputs, the values themselves for a linear (MSE) output; its row's
`output_activation` says which ("softmax", "sigmoid", "linear"), while its `activation` is the
kernel's ("linear": the output activation belongs to the loss).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

import numpy as np

from .. import _core

if TYPE_CHECKING:  # pragma: no cover
    from ..nn.network import Network

PROBE_KEYS = ("pre_mean", "pre_std", "act_mean", "act_std", "saturated", "dead", "grad_norm", "weight_norm")


def layer_rows(net: "Network", X: np.ndarray, y: Optional[np.ndarray] = None, *,
               grad_seed: int = 0) -> List[Dict[str, Any]]:
    """One row per layer with weights (`layer` = its position in net.layers; pooling and Flatten
    have no row) on the validated batch X. The backward pass starts
    from the loss gradient when y is given, else from a unit-variance Gaussian output gradient
    drawn with `grad_seed` (the loss enters only through its scale)."""
    ws = net._pass(X.shape[0])
    net._run_forward(ws, X, training=False)
    if y is not None:  # the loss writes the probabilities too
        net._run_loss(ws, y, with_grad=True)
        output = ws.logits if net.output == "linear" else ws.P
    else:
        ws.output_grad[...] = np.random.default_rng(grad_seed).standard_normal(ws.output_grad.shape)
        output = net._output_values(ws)
    net._run_backward(ws, X)
    last = len(net.layers) - 1
    rows = [dict(layer=i, **layer.stats_row(buf, output if i == last else None))
            for i, (layer, buf) in enumerate(zip(net.layers, ws.layers)) if layer.has_weights]
    rows[-1]["output_activation"] = net.output  # what its act_mean/act_std are of (see above)
    return rows


def probe_rows(net: "Network", X: np.ndarray, y: np.ndarray, epoch: int,
               weights_before: Optional[List[Optional[np.ndarray]]]) -> List[Dict[str, Any]]:
    """`Report.layer_stats` rows for one epoch: layer_rows on the probe batch, plus update_ratio =
    ||W - W_before||_F / ||W||_F (None without weights_before, at epoch 0)."""
    rows = []
    for row in layer_rows(net, X, y):
        layer = net.layers[row["layer"]]
        update_ratio = None
        if weights_before is not None and weights_before[row["layer"]] is not None:
            W = layer.parameters()[0][0]
            norm = row["weight_norm"]
            update_ratio = _core.diff_norm(W, weights_before[row["layer"]]) / norm if norm > 0 else float("inf")
        out = {"epoch": epoch, "layer": row["layer"]}
        out.update({k: row.get(k) for k in PROBE_KEYS})
        out["update_ratio"] = update_ratio
        rows.append(out)
    return rows
