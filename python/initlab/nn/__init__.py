"""Networks: layers, the network, its training loop, optimizers and callbacks."""
from .callbacks import Callback, EarlyStopping, LambdaCallback
from .layers import LAYERS, Dense, Layer
from .network import DivergenceError, Network, lsuv

__all__ = ["Network", "Dense", "Layer", "LAYERS", "DivergenceError", "lsuv", "Callback", "EarlyStopping",
           "LambdaCallback"]
