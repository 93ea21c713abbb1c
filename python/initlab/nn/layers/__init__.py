"""Layer types and their registry: persistence and `Network` look types up here by name.

A new layer type is one new module in this folder (a `Layer` subclass, see base.py) plus its line
in LAYERS below.
"""
from __future__ import annotations

from typing import Dict, Type

from .base import BIAS_STREAM, BuildContext, Layer, LayerBuffers, PassInfo
from .dense import Dense

LAYERS: Dict[str, Type[Layer]] = {
    "Dense": Dense,
}

__all__ = ["LAYERS", "Layer", "LayerBuffers", "BuildContext", "PassInfo", "BIAS_STREAM", "Dense"]
