"""Network files: `save(net, path)` and `load(Network, path)` (one .npz, written atomically).

Format version 1 (networks of Dense layers only; see `_v1_arrays`): widths, per-layer activations,
activation parameters and dropout, W{i}/b{i}, dtype, seed, step counters and a SHA-256 checksum of
every other array.
Format version 2 (any other network, convolutional ones; see `_v2_arrays`): the input shape, one
JSON document listing each layer's type (a key of `LAYERS`), its `config()` and the initializers
its parameters were drawn with, W{i}/b{i} for the layers with weights (i = position in
net.layers), dtype, seed, step counters and the checksum.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib
from typing import TYPE_CHECKING, Dict, Type

import numpy as np

from .. import _core
from .._files import atomic_file, target_path
from .layers import LAYERS, Dense

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network

FORMAT_NAME = "initlab.network"
FORMAT_VERSION = 1     # Dense-only networks: readable by every initlab since the format began
FORMAT_VERSION_LAYERS = 2  # networks with other layer types
DTYPES = ("float32", "float64")


def _v1_arrays(net: "Network") -> Dict[str, np.ndarray]:
    return {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "initlab_version": np.array(_core.__version__),
        "dtype": np.array(net.dtype),
        "widths": np.array(net.widths, dtype=np.int64),
        "activations": np.array([layer.activation for layer in net.layers]),
        "activation_params": np.array([np.nan if layer.param is None else layer.param
                                       for layer in net.layers], dtype=np.float64),
        "dropout": np.array([layer.dropout for layer in net.layers], dtype=np.float64),
        "seed": np.array(net.seed, dtype=np.uint64),
        "steps": np.array([net._step, net._epochs_trained], dtype=np.int64),
    }


def checksum(arrays: Dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(arrays):
        if key == "checksum":
            continue
        a = np.ascontiguousarray(arrays[key])
        digest.update(key.encode())
        digest.update(str(a.dtype).encode())
        digest.update(str(a.shape).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def save(net: "Network", path: "os.PathLike[str] | str") -> str:
    """Write architecture, weights, dtype and version to one .npz at exactly `path`, atomically
    (a temporary file in the same directory, fsync, os.replace). Optimizer state is not saved."""
    path, _ = target_path(path, "Network.save")
    if all(type(layer) is Dense for layer in net.layers):
        arrays = _v1_arrays(net)
    else:
        arrays = _v2_arrays(net)
    for i, layer in enumerate(net.layers):
        if layer.has_weights:
            arrays[f"W{i}"] = layer._W
            arrays[f"b{i}"] = layer._b
    arrays["checksum"] = np.array(checksum(arrays))
    with atomic_file(path, "Network.save", suffix=".npz.tmp") as f:
        np.savez(f, **arrays)
    return path


def load(cls: "Type[Network]", path: "os.PathLike[str] | str") -> "Network":
    """Read a file written by `save` (allow_pickle=False), validating keys, dtypes, shapes
    chained layer to layer, finiteness and the checksum; ValueError says what is wrong."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"Network.load: path must be a str or os.PathLike, got "
                        f"{type(path).__name__} {path!r}") from None
    where = f"Network.load({path!r})"
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{where}: not an .npz archive (a single .npy array)")
        with data:
            arrays = {key: data[key] for key in data.files}
    # zipfile also raises NotImplementedError (unknown compression or flags) and RuntimeError
    # (encrypted members) for a foreign or damaged archive.
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError,
            RuntimeError, zlib.error) as e:
        if isinstance(e, FileNotFoundError) or str(e).startswith(where):
            raise
        raise ValueError(f"{where}: not a readable initlab .npz file (truncated, corrupted or "
                         f"foreign): {type(e).__name__}: {e}") from None
    return _from_v1(cls, arrays, where)


def _from_v1(cls: "Type[Network]", arrays: Dict[str, np.ndarray], where: str) -> "Network":
    version = arrays.get("format_version")
    if version is not None and version.shape == () and version.dtype.kind in "iu" \
            and int(version) == FORMAT_VERSION_LAYERS and "format" in arrays \
            and arrays["format"].shape == () and str(arrays["format"]) == FORMAT_NAME:
        return _from_v2(cls, arrays, where)
    required = ["format", "format_version", "initlab_version", "dtype", "widths", "activations",
                "activation_params", "dropout", "seed", "steps", "checksum"]
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{where}: not an initlab network file: missing keys {missing}")
    if arrays["format"].shape != () or str(arrays["format"]) != FORMAT_NAME:
        raise ValueError(f"{where}: format is {arrays['format'].tolist()!r}, expected {FORMAT_NAME!r}")
    version = arrays["format_version"]
    if version.shape != () or int(version) != FORMAT_VERSION:
        raise ValueError(f"{where}: format_version {version.tolist()!r} is not "
                         f"supported (this initlab reads {FORMAT_VERSION} and {FORMAT_VERSION_LAYERS})")
    dtype = str(arrays["dtype"])
    if dtype not in DTYPES:
        raise ValueError(f"{where}: dtype {dtype!r} is not one of {DTYPES}")
    widths = arrays["widths"]
    if widths.dtype.kind not in "iu" or widths.ndim != 1 or widths.size < 2 or (widths < 1).any():
        raise ValueError(f"{where}: widths must be >= 2 positive ints, got {widths.tolist()!r}")
    n_layers = widths.size - 1
    expected = set(required) | {f"W{i}" for i in range(n_layers)} | {f"b{i}" for i in range(n_layers)}
    unexpected = sorted(set(arrays) - expected)
    missing = sorted(expected - set(arrays))
    if missing or unexpected:
        raise ValueError(f"{where}: keys do not match {n_layers} layers: missing {missing}, "
                         f"unexpected {unexpected}")
    acts = arrays["activations"]
    params = arrays["activation_params"]
    drops = arrays["dropout"]
    for key, a in (("activations", acts), ("activation_params", params), ("dropout", drops)):
        if a.shape != (n_layers,):
            raise ValueError(f"{where}: {key} must have shape ({n_layers},), got {a.shape}")
    if acts.dtype.kind != "U":
        raise ValueError(f"{where}: activations must be strings, got dtype {acts.dtype}")
    for i in range(n_layers):
        w_shape, b_shape = (int(widths[i]), int(widths[i + 1])), (int(widths[i + 1]),)
        for key, shape in ((f"W{i}", w_shape), (f"b{i}", b_shape)):
            a = arrays[key]
            if a.dtype != np.dtype(dtype):
                raise ValueError(f"{where}: {key} has dtype {a.dtype}, the file says {dtype}")
            if a.shape != shape:
                raise ValueError(f"{where}: {key} has shape {a.shape}, expected {shape} "
                                 f"(widths {widths.tolist()} chained layer to layer)")
            if not np.isfinite(a).all():
                raise ValueError(f"{where}: {key} contains NaN or infinity")
    if arrays["checksum"].shape != () or str(arrays["checksum"]) != checksum(arrays):
        raise ValueError(f"{where}: checksum mismatch: the contents were modified after saving")
    specs = []
    for i in range(n_layers):
        param = float(params[i])
        specs.append(Dense(int(widths[i + 1]), str(acts[i]), init="zeros", bias_init="zeros",
                           dropout=float(drops[i]) if i < n_layers - 1 else None,
                           param=None if math.isnan(param) else param))
    try:
        net = cls(specs, input_dim=int(widths[0]), seed=int(arrays["seed"]), dtype=dtype)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: invalid architecture: {e}") from None
    for i, layer in enumerate(net.layers):
        np.copyto(layer._W, arrays[f"W{i}"])
        np.copyto(layer._b, arrays[f"b{i}"])
    steps = arrays["steps"]
    if steps.shape == (2,) and steps.dtype.kind in "iu":
        net._step, net._epochs_trained = int(steps[0]), int(steps[1])
    return net



def _v2_arrays(net: "Network") -> Dict[str, np.ndarray]:
    layers = [{"type": layer.type_name, "config": layer.config(), "initializers": layer.initializers()}
              for layer in net.layers]
    return {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION_LAYERS, dtype=np.int64),
        "initlab_version": np.array(_core.__version__),
        "dtype": np.array(net.dtype),
        "input_shape": np.array(net.input_shape, dtype=np.int64),
        "layers": np.array(json.dumps(layers)),
        "seed": np.array(net.seed, dtype=np.uint64),
        "steps": np.array([net._step, net._epochs_trained], dtype=np.int64),
    }


def _from_v2(cls: "Type[Network]", arrays: Dict[str, np.ndarray], where: str) -> "Network":
    required = ["format", "format_version", "initlab_version", "dtype", "input_shape", "layers", "seed",
                "steps", "checksum"]
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{where}: not an initlab network file: missing keys {missing}")
    dtype = str(arrays["dtype"])
    if dtype not in DTYPES:
        raise ValueError(f"{where}: dtype {dtype!r} is not one of {DTYPES}")
    input_shape = arrays["input_shape"]
    if input_shape.dtype.kind not in "iu" or input_shape.ndim != 1 or input_shape.size < 1 or (input_shape < 1).any():
        raise ValueError(f"{where}: input_shape must be positive ints, got {input_shape.tolist()!r}")
    if arrays["layers"].shape != () or arrays["layers"].dtype.kind != "U":
        raise ValueError(f"{where}: layers must be one JSON string")
    try:
        described = json.loads(str(arrays["layers"]))
        if not isinstance(described, list) or not described:
            raise ValueError("not a non-empty list")
        types = [entry["type"] for entry in described]
        configs = [dict(entry["config"]) for entry in described]
        inits = [dict(entry.get("initializers", {})) for entry in described]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{where}: layers is not a valid layer list: {e}") from None
    unknown = [t for t in types if t not in LAYERS]
    if unknown:
        raise ValueError(f"{where}: unknown layer types {unknown}; known: {', '.join(LAYERS)}")
    weighted = [i for i, t in enumerate(types) if LAYERS[t].has_weights]
    expected = set(required) | {f"W{i}" for i in weighted} | {f"b{i}" for i in weighted}
    if set(arrays) != expected:
        raise ValueError(f"{where}: keys do not match the layers: missing {sorted(expected - set(arrays))}, "
                         f"unexpected {sorted(set(arrays) - expected)}")
    if arrays["checksum"].shape != () or str(arrays["checksum"]) != checksum(arrays):
        raise ValueError(f"{where}: checksum mismatch: the contents were modified after saving")
    specs = []
    try:
        for t, config in zip(types, configs):
            if LAYERS[t].has_weights:  # the weights come from the file: draw nothing random
                config = dict(config, init="zeros", bias_init="zeros")
            specs.append(LAYERS[t](**config))
        net = cls(specs, input_shape=tuple(int(v) for v in input_shape), seed=int(arrays["seed"]), dtype=dtype)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: invalid architecture: {e}") from None
    for i in weighted:
        layer = net.layers[i]
        for key, target in ((f"W{i}", layer._W), (f"b{i}", layer._b)):
            a = arrays[key]
            if a.dtype != np.dtype(dtype) or a.shape != target.shape:
                raise ValueError(f"{where}: {key} is {a.dtype} {a.shape}, layer {i} ({types[i]}) needs "
                                 f"{dtype} {target.shape}")
            if not np.isfinite(a).all():
                raise ValueError(f"{where}: {key} contains NaN or infinity")
            np.copyto(target, a)
        names = inits[i]
        layer.init_name = str(names.get("W", layer.init_name))
        layer.bias_init_name = str(names.get("b", layer.bias_init_name))
    steps = arrays["steps"]
    if steps.shape == (2,) and steps.dtype.kind in "iu":
        net._step, net._epochs_trained = int(steps[0]), int(steps[1])
    return net
