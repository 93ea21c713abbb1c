"""The activations a layer may use, read from the one registry in C++ (cpp/include/initlab/dense.hpp,
exported as `_core.activation_registry()`), and the output activations with their losses."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .. import _core

# name -> {name, id, param_name, default_param, gain, derivative_from_output, saturates,
#          zero_derivative_interval}, in the registry's order.
REGISTRY: Dict[str, Dict[str, Any]] = {a["name"]: a for a in _core.activation_registry()}
# Hidden activations -> the default of their parameter (PyTorch's), None when they have none.
ACTIVATIONS: Dict[str, Optional[float]] = {name: a["default_param"] for name, a in REGISTRY.items()}
# Bounded on both sides (their derivative vanishes at both tails): the diagnosis' "saturated".
SATURATING: Tuple[str, ...] = tuple(name for name, a in REGISTRY.items() if a["saturates"])
# Derivative exactly zero on an interval: a unit can die (zero gradient on every sample).
ZERO_DERIVATIVE_INTERVAL: Tuple[str, ...] = tuple(
    name for name, a in REGISTRY.items() if a["zero_derivative_interval"])
# Output activations -> the loss they are paired with.
OUTPUTS: Dict[str, str] = {"softmax": "categorical cross-entropy", "sigmoid": "binary cross-entropy",
                           "linear": "mean squared error"}
