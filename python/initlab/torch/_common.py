"""What every part of il.torch shares: which modules are layers, which are activations, and how a
hooked tensor reaches initlab's kernels (a zero-copy numpy view when it can)."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

# The layers il.torch initializes, diagnoses and watches (exact classes and their subclasses; a
# ConvTranspose is not a ConvNd subclass, so it is not one of them).
LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def check_module(module: Any, argname: str = "module") -> nn.Module:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{argname} must be a torch.nn.Module, got {type(module).__name__}")
    return module


def _inside_torch_builtin(name: str, skipped_builtin: List[str]) -> bool:
    return any(name.startswith(prefix + ".") for prefix in skipped_builtin)


def find_layers(module: nn.Module, argname: str = "module") -> List[Tuple[str, nn.Module]]:
    """The (qualified name, module) of every Linear / Conv1d / Conv2d / Conv3d in `modules()` order.

    A Linear inside a torch.nn module that il.torch does not handle (MultiheadAttention's out_proj)
    belongs to that module: it is left out with it (and named in init_'s warning)."""
    layers, skipped = [], []
    for name, m in module.named_modules():
        if _inside_torch_builtin(name, skipped):
            continue
        if isinstance(m, LAYER_TYPES):
            if isinstance(m.weight, nn.parameter.UninitializedParameter):
                raise ValueError(f"{argname}: layer {name or type(m).__name__} ({type(m).__name__}) is "
                                 f"lazy and has no shape yet: run one forward pass first")
            layers.append((name, m))
        elif type(m).__module__.startswith("torch.nn.") and any(True for _ in m.parameters(recurse=False)):
            skipped.append(name)
    if not layers:
        raise ValueError(f"{argname} ({type(module).__name__}) holds no nn.Linear / nn.Conv1d / "
                         f"nn.Conv2d / nn.Conv3d layer")
    return layers


def uninitialized_modules(module: nn.Module, layers: List[Tuple[str, nn.Module]]) -> List[str]:
    """Names of the modules that hold parameters of their own but are not among `layers`."""
    ids = {id(m) for _, m in layers}
    out = []
    for name, m in module.named_modules():
        if id(m) in ids:
            continue
        own = [p for p in m.parameters(recurse=False)]
        if own:
            out.append(f"{name or '<root>'} ({type(m).__name__})")
    return out


# ---- activations: torch module -> initlab's registry name and parameter ----------------------------
def activation_of(m: nn.Module) -> Optional[Tuple[str, float]]:
    """(initlab activation name, its parameter) for an activation module initlab knows; None else."""
    if isinstance(m, nn.ReLU):
        return "relu", 0.0
    if isinstance(m, nn.LeakyReLU):
        return "leaky_relu", float(m.negative_slope)
    if isinstance(m, nn.ELU):
        return "elu", float(m.alpha)
    if isinstance(m, nn.SELU):
        return "selu", 0.0
    if isinstance(m, nn.GELU):
        return "gelu", 0.0
    if isinstance(m, nn.Sigmoid):
        return "sigmoid", 0.0
    if isinstance(m, nn.Tanh):
        return "tanh", 0.0
    if isinstance(m, nn.Softplus):
        return "softplus", float(m.beta)
    if isinstance(m, nn.Identity):
        return "linear", 0.0
    return None


def is_activation_module(m: nn.Module) -> bool:
    """An elementwise activation: initlab's own, or any parameter-free module of
    torch.nn.modules.activation (SiLU, Mish, Hardtanh, ...; not MultiheadAttention, Softmax)."""
    if activation_of(m) is not None:
        return True
    cls = type(m)
    return (cls.__module__ == "torch.nn.modules.activation"
            and cls.__name__ not in ("MultiheadAttention", "Softmax", "Softmin", "LogSoftmax",
                                     "Softmax2d", "GLU")
            and not any(True for _ in m.parameters(recurse=False)))


def activation_label(m: nn.Module) -> Tuple[str, str, float]:
    """(row label, name for the stats kernel, parameter): an activation initlab does not know is
    labelled by its class name and measured as "linear" (moments only, no saturated/dead)."""
    known = activation_of(m)
    if known is not None:
        return known[0], known[0], known[1]
    return type(m).__name__.lower(), "linear", 0.0


# ---- tensors -> kernel inputs ------------------------------------------------------------------
def host_array(t: torch.Tensor) -> np.ndarray:
    """A numpy array the kernels take: the tensor's own memory for a contiguous CPU float32/float64
    tensor (no copy), else one copy on the host (float32, or float64 for float64 tensors)."""
    t = t.detach()
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.is_contiguous():
        return t.numpy()
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.to(device="cpu", dtype=dtype).contiguous().numpy()


def unit_matrix(t: torch.Tensor, conv: bool) -> np.ndarray:
    """(rows, units) for the per-layer statistics: a Linear's (..., O) output as (-1, O); a conv's
    (N, C, *spatial) output as (N * positions, C), so a unit is a channel (one copy: a permute)."""
    t = t.detach()
    if conv:
        t = t.movedim(1, -1)
    if t.dim() == 0:
        t = t.reshape(1, 1)
    elif t.dim() == 1:
        t = t.reshape(1, -1)
    else:
        t = t.reshape(-1, t.shape[-1])
    return host_array(t)


def torch_dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def as_input(X: Any, like: torch.Tensor, argname: str = "X") -> torch.Tensor:
    """X (a tensor, an ndarray or nested lists of numbers) as a tensor of `like`'s dtype and device,
    checked: numbers, at least one sample, finite."""
    if isinstance(X, torch.Tensor):
        t = X.detach()
        if t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{argname} must hold real numbers, got dtype {t.dtype}")
    else:
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{argname} must hold real numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dim() == 0 or t.shape[0] == 0:
        raise ValueError(f"{argname} must have at least one sample (a leading batch dimension), "
                         f"got shape {tuple(t.shape)}")
    t = t.to(device=like.device, dtype=like.dtype)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{argname} contains NaN or infinity (in the model's dtype {like.dtype})")
    return t


class ModuleState:
    """Eval mode (dropout off, norms on running statistics) for the duration of a `with`; every
    submodule's own training flag is restored afterwards."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.flags = [(m, m.training) for m in module.modules()]

    def __enter__(self) -> "ModuleState":
        self.module.eval()
        return self

    def __exit__(self, *exc: Any) -> None:
        for m, flag in self.flags:
            m.training = flag


def run_forward(module: nn.Module, X: torch.Tensor, argname: str = "X") -> Any:
    """module(X), with the error of an input that does not fit the model named after X."""
    try:
        return module(X)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        if isinstance(e, StopForward):
            raise
        raise ValueError(f"{argname} of shape {tuple(X.shape)} and dtype {X.dtype} does not fit the "
                         f"model: {type(e).__name__}: {e}") from None


class StopForward(RuntimeError):
    """Raised by a hook to end a forward pass once the layer it waits for has run."""
