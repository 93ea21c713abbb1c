"""Networks: layers, the network, its training loop, optimizers and callbacks."""
from .callbacks import Callback, EarlyStopping, LambdaCallback
from .layers import LAYERS, AvgPool2d, Conv2d, Dense, Flatten, GlobalAvgPool2d, Layer, MaxPool2d
from .network import DivergenceError, Network, lsuv

__all__ = ["Network", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "Flatten", "Layer", "LAYERS", "DivergenceError", "lsuv", "Callback", "EarlyStopping",
           "LambdaCallback"]
