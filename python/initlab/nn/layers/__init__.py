"""Layer types and their registry: persistence and `Network` look types up here by name.

A new layer type is one new module in this folder (a `Layer` subclass, see base.py) plus its line
in LAYERS below.
"""
from __future__ import annotations

from typing import Dict, Type

from .base import BIAS_STREAM, BuildContext, Layer, LayerBuffers, PassInfo
from .avg_pool2d import AvgPool2d
from .conv2d import Conv2d
from .dense import Dense
from .flatten import Flatten
from .global_avg_pool2d import GlobalAvgPool2d
from .max_pool2d import MaxPool2d

LAYERS: Dict[str, Type[Layer]] = {
    "Dense": Dense,
    "Conv2d": Conv2d,
    "MaxPool2d": MaxPool2d,
    "AvgPool2d": AvgPool2d,
    "GlobalAvgPool2d": GlobalAvgPool2d,
    "Flatten": Flatten,
}

__all__ = ["LAYERS", "Layer", "LayerBuffers", "BuildContext", "PassInfo", "BIAS_STREAM", "Dense", "Conv2d",
           "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten"]
