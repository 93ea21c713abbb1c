"""Networks: layers, the network, its training loop, optimizers and callbacks."""
from .callbacks import Callback, EarlyStopping, LambdaCallback
from .network import Dense, DivergenceError, Network, lsuv

__all__ = ["Network", "Dense", "DivergenceError", "lsuv", "Callback", "EarlyStopping", "LambdaCallback"]
