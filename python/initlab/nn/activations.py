"""The activations a layer may use, and the output activations with the loss each is paired with."""
from __future__ import annotations

from typing import Dict, Optional

# Hidden activations -> the default of their parameter (PyTorch's), None when they have none.
ACTIVATIONS: Dict[str, Optional[float]] = {
    "linear": None, "relu": None, "leaky_relu": 0.01, "elu": 1.0, "selu": None, "gelu": None,
    "sigmoid": None, "tanh": None, "softplus": 1.0,
}
# Output activations -> the loss they are paired with.
OUTPUTS: Dict[str, str] = {"softmax": "categorical cross-entropy", "sigmoid": "binary cross-entropy",
                           "linear": "mean squared error"}
