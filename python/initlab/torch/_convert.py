"""`Network` <-> `nn.Sequential`: `to_torch(net)` and `from_torch(sequential, output)`.

A Network's layer i (Dense: Z = X @ W + b, A = act(Z), dropout in training) becomes
    nn.Linear(fan_in, units) with weight = W.T, bias = b; the activation's module; nn.Dropout(p)
and the output layer is its Linear alone: the model ends with logits, as torch's losses expect
(softmax(model(x)) = net.forward(X) for a softmax net; sigmoid for sigmoid; the identity for linear).
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ._common import activation_of

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _activation_module(name: str, param: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=param)
    if name == "elu":
        return nn.ELU(alpha=param)
    if name == "selu":
        return nn.SELU()
    if name == "gelu":
        return nn.GELU()  # exact (erf) form, as initlab's
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    if name == "softplus":
        return nn.Softplus(beta=param)
    if name == "linear":
        return nn.Identity()
    raise ValueError(f"activation {name!r} has no torch module")  # pragma: no cover - registry drift


def to_torch(net: Any) -> nn.Sequential:
    """An nn.Sequential computing `net`'s logits, in the net's dtype, with copies of its weights.
    A CNN's model takes NCHW input (`x = X.permute(0, 3, 1, 2)`): Conv2d becomes nn.Conv2d (with
    nn.ZeroPad2d first for TensorFlow's uneven "same" padding), the pooling layers nn.MaxPool2d,
    nn.AvgPool2d and nn.AdaptiveAvgPool2d(1) + nn.Flatten, Flatten nn.Flatten, and the first Dense
    after a Flatten gets its rows reordered (initlab flattens channels last, torch channels first)."""
    from .. import Network  # the public class (initlab.nn.network imports this module on use)
    from ..nn.layers import AvgPool2d, Conv2d, Dense, Flatten, GlobalAvgPool2d, MaxPool2d
    if not isinstance(net, Network):
        raise TypeError(f"net must be an initlab Network, got {type(net).__name__}")
    dtype = _DTYPES[net.dtype]
    modules: List[nn.Module] = []
    last = len(net.layers) - 1
    flattened_from: Optional[tuple] = None  # the (H, W, C) a Flatten just flattened
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Conv2d):
            top, bottom, left, right = layer.pads
            symmetric = top == bottom and left == right
            if not symmetric:
                modules.append(nn.ZeroPad2d((left, right, top, bottom)))
            W = np.asarray(layer.W)
            conv = nn.Conv2d(W.shape[2], W.shape[3], W.shape[:2], stride=layer.stride,
                             padding=(top, left) if symmetric else 0, dilation=layer.dilation, dtype=dtype)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.transpose(3, 2, 0, 1))))
                conv.bias.copy_(torch.from_numpy(np.asarray(layer.b)))
            modules += [conv, _activation_module(layer.activation, layer.act_param)]
            if layer.dropout:
                modules.append(nn.Dropout(p=layer.dropout))
            continue
        if isinstance(layer, MaxPool2d):
            modules.append(nn.MaxPool2d(layer.pool_size, layer.stride))
            continue
        if isinstance(layer, AvgPool2d):
            modules.append(nn.AvgPool2d(layer.pool_size, layer.stride))
            continue
        if isinstance(layer, GlobalAvgPool2d):
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            continue
        if isinstance(layer, Flatten):
            modules.append(nn.Flatten())
            if len(layer.input_shape) == 3:
                flattened_from = tuple(layer.input_shape)
            continue
        if not isinstance(layer, Dense):
            raise ValueError(f"net.layers[{i}] ({type(layer).__name__}) cannot be expressed in torch yet")
        W = np.asarray(layer.W)
        if flattened_from is not None:  # rows (h, w, c) in initlab's order -> (c, h, w) in torch's
            h, w, c = flattened_from
            W = W.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            flattened_from = None
        linear = nn.Linear(W.shape[0], W.shape[1], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            linear.bias.copy_(torch.from_numpy(np.asarray(layer.b)))
        modules.append(linear)
        if i < last:
            modules.append(_activation_module(layer.activation, layer.act_param))
            if layer.dropout:
                modules.append(nn.Dropout(p=layer.dropout))
    return nn.Sequential(*modules)


def _parse_sequential(seq: nn.Sequential) -> List[Tuple[nn.Linear, Optional[Tuple[str, float]], float]]:
    """[(Linear, (activation, param) or None, dropout)] with every module accounted for."""
    items = list(seq.named_children())
    groups: List[list] = []
    for name, m in items:
        where = f"sequential[{name}] ({type(m).__name__})"
        if isinstance(m, nn.Linear) and type(m) is nn.Linear:
            if m.bias is None:
                raise ValueError(f"{where} has bias=False: an initlab Dense layer always has a bias")
            groups.append([m, None, 0.0])
            continue
        if not groups:
            raise ValueError(f"{where} cannot be expressed: the model must start with nn.Linear")
        group = groups[-1]
        act = activation_of(m)
        if act is not None:
            if isinstance(m, nn.GELU) and m.approximate != "none":
                raise ValueError(f"{where} with approximate={m.approximate!r} cannot be expressed: "
                                 f"initlab's gelu is the exact (erf) form")
            if isinstance(m, nn.Softplus) and m.threshold != 20:
                raise ValueError(f"{where} with threshold={m.threshold} cannot be expressed: "
                                 f"initlab's softplus uses torch's default threshold 20")
            if group[1] is not None or group[2]:
                raise ValueError(f"{where} cannot be expressed: one activation per Linear, before "
                                 f"its dropout")
            group[1] = act
        elif isinstance(m, nn.Dropout) and type(m) is nn.Dropout:
            if group[2]:
                raise ValueError(f"{where} cannot be expressed: one Dropout per Linear")
            group[2] = float(m.p)
        else:
            raise ValueError(f"{where} cannot be expressed as an initlab layer; supported: Linear, "
                             f"ReLU, LeakyReLU, ELU, SELU, GELU, Sigmoid, Tanh, Softplus, Identity, "
                             f"Dropout")
    if not groups:
        raise ValueError("sequential holds no nn.Linear layer")
    last = groups[-1]
    if (last[1] is not None and last[1][0] != "linear") or last[2]:
        raise ValueError(f"sequential must end with the output layer's logits (a Linear, as torch "
                         f"losses expect); it ends with "
                         f"{type(list(seq.children())[-1]).__name__}. The output activation is "
                         f"output=...")
    return [tuple(g) for g in groups]  # type: ignore[misc]


def from_torch(sequential: nn.Sequential, output: str = "softmax", *, seed: Optional[int] = None) -> Any:
    """The initlab Network computing `sequential` (an nn.Sequential from `to_torch` or written the
    same way), with copies of its weights; `output` names the output activation and loss.
    A module that cannot be expressed raises ValueError naming it."""
    from .. import Network  # the public class (initlab.nn.network imports this module on use)
    from ..nn.activations import OUTPUTS
    from ..nn.layers import Dense
    if not isinstance(sequential, nn.Sequential):
        raise TypeError(f"sequential must be a torch.nn.Sequential, got {type(sequential).__name__}")
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r} is not valid; valid: {', '.join(OUTPUTS)}")
    groups = _parse_sequential(sequential)
    dtypes = {g[0].weight.dtype for g in groups} | {g[0].bias.dtype for g in groups}
    names = {v: k for k, v in _DTYPES.items()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in names:
        raise ValueError(f"sequential's Linear layers must all be float32 or all float64, got "
                         f"{sorted(str(d) for d in dtypes)}")
    dtype = names[next(iter(dtypes))]
    specs = []
    for i, (linear, act, dropout) in enumerate(groups):
        W = linear.weight.detach().cpu().numpy().T.copy()
        b = linear.bias.detach().cpu().numpy().copy()

        def weights(shape, seed, stream, W=W):  # the torch model's own weights, as the "draw"
            return W

        def biases(shape, seed, stream, b=b):
            return b

        weights.__name__ = biases.__name__ = "from_torch"
        last = i == len(groups) - 1
        name, param = ("linear", 0.0) if act is None else act
        keep = param if not last and name in ("leaky_relu", "elu", "softplus") else None
        specs.append(Dense(linear.out_features, output if last else name, init=weights,
                           bias_init=biases, dropout=None if last else dropout, param=keep))
    for i in range(1, len(groups)):
        if groups[i][0].in_features != groups[i - 1][0].out_features:
            raise ValueError(f"sequential's Linear layers do not chain: layer {i} takes "
                             f"{groups[i][0].in_features} inputs after {groups[i - 1][0].out_features}")
    return Network(specs, input_dim=groups[0][0].in_features, dtype=dtype, seed=seed)
