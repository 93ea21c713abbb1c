"""Network files: `save(net, path)` and `load(Network, path)` (one .npz, allow_pickle=False,
written atomically: a temporary file in the same directory, fsync, os.replace).

Format version 2 (written):
    format, format_version, initlab_version, dtype, seed, steps ([optimizer steps, epochs])
    manifest      JSON: one entry per layer, in order: {"type": a key of layers.LAYERS, "config":
                  the layer's config() (its constructor's keyword arguments), "initializers":
                  {parameter name: the initializer it was drawn with}}. A new layer type (Conv2d,
                  pooling, ...) is expressed by its registry name and config: no new version.
    input_shape   the per-sample input shape; widths, activations: a readable summary (checked)
    {name}{i}     parameter `name` of layer i (Dense: W{i}, b{i}), as layer.parameter_names says
    lsuv_pending  layers still waiting for LSUV's scaling on the first batch fit sees
    classes_      the labels, when the network has learned them (optional)
    optimizer     JSON {"name", "step", "started"}, and optimizer.{k}.{j}: buffer j of parameter k
                  (optional: absent before the first fit), so fit continues after load exactly
    checksum      SHA-256 of every other array (names, dtypes, shapes, bytes)
Format version 1 (still read): widths, activations, activation_params, dropout, W{i}, b{i}, dtype,
seed, steps, checksum; Dense layers only, no optimizer state, initializers unknown ("zeros").
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
import zlib
from typing import TYPE_CHECKING, Any, Dict, List, Type

import numpy as np

from .. import _core
from .._files import atomic_file, target_path
from .labels import classes_for_file, classes_from_file
from .layers import LAYERS, Dense
from .optimizers import OPTIMIZERS

if TYPE_CHECKING:  # pragma: no cover
    from .network import Network

FORMAT_NAME = "initlab.network"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DTYPES = ("float32", "float64")
COMMON_KEYS = ["format", "format_version", "initlab_version", "dtype", "seed", "steps", "checksum"]
V2_KEYS = COMMON_KEYS + ["manifest", "input_shape", "widths", "activations", "lsuv_pending"]


def _v2_arrays(net: "Network") -> Dict[str, np.ndarray]:
    manifest = [{"type": layer.type_name, "config": layer.config(), "initializers": layer.initializers()}
                for layer in net.layers]
    arrays = {
        "format": np.array(FORMAT_NAME),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "initlab_version": np.array(_core.__version__),
        "dtype": np.array(net.dtype),
        "seed": np.array(net.seed, dtype=np.uint64),
        "steps": np.array([net._step, net._epochs_trained], dtype=np.int64),
        "manifest": np.array(json.dumps(manifest)),
        "input_shape": np.array(net.input_shape, dtype=np.int64),
        "widths": np.array(net.widths, dtype=np.int64),
        "activations": np.array([getattr(layer, "activation", None) or "" for layer in net.layers]),
        "lsuv_pending": np.array(net._lsuv_pending, dtype=np.int64),
    }
    for i, layer in enumerate(net.layers):
        for name, (param, _) in zip(layer.parameter_names, layer.parameters()):
            arrays[f"{name}{i}"] = param
    classes = getattr(net, "classes_", None)
    if classes is not None:  # int64 0..K-1, or the string labels fit learned (labels.py)
        arrays["classes_"] = classes_for_file(np.asarray(classes))
    state = net._optimizer
    if state is not None:
        arrays["optimizer"] = np.array(json.dumps({"name": state["name"], "step": state["step"],
                                                   "started": state["started"]}))
        for k, buffers in enumerate(state["buffers"]):
            for j, buffer in enumerate(buffers):
                arrays[f"optimizer.{k}.{j}"] = buffer
    return arrays


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
    """Write `net` (format version 2, see the module docstring) to one .npz at exactly `path`."""
    path, _ = target_path(path, "Network.save")
    arrays = _v2_arrays(net)
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
        if "allow_pickle" in str(e):  # numpy's advice to unpickle: never right for a model file
            raise ValueError(f"{where}: not an initlab model: not a readable initlab .npz file (numpy "
                             f"reads pickled data in it, which initlab never loads); a model is "
                             f"the .npz file that Network.save writes") from None
        raise ValueError(f"{where}: not a readable initlab .npz file (truncated, corrupted or "
                         f"foreign): {type(e).__name__}: {e}") from None
    missing = [k for k in COMMON_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{where}: not an initlab network file: missing keys {missing}")
    if arrays["format"].shape != () or str(arrays["format"]) != FORMAT_NAME:
        raise ValueError(f"{where}: format is {arrays['format'].tolist()!r}, expected {FORMAT_NAME!r}")
    version = arrays["format_version"]
    if version.shape != () or version.dtype.kind not in "iu" or int(version) not in READABLE_VERSIONS:
        raise ValueError(f"{where}: format_version {version.tolist()!r} is not supported (this initlab "
                         f"reads {', '.join(map(str, READABLE_VERSIONS))})")
    return (_from_v1 if int(version) == 1 else _from_v2)(cls, arrays, where)


def _from_v1(cls: "Type[Network]", arrays: Dict[str, np.ndarray], where: str) -> "Network":
    required = ["format", "format_version", "initlab_version", "dtype", "widths", "activations",
                "activation_params", "dropout", "seed", "steps", "checksum"]
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{where}: not an initlab network file: missing keys {missing}")
    dtype, widths, n_layers = _dtype_and_widths(arrays, where)
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
            _check_array(where, key, arrays[key], dtype, shape)
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



def _dtype_and_widths(arrays: Dict[str, np.ndarray], where: str):
    """(dtype, widths, layer count) of a file of either version, checked."""
    dtype = str(arrays["dtype"]) if arrays["dtype"].shape == () else ""
    if dtype not in DTYPES:
        raise ValueError(f"{where}: dtype {arrays['dtype'].tolist()!r} is not one of {DTYPES}")
    widths = arrays["widths"]
    if widths.dtype.kind not in "iu" or widths.ndim != 1 or widths.size < 2 or (widths < 1).any():
        raise ValueError(f"{where}: widths must be >= 2 positive ints, got {widths.tolist()!r}")
    return dtype, widths, widths.size - 1


def _json(arrays: Dict[str, np.ndarray], key: str, where: str) -> Any:
    a = arrays[key]
    if a.shape != () or a.dtype.kind != "U":
        raise ValueError(f"{where}: {key} must be a JSON string, got dtype {a.dtype} shape {a.shape}")
    try:
        return json.loads(str(a))
    except ValueError as e:
        raise ValueError(f"{where}: {key} is not valid JSON: {e}") from None


def _check_array(where: str, key: str, a: np.ndarray, dtype: str, shape) -> None:
    if a.dtype != np.dtype(dtype):
        raise ValueError(f"{where}: {key} has dtype {a.dtype}, the file says {dtype}")
    if a.shape != tuple(shape):
        raise ValueError(f"{where}: {key} has shape {a.shape}, expected {tuple(shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{where}: {key} contains NaN or infinity")


def _from_v2(cls: "Type[Network]", arrays: Dict[str, np.ndarray], where: str) -> "Network":
    """Build the layers the manifest lists, check every stored array against them, then the
    checksum, and only then copy parameters and state in."""
    missing = [k for k in V2_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{where}: not an initlab network file: missing keys {missing}")
    net, manifest, n_layers = _build_from_manifest(cls, arrays, where)
    expected = {f"{name}{i}": param for i, layer in enumerate(net.layers)
                for name, (param, _) in zip(layer.parameter_names, layer.parameters())}
    optimizer = _optimizer_state(arrays, net, where) if "optimizer" in arrays else None
    buffer_keys = {} if optimizer is None else optimizer.pop("keys")
    allowed = set(V2_KEYS) | set(expected) | {"classes_"} | set(buffer_keys) | (
        {"optimizer"} if optimizer is not None else set())
    missing = sorted(set(expected) - set(arrays)) + sorted(set(buffer_keys) - set(arrays))
    unexpected = sorted(set(arrays) - allowed)
    if missing or unexpected:
        raise ValueError(f"{where}: keys do not match {n_layers} layers: missing {missing}, "
                         f"unexpected {unexpected}")
    for key, param in list(expected.items()) + list(buffer_keys.items()):
        _check_array(where, key, arrays[key], net.dtype, param.shape)
    classes = arrays.get("classes_")
    if classes is not None and (classes.ndim != 1 or classes.dtype.kind not in "biufUS" or classes.size < 1):
        raise ValueError(f"{where}: classes_ must be a non-empty 1-D array of labels, got dtype "
                         f"{classes.dtype} shape {classes.shape}")
    pending = arrays["lsuv_pending"]
    if pending.ndim != 1 or pending.dtype.kind not in "iu" or not all(
            0 <= int(i) < n_layers and net.layers[int(i)].has_weights for i in pending):
        raise ValueError(f"{where}: lsuv_pending must list layers with weights, got {pending.tolist()!r}")
    if arrays["checksum"].shape != () or str(arrays["checksum"]) != checksum(arrays):
        raise ValueError(f"{where}: checksum mismatch: the contents were modified after saving")

    for key, param in expected.items():
        np.copyto(param, arrays[key])
    for layer, entry in zip(net.layers, manifest):
        layer.restore_initializers({str(k): str(v) for k, v in entry.get("initializers", {}).items()})
    steps = arrays["steps"]
    net._step, net._epochs_trained = int(steps[0]), int(steps[1])
    net._lsuv_pending = [int(i) for i in pending]
    if classes is not None:
        if net.output != "softmax":
            raise ValueError(f"{where}: classes_ are stored for a {net.output} output")
        net.classes_ = classes_from_file(classes, net.output_dim, where)
    if optimizer is not None:
        optimizer["buffers"] = [tuple(arrays[key].copy() for key in keys) for keys in optimizer["buffers"]]
        net._optimizer = optimizer
    return net


def _build_from_manifest(cls: "Type[Network]", arrays: Dict[str, np.ndarray], where: str):
    """(net with zero weights, manifest, layer count) from the manifest, checked against the
    file's dtype, seed, steps, input_shape and its widths/activations summary."""
    dtype, widths, n_layers = _dtype_and_widths(arrays, where)
    manifest = _json(arrays, "manifest", where)
    if not isinstance(manifest, list) or not all(
            isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("config"), dict)
            and isinstance(e.get("initializers", {}), dict) for e in manifest):
        raise ValueError(f"{where}: manifest must be a list of {{type, config, initializers}} entries")
    if len(manifest) != n_layers:
        raise ValueError(f"{where}: keys do not match {n_layers} layers: the manifest lists {len(manifest)}")
    shape, seed, steps = arrays["input_shape"], arrays["seed"], arrays["steps"]
    if shape.dtype.kind not in "iu" or shape.ndim != 1 or shape.size < 1 or (shape < 1).any():
        raise ValueError(f"{where}: input_shape must be positive ints, got {shape.tolist()!r}")
    if seed.shape != () or seed.dtype.kind not in "iu":
        raise ValueError(f"{where}: seed must be one integer, got {seed.tolist()!r}")
    if steps.shape != (2,) or steps.dtype.kind not in "iu" or (steps < 0).any():
        raise ValueError(f"{where}: steps must be 2 ints >= 0, got {steps.tolist()!r}")
    try:
        specs = []
        for entry in manifest:
            if entry["type"] not in LAYERS:
                raise ValueError(f"unknown layer type {entry['type']!r}; known: {', '.join(LAYERS)}")
            specs.append(LAYERS[entry["type"]](**entry["config"]))
        # zeros: nothing is drawn that the file's parameters overwrite anyway
        net = cls(specs, input_shape=tuple(int(d) for d in shape), seed=int(seed), dtype=dtype,
                  init="zeros", bias_init="zeros")
    except (ValueError, TypeError, MemoryError) as e:
        raise ValueError(f"{where}: invalid architecture: {e}") from None
    activations = [getattr(layer, "activation", None) or "" for layer in net.layers]
    if net.widths != widths.tolist() or arrays["activations"].tolist() != activations:
        raise ValueError(f"{where}: invalid architecture: widths {widths.tolist()} and activations "
                         f"{arrays['activations'].tolist()} do not match the manifest's {net.widths}, "
                         f"{activations}")
    return net, manifest, n_layers


def _optimizer_state(arrays: Dict[str, np.ndarray], net: "Network", where: str) -> Dict[str, Any]:
    """The saved optimizer state, with the buffer keys it needs (checked by the caller)."""
    state = _json(arrays, "optimizer", where)
    if not (isinstance(state, dict) and state.get("name") in OPTIMIZERS
            and isinstance(state.get("step"), int) and not isinstance(state.get("step"), bool)
            and state["step"] >= 0 and isinstance(state.get("started"), bool)):
        raise ValueError(f"{where}: optimizer must be {{name: one of {', '.join(OPTIMIZERS)}, step: int >= 0, "
                         f"started: bool}}, got {state!r}")
    n_buffers = OPTIMIZERS[state["name"]].n_buffers
    names: List[List[str]] = [[f"optimizer.{k}.{j}" for j in range(n_buffers)] for k in range(len(net._params))]
    keys = {key: param for param, row in zip(net._params, names) for key in row}
    return {"name": state["name"], "step": state["step"], "started": state["started"], "buffers": names,
            "keys": keys}
