"""`Network.summary()`: Keras' table of layers, output shapes and parameter counts.

>>> import initlab as il
>>> print(il.Network([64, 128, 10], activation="tanh", seed=0).summary())
Layer  Type   Activation  Output shape  Params
-----  -----  ----------  ------------  ------
0      Dense  tanh        (None, 128)    8,320
1      Dense  softmax     (None, 10)     1,290
-----  -----  ----------  ------------  ------
Total params: 9,610 (float32, 38.4 KB)
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

__all__ = ["Summary", "layer_parameters"]


def layer_parameters(layer: Any) -> List[np.ndarray]:
    """The parameter arrays of a layer (none for a layer without weights)."""
    if hasattr(layer, "parameters"):
        return [p for p, _ in layer.parameters()]
    return [layer._W, layer._b]


class Summary:
    """The summary of a network: `.rows` (one dict per layer: `layer, type, activation,
    output_shape, params`), `.total_params`; `str()` and `repr()` are the table."""

    def __init__(self, rows: Sequence[Dict[str, Any]], dtype: str) -> None:
        self.rows = list(rows)
        self.dtype = dtype
        self.total_params = int(sum(row["params"] for row in self.rows))

    @classmethod
    def of(cls, net: Any) -> "Summary":
        rows = []
        for i, layer in enumerate(net.layers):
            shape = getattr(layer, "output_shape", None)
            shape = tuple(shape) if shape is not None else (layer.units,)
            rows.append({"layer": i, "type": getattr(layer, "type_name", "") or type(layer).__name__,
                         "activation": getattr(layer, "activation", None),
                         "output_shape": (None,) + tuple(int(s) for s in shape),
                         "params": int(sum(p.size for p in layer_parameters(layer)))})
        return cls(rows, net.dtype)

    def __str__(self) -> str:
        header = ("Layer", "Type", "Activation", "Output shape", "Params")
        cells = [(str(r["layer"]), r["type"], r["activation"] or "-",
                  "(" + ", ".join(str(s) for s in r["output_shape"]) + ")", f"{r['params']:,}")
                 for r in self.rows]
        widths = [max(len(h), *(len(c[j]) for c in cells)) for j, h in enumerate(header)]

        def line(values):
            return "  ".join(v.rjust(w) if j == 4 else v.ljust(w)
                             for j, (v, w) in enumerate(zip(values, widths))).rstrip()

        rule = line(["-" * w for w in widths])
        size = self.total_params * np.dtype(self.dtype).itemsize
        lines = [line(header), rule] + [line(c) for c in cells] + [rule,
                 f"Total params: {self.total_params:,} ({self.dtype}, {_bytes(size)})"]
        return "\n".join(lines)

    __repr__ = __str__


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover
