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


def _pair(value: Any) -> Tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (int(value), int(value))


_SUPPORTED = ("Linear, Conv2d, ZeroPad2d (before a Conv2d), MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1) + "
              "Flatten, Flatten, ReLU, LeakyReLU, ELU, SELU, GELU, Sigmoid, Tanh, Softplus, Identity, Dropout")


def _parse_sequential(seq: nn.Sequential, input_shape: Optional[Tuple[int, ...]]) -> List[list]:
    """The initlab layers `seq` describes, every module accounted for, as groups
    ["dense", Linear, act, dropout, flattened_from] / ["conv", Conv2d, act, dropout, padding] /
    ["maxpool" | "avgpool", pool, stride] / ["gap"] / ["flatten"], tracking the (H, W, C) shape."""
    items = list(seq.named_children())
    groups: List[list] = []
    shape = input_shape  # None: a flat input of the first Linear's width
    flattened_from: Optional[tuple] = None  # the (H, W, C) the last Flatten flattened
    pad: Optional[Tuple[str, Tuple[int, int, int, int]]] = None  # a pending ZeroPad2d: (where, t, b, l, r)
    skip = False
    for k, (name, m) in enumerate(items):
        if skip:
            skip = False
            continue
        where = f"sequential[{name}] ({type(m).__name__})"
        if pad is not None and not (isinstance(m, nn.Conv2d) and type(m) is nn.Conv2d):
            raise ValueError(f"{pad[0]} cannot be expressed: a ZeroPad2d must come right before an nn.Conv2d")
        image = shape is not None and len(shape) == 3
        if isinstance(m, nn.ZeroPad2d) and type(m) is nn.ZeroPad2d:
            left, right, top, bottom = (int(v) for v in m.padding)
            if not image or min(left, right, top, bottom) < 0:
                raise ValueError(f"{where} cannot be expressed: it must pad an image (by >= 0) before a Conv2d")
            pad = (where, (top, bottom, left, right))
            continue
        if isinstance(m, nn.Conv2d) and type(m) is nn.Conv2d:
            if m.bias is None:
                raise ValueError(f"{where} has bias=False: an initlab Conv2d layer always has a bias")
            if m.groups != 1 or m.padding_mode != "zeros":
                raise ValueError(f"{where} with groups={m.groups}, padding_mode={m.padding_mode!r} cannot "
                                 f"be expressed: initlab's Conv2d has groups=1 and zero padding")
            if not image:
                raise ValueError(f"{where} cannot be expressed here: a Conv2d takes images; give "
                                 f"input_shape=(H, W, C) and no Flatten/Linear before it")
            if m.in_channels != shape[2]:
                raise ValueError(f"{where} takes {m.in_channels} channels but gets {shape[2]} "
                                 f"(input shape {shape})")
            kh, kw = _pair(m.kernel_size)
            sh, sw = _pair(m.stride)
            dh, dw = _pair(m.dilation)
            if isinstance(m.padding, str):  # torch's "same" (stride 1): the odd extra at the end, as TF
                th, tw = (dh * (kh - 1), dw * (kw - 1)) if m.padding == "same" else (0, 0)
                pads = [th // 2, th - th // 2, tw // 2, tw - tw // 2]
            else:
                ph, pw = _pair(m.padding)
                pads = [ph, ph, pw, pw]
            from ..nn.layers.conv2d import same_padding
            same = same_padding(shape[0], kh, sh, dh) + same_padding(shape[1], kw, sw, dw)
            if pad is not None:
                pads = [a + b for a, b in zip(pads, pad[1])]
            padding: Any
            if (pad is not None or m.padding == "same") and tuple(pads) == same:
                padding = "same"
            elif not any(pads):
                padding = "valid"
            elif pads[0] == pads[1] and pads[2] == pads[3]:
                padding = (pads[0], pads[2])
            else:
                raise ValueError(f"{pad[0] if pad else where} cannot be expressed: padding (top, bottom, "
                                 f"left, right) = {tuple(pads)} is neither TensorFlow's \"same\" {same} for "
                                 f"input {shape[:2]} nor symmetric")
            pad = None
            oh = (shape[0] + pads[0] + pads[1] - dh * (kh - 1) - 1) // sh + 1
            ow = (shape[1] + pads[2] + pads[3] - dw * (kw - 1) - 1) // sw + 1
            if oh < 1 or ow < 1:
                raise ValueError(f"{where}: its window is larger than its padded input (input shape {shape})")
            shape = (oh, ow, m.out_channels)
            groups.append(["conv", m, None, 0.0, padding])
            continue
        if type(m) in (nn.MaxPool2d, nn.AvgPool2d):
            kind = "maxpool" if type(m) is nn.MaxPool2d else "avgpool"
            extra = (_pair(m.dilation) != (1, 1) or m.return_indices) if kind == "maxpool" else \
                m.divisor_override is not None
            if _pair(m.padding) != (0, 0) or m.ceil_mode or extra:
                raise ValueError(f"{where} cannot be expressed: initlab's pooling has no padding, "
                                 f"dilation, ceil_mode, divisor_override or indices")
            if not image:
                raise ValueError(f"{where} cannot be expressed here: pooling takes images; give "
                                 f"input_shape=(H, W, C) and no Flatten/Linear before it")
            pool = _pair(m.kernel_size)
            stride = pool if m.stride is None else _pair(m.stride)
            if pool[0] > shape[0] or pool[1] > shape[1]:
                raise ValueError(f"{where}: the window {pool} is larger than its input (input shape {shape})")
            shape = ((shape[0] - pool[0]) // stride[0] + 1, (shape[1] - pool[1]) // stride[1] + 1, shape[2])
            groups.append([kind, pool, stride])
            continue
        if isinstance(m, nn.AdaptiveAvgPool2d) and type(m) is nn.AdaptiveAvgPool2d:
            nxt = items[k + 1][1] if k + 1 < len(items) else None
            if _pair(m.output_size) != (1, 1) or not (type(nxt) is nn.Flatten and nxt.start_dim == 1
                                                       and nxt.end_dim == -1) or not image:
                raise ValueError(f"{where} cannot be expressed: only AdaptiveAvgPool2d(1) on images followed "
                                 f"by nn.Flatten() (initlab's GlobalAvgPool2d)")
            shape = (shape[2],)
            groups.append(["gap"])
            skip = True
            continue
        if isinstance(m, nn.Flatten) and type(m) is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1 or shape is None:
                raise ValueError(f"{where} cannot be expressed: only nn.Flatten() (start_dim=1, end_dim=-1) "
                                 f"after input_shape is known")
            if image:
                flattened_from = shape
                shape = (shape[0] * shape[1] * shape[2],)
            groups.append(["flatten"])
            continue
        if isinstance(m, nn.Linear) and type(m) is nn.Linear:
            if m.bias is None:
                raise ValueError(f"{where} has bias=False: an initlab Dense layer always has a bias")
            if image:
                raise ValueError(f"{where} cannot be expressed here: it gets images {shape}; put "
                                 f"nn.Flatten() before it")
            if shape is not None and m.in_features != shape[0]:
                raise ValueError(f"{where} does not chain: it takes {m.in_features} inputs after {shape[0]}")
            groups.append(["dense", m, None, 0.0, flattened_from])
            flattened_from = None
            shape = (m.out_features,)
            continue
        act = activation_of(m)
        is_dropout = isinstance(m, nn.Dropout) and type(m) is nn.Dropout
        if act is None and not is_dropout:
            raise ValueError(f"{where} cannot be expressed as an initlab layer; supported: {_SUPPORTED}")
        if not groups or groups[-1][0] not in ("dense", "conv"):
            raise ValueError(f"{where} cannot be expressed here: an activation or Dropout must follow an "
                             f"nn.Linear or nn.Conv2d (the model must start with nn.Linear or nn.Conv2d)")
        group = groups[-1]
        if act is not None:
            if isinstance(m, nn.GELU) and m.approximate != "none":
                raise ValueError(f"{where} with approximate={m.approximate!r} cannot be expressed: "
                                 f"initlab's gelu is the exact (erf) form")
            if isinstance(m, nn.Softplus) and m.threshold != 20:
                raise ValueError(f"{where} with threshold={m.threshold} cannot be expressed: "
                                 f"initlab's softplus uses torch's default threshold 20")
            if group[2] is not None or group[3]:
                raise ValueError(f"{where} cannot be expressed: one activation per Linear/Conv2d, before "
                                 f"its dropout")
            group[2] = act
        else:
            if group[3]:
                raise ValueError(f"{where} cannot be expressed: one Dropout per Linear/Conv2d")
            group[3] = float(m.p)
    if pad is not None:
        raise ValueError(f"{pad[0]} cannot be expressed: a ZeroPad2d must come right before an nn.Conv2d")
    if not any(g[0] == "dense" for g in groups):
        raise ValueError("sequential holds no nn.Linear layer")
    last = groups[-1]
    if last[0] != "dense" or (last[2] is not None and last[2][0] != "linear") or last[3]:
        raise ValueError(f"sequential must end with the output layer's logits (a Linear, as torch "
                         f"losses expect); it ends with "
                         f"{type(list(seq.children())[-1]).__name__}. The output activation is "
                         f"output=...")
    return groups


def _fixed(value: np.ndarray):
    """An init callable that returns the torch model's own array as the "draw"."""
    def draw(shape, seed, stream, value=value):
        return value
    draw.__name__ = "from_torch"
    return draw


def from_torch(sequential: nn.Sequential, output: str = "softmax", *, input_shape: Optional[Any] = None,
               seed: Optional[int] = None) -> Any:
    """The initlab Network computing `sequential` (an nn.Sequential from `to_torch` or written the
    same way), with copies of its weights; `output` names the output activation and loss.
    A CNN (a model that does not start with nn.Linear) needs `input_shape=(H, W, C)` (channels last;
    the torch model takes the NCHW permutation of that input). Conv2d weights (O, C, KH, KW) become
    (KH, KW, C, O); an nn.ZeroPad2d before a Conv2d is folded into its padding ("same" when it is
    TensorFlow's for that input size); the Linear after a Flatten gets its columns reordered from
    torch's channels-first flatten to initlab's channels-last one. A module that cannot be
    expressed raises ValueError naming it."""
    from .. import Network  # the public class (initlab.nn.network imports this module on use)
    from ..nn.activations import OUTPUTS
    from ..nn.layers import AvgPool2d, Conv2d, Dense, Flatten, GlobalAvgPool2d, MaxPool2d
    if not isinstance(sequential, nn.Sequential):
        raise TypeError(f"sequential must be a torch.nn.Sequential, got {type(sequential).__name__}")
    if output not in OUTPUTS:
        raise ValueError(f"output={output!r} is not valid; valid: {', '.join(OUTPUTS)}")
    children = list(sequential.children())
    starts_dense = bool(children) and type(children[0]) is nn.Linear
    starts_image = bool(children) and type(children[0]) in (nn.Conv2d, nn.ZeroPad2d, nn.MaxPool2d, nn.AvgPool2d,
                                                            nn.AdaptiveAvgPool2d, nn.Flatten)
    if input_shape is not None:
        try:
            shape = tuple(int(v) for v in input_shape)
            ok = all(v == w and v >= 1 for v, w in zip(shape, input_shape))
        except (TypeError, ValueError):
            raise TypeError(f"input_shape must be a tuple of ints (H, W, C), got {input_shape!r}") from None
        if starts_dense:
            if not ok or shape != (children[0].in_features,):
                raise ValueError(f"input_shape={input_shape!r} does not fit: the model starts with "
                                 f"nn.Linear({children[0].in_features}, ...); leave input_shape out")
            shape = None
        elif not ok or len(shape) != 3:
            raise ValueError(f"input_shape must be (H, W, C), three ints >= 1, got {input_shape!r}")
    elif starts_image:
        raise ValueError(f"input_shape=(H, W, C) is required: the model starts with "
                         f"sequential[0] ({type(children[0]).__name__}), not nn.Linear")
    else:
        shape = None
    groups = _parse_sequential(sequential, shape)
    params = [t for g in groups if g[0] in ("dense", "conv") for t in (g[1].weight, g[1].bias)]
    dtypes = {t.dtype for t in params}
    names = {v: k for k, v in _DTYPES.items()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in names:
        raise ValueError(f"sequential's Linear/Conv2d layers must all be float32 or all float64, got "
                         f"{sorted(str(d) for d in dtypes)}")
    dtype = names[next(iter(dtypes))]
    specs: List[Any] = []
    for i, g in enumerate(groups):
        kind = g[0]
        if kind in ("dense", "conv"):
            module, act, dropout = g[1], g[2], g[3]
            W = module.weight.detach().cpu().numpy()
            b = module.bias.detach().cpu().numpy().copy()
            last = i == len(groups) - 1
            name, param = ("linear", 0.0) if act is None else act
            keep = param if not last and name in ("leaky_relu", "elu", "softplus") else None
            if kind == "conv":
                W = np.ascontiguousarray(W.transpose(2, 3, 1, 0))  # (O, C, KH, KW) -> (KH, KW, C, O)
                specs.append(Conv2d(module.out_channels, tuple(W.shape[:2]), stride=_pair(module.stride),
                                    padding=g[4], dilation=_pair(module.dilation), activation=name,
                                    init=_fixed(W), bias_init=_fixed(b), dropout=dropout, param=keep))
                continue
            W = W.T.copy()
            if g[4] is not None:  # rows (c, h, w) in torch's flatten order -> (h, w, c) in initlab's
                h, w, c = g[4]
                W = np.ascontiguousarray(W.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1))
            specs.append(Dense(module.out_features, output if last else name, init=_fixed(W),
                               bias_init=_fixed(b), dropout=None if last else dropout, param=keep))
        elif kind == "maxpool":
            specs.append(MaxPool2d(g[1], g[2]))
        elif kind == "avgpool":
            specs.append(AvgPool2d(g[1], g[2]))
        elif kind == "gap":
            specs.append(GlobalAvgPool2d())
        else:
            specs.append(Flatten())
    if shape is None:
        return Network(specs, input_dim=groups[0][1].in_features, dtype=dtype, seed=seed)
    return Network(specs, input_shape=shape, dtype=dtype, seed=seed)
