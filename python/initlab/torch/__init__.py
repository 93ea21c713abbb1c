"""`il.torch`: initlab's initializers, LSUV, diagnosis and a live watch on your own PyTorch models.

Optional: `pip install "initlab[torch]"`. `import initlab` never imports torch; `il.torch` does,
on first use.

    init_(module, init="he_normal", *, bias_init="zeros", seed=None)   initlab's schemes, in place
    lsuv_(module, X, tol=0.1, max_iter=10)                             LSUV on the same layers
    diagnose(module, X, y=None, *, loss_fn=None)                       a Diagnosis, as Network.diagnose
    watch(module, every=1)                                             per-layer statistics while you train
    to_torch(net), from_torch(sequential, output="softmax")            Network <-> nn.Sequential

The layers are every nn.Linear / nn.Conv1d / nn.Conv2d / nn.Conv3d in `module.modules()` order;
layer i draws its weight with stream i and its bias with stream 2**32 + i, as an il.Network does.
"""
try:
    import torch as _torch  # noqa: F401  (absolute import: PyTorch, not this package)
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise ImportError("il.torch needs PyTorch: pip install 'initlab[torch]'") from _e

from ._convert import from_torch, to_torch
from ._diagnose import diagnose
from ._init import UninitializedWarning, init_, lsuv_
from ._watch import Watch, watch

__all__ = ["init_", "lsuv_", "diagnose", "UninitializedWarning", "to_torch", "from_torch", "watch", "Watch"]
